package kafkatest_test

import (
	"testing"

	"github.com/kastor-dev/kastor/kafkatest"
)

// shared is one single-node cluster for the tests of this package that need no cluster of
// their own.
var shared = kafkatest.NewShared()

func TestMain(m *testing.M) { kafkatest.Main(m, shared) }

func sharedCluster(t *testing.T) *kafkatest.Cluster {
	t.Helper()
	return shared.Get(t)
}
