package runner

import (
	"container/heap"
	"time"
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
