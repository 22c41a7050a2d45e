package kafkatest_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/kastor-dev/kastor/kafkatest"
)

// shared is one single-node cluster for the tests of this package that need no cluster of
// their own.
var shared = kafkatest.NewShared()

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func sharedCluster(t *testing.T) *kafkatest.Cluster {
	t.Helper()
	return shared.Get(t)
}
