package consumer

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordPool gives franz-go the slices it decodes fetched batches into
// (kgo.PoolRecords), and takes them back once every record of a batch was recycled:
// the reader recycles a round's records when the round is over. A reader catching up
// decodes a million records in one to two seconds; allocating a 160-byte Record for
// each is garbage the collector then scans and frees on the reader's cores.
//
// The free slices are kept in a plain list rather than a sync.Pool, which drops
// everything at each collection (several a second on a catch-up, so most Gets would
// miss). The list is bounded (poolMaxRecords, about what one fetch of a catch-up
// decodes), and trimmed to poolIdleRecords when rounds are small again: a reader that
// caught up keeps a few hundred kilobytes, not what its catch-up needed.
type recordPool struct {
	mu   sync.Mutex
	free [][]kgo.Record
	held int // records (capacity) in free
}

// poolMaxRecords bounds the records kept in a pool's free list: about 160 bytes each,
// so 40 MiB.
const poolMaxRecords = 256 << 10

// poolIdleRecords is what a pool keeps after a small round (trim).
const poolIdleRecords = 4 << 10

// poolMaxSlices bounds the free list's length, which Get scans.
const poolMaxSlices = 256

// GetRecords returns a slice of capacity n or more: a free one if one is large enough
// (the latest put first: it is the likeliest to be in a cache), else a new one.
func (p *recordPool) GetRecords(n int) []kgo.Record {
	p.mu.Lock()
	for i := len(p.free) - 1; i >= 0; i-- {
		if s := p.free[i]; cap(s) >= n {
			last := len(p.free) - 1
			p.free[i] = p.free[last]
			p.free[last] = nil
			p.free = p.free[:last]
			p.held -= cap(s)
			p.mu.Unlock()
			return s[:0]
		}
	}
	p.mu.Unlock()
	return make([]kgo.Record, 0, n)
}

// PutRecords keeps s for a later Get, unless the free list is full. franz-go zeroes
// each record as it is recycled, so s points to nothing.
func (p *recordPool) PutRecords(s []kgo.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) >= poolMaxSlices || p.held+cap(s) > poolMaxRecords {
		return
	}
	p.free = append(p.free, s)
	p.held += cap(s)
}

// trim drops free slices until at most keep records are held.
func (p *recordPool) trim(keep int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.free) > 0 && p.held > keep {
		last := len(p.free) - 1
		p.held -= cap(p.free[last])
		p.free[last] = nil
		p.free = p.free[:last]
	}
}

// recycle gives a round's records back to their pools; nothing may use them after.
func recycle(fetches kgo.Fetches) {
	for i := range fetches {
		for j := range fetches[i].Topics {
			for k := range fetches[i].Topics[j].Partitions {
				for _, rec := range fetches[i].Topics[j].Partitions[k].Records {
					rec.Recycle()
				}
			}
		}
	}
}
