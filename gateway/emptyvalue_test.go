package gateway_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/wire"
)

// A zero-field event (bank.AccountClosed) is written with an empty value, never a null
// one: null is a tombstone to every Kafka tool, and a Java reader handing record.value()
// to Avro throws. Null values already written by older gateways still restore.
func TestZeroFieldEventIsAnEmptyValue(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 2)
		codecs, err := bank.NewCodecs(nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := gateway.Config[bank.State, bank.Command, kastor.Event]{
			Aggregate: bank.Aggregate,
			Commands:  codecs.Commands, Events: codecs.Events, States: codecs.States,
		}
		ctx := sndCtx(t, 2*time.Minute)
		s, err := gateway.NewSender(ctx, r.kc, gateway.SenderConfig[bank.Command]{
			AggregateType: bank.Aggregate.Type, Commands: codecs.Commands})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()

		// An account closed by an older gateway: its AccountClosed has a null value.
		open, err := codecs.Events.Encode(bank.Opened{Owner: "Old"})
		if err != nil {
			t.Fatal(err)
		}
		closed, err := codecs.Events.Encode(bank.Closed{})
		if err != nil {
			t.Fatal(err)
		}
		p := producer.PartitionFor([]byte("acct-old"), r.partitions)
		for i, enc := range []kastor.Encoded{open, closed} {
			md := kastor.Metadata{AggregateType: bank.Aggregate.Type, AggregateID: "acct-old", Version: int64(i) + 1,
				Type: enc.Type, Fingerprint: enc.Fingerprint, CommandID: "old-" + enc.Type}
			value := enc.Data
			if i == 1 {
				value = nil
			}
			r.produce(&kgo.Record{Topic: r.events, Partition: p, Key: []byte("acct-old"), Value: value, Headers: wire.Headers(&md)})
		}

		runGateway(t, r.kc, cfg)
		for _, cmd := range []bank.Command{bank.Open{Owner: "Ann"}, bank.Close{}} {
			if _, err := s.Send(ctx, kastor.NewCommand[bank.Command]("acct-new", cmd)); err != nil {
				t.Fatalf("%T: %v", cmd, err)
			}
		}
		// The old account's state was restored through its null-valued event.
		if _, err := s.Send(ctx, kastor.NewCommand[bank.Command]("acct-old", bank.Deposit{Amount: 1})); !errors.Is(err, kastor.ErrRejected) || !strings.Contains(err.Error(), bank.ErrNotOpen.Error()) {
			t.Fatalf("deposit to the account closed with a null value: %v, want %v", err, bank.ErrNotOpen)
		}

		var values [][]byte
		for _, rec := range r.rawEvents(t, "acct-new") {
			values = append(values, rec.Value)
		}
		if len(values) != 2 || len(values[0]) == 0 || values[1] == nil || len(values[1]) != 0 {
			t.Fatalf("values of acct-new's events: %q (nil: %v), want a non-empty AccountOpened and an empty, non-null AccountClosed",
				values, len(values) == 2 && values[1] == nil)
		}
	})
}

// runGateway runs a gateway until the test ends.
func runGateway[S, C, E any](t *testing.T, kc *cluster.Cluster, cfg gateway.Config[S, C, E]) {
	t.Helper()
	g, err := gateway.New(kc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})
}

// rawEvents reads an aggregate's event records as a plain read_committed client does.
func (r *rig) rawEvents(t *testing.T, aggID string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := producer.PartitionFor([]byte(aggID), r.partitions)
	ends, err := r.c.Admin().ListEndOffsets(ctx, r.events)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(r.events, p)
	cl := r.c.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.events: {p: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	defer cl.Close()
	var out []*kgo.Record
	for done := end.Offset == 0; !done; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading events partition %d to %d", p, end.Offset)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Offset+1 >= end.Offset {
				done = true
			}
			if !rec.Attrs.IsControl() && string(rec.Key) == aggID {
				out = append(out, rec)
			}
		})
	}
	return out
}
