package wire

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

func TestScheduleHeadersRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_800_000_000_123)
	for _, q := range []string{QuerySchedule, QueryCancel, QueryFire, QueryOutcome} {
		in := Command{Metadata: kastor.Metadata{AggregateID: "a", CommandID: "s1"}, ExpectedVersion: kastor.AnyVersion, Query: q, ScheduleAt: at}
		got, err := ParseCommand(in.AppendHeaders(nil))
		if err != nil || got.Query != q || !got.ScheduleAt.Equal(at) || got.CommandID != "s1" {
			t.Fatalf("%s: got %+v, %v", q, got, err)
		}
	}
	for _, h := range []kgo.RecordHeader{
		{Key: HeaderQuery, Value: []byte("later")},
		{Key: HeaderScheduleAt, Value: []byte("tomorrow")},
	} {
		if _, err := ParseCommand([]kgo.RecordHeader{h}); err == nil || !strings.Contains(err.Error(), h.Key) {
			t.Fatalf("%s %q: error %v, want one naming the header", h.Key, h.Value, err)
		}
	}
}
