package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/producer"
)

// The checks must be able to fail: these tests feed them a log and answers with one
// defect each, the kind a broken gateway or Sender would leave, and a clean one. They
// need no Kafka and run under -short.

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// fixture is a small consistent run: account a opened, +100, -30, and a refused
// withdrawal; account b opened and a deposit whose attempts went unanswered, which
// Outcome settled as never executed.
type fixture struct {
	evs  []event
	cmds map[string]*command
}

func newFixture() *fixture {
	f := &fixture{cmds: map[string]*command{}}
	f.cmd("a", "a-open", "open", 0, told{kind: toldSuccess, from: 1, to: 1})
	f.cmd("a", "a-dep", "deposit", 100, told{kind: toldSuccess, from: 2, to: 2})
	f.cmd("a", "a-wd", "withdraw", 30, told{kind: toldSuccess, from: 3, to: 3}, told{kind: toldSuccess, from: 3, to: 3, detail: "duplicate"})
	f.cmd("a", "a-wd2", "withdraw", 500, told{kind: toldRefused, detail: "insufficient funds"})
	f.cmd("b", "b-open", "open", 0, told{kind: toldSuccess, from: 1, to: 1})
	f.cmd("b", "b-dep", "deposit", 7, told{via: "outcome", kind: toldNone})
	f.event("a", 1, "a-open", "opened", 0, 1)
	f.event("a", 2, "a-dep", "deposited", 100, 1)
	f.event("a", 3, "a-wd", "withdrawn", 30, 1)
	f.event("b", 1, "b-open", "opened", 0, 2)
	return f
}

func (f *fixture) cmd(acct, id, kind string, amount int64, ts ...told) {
	f.cmds[id] = &command{id: id, account: acct, kind: kind, amount: amount, told: ts, partition: producer.PartitionFor([]byte(acct), partitions)}
}

// event appends an event of acct to its partition, written by producer pid at epoch 0, a
// second after the previous one.
func (f *fixture) event(acct string, version int64, cmd, kind string, amount, pid int64) {
	p := producer.PartitionFor([]byte(acct), partitions)
	f.evs = append(f.evs, event{partition: p, offset: int64(len(f.evs)), key: acct, kind: kind, amount: amount,
		md:         kastor.Metadata{AggregateType: account.Type, AggregateID: acct, Version: version, CommandID: cmd},
		producerID: pid, timestamp: t0.Add(time.Duration(len(f.evs)) * time.Second)})
}

// all runs checks (a) to (d).
func (f *fixture) all() []string {
	var out []string
	out = append(out, checkVersions(f.evs, partitions)...)
	out = append(out, checkOneExecution(f.evs, f.cmds)...)
	out = append(out, checkTold(f.evs, f.cmds)...)
	b, unresolved := checkBalances(f.evs, f.cmds)
	out = append(out, b...)
	return append(out, unresolved...)
}

func TestChecksPassAConsistentLog(t *testing.T) {
	if v := newFixture().all(); len(v) > 0 {
		t.Fatalf("violations in a consistent log: %q", v)
	}
}

func TestChecksCatchDefects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		defect func(f *fixture)
		want   []string // substrings of the violations, one of which each must show
	}{
		{"a duplicate version (a second writer)", func(f *fixture) {
			f.evs[1].md.Version = 1
			f.evs[2].md.Version = 2
		}, []string{"duplicate version"}},
		{"a gap", func(f *fixture) { f.evs[2].md.Version = 4 }, []string{"a gap"}},
		{"an event in another shard", func(f *fixture) { f.evs[1].partition = (f.evs[1].partition + 1) % partitions }, []string{"its aggregate's shard"}},
		{"a retried deposit executed twice (no dedupe)", func(f *fixture) {
			f.event("a", 4, "a-dep", "deposited", 100, 1)
		}, []string{"executed 2 times", "balance 170 in the log, 70"}},
		{"a retry under a new ID the caller forgot", func(f *fixture) {
			f.event("a", 4, "a-dep-retry", "deposited", 100, 1)
		}, []string{"which no caller sent", "balance 170 in the log, 70"}},
		{"the caller told other versions (a reply for another attempt)", func(f *fixture) {
			f.cmds["a-dep"].told[0].from, f.cmds["a-dep"].told[0].to = 3, 3
		}, []string{"told v3..3, the log has its ID at versions [2]"}},
		{"a refusal whose command was executed (issue 14, W4)", func(f *fixture) {
			f.event("a", 4, "a-wd2", "withdrawn", 500, 1)
		}, []string{"told refused, the log has its ID", "balance -430 in the log, 70"}},
		{"no outcome, yet executed (a zombie's commit)", func(f *fixture) {
			f.event("b", 2, "b-dep", "deposited", 7, 1)
		}, []string{"told no outcome, the log has its ID", "balance 7 in the log, 0"}},
		{"two different answers", func(f *fixture) {
			f.cmds["a-dep"].told = append(f.cmds["a-dep"].told, told{kind: toldRefused, detail: "insufficient funds"})
		}, []string{"told both"}},
		{"an event that does not match its command", func(f *fixture) { f.evs[1].amount = 99 }, []string{"wrote a v2 deposited 99"}},
		{"an acknowledged event missing", func(f *fixture) { f.evs = f.evs[:2] }, []string{"told v3..3, the log has its ID at versions []"}},
		{"a command nobody learned the outcome of", func(f *fixture) { f.cmds["b-dep"].told = nil }, []string{"b-dep b deposit 7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.defect(f)
			got := strings.Join(f.all(), "\n")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("no violation mentions %q; got:\n%s", w, got)
				}
			}
		})
	}
}

