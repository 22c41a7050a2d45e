package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestQuickstart runs the quickstart on the embedded broker and checks what it prints.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out, ""); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := []string{
		"cart.AddItem: ok, version 1; the projection has 2 items in cart-1",
		"cart.AddItem: ok, version 2; the projection has 3 items in cart-1",
		"cart.CheckOut: ok, version 3; the projection has 3 items in cart-1",
		"the cart is checked out",
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}
