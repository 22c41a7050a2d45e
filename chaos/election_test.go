package chaos

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// watchLeaders polls the cluster from a broker's death until every partition the gateways
// depend on (their topics, the group's offsets and the transaction log) answers a
// ListOffsets request again, and sends how long that took: the cluster's leader election,
// or the broker's return when it came back before the election ended. No shard can
// answer before it; the bound on broker loss counts from it. It sends a negative duration
// when ctx ends first.
func watchLeaders(ctx context.Context, adm *kadm.Client, at time.Time, topics []string) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	topics = append(topics, "__consumer_offsets", "__transaction_state")
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if leadersAnswer(ctx, adm, topics) {
				out <- time.Since(at)
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				out <- -1
				return
			}
		}
	}()
	return out
}

// leadersAnswer reports whether every partition of topics has a leader that answers.
func leadersAnswer(ctx context.Context, adm *kadm.Client, topics []string) bool {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(rctx, topics...)
	if err != nil || ends.Error() != nil {
		return false
	}
	for _, name := range topics {
		if len(ends[name]) == 0 {
			return false
		}
	}
	return true
}
