package runner

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	inputs    *prometheus.CounterVec
	routed    *prometheus.CounterVec
	commands  prometheus.Counter
	fired     prometheus.Counter
	txns      *prometheus.CounterVec
	owned     prometheus.Gauge
	instances prometheus.Gauge
	restore   prometheus.Histogram
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
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.inputs, m.routed, m.commands, m.fired, m.txns, m.owned, m.instances, m.restore} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
	}
	return m, nil
}
