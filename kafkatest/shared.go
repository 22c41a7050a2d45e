package kafkatest

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/kastor-dev/kastor/internal/dockerenv"
)

// Shared is one cluster for all the tests of a package that ask for it: started on the
// first Get, so a run of unit tests alone starts nothing, and closed by TestMain (Main
// does it):
//
//	var kafka = kafkatest.NewShared()
//
//	func TestMain(m *testing.M) { kafkatest.Main(m, kafka) }
//
//	func TestX(t *testing.T) {
//		c := kafka.Get(t)
//		topic := kafkatest.TopicName(t) // tests share the cluster, not topics
//		...
//	}
//
// Backends runs a test on the embedded broker and on the shared cluster.
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

// Backends runs fn as two subtests, one after the other: "embedded" on a broker of its own
// from StartEmbedded, and "kafka" on the shared cluster from Get (skipped without Docker,
// as Get says). The "kafka" runs of a package's tests share the cluster: name topics with
// TopicName.
func (s *Shared) Backends(t *testing.T, fn func(t *testing.T, c *Cluster)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) { fn(t, StartEmbedded(t)) })
	t.Run("kafka", func(t *testing.T) { fn(t, s.Get(t)) })
}

// ParallelBackends is Backends with parallel subtests: each calls t.Parallel before it
// starts or gets its cluster, so the two run alongside the package's other parallel tests.
func (s *Shared) ParallelBackends(t *testing.T, fn func(t *testing.T, c *Cluster)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) { t.Parallel(); fn(t, StartEmbedded(t)) })
	t.Run("kafka", func(t *testing.T) { t.Parallel(); fn(t, s.Get(t)) })
}

// Main is a package's TestMain for tests that share clusters or servers: it runs the
// tests, then closes every shared resource (a *Shared, a *pgtest.Shared: any io.Closer),
// printing on stderr the errors Close returns, and exits with m.Run's code, or 1 when the
// tests passed but a Close failed (a container left behind). Call it last in TestMain:
//
//	var (
//		kafka    = kafkatest.NewShared()
//		postgres = pgtest.NewShared()
//	)
//
//	func TestMain(m *testing.M) { kafkatest.Main(m, kafka, postgres) }
func Main(m *testing.M, shared ...io.Closer) {
	code := m.Run()
	for _, s := range shared {
		if err := s.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "kafkatest.Main: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}
