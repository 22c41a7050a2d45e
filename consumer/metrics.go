package consumer

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kastor-dev/kastor/internal/promreg"
)

// metrics are a reader's Prometheus collectors. They exist (and count) whether or not a
// Registerer is set, so the code that updates them has no conditionals.
type metrics struct {
	events   *prometheus.CounterVec // by result: applied, filtered, parked
	parked   *prometheus.CounterVec // by reason: failed, undecodable, held
	failures *prometheus.CounterVec // by kind: apply, unavailable, dlq
	lag      *prometheus.GaugeVec   // by topic, partition
	latency  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, name string, version int) (*metrics, error) {
	labels := prometheus.Labels{"projection": name, "version": strconv.Itoa(version)}
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "consumer", Name: "events_total", ConstLabels: labels,
			Help: "Event records passed, by result (applied, filtered, parked).",
		}, []string{"result"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "consumer", Name: "parked_total", ConstLabels: labels,
			Help: "Records sent to the dead-letter topic, by reason (failed, undecodable, held).",
		}, []string{"reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "consumer", Name: "failures_total", ConstLabels: labels,
			Help: "Failed attempts, by kind (apply: an event failed; unavailable: the sink is down; dlq: the dead-letter topic could not be written).",
		}, []string{"kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kastor", Subsystem: "consumer", Name: "lag_records", ConstLabels: labels,
			Help: "Records between the reader's position and the partition's last stable offset, as of the last fetch.",
		}, []string{"topic", "partition"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kastor", Subsystem: "consumer", Name: "apply_seconds", ConstLabels: labels,
			Help:    "Time the sink took to apply a batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	if reg == nil {
		return m, nil
	}
	// A second reader of the same projection in one process (tests, a rebuild beside the
	// live version) shares the registered collectors instead of failing.
	var err error
	m.events, err = promreg.Register(reg, m.events)
	if err == nil {
		m.parked, err = promreg.Register(reg, m.parked)
	}
	if err == nil {
		m.failures, err = promreg.Register(reg, m.failures)
	}
	if err == nil {
		m.lag, err = promreg.Register(reg, m.lag)
	}
	if err == nil {
		m.latency, err = promreg.Register(reg, m.latency)
	}
	return m, err
}
