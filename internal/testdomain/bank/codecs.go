package bank

import (
	"errors"
	"slices"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/schema"
)

// The schemas are derived from the Go types (schema.DeriveTypes): records in namespace
// bank, an event's named by its EventType, the others as given here. They are the bank
// example's hand-written schemas, byte for byte in canonical form (codecs_test.go pins
// them).
var (
	commandTypes = []schema.Member{
		schema.Of[Open](schema.Name("bank.OpenAccount")),
		schema.Of[Deposit](schema.Namespace("bank")),
		schema.Of[Withdraw](schema.Namespace("bank")),
		schema.Of[Close](schema.Name("bank.CloseAccount")),
	}
	eventTypes = []schema.Member{
		schema.Of[Opened](), schema.Of[Deposited](), schema.Of[Withdrawn](), schema.Of[Closed](),
	}
	stateSchema = schema.MustDerive[State](schema.Name("bank.Account"))
)

// Codecs are the account's codecs, bound to one registry.
type Codecs struct {
	Registry *schema.Registry
	Commands kastor.Codec[Command]
	Events   kastor.Codec[kastor.Event]
	States   kastor.Codec[State]
}

// NewCodecs binds the Go types to their schemas in reg (a new registry when nil).
func NewCodecs(reg *schema.Registry) (*Codecs, error) {
	c, _, err := newCodecs(reg)
	return c, err
}

func newCodecs(reg *schema.Registry) (*Codecs, []*schema.Schema, error) {
	if reg == nil {
		reg = schema.NewRegistry()
	}
	cmds, err1 := schema.DeriveTypes[Command](reg, "command", commandTypes...)
	evs, err2 := schema.DeriveTypes[kastor.Event](reg, "event", eventTypes...)
	state, err3 := schema.NewCodec[State](reg, stateSchema, schema.Describe("state"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, nil, err
	}
	c := &Codecs{
		Registry: reg,
		Commands: schema.TypesCodec(cmds),
		Events:   schema.TypesCodec(evs),
		States:   schema.ValueCodec(state),
	}
	return c, append(append([]*schema.Schema{stateSchema}, cmds.Schemas()...), evs.Schemas()...), nil
}

var schemas = func() []*schema.Schema {
	_, ss, err := newCodecs(nil)
	if err != nil {
		panic(err)
	}
	return ss
}()

// Schemas lists every schema the account writes (its state's, then its commands' and its
// events' by name), for schema.Publish.
func Schemas() []*schema.Schema { return slices.Clone(schemas) }
