package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// binDir holds the bank binary built for this test binary; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	bankBin   string
	buildErr  error
)

// bankBinary builds examples/bank once per test binary, so both modes run the same
// executable and neither pays for the build twice. The gateways are the example's own
// process, not a test helper: what the suite checks is what users run.
func bankBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "kastor-chaos-"); err != nil {
			buildErr = err
			return
		}
		bankBin = filepath.Join(binDir, "bank")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bankBin, "./examples/bank")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./examples/bank: %v\n%s", err, out)
			return
		}
		t.Logf("built the bank example in %v", time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bankBin
}

// moduleRoot is the directory of the module's go.mod (go test runs in the package's).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside the module")
	}
	return filepath.Dir(mod), nil
}

// defaultDuration is the fault phase of each test when CHAOS_DURATION is not set: long
// enough for several kills, the zombie and a broker outage, short enough that `make test`
// (which runs this package beside all the others) grows by a few minutes only.
const defaultDuration = 60 * time.Second

// faultPhase returns how long faults are injected: CHAOS_DURATION, or defaultDuration.
func faultPhase(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("CHAOS_DURATION")
	if v == "" {
		return defaultDuration
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("CHAOS_DURATION=%q: want a positive Go duration such as 90s or 5m", v)
	}
	return d
}

// seed returns CHAOS_SEED, or a seed from the clock; the test logs it so that a failing
// run's choices (victims, restarts, amounts) can be replayed.
func seed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an unsigned integer", v)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

// logDir is where the gateways' and senders' logs go: CHAOS_LOG_DIR (kept), or a
// directory removed with the test.
func logDir(t *testing.T) string {
	t.Helper()
	if v := os.Getenv("CHAOS_LOG_DIR"); v != "" {
		dir := filepath.Join(v, strings.ReplaceAll(t.Name(), "/", "_")+"-"+time.Now().Format("150405"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}
