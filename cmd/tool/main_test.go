package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/topics"
)

// realKafka is shared by the package's tests (starting a cluster takes seconds); it starts
// on first use and TestMain closes it. Each test uses its own namespace.
var realKafka = kafkatest.NewShared()

func TestMain(m *testing.M) { kafkatest.Main(m, realKafka) }

type result struct {
	code           int
	stdout, stderr string
}

// kastor runs the CLI in process.
func kastor(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	t.Logf("kastor %s -> %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return result{code, stdout.String(), stderr.String()}
}

// namespace returns a namespace unique to the test, so tests can share a cluster.
func namespace(t *testing.T) string {
	return strings.ToLower(kafkatest.TopicName(t))
}

// oneNodeYAML is a topic file for a one-broker cluster: RF 1 and min ISR 1.
func oneNodeYAML(ns string) string {
	return fmt.Sprintf(`namespace: %s
defaults:
  partitions: 3
  replicationFactor: 1
  minInsyncReplicas: 1
  commandsRetention: 2d
  repliesRetention: 1h
aggregates:
  - type: bank.account
  - type: shop.order
    partitions: 2
schemas:
  replicationFactor: 1
`, ns)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kastor.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUsageAndInputErrors(t *testing.T) {
	good := writeFile(t, oneNodeYAML("ns"))
	tests := []struct {
		name string
		yaml string // written to a file passed as -f when not empty
		args []string
		code int
		want []string // substrings of stderr
	}{
		{"bad output", "", []string{"topics", "apply", "-f", good, "-o", "yaml"}, exitUsage,
			[]string{`kastor: invalid --output "yaml": want text or json`, "kastor topics apply --help"}},
		{"bad output on describe", "", []string{"topics", "describe", "-f", good, "--output=xml"}, exitUsage,
			[]string{`invalid --output "xml"`}},
		{"bad timeout", "", []string{"topics", "apply", "-f", good, "--timeout", "0s"}, exitUsage,
			[]string{"invalid --timeout"}},
		{"unknown flag", "", []string{"topics", "apply", "--partitions", "3"}, exitUsage,
			[]string{"kastor: unknown flag: --partitions"}},
		{"unknown command", "", []string{"topic", "apply"}, exitUsage,
			[]string{`kastor: unknown command "topic" for "kastor"`, `did you mean "topics"?`}},
		{"unknown subcommand", "", []string{"topics", "create"}, exitUsage,
			[]string{`unknown command "create" for "kastor topics"`}},
		{"extra argument", "", []string{"topics", "apply", "kastor.yaml"}, exitUsage,
			[]string{`unexpected argument "kastor.yaml"`}},
		{"brokers on dev", "", []string{"dev", "--brokers", "x:1"}, exitUsage,
			[]string{"--brokers does not apply to kastor dev"}},
		{"missing file", "", []string{"topics", "apply", "-f", filepath.Join(t.TempDir(), "nope.yaml")}, exitError,
			[]string{"nope.yaml not found: name one with -f"}},
		{"unknown key", "namespace: ns\naggregates:\n  - type: bank.account\n    partiton: 24\n", []string{"topics", "apply"}, exitError,
			[]string{`kastor.yaml:4: unknown key "partiton" in an aggregate`}},
		{"bad YAML", "namespace: ns\naggregates: [\n", []string{"topics", "describe"}, exitError,
			[]string{"kastor.yaml:", "invalid YAML"}},
		{"bad value", "namespace: ns\ndefaults:\n  partitions: 0\naggregates:\n  - type: a\n", []string{"topics", "apply", "--dry-run"}, exitError,
			[]string{"kastor.yaml:3: defaults.partitions: must be at least 1"}},
		{"bad file for dev", "namespace: ns\n", []string{"dev", "--port", "0"}, exitError,
			[]string{"aggregates: at least one aggregate type is required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.yaml != "" {
				args = append(args, "-f", writeFile(t, tc.yaml))
			}
			start := time.Now()
			r := kastor(t, args...)
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d", r.code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not contain %q", r.stderr, w)
				}
			}
			if !strings.HasPrefix(r.stderr, "kastor: ") {
				t.Errorf("stderr %q lacks the kastor: prefix", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			// None of these may try a broker (the default one could be anything).
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	r := kastor(t, "--help")
	if r.code != exitOK {
		t.Fatalf("exit %d", r.code)
	}
	for _, w := range []string{"<ns>.<agg>.events", "never compacted", "kastor dev -f examples/kastor.yaml", "--brokers", "--timeout", "--output", "3 drift"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("help lacks %q", w)
		}
	}
	r = kastor(t, "topics", "apply", "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "--dry-run") || !strings.Contains(r.stdout, "-f, --file") {
		t.Errorf("apply help: %d %s", r.code, r.stdout)
	}
}

func TestUnreachableBroker(t *testing.T) {
	file := writeFile(t, oneNodeYAML("ns"))
	for _, cmd := range [][]string{{"topics", "apply"}, {"topics", "describe"}, {"topics", "apply", "--dry-run"}} {
		start := time.Now()
		r := kastor(t, append(cmd, "-f", file, "--brokers", "127.0.0.1:1", "--timeout", "2s")...)
		elapsed := time.Since(start)
		if r.code != exitError {
			t.Errorf("%v: exit %d, want %d", cmd, r.code, exitError)
		}
		want := "kastor: cannot reach Kafka at 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused (timeout 2s)\n"
		if r.stderr != want {
			t.Errorf("%v: stderr %q, want %q", cmd, r.stderr, want)
		}
		if elapsed > 5*time.Second {
			t.Errorf("%v: took %v with --timeout 2s", cmd, elapsed)
		}
	}
}

// A broker that accepts connections and never answers is bounded by --timeout too.
func TestSilentBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	r := kastor(t, "topics", "describe", "-f", writeFile(t, oneNodeYAML("ns")), "--brokers", ln.Addr().String(), "--timeout", "1s")
	if r.code != exitError || !strings.Contains(r.stderr, "cannot reach Kafka at "+ln.Addr().String()) || !strings.Contains(r.stderr, "(timeout 1s)") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %v with --timeout 1s", d)
	}
}

func TestBrokersPrecedence(t *testing.T) {
	env := map[string]string{}
	a := &app{getenv: func(k string) string { return env[k] }}
	cfgBrokers := []string{"file:9092"}
	check := func(want string, cfg []string) {
		t.Helper()
		got := strings.Join(a.resolveBrokers(&topics.Config{Brokers: cfg}), ",")
		if got != want {
			t.Errorf("brokers %q, want %q", got, want)
		}
	}
	check("127.0.0.1:9092", nil)
	check("file:9092", cfgBrokers)
	env["KAFKA_BROKERS"] = " env1:9092, env2:9092 "
	check("env1:9092,env2:9092", cfgBrokers)
	a.brokers = "flag:9092"
	check("flag:9092", cfgBrokers)
}
