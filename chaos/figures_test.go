package chaos

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The failover figures (W6), computed from the senders' own timings: a shard "answers"
// when a reply of any kind from its owner reaches a sender (a verdict, a duplicate, an
// expiry, "no outcome"), since every reply is written in its owner's transaction and
// delivered on that transaction's commit.

// fault is one injected fault.
type fault struct {
	n       int
	kind    string // "kill", "zombie" or "broker"
	victim  string // gateway instance, or "node N"
	restart string // how the victim came back
	at      time.Time
	resumed time.Time // SIGCONT (zombie); broker started again (broker)
	// election is how long after a broker's death every partition the gateways use had a
	// leader that answered again (new leaders elected, or the broker back first).
	election time.Duration
	// dead are the shards the victim gateway owned at the fault (gateway faults), or all
	// shards (broker faults: any of them may depend on the lost broker).
	dead []int32
	// ownersBefore and ownersAfter map each shard to its owner's instance just before the
	// fault and once the group was stable again after it: a survivor shard whose owner
	// did not change is one the fault should not have touched.
	ownersBefore, ownersAfter map[int32]string
}

// failover is what a fault cost.
type failover struct {
	// firstAnswer and allAnswered: from the fault to the first answer on a dead shard, and
	// until every dead shard had answered, counting only attempts started after the fault
	// (an answer to an earlier attempt may have been committed before it).
	firstAnswer, allAnswered time.Duration
	// firstVerdict: to the first success or refusal of a load command on a dead shard.
	firstVerdict time.Duration
	perShard     map[int32]time.Duration
	missing      []int32 // dead shards with no answer at all before the horizon
	// The survivors' load attempts started during [fault, fault+allAnswered]: latency
	// percentiles (a timed-out attempt counts as its full timeout) and timeouts. stayed*
	// restrict them to shards whose owner did not change.
	survivors, stayed         stats
	survivorTimeouts, stayedN int
	timeoutShards             []int32 // the survivor shards with timeouts
	// survivorSilence is the longest time a survivor shard went without any answer (the
	// probes' included) during the window: the probes ask every shard every 300 ms, so it
	// shows a stall of the survivors that their few load attempts may miss.
	survivorSilence gap
}

// stats are latency percentiles.
type stats struct {
	n             int
	p50, p99, max time.Duration
}

func (s stats) String() string {
	if s.n == 0 {
		return "n=0"
	}
	return fmt.Sprintf("p50 %v p99 %v max %v n=%d", ms(s.p50), ms(s.p99), ms(s.max), s.n)
}

func latencies(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return stats{n: len(s), p50: percentile(s, 0.50), p99: percentile(s, 0.99), max: s[len(s)-1]}
}

