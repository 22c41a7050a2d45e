package runner

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/wire"
)

type testState struct {
	Step   string
	Amount int64
}

var testStates = schema.ValueCodec(schema.MustCodec[testState](nil, schema.MustDerive[testState](schema.Namespace("test"))))

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 123, time.UTC)

func testInstance() saga.Instance[testState] {
	return saga.Instance[testState]{
		ID: "t-1", Version: 3, State: testState{Step: "credit", Amount: 30},
		Deadlines: map[string]time.Time{"timeout": t0, "retry": t0.Add(time.Second)},
		Seen:      []string{"event/bank.transfer/t-1/1", "outcome/x"},
		Pending:   []saga.Sent{{ID: "bank.transfer/t-1/3/0", Name: "do:credit#1", AggregateType: "bank.account", AggregateID: "bob", Deadline: t0.Add(-time.Second)}},
	}
}

func stateRecordOf(t *testing.T, inst saga.Instance[testState]) *kgo.Record {
	t.Helper()
	v, err := encodeInstance(&inst, testStates)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Key: []byte(inst.ID), Value: v, Headers: instanceHeaders(inst.ID, inst.Version)}
}

func TestInstanceRecordRoundTrip(t *testing.T) {
	want := testInstance()
	r := stateRecordOf(t, want)
	rec, ok, err := DecodeStateRecord(r)
	if err != nil || !ok {
		t.Fatalf("decode: %v, %v", ok, err)
	}
	got, err := instance(rec, testStates)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// Deterministic bytes: the same instance encodes the same, whatever the map order.
	for range 10 {
		if again := stateRecordOf(t, want); string(again.Value) != string(r.Value) {
			t.Fatal("the same instance encoded to different bytes")
		}
	}
}

func TestCheckpointRecordRoundTrip(t *testing.T) {
	r := checkpointRecord("ns.saga.x.state", 3, 42)
	sr, err := decodeState(r.Key, r.Value, r.Headers, nil)
	if err != nil || !sr.checkpoint || sr.next != 42 || r.Partition != 3 {
		t.Fatalf("checkpoint: %+v, %v", sr, err)
	}
	if _, ok, err := DecodeStateRecord(r); ok || err != nil {
		t.Fatalf("DecodeStateRecord of a checkpoint: %v, %v", ok, err)
	}
}

func TestBadStateRecordsAreErrorsNamingTheProblem(t *testing.T) {
	good := stateRecordOf(t, testInstance())
	other := stateRecordOf(t, saga.Instance[testState]{ID: "t-2", Version: 1})
	cases := map[string]struct {
		key, value []byte
		hs         []kgo.RecordHeader
		want       string
	}{
		"empty key":        {nil, good.Value, good.Headers, "empty or starts with NUL"},
		"no fingerprint":   {good.Key, good.Value, nil, "kastor.schema"},
		"another type":     {good.Key, good.Value, wire.SchemaHeaders("bank.Account", uint64(instanceSchema.Fingerprint())), "not a saga state record"},
		"truncated":        {good.Key, good.Value[:len(good.Value)-3], good.Headers, "saga instance \"t-1\""},
		"another instance": {good.Key, other.Value, good.Headers, "instance \"t-2\"'s"},
		"bad checkpoint":   {[]byte(CheckpointKey), []byte{0x01}, nil, "saga checkpoint"},
		"null checkpoint":  {[]byte(CheckpointKey), nil, nil, "null value"},
	}
	for name, c := range cases {
		_, err := decodeState(c.key, c.value, c.hs, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one containing %q", name, err, c.want)
		}
	}
	if sr, err := decodeState([]byte("t-1"), nil, nil, nil); err != nil || !sr.tombstone {
		t.Errorf("a tombstone: %+v, %v", sr, err)
	}
}

