package gateway_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
)

// A foreign record in an events partition (plain JSON, no kastor headers: what a
// misconfigured producer wrote) stops that shard loudly: an error log naming the topic,
// partition and offset, a metric, and its commands refused UNAVAILABLE; the other shards
// keep serving.
func TestUnrestorableShardIsRefusedLoudly(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 3)
		const bad, good = "acct-bad", "acct-good"
		pb, pg := producer.PartitionFor([]byte(bad), r.partitions), producer.PartitionFor([]byte(good), r.partitions)
		if pb == pg {
			t.Fatal("test accounts share a partition")
		}
		r.produce(&kgo.Record{Topic: r.events, Partition: pb, Key: []byte("someone"), Value: []byte(`{"json":"not kastor"}`)})

		reg := prometheus.NewRegistry()
		var log sndLog
		r.startOn(r.kastor(cluster.Registerer(reg), cluster.Logger(slog.New(slog.NewTextHandler(&log, nil)))), r.config())
		s := r.sender()
		ctx := sndCtx(t, 2*time.Minute)
		if _, err := s.Send(ctx, cmdWithID[command](good, "g1", openAccount{})); err != nil {
			t.Fatalf("the healthy shard: %v", err)
		}
		_, err := s.Send(ctx, cmdWithID[command](bad, "b1", openAccount{}))
		var ue *kastor.UnavailableError
		if !errors.As(err, &ue) || !errors.Is(err, kastor.ErrUnavailable) || ue.CommandID != "b1" {
			t.Fatalf("a command for the broken shard: %v, want a *kastor.UnavailableError", err)
		}
		if want := r.events + "/" + itoa(pb) + "@0"; !strings.Contains(ue.Reason, want) {
			t.Errorf("the reason %q does not locate the record (%s)", ue.Reason, want)
		}
		if _, err := s.Outcome(ctx, bad, "b1"); !errors.Is(err, kastor.ErrUnavailable) {
			t.Errorf("an outcome question for the broken shard: %v", err)
		}
		if l := log.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "cannot restore shard") || !strings.Contains(l, "partition="+itoa(pb)) {
			t.Errorf("no error log naming the shard:\n%s", l)
		}
		if v := gaugeValue(t, reg, "kastor_gateway_shards_failed"); v != 1 {
			t.Errorf("kastor_gateway_shards_failed = %v, want 1", v)
		}
		if v := gaugeValue(t, reg, "kastor_gateway_shards_owned"); v != 2 {
			t.Errorf("kastor_gateway_shards_owned = %v, want 2", v)
		}
		if nb, ng := len(r.rawEvents(t, bad)), len(r.rawEvents(t, good)); nb != 0 || ng != 1 {
			t.Fatalf("events: %d for the broken shard's account, %d for the healthy one; want 0 and 1", nb, ng)
		}
	})
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A shard whose restore fails for a reason that is not its data (here the cluster refuses
// a request) refuses its commands UNAVAILABLE meanwhile, which is not an outcome: once a
// retry restores the shard, the same command ID executes, once.
func TestFailedRestoreIsRetried(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 3)
		const bad, good = "acct-bad", "acct-good"
		pb := producer.PartitionFor([]byte(bad), r.partitions)
		reg := prometheus.NewRegistry()
		var log sndLog
		g, err := gateway.New(r.kastor(cluster.Registerer(reg), cluster.Logger(slog.New(slog.NewTextHandler(&log, nil)))), r.config())
		if err != nil {
			t.Fatal(err)
		}
		var refuse atomic.Bool
		refuse.Store(true)
		g.FailRestores(func(p int32) error {
			if p == pb && refuse.Load() {
				return fmt.Errorf("listing offsets: %w", kerr.TopicAuthorizationFailed)
			}
			return nil
		})
		r.run(g)
		s := r.sender()
		ctx := sndCtx(t, 2*time.Minute)
		if _, err := s.Send(ctx, cmdWithID[command](good, "g1", openAccount{})); err != nil {
			t.Fatalf("the healthy shard: %v", err)
		}
		_, err = s.Send(ctx, cmdWithID[command](bad, "b1", openAccount{}))
		var ue *kastor.UnavailableError
		if !errors.As(err, &ue) || !strings.Contains(ue.Reason, "TOPIC_AUTHORIZATION_FAILED") {
			t.Fatalf("a command for the failed shard: %v, want a *kastor.UnavailableError with the reason", err)
		}
		if v := gaugeValue(t, reg, "kastor_gateway_shards_failed"); v != 1 {
			t.Errorf("kastor_gateway_shards_failed = %v, want 1", v)
		}

		refuse.Store(false)
		var res gateway.Result
		for {
			res, err = s.Send(ctx, cmdWithID[command](bad, "b1", openAccount{}))
			if !errors.Is(err, kastor.ErrUnavailable) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the shard is still failed: %v\n%s", err, log.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
		if err != nil || res.From != 1 || res.To != 1 {
			t.Fatalf("the command once the shard is restored: %+v, %v", res, err)
		}
		if l := log.String(); !strings.Contains(l, "failed shard restored") || !strings.Contains(l, "while the restore is tried again") {
			t.Errorf("the log does not tell the failure and the recovery:\n%s", l)
		}
		if f, o := gaugeValue(t, reg, "kastor_gateway_shards_failed"), gaugeValue(t, reg, "kastor_gateway_shards_owned"); f != 0 || o != 3 {
			t.Errorf("kastor_gateway_shards_failed = %v, owned = %v; want 0 and 3", f, o)
		}
		if n := len(r.rawEvents(t, bad)); n != 1 {
			t.Fatalf("%d events for the account, want 1", n)
		}
	})
}
