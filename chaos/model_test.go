package chaos

import (
	"fmt"
	"time"

	"github.com/kastor-dev/kastor"
)

// The record of a run, in plain data so that the checks are pure functions a unit test
// can feed with a broken log (checks_test.go): what the callers sent and were told, every
// attempt's timing, and the events read back.

// toldKind is what a caller was told about a command.
type toldKind int

const (
	toldNothing toldKind = iota
	// toldSuccess: applied, with versions From..To (a Duplicate answer included: it
	// carries the first execution's versions).
	toldSuccess
	// toldRefused: refused (rejected, version conflict, invariant): the command's one
	// outcome, and nothing was written.
	toldRefused
	// toldNone: Sender.Outcome found no outcome. It is asked only once every attempt of
	// the command has passed its deadline, so no attempt can be executed any more: the
	// command was never executed.
	toldNone
)

func (k toldKind) String() string {
	return [...]string{"nothing", "success", "refused", "no outcome"}[k]
}

// told is one answer a caller got.
type told struct {
	at       time.Time
	via      string // "send" or "outcome"
	kind     toldKind
	from, to int64  // toldSuccess
	detail   string // the refusal, or "duplicate"
}

func (t told) String() string {
	s := t.via + ": " + t.kind.String()
	if t.kind == toldSuccess {
		s += fmt.Sprintf(" v%d..%d", t.from, t.to)
	}
	if t.detail != "" {
		s += " (" + t.detail + ")"
	}
	return s
}

// command is one command a sender issued, with every answer it got.
type command struct {
	id, account string
	partition   int32
	kind        string // "open", "deposit", "withdraw"
	amount      int64
	attempts    int
	told        []told
}

// outcome is the command's outcome as its caller knows it. contradiction is non-empty
// when the caller was told two different things: two successes with other versions, a
// success and a refusal, or "no outcome" besides an outcome.
func (c *command) outcome() (kind toldKind, from, to int64, contradiction string) {
	var success, refused, none []told
	for _, t := range c.told {
		switch t.kind {
		case toldSuccess:
			success = append(success, t)
		case toldRefused:
			refused = append(refused, t)
		case toldNone:
			none = append(none, t)
		}
	}
	for _, s := range success[min(1, len(success)):] {
		if s.from != success[0].from || s.to != success[0].to {
			contradiction = fmt.Sprintf("told v%d..%d and v%d..%d", success[0].from, success[0].to, s.from, s.to)
		}
	}
	switch {
	case len(success) > 0 && len(refused) > 0:
		contradiction = fmt.Sprintf("told both %v and %v", success[0], refused[0])
	case len(none) > 0 && len(success)+len(refused) > 0:
		contradiction = fmt.Sprintf("told %v besides %v", none[0], c.told[0])
	}
	switch {
	case len(success) > 0:
		return toldSuccess, success[0].from, success[0].to, contradiction
	case len(refused) > 0:
		return toldRefused, 0, 0, contradiction
	case len(none) > 0:
		return toldNone, 0, 0, contradiction
	}
	return toldNothing, 0, 0, contradiction
}

// history is the command's answers, for messages.
func (c *command) history() string {
	return fmt.Sprintf("%s %s %s %d (partition %d, %d attempts): %v", c.id, c.account, c.kind, c.amount, c.partition, c.attempts, c.told)
}

// attempt is one Send or Outcome call: when it started and ended, on which shard, and
// whether a gateway answered it at all (any reply, an expiry or "no outcome" included:
// it proves the shard's owner is committing). verdict marks an outcome (success or
// refusal) of a load command.
type attempt struct {
	partition  int32
	start, end time.Time
	answered   bool
	verdict    bool
	probe      bool // a probe's Outcome question, not a load command
	timedOut   bool
}

func (a attempt) latency() time.Duration { return a.end.Sub(a.start) }

// event is one committed record of the events topic.
type event struct {
	partition     int32
	offset        int64
	key           string
	md            kastor.Metadata
	producerID    int64
	producerEpoch int16
	timestamp     time.Time
	kind          string // "opened", "deposited", "withdrawn", "closed", or why it did not decode
	amount        int64
}

func (e event) String() string {
	return fmt.Sprintf("%s v%d %s %d (command %s) at %d@%d, producer %d epoch %d, %s",
		e.key, e.md.Version, e.kind, e.amount, e.md.CommandID, e.partition, e.offset, e.producerID, e.producerEpoch,
		e.timestamp.Format("15:04:05.000"))
}

// marker is a transaction marker in the events topic.
type marker struct {
	partition     int32
	offset        int64
	producerID    int64
	producerEpoch int16
	commit        bool
	timestamp     time.Time
}

// zombie describes the gateway stopped with SIGSTOP: its transactional producer as the
// coordinator knew it right after the stop, and when it was stopped and resumed.
type zombie struct {
	instance, txnID string
	producerID      int64
	// epoch is the coordinator's epoch for the producer right after the stop. Every
	// record the stopped process can still try to write carries this epoch or a lower
	// one; a fence or the process's own rejoin raise it.
	epoch     int16
	txnState  string
	stoppedAt time.Time
	resumedAt time.Time
}
