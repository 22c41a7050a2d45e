package snapshot

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/kafkatest"
)

var realKafka = kafkatest.NewShared()

func TestMain(m *testing.M) { kafkatest.Main(m, realKafka) }

func TestPolicyDue(t *testing.T) {
	p := Policy{Every: 10}
	for _, c := range []struct {
		before, after int64
		want          bool
	}{
		{0, 1, false}, {8, 9, false}, {9, 10, true}, {9, 12, true}, {10, 11, false},
		{5, 25, true}, {19, 19, false}, {0, 10, true},
	} {
		if got := p.due(c.before, c.after); got != c.want {
			t.Errorf("Due(%d, %d) = %v, want %v", c.before, c.after, got, c.want)
		}
	}
	if (Policy{}).due(99, 100) != true || (Policy{}).due(98, 99) != false {
		t.Error("default Every is not 100")
	}
	if (Policy{Every: -1}).due(0, 1_000) {
		t.Error("Every < 0 still snapshots")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := Record{AggregateID: "acct-1", Version: 200, EventOffset: 4711, Commands: []Command{{"c1", 1, 2}, {"c2", 3, 2}},
		StateType: "bank.Account", StateFingerprint: 0xfedc_ba98_7654_3210, State: []byte{1, 2, 3}}
	kr, err := r.KafkaRecord("snaps", 3)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Partition != 3 || string(kr.Key) != "acct-1" {
		t.Fatalf("record %+v", kr)
	}
	got, err := decodeSnapshot("acct-1", kr.Value)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	if _, err := (&Record{AggregateID: "\x00x", Version: 1}).KafkaRecord("s", 0); err == nil {
		t.Fatal("an aggregate ID starting with NUL was accepted")
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	r := Record{AggregateID: "a", Version: 1, EventOffset: 0, Commands: []Command{{"c", 1, 1}}, StateType: "t", State: []byte("s"),
		Refusals: []Refusal{{ID: "r", Status: "REJECTED", Message: "no"}}}
	v, _ := r.encode()
	f.Add(v)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		_, _ = decodeSnapshot("k", b) // must not panic
		_, _ = decodeCheckpoint(b)
	})
}

// testTarget is a Target that keeps what a restore hands it: the snapshot records, decoded
// as the gateway decodes them when needed, and the events. changed says which events change
// their aggregate.
type testTarget struct {
	reserved int64
	raw      map[string][]byte
	events   []*kgo.Record
	changed  func(r *kgo.Record) bool
}

func newTestTarget() *testTarget { return &testTarget{reserved: -1, raw: map[string][]byte{}} }

func (t *testTarget) Reserve(n int64)                  { t.reserved = n }
func (t *testTarget) Snapshot(id string, value []byte) { t.raw[id] = value }
func (t *testTarget) Delete(id string)                 { delete(t.raw, id) }
func (t *testTarget) Event(_ context.Context, id string, r *kgo.Record) (bool, error) {
	if id != string(r.Key) {
		return false, fmt.Errorf("event at %d handed over as %q", r.Offset, id)
	}
	t.events = append(t.events, r)
	return t.changed != nil && t.changed(r), nil
}

