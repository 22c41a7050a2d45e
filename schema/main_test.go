package schema

import (
	"fmt"
	"os"
	"testing"

	"github.com/kastor-dev/kastor/kafkatest"
)

// kafka is real Apache Kafka for the tests that need it, started on first use.
var kafka = kafkatest.NewShared()

func TestMain(m *testing.M) {
	code := m.Run()
	if err := kafka.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}
