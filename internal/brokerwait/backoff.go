package brokerwait

import (
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ClientOptions are the retry settings of the clients kastor's components own, so that
// they notice a moved leader or coordinator within a second of its election: requests
// retried 100 ms to 1 s apart (franz-go's backoff grows to 5 s; the Java client's
// retry.backoff.max.ms is 1 s) and metadata refreshed at most 1 s apart (franz-go: 5 s).
// See decision 30.
func ClientOptions() []kgo.Opt {
	return []kgo.Opt{kgo.RetryBackoffFn(RetryBackoff), kgo.MetadataMinAge(time.Second)}
}

// RetryBackoff doubles from 100 ms to 1 s with the number of tries, with 20% jitter.
func RetryBackoff(tries int) time.Duration {
	d := time.Second
	if tries < 5 {
		d = 100 * time.Millisecond << max(tries-1, 0)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
