package interop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocExcerpts checks that the recipes in docs/wire-format.md are excerpts of the
// programs the interop test runs: every code block after an `<!-- excerpt: PATH -->`
// line must consist of lines of PATH (compared without indentation), in PATH's order.
// A line that is only an ellipsis comment (`// …`, `# …`) stands for lines left out.
func TestDocExcerpts(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "wire-format.md"))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- excerpt: "
	lines := strings.Split(string(doc), "\n")
	found := 0
	for i := 0; i < len(lines); i++ {
		rest, ok := strings.CutPrefix(lines[i], marker)
		if !ok {
			continue
		}
		path := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "-->"))
		src, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(path)))
		if err != nil {
			t.Fatalf("docs/wire-format.md:%d: %v", i+1, err)
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Fatalf("docs/wire-format.md:%d: the excerpt marker must be followed by a code block", i+1)
		}
		var block []string
		start := i + 2
		for i = start; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			block = append(block, lines[i])
		}
		checkExcerpt(t, path, strings.Split(string(src), "\n"), block, start+1)
		found++
	}
	if found < 2 {
		t.Fatalf("docs/wire-format.md has %d excerpts, want the Java and the Python recipe", found)
	}
}

func checkExcerpt(t *testing.T, path string, src, block []string, firstLine int) {
	t.Helper()
	at := 0 // the next line of src a line of the block may match
	for j, l := range block {
		l = strings.TrimSpace(l)
		if l == "" || l == "// …" || l == "# …" {
			continue
		}
		k := at
		for k < len(src) && strings.TrimSpace(src[k]) != l {
			k++
		}
		if k == len(src) {
			t.Errorf("docs/wire-format.md:%d: %q is not in %s (after line %d): update the excerpt", firstLine+j, l, path, at)
			continue
		}
		at = k + 1
	}
}