// TestStoreRestore: a restore hands over the latest snapshot of each aggregate undecoded
// (a later one wins, a tombstone deletes), then the events after the shard checkpoint, to
// the end the previous owner's transaction settles at; the shard's bookkeeping counts the
// events that changed an aggregate. An undecodable snapshot is handed over as it is (the
// gateway replays that aggregate); an undecodable checkpoint is ignored and the events are
// read from the start.
func TestStoreRestore(t *testing.T) {
	for _, b := range []struct {
		name string
		get  func(*testing.T) *kafkatest.Cluster
	}{
		{"embedded", func(t *testing.T) *kafkatest.Cluster { return kafkatest.StartEmbedded(t) }},
		{"kafka", func(t *testing.T) *kafkatest.Cluster { return realKafka.Get(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			c := b.get(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			topic := kafkatest.TopicName(t)
			events := topic + "-events"
			c.CreateTopic(t, topic, 2, 1, map[string]string{"cleanup.policy": "compact"})
			c.CreateTopic(t, events, 2, 1, nil)
			cl := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			produce := func(recs ...*kgo.Record) {
				t.Helper()
				if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			snap := func(id string, version, offset int64) *kgo.Record {
				r := Record{AggregateID: id, Version: version, EventOffset: offset, StateType: "s", State: []byte(id)}
				kr, err := r.KafkaRecord(topic, 1)
				if err != nil {
					t.Fatal(err)
				}
				return kr
			}
			event := func(id string) *kgo.Record {
				return &kgo.Record{Topic: events, Partition: 1, Key: []byte(id), Value: []byte("e")}
			}
			const n = 300
			for i := range n {
				produce(snap(fmt.Sprintf("a%d", i), 100, int64(i)))
			}
			produce(snap("a0", 200, 1000)) // a later snapshot of a0 wins
			produce(&kgo.Record{Topic: topic, Partition: 1, Key: []byte("a1")})
			cp, err := CheckpointRecord(topic, 1, 2)
			if err != nil {
				t.Fatal(err)
			}
			produce(cp)
			for _, id := range []string{"a0", "a1", "a2", "a3", "a4"} { // offsets 0..4
				produce(event(id))
			}

			store := &Store{Client: c.Client(t), Snapshots: topic, Events: events}
			into := newTestTarget()
			into.changed = func(r *kgo.Record) bool { return string(r.Key) == "a4" }
			sh, st, err := store.Restore(ctx, 1, into)
			if err != nil {
				t.Fatal(err)
			}
			if st.SnapshotRecords != n+3 || into.reserved != n+3 {
				t.Fatalf("read %d records (reserved %d), wrote %d", st.SnapshotRecords, into.reserved, n+3)
			}
			a0, err := DecodeValue("a0", into.raw["a0"])
			if len(into.raw) != n-1 || err != nil || a0.Version != 200 || st.Checkpoint != 2 {
				t.Fatalf("restored %d snapshots, a0 at %d (%v), checkpoint %d", len(into.raw), a0.Version, err, st.Checkpoint)
			}
			if _, ok := into.raw["a1"]; ok {
				t.Fatal("a1's tombstone did not delete its snapshot")
			}
			if st.EventRecords != 2 || len(into.events) != 2 || into.events[0].Offset != 3 || into.events[1].Offset != 4 {
				t.Fatalf("read %d events %v, want offsets 3 and 4: those after the checkpoint", st.EventRecords, into.events)
			}
			if _, ok := sh.dirty["a4"]; !ok || len(sh.dirty) != 1 || sh.sinceCheckpoint != 1 || sh.lastEventOffset != 4 {
				t.Fatalf("bookkeeping: dirty %v, %d since the checkpoint, last event %d", sh.dirty, sh.sinceCheckpoint, sh.lastEventOffset)
			}

			// An undecodable snapshot is handed over as it is, and the checkpoint holds.
			produce(&kgo.Record{Topic: topic, Partition: 1, Key: []byte("a2"), Value: []byte{0xff, 0xff}})
			into = newTestTarget()
			if _, st, err = store.Restore(ctx, 1, into); err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeValue("a2", into.raw["a2"]); err == nil || st.Ignored != 0 || st.Checkpoint != 2 || st.EventRecords != 2 {
				t.Fatalf("after a bad snapshot: decoded (%v), ignored %d, checkpoint %d, %d events", err, st.Ignored, st.Checkpoint, st.EventRecords)
			}
			// An undecodable checkpoint is ignored: every event is read.
			produce(&kgo.Record{Topic: topic, Partition: 1, Key: []byte(CheckpointKey), Value: []byte{0xff, 0xff}})
			into = newTestTarget()
			if _, st, err = store.Restore(ctx, 1, into); err != nil {
				t.Fatal(err)
			}
			if st.Ignored != 1 || st.Checkpoint != -1 || st.EventRecords != 5 || len(into.events) != 5 {
				t.Fatalf("after a bad checkpoint: ignored %d, checkpoint %d, %d events", st.Ignored, st.Checkpoint, st.EventRecords)
			}

			// Partition 0 is empty; a transaction is open in its events: the restore waits
			// for it to settle and reads its events, and new events go after its marker.
			txn := c.Client(t, kgo.TransactionalID(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err := txn.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := txn.ProduceSync(ctx, &kgo.Record{Topic: events, Partition: 0, Key: []byte("b"), Value: []byte("e")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			type result struct {
				sh  *Shard
				st  Restored
				err error
			}
			into = newTestTarget()
			done := make(chan result, 1)
			go func() {
				sh, st, err := store.Restore(ctx, 0, into)
				done <- result{sh, st, err}
			}()
			select {
			case res := <-done:
				t.Fatalf("the restore ended while a transaction was open: %+v", res)
			case <-time.After(500 * time.Millisecond):
			}
			if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			res := <-done
			if res.err != nil || len(into.raw) != 0 || res.st.Checkpoint != -1 || res.st.EventRecords != 1 || res.sh.lastEventOffset != 1 {
				t.Fatalf("partition 0: %+v, %d snapshots, last event %d, %v", res.st, len(into.raw), res.sh.lastEventOffset, res.err)
			}
		})
	}
}

// TestWireMatchesGoavro checks the hand-written decoder against goavro on valid values,
// including arrays written in several blocks and with negative (sized) block counts.
func TestWireMatchesGoavro(t *testing.T) {
	r := Record{AggregateID: "k", Version: 7, EventOffset: 1 << 40, Commands: []Command{{"", 1, 0}, {"x", 1, 3}, {"ünï", 4, 4}},
		StateType: "bank.Account", StateFingerprint: 1 << 63, State: make([]byte, 300)}
	v, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	native, _, err := snapshotCodec.NativeFromBinary(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSnapshot("k", v)
	if err != nil {
		t.Fatal(err)
	}
	m := native.(map[string]any)
	if got.Version != m["version"].(int64) || got.EventOffset != m["eventOffset"].(int64) ||
		int64(got.StateFingerprint) != m["stateFingerprint"].(int64) || len(got.Commands) != 3 || got.Commands[2] != (Command{"ünï", 4, 4}) {
		t.Fatalf("hand decoder %+v disagrees with goavro %v", got, m)
	}
	// Two blocks, the second with a negative count and a byte size: 2 items, then -1 item (size 4).
	multi := []byte{0x0e, 0x02,
		0x04, 0x02, 'a', 0x02, 0x04, 0x02, 'b', 0x06, 0x08,
		0x01, 0x08, 0x02, 'c', 0x0a, 0x0a,
		0x00, 0x00, 0x00, 0x00, 0x00}
	nat, _, err := snapshotCodec.NativeFromBinary(multi)
	if err != nil {
		t.Fatalf("test vector is not valid Avro: %v", err)
	}
	rec, err := decodeSnapshot("k", multi)
	if err != nil {
		t.Fatal(err)
	}
	if want := nat.(map[string]any)["commands"].([]any); len(rec.Commands) != len(want) || rec.Commands[2] != (Command{"c", 5, 5}) || rec.Commands[1] != (Command{"b", 3, 4}) {
		t.Fatalf("multi-block array: %v, goavro %v", rec.Commands, want)
	}
	// A count far beyond the data is refused without allocating for it.
	huge := []byte{0x02, 0x00, 0xfe, 0xff, 0xff, 0xff, 0x0f}
	if _, err := decodeSnapshot("k", huge); err == nil {
		t.Fatal("a 2^31-item array in 7 bytes was accepted")
	}
}

// Refusals round-trip, agree with goavro, and a record written before they were kept
// (no trailing field) still decodes; a version-0 record holds refusals only.
func TestRefusals(t *testing.T) {
	r := Record{AggregateID: "k", Version: 0, EventOffset: -1, StateType: "t", State: []byte{},
		Refusals: []Refusal{{ID: "c1", Status: "REJECTED", Message: "account is not open"}, {ID: "c2", Status: "CONFLICT", Message: "m", Expected: 3, Actual: 0}}}
	v, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSnapshot("k", v)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Refusals, r.Refusals) || got.Version != 0 || got.EventOffset != -1 {
		t.Fatalf("round trip: %+v", got)
	}
	native, _, err := snapshotCodec.NativeFromBinary(v)
	if err != nil {
		t.Fatal(err)
	}
	if fs := native.(map[string]any)["refusals"].([]any); len(fs) != 2 || fs[1].(map[string]any)["expected"].(int64) != 3 {
		t.Fatalf("goavro reads refusals %v", fs)
	}
	old := Record{AggregateID: "k", Version: 2, EventOffset: 7, Commands: []Command{{"c", 1, 2}}, StateType: "t", State: []byte{1}}
	ov, err := old.encode()
	if err != nil {
		t.Fatal(err)
	}
	ov = ov[:len(ov)-1] // the empty refusals array: what an older gateway wrote ends before it
	if got, err := decodeSnapshot("k", ov); err != nil || len(got.Refusals) != 0 || got.Version != 2 {
		t.Fatalf("old layout: %+v, %v", got, err)
	}
	for _, bad := range []Record{
		{AggregateID: "k", Version: 0, EventOffset: -1, StateType: "t"}, // nothing to remember
		{AggregateID: "k", Version: 0, EventOffset: 5, StateType: "t", Refusals: r.Refusals},
		{AggregateID: "k", Version: 3, EventOffset: -1, StateType: "t"},
	} {
		v, err := bad.encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeSnapshot("k", v); err == nil {
			t.Errorf("version %d, offset %d, %d refusals accepted", bad.Version, bad.EventOffset, len(bad.Refusals))
		}
	}
}

// Decoded records alias their value and share no backing array: growing one record's
// command list must not write over the next record's.
func TestDecodedCommandListsAreIndependent(t *testing.T) {
	into := newTestTarget()
	sc := newScan(into)
	for i, id := range []string{"a", "b", "c"} {
		r := Record{AggregateID: id, Version: 1, EventOffset: int64(i), StateType: "t", State: []byte{byte(i)},
			Commands: []Command{{ID: id + "-1", From: 1, To: 1}, {ID: id + "-2", From: 2, To: 1}}}
		kr, err := r.KafkaRecord("snaps", 0)
		if err != nil {
			t.Fatal(err)
		}
		kr.Offset = int64(i)
		sc.add(kr)
	}
	got := map[string]*Record{}
	for id, v := range into.raw {
		r, err := DecodeValue(id, v)
		if err != nil {
			t.Fatal(err)
		}
		got[id] = &r
	}
	if len(got) != 3 || sc.ignored != 0 {
		t.Fatalf("scanned %d records, %d ignored", len(got), sc.ignored)
	}
	got["a"].Commands = append(got["a"].Commands, Command{ID: "overwrite", From: 9, To: 9})
	if c := got["b"].Commands; len(c) != 2 || c[0].ID != "b-1" || c[1].ID != "b-2" {
		t.Fatalf("b's commands after appending to a's: %+v", c)
	}
	if got["c"].StateType != "t" || got["b"].StateType != "t" {
		t.Fatal("state types lost")
	}
}
