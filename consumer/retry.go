package consumer

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is the pause after the n-th consecutive failure (n >= 1): InitialBackoff
// doubling per failure, capped at MaxBackoff, less a random jitter of up to a fifth.
// The jitter spreads the retries of partitions (and instances) that failed together on
// a shared dependency, so they do not hit it again in step when it comes back.
func (r Retry) backoff(n int) time.Duration {
	d := r.InitialBackoff
	for i := 1; i < n && d < r.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.MaxBackoff)
	if j := int64(d) / 5; j > 0 {
		d -= time.Duration(rand.Int64N(j + 1))
	}
	return d
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
