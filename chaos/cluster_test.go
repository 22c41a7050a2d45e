package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/examples/bank/avro"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

// What the suite asks the cluster: the topic layout, who owns which shard, the zombie's
// producer, and the events topic read back.

// writeTopicFile writes the bank example's topic file for namespace ns (the layout of
// examples/kastor.yaml: 12 partitions, one aggregate type) with the given durability, and
// creates its topics. The gateways read the same file (-f).
func writeTopicFile(ctx context.Context, c *kafkatest.Cluster, dir, ns string, rf int16, minISR int) (string, *topics.Config, error) {
	path := filepath.Join(dir, "kastor.yaml")
	yaml := fmt.Sprintf(`# written by the chaos suite: the bank example's topics in a namespace of their own
namespace: %s
brokers: [%s]
defaults:
  partitions: 12
  replicationFactor: %d
  minInsyncReplicas: %d
aggregates:
  - type: %s
schemas:
  replicationFactor: %d
`, ns, strings.Join(c.Brokers(), ", "), rf, minISR, account.Type, rf)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		return "", nil, err
	}
	cfg, err := topics.Load(path)
	if err != nil {
		return "", nil, err
	}
	res, err := topics.Apply(ctx, c.Admin(), topics.NewPlan(cfg), topics.Options{Brokers: c.Brokers()})
	if errors.Is(err, topics.ErrDrift) && res != nil {
		// The schemas topic is shared by every namespace of a cluster: on a cluster that
		// other tests use it may have been created with other settings, which is harmless.
		for _, name := range res.Drifted() {
			if name != topics.SchemasTopic {
				return "", nil, err
			}
		}
		err = nil
	}
	return path, cfg, err
}

