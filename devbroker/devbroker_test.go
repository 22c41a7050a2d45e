package devbroker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/devbroker"
)

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	b, err := devbroker.Start(devbroker.DataDir(dir), devbroker.Ports(0))
	if err != nil {
		t.Fatal(err)
	}
	if b.Ports()[0] == 0 {
		t.Fatal("port 0 was not resolved to a free port")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte{byte(i)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	b.Close()
	b.Close() // idempotent

	b2, err := devbroker.Start(devbroker.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(b2.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	ends, err := kadm.NewClient(cl2).ListEndOffsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 10 {
		t.Fatalf("after restart the topic holds %d records, want 10", total)
	}
}

func TestNoAutoTopicCreation(t *testing.T) {
	b, err := devbroker.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic("missing"),
		kgo.RecordDeliveryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("v")}).FirstErr()
	if err == nil {
		t.Fatal("producing to a topic nobody created succeeded: the dev broker must not auto-create topics")
	}
}

func TestBadOptions(t *testing.T) {
	for name, opts := range map[string][]devbroker.Option{
		"zero nodes":     {devbroker.Nodes(0)},
		"ports mismatch": {devbroker.Nodes(2), devbroker.Ports(0)},
		"port range":     {devbroker.Ports(70000)},
	} {
		if b, err := devbroker.Start(opts...); err == nil {
			b.Close()
			t.Errorf("%s: no error", name)
		} else if !strings.HasPrefix(err.Error(), "devbroker: ") {
			t.Errorf("%s: error %q does not name the package", name, err)
		}
	}
}

func TestPortInUse(t *testing.T) {
	b, err := devbroker.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = devbroker.Start(devbroker.Ports(b.Ports()[0]))
	if err == nil || !strings.Contains(err.Error(), "cannot listen") {
		t.Fatalf("second broker on a used port: err = %v, want a 'cannot listen' error", err)
	}
}
