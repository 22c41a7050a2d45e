package topics_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/topics"
)

func testPlan(t *testing.T, ns string) topics.Plan {
	t.Helper()
	cfg, err := topics.Parse([]byte(fmt.Sprintf(`namespace: %s
defaults: {partitions: 3, replicationFactor: 1, minInsyncReplicas: 1, commandsRetention: 2d}
aggregates:
  - type: bank.account
  - type: shop.order
    partitions: 2
sagas:
  - type: bank.transfer
    partitions: 4
    inputsRetention: 1d
`, ns)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return topics.NewPlan(cfg)
}

func connect(t *testing.T, c *kafkatest.Cluster) *kadm.Client {
	t.Helper()
	adm, err := dial(t, c.Brokers(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	return adm
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// checkOnCluster reads every topic of the plan back with a separate admin client.
func checkOnCluster(t *testing.T, c *kafkatest.Cluster, plan topics.Plan) {
	t.Helper()
	details, err := c.Admin().ListTopics(ctx(t), plan.Names()...)
	if err != nil {
		t.Fatal(err)
	}
	rcs, err := c.Admin().DescribeTopicConfigs(ctx(t), plan.Names()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range plan.Topics {
		td := details[spec.Name]
		if td.Err != nil {
			t.Errorf("%s: %v", spec.Name, td.Err)
			continue
		}
		if got := len(td.Partitions); got != int(spec.Partitions) {
			t.Errorf("%s: %d partitions, want %d", spec.Name, got, spec.Partitions)
		}
		rc, err := rcs.On(spec.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, cfg := range rc.Configs {
			got[cfg.Key] = cfg.MaybeValue()
		}
		for k, v := range spec.Configs {
			if got[k] != v {
				t.Errorf("%s: %s=%q, want %q", spec.Name, k, got[k], v)
			}
		}
	}
}

func TestApplyCreatesThenIsIdempotent(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	adm := connect(t, c)
	plan := testPlan(t, "ns1")

	res, err := topics.Apply(ctx(t), adm, plan, topics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Count(topics.ActionCreated); n != len(plan.Topics) {
		t.Fatalf("created %d of %d topics: %+v", n, len(plan.Topics), res.Topics)
	}
	checkOnCluster(t, c, plan)
	if got := plan.Topics[1]; got.Name != "ns1.bank.account.events" || got.Configs["retention.ms"] != "-1" {
		t.Fatalf("unexpected plan order: %+v", got)
	}

	res, err = topics.Apply(ctx(t), adm, plan, topics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range res.Topics {
		if tr.Action != topics.ActionUnchanged || tr.State != topics.StateOK {
			t.Errorf("second run: %s %s %s %v", tr.Name(), tr.Action, tr.State, tr.Differences)
		}
	}
}

// Several appliers at once (deploys of several services) must all succeed and create each
// topic exactly once; the losers see TOPIC_ALREADY_EXISTS and re-check the topic.
func TestApplyConcurrentAppliers(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	plan := testPlan(t, "race")
	const n = 8
	results := make([]*topics.Result, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		adm := connect(t, c)
		wg.Go(func() {
			<-start
			results[i], errs[i] = topics.Apply(ctx(t), adm, plan, topics.Options{})
		})
	}
	close(start)
	wg.Wait()
	created := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("applier %d: %v", i, errs[i])
		}
		for _, tr := range results[i].Topics {
			switch tr.Action {
			case topics.ActionCreated:
				created[tr.Name()]++
			case topics.ActionUnchanged:
			default:
				t.Errorf("applier %d: %s: %s %s", i, tr.Name(), tr.Action, tr.Note)
			}
		}
	}
	for _, name := range plan.Names() {
		if created[name] != 1 {
			t.Errorf("%s reported created %d times", name, created[name])
		}
	}
	checkOnCluster(t, c, plan)
}

func TestApplyLeavesDriftAlone(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	adm := connect(t, c)
	plan := testPlan(t, "drift")
	events, snapshots := "drift.bank.account.events", "drift.bank.account.snapshots"
	c.CreateTopic(t, events, 5, 1, map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "1"})
	c.CreateTopic(t, snapshots, 3, 1, map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1"})

	res, err := topics.Apply(ctx(t), adm, plan, topics.Options{})
	if !errors.Is(err, topics.ErrDrift) {
		t.Fatalf("error %v, want ErrDrift", err)
	}
	var de *topics.DriftError
	if !errors.As(err, &de) || strings.Join(de.Topics, ",") != events+","+snapshots {
		t.Fatalf("drift error %v", err)
	}
	for _, tr := range res.Topics {
		switch tr.Name() {
		case events:
			if tr.Action != topics.ActionDrift || len(tr.Differences) != 1 || tr.Differences[0].Field != "partitions" ||
				!strings.Contains(tr.Differences[0].Note, "remaps aggregate IDs") {
				t.Errorf("events: %+v", tr)
			}
		case snapshots:
			if tr.Action != topics.ActionDrift || len(tr.Differences) != 1 || tr.Differences[0].Field != "cleanup.policy" ||
				tr.Differences[0].Have != "delete" {
				t.Errorf("snapshots: %+v", tr)
			}
		default:
			if tr.Action != topics.ActionCreated {
				t.Errorf("%s: %s", tr.Name(), tr.Action)
			}
		}
	}
	details, err := c.Admin().ListTopics(ctx(t), events, snapshots)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details[events].Partitions); n != 5 {
		t.Errorf("events now has %d partitions", n)
	}
	rcs, err := c.Admin().DescribeTopicConfigs(ctx(t), snapshots)
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On(snapshots, nil)
	for _, cfg := range rc.Configs {
		if cfg.Key == "cleanup.policy" && cfg.MaybeValue() != "delete" {
			t.Errorf("snapshots cleanup.policy changed to %s", cfg.MaybeValue())
		}
	}
}

// The saga topics are created like the others: inputs and state with the saga's partition
// count, the dead-letter topic with one; a saga topic with another partition count is
// drift, refused with a note about saga instances, and left as it is.
func TestApplySagaTopics(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	adm := connect(t, c)
	plan := testPlan(t, "sg")
	inputs := topics.SagaTopicName("sg", "bank.transfer", topics.RoleSagaInputs)
	state := topics.SagaTopicName("sg", "bank.transfer", topics.RoleSagaState)
	dlq := topics.SagaTopicName("sg", "bank.transfer", topics.RoleSagaDLQ)
	want := map[string]int32{inputs: 4, state: 4, dlq: 1}
	for _, spec := range plan.Topics {
		if spec.Saga == "" {
			continue
		}
		if n, ok := want[spec.Name]; !ok || spec.Partitions != n || spec.Saga != "bank.transfer" {
			t.Errorf("planned %+v", spec)
		}
		delete(want, spec.Name)
	}
	if len(want) != 0 {
		t.Fatalf("not planned: %v", want)
	}
	// state exists with 2 partitions instead of 4, as if created by an older file.
	c.CreateTopic(t, state, 2, 1, map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1"})

	res, err := topics.Apply(ctx(t), adm, plan, topics.Options{})
	var de *topics.DriftError
	if !errors.As(err, &de) || strings.Join(de.Topics, ",") != state {
		t.Fatalf("error %v, want drift of %s", err, state)
	}
	for _, tr := range res.Topics {
		switch tr.Name() {
		case state:
			if tr.Action != topics.ActionDrift || len(tr.Differences) != 1 || tr.Differences[0].Field != "partitions" ||
				tr.Differences[0].Want != "4" || tr.Differences[0].Have != "2" ||
				!strings.Contains(tr.Differences[0].Note, "remaps saga instance IDs") {
				t.Errorf("state: %+v", tr)
			}
		default:
			if tr.Action != topics.ActionCreated {
				t.Errorf("%s: %s %s", tr.Name(), tr.Action, tr.Note)
			}
		}
	}
	details, err := c.Admin().ListTopics(ctx(t), state)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details[state].Partitions); n != 2 {
		t.Errorf("state now has %d partitions", n)
	}
	// Everything but the drifted topic is on the cluster as planned.
	var rest topics.Plan
	for _, spec := range plan.Topics {
		if spec.Name != state {
			rest.Topics = append(rest.Topics, spec)
		}
	}
	checkOnCluster(t, c, rest)
}

func TestApplyDryRun(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	adm := connect(t, c)
	plan := testPlan(t, "dry")
	res, err := topics.Apply(ctx(t), adm, plan, topics.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Count(topics.ActionWouldCreate); n != len(plan.Topics) || !res.DryRun {
		t.Fatalf("would create %d: %+v", n, res)
	}
	details, err := c.Admin().ListTopics(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if names := details.Names(); len(names) != 0 {
		t.Fatalf("dry run created %v", names)
	}
}

// A replication factor the cluster cannot host fails with the broker count in the message,
// in a dry run too (the cluster validates the creation).
func TestApplyReplicationFactorTooLarge(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	adm := connect(t, c)
	cfg, err := topics.Parse([]byte("namespace: big\naggregates: [{type: a}]\n"), "k.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		res, err := topics.Apply(ctx(t), adm, topics.NewPlan(cfg), topics.Options{DryRun: dry})
		if err == nil || !strings.Contains(err.Error(), "the cluster has 1 broker(s)") ||
			strings.Count(err.Error(), "INVALID_REPLICATION_FACTOR") != 1 {
			t.Fatalf("dry run %v: error %v", dry, err)
		}
		if n := res.Count(topics.ActionFailed); n != 6 {
			t.Errorf("dry run %v: %d failed", dry, n)
		}
	}
}

func TestReachableRefused(t *testing.T) {
	start := time.Now()
	_, err := dial(t, []string{"127.0.0.1:1"}, 2*time.Second)
	if !errors.Is(err, topics.ErrUnreachable) {
		t.Fatalf("error %v, want ErrUnreachable", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "cannot reach Kafka at 127.0.0.1:1: ") || !strings.Contains(msg, "connection refused") ||
		!strings.HasSuffix(msg, "(timeout 2s)") {
		t.Errorf("message %q", msg)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %v", d)
	}
}

// A broker that accepts connections but never answers must not hang the caller.
func TestReachableSilentBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-done
		for _, conn := range conns {
			conn.Close()
		}
	}()
	start := time.Now()
	_, err = dial(t, []string{ln.Addr().String()}, time.Second)
	if !errors.Is(err, topics.ErrUnreachable) {
		t.Fatalf("error %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "cannot reach Kafka at "+ln.Addr().String()) || !strings.Contains(err.Error(), "(timeout 1s)") {
		t.Errorf("message %q", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v with a 1s timeout", d)
	}
}

// dial returns an admin client over a new client of brokers once Reachable says a broker
// answered.
func dial(t *testing.T, brokers []string, timeout time.Duration) (*kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	t.Cleanup(cl.Close)
	if err := topics.Reachable(context.Background(), cl, timeout); err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}
