package consumer_test

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/readertest"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/wire"
)

var realKafka = kafkatest.NewShared()

func TestMain(m *testing.M) {
	if os.Getenv(tableChildEnv) != "" {
		os.Exit(runTableChild())
	}
	kafkatest.Main(m, realKafka)
}

func quietLogger() *slog.Logger {
	if os.Getenv("CONSUMER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// The rig of the reader tests, shared with package projection's (internal/readertest).
type (
	rig      = readertest.Rig
	ev       = readertest.Event
	failing  = readertest.Failing
	balances = readertest.Balances
)

var (
	codecs      = readertest.Codecs
	opened      = readertest.Opened
	deposited   = readertest.Deposited
	newSeen     = readertest.NewSeen
	testCtx     = readertest.Context
	foldBalance = readertest.FoldBalance
)

const projection = readertest.Projection

func newRig(t *testing.T, c *kafkatest.Cluster, partitions int32) *rig {
	return readertest.New(t, c, partitions, quietLogger())
}

func producerMetadata(rec *kgo.Record) (kastor.Metadata, error) {
	return wire.ParseHeaders(rec.Headers)
}

func producerMetadataHeaders(hs []kgo.RecordHeader) (kastor.Metadata, error) {
	return wire.ParseHeaders(hs)
}

// gathered returns the value of a metric given as name{label="value",...} (a subset of
// its labels), summed over matching series; 0 when absent.
func gathered(t *testing.T, reg *prometheus.Registry, metric string) float64 {
	t.Helper()
	name, sel, _ := strings.Cut(metric, "{")
	sel = strings.TrimSuffix(sel, "}")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for _, kv := range strings.Split(sel, ",") {
				if kv == "" {
					continue
				}
				k, v, _ := strings.Cut(kv, "=")
				if labels[k] != strings.Trim(v, `"`) {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}
