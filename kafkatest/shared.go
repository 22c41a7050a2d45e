package kafkatest

import (
	"context"
	"testing"

	"github.com/kastor-dev/kastor/internal/dockerenv"
)

// Shared is one cluster for all the tests of a package that ask for it: started on the
// first Get, so a run of unit tests alone starts nothing, and closed by TestMain:
//
//	var kafka = kafkatest.NewShared()
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		kafka.Close()
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) {
//		c := kafka.Get(t)
//		topic := kafkatest.TopicName(t) // tests share the cluster, not topics
//		...
//	}
type Shared struct {
	opts []Option
	s    dockerenv.Shared[*Cluster]
}

// NewShared prepares a shared cluster started with opts on first use.
func NewShared(opts ...Option) *Shared { return &Shared{opts: opts} }

// Get returns the shared cluster, starting it on the first call. Like Start, it skips the
// test when no Docker engine is reachable, or fails it under CI or KASTOR_REQUIRE_DOCKER.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	c, err := s.s.Get(func(ctx context.Context) (*Cluster, error) { return New(ctx, s.opts...) })
	return Use(t, c, err)
}

// Close stops the cluster if it was started. Call it from TestMain after m.Run.
func (s *Shared) Close() error { return s.s.Close() }
