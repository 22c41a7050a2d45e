package snapshot

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkScan is the CPU a restore spends per snapshot record on kastor's side: decode
// and hand over (here into a map, as the gateway does). `make bench` times the whole
// restore against a raw read of the partition.
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
		m := make(map[string]Record, n)
		scan := NewScan(func(r Record) { m[r.AggregateID] = r }, func(id string) { delete(m, id) })
		for _, r := range recs {
			scan.Add(r)
		}
		if len(m) != n {
			b.Fatal(len(m))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}
