package consumer

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRecordPool(t *testing.T) {
	var p recordPool
	a := p.GetRecords(100)
	if len(a) != 0 || cap(a) < 100 {
		t.Fatalf("GetRecords(100) on an empty pool: len %d cap %d", len(a), cap(a))
	}
	p.PutRecords(a[:cap(a)])
	if b := p.GetRecords(10); cap(b) != cap(a) || &b[:1][0] != &a[:1][0] {
		t.Errorf("a smaller Get did not reuse the slice put back")
	}
	if p.held != 0 || len(p.free) != 0 {
		t.Errorf("after taking the only slice: held %d, free %d", p.held, len(p.free))
	}
	// Too small for the request: a new slice, the small one stays.
	p.PutRecords(make([]kgo.Record, 5))
	if c := p.GetRecords(50); cap(c) < 50 || len(p.free) != 1 {
		t.Errorf("GetRecords(50) with a 5-slice free: cap %d, free %d", cap(c), len(p.free))
	}
	// Bounded: nothing is kept beyond poolMaxRecords.
	for range 2 * poolMaxRecords / 10000 {
		p.PutRecords(make([]kgo.Record, 10000))
	}
	if p.held > poolMaxRecords || len(p.free) > poolMaxSlices {
		t.Errorf("pool holds %d records in %d slices, bounds %d and %d", p.held, len(p.free), poolMaxRecords, poolMaxSlices)
	}
	for range 2 * poolMaxSlices {
		p.PutRecords(make([]kgo.Record, 1))
	}
	if len(p.free) > poolMaxSlices {
		t.Errorf("%d free slices, bound %d", len(p.free), poolMaxSlices)
	}
	// Trimmed after a small round.
	p.trim(poolIdleRecords)
	if p.held > poolIdleRecords {
		t.Errorf("after trim: %d records held, want at most %d", p.held, poolIdleRecords)
	}
	n := 0
	for _, s := range p.free {
		n += cap(s)
	}
	if n != p.held {
		t.Errorf("held says %d, the free slices hold %d", p.held, n)
	}
}
