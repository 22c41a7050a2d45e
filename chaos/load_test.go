package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/producer"
)

// The load: workers that send the bank's commands the way a careful application does, and
// probes that ask every shard a harmless question continuously, so that each shard's
// availability is measured even when no worker happens to be sending to it.

// loadConfig tunes the workers.
type loadConfig struct {
	workers  int
	accounts int
	// attemptTimeout bounds one Send; maxAttempts bounds the attempts of a command before
	// its outcome is asked for. A gateway failover takes the session timeout (6 s) and a
	// restore, so a command caught in one needs a few attempts.
	attemptTimeout time.Duration
	maxAttempts    int
	// questionTimeout bounds one Outcome call; maxQuestions bounds them.
	questionTimeout time.Duration
	maxQuestions    int
	// pause spaces a worker's commands and a failed write's retry, so that the load leaves
	// the shared 2-core machine some room; it is pacing, not synchronisation.
	pause time.Duration
}

var defaultLoad = loadConfig{
	workers: 8, accounts: 200,
	attemptTimeout: 3 * time.Second, maxAttempts: 8,
	questionTimeout: 5 * time.Second, maxQuestions: 24,
	pause: 5 * time.Millisecond,
}

// recorder holds everything the senders did and were told. Safe for concurrent use.
type recorder struct {
	partitions int32

	mu       sync.Mutex
	cmds     map[string]*command
	attempts []attempt
	watches  []*watch
	errs     []string // answers no check expects (undecodable, unknown errors)
}

func newRecorder(partitions int32) *recorder {
	return &recorder{partitions: partitions, cmds: map[string]*command{}}
}

func (r *recorder) add(c *command) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds[c.id] = c
}

func (r *recorder) tell(c *command, t told) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.told = append(c.told, t)
}

func (r *recorder) attempted(c *command) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.attempts++
}

func (r *recorder) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 100 {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
}

// record adds an attempt and wakes the watches it satisfies.
func (r *recorder) record(a attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, a)
	if !a.answered {
		return
	}
	kept := r.watches[:0]
	for _, w := range r.watches {
		if w.need[a.partition] && !a.start.Before(w.since) {
			delete(w.need, a.partition)
			w.got[a.partition] = a.end
		}
		if len(w.need) == 0 {
			close(w.done)
			continue
		}
		kept = append(kept, w)
	}
	r.watches = kept
}

// snapshot copies the attempts and the commands (deeply enough for the checks).
func (r *recorder) snapshot() ([]attempt, map[string]*command, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cmds := make(map[string]*command, len(r.cmds))
	for id, c := range r.cmds {
		cp := *c
		cp.told = append([]told(nil), c.told...)
		cmds[id] = &cp
	}
	return append([]attempt(nil), r.attempts...), cmds, append([]string(nil), r.errs...)
}

// watch waits for answers from a set of shards to attempts started at or after since.
type watch struct {
	since time.Time
	need  map[int32]bool
	got   map[int32]time.Time
	done  chan struct{}
}

// watch starts watching the shards ps from since on. Start it before the fault, so that
// no answer can slip between the fault and the watch.
func (r *recorder) watch(ps []int32, since time.Time) *watch {
	w := &watch{since: since, need: map[int32]bool{}, got: map[int32]time.Time{}, done: make(chan struct{})}
	for _, p := range ps {
		w.need[p] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(w.need) == 0 {
		close(w.done)
	} else {
		r.watches = append(r.watches, w)
	}
	return w
}

// wait waits until every shard of the watch answered, or timeout; it returns the shards
// still silent.
func (r *recorder) wait(w *watch, timeout time.Duration) []int32 {
	select {
	case <-w.done:
	case <-time.After(timeout):
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var silent []int32
	for p := range r.partitions {
		if w.need[p] {
			silent = append(silent, p)
		}
	}
	return silent
}

// worker sends commands to the accounts it alone owns. Owning its accounts keeps every
// account's recent commands (the gateway's dedupe window, 100 per account) under the
// worker's control: it asks for a command's outcome before sending anything else to that
// account, so the answer cannot have left the window.
type worker struct {
	id       int
	cfg      loadConfig
	s        *gateway.Sender[account.Command]
	rec      *recorder
	rnd      *rand.Rand
	run      string
	accounts []string
	opened   map[string]bool
	// doubt holds the accounts with a command whose outcome is still unknown: nothing more
	// is sent to them until resolve learns it.
	doubt map[string]*command
	seq   int
}

// loop sends commands until stop is closed, finishing the command under way.
func (w *worker) loop(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(w.cfg.pause):
		}
		var free []string
		for _, a := range w.accounts {
			if w.doubt[a] == nil {
				free = append(free, a)
			}
		}
		if len(free) == 0 {
			w.rec.fail("worker %d: every account has a command of unknown outcome; it stops", w.id)
			return
		}
		w.do(w.next(free[w.rnd.IntN(len(free))]))
	}
}

// next makes the next command for acct: an Open first, then deposits and withdrawals
// (some of which the domain refuses for lack of funds: refusals are outcomes too).
func (w *worker) next(acct string) *command {
	w.seq++
	c := &command{id: fmt.Sprintf("%s-w%d-%d", w.run, w.id, w.seq), account: acct,
		partition: producer.PartitionFor([]byte(acct), w.rec.partitions)}
	switch {
	case !w.opened[acct]:
		c.kind = "open"
	case w.rnd.IntN(5) < 3:
		c.kind, c.amount = "deposit", 1+w.rnd.Int64N(100)
	default:
		c.kind, c.amount = "withdraw", 1+w.rnd.Int64N(150)
	}
	w.rec.add(c)
	return c
}

