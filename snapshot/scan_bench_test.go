package snapshot

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkScan is the CPU a restore spends per snapshot record on kastor's side when
// every aggregate is needed: hand over into a map, as the gateway does, and decode
// (DecodeValue, which the gateway defers to an aggregate's first command). `make bench`
// times the whole restore against a raw read of the partition.
func BenchmarkScan(b *testing.B) {
	const n = 100_000
	recs := make([]*kgo.Record, n)
	for i := range recs {
		id := fmt.Sprintf("acct-%07d", i)
		r := Record{AggregateID: id, Version: 1, EventOffset: int64(i), Commands: []Command{{ID: "c-" + id, From: 1, To: 1}},
			StateType: "bank.Account", StateFingerprint: 1, State: []byte(`{"balance":1}`)}
		kr, err := r.KafkaRecord("snaps", 0)
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = kr
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		into := &decodingTarget{m: make(map[string]Record, n)}
		sc := newScan(into)
		for _, r := range recs {
			sc.add(r)
		}
		if len(into.m) != n {
			b.Fatal(len(into.m))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// decodingTarget decodes each snapshot as it comes.
type decodingTarget struct{ m map[string]Record }

func (t *decodingTarget) Reserve(int64) {}
func (t *decodingTarget) Snapshot(id string, value []byte) {
	r, err := DecodeValue(id, value)
	if err != nil {
		panic(err)
	}
	t.m[id] = r
}
func (t *decodingTarget) Delete(id string) { delete(t.m, id) }
func (t *decodingTarget) Event(context.Context, string, *kgo.Record) (bool, error) {
	return false, nil
}
