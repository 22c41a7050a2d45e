package dockerenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// UnresolvableHost is the Docker host testcontainers is made to guess in the process
// WithBadHostGuess starts: the .invalid top-level domain never resolves (RFC 6761).
const UnresolvableHost = "kastor-not-this-host.invalid"

// badHostGuessChild names, in the child's environment, the test the child runs.
const badHostGuessChild = "KASTOR_BAD_HOST_GUESS_CHILD"

// WithBadHostGuess runs the calling top-level test again in a child process of the test
// binary that looks like a machine where testcontainers takes a wrong address for the Docker
// host (in a container, its default gateway): there TESTCONTAINERS_HOST_OVERRIDE is
// UnresolvableHost, and no host name can be looked up over DNS, so code that used the guess
// fails at once without a packet leaving the machine. In the child it returns true and the
// test goes on; in the parent it returns false once the child's pass, skip or failure has
// been made the test's own.
func WithBadHostGuess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(badHostGuessChild) == t.Name() {
		noDNS(t)
		return true
	}
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	if d, ok := t.Deadline(); ok {
		// The child stops before the parent's own deadline, so it cleans up its containers.
		args = append(args, fmt.Sprintf("-test.timeout=%v", time.Until(d)*9/10))
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.WaitDelay = 30 * time.Second
	var env []string
	for _, kv := range os.Environ() {
		// The child must test the harness's own Ryuk default: Ryuk dials the guessed host.
		if !strings.HasPrefix(kv, "TESTCONTAINERS_HOST_OVERRIDE=") && !strings.HasPrefix(kv, "TESTCONTAINERS_RYUK_DISABLED=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "TESTCONTAINERS_HOST_OVERRIDE="+UnresolvableHost, badHostGuessChild+"="+t.Name())
	b, err := cmd.CombinedOutput()
	out := string(b)
	switch {
	case err != nil:
		t.Fatalf("under TESTCONTAINERS_HOST_OVERRIDE=%s: %v\n%s", UnresolvableHost, err, testLines(out))
	case strings.Contains(out, "--- SKIP: "+t.Name()+" "):
		t.Skipf("skipped under TESTCONTAINERS_HOST_OVERRIDE=%s:\n%s", UnresolvableHost, testLines(out))
	case !strings.Contains(out, "--- PASS: "+t.Name()+" "):
		t.Fatalf("under TESTCONTAINERS_HOST_OVERRIDE=%s the test did not run:\n%s", UnresolvableHost, testLines(out))
	}
	t.Logf("passed in a child process under TESTCONTAINERS_HOST_OVERRIDE=%s with DNS off", UnresolvableHost)
	return false
}

// noDNS makes every DNS query of the process fail before it is sent, and the test fail if
// any was attempted; /etc/hosts still answers, and IP addresses need no lookup.
func noDNS(t *testing.T) {
	var queries atomic.Int64
	net.DefaultResolver = &net.Resolver{
		PreferGo: true, // the cgo resolver would not use Dial
		Dial: func(_ context.Context, network, address string) (net.Conn, error) {
			queries.Add(1)
			return nil, fmt.Errorf("dockerenv: DNS is off in this test process (a query to %s %s)", network, address)
		},
	}
	t.Cleanup(func() {
		if n := queries.Load(); n > 0 {
			t.Errorf("%d DNS queries were attempted: something looked a host name up (the guess %s?)", n, UnresolvableHost)
		}
	})
}

// testLines drops the test framework's own lines from a child's output, so that the parent's
// output has a single verdict for the test.
func testLines(out string) string {
	var keep []string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		l := strings.TrimSpace(line)
		if !strings.HasPrefix(l, "=== ") && !strings.HasPrefix(l, "--- ") && l != "PASS" && l != "FAIL" {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
