package runner_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/internal/testdomain/transfer"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/saga/runner"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

// TestStuckParkedAndResumed runs a transfer whose credit is refused (no such account)
// and whose refund is refused too (the source account is frozen), twice (Retries): the
// instance is stuck, and the transaction that made it so parked it with the reason. A
// restart of the runner parks nothing more. Then the account is unfrozen and the
// instance resumed: the refund executes once, the transfer is done (failed, the money
// back), the letter is resolved, and a second resume is refused. The topics are read
// back.
func TestStuckParkedAndResumed(t *testing.T) {
	kafka.Backends(t, func(t *testing.T, kc *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		b := newBed(t, kc, 20*time.Second)
		def, err := transfer.SagaRetrying(20*time.Second, time.Second, 2, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		b.def = def
		ns := b.c.Namespace()
		tp := runner.TopicsOf(ns, transfer.SagaType)
		rn := b.runner()
		stop, _ := b.start(rn)
		b.open(ctx, "alice", 30)
		b.open(ctx, "bob", 0)
		b.frozen.set("alice", true)
		b.request(ctx, "t-stuck", "alice", "carol", 30) // carol has no account

		inst, err := rn.Await(ctx, "t-stuck", finished)
		if err != nil || inst.Done || !strings.Contains(inst.State.Stuck, `compensation of step "debit" failed 2 times`) ||
			!strings.Contains(inst.State.Stuck, "account frozen") || !strings.Contains(inst.State.Reason, "account is not open") {
			t.Fatalf("t-stuck: %+v, %v", inst, err)
		}
		if _, err := runner.Resume(ctx, b.c, transfer.SagaType, "t-none"); !errors.Is(err, runner.ErrNotStuck) || !strings.Contains(err.Error(), `"t-none"`) {
			t.Fatalf("resume of no instance: %v", err)
		}

		// One letter, with the reason, in the transaction of the version that made it stuck.
		letter := func(want bool) runner.Parked {
			t.Helper()
			parked, err := runner.ReadParked(ctx, b.c, transfer.SagaType)
			if err != nil || len(parked) != 1 {
				t.Fatalf("parked: %+v, %v", parked, err)
			}
			p := parked[0]
			if p.Kind != runner.ParkedStuck || p.Reason != runner.ReasonStuck || p.Err != inst.State.Stuck || p.Instance != "t-stuck" ||
				p.Version != inst.Version || p.Origin != tp.State || p.Resolved != want {
				t.Fatalf("letter: %+v, want reason %q at version %d, resolved %v", p, inst.State.Stuck, inst.Version, want)
			}
			return p
		}
		letter(false)
		stuckLetters := func() int {
			n := 0
			for _, r := range readAll(ctx, t, b.c, tp.DLQ) {
				if d, _, _ := wire.ParseDeadLetter(r.Headers); d.Reason == runner.ReasonStuck {
					if string(r.Key) != "t-stuck" {
						t.Fatalf("stuck letter keyed %q", r.Key)
					}
					n++
				}
			}
			return n
		}
		if n := stuckLetters(); n != 1 {
			t.Fatalf("%d stuck letters, want 1", n)
		}
		si, _, ok, err := runner.ReadInstance(ctx, b.c, transfer.SagaType, "t-stuck")
		if err != nil || !ok || si.Version != inst.Version || si.Done {
			t.Fatalf("t-stuck's record: %+v %v %v", si, ok, err)
		}

		// A restart restores the stuck instance and parks nothing more.
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		rn = b.runner()
		_, _ = b.start(rn)
		if again, err := rn.Await(ctx, "t-stuck", finished); err != nil || again.Version != inst.Version || again.State.Stuck == "" {
			t.Fatalf("t-stuck after the restart: %+v, %v", again, err)
		}

		// The cause fixed, the instance resumed.
		b.frozen.set("alice", false)
		res, err := runner.Resume(ctx, b.c, transfer.SagaType, "t-stuck")
		if err != nil || res.Pending || res.Version != inst.Version || res.Reason != inst.State.Stuck || res.Offset < 0 ||
			len(res.Resolved) != 1 || res.Resolved[0].Version != inst.Version {
			t.Fatalf("resume: %+v, %v", res, err)
		}
		// At once again: the same stuck version, pending (or applied already: not stuck).
		if again, err := runner.Resume(ctx, b.c, transfer.SagaType, "t-stuck"); err == nil && (!again.Pending || again.Offset != res.Offset) ||
			err != nil && !errors.Is(err, runner.ErrNotStuck) {
			t.Fatalf("second resume: %+v, %v", again, err)
		}
		done, err := rn.Await(ctx, "t-stuck", func(i saga.Instance[progress]) bool { return i.Done })
		if err != nil || !done.State.Failed || done.State.Stuck != "" || done.Version != inst.Version+2 {
			t.Fatalf("t-stuck resumed: %+v, %v", done, err)
		}
		letter(true)
		if n := stuckLetters(); n != 1 {
			t.Fatalf("%d stuck letters after the resume, want 1", n)
		}
		_, err = runner.Resume(ctx, b.c, transfer.SagaType, "t-stuck")
		if !errors.Is(err, runner.ErrNotStuck) || !strings.Contains(err.Error(), `"t-stuck"`) || !strings.Contains(err.Error(), "done") {
			t.Fatalf("resume of a done instance: %v", err)
		}
		inputs, err := runner.ReadInputs(ctx, b.c, transfer.SagaType, "t-stuck")
		resumes := 0
		for _, in := range inputs {
			if in.Kind == runner.InputKindResume {
				resumes++
				if in.ID != saga.ResumeInputID(inst.Version) || !slices.Contains(done.Seen, in.ID) {
					t.Errorf("resume input %+v not applied (seen %v)", in, done.Seen)
				}
			}
		}
		if err != nil || resumes != 1 {
			t.Fatalf("%d resume inputs, %v; want 1", resumes, err)
		}

		// Read back: versions 1..n, each command once, the refund executed once; alice has
		// her money back.
		dlq := checkSagaTopics(ctx, t, b.c, b.accounts, map[string]int64{"alice": 30, "bob": 0}, "t-stuck")
		if len(dlq) != 2 {
			t.Errorf("dead-letter topic: %d records, want the letter and its resolution marker", len(dlq))
		}
		refunds := 0
		for _, r := range readAll(ctx, t, b.c, topics.TopicName(ns, bank.Type, topics.RoleEvents)) {
			md, err := wire.ParseHeaders(r.Headers)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := b.accounts.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: r.Value})
			if err != nil {
				t.Fatal(err)
			}
			if _, dep := ev.(bank.Deposited); dep && md.AggregateID == "alice" && strings.HasPrefix(md.CommandID, transfer.SagaType+"/t-stuck/") {
				refunds++
			}
		}
		if refunds != 1 {
			t.Fatalf("%d refunds executed, want 1", refunds)
		}
	})
}
