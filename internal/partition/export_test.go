package partition

import (
	"testing"
	"time"
)

// SetStallAfter shortens how long a read polls without a record before it logs a wait.
func SetStallAfter(t testing.TB, d time.Duration) {
	old := stallAfter
	stallAfter = d
	t.Cleanup(func() { stallAfter = old })
}
