package main

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
)

// The growth part (-only growth): how the gateway's figures grow with the number of
// aggregates and of partitions (issue #5). One round per point, so the part stays within
// a few minutes; single figures move by 10-40 % on the shared bench machine, so a trend
// is what they show, not a point.

var (
	growthAggregates = []int{1_000, 10_000, 100_000, 1_000_000}
	growthPartitions = []int32{1, 3, 6, 12, 24}
)

const (
	// growthCommands is the preloaded commands of each throughput point: enough for a few
	// seconds of steady state at the gateway's rate; a point of the default 100,000 would
	// make the part several minutes longer.
	growthCommands = 30_000
	// The sweeps cross at the main run's defaults: aggregates at 6 partitions, partitions
	// at 10,000 aggregates.
	growthPartitionsAt = 6
	growthAggregatesAt = 10_000
	// growthTouch bounds the commands that materialize restored aggregates in the memory
	// run: heap per materialized aggregate beyond it is the lazy figure plus the growth per
	// touched aggregate, which does not depend on how many are touched.
	growthTouch = 20_000
)

// growthBench prints the growth tables.
func growthBench(ctx context.Context, c *kafkatest.Cluster, p params) error {
	start := time.Now()
	if err := growthThroughput(ctx, c, p); err != nil {
		return err
	}
	fmt.Println()
	if err := growthRestore(ctx, c, p); err != nil {
		return err
	}
	if verbose {
		fmt.Printf("  growth part: %v\n", time.Since(start).Round(time.Second))
	}
	return nil
}

// growthThroughput runs the gateway and the raw transactional loop over growthCommands
// preloaded commands at each point of the two sweeps. The raw loop runs at every point,
// aggregates sweep included (where its work does not depend on the keys), so each ratio
// compares runs made under the same load. With more aggregates than commands every
// command addresses an aggregate of its own, so the gateway holds as many aggregates as
// there are commands: growthRestore's commands/s on a shard holding 10^6 restored
// aggregates is the figure for that.
func growthThroughput(ctx context.Context, c *kafkatest.Cluster, p params) error {
	type point struct {
		aggregates int
		partitions int32
	}
	var points []point
	for _, n := range growthAggregates {
		points = append(points, point{n, growthPartitionsAt})
	}
	for _, np := range growthPartitions {
		if np != growthPartitionsAt {
			points = append(points, point{growthAggregatesAt, np})
		}
	}
	for _, pt := range points {
		q := p
		q.aggregates, q.partitions, q.commands = pt.aggregates, pt.partitions, growthCommands
		limit, err := rawLoop(ctx, c, q)
		if err != nil {
			return err
		}
		gw, err := gatewayThroughput(ctx, c, q)
		if err != nil {
			return err
		}
		fmt.Printf("%-44s %10.0f   raw franz-go transactional loop %10.0f   ratio %.2f   %2d partitions, %7d aggregates (%d addressed), %d commands, batch %d\n",
			"growth: gateway throughput (commands/s, EOS)", gw, limit, gw/limit,
			pt.partitions, pt.aggregates, min(pt.aggregates, q.commands), q.commands, q.batch)
	}
	return nil
}

// growthRestore writes n snapshotted aggregates into one partition for each n of
// growthAggregates, times one restore beside one raw read of the snapshot partition
// (timeRestores), then measures the heap a gateway holding them takes per aggregate:
// restored lazily (each snapshot record kept undecoded, decision 16), and once commands
// have materialized them (growthTouch at most).
func growthRestore(ctx context.Context, c *kafkatest.Cluster, p params) error {
	for _, n := range growthAggregates {
		q := p
		q.snapAggs, q.partitions, q.aggregates = n, 1, n
		t0 := time.Now()
		ts, err := writeSnapshots(ctx, c, q)
		if err != nil {
			return err
		}
		if verbose {
			fmt.Printf("  growth: %d snapshots written in %v\n", n, time.Since(t0).Round(time.Millisecond))
		}
		rec, raw, err := timeRestores(ctx, c, ts, q, 1)
		if err != nil {
			return err
		}
		fmt.Printf("%-44s %8.3f s   raw read of the snapshot partition %8.3f s   ratio %.2f   per 100,000 aggregates %.3f s   1 partition, %7d snapshotted aggregates, one round\n",
			"growth: restore", rec.Seconds(), raw.Seconds(), rec.Seconds()/raw.Seconds(), rec.Seconds()*100_000/float64(n), n)
		h, err := holdAggregates(ctx, c, ts, q)
		if err != nil {
			return err
		}
		fmt.Printf("%-44s lazy %5.0f B (live %5.0f B)   materialized %5.0f B (live %5.0f B, %d touched)   commands/s on the shard %6.0f   1 partition, %7d aggregates held\n",
			"growth: heap per aggregate held (in use)", h.lazy.inUse, h.lazy.live, h.materialized.inUse, h.materialized.live, h.touched, h.perSecond, n)
	}
	return nil
}

