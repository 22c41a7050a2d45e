package gateway

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// LoseEndResponses makes the next n transactions the gateway begins report an error
// from their End if they commit, as when EndTxn's response is lost: committed, outcome unknown to the
// gateway.
func (g *Gateway[S, C, E]) LoseEndResponses(n int32) { g.lostEndResponses.Store(n) }

// HoldBeforeEnd makes every transaction wait d with its records written before it ends,
// so that a kill lands inside an open transaction.
func (g *Gateway[S, C, E]) HoldBeforeEnd(d time.Duration) { g.holdBeforeEnd.Store(int64(d)) }

// FailRestores makes every restore of a shard fail with fault(p) before it reads, while
// fault returns an error for p.
func (g *Gateway[S, C, E]) FailRestores(fault func(p int32) error) { g.restoreFault.Store(&fault) }

// SetClock makes the gateway's scheduled commands use now as their clock (decision 43);
// call it before Run.
func (g *Gateway[S, C, E]) SetClock(now func() time.Time) { g.now = now }

// SetScheduleRefire sets how long after a fire record the scheduler sends another for a
// schedule still pending, and returns a func that restores it.
func SetScheduleRefire(d time.Duration) (restore func()) {
	old := scheduleRefire
	scheduleRefire = d
	return func() { scheduleRefire = old }
}

// ParseScheduleRecord decodes a record of the schedules topic as a restore does: its
// aggregate ID, schedule ID and time.
func ParseScheduleRecord(r *kgo.Record) (aggregateID, scheduleID string, at time.Time, err error) {
	it, err := parseSchedule(r)
	if err != nil {
		return "", "", time.Time{}, err
	}
	return it.aggregateID, it.id, it.at, nil
}
