package main

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// The rate-driven runs (the peers' latency, growth's commands) share one shape: warm up
// until a first command comes back, send at a rate, then wait for what was sent to be
// seen. The pieces here are that shape once.

// pace calls send(i) for i in [0, n) at rate per second, one per tick. A send slower
// than a tick delays the following ones, so callers whose sends block start goroutines.
func pace(rate float64, n int, send func(i int)) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		send(i)
	}
}

// await waits until done holds, looking again whenever wake signals and at least every
// 100 ms. It returns false when timeout passes first, and failed's error, when failed is
// not nil and reports one, as soon as it does.
func await(wake <-chan struct{}, timeout time.Duration, done func() bool, failed func() error) (bool, error) {
	deadline := time.Now().Add(timeout)
	for !done() {
		if failed != nil {
			if err := failed(); err != nil {
				return false, err
			}
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-wake:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return true, nil
}

// warmUp sends warm-up commands send(0), send(1), ... one a second until ready holds
// after a wake (the first has come back: every consumer group has joined), for at most
// timeout. It returns how many it sent.
func warmUp(wake <-chan struct{}, timeout time.Duration, send func(i int) error, ready func() bool) (int, error) {
	deadline := time.Now().Add(timeout)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			return i, fmt.Errorf("nothing came back %v after the first warm-up command", timeout)
		}
		if err := send(i); err != nil {
			return i + 1, fmt.Errorf("warm-up: %w", err)
		}
		select {
		case <-wake:
		case <-time.After(time.Second):
			continue
		}
		if ready() {
			return i + 1, nil
		}
	}
}

// tracker times commands, identified by K, from their send to their being seen (a reply
// or an event read back). Warm-up commands (isWarm) are counted, not timed.
type tracker[K comparable] struct {
	mu     sync.Mutex
	sentAt map[K]time.Time
	lats   []time.Duration
	warm   int
	isWarm func(K) bool
	// got is signalled, without blocking, after commands are seen.
	got chan struct{}
}

func newTracker[K comparable](isWarm func(K) bool) *tracker[K] {
	return &tracker[K]{sentAt: map[K]time.Time{}, isWarm: isWarm, got: make(chan struct{}, 1)}
}

// send notes k's send time; call it before k can be seen.
func (t *tracker[K]) send(k K) {
	now := time.Now()
	t.mu.Lock()
	t.sentAt[k] = now
	t.mu.Unlock()
}

// seen records k seen at the given time; a k not sent, or seen before, is ignored.
// Call notify after a batch.
func (t *tracker[K]) seen(k K, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sent, ok := t.sentAt[k]
	if !ok {
		return
	}
	delete(t.sentAt, k)
	if t.isWarm(k) {
		t.warm++
	} else {
		t.lats = append(t.lats, at.Sub(sent))
	}
}

func (t *tracker[K]) notify() {
	select {
	case t.got <- struct{}{}:
	default:
	}
}

// counts returns how many timed and warm-up commands were seen, and how many sent are not.
func (t *tracker[K]) counts() (timed, warm, pending int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.lats), t.warm, len(t.sentAt)
}

// latencies returns a copy of the timed commands' latencies.
func (t *tracker[K]) latencies() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.lats)
}

// ready says whether a warm-up command has been seen.
func (t *tracker[K]) ready() bool { _, w, _ := t.counts(); return w > 0 }

// timedAtLeast says whether n timed commands have been seen.
func (t *tracker[K]) timedAtLeast(n int) func() bool {
	return func() bool { c, _, _ := t.counts(); return c >= n }
}
