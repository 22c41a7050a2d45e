package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/logtest"
	"github.com/kastor-dev/kastor/kafkatest"
)

// TestFollowerDeathKeepsMembership kills a broker that is a follower of the group's
// __consumer_offsets partition (not its coordinator) while a gateway with the library's
// defaults commits under load on a 3-node cluster, and starts a second gateway right
// after, so that a rebalance asks the first to rejoin while the dead broker is still in
// the ISR (until the controller fences it, broker.session.timeout.ms, 9 s). The cluster
// and the victim are chosen so that only the offset commits and the transaction markers
// on __consumer_offsets wait for the dead node, not the gateways' own topics nor their
// transaction state. The rebalance then waits for the first gateway's JoinGroup, which
// franz-go sends only once its offset commit in flight has ended, and sends no heartbeat
// meanwhile: without the keep-alive (decision 40) the member was evicted (a CI run).
// Neither gateway may lose its membership; every shard must answer again within the
// election plus issue 14's 10 s; the events read back are contiguous.
func TestFollowerDeathKeepsMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test with a 3-node cluster")
	}
	// The transaction state log on two nodes only, so that a node can die that the
	// gateway's transaction coordinator does not wait for while its group coordinator does.
	c := kafkatest.Start(t, kafkatest.Nodes(3), kafkatest.BrokerConfig("transaction.state.log.replication.factor", "2"))
	if c.Backend() != kafkatest.Containers {
		t.Skip("needs a cluster whose nodes the harness controls")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The victim: a follower of the group's __consumer_offsets partition (replicated on all
	// three nodes), not its coordinator, and not a replica of the partition of
	// __transaction_state that holds the gateway's transactional ID. The gateway's own
	// topics live on the two other nodes. So its produces and its transaction's state
	// writes do not wait for the dead node, and its offset commits (and the transaction
	// markers on __consumer_offsets) do: the fault is the same on every run.
	var victim int32 = -1
	var instance, second string
	r := newRigCreate(t, c, 6, map[string]string{"min.insync.replicas": "2"}, func(r *rig, name string, cfgs map[string]string) {
		if victim < 0 {
			group := r.ns + ".bank.account.gateway"
			gc := coordinator(ctx, t, c, group, false)
			coordinator(ctx, t, c, group+"-probe", true) // creates __transaction_state
			var parts kadm.PartitionDetails
			for len(parts) == 0 { // until its creation reached the metadata
				md, err := c.Admin().Metadata(ctx, "__transaction_state")
				if err != nil {
					t.Fatal(err)
				}
				parts = md.Topics["__transaction_state"].Partitions
				if len(parts) == 0 {
					time.Sleep(200 * time.Millisecond)
				}
			}
			for i := 0; victim < 0; i++ {
				instance = fmt.Sprintf("follower-death-%d", i)
				p := javaHashPartition(group+"-"+instance, int32(len(parts)))
				for _, id := range c.NodeIDs() {
					if id != gc.NodeID && !slices.Contains(parts[p].Replicas, id) {
						victim = id
					}
				}
			}
			// The second instance's transaction state avoids the victim too, so that it
			// joins while the dead node is still in the ISR.
			for j := 0; second == ""; j++ {
				name := fmt.Sprintf("%s-b%d", instance, j)
				if p := javaHashPartition(group+"-"+name, int32(len(parts))); !slices.Contains(parts[p].Replicas, victim) {
					second = name
				}
			}
			t.Logf("group coordinator: node %d; instances %s and %s; node %d will be killed", gc.NodeID, instance, second, victim)
		}
		var on []int32
		for _, id := range c.NodeIDs() {
			if id != victim {
				on = append(on, id)
			}
		}
		createOn(t, c, name, 6, on, cfgs)
	})
	logger, logs := logtest.New()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the gateway's log:\n%s", logs.String())
		}
	})
	cfg := r.config(func(cfg *gateway.Config[account, command, kastor.Event]) {
		cfg.TransactionTimeout = 0 // the default
		cfg.InstanceID = instance
	})
	r.startOn(r.kastor(cluster.Logger(logger)), cfg)
	s := r.sender()
	accounts := r.accountPerPartition()
	r.awaitSpread(t, instance)
	openAll(t, ctx, s, accounts)
	l := r.runW6Load(t, s, accounts)
	all := make([]int32, 0, len(accounts))
	for p := range accounts {
		all = append(all, p)
	}
	l.answeredAfter(t, all, time.Now(), time.Minute)

	kill := time.Now()
	if err := c.KillNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	// A second instance joins while the follower is dead (a deploy, a restart): the
	// rebalance asks the first to rejoin while its transaction waits for the dead node.
	cfg2 := cfg
	cfg2.InstanceID = second
	r.startOn(r.kastor(cluster.Logger(logger)), cfg2)
	took := l.answeredAfter(t, all, kill, 60*time.Second)
	t.Logf("every shard answered again %v after the kill", took.Round(time.Millisecond))
	// The election: KRaft fences the dead node 9 s after its last heartbeat
	// (broker.session.timeout.ms) and moves its leaderships at once; 15 s covers a slow
	// controller on this shared machine. Issue 14 allows 10 s more.
	if limit := 25 * time.Second; took > limit {
		t.Errorf("the shards answered %v after the kill, want within %v (election plus 10 s)", took, limit)
	}
	// Commits went on past the time the member would have been evicted.
	l.answeredAfter(t, all, kill.Add(15*time.Second), time.Minute)
	if out := logs.String(); strings.Contains(out, "shards lost") {
		var lines []string
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "shards lost") || strings.Contains(line, "shards assigned") {
				lines = append(lines, line)
			}
		}
		t.Errorf("the gateway lost its membership when a follower died:\n%s", strings.Join(lines, "\n"))
	}
	if err := c.StartNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	l.halt()
	evs := r.eventsOf() // versions contiguous, no duplicate
	if n := len(evs); n != len(accounts) {
		t.Errorf("events of %d accounts, want %d", n, len(accounts))
	}
}

