// Package cart is the quickstart's domain: a shopping cart that takes items until it is
// checked out. It is pure (no Kafka, no I/O) and imports only the root kastor package.
package cart

import (
	"errors"

	"github.com/kastor-dev/kastor"
)

// State is a cart's state.
type State struct {
	Items      map[string]int64 // quantity by SKU
	CheckedOut bool
}

// Command is implemented by the cart's commands.
type Command interface{ isCommand() }

// The commands.
type (
	AddItem struct {
		SKU      string
		Quantity int64
	}
	CheckOut struct{}
)

func (AddItem) isCommand()  {}
func (CheckOut) isCommand() {}

// The events. EventType is the Avro record's full name.
type (
	ItemAdded struct {
		SKU      string
		Quantity int64
	}
	CheckedOut struct{}
)

func (ItemAdded) EventType() string  { return "shop.ItemAdded" }
func (CheckedOut) EventType() string { return "shop.CheckedOut" }

// Domain errors: callers receive them inside a *kastor.RejectedError.
var (
	ErrCheckedOut = errors.New("the cart is checked out")
	ErrEmpty      = errors.New("the cart is empty")
	ErrQuantity   = errors.New("the quantity must be positive")
)

// Aggregate is the cart aggregate type: topics <namespace>.shop.cart.*.
var Aggregate = &kastor.Aggregate[State, Command, kastor.Event]{
	Type:    "shop.cart",
	Initial: func(string) State { return State{Items: map[string]int64{}} },
	Decide:  decide,
	Evolve:  evolve,
}

func decide(s State, c Command) ([]kastor.Event, error) {
	if s.CheckedOut {
		return nil, ErrCheckedOut
	}
	switch c := c.(type) {
	case AddItem:
		if c.Quantity <= 0 {
			return nil, ErrQuantity
		}
		return []kastor.Event{ItemAdded(c)}, nil
	case CheckOut:
		if len(s.Items) == 0 {
			return nil, ErrEmpty
		}
		return []kastor.Event{CheckedOut{}}, nil
	}
	return nil, errors.New("unknown command")
}

func evolve(s State, e kastor.Event) State {
	items := make(map[string]int64, len(s.Items)+1)
	for k, v := range s.Items {
		items[k] = v
	}
	switch e := e.(type) {
	case ItemAdded:
		items[e.SKU] += e.Quantity
	case CheckedOut:
		s.CheckedOut = true
	}
	s.Items = items
	return s
}
