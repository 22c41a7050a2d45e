package schema

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kastor-dev/kastor/internal/logtest"
	"github.com/kastor-dev/kastor/kafkatest"
)

func testLogger() (*slog.Logger, *logtest.Buffer) { return logtest.New() }

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestStoreWaitsForTheBroker: a service that starts while its broker is down (nothing
// listens at the seed address) publishes its schemas once the broker is up, and says in
// the log what it waited for (issue #14: it exited on "connection refused").
func TestStoreWaitsForTheBroker(t *testing.T) {
	port := freePort(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", port)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	log, logs := testLogger()
	store := Store{Client: cl, Logger: log}
	v1 := MustParse(openedV1)
	ctx := testContext(t)

	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- store.Publish(ctx, NewRegistry(), v1) }()
	select {
	case err := <-done:
		t.Fatalf("Publish returned while no broker was listening: %v", err)
	case <-time.After(time.Second):
	}
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(1, Topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish after the broker started: %v\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Publish still waiting 30 s after the broker started\n%s", logs)
	}
	t.Logf("published after %v; log:\n%s", time.Since(start).Round(time.Millisecond), logs)
	out := logs.String()
	for _, want := range []string{
		`level=WARN msg="waiting for _kastor.schemas to be readable; retrying"`,
		"connection refused",
		`level=INFO msg="done waiting for _kastor.schemas to be readable"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "level=WARN"); n > 2 {
		t.Errorf("%d warnings for a wait of a second: want one every few seconds at most:\n%s", n, out)
	}
	reg := NewRegistry()
	if err := store.Load(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.Schema(v1.Fingerprint()); !ok {
		t.Error("the schema published after the wait is not in the topic")
	}
}

// TestStoreWaitsOutLeaderErrors: answers a broker gives while a leader is elected or
// moves (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, FENCED_LEADER_EPOCH) are retried.
func TestStoreWaitsOutLeaderErrors(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(1, Topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testContext(t)
	v1 := MustParse(openedV1)
	if err := Publish(ctx, cl, nil, v1); err != nil {
		t.Fatal(err)
	}

	var injected atomic.Int32
	fail := func(n int32, key kmsg.Key, answer func(kmsg.Request) kmsg.Response) {
		left := n
		c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			if left == 0 {
				return nil, nil, false
			}
			left--
			c.KeepControl()
			injected.Add(1)
			return answer(req), nil, true
		})
	}
	fail(2, kmsg.Metadata, func(kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.MetadataRequest)
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		for _, rt := range req.Topics {
			t := kmsg.NewMetadataResponseTopic()
			t.Topic = rt.Topic
			t.ErrorCode = kerr.LeaderNotAvailable.Code
			resp.Topics = append(resp.Topics, t)
		}
		return resp
	})
	fail(2, kmsg.ListOffsets, func(kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.ListOffsetsRequest)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.Topics {
			t := kmsg.NewListOffsetsResponseTopic()
			t.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				p := kmsg.NewListOffsetsResponseTopicPartition()
				p.Partition, p.ErrorCode = rp.Partition, kerr.NotLeaderForPartition.Code
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp
	})
	fail(1, kmsg.Fetch, func(kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			t := kmsg.NewFetchResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewFetchResponseTopicPartition()
				p.Partition, p.ErrorCode = rp.Partition, kerr.FencedLeaderEpoch.Code
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp
	})

	log, logs := testLogger()
	reg := NewRegistry()
	if err := (Store{Client: cl, Logger: log}).Load(ctx, reg); err != nil {
		t.Fatalf("Load: %v\n%s", err, logs)
	}
	if _, ok := reg.Schema(v1.Fingerprint()); !ok {
		t.Error("the schema is missing after the retries")
	}
	if injected.Load() == 0 {
		t.Fatal("no error was injected: the test is moot")
	}
	if !strings.Contains(logs.String(), "waiting for _kastor.schemas to be readable; retrying") {
		t.Errorf("the wait is not logged:\n%s", logs)
	}
	t.Logf("%d errors injected; log:\n%s", injected.Load(), logs)
}

// TestStoreMissingTopicFailsFast: a topic that does not exist is not waited for, whatever
// time ctx leaves; the error names the topic.
func TestStoreMissingTopicFailsFast(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	cl := c.Client(t)
	log, logs := testLogger()
	store := Store{Client: cl, Topic: "orders.schemas", Logger: log}
	start := time.Now()
	err := store.Load(testContext(t), NewRegistry())
	var nt *NoTopicError
	if !errors.As(err, &nt) || nt.Topic != "orders.schemas" {
		t.Fatalf("Load without the topic: %v", err)
	}
	wantErrContains(t, err, `"orders.schemas" does not exist`)
	err = store.Publish(testContext(t), nil, MustParse(openedV1))
	if !errors.As(err, &nt) {
		t.Fatalf("Publish without the topic: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %v: a missing topic was waited for", d)
	}
	if strings.Contains(logs.String(), "waiting for") {
		t.Errorf("a missing topic was waited for:\n%s", logs)
	}
}

// TestStoreWaitsForTheLeaderKafka: on a 3-node Apache Kafka cluster, a schemas topic
// whose only replica is on a killed broker has no leader; a service starting then waits,
// logging it, and publishes once the broker is back (issue #14).
func TestStoreWaitsForTheLeaderKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := kafkatest.Start(t, kafkatest.Nodes(3))
	if c.Backend() != kafkatest.Containers {
		t.Skip("needs a cluster whose nodes the harness controls")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	topic := kafkatest.TopicName(t)
	c.CreateTopic(t, topic, 1, 1, map[string]string{"cleanup.policy": "compact"})
	log, logs := testLogger()
	store := Store{Client: c.Client(t), Topic: topic, Logger: log}
	ns := testNamespace(t)
	v1 := inNamespace(ns, openedV1)
	if err := store.Publish(ctx, nil, v1); err != nil {
		t.Fatal(err)
	}
	leader, err := c.LeaderOf(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.KillNode(ctx, leader); err != nil {
		t.Fatal(err)
	}
	other := MustParse(`{"type":"record","name":"` + ns + `.Closed","fields":[{"name":"account_id","type":"string"}]}`)
	reg := NewRegistry()
	done := make(chan error, 1)
	go func() { done <- store.Publish(ctx, reg, other) }()
	select {
	case err := <-done:
		t.Fatalf("Publish returned while the only replica of %s was down: %v", topic, err)
	case <-time.After(5 * time.Second):
	}
	if err := c.StartNode(ctx, leader); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Publish after node %d came back: %v\n%s", leader, err, logs)
	}
	for _, fp := range []Fingerprint{v1.Fingerprint(), other.Fingerprint()} {
		if _, ok := reg.Schema(fp); !ok {
			t.Errorf("schema %s missing from the registry", fp)
		}
	}
	out := logs.String()
	for _, want := range []string{
		`level=WARN msg="waiting for ` + topic + ` to be readable; retrying"`,
		`level=INFO msg="done waiting for ` + topic + ` to be readable"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	t.Logf("node %d killed and restarted; log:\n%s", leader, out)
}