func (c *command) payload() account.Command {
	switch c.kind {
	case "open":
		return account.Open{Owner: "owner of " + c.account}
	case "deposit":
		return account.Deposit{Amount: c.amount}
	}
	return account.Withdraw{Amount: c.amount}
}

// do sends c until an attempt gets its outcome, at most maxAttempts times, every attempt
// with the same command ID: that is what makes a retry safe (the gateway executes an ID
// at most once and answers every later attempt with the first outcome). Without an
// outcome it asks for one.
func (w *worker) do(c *command) {
	cmd := kastor.Command[account.Command]{AggregateID: c.account, ID: c.id, ExpectedVersion: kastor.AnyVersion, Payload: c.payload()}
	for range w.cfg.maxAttempts {
		w.rec.attempted(c)
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.attemptTimeout)
		start := time.Now()
		res, err := w.s.Send(ctx, cmd)
		end := time.Now()
		cancel()
		a := attempt{partition: c.partition, start: start, end: end}
		switch {
		case err == nil:
			a.answered, a.verdict = true, true
			w.rec.record(a)
			detail := ""
			if res.Duplicate {
				detail = "duplicate"
			}
			w.settled(c, told{at: end, via: "send", kind: toldSuccess, from: res.From, to: res.To, detail: detail})
			return
		case errors.Is(err, kastor.ErrRejected), errors.Is(err, kastor.ErrVersionConflict), errors.Is(err, kastor.ErrInvariant):
			a.answered, a.verdict = true, true
			w.rec.record(a)
			w.settled(c, told{at: end, via: "send", kind: toldRefused, detail: err.Error()})
			return
		case errors.Is(err, kastor.ErrExpired):
			// Read too late by the shard's owner, not executed: the shard answers, and the
			// command is sent again.
			a.answered = true
			w.rec.record(a)
		case errors.Is(err, kastor.ErrUnavailable):
			a.answered = true
			w.rec.record(a)
			w.rec.fail("command %s: %v", c.id, err)
			time.Sleep(w.cfg.pause * 20)
		case errors.Is(err, kastor.ErrTimeout):
			a.timedOut = true
			w.rec.record(a)
		case errors.Is(err, kastor.ErrUndecodable), errors.Is(err, kastor.ErrShuttingDown):
			w.rec.record(a)
			w.rec.fail("command %s: %v", c.id, err)
		default:
			// The attempt could not be written (a broker down, say): no answer, and the
			// outcome is as unknown as after a timeout.
			w.rec.record(a)
			time.Sleep(w.cfg.pause * 20)
		}
	}
	w.doubt[c.account] = c
	w.resolve(c)
}

// settled records an outcome the caller got.
func (w *worker) settled(c *command, t told) {
	w.rec.tell(c, t)
	if c.kind == "open" {
		// A refused Open means the account exists: either way it is open now.
		w.opened[c.account] = true
	}
}

// resolve asks the gateway for c's outcome with Sender.Outcome. By now every attempt of c
// has passed its deadline (each Send returned at its context's deadline, and the
// deadline an attempt carries is earlier), so no gateway will execute one any more, and
// the question, written behind all of them in the shard, learns c's final outcome.
func (w *worker) resolve(c *command) bool {
	for range w.cfg.maxQuestions {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.questionTimeout)
		res, err := w.s.Outcome(ctx, c.account, c.id)
		cancel()
		now := time.Now()
		switch {
		case err == nil:
			w.settled(c, told{at: now, via: "outcome", kind: toldSuccess, from: res.From, to: res.To})
		case errors.Is(err, kastor.ErrRejected), errors.Is(err, kastor.ErrVersionConflict), errors.Is(err, kastor.ErrInvariant):
			w.settled(c, told{at: now, via: "outcome", kind: toldRefused, detail: err.Error()})
		case errors.Is(err, kastor.ErrNoOutcome):
			w.settled(c, told{at: now, via: "outcome", kind: toldNone})
		default:
			time.Sleep(w.cfg.pause * 20)
			continue
		}
		delete(w.doubt, c.account)
		return true
	}
	return false
}

// probe asks shard p about a command that does not exist, again and again, until stop is
// closed. Sender.Outcome never executes anything, creates no state, and is answered
// through the shard's owner and its transactions like a command: its answers time the
// shard's availability.
func probe(s *gateway.Sender[account.Command], rec *recorder, p int32, aggregate, run string, every time.Duration, stop <-chan struct{}) {
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		_, err := s.Outcome(ctx, aggregate, fmt.Sprintf("%s-probe-%d-%d", run, p, i))
		end := time.Now()
		cancel()
		a := attempt{partition: p, start: start, end: end, probe: true}
		switch {
		case err == nil, errors.Is(err, kastor.ErrNoOutcome), errors.Is(err, kastor.ErrRejected):
			a.answered = true
		case errors.Is(err, kastor.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded):
			a.answered = true // the question expired in the queue: the owner answered it
		case errors.Is(err, kastor.ErrTimeout):
			a.timedOut = true
		}
		rec.record(a)
		wait := every
		if !a.answered {
			wait = every / 4 // a failed write: retry soon, but do not spin
		}
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
	}
}

// probeKeys returns, for each shard, an aggregate ID that hashes to it.
func probeKeys(run string, partitions int32) []string {
	keys := make([]string, partitions)
	found := int32(0)
	for i := 0; found < partitions; i++ {
		k := fmt.Sprintf("%s-probe-%d", run, i)
		if p := producer.PartitionFor([]byte(k), partitions); keys[p] == "" {
			keys[p] = k
			found++
		}
	}
	return keys
}
