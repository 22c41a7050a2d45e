// Package logtest gives tests a logger whose output they can read while it is written:
// several of kastor's guarantees are that a wait or a failure is logged, and the tests
// check the lines.
package logtest

import (
	"bytes"
	"log/slog"
	"sync"
)

// Buffer is a slog destination safe for concurrent writes and reads.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// New returns a text logger (level Info) and the buffer it writes to.
func New() (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}