type heldFigures struct {
	lazy, materialized perAggregate
	touched            int     // aggregates materialized by a command
	perSecond          float64 // commands/s of those commands
}

// holdAggregates starts a gateway on ts (one partition, q.snapAggs snapshotted
// aggregates) and reads the heap in use before it starts, once it has restored them, and
// once a command each has materialized up to growthTouch of them. The commands are
// appended while the gateway runs, so their rate (commands/s on a shard holding all the
// aggregates, each command decoding one) shares the CPU with the appending client.
func holdAggregates(ctx context.Context, c *kafkatest.Cluster, ts topicSet, q params) (heldFigures, error) {
	n := q.snapAggs
	var seen atomic.Int64
	wake := make(chan struct{}, 1)
	cfg := gatewayConfig(c, ts, q)
	cfg.Group = ts.ns + "-held"
	cfg.Listeners = []gateway.Listener[deposited]{func(_ context.Context, evs []kastor.Envelope[deposited]) {
		seen.Add(int64(len(evs)))
		select {
		case wake <- struct{}{}:
		default:
		}
	}}
	before := heapNow()
	_, _, stop, err := startRestored(ctx, ts.kc, cfg, n)
	if err != nil {
		return heldFigures{}, err
	}
	defer stop()
	restored := heapNow()

	k := min(n, growthTouch)
	touch := q
	touch.commands = k
	t0 := time.Now()
	if err := preload(ctx, c, ts, touch); err != nil {
		return heldFigures{}, err
	}
	done := func() bool { return seen.Load() >= int64(k) }
	if ok, _ := await(wake, 5*time.Minute, done, nil); !ok {
		return heldFigures{}, fmt.Errorf("growth: %d of %d commands handled after 5 minutes", seen.Load(), k)
	}
	took := time.Since(t0)
	touched := heapNow()
	// The heap is read after GC, so what is left is what the gateway holds; the clients'
	// buffers are in it too, a fixed cost that weighs only at 10^3 aggregates. Past
	// growthTouch aggregates, the commands' own leftovers (producer buffers, spans their
	// transient allocations left part-free) are divided among the touched aggregates
	// only, so materialized in use overstates there; live does not move with that.
	lazy := before.per(restored, n)
	more := restored.per(touched, k)
	h := heldFigures{lazy: lazy, materialized: perAggregate{inUse: lazy.inUse + more.inUse, live: lazy.live + more.live},
		touched: k, perSecond: float64(k) / took.Seconds()}
	if verbose {
		fmt.Printf("  growth: heap in use before %.1f MB, restored %.1f MB, touched %.1f MB; live objects %.1f, %.1f, %.1f MB\n",
			mb(before.inUse), mb(restored.inUse), mb(touched.inUse), mb(before.live), mb(restored.live), mb(touched.live))
	}
	return h, nil
}

type heapStats struct{ inUse, live uint64 }

// perAggregate is heap per aggregate, in bytes: in use, and live. In use also counts the
// free room of spans that still hold a live object, which the commands' transient
// allocations leave behind: it is what the process keeps, live what the aggregates are.
type perAggregate struct{ inUse, live float64 }

// per returns the heap growth from h to to, per count aggregates.
func (h heapStats) per(to heapStats, count int) perAggregate {
	return perAggregate{inUse: (float64(to.inUse) - float64(h.inUse)) / float64(count),
		live: (float64(to.live) - float64(h.live)) / float64(count)}
}

// heapNow collects garbage and reads the heap: HeapInuse (spans holding objects, what
// the process keeps from the OS for them) and HeapAlloc (the live objects alone). The
// second GC frees what the first left for finalizers.
func heapNow() heapStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return heapStats{inUse: m.HeapInuse, live: m.HeapAlloc}
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }
