package projection_test

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/kastor-dev/kastor/internal/readertest"
	"github.com/kastor-dev/kastor/kafkatest"
)

var realKafka = kafkatest.NewShared()

func TestMain(m *testing.M) { kafkatest.Main(m, realKafka) }

func quietLogger() *slog.Logger {
	if os.Getenv("PROJECTION_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// The rig of the projection tests, shared with package consumer's (internal/readertest).
type (
	rig      = readertest.Rig
	ev       = readertest.Event
	failing  = readertest.Failing
	balances = readertest.Balances
)

var (
	opened      = readertest.Opened
	deposited   = readertest.Deposited
	newSeen     = readertest.NewSeen
	testCtx     = readertest.Context
	foldBalance = readertest.FoldBalance
)

const projName = readertest.Projection

func newRig(t *testing.T, c *kafkatest.Cluster, partitions int32) *rig {
	return readertest.New(t, c, partitions, quietLogger())
}
