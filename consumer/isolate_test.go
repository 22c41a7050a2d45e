package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/kafkatest"
)

// allOrNothing applies a batch only when none of its events is bad, and then fails it
// with a plain error, not an ApplyError: the reader has to find the culprit itself.
type allOrNothing struct {
	mu      sync.Mutex
	bad     string         // "agg/version"
	applied map[string]int // "agg/version" -> times applied
	calls   int
	tried   int // events handed to Apply, in all calls
}

func (s *allOrNothing) Apply(_ context.Context, b consumer.Batch[kastor.Event]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.tried += len(b.Events)
	for _, e := range b.Events {
		if fmt.Sprintf("%s/%d", e.AggregateID, e.Version) == s.bad {
			return errors.New("boom")
		}
	}
	for _, e := range b.Events {
		s.applied[fmt.Sprintf("%s/%d", e.AggregateID, e.Version)]++
	}
	return nil
}

// A sink that fails a batch with a plain error gets the batch's events one at a time
// until the culprit is parked: the events before it are applied once each, and the number
// of Apply calls stays near one per event, not one batch per event before the culprit.
func TestPlainErrorIsolatesWithoutReapplying(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 1)
	const n = 60
	evs := []ev{opened("a")}
	for i := range n - 1 {
		evs = append(evs, deposited("a", int64(i+1)))
	}
	r.Write(evs...)
	s := &allOrNothing{bad: fmt.Sprintf("a/%d", n/2), applied: map[string]int{}}
	cfg := r.Config(func(c *consumer.Config[kastor.Event]) {
		c.MaxPollRecords = 1000
		c.Retry = consumer.Retry{Attempts: 2, InitialBackoff: 1, MaxBackoff: 1}
	})
	_, stop := r.Start(cfg, s)
	r.AwaitCommitted(r.Group(cfg), r.Ends())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for v := 1; v <= n; v++ {
		key := fmt.Sprintf("a/%d", v)
		want := 1
		if key == s.bad {
			want = 0
		}
		if s.applied[key] != want {
			t.Errorf("%s applied %d times, want %d", key, s.applied[key], want)
		}
	}
	// One failed batch, one event at a time up to the culprit and its retries, then the
	// rest in one or a few batches: about 2n events handed over. Going back to full
	// batches before the culprit hands over about n*n/4.
	t.Logf("%d Apply calls, %d events handed over", s.calls, s.tried)
	if s.tried > 3*n {
		t.Errorf("%d events handed to Apply for %d events: the reader went back to full batches before passing the culprit", s.tried, n)
	}
	if len(r.ReadDLQ()) != 1 {
		t.Errorf("want one dead letter")
	}
}
