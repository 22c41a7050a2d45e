package runner

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kastor-dev/kastor/internal/promreg"
)

type metrics struct {
	inputs    *prometheus.CounterVec
	routed    *prometheus.CounterVec
	commands  prometheus.Counter
	fired     prometheus.Counter
	stuck     prometheus.Counter
	txns      *prometheus.CounterVec
	owned     prometheus.Gauge
	instances prometheus.Gauge
	restore   prometheus.Histogram
	parts     *partitionCollector
}

func newMetrics(reg prometheus.Registerer, sagaType string) (*metrics, error) {
	labels := prometheus.Labels{"saga": sagaType}
	m := &metrics{
		inputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "saga", Name: "inputs_total", ConstLabels: labels,
			Help: "Inputs read by the runner, by result (applied; ignored: seen already, a deadline no longer pending, a done instance; parked: on the dead-letter topic).",
		}, []string{"result"}),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "saga", Name: "routed_total", ConstLabels: labels,
			Help: "Events read by the router, by result (routed, skipped: not the saga's, parked).",
		}, []string{"result"}),
		commands: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "saga", Name: "commands_total", ConstLabels: labels,
			Help: "Commands committed to aggregates' commands topics.",
		}),
		fired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "saga", Name: "deadlines_fired_total", ConstLabels: labels,
			Help: "Deadlines fired and committed.",
		}),
		stuck: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "saga", Name: "stuck_total", ConstLabels: labels,
			Help: "Instances that became stuck, committed: each was parked with its reason on the dead-letter topic.",
		}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "saga", Name: "transactions_total", ConstLabels: labels,
			Help: "Runner and router transactions ended, by result (committed, aborted, failed: the member rejoined).",
		}, []string{"result"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kastor", Subsystem: "saga", Name: "partitions_owned", ConstLabels: labels,
			Help: "Inputs partitions this process owns and has restored.",
		}),
		instances: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kastor", Subsystem: "saga", Name: "instances", ConstLabels: labels,
			Help: "Instances held by this process (done ones included).",
		}),
		restore: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kastor", Subsystem: "saga", Name: "restore_seconds", ConstLabels: labels,
			Help:    "Time to restore a partition's instances from the state topic.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		parts: newPartitionCollector(labels),
	}
	// Runners of one saga type in one process share the registered collectors (the
	// per-partition gauges then follow the session that started last).
	var errs [10]error
	m.inputs, errs[0] = promreg.Register(reg, m.inputs)
	m.routed, errs[1] = promreg.Register(reg, m.routed)
	m.commands, errs[2] = promreg.Register(reg, m.commands)
	m.fired, errs[3] = promreg.Register(reg, m.fired)
	m.txns, errs[4] = promreg.Register(reg, m.txns)
	m.owned, errs[5] = promreg.Register(reg, m.owned)
	m.instances, errs[6] = promreg.Register(reg, m.instances)
	m.restore, errs[7] = promreg.Register(reg, m.restore)
	m.parts, errs[8] = promreg.Register(reg, m.parts)
	m.stuck, errs[9] = promreg.Register(reg, m.stuck)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return m, nil
}

// partitionStats are the figures of one owned partition, counted at scrape time.
type partitionStats struct {
	partition int32
	// active, done, stuck and broken count the partition's instances by status (disjoint).
	active, done, stuck, broken int
	// deadlines counts the pending deadlines of the instances not done.
	deadlines int
	// position is the offset of the next input to apply (-1: none applied yet).
	position int64
}

// partitionSource returns the stats of the owned partitions and lists the inputs
// partitions' last stable offsets. The runner sets it (observe) when a session starts.
type partitionSource struct {
	stats func() []partitionStats
	ends  func(context.Context) (map[int32]int64, error)
}

// partitionCollector exports the per-partition gauges. They are counted when scraped,
// not maintained by the runner's loop: counting is one pass over the owned instances
// under the session's lock, done at most once a second (scrapes closer together get the
// last figures), and the lag costs one ListOffsets request per scrape.
type partitionCollector struct {
	instances, deadlines, lag *prometheus.Desc

	mu    sync.Mutex
	owner any // what src reads: the runner's session
	src   *partitionSource
	at    time.Time
	last  []partitionStats
}

func newPartitionCollector(labels prometheus.Labels) *partitionCollector {
	return &partitionCollector{
		instances: prometheus.NewDesc("kastor_saga_partition_instances",
			"Instances of an owned inputs partition by status: active, done, stuck (the state says so: saga.Progress.Stuck, or a StuckReason method), broken (the record does not decode: inputs are parked).",
			[]string{"partition", "status"}, labels),
		deadlines: prometheus.NewDesc("kastor_saga_deadlines_pending",
			"Pending deadlines of the instances of an owned partition that are not done.",
			[]string{"partition"}, labels),
		lag: prometheus.NewDesc("kastor_saga_inputs_lag",
			"Offsets of an owned inputs partition not applied yet: its last stable offset minus the runner's position (listed when scraped).",
			[]string{"partition"}, labels),
	}
}

// set makes the source of the figures owner's, made by src when owner is not the
// current one already.
func (c *partitionCollector) set(owner any, src func() *partitionSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owner == owner {
		return
	}
	c.owner, c.src, c.at, c.last = owner, src(), time.Time{}, nil
}

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.instances
	ch <- c.deadlines
	ch <- c.lag
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	// c.mu is not held while counting: the runner holds its session's lock when it
	// calls set, and counting takes that lock.
	c.mu.Lock()
	src, stats, fresh := c.src, c.last, time.Since(c.at) < time.Second
	c.mu.Unlock()
	if src == nil {
		return
	}
	if !fresh {
		stats = src.stats()
		c.mu.Lock()
		if c.src == src {
			c.last, c.at = stats, time.Now()
		}
		c.mu.Unlock()
	}
	var ends map[int32]int64
	if len(stats) > 0 && src.ends != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ends, _ = src.ends(ctx) // no lag exported when the cluster does not answer
		cancel()
	}
	for _, s := range stats {
		p := strconv.Itoa(int(s.partition))
		for status, n := range map[string]int{"active": s.active, "done": s.done, "stuck": s.stuck, "broken": s.broken} {
			ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(n), p, status)
		}
		ch <- prometheus.MustNewConstMetric(c.deadlines, prometheus.GaugeValue, float64(s.deadlines), p)
		if end, ok := ends[s.partition]; ok {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(max(end-max(s.position, 0), 0)), p)
		}
	}
}
