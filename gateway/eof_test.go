package gateway_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/logtest"
	"github.com/kastor-dev/kastor/kafkatest"
)

// goneBroker dials the cluster until it is gone; then every connection is accepted and
// closed at once, as a proxy or load balancer in front of a dead broker does (Docker's
// port proxy did it in make chaos), and the connections open until then are cut.
type goneBroker struct {
	mu     sync.Mutex
	gone   bool
	conns  []net.Conn
	closer net.Listener
}

func newGoneBroker(t *testing.T) *goneBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return &goneBroker{closer: ln}
}

func (b *goneBroker) dial(ctx context.Context, network, host string) (net.Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone {
		host = b.closer.Addr().String()
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil && !b.gone {
		b.conns = append(b.conns, c)
	}
	return c, err
}

func (b *goneBroker) set(gone bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gone = gone
	if gone {
		for _, c := range b.conns {
			c.Close()
		}
		b.conns = nil
	}
}

// TestSendRidesOutConnectionsClosedAtOnce: while every new connection is closed before
// its first answer, a Send that started then waits and succeeds once the broker is back,
// instead of failing with franz-go's "is TLS missing?".
func TestSendRidesOutConnectionsClosedAtOnce(t *testing.T) {
	r := newRig(t, kafkatest.StartEmbedded(t), 3)
	b := newGoneBroker(t)
	kc, err := cluster.New(r.c.Client(t, kgo.Dialer(b.dial)), r.ns, cluster.Logger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	r.startOn(kc, r.config())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := gateway.NewSender(ctx, kc, gateway.SenderConfig[command]{AggregateType: "bank.account", Commands: commandCodec})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Send(ctx, cmdWithID[command]("acct-eof", "open", openAccount{})); err != nil {
		t.Fatal(err)
	}

	b.set(true)
	done := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := s.Send(sctx, cmdWithID[command]("acct-eof", "deposit", deposit{5}))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Send ended while every connection was closed at once: %v", err)
	case <-time.After(2 * time.Second):
	}
	b.set(false)
	if err := <-done; err != nil {
		t.Fatalf("Send after the broker came back: %v", err)
	}
}

// TestTransactionEndRidesOutConnectionsClosedAtOnce: a gateway whose connections are cut,
// and every new one closed before its first answer, while a transaction waits to end
// commits that transaction once the broker is back, instead of dropping every shard for
// an outcome it cannot know, rejoining and restoring (decision 30: franz-go takes such an
// EOF for TLS misconfigured; the gateway reached the cluster before, so it is not).
func TestTransactionEndRidesOutConnectionsClosedAtOnce(t *testing.T) {
	r := newRig(t, kafkatest.StartEmbedded(t), 3)
	b := newGoneBroker(t)
	logger, logs := logtest.New()
	kc, err := cluster.New(r.c.Client(t, kgo.Dialer(b.dial)), r.ns, cluster.Logger(logger))
	if err != nil {
		t.Fatal(err)
	}
	g, _ := r.startOn(kc, r.config())
	s := r.sender() // not through the cut connections
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Send(ctx, cmdWithID[command]("acct-eof", "open", openAccount{})); err != nil {
		t.Fatal(err)
	}
	g.HoldBeforeEnd(time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := s.Send(ctx, cmdWithID[command]("acct-eof", "deposit", deposit{5}))
		done <- err
	}()
	// The deposit's event is written, its transaction not ended yet: cut the connections.
	uncommitted := r.c.Client(t, kgo.ConsumeTopics(r.events), kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for seen := 0; seen < 2; {
		fs := uncommitted.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the deposit's event was never written")
		}
		seen += fs.NumRecords()
	}
	b.set(true)
	time.Sleep(2 * time.Second) // the outage: the transaction's end meets it
	b.set(false)
	if err := <-done; err != nil {
		t.Fatalf("deposit: %v", err)
	}
	if strings.Contains(logs.String(), "outcome of a transaction is unknown") {
		t.Errorf("the gateway dropped its shards for a transaction it could have ended:\n%s", logs.String())
	}
}
