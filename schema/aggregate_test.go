package schema_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/schema"
)

type (
	agState   struct{ Items int64 }
	agCommand interface{ isAgCommand() }
	agAdd     struct{ Quantity int64 }
	agRemove  struct{}
	agAdded   struct{ Quantity int64 }
	agMoved   struct{ To string }
)

func (agAdd) isAgCommand()                                {}
func (agRemove) isAgCommand()                             {}
func (agAdded) EventType() string                         { return "shop.Added" }
func (agMoved) EventType() string                         { return "logistics.Moved" }
func agDecide(agState, agCommand) ([]kastor.Event, error) { return nil, nil }
func agEvolve(s agState, _ kastor.Event) agState          { return s }

var agAggregate = &kastor.Aggregate[agState, agCommand, kastor.Event]{Type: "shop.cart", Decide: agDecide, Evolve: agEvolve}

func TestForAggregateDerivesNamesInTheAggregatesNamespace(t *testing.T) {
	reg := schema.NewRegistry()
	codecs, err := schema.ForAggregate(agAggregate,
		schema.Commands(schema.Of[agAdd](), schema.Of[agRemove](schema.Name("shop.RemoveItem"))),
		schema.Events(schema.Of[agAdded](), schema.Of[agMoved]()),
		schema.State(schema.Name("Cart")), schema.InRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		enc  func() (kastor.Encoded, error)
		want string
	}{
		{func() (kastor.Encoded, error) { return codecs.Commands.Encode(agAdd{Quantity: 2}) }, "shop.agAdd"},
		{func() (kastor.Encoded, error) { return codecs.Commands.Encode(agRemove{}) }, "shop.RemoveItem"},
		{func() (kastor.Encoded, error) { return codecs.Events.Encode(agAdded{Quantity: 2}) }, "shop.Added"},
		{func() (kastor.Encoded, error) { return codecs.Events.Encode(agMoved{To: "x"}) }, "logistics.Moved"},
		{func() (kastor.Encoded, error) { return codecs.States.Encode(agState{Items: 3}) }, "shop.Cart"},
	} {
		e, err := c.enc()
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != c.want {
			t.Errorf("encoded as %s, want %s", e.Type, c.want)
		}
		if _, ok := reg.Schema(schema.Fingerprint(e.Fingerprint)); !ok {
			t.Errorf("%s: its schema is not in the registry given", e.Type)
		}
	}
	ev, _ := codecs.Events.Encode(agAdded{Quantity: 5})
	back, err := codecs.Events.Decode(ev)
	if err != nil || back != (agAdded{Quantity: 5}) {
		t.Fatalf("decoded %#v, %v", back, err)
	}
}

func TestForAggregateNeedsCommandsAndEvents(t *testing.T) {
	_, err := schema.ForAggregate(agAggregate, schema.Events(schema.Of[agAdded]()))
	if err == nil || !strings.Contains(err.Error(), "schema.Commands and schema.Events") {
		t.Fatalf("err = %v", err)
	}
	_, err = schema.ForAggregate(agAggregate, schema.Commands(schema.Of[agAdd](), schema.Of[agAdded]()), schema.Events(schema.Of[agAdded]()))
	if err == nil || !strings.Contains(err.Error(), "shop.cart") {
		t.Fatalf("a member that is not a command: err = %v", err)
	}
}

type foreignCodec struct{}

func (foreignCodec) Encode(agState) (kastor.Encoded, error) { return kastor.Encoded{}, nil }
func (foreignCodec) Decode(kastor.Encoded) (agState, error) { return agState{}, errors.New("no") }

func TestPublishAggregateRefusesAForeignCodec(t *testing.T) {
	codecs, err := schema.ForAggregate(agAggregate, schema.Commands(schema.Of[agAdd]()), schema.Events(schema.Of[agAdded]()))
	if err != nil {
		t.Fatal(err)
	}
	codecs.States = foreignCodec{}
	err = schema.PublishAggregate(t.Context(), nil, codecs)
	if err == nil || !strings.Contains(err.Error(), "schema.Publish") {
		t.Fatalf("err = %v", err)
	}
}

// MustForAggregate returns ForAggregate's codecs, and panics where ForAggregate fails.
func TestMustForAggregate(t *testing.T) {
	codecs := schema.MustForAggregate(agAggregate,
		schema.Commands(schema.Of[agAdd](), schema.Of[agRemove]()), schema.Events(schema.Of[agAdded]()))
	if enc, err := codecs.Events.Encode(agAdded{Quantity: 1}); err != nil || enc.Type != "shop.Added" {
		t.Fatalf("Encode: %+v %v", enc, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustForAggregate without events: no panic")
		}
	}()
	schema.MustForAggregate(agAggregate, schema.Commands(schema.Of[agAdd]()))
}
