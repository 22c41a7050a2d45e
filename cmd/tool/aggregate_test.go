package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	ks "github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/wire"
)

// TestAggregateEvents writes Avro events as a service would (schemas published, headers
// set) and reads them back with `kastor aggregate events`, which has no application code.
func TestAggregateEvents(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ns := namespace(t)
		file := writeFile(t, oneNodeYAML(ns))
		if r := kastor(t, "topics", "apply", "-f", file, "--brokers", strings.Join(c.Brokers(), ",")); r.code != exitOK && r.code != exitDrift {
			t.Fatalf("topics apply: %d", r.code)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		codecs, err := bank.NewCodecs(nil)
		if err != nil {
			t.Fatal(err)
		}
		cl := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := schema.Publish(ctx, cl, codecs.Registry, bank.Schemas()...); err != nil {
			t.Fatal(err)
		}
		events := []ks.Event{bank.Opened{Owner: "Ada"}, bank.Deposited{Amount: 42}, bank.Withdrawn{Amount: 2}}
		trace := ks.NewTrace()
		for i, ev := range events {
			for _, id := range []string{"acct-ada", "acct-other"} {
				enc, err := codecs.Events.Encode(ev)
				if err != nil {
					t.Fatal(err)
				}
				md := ks.Metadata{AggregateType: bank.Type, AggregateID: id, Version: int64(i + 1), Type: enc.Type, Fingerprint: enc.Fingerprint, CommandID: "c" + string(rune('1'+i))}
				if i == 2 {
					md.Trace = trace
				}
				hs := wire.Headers(&md)
				rec := &kgo.Record{Topic: ns + ".bank.account.events", Partition: producer.PartitionFor([]byte(id), 3), Key: []byte(id), Value: enc.Data, Headers: hs}
				if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
		}
		brokers := strings.Join(c.Brokers(), ",")
		r := kastor(t, "aggregate", "events", "bank.account", "acct-ada", "-f", file, "--brokers", brokers, "-o", "json")
		if r.code != exitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var got []storedEvent
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatal(err)
		}
		compact := func(m json.RawMessage) string {
			var b bytes.Buffer
			_ = json.Compact(&b, m)
			return b.String()
		}
		if len(got) != 3 || got[0].Type != "bank.AccountOpened" || compact(got[0].Event) != `{"owner":"Ada"}` ||
			got[1].Version != 2 || compact(got[1].Event) != `{"amount":42}` || got[2].CommandID != "c3" ||
			got[1].TraceParent != "" || got[2].TraceParent != trace.TraceParent() {
			t.Fatalf("events of acct-ada: %+v", got)
		}
		r = kastor(t, "aggregate", "events", "bank.account", "acct-ada", "-f", file, "--brokers", brokers)
		if r.code != exitOK || !strings.Contains(r.stdout, "bank.MoneyDeposited") || !strings.Contains(r.stdout, `{"amount":42}`) {
			t.Fatalf("text output: %d %q", r.code, r.stdout)
		}
		r = kastor(t, "aggregate", "events", "no.such", "x", "-f", file, "--brokers", brokers)
		if r.code != exitError || !strings.Contains(r.stderr, "no.such.events does not exist") {
			t.Fatalf("unknown type: %d %q", r.code, r.stderr)
		}
		r = kastor(t, "aggregate", "events", "bank.account")
		if r.code != exitUsage {
			t.Fatalf("one argument: exit %d", r.code)
		}
	})
}

// TestAggregateSchedules writes the schedules topic as a gateway does (a pending schedule,
// one fired, i.e. tombstoned, another aggregate's) and reads it back with `kastor
// aggregate schedules`, which has no application code.
func TestAggregateSchedules(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	ns := namespace(t)
	file := writeFile(t, oneNodeYAML(ns))
	brokers := strings.Join(c.Brokers(), ",")
	if r := kastor(t, "topics", "apply", "-f", file, "--brokers", brokers); r.code != exitOK {
		t.Fatalf("topics apply: %d %s", r.code, r.stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	codecs, err := bank.NewCodecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := schema.Publish(ctx, cl, codecs.Registry, bank.Schemas()...); err != nil {
		t.Fatal(err)
	}
	topic := ns + ".bank.account.schedules"
	at := time.UnixMilli(1_900_000_000_000).UTC()
	write := func(agg, id string, amount int64, at time.Time, tombstone bool) {
		t.Helper()
		rec := &kgo.Record{Topic: topic, Partition: producer.PartitionFor([]byte(agg), 3), Key: []byte(agg + "\x00" + id)}
		if !tombstone {
			enc, err := codecs.Commands.Encode(bank.Deposit{Amount: amount})
			if err != nil {
				t.Fatal(err)
			}
			ch := wire.Command{Metadata: ks.Metadata{AggregateType: bank.Type, AggregateID: agg, Type: enc.Type, Fingerprint: enc.Fingerprint,
				CommandID: id, CorrelationID: id}, ExpectedVersion: ks.AnyVersion, ScheduleAt: at}
			rec.Value, rec.Headers = enc.Data, ch.AppendHeaders(nil)
		}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	write("acct-ada", "late", 2, at.Add(time.Hour), false)
	write("acct-ada", "early", 1, at, false)
	write("acct-ada", "fired", 3, at, false)
	write("acct-ada", "fired", 0, time.Time{}, true)
	write("acct-other", "x", 9, at, false)
	r := kastor(t, "aggregate", "schedules", "bank.account", "acct-ada", "-f", file, "--brokers", brokers, "-o", "json")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got []pendingSchedule
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	compact := func(m json.RawMessage) string {
		var b bytes.Buffer
		_ = json.Compact(&b, m)
		return b.String()
	}
	if len(got) != 2 || got[0].ScheduleID != "early" || !got[0].At.Equal(at) || compact(got[0].Command) != `{"amount":1}` ||
		got[1].ScheduleID != "late" || got[0].Type != "bank.Deposit" {
		t.Fatalf("schedules of acct-ada: %+v", got)
	}
	r = kastor(t, "aggregate", "schedules", "bank.account", "acct-nobody", "-f", file, "--brokers", brokers)
	if r.code != exitOK || !strings.Contains(r.stderr, "no pending scheduled commands") {
		t.Fatalf("no schedules: %d %q", r.code, r.stderr)
	}
}