func eventInputHeaders() []kgo.RecordHeader {
	md := kastor.Metadata{AggregateType: "bank.transfer", AggregateID: "t-1", Version: 1, Type: "bank.TransferRequested", Fingerprint: 0x62d8c1989ed20bf8, CommandID: "c1"}
	return append(wire.Headers(&md), kgoHeader(wire.HeaderSagaInput, wire.SagaInputEvent))
}

func kgoHeader(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }

func TestDecodeInputs(t *testing.T) {
	in, err := decodeInput([]byte("t-1"), []byte{2, 4}, eventInputHeaders())
	if err != nil || in.kind != inputEvent || in.event.AggregateID != "t-1" || in.event.Version != 1 {
		t.Fatalf("event input: %+v, %v", in, err)
	}
	reply := gateway.Reply{CommandID: "bank.transfer/t-1/1/0", Status: gateway.StatusRejected, Message: "insufficient funds", AggregateID: "alice", From: 1}
	v, _ := reply.Encode()
	in, err = decodeInput([]byte("t-1"), v, wire.ReplyHeaders("", true))
	if err != nil || in.kind != inputOutcome || in.reply.CommandID != reply.CommandID || !in.reply.Repeat {
		t.Fatalf("outcome input: %+v, %v", in, err)
	}
	out := outcomeOf[string](in.reply, saga.Sent{ID: reply.CommandID, Name: "do:debit#1", AggregateType: "bank.account", AggregateID: "alice"})
	var re *kastor.RejectedError
	if out.Command.Name != "do:debit#1" || !asRejected(out.Err, &re) || re.Err.Error() != "insufficient funds" {
		t.Fatalf("outcome: %+v", out)
	}
}

func asRejected(err error, re **kastor.RejectedError) bool {
	r, ok := err.(*kastor.RejectedError)
	*re = r
	return ok
}

func TestBadInputsAreErrorsNamingTheProblem(t *testing.T) {
	ev := eventInputHeaders()
	cases := map[string]struct {
		key, value []byte
		hs         []kgo.RecordHeader
		want       string
	}{
		"no key":           {nil, nil, ev, "empty or starts with NUL"},
		"NUL key":          {[]byte("\x00x"), nil, ev, "empty or starts with NUL"},
		"unknown kind":     {[]byte("t-1"), nil, []kgo.RecordHeader{kgoHeader(wire.HeaderSagaInput, "deadline")}, `unknown kind "deadline"`},
		"event no version": {[]byte("t-1"), nil, append(ev[:2:2], ev[3:]...), "are all required"},
		"event bad schema": {[]byte("t-1"), nil, append(ev, kgoHeader(kastor.HeaderSchema, "xyz")), "kastor.schema"},
		"reply garbage":    {[]byte("t-1"), []byte{0xff}, nil, "outcome"},
		"reply no command": {[]byte("t-1"), mustEncode(gateway.Reply{Status: gateway.StatusOK}), nil, "names no command"},
	}
	for name, c := range cases {
		_, err := decodeInput(c.key, c.value, c.hs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one containing %q", name, err, c.want)
		}
	}
}

func mustEncode(r gateway.Reply) []byte {
	v, _ := r.Encode()
	return v
}

func FuzzDecodeState(f *testing.F) {
	good := testInstance()
	v, _ := encodeInstance(&good, testStates)
	f.Add([]byte("t-1"), v, true)
	f.Add([]byte(CheckpointKey), checkpointRecord("x", 0, 7).Value, false)
	f.Add([]byte("t-1"), []byte{}, true)
	f.Add([]byte("t-1"), []byte{0x02, 'x', 0x80}, true)
	f.Fuzz(func(t *testing.T, key, value []byte, headers bool) {
		var hs []kgo.RecordHeader
		if headers {
			hs = instanceHeaders(string(key), 1)
		}
		sr, err := decodeState(key, value, hs, nil)
		if err != nil || sr.checkpoint || sr.tombstone {
			return
		}
		// What decodes encodes back to the same record.
		v, err := encodeRecord(&sr.inst)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", sr.inst, err)
		}
		again, err := decodeState(key, v, hs, nil)
		if err != nil || !reflect.DeepEqual(again.inst, sr.inst) {
			t.Fatalf("re-decoded %+v, %v; want %+v", again.inst, err, sr.inst)
		}
	})
}

