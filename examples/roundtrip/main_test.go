package main

import (
	"context"
	"testing"
	"time"
)

// TestRoundTripOnEmbeddedBroker runs the demo end to end, as `make demo` does.
func TestRoundTripOnEmbeddedBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, "../kastor.yaml", ""); err != nil {
		t.Fatal(err)
	}
}
