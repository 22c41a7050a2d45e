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
