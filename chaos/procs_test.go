package chaos

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// gwProc is one `bank gateway` process.
type gwProc struct {
	instance string
	log      string
	cmd      *exec.Cmd
	started  time.Time
	done     chan struct{} // closed when the process has exited
	err      error         // its exit status, once done is closed
	// expected is set before the test kills or terminates the process: any other exit is
	// the gateway's own doing, and is reported.
	expected atomic.Bool
}

// fleet runs the gateway processes of a test: slots of which each holds the latest
// process started in it.
type fleet struct {
	t       *testing.T
	bin     string
	args    []string // after "gateway": brokers and topic file
	dir     string   // logs
	mu      sync.Mutex
	slots   []*gwProc
	all     []*gwProc
	exits   []string // unexpected exits, for the report
	started int
}

func newFleet(t *testing.T, bin, dir string, brokers []string, topicFile string) *fleet {
	f := &fleet{t: t, bin: bin, dir: dir, args: []string{"-brokers", strings.Join(brokers, ","), "-f", topicFile}}
	t.Cleanup(f.killAll)
	return f
}

// start starts a gateway with the library's defaults (no session or transaction flags)
// and instance ID instance in slot i.
func (f *fleet) start(i int, instance string) *gwProc {
	f.t.Helper()
	f.mu.Lock()
	f.started++
	n := f.started
	f.mu.Unlock()
	p := &gwProc{instance: instance, log: filepath.Join(f.dir, fmt.Sprintf("%02d-%s.log", n, instance)), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		f.t.Fatal(err)
	}
	p.cmd = exec.Command(f.bin, append(append([]string{"gateway"}, f.args...), "-instance", instance)...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		out.Close()
		f.t.Fatalf("starting gateway %s: %v", instance, err)
	}
	p.started = time.Now()
	go func() {
		p.err = p.cmd.Wait()
		out.Close()
		if !p.expected.Load() {
			f.mu.Lock()
			f.exits = append(f.exits, fmt.Sprintf("gateway %s exited by itself after %v (%v); last lines:\n%s",
				instance, time.Since(p.started).Round(time.Millisecond), p.err, tail(p.log, 15)))
			f.mu.Unlock()
		}
		close(p.done)
	}()
	f.mu.Lock()
	for len(f.slots) <= i {
		f.slots = append(f.slots, nil)
	}
	f.slots[i] = p
	f.all = append(f.all, p)
	f.mu.Unlock()
	return p
}

// slot returns the process in slot i.
func (f *fleet) slot(i int) *gwProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.slots[i]
}

func (p *gwProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill kills p with SIGKILL (which ends a stopped process too) and waits for its exit.
func (p *gwProc) kill() {
	p.expected.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *gwProc) signal(s syscall.Signal) error { return p.cmd.Process.Signal(s) }

// replaceExited starts a new process in each slot whose process exited by itself, so the
// fleet keeps its size; it returns how many it replaced.
func (f *fleet) replaceExited(name func(i int) string) int {
	n := 0
	for i := range f.size() {
		if p := f.slot(i); p.exited() && !p.expected.Load() {
			f.start(i, name(i))
			n++
		}
	}
	return n
}

func (f *fleet) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.slots)
}

// stopAll stops every gateway gracefully (SIGTERM: the open transaction is finished and
// the group left) and reports those that did not exit within timeout, which are killed.
func (f *fleet) stopAll(timeout time.Duration) []string {
	f.mu.Lock()
	procs := append([]*gwProc(nil), f.slots...)
	f.mu.Unlock()
	var slow []string
	for _, p := range procs {
		p.expected.Store(true)
		_ = p.signal(syscall.SIGCONT)
		_ = p.signal(syscall.SIGTERM)
	}
	deadline := time.After(timeout)
	for _, p := range procs {
		select {
		case <-p.done:
			if p.err != nil && !strings.Contains(p.err.Error(), "signal: killed") {
				slow = append(slow, fmt.Sprintf("gateway %s exited with %v on SIGTERM; last lines:\n%s", p.instance, p.err, tail(p.log, 15)))
			}
		case <-deadline:
			slow = append(slow, fmt.Sprintf("gateway %s did not exit within %v of SIGTERM; killed", p.instance, timeout))
			p.kill()
		}
	}
	return slow
}

// killAll kills every process still running: the test's cleanup, also after a failure.
func (f *fleet) killAll() {
	f.mu.Lock()
	procs := append([]*gwProc(nil), f.all...)
	f.mu.Unlock()
	for _, p := range procs {
		if !p.exited() {
			p.kill()
		}
	}
	if f.t.Failed() {
		for _, p := range procs {
			f.t.Logf("---- gateway %s (%s): last lines ----\n%s", p.instance, filepath.Base(p.log), tail(p.log, 25))
		}
	}
}

// unexpectedExits returns the exits the test did not cause.
func (f *fleet) unexpectedExits() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.exits...)
}

// logLines returns the lines of every gateway's log that contain any of words.
func (f *fleet) logLines(words ...string) []string {
	f.mu.Lock()
	procs := append([]*gwProc(nil), f.all...)
	f.mu.Unlock()
	var out []string
	for _, p := range procs {
		fh, err := os.Open(p.log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			for _, w := range words {
				if strings.Contains(sc.Text(), w) {
					out = append(out, p.instance+": "+sc.Text())
					break
				}
			}
		}
		fh.Close()
	}
	return out
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
