package topics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Connect returns an admin client for the cluster at brokers once one of them has answered,
// or an *UnreachableError after timeout (DefaultTimeout when zero). Close the client when
// done.
//
// The client is set up for an interactive tool rather than a service: dials, requests and
// their retries are bounded by timeout, so a wrong address fails in seconds with the dial
// error instead of being retried in the background for minutes.
func Connect(ctx context.Context, brokers []string, timeout time.Duration, opts ...kgo.Opt) (*kadm.Client, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if len(brokers) == 0 {
		return nil, errors.New("no broker address given")
	}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("kastor"),
		kgo.DialTimeout(timeout),
		kgo.RetryTimeout(timeout),
		kgo.RequestRetries(5),
		kgo.RequestTimeoutOverhead(timeout),
		// Topics are created and then looked up right away; the default 5s minimum
		// between metadata refreshes would make that look-up wait.
		kgo.MetadataMinAge(100 * time.Millisecond),
	}, opts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %v: %w", brokers, err)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &UnreachableError{Brokers: brokers, Timeout: timeout, Err: err}
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(min(timeout, time.Hour).Milliseconds()))
	return adm, nil
}
