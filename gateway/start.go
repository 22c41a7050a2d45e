package gateway

import (
	"context"

	"github.com/kastor-dev/kastor/cluster"
)

// Start makes a gateway of cfg (New), checks its topics as Run does first, then runs it
// in a goroutine until ctx ends. It returns New's error, or a topic missing or of another
// partition count, at once rather than from a goroutine; an error Run returns later (the
// cluster unreachable beyond retries) is logged with c's logger. It suits a process that
// serves commands beside other work (a demo, a test, a service that also answers
// queries); a process that is only a gateway calls Run and exits when it returns.
func Start[S, C, E any](ctx context.Context, c *cluster.Cluster, cfg Config[S, C, E]) (*Gateway[S, C, E], error) {
	g, err := New(c, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := g.checkTopics(ctx, c.Client()); err != nil {
		return nil, err
	}
	go func() {
		if err := g.Run(ctx); err != nil {
			g.cfg.logger.Error("the gateway stopped", "err", err)
		}
	}()
	return g, nil
}
