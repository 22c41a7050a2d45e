package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `make demo` in process and checks what it prints.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := demo(ctx, &out, "../kastor.yaml"); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"ok, versions 1..1", "event v1 bank.AccountOpened",
		"rejected: insufficient funds: balance 70, withdrawal 500",
		"rejected: cannot close with a balance of 70",
		"event v5 bank.AccountClosed",
		"state {Owner:Alice Balance:0 Open:false Closed:true}",
		"projection account-balances v1 (in memory): catching up",
		"acct-alice balance    0  version 5  open false",
		"acct-bob   balance  250  version 2  open true",
		"query after it: balance 175 (version 3)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q:\n%s", want, got)
		}
	}
}
