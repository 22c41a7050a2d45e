package projection_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/projection"
)

// closingSink is a leaseSink with a Close method. A replayed event waits for the
// replay's context to end, and then a while for a Close of its sink that must not come
// yet.
type closingSink struct {
	leaseSink
	probe     *replayProbe
	closed    chan struct{}
	closeOnce sync.Once
}

// replayProbe is what the sinks of one projection share.
type replayProbe struct {
	inReplay          chan struct{} // closed when a replayed event reaches a sink
	once              sync.Once
	closedSinks       atomic.Int32
	appliedAfterClose atomic.Bool
}

func (s *closingSink) Apply(ctx context.Context, b consumer.Batch[kastor.Event]) error {
	if !b.Replay {
		return s.leaseSink.Apply(ctx, b)
	}
	s.probe.once.Do(func() { close(s.probe.inReplay) })
	<-ctx.Done()
	// Nothing may close the sink while this Apply runs: give a wrong order the time to
	// show (a Close arrives at once when it is not waited for).
	select {
	case <-s.closed:
		s.probe.appliedAfterClose.Store(true)
	case <-time.After(300 * time.Millisecond):
	}
	return ctx.Err()
}

func (s *closingSink) Close() error {
	s.closeOnce.Do(func() { close(s.closed); s.probe.closedSinks.Add(1) })
	return nil
}

// Stopping a projection in the middle of a replay of its dead letters waits for the
// letter being applied before closing the sink the replay applies through.
func TestStopWaitsForReplayBeforeClosingSink(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 2)
		createRegistry(t, c)
		store := &leaseStore{bad: map[string]bool{"acc-0/2": true}, applied: map[string][]string{}, replayed: map[string][]string{}, model: map[string]bool{}}
		r.Write(opened("acc-0"), deposited("acc-0", 1), deposited("acc-0", 2))
		probe := &replayProbe{inReplay: make(chan struct{})}
		var sinks atomic.Int32
		p, err := projection.New(r.KC, projection.Config[kastor.Event]{
			Reader:   r.Config(func(cfg *consumer.Config[kastor.Event]) { cfg.Version = 0 }),
			Version:  1,
			Instance: "a",
			Interval: 100 * time.Millisecond,
			NewSink: func(int) (consumer.Sink[kastor.Event], error) {
				sinks.Add(1)
				return &closingSink{leaseSink: leaseSink{store: store, instance: "a"}, probe: probe, closed: make(chan struct{})}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		stop := startProjection(t, p)
		awaitState(t, p, func(st projection.State) bool { return st.Serving == 1 })
		r.AwaitCommitted(consumer.GroupName(r.NS, projName, 1), r.Ends())
		ctx := testCtx(t)
		if _, err := projection.SubmitRequest(ctx, r.KC, projection.Request{Kind: projection.RequestReplay, Namespace: r.NS, Name: projName,
			Version: 1, By: "test"}); err != nil {
			t.Fatal(err)
		}
		await(t, probe.inReplay, "the replay to apply its letter")
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if probe.appliedAfterClose.Load() {
			t.Error("the sink was closed while the replay was applying through it")
		}
		if n, closed := sinks.Load(), probe.closedSinks.Load(); closed != n {
			t.Errorf("%d sinks made, %d closed when Run returned", n, closed)
		}
	})
}
