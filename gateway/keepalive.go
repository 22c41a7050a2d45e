package gateway

import (
	"context"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/internal/brokerwait"
)

// keepAlive heartbeats member's group membership from a client of its own, once per
// heartbeat interval, until ctx ends; it returns when it has stopped.
//
// franz-go sends no heartbeat between learning of a rebalance and its JoinGroup, and that
// JoinGroup waits for an offset commit in flight. While a dead broker is still in the ISR
// of the group's __consumer_offsets partition (until the controller fences it, ~9 s), the
// commit waits that long, and the member missed its 6 s session and was evicted. These
// heartbeats only renew the session: franz-go's own still learn of rebalances and lost
// memberships. An answer slower than a third of the session timeout is given up on, which
// closes its connection, so the next heartbeat does not queue behind it. See decision 40.
func (g *Gateway[S, C, E]) keepAlive(ctx context.Context, member *kgo.Client) {
	cfg := g.cfg
	patience := max(cfg.SessionTimeout/3, 500*time.Millisecond)
	opts := []kgo.Opt{
		kgo.ClientID(clientIDPrefix + cfg.InstanceID + "-keepalive"),
		// franz-go: "hitting the timeout kills a connection".
		kgo.RequestTimeoutOverhead(patience),
		kgo.RequestRetries(math.MaxInt32),
		kgo.AlwaysRetryEOF(), // Run reached the cluster with these settings
		kgo.WithLogger(nil),
	}
	opts = append(opts, brokerwait.ClientOptions()...)
	opts = append(opts, brokerwait.RefusedRetryable(g.cluster.Client())...)
	side, err := kgo.NewClient(cluster.Options(g.cluster.Client(), opts...)...)
	if err != nil {
		cfg.logger.Warn("no keep-alive heartbeats: cannot create their client", "err", err)
		return
	}
	defer side.Close()
	var instance *string
	if !cfg.DynamicMembership {
		instance = &cfg.InstanceID
	}
	tick := time.NewTicker(cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		id, gen := member.GroupMetadata()
		if id == "" || gen < 0 {
			continue // not a member yet: the join itself renews the session
		}
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.MemberID, req.Generation, req.InstanceID = cfg.Group, id, gen, instance
		start := time.Now()
		hctx, cancel := context.WithTimeout(ctx, cfg.SessionTimeout)
		_, err := req.RequestWith(hctx, side)
		cancel()
		if took := time.Since(start); took > patience && ctx.Err() == nil {
			g.metrics.stalls.Inc()
			cfg.logger.Info("the group coordinator is slow to answer heartbeats", "took", took.Round(time.Millisecond), "err", err)
		}
	}
}