func TestCheckZombie(t *testing.T) {
	z := zombie{instance: "g1", producerID: 7, epoch: 5, stoppedAt: t0.Add(10 * time.Second), resumedAt: t0.Add(20 * time.Second)}
	rec := func(p int32, off int64, epoch int16, at time.Duration) event {
		return event{partition: p, offset: off, key: "k", producerID: 7, producerEpoch: epoch, timestamp: t0.Add(at)}
	}
	mark := func(p int32, off int64, epoch int16, at time.Duration) marker {
		return marker{partition: p, offset: off, producerID: 7, producerEpoch: epoch, commit: true, timestamp: t0.Add(at)}
	}
	clean := []event{rec(0, 0, 5, time.Second), rec(0, 2, 8, 25*time.Second)} // before the stop; after a rejoin (epoch 8)
	cleanMarks := []marker{mark(0, 1, 5, 2*time.Second), mark(0, 3, 8, 26*time.Second)}
	if v, seen := checkZombie(clean, cleanMarks, z); len(v) > 0 || seen != 1 {
		t.Fatalf("clean log: violations %q, %d events before the stop; want none and 1", v, seen)
	}
	// The fenced producer's record, produced after the resume, committed.
	if v, _ := checkZombie(append(clean, rec(1, 0, 5, 21*time.Second)), append(cleanMarks, mark(1, 1, 5, 22*time.Second)), z); len(v) == 0 {
		t.Fatal("a record of the fenced epoch written after the resume passed")
	}
	// The transaction open at the stop (records from before it), committed after the resume.
	if v, _ := checkZombie(append(clean, rec(1, 0, 5, 9*time.Second)), append(cleanMarks, mark(1, 1, 6, 21*time.Second)), z); len(v) == 0 {
		t.Fatal("the transaction open at the stop, committed after the resume, passed")
	}
	// Committed just after the stop by a marker the coordinator wrote then: legitimate.
	if v, _ := checkZombie(append(clean, rec(1, 0, 5, 9*time.Second)), append(cleanMarks, mark(1, 1, 6, 10*time.Second+5*time.Millisecond)), z); len(v) > 0 {
		t.Fatalf("a commit decided before the stop failed: %q", v)
	}
}

func TestFailoverFigures(t *testing.T) {
	at := t0.Add(time.Minute)
	f := &fault{at: at, dead: []int32{1, 2}, ownersBefore: map[int32]string{0: "a", 1: "b", 2: "b", 3: "c"},
		ownersAfter: map[int32]string{0: "a", 1: "a", 2: "c", 3: "a"}}
	att := func(p int32, start, end time.Duration, verdict bool) attempt {
		return attempt{partition: p, start: at.Add(start), end: at.Add(end), answered: true, verdict: verdict}
	}
	atts := []attempt{
		att(1, -time.Second, 100*time.Millisecond, true), // committed before the kill: ignored
		att(1, time.Second, 7*time.Second, false),        // a probe-like answer
		att(2, 2*time.Second, 9*time.Second, true),
		att(0, time.Second, time.Second+20*time.Millisecond, true),
		att(3, 2*time.Second, 5*time.Second, true), // moved owner
		{partition: 0, start: at.Add(3 * time.Second), end: at.Add(6 * time.Second), timedOut: true},
	}
	fo := computeFailover(f, atts, at.Add(time.Minute))
	if fo.firstAnswer != 7*time.Second || fo.allAnswered != 9*time.Second || fo.firstVerdict != 9*time.Second || len(fo.missing) > 0 {
		t.Fatalf("first %v all %v verdict %v missing %v, want 7s 9s 9s none", fo.firstAnswer, fo.allAnswered, fo.firstVerdict, fo.missing)
	}
	if fo.survivors.n != 3 || fo.survivorTimeouts != 1 || fo.survivors.max != 3*time.Second || fo.stayed.n != 2 || fo.stayedN != 1 {
		t.Fatalf("survivors %v (%d timeouts), stayed %v over %d shards", fo.survivors, fo.survivorTimeouts, fo.stayed, fo.stayedN)
	}
	if fo.survivorSilence.partition != 0 || fo.survivorSilence.length < 2*time.Second {
		t.Fatalf("longest survivor silence %+v, want shard 0's from its answer at +1.02s to the end of the window", fo.survivorSilence)
	}
	gaps := longestGaps(atts, 4, at, at.Add(10*time.Second))
	if gaps[0].partition != 1 && gaps[0].partition != 2 || gaps[0].length < 6900*time.Millisecond {
		t.Fatalf("longest gap %+v", gaps[0])
	}
}
