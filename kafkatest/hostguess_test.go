package kafkatest

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/internal/dockerenv"
)

// TestContainersIgnoreTestcontainersHostGuess runs the harness where testcontainers' guess of
// the Docker host is a name that never resolves, as on a machine where it guesses the default
// gateway (issue #14): the brokers must still be reached, on 127.0.0.1.
func TestContainersIgnoreTestcontainersHostGuess(t *testing.T) {
	if os.Getenv("KAFKA_BROKERS") != "" {
		t.Skip("KAFKA_BROKERS is set: the harness starts no container")
	}
	if !dockerenv.WithBadHostGuess(t) {
		return
	}
	c := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for _, n := range c.docker.nodes {
		// Without the guess in force this test would prove nothing.
		if host, err := n.container.Host(ctx); err != nil || host != dockerenv.UnresolvableHost {
			t.Fatalf("node %d: testcontainers guesses the host %q (%v), want %q", n.id, host, err, dockerenv.UnresolvableHost)
		}
		info, err := n.container.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for port, bindings := range info.NetworkSettings.Ports {
			for _, b := range bindings {
				if b.HostIP.String() != "127.0.0.1" {
					t.Errorf("node %d: port %s published on %s:%s, want 127.0.0.1 only", n.id, port, b.HostIP, b.HostPort)
				}
			}
		}
	}
	for _, b := range c.Brokers() {
		if host, _, err := net.SplitHostPort(b); err != nil || host != "127.0.0.1" {
			t.Fatalf("broker address %q, want 127.0.0.1:port", b)
		}
	}

	topic := TopicName(t)
	c.CreateTopic(t, topic, 1, 0, nil)
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("opened")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consuming %s: %v", topic, err)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		if recs := fs.Records(); len(recs) > 0 {
			if got := string(recs[0].Value); got != "opened" {
				t.Fatalf("consumed %q, want %q", got, "opened")
			}
			return
		}
	}
}
