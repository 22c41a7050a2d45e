package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestTransfer runs the example on the embedded broker and checks what it prints: one
// transfer completed, one refunded after a refused credit, one refunded after its
// credit's deadline, and the balances they imply.
func TestTransfer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out, "", 2*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := []string{
		"t1: alice -> bob 30: completed, saga version 3",
		"t2: alice -> carol 20: refunded (step \"credit\": kastor: bank.account \"carol-",
		"account is not open), saga version 4",
		"t3: dave -> bob 10: refunded (step \"credit\": no outcome within 2s)",
		"balances: alice 70, bob 30, dave 50 (total 150)",
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}
