package partition_test

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
	"github.com/kastor-dev/kastor/internal/partition"
)

func testLogger() (*slog.Logger, *logtest.Buffer) { return logtest.New() }

// produce writes n records to topic/partition.
func produce(t *testing.T, addrs []string, topic string, partition int32, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: partition, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReaderWaitsForTheBroker: a restore that starts while the broker is down (nothing
// listens at the seed address) reads the partition once the broker is back, and logs
// what it waited for.
func TestReaderWaitsForTheBroker(t *testing.T) {
	dir := t.TempDir()
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.DataDir(dir), kfake.SeedTopics(2, "events"))
	if err != nil {
		t.Fatal(err)
	}
	addr := c.ListenAddrs()[0]
	_, portText, _ := net.SplitHostPort(addr)
	var port int
	fmt.Sscan(portText, &port)
	produce(t, c.ListenAddrs(), "events", 1, 3)
	c.Close() // the broker goes down with its data on disk

	rd, err := partition.NewReader(base(t, []string{addr}))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	log, logs := testLogger()
	rd.Logger = log
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		got []string
		err error
	}
	done := make(chan result, 1)
	go func() {
		var got []string
		_, err := rd.ReadToEnd(ctx, "events", 1, 0, func(r *kgo.Record) error {
			got = append(got, string(r.Value))
			return nil
		})
		done <- result{got, err}
	}()
	select {
	case res := <-done:
		t.Fatalf("ReadToEnd returned while no broker was listening: %v", res.err)
	case <-time.After(time.Second):
	}
	c, err = kfake.NewCluster(kfake.Ports(port), kfake.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var res result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("ReadToEnd still waiting 30 s after the broker started\n%s", logs)
	}
	if res.err != nil || strings.Join(res.got, ",") != "0,1,2" {
		t.Fatalf("ReadToEnd after the broker started: %v, %v\n%s", res.got, res.err, logs)
	}
	out := logs.String()
	for _, want := range []string{
		`level=WARN msg="waiting for the end offsets of events; retrying"`,
		"connection refused",
		`level=INFO msg="done waiting for the end offsets of events"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	t.Logf("log:\n%s", out)
}

// TestReaderMissingTopicFailsFast: a topic that does not exist is not waited for.
func TestReaderMissingTopicFailsFast(t *testing.T) {
	c, err := kfake.NewCluster(kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd, err := partition.NewReader(base(t, c.ListenAddrs()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	log, logs := testLogger()
	rd.Logger = log
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = rd.Ends(ctx, "events", "snapshots")
	if !errors.Is(err, kerr.UnknownTopicOrPartition) || !strings.Contains(err.Error(), `end offsets of events, snapshots: topic "snapshots" does not exist`) {
		t.Fatalf("Ends with a missing topic: %v", err)
	}
	_, err = rd.Settled(ctx, "snapshots", 0)
	if !strings.Contains(err.Error(), `topic "snapshots" does not exist`) {
		t.Fatalf("Settled with a missing topic: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %v: the missing topic was waited for", d)
	}
	if strings.Contains(logs.String(), "waiting for") {
		t.Errorf("the missing topic was waited for:\n%s", logs)
	}
}

// TestReadLogsStalls: a read whose records do not come (the leader answers
// NOT_LEADER_OR_FOLLOWER, which the client retries by itself) logs the wait, then
// finishes once the leader serves again.
func TestReadLogsStalls(t *testing.T) {
	partition.SetStallAfter(t, 200*time.Millisecond)
	c, err := kfake.NewCluster(kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	produce(t, c.ListenAddrs(), "events", 0, 3)
	healed := time.Now().Add(time.Second)
	c.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		if time.Now().After(healed) {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		req := kr.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			t := kmsg.NewFetchResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewFetchResponseTopicPartition()
				p.Partition, p.ErrorCode = rp.Partition, kerr.NotLeaderForPartition.Code
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil, true
	})
	rd, err := partition.NewReader(base(t, c.ListenAddrs()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	log, logs := testLogger()
	rd.Logger = log
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := rd.ReadToEnd(ctx, "events", 0, 0, func(*kgo.Record) error { return nil })
	if err != nil || st.Records != 3 {
		t.Fatalf("ReadToEnd: %+v, %v\n%s", st, err, logs)
	}
	out := logs.String()
	for _, want := range []string{
		`level=WARN msg="waiting for events/0 to be readable; retrying" err="no record in 200ms at offset 0, reading to offset 3"`,
		`level=INFO msg="done waiting for events/0 to be readable"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	t.Logf("log:\n%s", out)
}

// TestReadWaitsOutABrokerClosingNewConnections: a read under way while its partition's
// leader restarts behind a proxy (Docker's published port, a Kubernetes service), which
// accepts connections and closes them before the broker answers, waits for the leader: an
// EOF on a connection's first read is not TLS or SASL misconfigured once the Reader has
// reached the cluster. The chaos suite caught a restore failing its shard on it.
func TestReadWaitsOutABrokerClosingNewConnections(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.MoveTopicPartition("events", 0, 1); err != nil {
		t.Fatal(err)
	}
	produce(t, c.ListenAddrs(), "events", 0, 3)
	var down atomic.Bool
	var closed atomic.Int32
	c.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if down.Load() && c.CurrentNode() == 1 {
			closed.Add(1)
			return nil, errors.New("the leader is down behind its proxy"), true
		}
		return nil, nil, false
	})

	rd, err := partition.NewReader(base(t, c.ListenAddrs()[:1])) // metadata from node 0 only
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	log, logs := testLogger()
	rd.Logger = log
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := rd.Ends(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	end, _ := partition.End(ends, "events", 0)

	down.Store(true)
	done := make(chan error, 1)
	var got []string
	go func() {
		_, err := rd.Read(ctx, "events", 0, 0, end, func(r *kgo.Record) error {
			got = append(got, string(r.Value))
			return nil
		})
		done <- err
	}()
	// Wait until the read has met the closed connections.
	for closed.Load() < 3 {
		select {
		case err := <-done:
			t.Fatalf("Read returned while the leader was down: %v\n%s", err, logs)
		case <-ctx.Done():
			t.Fatalf("the read never met the closed connections\n%s", logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Read returned while the leader was down: %v\n%s", err, logs)
	case <-time.After(500 * time.Millisecond):
	}
	down.Store(false)
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("Read still waiting 30 s after the leader came back\n%s", logs)
	}
	if err != nil || strings.Join(got, ",") != "0,1,2" {
		t.Fatalf("Read after the leader came back: %v, %v\n%s", got, err, logs)
	}
}