func FuzzDecodeInput(f *testing.F) {
	f.Add([]byte("t-1"), []byte{}, uint8(1))
	f.Add([]byte("t-1"), mustEncode(gateway.Reply{CommandID: "c", Status: gateway.StatusOK, From: 1, To: 2}), uint8(0))
	f.Add([]byte(""), []byte{0x01}, uint8(0))
	f.Add([]byte("t-1"), resumeRecord("in", 0, "t-1", 7, "compensation failed").Value, uint8(2))
	f.Add([]byte("t-1"), []byte{0x0e, 0x02}, uint8(2))
	f.Add([]byte("t-1"), []byte{0x00, 0x00}, uint8(3))
	f.Fuzz(func(t *testing.T, key, value []byte, kind uint8) {
		var hs []kgo.RecordHeader
		switch kind % 4 {
		case 1:
			hs = eventInputHeaders()
		case 2:
			hs = resumeRecord("in", 0, string(key), 1, "").Headers
		case 3: // a resume with no schema headers
			hs = []kgo.RecordHeader{kgoHeader(wire.HeaderSagaInput, wire.SagaInputResume)}
		}
		in, err := decodeInput(key, value, hs)
		if err == nil && in.instance != string(key) {
			t.Fatalf("instance %q from key %q", in.instance, key)
		}
		if err != nil || in.kind != inputResume {
			return
		}
		// A resume that decodes has a version and encodes back to the same input.
		if in.resume.Version < 1 {
			t.Fatalf("resume of version %d decoded", in.resume.Version)
		}
		rec := resumeRecord("in", 0, in.instance, in.resume.Version, in.resume.Reason)
		again, err := decodeInput(rec.Key, rec.Value, rec.Headers)
		if err != nil || again.resume != in.resume {
			t.Fatalf("re-decoded %+v, %v; want %+v", again.resume, err, in.resume)
		}
	})
}

// TestInstanceFastDecoderFollowsTheSchema: the fast path reads the current InstanceSchema,
// and decodes what the generic codec decodes, the same.
func TestInstanceFastDecoderFollowsTheSchema(t *testing.T) {
	if got := uint64(instanceSchema.Fingerprint()); got != instanceFingerprint {
		t.Fatalf("InstanceSchema's fingerprint is %#x, decodeInstanceFast reads %#x: update the fast decoder to the schema", got, uint64(instanceFingerprint))
	}
	for _, r := range []InstanceRecord{
		{ID: "t-1", Version: 1, State: kastor.Encoded{Type: "s", Fingerprint: 7, Data: []byte{}}, Seen: []string{}},
		{ID: "t-2", Version: 9, State: kastor.Encoded{Type: "bank.T", Fingerprint: 1 << 63, Data: []byte(`{"n":1}`)},
			Deadlines: map[string]time.Time{"a": time.Unix(5, 6).UTC(), "b": time.Unix(0, -7).UTC()},
			Seen:      []string{"x", "", "y"},
			Pending:   []saga.Sent{{ID: "c1", Name: "debit", AggregateType: "bank.account", AggregateID: "a"}, {ID: "c2", Deadline: time.Unix(99, 0).UTC()}},
			Done:      true},
	} {
		v, err := encodeRecord(&r)
		if err != nil {
			t.Fatal(err)
		}
		checkFastDecoder(t, v)
		got, err := decodeInstanceFast(v, &interner{})
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("fast decoding of %+v: %+v, %v", r, got, err)
		}
	}
}