// owners returns the owner (instance ID) of each shard as the gateways' group has
// assigned them, once the group is stable with every shard assigned once and no two
// members of one instance (a restarted instance's dead predecessor still in the group).
// It polls: the group's state has no notification.
func owners(ctx context.Context, adm *kadm.Client, group, commands string, partitions int32, timeout time.Duration) (map[int32]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		m, err := describeOwners(ctx, adm, group, commands, partitions)
		if err == nil {
			return m, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return m, fmt.Errorf("group %s: %v", group, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func describeOwners(ctx context.Context, adm *kadm.Client, group, commands string, partitions int32) (map[int32]string, error) {
	groups, err := adm.DescribeGroups(ctx, group)
	if err == nil {
		err = groups.Error()
	}
	if err != nil {
		return nil, err
	}
	g := groups[group]
	out := map[int32]string{}
	seen := map[string]bool{}
	var dup error
	for _, m := range g.Members {
		instance := strings.TrimPrefix(m.ClientID, "kastor-gateway-")
		if seen[instance] {
			dup = fmt.Errorf("two members of instance %s", instance)
		}
		seen[instance] = true
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, t := range a.Topics {
			if t.Topic != commands {
				continue
			}
			for _, p := range t.Partitions {
				if prev, ok := out[p]; ok {
					dup = fmt.Errorf("shard %d assigned to %s and %s", p, prev, instance)
				}
				out[p] = instance
			}
		}
	}
	switch {
	case g.State != "Stable":
		return out, fmt.Errorf("state %s", g.State)
	case dup != nil:
		return out, dup
	case len(out) != int(partitions):
		return out, fmt.Errorf("%d of %d shards assigned", len(out), partitions)
	}
	return out, nil
}

// shardsOf returns the shards owners gives instance, sorted.
func shardsOf(owners map[int32]string, instance string) []int32 {
	var out []int32
	for p, o := range owners {
		if o == instance {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// describeProducer returns the transactional producer of txnID as its coordinator knows
// it: ID, epoch and the state of its transaction.
func describeProducer(ctx context.Context, adm *kadm.Client, txnID string) (int64, int16, string, error) {
	ds, err := adm.DescribeTransactions(ctx, txnID)
	if err != nil {
		return 0, 0, "", err
	}
	d, ok := ds[txnID]
	if !ok {
		return 0, 0, "", fmt.Errorf("transactional ID %s not described", txnID)
	}
	if d.Err != nil {
		return 0, 0, "", d.Err
	}
	return d.ProducerID, d.ProducerEpoch, d.State, nil
}

// awaitSettled waits until no transaction is open in topic: every partition's last
// stable offset has reached its high watermark, so a read_committed reader sees every
// transaction that will ever commit there. A killed gateway's transaction lasts until a
// new owner fences it or its timeout (10 s) and the broker's next scan abort it.
func awaitSettled(ctx context.Context, adm *kadm.Client, topic string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		hwm, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = hwm.Error()
		}
		var lso kadm.ListedOffsets
		if err == nil {
			lso, err = adm.ListCommittedOffsets(ctx, topic)
		}
		if err == nil {
			err = lso.Error()
		}
		if err == nil {
			last = nil
			hwm.Each(func(o kadm.ListedOffset) {
				if l, ok := lso.Lookup(topic, o.Partition); !ok || l.Offset != o.Offset {
					last = fmt.Errorf("partition %d: last stable offset %d, high watermark %d", o.Partition, l.Offset, o.Offset)
				}
			})
			if last == nil {
				return nil
			}
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still has an open transaction after %v: %v", topic, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readBack reads the events topic from the start with a plain read_committed client, to
// the end offsets it has once settled, and returns its events and transaction markers in
// log order (partition, then offset).
func readBack(ctx context.Context, c *kafkatest.Cluster, topic string, partitions int32, codecs *avro.Codecs) ([]event, []marker, error) {
	ends, err := c.Admin().ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	pending := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	for p := range partitions {
		if o, ok := ends.Lookup(topic, p); ok && o.Offset > 0 {
			pending[p] = o.Offset
			start[p] = kgo.NewOffset().AtStart()
		}
	}
	if len(pending) == 0 {
		return nil, nil, nil
	}
	cl, err := c.NewClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	byPartition := map[int32][]event{}
	markersBy := map[int32][]marker{}
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("reading %s back: %v; partitions not read to their end: %v", topic, ctx.Err(), pending)
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("fetching %s/%d: %w", topic, p, err) })
		if ferr != nil {
			return nil, nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := pending[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if r.Offset+1 >= end {
				delete(pending, r.Partition)
			}
			if r.Attrs.IsControl() {
				markersBy[r.Partition] = append(markersBy[r.Partition], marker{partition: r.Partition, offset: r.Offset,
					producerID: r.ProducerID, producerEpoch: r.ProducerEpoch, timestamp: r.Timestamp,
					commit: len(r.Key) >= 4 && r.Key[2] == 0 && r.Key[3] == 1})
				return
			}
			byPartition[r.Partition] = append(byPartition[r.Partition], decodeEvent(r, codecs))
		})
	}
	var evs []event
	var ms []marker
	for p := range partitions {
		evs = append(evs, byPartition[p]...)
		ms = append(ms, markersBy[p]...)
	}
	return evs, ms, nil
}

// decodeEvent turns a record into an event; one that does not decode keeps the reason as
// its kind, which no check accepts.
func decodeEvent(r *kgo.Record, codecs *avro.Codecs) event {
	e := event{partition: r.Partition, offset: r.Offset, key: string(r.Key), producerID: r.ProducerID,
		producerEpoch: r.ProducerEpoch, timestamp: r.Timestamp}
	md, err := wire.ParseHeaders(r.Headers)
	e.md = md
	if err != nil {
		e.kind = "undecodable headers: " + err.Error()
		return e
	}
	ev, err := codecs.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: r.Value})
	if err != nil {
		e.kind = "undecodable event: " + err.Error()
		return e
	}
	switch ev := ev.(type) {
	case account.Opened:
		e.kind = "opened"
	case account.Deposited:
		e.kind, e.amount = "deposited", ev.Amount
	case account.Withdrawn:
		e.kind, e.amount = "withdrawn", ev.Amount
	case account.Closed:
		e.kind = "closed"
	default:
		e.kind = fmt.Sprintf("unknown event %T", ev)
	}
	return e
}
