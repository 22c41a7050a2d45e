package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/wire"
)

// FuzzScheduleRecord feeds the decoder of the schedules topic's records (what a restore
// reads, possibly written by another producer) a key and the values of its headers. It
// must never panic, and what it accepts must be what a gateway writes: the key is the
// aggregate ID and the schedule ID of the headers, the schedule ID has no NUL, the time is
// set, and writing the same headers back gives the same record.
func FuzzScheduleRecord(f *testing.F) {
	f.Add("acct\x00s1", "acct", "s1", "1700000000000", "bank.Deposit", "")
	f.Add("a\x00b\x00c", "a\x00b", "c", "1", "t", "0000000000000001")
	f.Add("acct\x00s1", "acct", "s1", "not a time", "", "")
	f.Add("", "", "", "", "", "")
	f.Add("x\x00", "x", "", "-5", "t", "zz")
	f.Fuzz(func(t *testing.T, key, aggID, schedID, at, typ, fp string) {
		hs := []kgo.RecordHeader{
			{Key: kastor.HeaderAggregateID, Value: []byte(aggID)},
			{Key: kastor.HeaderCommandID, Value: []byte(schedID)},
			{Key: wire.HeaderScheduleAt, Value: []byte(at)},
			{Key: kastor.HeaderType, Value: []byte(typ)},
		}
		if fp != "" {
			hs = append(hs, kgo.RecordHeader{Key: kastor.HeaderSchema, Value: []byte(fp)})
		}
		rec := &kgo.Record{Key: []byte(key), Value: []byte{}, Headers: hs}
		agg, id, when, err := gateway.ParseScheduleRecord(rec)
		if err != nil {
			return
		}
		if strings.IndexByte(id, 0) >= 0 || when.IsZero() || key != agg+"\x00"+id || agg != aggID || id != schedID {
			t.Fatalf("accepted key %q headers %q %q %q: got %q %q %v", key, aggID, schedID, at, agg, id, when)
		}
		ch := wire.Command{Metadata: kastor.Metadata{AggregateID: agg, CommandID: id}, ExpectedVersion: kastor.AnyVersion, ScheduleAt: when}
		agg2, id2, when2, err := gateway.ParseScheduleRecord(&kgo.Record{Key: []byte(key), Value: []byte{}, Headers: ch.AppendHeaders(nil)})
		if err != nil || agg2 != agg || id2 != id || !when2.Equal(when.Truncate(time.Millisecond)) {
			t.Fatalf("written back: %q %q %v, %v; want %q %q %v", agg2, id2, when2, err, agg, id, when)
		}
	})
}
