package producer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
)

var realKafka = kafkatest.NewShared()

func TestMain(m *testing.M) { kafkatest.Main(m, realKafka) }

func newAppender(t *testing.T, c *kafkatest.Cluster, opts ...producer.Option) *producer.Appender {
	t.Helper()
	a, err := producer.New(c.Client(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestAppendRoutesByMurmur2(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		topic := kafkatest.TopicName(t)
		c.CreateTopic(t, topic, 7, 1, nil)
		a := newAppender(t, c)
		var recs []*kgo.Record
		for i := range 200 {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("agg-%d", i)), Value: []byte("v")})
		}
		if err := a.Append(ctx(t), recs...); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range readCommitted(t, c, topic, 200) {
			if want := producer.PartitionFor(r.Key, 7); r.Partition != want {
				t.Fatalf("key %s in partition %d, want %d", r.Key, r.Partition, want)
			}
			n++
		}
		if n != 200 {
			t.Fatalf("read %d records", n)
		}
	})
}

func TestAppendErrors(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	a := newAppender(t, c)
	err := a.Append(ctx(t), &kgo.Record{Topic: "nope", Key: []byte("k")})
	if !errors.Is(err, producer.ErrUnknownTopic) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("missing topic: %v", err)
	}
	topic := kafkatest.TopicName(t)
	c.CreateTopic(t, topic, 1, 1, nil)
	if err := a.Append(ctx(t), &kgo.Record{Topic: topic}); !errors.Is(err, producer.ErrUnkeyed) {
		t.Fatalf("unkeyed record: %v", err)
	}
}

func TestNewRefusesWeakerGuarantees(t *testing.T) {
	// franz-go only allows acks other than all without idempotence, so a base with acks=1
	// also disables it.
	for name, opts := range map[string][]kgo.Opt{
		"no idempotence":        {kgo.DisableIdempotentWrite()},
		"acks=1":                {kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck())},
		"inherited transaction": {kgo.TransactionalID("not-mine")},
	} {
		base, err := kgo.NewClient(append(opts, kgo.SeedBrokers("127.0.0.1:1"))...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a, err := producer.New(base); err == nil {
			a.Close()
			t.Errorf("%s: accepted", name)
		}
		base.Close()
	}
}

func TestNewOverridesBaseOptions(t *testing.T) {
	base, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.ClientID("shared"), kgo.ProducerLinger(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	a, err := producer.New(base)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cl := a.Client()
	if got := cl.OptValue(kgo.ClientID); got != "shared" {
		t.Errorf("client ID %v, want the base's", got)
	}
	if got := cl.OptValue(kgo.RequiredAcks); got != kgo.AllISRAcks() {
		t.Errorf("acks %v, want all", got)
	}
	if got := cl.OptValue(kgo.ProducerLinger); got != 5*time.Millisecond {
		t.Errorf("linger %v, want the appender's 5ms", got)
	}
}

func readCommitted(t *testing.T, c *kafkatest.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx(t))
		if err := fs.Err0(); err != nil {
			t.Fatalf("reading %s: %v (have %d of %d records)", topic, err, len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
