package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/wire"
)

func withReplyTopic(topic string) sendOpt {
	return func(r *kgo.Record) {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: wire.HeaderReplyTopic, Value: []byte(topic)})
	}
}

// A command that names a saga's inputs topic (wire.HeaderReplyTopic) gets its reply there,
// keyed by its reply-to (the saga instance) in that key's partition, in the command's
// transaction; a command naming any other topic is not executed.
func TestReplyGoesToTheSagaInputsTopic(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 2)
		inputs := r.ns + ".saga.bank.transfer.inputs"
		c.CreateTopic(t, inputs, 3, 1, nil)
		_, stop := r.start(r.config())
		defer stop()
		r.send("acct", "open", openAccount{})

		r.submit("acct", "d1", deposit{10}, withReplyTopic(inputs))
		recs := readCommitted(t, c, inputs, 1)
		rec := recs[0]
		rep, err := gateway.DecodeReplyRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if string(rec.Key) != callerID || rec.Partition != producer.PartitionFor([]byte(callerID), 3) ||
			rep.CommandID != "d1" || rep.Status != gateway.StatusOK || rep.From != 2 {
			t.Fatalf("reply %+v keyed %q in partition %d, want d1 OK at version 2 keyed %q in partition %d",
				rep, rec.Key, rec.Partition, callerID, producer.PartitionFor([]byte(callerID), 3))
		}

		// The events topic is no place for replies: refused, not executed, nothing written.
		r.submit("acct", "d2", deposit{5}, withReplyTopic(r.events))
		r.submit("acct", "d3", deposit{5}, withReplyTopic(r.ns+".saga.bank.missing.inputs"))
		if rep := r.send("acct", "d4", deposit{1}); rep.Status != gateway.StatusOK || rep.From != 3 {
			t.Fatalf("d4 after the refused commands: %+v, want OK at version 3 (d2 and d3 not executed)", rep)
		}
		if n := len(r.eventsOf()["acct"]); n != 3 {
			t.Fatalf("%d events of acct, want 3", n)
		}
	})
}

// readCommitted reads topic with read_committed isolation until it has n records.
func readCommitted(t *testing.T, c *kafkatest.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d records in %s, want %d", len(out), topic, n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
