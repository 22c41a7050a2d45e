package schema

import (
	"testing"

	"github.com/kastor-dev/kastor/kafkatest"
)

// kafka is real Apache Kafka for the tests that need it, started on first use.
var kafka = kafkatest.NewShared()

func TestMain(m *testing.M) { kafkatest.Main(m, kafka) }
