package runner

import (
	"container/heap"
	"slices"
	"time"

	"github.com/kastor-dev/kastor/saga"
)

// timer is one pending deadline of an instance, as a partition's heap holds it.
type timer struct {
	at       time.Time
	instance string
	name     string
}

// timers is a min-heap of a partition's deadlines by time. Entries are not removed when
// an instance cancels or moves a deadline: a popped entry is checked against the
// instance's record, so a stale one is dropped then.
type timers []timer

func (h timers) Len() int { return len(h) }
func (h timers) Less(i, j int) bool {
	if c := h[i].at.Compare(h[j].at); c != 0 {
		return c < 0
	}
	if h[i].instance != h[j].instance {
		return h[i].instance < h[j].instance
	}
	return h[i].name < h[j].name
}
func (h timers) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timers) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timers) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

func (h *timers) add(t timer) { heap.Push(h, t) }

// next returns the earliest entry, and false when there is none.
func (h timers) next() (timer, bool) {
	if len(h) == 0 {
		return timer{}, false
	}
	return h[0], true
}

func (h *timers) pop() timer { return heap.Pop(h).(timer) }

// dropFired returns the next record of inst once deadline f fired and React refused it:
// the same state and pending commands, the deadline removed, the fire's input ID among
// the seen ones, and the version after inst's. Committed with the parked record, it is
// the durable trace that the deadline fired: a restore finds it no longer pending, so it
// never fires (nor is parked) again. window bounds Seen as saga.Apply does.
func dropFired[S any](inst *saga.Instance[S], f saga.Fired, window int) *saga.Instance[S] {
	next := &saga.Instance[S]{ID: inst.ID, Version: inst.Version + 1, State: inst.State, Done: inst.Done,
		Pending: slices.Clone(inst.Pending)}
	for name, at := range inst.Deadlines {
		if name == f.Name && at.Equal(f.At) {
			continue
		}
		if next.Deadlines == nil {
			next.Deadlines = make(map[string]time.Time, len(inst.Deadlines))
		}
		next.Deadlines[name] = at
	}
	seen := inst.Seen
	if len(seen) > window-1 {
		seen = seen[len(seen)-max(window-1, 0):]
	}
	next.Seen = append(slices.Clone(seen), saga.DeadlineInputID(f))
	return next
}