// percentile of sorted values, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// ms rounds a duration for the report.
func ms(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// baseline is the load's latency over a window without faults.
func baseline(atts []attempt, from, to time.Time) stats {
	var ds []time.Duration
	for _, a := range atts {
		if !a.probe && a.answered && !a.start.Before(from) && a.start.Before(to) {
			ds = append(ds, a.latency())
		}
	}
	return latencies(ds)
}

// computeFailover measures fault f from the attempts; horizon is when the run stopped
// looking (the next fault, or the end).
func computeFailover(f *fault, atts []attempt, horizon time.Time) failover {
	dead := map[int32]bool{}
	for _, p := range f.dead {
		dead[p] = true
	}
	first := map[int32]time.Time{}
	var verdict time.Time
	for _, a := range atts {
		if !a.answered || a.start.Before(f.at) || !a.end.Before(horizon) || !dead[a.partition] {
			continue
		}
		if t, ok := first[a.partition]; !ok || a.end.Before(t) {
			first[a.partition] = a.end
		}
		if a.verdict && (verdict.IsZero() || a.end.Before(verdict)) {
			verdict = a.end
		}
	}
	fo := failover{perShard: map[int32]time.Duration{}, firstAnswer: -1, allAnswered: -1, firstVerdict: -1}
	for _, p := range f.dead {
		t, ok := first[p]
		if !ok {
			fo.missing = append(fo.missing, p)
			continue
		}
		d := t.Sub(f.at)
		fo.perShard[p] = d
		if fo.firstAnswer < 0 || d < fo.firstAnswer {
			fo.firstAnswer = d
		}
		fo.allAnswered = max(fo.allAnswered, d)
	}
	if !verdict.IsZero() {
		fo.firstVerdict = verdict.Sub(f.at)
	}
	window := fo.allAnswered
	if len(fo.missing) > 0 || window < 0 {
		window = horizon.Sub(f.at)
	}
	var surv, stay []time.Duration
	for _, a := range atts {
		if a.probe || dead[a.partition] || a.start.Before(f.at) || !a.start.Before(f.at.Add(window)) {
			continue
		}
		if !a.answered && !a.timedOut {
			continue // an error before any wait (a write that failed): no latency
		}
		surv = append(surv, a.latency())
		if a.timedOut {
			fo.survivorTimeouts++
			if !slices.Contains(fo.timeoutShards, a.partition) {
				fo.timeoutShards = append(fo.timeoutShards, a.partition)
			}
		}
		if f.ownersAfter != nil && f.ownersBefore[a.partition] == f.ownersAfter[a.partition] {
			stay = append(stay, a.latency())
		}
	}
	for p := range f.ownersBefore {
		if !dead[p] && f.ownersAfter != nil && f.ownersBefore[p] == f.ownersAfter[p] {
			fo.stayedN++
		}
	}
	fo.survivors, fo.stayed = latencies(surv), latencies(stay)
	for _, g := range longestGaps(atts, partitions, f.at, f.at.Add(window)) {
		_, owned := f.ownersBefore[g.partition]
		survivor := !dead[g.partition] && (owned || len(f.ownersBefore) == 0)
		if survivor && g.length > fo.survivorSilence.length {
			fo.survivorSilence = g
		}
	}
	return fo
}

// gap is a shard's longest silence: no answer from start to start+length.
type gap struct {
	partition int32
	start     time.Time
	length    time.Duration
}

// longestGaps returns each shard's longest silence within [from, to], longest first,
// counting from the last answer before from. A silence still going on at to ends there.
func longestGaps(atts []attempt, partitions int32, from, to time.Time) []gap {
	ends := make([][]time.Time, partitions)
	for _, a := range atts {
		if a.answered && a.end.Before(to) {
			ends[a.partition] = append(ends[a.partition], a.end)
		}
	}
	var out []gap
	for p := range partitions {
		ts := ends[p]
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		last := from
		best := gap{partition: p}
		for _, t := range ts {
			if t.Before(from) {
				last = t // the silence at from began at the last answer before it
				continue
			}
			if d := t.Sub(last); d > best.length {
				best = gap{partition: p, start: last, length: d}
			}
			last = t
		}
		if d := to.Sub(last); d > best.length {
			best = gap{partition: p, start: last, length: d}
		}
		out = append(out, best)
	}
	slices.SortFunc(out, func(a, b gap) int { return int(b.length - a.length) })
	return out
}

// describeFault is the report line of a fault.
func describeFault(f *fault, fo failover, since time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s %s at +%v", f.n, f.kind, f.victim, ms(f.at.Sub(since)))
	if f.restart != "" {
		fmt.Fprintf(&b, " (%s)", f.restart)
	}
	if !f.resumed.IsZero() {
		fmt.Fprintf(&b, ", resumed after %v", ms(f.resumed.Sub(f.at)))
	}
	if f.kind == "broker" {
		fmt.Fprintf(&b, ", leaders answering after %s", dur(f.election))
	}
	fmt.Fprintf(&b, ": shards %v; first answer %s, all answered %s, first verdict %s", f.dead,
		dur(fo.firstAnswer), dur(fo.allAnswered), dur(fo.firstVerdict))
	if len(fo.missing) > 0 {
		fmt.Fprintf(&b, ", NEVER ANSWERED %v", fo.missing)
	}
	fmt.Fprintf(&b, "; survivors %v, %d timeouts", fo.survivors, fo.survivorTimeouts)
	if len(fo.timeoutShards) > 0 {
		slices.Sort(fo.timeoutShards)
		fmt.Fprintf(&b, " (shards %v)", fo.timeoutShards)
	}
	fmt.Fprintf(&b, "; survivors that kept their owner (%d shards) %v", fo.stayedN, fo.stayed)
	if fo.survivorSilence.length > 0 {
		fmt.Fprintf(&b, "; longest survivor silence %v (shard %d from +%v)", ms(fo.survivorSilence.length),
			fo.survivorSilence.partition, ms(fo.survivorSilence.start.Sub(since)))
	}
	return b.String()
}

func dur(d time.Duration) string {
	if d < 0 {
		return "none"
	}
	return ms(d).String()
}
