package wire

import (
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// The reader's header parser is an allocation-saving copy of ParseHeaders: it
// must agree with it on every input, errors included.
func FuzzHeaderParser(f *testing.F) {
	f.Add("kastor.version", "12", "kastor.schema", "00ff00ff00ff00ff", "kastor.tag", "a")
	f.Add("kastor.version", "012", "kastor.schema", "00FF00ff00ff00ff", "kastor.aggregate.id", "x")
	f.Add("kastor.version", "-1", "kastor.schema", "zz", "kastor.type", "T")
	f.Add("kastor.version", "+5", "kastor.schema", "00ff00ff00ff00f", "kastor.command.id", "")
	f.Add("kastor.version", "99999999999999999999", "other", "v", "kastor.tag", "b")
	f.Add("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate", "a=b", "kastor.tag", "c")
	f.Add("tracestate", "a=b", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "traceparent", "bad")
	f.Add("traceparent", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", "tracestate", "", "kastor.version", "x")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		md := kastor.Metadata{AggregateType: "acct", AggregateID: "a-1", Version: 3, Type: "Deposited", Fingerprint: 42,
			CommandID: "c", CorrelationID: "r", CausationID: "s", Tags: []string{"t1"}}
		hs := Headers(&md)
		hs = append(hs, kgo.RecordHeader{Key: k1, Value: []byte(v1)}, kgo.RecordHeader{Key: k2, Value: []byte(v2)}, kgo.RecordHeader{Key: k3, Value: []byte(v3)})
		var p Parser
		var got, want kastor.Metadata
		gotErr := p.Parse(hs, &got)
		wantErr := p.slow(hs, &want)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("error %v, ParseHeaders says %v", gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parsed %+v, ParseHeaders says %+v", got, want)
		}
	})
}

func BenchmarkHeaderParser(b *testing.B) {
	md := kastor.Metadata{AggregateType: "acct", AggregateID: "acct-000001", Version: 3, Type: "bank.MoneyDeposited", Fingerprint: 42, CommandID: "cmd-00000001"}
	hs := Headers(&md)
	b.Run("fast", func(b *testing.B) {
		var p Parser
		b.ReportAllocs()
		for b.Loop() {
			var m kastor.Metadata
			_ = p.Parse(hs, &m)
		}
	})
	traced := md
	traced.Trace = kastor.NewTrace()
	ths := Headers(&traced)
	b.Run("fast-traced", func(b *testing.B) {
		var p Parser
		b.ReportAllocs()
		for b.Loop() {
			var m kastor.Metadata
			_ = p.Parse(ths, &m)
		}
	})
	b.Run("ParseHeaders", func(b *testing.B) {
		var p Parser
		b.ReportAllocs()
		for b.Loop() {
			var m kastor.Metadata
			_ = p.slow(hs, &m)
		}
	})
}
