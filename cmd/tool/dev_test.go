package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// devProcess is `kastor dev` running in process.
type devProcess struct {
	cancel  context.CancelFunc
	lines   chan string   // stdout lines, closed at EOF
	exited  chan struct{} // closed when run has returned
	code    int           // run's exit code, once exited is closed
	stderr  *lockedBuffer
	brokers string
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// drain reads lines until the channel closes, failing the test after 30s.
func drain(t *testing.T, lines <-chan string) []string {
	t.Helper()
	var out []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return out
			}
			out = append(out, line)
		case <-timeout:
			t.Fatalf("output did not end within 30s; so far %q", out)
		}
	}
}

// startDev runs kastor dev with args and waits for its "export KAFKA_BROKERS=" line. The
// lines before it are returned.
func startDev(t *testing.T, args ...string) (*devProcess, []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	p := &devProcess{cancel: cancel, lines: make(chan string, 100), exited: make(chan struct{}), stderr: &lockedBuffer{}}
	go func() {
		p.code = run(ctx, append([]string{"dev"}, args...), pw, p.stderr)
		close(p.exited)
		pw.Close()
	}()
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-p.exited
	})
	var before []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.exited
				t.Fatalf("kastor dev ended before printing its address; exit %d\nstdout:\n%s\nstderr:\n%s",
					p.code, strings.Join(before, "\n"), p.stderr.String())
			}
			t.Log("dev: " + line)
			if b, ok := strings.CutPrefix(line, "export KAFKA_BROKERS="); ok {
				p.brokers = b
				return p, before
			}
			before = append(before, line)
		case <-timeout:
			t.Fatalf("no address from kastor dev after 30s; stderr:\n%s", p.stderr.String())
		}
	}
}

// stop cancels the context (as Ctrl-C does) and returns the exit code and remaining output.
func (p *devProcess) stop(t *testing.T) (int, []string) {
	t.Helper()
	p.cancel()
	rest := drain(t, p.lines)
	<-p.exited // the pipe closes after run returns
	return p.code, rest
}

func produceConsume(t *testing.T, brokers, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("acc-1"), Value: []byte("opened")}).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	consume(t, cl, ctx, "acc-1", "opened")
}

func consume(t *testing.T, cl *kgo.Client, ctx context.Context, key, value string) {
	t.Helper()
	for {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		if recs := fs.Records(); len(recs) > 0 {
			if string(recs[0].Key) != key || string(recs[0].Value) != value {
				t.Fatalf("consumed %s=%s, want %s=%s", recs[0].Key, recs[0].Value, key, value)
			}
			return
		}
	}
}

func TestDev(t *testing.T) {
	ns := namespace(t)
	p, before := startDev(t, "--port", "0", "-f", writeFile(t, oneNodeYAML(ns)))
	if len(before) == 0 || !strings.HasPrefix(before[0], "kastor dev: Kafka-protocol broker (embedded kfake, not Apache Kafka) listening on 127.0.0.1:") ||
		!strings.HasSuffix(before[0], p.brokers) {
		t.Errorf("first line %q, address %s", before, p.brokers)
	}
	if !strings.Contains(strings.Join(before, "\n"), "11 topics: 11 created") {
		t.Errorf("topics not reported as created:\n%s", strings.Join(before, "\n"))
	}
	produceConsume(t, p.brokers, ns+".bank.account.commands")

	// The broker serves the topics commands too.
	if r := kastor(t, "topics", "describe", "-f", writeFile(t, oneNodeYAML(ns)), "--brokers", p.brokers); r.code != exitOK {
		t.Errorf("describe against kastor dev: exit %d", r.code)
	}

	code, rest := p.stop(t)
	if code != exitOK {
		t.Errorf("exit %d after cancel; stderr %s", code, p.stderr.String())
	}
	if len(rest) == 0 || rest[len(rest)-1] != "kastor dev: stopped" {
		t.Errorf("output after cancel: %q", rest)
	}
}

func TestDevNodesAndJSON(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--port", "0", "--nodes", "3", "-o", "json"}, pw, io.Discard)
		pw.Close()
	}()
	var out devOutput
	if err := json.NewDecoder(pr).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Brokers) != 3 {
		t.Errorf("brokers %v, want 3", out.Brokers)
	}
	cancel()
	_, _ = io.Copy(io.Discard, pr)
	if code := <-done; code != exitOK {
		t.Errorf("exit %d", code)
	}
}

// With --data-dir, topics and records survive a restart, and applying the same file again
// changes nothing.
func TestDevDataDir(t *testing.T) {
	ns := namespace(t)
	dir := filepath.Join(t.TempDir(), "data")
	file := writeFile(t, oneNodeYAML(ns))
	topic := ns + ".bank.account.events"

	p, _ := startDev(t, "--port", "0", "--data-dir", dir, "-f", file)
	produceConsume(t, p.brokers, topic)
	if code, _ := p.stop(t); code != exitOK {
		t.Fatalf("first run: exit %d", code)
	}

	p, before := startDev(t, "--port", "0", "--data-dir", dir, "-f", file)
	if !strings.Contains(strings.Join(before, "\n"), "11 topics: 11 unchanged") {
		t.Errorf("second start:\n%s", strings.Join(before, "\n"))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	consume(t, cl, ctx, "acc-1", "opened")
	if code, _ := p.stop(t); code != exitOK {
		t.Errorf("second run: exit %d", code)
	}
}

// The built binary stops cleanly on SIGTERM, with exit code 0: main wires the signal.
func TestDevBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary")
	}
	bin := filepath.Join(t.TempDir(), "kastor")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "dev", "--port", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	var brokers string
	for brokers == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("kastor dev exited early: %v", <-exited)
			}
			if b, ok := strings.CutPrefix(line, "export KAFKA_BROKERS="); ok {
				brokers = b
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("no address after 30s")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest := drain(t, lines)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("kastor dev did not stop on SIGTERM")
	}
	if strings.Join(rest, "\n") != "kastor dev: ready; press Ctrl-C to stop\nkastor dev: stopped" {
		t.Errorf("output after the address: %q", rest)
	}
}
