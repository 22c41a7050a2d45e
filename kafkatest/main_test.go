package kafkatest_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kastor-dev/kastor/kafkatest"
)

// shared is one single-node cluster for the tests of this package that do not need their own.
var shared *kafkatest.Cluster

// sharedErr is why shared is nil.
var sharedErr error

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	shared, sharedErr = kafkatest.New(ctx)
	cancel()
	code := m.Run()
	if shared != nil {
		if err := shared.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func sharedCluster(t *testing.T) *kafkatest.Cluster {
	t.Helper()
	return kafkatest.Use(t, shared, sharedErr)
}
