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
		if got := p.Due(c.before, c.after); got != c.want {
			t.Errorf("Due(%d, %d) = %v, want %v", c.before, c.after, got, c.want)
		}
	}
	if (Policy{}).Due(99, 100) != true || (Policy{}).Due(98, 99) != false {
		t.Error("default Every is not 100")
	}
	if (Policy{Every: -1}).Due(0, 1_000) {
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
	v, _ := r.Encode()
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

func TestRestore(t *testing.T) {
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
			c.CreateTopic(t, topic, 2, 1, map[string]string{"cleanup.policy": "compact"})
			cl := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			base := c.Client(t)
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
			const n = 300
			for i := range n {
				produce(snap(fmt.Sprintf("a%d", i), 100, int64(i)))
			}
			produce(snap("a0", 200, 1000)) // a later snapshot of a0 wins
			produce(&kgo.Record{Topic: topic, Partition: 1, Key: []byte("a1")})
			cp, err := CheckpointRecord(topic, 1, 1000)
			if err != nil {
				t.Fatal(err)
			}
			produce(cp)

			s, err := Restore(ctx, base, topic, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.Read.Records != n+3 {
				t.Fatalf("read %d records, wrote %d", s.Read.Records, n+3)
			}
			if len(s.Snapshots) != n-1 || s.Snapshots["a0"].Version != 200 || s.Checkpoint != 1000 || s.EventsFrom() != 1001 {
				t.Fatalf("restored %d snapshots, a0 at %d, checkpoint %d", len(s.Snapshots), s.Snapshots["a0"].Version, s.Checkpoint)
			}
			if _, ok := s.Snapshots["a1"]; ok {
				t.Fatal("a1's tombstone did not delete its snapshot")
			}

			// An undecodable snapshot is ignored and voids the checkpoint.
			produce(&kgo.Record{Topic: topic, Partition: 1, Key: []byte("a2"), Value: []byte{0xff, 0xff}})
			s, err = Restore(ctx, base, topic, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.Ignored != 1 || s.Checkpoint != -1 || s.EventsFrom() != 0 {
				t.Fatalf("after a bad record: ignored %d, checkpoint %d", s.Ignored, s.Checkpoint)
			}
			if _, ok := s.Snapshots["a2"]; ok {
				t.Fatal("the undecodable snapshot of a2 was kept")
			}
			s.Drop("a3")
			if _, ok := s.Snapshots["a3"]; ok || s.Checkpoint != -1 {
				t.Fatal("Drop kept the snapshot or the checkpoint")
			}
			// Partition 0 is empty.
			s, err = Restore(ctx, base, topic, 0, nil)
			if err != nil || len(s.Snapshots) != 0 || s.Checkpoint != -1 {
				t.Fatalf("empty partition: %+v %v", s, err)
			}
		})
	}
}

// TestWireMatchesGoavro checks the hand-written decoder against goavro on valid values,
// including arrays written in several blocks and with negative (sized) block counts.
func TestWireMatchesGoavro(t *testing.T) {
	r := Record{AggregateID: "k", Version: 7, EventOffset: 1 << 40, Commands: []Command{{"", 1, 0}, {"x", 1, 3}, {"ünï", 4, 4}},
		StateType: "bank.Account", StateFingerprint: 1 << 63, State: make([]byte, 300)}
	v, err := r.Encode()
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
	v, err := r.Encode()
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
	ov, err := old.Encode()
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
		v, err := bad.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeSnapshot("k", v); err == nil {
			t.Errorf("version %d, offset %d, %d refusals accepted", bad.Version, bad.EventOffset, len(bad.Refusals))
		}
	}
}

// A Scan shares one backing array among the records' command lists: growing one list must
// not write over the next record's.
func TestScanSharesCommandSlabSafely(t *testing.T) {
	got := map[string]*Record{}
	scan := NewScan(func(r Record) { got[r.AggregateID] = &r }, func(id string) { delete(got, id) })
	for i, id := range []string{"a", "b", "c"} {
		r := Record{AggregateID: id, Version: 1, EventOffset: int64(i), StateType: "t", State: []byte{byte(i)},
			Commands: []Command{{ID: id + "-1", From: 1, To: 1}, {ID: id + "-2", From: 2, To: 1}}}
		kr, err := r.KafkaRecord("snaps", 0)
		if err != nil {
			t.Fatal(err)
		}
		kr.Offset = int64(i)
		scan.Add(kr)
	}
	if len(got) != 3 || scan.Ignored != 0 {
		t.Fatalf("scanned %d records, %d ignored", len(got), scan.Ignored)
	}
	got["a"].Commands = append(got["a"].Commands, Command{ID: "overwrite", From: 9, To: 9})
	if c := got["b"].Commands; len(c) != 2 || c[0].ID != "b-1" || c[1].ID != "b-2" {
		t.Fatalf("b's commands after appending to a's: %+v", c)
	}
	if got["c"].StateType != "t" || got["b"].StateType != "t" {
		t.Fatal("state types lost")
	}
}
