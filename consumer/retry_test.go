package consumer

import (
	"testing"
	"time"
)

// The backoff doubles up to MaxBackoff, less a jitter of at most a fifth, and the
// jitter does vary.
func TestBackoffJitter(t *testing.T) {
	r := Retry{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := r.backoff(n)
			if d > want || d < want-want/5 {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want-want/5, want)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) always %v: no jitter", n, r.backoff(n))
		}
	}
}