// checkFastDecoder: where the fast path decodes v, the generic codec decodes it the same.
func checkFastDecoder(t *testing.T, v []byte) {
	t.Helper()
	fast, err := decodeInstanceFast(v, &interner{})
	if err != nil {
		return
	}
	gv, gerr := instanceCodec.Decode(instanceSchema.Fingerprint(), v)
	if gerr != nil {
		t.Fatalf("the fast path decoded % x, the generic codec refuses it: %v", v, gerr)
	}
	generic := InstanceRecord{ID: gv.ID, Version: gv.Version, Seen: gv.Seen, Done: gv.Done,
		State: kastor.Encoded{Type: gv.StateType, Fingerprint: uint64(gv.StateFingerprint), Data: gv.State}}
	for _, d := range gv.Deadlines {
		if generic.Deadlines == nil {
			generic.Deadlines = map[string]time.Time{}
		}
		generic.Deadlines[d.Name] = fromNanos(d.At)
	}
	for _, p := range gv.Pending {
		generic.Pending = append(generic.Pending, saga.Sent{ID: p.ID, Name: p.Name, AggregateType: p.AggregateType, AggregateID: p.AggregateID, Deadline: fromNanos(p.Deadline)})
	}
	if generic.Seen == nil {
		generic.Seen = []string{}
	}
	if generic.State.Data == nil {
		generic.State.Data = []byte{}
	}
	if !reflect.DeepEqual(fast, generic) {
		t.Fatalf("% x: fast %+v, generic %+v", v, fast, generic)
	}
}

// FuzzInstanceFastDecoder: the fast path never decodes a datum differently from the
// generic codec, and never panics.
func FuzzInstanceFastDecoder(f *testing.F) {
	r := InstanceRecord{ID: "t-2", Version: 9, State: kastor.Encoded{Type: "bank.T", Data: []byte(`{}`)},
		Deadlines: map[string]time.Time{"a": time.Unix(5, 6)}, Seen: []string{"x"},
		Pending: []saga.Sent{{ID: "c1", Name: "debit", AggregateType: "bank.account", AggregateID: "a"}}}
	v, _ := encodeRecord(&r)
	f.Add(v)
	f.Add([]byte{})
	f.Add([]byte{2, 'a', 2, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) { checkFastDecoder(t, v) })
}

func TestResumeRecordRoundTrip(t *testing.T) {
	rec := resumeRecord("ns.saga.x.inputs", 2, "t-1", 7, `compensation of step "debit" failed 3 times`)
	if rec.Partition != 2 || string(rec.Key) != "t-1" || rec.Topic != "ns.saga.x.inputs" {
		t.Fatalf("record %+v", rec)
	}
	in, err := decodeInput(rec.Key, rec.Value, rec.Headers)
	if err != nil || in.kind != inputResume || in.instance != "t-1" || in.resume != (saga.Resume{Version: 7, Reason: `compensation of step "debit" failed 3 times`}) {
		t.Fatalf("decoded %+v, %v", in, err)
	}
	typ, fp, err := wire.ReadSchemaHeaders(rec.Headers)
	if err != nil || typ != ResumeType || fp != uint64(schema.MustParse(ResumeSchema).Fingerprint()) {
		t.Fatalf("schema headers %q %x %v", typ, fp, err)
	}
	for _, tc := range []struct {
		name  string
		value []byte
		hs    []kgo.RecordHeader
		want  string
	}{
		{"no schema headers", rec.Value, []kgo.RecordHeader{kgoHeader(wire.HeaderSagaInput, wire.SagaInputResume)}, "resume"},
		{"another type", rec.Value, append(wire.Headers(&kastor.Metadata{Type: "x.Y", Fingerprint: 1}), kgoHeader(wire.HeaderSagaInput, wire.SagaInputResume)), `type "x.Y"`},
		{"version 0", resumeRecord("in", 0, "t-1", 0, "").Value, rec.Headers, "version 0"},
		{"truncated", rec.Value[:1], rec.Headers, "resume"},
	} {
		if _, err := decodeInput(rec.Key, tc.value, tc.hs); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"t-1"`) {
			t.Errorf("%s: %v, want an error with %q naming the instance", tc.name, err, tc.want)
		}
	}
}
