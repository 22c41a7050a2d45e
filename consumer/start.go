package consumer

import (
	"context"

	"github.com/kastor-dev/kastor/cluster"
)

// Start makes a reader of cfg applying to sink (New), checks its topics as Run does
// first, then runs it in a goroutine until ctx ends. It returns New's error, or a missing
// events or dead-letter topic, at once rather than from a goroutine; failures after the
// start are retried as Run retries them, and an error Run still returns is logged with
// c's logger. It suits a read model that a process queries beside other work (an
// in-memory Memory); a process that only projects calls Run and exits when it returns.
func Start[E any](ctx context.Context, c *cluster.Cluster, cfg Config[E], sink Sink[E]) (*Reader[E], error) {
	r, err := New(c, cfg, sink)
	if err != nil {
		return nil, err
	}
	if _, err := r.checkTopics(ctx); err != nil {
		return nil, err
	}
	go func() {
		if err := r.Run(ctx); err != nil {
			r.cfg.log.Error("the reader stopped", "err", err)
		}
	}()
	return r, nil
}
