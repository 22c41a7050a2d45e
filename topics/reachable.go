package topics

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Reachable returns nil once a broker of cl's cluster has answered, or an
// *UnreachableError (matching ErrUnreachable) naming cl's seed brokers after timeout
// (DefaultTimeout when zero). A command a person waits on calls it first, so that a wrong
// address fails in seconds with the dial error instead of being retried in the background.
func Reachable(ctx context.Context, cl *kgo.Client, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		seeds, _ := cl.OptValue(kgo.SeedBrokers).([]string)
		return &UnreachableError{Brokers: seeds, Timeout: timeout, Err: err}
	}
	return nil
}
