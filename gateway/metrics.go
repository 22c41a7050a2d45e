package gateway

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	commands  *prometheus.CounterVec
	events    prometheus.Counter
	latency   prometheus.Histogram
	batch     prometheus.Histogram
	recovery  prometheus.Histogram
	txns      *prometheus.CounterVec
	snapshots prometheus.Counter
	owned     prometheus.Gauge
	failed    prometheus.Gauge
	restores  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, aggregate string) (*metrics, error) {
	labels := prometheus.Labels{"aggregate": aggregate}
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "commands_total", ConstLabels: labels,
			Help: "Commands and outcome questions handled, by reply status (OK, DUPLICATE, REJECTED, CONFLICT, INVARIANT, UNDECODABLE, EXPIRED, NONE, UNAVAILABLE).",
		}, []string{"status"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "events_total", ConstLabels: labels,
			Help: "Events committed.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "command_seconds", ConstLabels: labels,
			Help:    "From a command's append to the commit of its result.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "batch_commands", ConstLabels: labels,
			Help:    "Commands per transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		recovery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "shard_recovery_seconds", ConstLabels: labels,
			Help:    "Time to restore a shard (snapshots, then the event tail).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "transactions_total", ConstLabels: labels,
			Help: "Transactions ended, by result (committed, aborted, unknown: the gateway rejoined and restored its shards).",
		}, []string{"result"}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "snapshots_total", ConstLabels: labels,
			Help: "Snapshots committed.",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "shards_owned", ConstLabels: labels,
			Help: "Shards (partitions) this instance owns and serves, restored.",
		}),
		failed: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "shards_failed", ConstLabels: labels,
			Help: "Shards this instance owns but could not restore: their commands are refused UNAVAILABLE.",
		}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "restores_total", ConstLabels: labels,
			Help: "Shard restores ended, by result (ok, failed).",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.commands, m.events, m.latency, m.batch, m.recovery, m.txns, m.snapshots, m.owned, m.failed, m.restores} {
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
