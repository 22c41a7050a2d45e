package schema

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
)

// Member is one Go type of a family registered by DeriveTypes, with the options its
// schema is derived with. Make it with Of.
type Member struct {
	t    reflect.Type
	opts []DeriveOption
	// bind makes the codec of the member's Go type for s, erased to any.
	bind func(reg *Registry, s *Schema, what string) (encodeAny, decodeAny, error)
}

type (
	encodeAny func(buf []byte, v any) ([]byte, error)
	decodeAny func(fp Fingerprint, data []byte) (any, error)
)

// Of is the member of a family for Go type T, its schema derived with opts (see Derive).
func Of[T any](opts ...DeriveOption) Member {
	return Member{
		t:    reflect.TypeFor[T](),
		opts: opts,
		bind: func(reg *Registry, s *Schema, what string) (encodeAny, decodeAny, error) {
			c, err := NewCodec[T](reg, s, Describe(what))
			if err != nil {
				return nil, nil, err
			}
			enc := func(buf []byte, v any) ([]byte, error) { return c.AppendEncode(buf, v.(T)) }
			dec := func(fp Fingerprint, data []byte) (any, error) {
				v, err := c.Decode(fp, data)
				if err != nil {
					return nil, err
				}
				return v, nil
			}
			return enc, dec, nil
		},
	}
}

// DeriveTypes returns a set of codecs for a family of Go types sharing interface I (an
// aggregate's events, its commands), each bound to the schema derived from it: NewTypes
// followed by NewCodec and Register for every member, without hand-written schemas.
//
//	events, err := schema.DeriveTypes[kastor.Event](reg, "event",
//		schema.Of[Opened](), schema.Of[Deposited](), schema.Of[Closed]())
//
// reg receives the schemas (nil: a registry of its own); what names the payloads in
// errors, as for NewTypes. Every member must implement (or be) I, and Go types and schema
// names must be distinct. The error joins one error per member that fails; the schemas
// of the members that did not fail are in reg all the same.
func DeriveTypes[I any](reg *Registry, what string, members ...Member) (*Types[I], error) {
	if reg == nil {
		reg = NewRegistry()
	}
	ts := NewTypes[I](reg, what)
	var errs []error
	for _, m := range members {
		if err := ts.addMember(m); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ts, nil
}

// RegisterDerived derives T's schema (see Derive), binds T to it in ts's registry and
// registers the codec in ts: Register with a derived schema, for a set that mixes derived
// and hand-written schemas.
func RegisterDerived[T, I any](ts *Types[I], opts ...DeriveOption) error {
	s, err := Derive[T](opts...)
	if err != nil {
		return err
	}
	c, err := NewCodec[T](ts.reg, s, Describe(ts.what))
	if err != nil {
		return err
	}
	return Register(ts, c)
}

// addMember is Register for a Member: the same checks, with T known only by reflection.
// (The schema's name needs no check against EventType: Derive names an event's record
// after it.)
func (ts *Types[I]) addMember(m Member) error {
	if m.t == nil || m.bind == nil {
		return fmt.Errorf("schema: a Member must be made with schema.Of")
	}
	t, i := m.t, reflect.TypeFor[I]()
	if !t.AssignableTo(i) {
		return fmt.Errorf("schema: Go type %s is not a %s", t, i)
	}
	if _, dup := ts.byGo[t]; dup {
		return fmt.Errorf("schema: Go type %s is registered twice", t)
	}
	s, err := DeriveType(t, m.opts...)
	if err != nil {
		return err
	}
	name := s.Name()
	if _, dup := ts.byName[name]; dup {
		return fmt.Errorf("schema: type %s is registered twice", name)
	}
	enc, dec, err := m.bind(ts.reg, s, ts.what)
	if err != nil {
		return err
	}
	e := &typeEntry[I]{
		schema: s,
		encode: func(buf []byte, v I) ([]byte, error) { return enc(buf, v) },
		decode: func(fp Fingerprint, data []byte) (I, error) {
			v, err := dec(fp, data)
			if err != nil {
				var zero I
				return zero, err
			}
			return v.(I), nil
		},
	}
	ts.byName[name] = e
	ts.byGo[t] = e
	return nil
}

// Schemas returns the schemas registered in the set, sorted by type name: the set's part
// of what a service passes to Publish at startup.
func (ts *Types[I]) Schemas() []*Schema {
	names := make([]string, 0, len(ts.byName))
	for n := range ts.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*Schema, len(names))
	for i, n := range names {
		out[i] = ts.byName[n].schema
	}
	return out
}
