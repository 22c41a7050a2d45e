package wire_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/wire"
)

func TestMetadataHeadersRoundTrip(t *testing.T) {
	m := kastor.Metadata{
		AggregateType: "bank.account", AggregateID: "acct-1", Version: 42,
		Type: "bank.MoneyDeposited", Fingerprint: 0x00ab_cdef_0123_4567,
		CommandID: "c-1", CorrelationID: "r-9", CausationID: "c-1",
		Tags: []string{"vip", "tenant=a,b"},
	}
	hs := wire.Headers(&m)
	hs = append(hs, kgo.RecordHeader{Key: "traceparent", Value: []byte("x")}) // foreign headers are ignored
	got, err := wire.ParseHeaders(hs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	m.Trace = kastor.NewTrace()
	m.Trace.State = "congo=t61rcWkgMzE"
	hs = wire.Headers(&m)
	hs = append(hs, kgo.RecordHeader{Key: "other", Value: []byte("x")}) // foreign headers are ignored
	got, err = wire.ParseHeaders(hs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	for _, h := range hs {
		if h.Key == kastor.HeaderSchema && string(h.Value) != "00abcdef01234567" {
			t.Fatalf("fingerprint header %q, want 16 hex digits", h.Value)
		}
	}
}

func TestParseHeadersRejectsMalformed(t *testing.T) {
	_, err := wire.ParseHeaders([]kgo.RecordHeader{
		{Key: kastor.HeaderVersion, Value: []byte("x1")},
		{Key: kastor.HeaderSchema, Value: []byte("zz")},
	})
	if err == nil || !strings.Contains(err.Error(), "kastor.version") || !strings.Contains(err.Error(), "kastor.schema") {
		t.Fatalf("err = %v, want both malformed headers named", err)
	}
}

func FuzzParseHeaders(f *testing.F) {
	f.Add("kastor.version", []byte("12"), "kastor.schema", []byte("00abcdef01234567"))
	f.Fuzz(func(t *testing.T, k1 string, v1 []byte, k2 string, v2 []byte) {
		m, err := wire.ParseHeaders([]kgo.RecordHeader{{Key: k1, Value: v1}, {Key: k2, Value: v2}})
		if err != nil {
			return
		}
		// Whatever parses cleanly must survive a round trip.
		again, err := wire.ParseHeaders(wire.Headers(&m))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip of %+v: %+v, %v", m, again, err)
		}
	})
}

// A traceparent kastor cannot read is no trace, never an error: the record is handled
// and a new trace starts. ParseTrace says why, for a debug log.
func TestMalformedTraceIsIgnored(t *testing.T) {
	const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tp := range []string{"", "x", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", good + "-x"} {
		hs := []kgo.RecordHeader{{Key: kastor.HeaderCommandID, Value: []byte("c")},
			{Key: kastor.HeaderTraceParent, Value: []byte(tp)}, {Key: kastor.HeaderTraceState, Value: []byte("a=b")}}
		m, err := wire.ParseHeaders(hs)
		if err != nil || m.CommandID != "c" || m.Trace != (kastor.TraceContext{}) {
			t.Errorf("%q: %+v, %v; want the command ID and no trace", tp, m, err)
		}
		c, err := wire.ParseCommand(hs)
		if err != nil || c.Trace != (kastor.TraceContext{}) {
			t.Errorf("command %q: %+v, %v; want no trace", tp, c.Trace, err)
		}
		if _, err := wire.ParseTrace(hs); err == nil {
			t.Errorf("ParseTrace(%q): no error", tp)
		}
	}
	tc, err := wire.ParseTrace([]kgo.RecordHeader{{Key: kastor.HeaderTraceState, Value: []byte("a=b")}, {Key: kastor.HeaderTraceParent, Value: []byte(good)}})
	if err != nil || tc.TraceParent() != good || tc.State != "a=b" {
		t.Fatalf("ParseTrace: %+v, %v", tc, err)
	}
	if tc, err := wire.ParseTrace(nil); err != nil || tc.IsValid() {
		t.Fatalf("no header: %+v, %v", tc, err)
	}
	hs := wire.AppendTrace(nil, tc)
	if len(hs) != 2 || string(hs[0].Value) != good || string(hs[1].Value) != "a=b" {
		t.Fatalf("AppendTrace: %v", hs)
	}
}
