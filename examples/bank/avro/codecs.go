// Package avro holds the bank example's Avro codecs, apart from its domain (package
// account, which imports only kastor). The schemas are derived from the account's Go types
// (schema.DeriveTypes): record names in namespace "bank", an event's from its EventType.
// They are the schemas the example has always published, byte for byte in canonical form,
// so their fingerprints and the topics written with them are unchanged. Evolve them
// compatibly (add fields with defaults, `avro:"name,default=..."`); startup refuses
// anything else.
package avro

import (
	"errors"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/schema"
)

// Codecs are the account's codecs, bound to one registry.
type Codecs struct {
	Registry *schema.Registry
	Commands kastor.Codec[account.Command]
	Events   kastor.Codec[kastor.Event]
	States   kastor.Codec[account.State]
	// Schemas lists every schema the account writes, for schema.Publish at startup.
	Schemas []*schema.Schema
}

// New derives the schemas of the account's Go types and binds the types to them in reg (a
// new registry when nil).
func New(reg *schema.Registry) (*Codecs, error) {
	if reg == nil {
		reg = schema.NewRegistry()
	}
	bank := schema.Namespace("bank")
	cmds, err1 := schema.DeriveTypes[account.Command](reg, "command",
		schema.Of[account.Open](schema.Name("bank.OpenAccount")), schema.Of[account.Deposit](bank),
		schema.Of[account.Withdraw](bank), schema.Of[account.Close](schema.Name("bank.CloseAccount")))
	evs, err2 := schema.DeriveTypes[kastor.Event](reg, "event",
		schema.Of[account.Opened](), schema.Of[account.Deposited](), schema.Of[account.Withdrawn](), schema.Of[account.Closed]())
	stateSchema, err3 := schema.Derive[account.State](schema.Name("bank.Account"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	state, err := schema.NewCodec[account.State](reg, stateSchema, schema.Describe("state"))
	if err != nil {
		return nil, err
	}
	return &Codecs{
		Registry: reg,
		Commands: schema.TypesCodec(cmds), Events: schema.TypesCodec(evs), States: schema.ValueCodec(state),
		Schemas: append(append([]*schema.Schema{stateSchema}, cmds.Schemas()...), evs.Schemas()...),
	}, nil
}