// createOn creates topic with its partitions' replicas on nodes (leaders spread over
// them) and waits for its leaders.
func createOn(t *testing.T, c *kafkatest.Cluster, topic string, partitions int32, nodes []int32, cfgs map[string]string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p := range partitions {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition = p
		for i := range nodes {
			a.Replicas = append(a.Replicas, nodes[(int(p)+i)%len(nodes)])
		}
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	for k, v := range cfgs {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, cfg)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := req.RequestWith(ctx, c.Client(t))
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("create %s on nodes %v: %v", topic, nodes, err)
	}
	// Already there: waits for its leaders.
	c.CreateTopic(t, topic, partitions, int16(len(nodes)), cfgs)
}

// coordinator returns the group (or, with txn, transaction) coordinator of key, waiting
// while its internal topic is being created (a new cluster creates it on the first
// lookup).
func coordinator(ctx context.Context, t *testing.T, c *kafkatest.Cluster, key string, txn bool) kadm.FindCoordinatorResponse {
	t.Helper()
	for {
		find := c.Admin().FindGroupCoordinators
		if txn {
			find = c.Admin().FindTxnCoordinators
		}
		gc, ok := find(ctx, key)[key]
		if ok && gc.Err == nil {
			return gc
		}
		if ok && !errors.Is(gc.Err, kerr.CoordinatorNotAvailable) || ctx.Err() != nil {
			t.Fatalf("coordinator of %s: %v", key, gc.Err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// javaHashPartition is how Kafka places a group or transactional ID on its internal
// topic's n partitions: abs(String.hashCode) mod n.
func javaHashPartition(key string, n int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(key)) {
		h = 31*h + int32(u)
	}
	if h == math.MinInt32 {
		return 0
	}
	if h < 0 {
		h = -h
	}
	return h % n
}
