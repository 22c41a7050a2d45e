package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// checkpointRevoked writes, for each revoked shard that changed since its last checkpoint,
// the snapshots of its changed aggregates and a checkpoint, in one transaction
// (snapshot.Policy.OnRevoke; the records are snapshot.Shard.Handover's). It runs in the
// revoke callback, while the instance is still the partitions' only writer, and only when
// no batch is in flight: the session's producer holds one transaction at a time. A
// failure costs the next owner an event tail, nothing else: it is logged and the handover
// goes on. See decision 17.
func (g *Gateway[S, C, E]) checkpointRevoked(ctx context.Context, cl *kgo.Client, revoked []int32) {
	if !g.txnMu.TryLock() {
		g.cfg.logger.Info("no checkpoint on revoke: a batch is in flight", "partitions", revoked)
		return
	}
	defer g.txnMu.Unlock()
	var recs []*kgo.Record
	shards := 0
	for _, p := range revoked {
		sh := g.shard(p)
		if sh == nil {
			continue
		}
		rs, checkpointed := sh.snap.Handover(snapSource[S, C, E]{g: g, sh: sh})
		recs = append(recs, rs...)
		if checkpointed {
			shards++
		}
	}
	if shards == 0 {
		return
	}
	start := time.Now()
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.TransactionTimeout)
	defer cancel()
	if err := g.writeTransaction(tctx, cl, recs); err != nil {
		g.cfg.logger.Warn("no checkpoint on revoke", "partitions", revoked, "err", err)
		return
	}
	g.metrics.snapshots.Add(float64(len(recs) - shards))
	g.cfg.logger.Info("checkpointed revoked shards", "shards", shards, "snapshots", len(recs)-shards,
		"took", time.Since(start).Round(time.Millisecond))
}

// writeTransaction writes recs in one transaction of the session's producer, aborting it
// on any failure.
func (g *Gateway[S, C, E]) writeTransaction(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	results := cl.ProduceSync(ctx, recs...)
	commit := kgo.TryCommit
	err := results.FirstErr()
	if err != nil {
		commit = kgo.TryAbort
	}
	if endErr := cl.EndTransaction(ctx, commit); endErr != nil && err == nil {
		err = fmt.Errorf("end: %w", endErr)
	}
	return err
}
