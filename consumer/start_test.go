package consumer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/kafkatest"
)

// Start returns a missing topic as its error, and otherwise applies events in the
// background until its context ends.
func TestStart(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 2)
	mem := consumer.NewMemory(balances{}, foldBalance)
	if _, err := consumer.Start(testCtx(t), r.KC, r.Config(func(cfg *consumer.Config[kastor.Event]) { cfg.Name = "nodlq" }), mem); err == nil ||
		!strings.Contains(err.Error(), consumer.DLQTopic(r.NS, "nodlq")) {
		t.Fatalf("Start without a dead-letter topic: %v, want an error naming it", err)
	}

	r.Write(r.Mix(10, 3, func(i int) int64 { return int64(i) })...)
	ctx, stop := context.WithCancel(testCtx(t))
	defer stop()
	cfg := consumer.LocalConfigFor(projection, codecs.Events, r.Config().AggregateTypes...)
	if _, err := consumer.Start(ctx, r.KC, cfg, mem); err != nil {
		t.Fatal(err)
	}
	if err := mem.WaitFor(testCtx(t), r.Ends()); err != nil {
		t.Fatal(err)
	}
}

// LocalConfigFor is ConfigFor with AllPartitions.
func TestLocalConfigFor(t *testing.T) {
	cfg := consumer.LocalConfigFor("p", codecs.Events, "a", "b")
	want := consumer.ConfigFor("p", codecs.Events, "a", "b")
	want.AllPartitions = true
	if !cfg.AllPartitions || cfg.Name != want.Name || cfg.Version != 1 || strings.Join(cfg.AggregateTypes, ",") != "a,b" {
		t.Errorf("LocalConfigFor = %+v, want %+v", cfg, want)
	}
}
