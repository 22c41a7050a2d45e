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
		"cart.AddItem: version 1, err=<nil>; the projection has 2 items in cart-1",
		"cart.AddItem: version 2, err=<nil>; the projection has 3 items in cart-1",
		"cart.CheckOut: version 3, err=<nil>; the projection has 3 items in cart-1",
		"cart.CheckOut: version 0, err=kastor: shop.cart \"cart-1\" rejected command ",
		"the cart is checked out; the projection has 3 items in cart-1",
		"Next: go run ./examples/bank demo",
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}
