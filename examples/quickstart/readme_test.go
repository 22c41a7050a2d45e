package main

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeShowsTheQuickstartWhole: the README's "Writing a service" is this example,
// file by file, each after a comment naming it.
func TestReadmeShowsTheQuickstartWhole(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"examples/quickstart/cart/cart.go", "examples/quickstart/main.go"} {
		src, err := os.ReadFile("../../" + f)
		if err != nil {
			t.Fatal(err)
		}
		block := "<!-- " + f + " -->\n```go\n" + string(src) + "```\n"
		if !strings.Contains(string(readme), block) {
			t.Errorf("README.md does not show %s as it is: copy the file into the block after <!-- %s -->", f, f)
		}
	}
}
