package consumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/wire"
)

type benchDeposited struct {
	Amount int64 `json:"amount"`
}

// benchRecords are n events of one partition as the gateway writes them (bench/projection.go
// preloads the same): kastor's headers, an Avro MoneyDeposited, aggregates spread over accts.
func benchRecords(b *testing.B, codec kastor.Codec[benchDeposited], n, accts int) []*kgo.Record {
	enc, err := codec.Encode(benchDeposited{Amount: 1})
	if err != nil {
		b.Fatal(err)
	}
	versions := make([]int64, accts)
	recs := make([]*kgo.Record, n)
	ts := time.Now()
	for i := range recs {
		a := i % accts
		acct := fmt.Sprintf("acct-%06d", a)
		versions[a]++
		md := kastor.Metadata{AggregateType: "bank.account", AggregateID: acct, Version: versions[a], Type: enc.Type,
			Fingerprint: enc.Fingerprint, CommandID: fmt.Sprintf("cmd-%08d", i)}
		recs[i] = &kgo.Record{Topic: "bench.bank.account.events", Partition: 0, Offset: int64(i), Timestamp: ts,
			Key: []byte(acct), Value: enc.Data, Headers: wire.Headers(&md)}
	}
	return recs
}

// BenchmarkReaderMemory drives a worker over a partition's records into a Memory sink,
// as a round does, without Kafka: the reader's own cost per event (headers, filter,
// decoding, batching, metrics, the sink).
func BenchmarkReaderMemory(b *testing.B) {
	s := schema.MustParse(`{"type": "record", "name": "MoneyDeposited", "namespace": "bank",
		"fields": [{"name": "amount", "type": "long"}]}`)
	codec := schema.ValueCodec(schema.MustCodec[benchDeposited](schema.NewRegistry(), s))
	const n = 10_000
	recs := benchRecords(b, codec, n, 1_700)
	mem := NewMemory(map[string]int64{}, func(m *map[string]int64, ev kastor.Envelope[benchDeposited]) error {
		(*m)[ev.AggregateID] += ev.Event.Amount
		return nil
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")) // never dialled
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	kc, err := cluster.New(cl, "bench", cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(kc, Config[benchDeposited]{Name: "bench", Version: 1, AggregateTypes: []string{"bank.account"},
		Events: codec, AllPartitions: true}, mem)
	if err != nil {
		b.Fatal(err)
	}
	st := newPartState(TopicPartition{"bench.bank.account.events", 0})
	st.loaded = true
	r.parts[st.tp] = st
	ctx := context.Background()
	hurry := make(chan struct{})
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		st.next = -1
		w := &worker[benchDeposited]{r: r, st: st, stop: ctx, hurry: hurry, work: ctx}
		if _, ok := w.run(recs); !ok {
			b.Fatal("the round did not complete")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	// CPU time, the garbage collector's included, says more than wall time on a busy
	// machine.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*n), "cpu-ns/event")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the process's user and system CPU time so far, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
