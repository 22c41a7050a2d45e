package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Off a terminal the renderer prints plain lines, at most one a second until done; with
// JSON, one line per change.
func TestProgressRenderer(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	p := newProgress(&buf, false)
	p.now = func() time.Time { return now }
	p.update(2, 0, 100)
	now = now.Add(500 * time.Millisecond)
	p.update(2, 10, 100) // within a second: not printed
	now = now.Add(1500 * time.Millisecond)
	p.update(2, 40, 100)
	p.update(2, 100, 100) // done: always printed
	p.finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "40/100 offsets  40%  20/s  ETA 3s") || strings.Contains(buf.String(), "\r") {
		t.Fatalf("plain lines:\n%s", buf.String())
	}
	buf.Reset()
	p = newProgress(&buf, true)
	p.update(2, 5, 10)
	p.update(2, 5, 10)
	var pl progressLine
	if err := json.Unmarshal(buf.Bytes(), &pl); err != nil || pl.Type != "progress" || pl.Done != 5 || pl.Total != 10 {
		t.Fatalf("json: %q %v", buf.String(), err)
	}
	if s := progressText(2, 15, 30, 5, 3, true); !strings.Contains(s, "[###############---------------] 15/30") {
		t.Errorf("bar: %q", s)
	}
}
