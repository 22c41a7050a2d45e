package gateway

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kastor-dev/kastor/internal/promreg"
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
	stalls    prometheus.Counter
	departed  prometheus.Counter
	pending   prometheus.Gauge
	schedules *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, aggregate string) (*metrics, error) {
	labels := prometheus.Labels{"aggregate": aggregate}
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "commands_total", ConstLabels: labels,
			Help: "Commands and outcome questions handled, by reply status (OK, DUPLICATE, REJECTED, CONFLICT, INVARIANT, UNDECODABLE, EXPIRED, NONE, UNAVAILABLE, SCHEDULED, CANCELLED).",
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
		stalls: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "coordinator_stalls_total", ConstLabels: labels,
			Help: "Keep-alive heartbeats the group coordinator took longer than a third of the session timeout to answer (a coordinator moving, or its partition waiting for a dead follower).",
		}),
		departed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "dead_members_removed_total", ConstLabels: labels,
			Help: "Group members removed before a join because their process on this host had ended (their lock file unheld).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "schedules_pending", ConstLabels: labels,
			Help: "Scheduled commands pending in the shards this instance owns (decision 43).",
		}),
		schedules: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kastor", Subsystem: "gateway", Name: "schedules_total", ConstLabels: labels,
			Help: "Scheduled commands committed, by result (scheduled, cancelled, fired).",
		}, []string{"result"}),
	}
	// Gateways of one aggregate type in one process share the registered collectors.
	var errs [14]error
	m.commands, errs[0] = promreg.Register(reg, m.commands)
	m.events, errs[1] = promreg.Register(reg, m.events)
	m.latency, errs[2] = promreg.Register(reg, m.latency)
	m.batch, errs[3] = promreg.Register(reg, m.batch)
	m.recovery, errs[4] = promreg.Register(reg, m.recovery)
	m.txns, errs[5] = promreg.Register(reg, m.txns)
	m.snapshots, errs[6] = promreg.Register(reg, m.snapshots)
	m.owned, errs[7] = promreg.Register(reg, m.owned)
	m.failed, errs[8] = promreg.Register(reg, m.failed)
	m.restores, errs[9] = promreg.Register(reg, m.restores)
	m.stalls, errs[10] = promreg.Register(reg, m.stalls)
	m.departed, errs[11] = promreg.Register(reg, m.departed)
	m.pending, errs[12] = promreg.Register(reg, m.pending)
	m.schedules, errs[13] = promreg.Register(reg, m.schedules)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return m, nil
}
