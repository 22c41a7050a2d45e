package account

import (
	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/schema"
)

// The Avro schemas: the stored form of the account's state, commands and events. Evolve
// them compatibly (add fields with defaults, promote numbers); startup refuses anything else.
var (
	StateSchema = schema.MustParse(`{"type":"record","name":"Account","namespace":"bank","fields":[
		{"name":"owner","type":"string"},{"name":"balance","type":"long"},
		{"name":"open","type":"boolean"},{"name":"closed","type":"boolean"}]}`)

	OpenSchema     = schema.MustParse(`{"type":"record","name":"OpenAccount","namespace":"bank","fields":[{"name":"owner","type":"string"}]}`)
	DepositSchema  = schema.MustParse(`{"type":"record","name":"Deposit","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`)
	WithdrawSchema = schema.MustParse(`{"type":"record","name":"Withdraw","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`)
	CloseSchema    = schema.MustParse(`{"type":"record","name":"CloseAccount","namespace":"bank","fields":[]}`)

	OpenedSchema    = schema.MustParse(`{"type":"record","name":"AccountOpened","namespace":"bank","fields":[{"name":"owner","type":"string"}]}`)
	DepositedSchema = schema.MustParse(`{"type":"record","name":"MoneyDeposited","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`)
	WithdrawnSchema = schema.MustParse(`{"type":"record","name":"MoneyWithdrawn","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`)
	ClosedSchema    = schema.MustParse(`{"type":"record","name":"AccountClosed","namespace":"bank","fields":[]}`)
)

// Schemas lists every schema the account writes, for schema.Publish at startup.
func Schemas() []*schema.Schema {
	return []*schema.Schema{StateSchema, OpenSchema, DepositSchema, WithdrawSchema, CloseSchema,
		OpenedSchema, DepositedSchema, WithdrawnSchema, ClosedSchema}
}

// Codecs are the account's codecs, bound to one registry.
type Codecs struct {
	Registry *schema.Registry
	Commands gateway.Codec[Command]
	Events   gateway.Codec[kastor.Event]
	States   gateway.Codec[State]
}

// NewCodecs binds the Go types to their schemas in reg (a new registry when nil).
func NewCodecs(reg *schema.Registry) (*Codecs, error) {
	if reg == nil {
		reg = schema.NewRegistry()
	}
	cmds := schema.NewTypes[Command](reg, "command")
	evs := schema.NewTypes[kastor.Event](reg, "event")
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(registerType[Open](cmds, reg, OpenSchema))
	add(registerType[Deposit](cmds, reg, DepositSchema))
	add(registerType[Withdraw](cmds, reg, WithdrawSchema))
	add(registerType[Close](cmds, reg, CloseSchema))
	add(registerType[Opened](evs, reg, OpenedSchema))
	add(registerType[Deposited](evs, reg, DepositedSchema))
	add(registerType[Withdrawn](evs, reg, WithdrawnSchema))
	add(registerType[Closed](evs, reg, ClosedSchema))
	state, err := schema.NewCodec[State](reg, StateSchema, schema.Describe("state"))
	add(err)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return &Codecs{Registry: reg, Commands: gateway.AvroTypes(cmds), Events: gateway.AvroTypes(evs), States: gateway.AvroCodec(state)}, nil
}

func registerType[T, I any](ts *schema.Types[I], reg *schema.Registry, s *schema.Schema) error {
	c, err := schema.NewCodec[T](reg, s)
	if err != nil {
		return err
	}
	return schema.Register(ts, c)
}
