package gateway

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/wire"
)

// TestScheduleMemory measures what 10^5 pending schedules of 100-byte commands cost a
// shard once restored (decision 43: about 400 bytes each beyond the payload), and
// that popping them due keeps their order.
func TestScheduleMemory(t *testing.T) {
	const n = 100_000
	at := time.UnixMilli(1_800_000_000_000)
	record := func(i int) *kgo.Record { // as a restore reads them: one at a time
		agg, id := fmt.Sprintf("account-%06d", i%5000), fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		ch := wire.Command{Metadata: kastor.Metadata{AggregateType: "bank.account", AggregateID: agg, Type: "bank.Deposit",
			Fingerprint: 0xa7baf1113b242c68, CommandID: id, CorrelationID: id}, ExpectedVersion: kastor.AnyVersion,
			ScheduleAt: at.Add(time.Duration(n-i) * time.Millisecond)}
		return &kgo.Record{Key: []byte(scheduleKey(agg, id)), Value: make([]byte, 100), Headers: ch.AppendHeaders(nil)}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := newSchedules()
	for i := range n {
		it, err := parseSchedule(record(i))
		if err != nil {
			t.Fatal(err)
		}
		s.putLocked(it)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d pending schedules: %.0f bytes each with a 100-byte payload (%.1f MB)", n, per, per*n/1e6)
	if per > 800 {
		t.Errorf("%.0f bytes per pending schedule, want under 800", per)
	}
	fire, _, _ := s.due(at.Add(time.Duration(n) * time.Millisecond))
	if len(fire) != n {
		t.Fatalf("%d due, want %d", len(fire), n)
	}
	for i := 1; i < len(fire); i++ {
		if fire[i].at.Before(fire[i-1].at) {
			t.Fatalf("due out of order at %d", i)
		}
	}
	runtime.KeepAlive(s)
}
