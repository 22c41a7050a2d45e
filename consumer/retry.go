package consumer

import (
	"context"
	"time"
)

// backoff is the pause after the n-th consecutive failure (n >= 1): InitialBackoff
// doubling per failure, capped at MaxBackoff.
func (r Retry) backoff(n int) time.Duration {
	d := r.InitialBackoff
	for i := 1; i < n && d < r.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.MaxBackoff)
}

// sleep pauses for d. It returns false when interrupted first: ctx ended (shutdown) or
// hurry closed (the group wants to rebalance); the caller then stops where it is.
func sleep(ctx context.Context, hurry <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-hurry:
		return false
	}
}
