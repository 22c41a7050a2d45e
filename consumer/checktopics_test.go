package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/internal/logtest"
)

// checkReader is a reader of topic "events" (dead letters: DLQTopic("ns", "check")) at
// addr, logging to the buffer returned.
func checkReader(t *testing.T, addr string) (*consumer.Reader[kastor.Event], *logtest.Buffer) {
	t.Helper()
	logs := &logtest.Buffer{}
	sink := consumer.Handler(func(context.Context, kastor.Envelope[kastor.Event]) error { return nil })
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	kc, err := cluster.New(cl, "ns", cluster.Logger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := consumer.New(kc, consumer.Config[kastor.Event]{Name: "check", Version: 1, Topics: []string{"events"},
		Events: codecs.Events}, sink)
	if err != nil {
		t.Fatal(err)
	}
	return rd, logs
}

// TestCheckTopicsWaitsForTheBroker: a reader started while its broker is down (nothing
// listens at the seed address) starts once the broker is up, and logs the wait.
func TestCheckTopicsWaitsForTheBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	rd, logs := checkReader(t, fmt.Sprintf("127.0.0.1:%d", port))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		counts map[string]int32
		err    error
	}
	done := make(chan result, 1)
	go func() {
		counts, err := consumer.CheckTopics(ctx, rd)
		done <- result{counts, err}
	}()
	select {
	case res := <-done:
		t.Fatalf("the check returned while no broker was listening: %v", res.err)
	case <-time.After(time.Second):
	}
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(3, "events", consumer.DLQTopic("ns", "check")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res := <-done
	if res.err != nil || res.counts["events"] != 3 {
		t.Fatalf("check after the broker started: %v, %v\n%s", res.counts, res.err, logs)
	}
	out := logs.String()
	for _, want := range []string{
		`level=WARN msg="waiting for the metadata of topics events, ns.proj.check.dlq; retrying"`,
		"connection refused",
		`level=INFO msg="done waiting for the metadata of topics events, ns.proj.check.dlq"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckTopicsMissingTopicFailsFast: a missing topic is not waited for.
func TestCheckTopicsMissingTopicFailsFast(t *testing.T) {
	c, err := kfake.NewCluster(kfake.SeedTopics(3, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd, logs := checkReader(t, c.ListenAddrs()[0])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = consumer.CheckTopics(ctx, rd)
	if err == nil || !strings.Contains(err.Error(), `dead-letter topic "ns.proj.check.dlq" does not exist`) {
		t.Fatalf("check without the dead-letter topic: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second || strings.Contains(logs.String(), "waiting for") {
		t.Errorf("the missing topic was waited for (%v):\n%s", d, logs)
	}
}
