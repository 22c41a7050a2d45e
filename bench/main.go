// Command bench measures kastor against its limits on one Kafka broker, in one run, and
// prints each figure beside its limit as a ratio. `make bench` runs it; docs/BENCHMARKS.md
// records the results.
//
// The broker is KAFKA_BROKERS, or a single Apache Kafka node started with kafkatest.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/kastor-dev/kastor/kafkatest"
)

type params struct {
	brokers    []string
	partitions int32
	aggregates int
	commands   int
	batch      int
	interval   time.Duration
	snapAggs   int
	events     int
}

func main() {
	if os.Getenv(gatewayChildEnv) != "" {
		os.Exit(runGatewayChild()) // a gateway process of the failover figure
	}
	var p params
	flag.IntVar(&p.commands, "commands", 100_000, "commands per throughput run")
	flag.IntVar(&p.aggregates, "aggregates", 10_000, "distinct aggregates the commands address")
	partitions := flag.Int("partitions", 6, "partitions of every topic")
	flag.IntVar(&p.batch, "batch", 500, "commands per transaction (gateway MaxBatch, raw loop poll size)")
	intervals := []time.Duration{10 * time.Millisecond, 100 * time.Millisecond}
	flag.Func("commit-interval", "gateway CommitInterval of the latency runs, comma-separated (default 10ms,100ms); the peers run at the first", func(s string) error {
		intervals = intervals[:0]
		for f := range strings.SplitSeq(s, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil || d <= 0 {
				return fmt.Errorf("want positive durations like 10ms, got %q", f)
			}
			intervals = append(intervals, d)
		}
		return nil
	})
	// A million: at 200,000 the whole topic came back in one fetch, so a run measured one
	// fetch's decoding plus a tail, in a third of a second, not a rate.
	flag.IntVar(&p.events, "events", 1_000_000, "events in the projection runs")
	flag.IntVar(&p.snapAggs, "recovery-aggregates", 100_000, "snapshotted aggregates in the recovery run")
	rate := flag.Float64("rate", 0, "commands/s for the latency run (default: half of the measured peak)")
	flag.BoolVar(&verbose, "v", false, "print every round's figures")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the parts run (after the warm-up) to this file")
	only := flag.String("only", "", "run only these parts, comma-separated: throughput, latency, projection, recovery, watermill, streams, growth, failover, saga")
	fo := failoverFlags()
	sf := sagaFlagSet()
	var brokerConfig []kafkatest.Option
	flag.Func("broker-config", "a broker setting key=value for the test broker (repeatable), e.g. add.partitions.to.txn.retry.backoff.ms=1", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("want key=value, got %q", s)
		}
		brokerConfig = append(brokerConfig, kafkatest.BrokerConfig(k, v))
		return nil
	})
	flag.Parse()
	runs := func(part string) bool { return *only == "" || slices.Contains(strings.Split(*only, ","), part) }
	p.partitions = int32(*partitions)
	p.interval = intervals[0]

	ctx := context.Background()
	c, err := kafkatest.New(ctx, brokerConfig...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer c.Close()
	p.brokers = c.Brokers()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))

	fmt.Printf("kastor bench — %s, %d CPU, Kafka %s (%s)\n", time.Now().Format("2006-01-02"), runtime.NumCPU(), kafkatest.KafkaVersion, c.Backend())
	fmt.Printf("parameters: %d partitions, %d aggregates, %d commands, batch %d, payload ~20 B JSON\n\n", p.partitions, p.aggregates, p.commands, p.batch)

	// Warm the broker's JIT and page cache up, so neither runner pays for it alone.
	warm := p
	warm.commands = min(p.commands, 20_000)
	_, err = rawLoop(ctx, c, warm)
	check(err)

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}

	var gw float64
	if runs("throughput") || runs("latency") && *rate == 0 {
		limit, err := rawLoop(ctx, c, p)
		check(err)
		gw, err = gatewayThroughput(ctx, c, p)
		check(err)
		row("gateway throughput (commands/s, EOS)", gw, "raw franz-go transactional loop", limit, 0.70)
	}

	var gwLat latencies
	if runs("latency") {
		r, what := *rate, "given rate"
		if r == 0 {
			r, what = gw/2, "half of peak"
		}
		// The target is relative to the commit interval, so it is measured at a short
		// interval (latency floor: Kafka's transaction commit dominates, decision 18) and at
		// a long one (the interval dominates).
		for i, iv := range intervals {
			pi := p
			pi.interval = iv
			limit, err := rawLatency(ctx, c, pi, r)
			check(err)
			lat, err := gatewayLatency(ctx, c, pi, r)
			check(err)
			if i == 0 {
				gwLat = lat
			}
			fmt.Printf("%-44s p50 %6.1f ms  p99 %6.1f ms   raw franz-go request/reply p50 %6.1f ms  p99 %6.1f ms   at %.0f commands/s (%s), commit interval %v: p99/interval = %.1f (target < 3), p99/limit = %.2f\n",
				"gateway latency (Send round trip)", ms(lat.p50), ms(lat.p99), ms(limit.p50), ms(limit.p99), r, what, iv,
				float64(lat.p99)/float64(iv), float64(lat.p99)/float64(limit.p99))
		}
	}

	if runs("watermill") {
		check(watermillPart(ctx, c, p, gw, gwLat, *rate))
	}

	if runs("streams") {
		check(streamsBench(ctx, c, p, gw, gwLat, *rate))
	}

	if runs("projection") {
		check(projectionBench(ctx, c, p))
	}

	if runs("growth") {
		check(growthBench(ctx, c, p))
	}

	if runs("failover") {
		check(failoverBench(ctx, c, *fo))
	}

	if runs("saga") {
		check(sagaBench(ctx, c, p, sf))
	}

	if !runs("recovery") {
		return
	}
	rec, raw, err := recovery(ctx, c, p)
	check(err)
	fmt.Printf("%-44s %8.2f s   raw read of the snapshot partition %8.2f s   ratio %.2f (target <= 1.5)\n",
		fmt.Sprintf("recovery of %d snapshotted aggregates", p.snapAggs), rec.Seconds(), raw.Seconds(), rec.Seconds()/raw.Seconds())
}

var verbose bool

func row(name string, v float64, peer string, pv float64, target float64) {
	fmt.Printf("%-44s %10.0f   %s %10.0f   ratio %.2f (target >= %.2f)\n", name, v, peer, pv, v/pv, target)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
