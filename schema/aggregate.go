package schema

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// AggregateOption configures ForAggregate.
type AggregateOption func(*aggregateConfig)

type aggregateConfig struct {
	reg              *Registry
	commands, events []Member
	state            []DeriveOption
}

// Commands lists the aggregate's command types, each a Member made with Of. A command's
// record is named after its Go type in the aggregate type's namespace unless the member's
// options say otherwise: schema.Of[Deposit]() of "bank.account" is bank.Deposit.
func Commands(members ...Member) AggregateOption {
	return func(c *aggregateConfig) { c.commands = append(c.commands, members...) }
}

// Events lists the aggregate's event types, each a Member made with Of. An event's record
// is named by its EventType method.
func Events(members ...Member) AggregateOption {
	return func(c *aggregateConfig) { c.events = append(c.events, members...) }
}

// State sets the options the state's schema is derived with (default: the state's Go type
// name in the aggregate type's namespace, as for commands).
func State(opts ...DeriveOption) AggregateOption {
	return func(c *aggregateConfig) { c.state = append(c.state, opts...) }
}

// InRegistry registers the derived schemas in reg (default: a registry of their own), for
// a service whose aggregates share one registry.
func InRegistry(reg *Registry) AggregateOption {
	return func(c *aggregateConfig) { c.reg = reg }
}

// ForAggregate derives the Avro schemas of an aggregate's commands, events and state from
// their Go types and returns the codecs the gateway, Senders and readers take, with no
// type list at the call site:
//
//	codecs, err := schema.ForAggregate(cart.Aggregate,
//		schema.Commands(schema.Of[cart.AddItem](), schema.Of[cart.CheckOut]()),
//		schema.Events(schema.Of[cart.ItemAdded](), schema.Of[cart.CheckedOut]()))
//
// Commands and Events are required. The aggregate's namespace is its type name up to the
// last dot ("shop" for "shop.cart"). PublishAggregate publishes the schemas so that other
// processes and languages can read what the aggregate writes.
func ForAggregate[S, C, E any](agg *kastor.Aggregate[S, C, E], opts ...AggregateOption) (kastor.Codecs[S, C, E], error) {
	var none kastor.Codecs[S, C, E]
	if agg == nil {
		return none, errors.New("schema: ForAggregate needs an aggregate")
	}
	cfg := aggregateConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.commands) == 0 || len(cfg.events) == 0 {
		return none, fmt.Errorf("schema: aggregate %s: schema.Commands and schema.Events are both required", agg.Type)
	}
	if cfg.reg == nil {
		cfg.reg = NewRegistry()
	}
	ns := defaultNamespace(aggregateNamespace(agg.Type))
	cmds, err1 := DeriveTypes[C](cfg.reg, "command", withDefaultNamespace(ns, cfg.commands)...)
	evs, err2 := DeriveTypes[E](cfg.reg, "event", withDefaultNamespace(ns, cfg.events)...)
	var state *Codec[S]
	s, err3 := Derive[S](append([]DeriveOption{ns}, cfg.state...)...)
	if err3 == nil {
		state, err3 = NewCodec[S](cfg.reg, s, Describe("state"))
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		return none, fmt.Errorf("schema: aggregate %s: %w", agg.Type, err)
	}
	return kastor.Codecs[S, C, E]{Commands: TypesCodec(cmds), Events: TypesCodec(evs), States: ValueCodec(state)}, nil
}

// MustForAggregate is ForAggregate for Go types known at compile time, as a package-level
// variable is; it panics on error.
func MustForAggregate[S, C, E any](agg *kastor.Aggregate[S, C, E], opts ...AggregateOption) kastor.Codecs[S, C, E] {
	codecs, err := ForAggregate(agg, opts...)
	if err != nil {
		panic(err)
	}
	return codecs
}

// PublishAggregate publishes the schemas of codecs made by ForAggregate (or TypesCodec and
// ValueCodec) to _kastor.schemas, as Publish does, and loads the topic's history into
// their registry: call it at startup, before the gateway writes, so that the CLI and
// readers in other processes can decode what it writes. A codec made elsewhere is an
// error; publish its schemas with Publish.
func PublishAggregate[S, C, E any](ctx context.Context, cl *kgo.Client, codecs kastor.Codecs[S, C, E]) error {
	for _, c := range []any{codecs.Commands, codecs.Events, codecs.States} {
		if _, ok := c.(publishable); !ok {
			return fmt.Errorf("schema: PublishAggregate: codec %T was not made by package schema; publish its schemas with schema.Publish", c)
		}
	}
	return PublishCodecs(ctx, cl, codecs.Commands, codecs.Events, codecs.States)
}

// PublishCodecs publishes, as Publish does, the schemas of those codecs that this package
// made (TypesCodec, ValueCodec, ForAggregate), each with the registry it decodes with,
// which receives the topic's history; codecs made elsewhere are skipped: for a service
// whose codecs come from several places.
func PublishCodecs(ctx context.Context, cl *kgo.Client, codecs ...any) error {
	var regs []*Registry
	byReg := map[*Registry][]*Schema{}
	for _, c := range codecs {
		p, ok := c.(publishable)
		if !ok {
			continue
		}
		reg := p.registry()
		if _, seen := byReg[reg]; !seen {
			regs = append(regs, reg)
		}
		byReg[reg] = append(byReg[reg], p.schemas()...)
	}
	for _, reg := range regs {
		if err := Publish(ctx, cl, reg, byReg[reg]...); err != nil {
			return err
		}
	}
	return nil
}

// publishable is a kastor.Codec made by this package: it knows its schemas.
type publishable interface {
	registry() *Registry
	schemas() []*Schema
}

func (a typesCodec[I]) registry() *Registry { return a.ts.reg }
func (a typesCodec[I]) schemas() []*Schema  { return a.ts.Schemas() }
func (a valueCodec[T]) registry() *Registry { return a.c.Registry() }
func (a valueCodec[T]) schemas() []*Schema  { return []*Schema{a.c.Schema()} }

// aggregateNamespace is the Avro namespace of an aggregate type's records: its name up to
// the last dot ("bank" for "bank.account"), or the whole name when it has none.
func aggregateNamespace(aggregateType string) string {
	if i := strings.LastIndexByte(aggregateType, '.'); i > 0 {
		return aggregateType[:i]
	}
	return aggregateType
}

// defaultNamespace is Namespace for a record whose name does not carry one, without
// Namespace's check that a qualified name (an EventType, a full Name) agrees with it.
func defaultNamespace(ns string) DeriveOption {
	return func(c *deriveConfig) { c.namespace = ns }
}

// withDefaultNamespace puts ns before each member's own options, which win.
func withDefaultNamespace(ns DeriveOption, members []Member) []Member {
	out := make([]Member, len(members))
	for i, m := range members {
		m.opts = append([]DeriveOption{ns}, m.opts...)
		out[i] = m
	}
	return out
}
