package runner

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/saga"
)

type benchState struct {
	N int64 `json:"n"`
}

type benchJSON struct{}

func (benchJSON) Encode(s benchState) (kastor.Encoded, error) {
	b, err := json.Marshal(s)
	return kastor.Encoded{Type: "bench.SagaState", Fingerprint: 1, Data: b}, err
}

func (benchJSON) Decode(e kastor.Encoded) (benchState, error) {
	var s benchState
	err := json.Unmarshal(e.Data, &s)
	return s, err
}

// benchStateRecord is a state record as the saga bench's restore writes it.
func benchStateRecord(b testing.TB) *kgo.Record {
	id := "inst-000123456"
	v, err := encodeInstance(&saga.Instance[benchState]{ID: id, Version: 1, State: benchState{N: 1},
		Deadlines: map[string]time.Time{"timeout": time.Now().Add(time.Hour)},
		Seen:      []string{"event/bench.account/" + id + "/1"},
		Pending:   []saga.Sent{{ID: saga.CommandID("bench.saga", id, 1, 0), Name: "deposit", AggregateType: "bench.account", AggregateID: id}},
	}, kastor.Codec[benchState](benchJSON{}))
	if err != nil {
		b.Fatal(err)
	}
	return &kgo.Record{Key: []byte(id), Value: v, Headers: instanceHeaders(id, 1)}
}

func BenchmarkDecodeStateRecord(b *testing.B) {
	rec := benchStateRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeState(rec.Key, rec.Value, rec.Headers, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestoreInstance(b *testing.B) {
	rec := benchStateRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		sr, err := decodeState(rec.Key, rec.Value, rec.Headers, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := instance(sr.inst, kastor.Codec[benchState](benchJSON{})); err != nil {
			b.Fatal(err)
		}
	}
}
