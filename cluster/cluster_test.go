package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/cluster"
)

func TestNewRefusesClientsThatWouldLeak(t *testing.T) {
	for name, opt := range map[string]kgo.Opt{
		"ConsumeTopics":          kgo.ConsumeTopics("t"),
		"ConsumerGroup":          kgo.ConsumerGroup("g"),
		"TransactionalID":        kgo.TransactionalID("x"),
		"InstanceID":             kgo.InstanceID("i"),
		"DisableIdempotentWrite": kgo.DisableIdempotentWrite(),
		"ConsumePartitions":      kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"t": {0: kgo.NewOffset()}}),
	} {
		cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), opt)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cluster.New(cl, "ns")
		cl.Close()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("a client with %s: New = %v, want an error naming it", name, err)
		}
	}
}

func TestNewChecksTheNamespace(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, ns := range []string{"", "a b", "a/b"} {
		if _, err := cluster.New(cl, ns); err == nil || !strings.Contains(err.Error(), "namespace") {
			t.Errorf("namespace %q: New = %v, want an error", ns, err)
		}
	}
	if _, err := cluster.New(nil, "ns"); err == nil {
		t.Error("New(nil) = nil error")
	}
}

// A client built with NewClient has the shared client's settings and its own.
func TestNewClientInheritsTheSharedSettings(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ClientID("shop-api"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c, err := cluster.New(cl, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Brokers(); len(got) != 1 || got[0] != kc.ListenAddrs()[0] {
		t.Errorf("Brokers = %v, want %v", got, kc.ListenAddrs())
	}
	own, err := c.NewClient(kgo.ConsumeTopics("t"), kgo.ClientID("shop-reader"))
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if id := own.OptValue(kgo.ClientID); id != "shop-reader" {
		t.Errorf("the override: client ID %v", id)
	}
	if got := own.OptValue(kgo.SeedBrokers).([]string); got[0] != kc.ListenAddrs()[0] {
		t.Errorf("the inherited seeds: %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := own.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if other, err := c.In("billing"); err != nil || other.Namespace() != "billing" || other.Client() != cl || c.Namespace() != "shop" {
		t.Errorf("In: %v, %v", other, err)
	}
}
