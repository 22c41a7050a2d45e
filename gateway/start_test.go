package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
)

// Start returns a missing topic as its error, and otherwise serves commands until its
// context ends.
func TestStart(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	other, err := r.kc.In(r.ns + "-none")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gateway.Start(ctx, other, r.config()); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("Start without topics: %v, want a missing topic", err)
	}

	gctx, stop := context.WithCancel(ctx)
	defer stop()
	if _, err := gateway.Start(gctx, r.kc, r.config()); err != nil {
		t.Fatal(err)
	}
	if rep := r.send("a1", "c1", openAccount{}); rep.Status != gateway.StatusOK || rep.To != 1 {
		t.Fatalf("reply %+v, want OK 1..1", rep)
	}
}
