package balance

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
)

// Memory is the projection held in the process: a map of balances folded with Evolve.
type Memory struct {
	m *consumer.Memory[map[string]Balance, kastor.Event]
}

// NewMemory returns an empty in-memory projection. Run a reader with Sink as its sink;
// it starts from the earliest offsets (the model starts empty).
func NewMemory() *Memory {
	return &Memory{m: consumer.NewMemory(map[string]Balance{}, func(m *map[string]Balance, ev kastor.Envelope[kastor.Event]) error {
		old, exists := (*m)[ev.AggregateID]
		b, err := Evolve(old, exists, ev)
		if err != nil {
			return err // the model is unchanged
		}
		(*m)[ev.AggregateID] = b
		return nil
	})}
}

// Sink is the projection's sink, for consumer.New.
func (m *Memory) Sink() *consumer.Memory[map[string]Balance, kastor.Event] { return m.m }

// Get returns an account's balance; false when the projection has no such account.
func (m *Memory) Get(accountID string) (b Balance, ok bool) {
	m.m.Read(func(all *map[string]Balance) { b, ok = (*all)[accountID] })
	return b, ok
}

// All returns every account, by ID.
func (m *Memory) All() []Balance {
	var out []Balance
	m.m.Read(func(all *map[string]Balance) {
		out = slices.SortedFunc(maps.Values(*all), func(a, b Balance) int { return strings.Compare(a.AccountID, b.AccountID) })
	})
	return out
}

// WaitForVersion waits until the projection has passed version of the account, or ctx
// ends; it returns an error matching consumer.ErrParked when that version, or an earlier
// one, is parked on the dead-letter topic (see consumer.Memory.WaitForVersion).
func (m *Memory) WaitForVersion(ctx context.Context, accountID string, version int64) error {
	return m.m.WaitForVersion(ctx, accountID, version)
}
