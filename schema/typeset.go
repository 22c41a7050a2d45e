package schema

import (
	"fmt"
	"reflect"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// Types is the set of codecs for the payloads of one kind whose Go values share an
// interface I: an aggregate's events (I = kastor.Event), its commands. Encoding picks the
// codec by the value's dynamic Go type; decoding picks it by the type the record's writer
// schema becomes after upcasting (so data of a renamed type reaches the new Go type).
// Register codecs before use; Types is then safe for concurrent use.
type Types[I any] struct {
	reg    *Registry
	what   string
	byName map[string]*typeEntry[I]
	byGo   map[reflect.Type]*typeEntry[I]
}

type typeEntry[I any] struct {
	schema *Schema
	encode func(buf []byte, v I) ([]byte, error)
	decode func(fp Fingerprint, data []byte) (I, error)
}

// NewTypes returns an empty set decoding from reg. what names the payloads ("event",
// "command") in errors.
func NewTypes[I any](reg *Registry, what string) *Types[I] {
	return &Types[I]{reg: reg, what: what, byName: map[string]*typeEntry[I]{}, byGo: map[reflect.Type]*typeEntry[I]{}}
}

// Register adds a codec to the set. T must implement (or be) I, the codec must decode from
// the set's registry, and each Go type and schema name may be registered once. When T has
// an EventType method (kastor.Event), it must return the schema's full name: it is the
// type name stored in headers.
func Register[T, I any](ts *Types[I], c *Codec[T]) error {
	t, i := reflect.TypeFor[T](), reflect.TypeFor[I]()
	if !t.AssignableTo(i) {
		return fmt.Errorf("schema: Go type %s is not a %s", t, i)
	}
	if c.Registry() != ts.reg {
		return fmt.Errorf("schema: the codec of %s decodes from another registry than the set", t)
	}
	name := c.Schema().Name()
	var zero T
	if ev, ok := any(zero).(kastor.Event); ok && (t.Kind() != reflect.Pointer) {
		if got := ev.EventType(); got != name {
			return fmt.Errorf("schema: %s.EventType() is %q but its schema is %s", t, got, name)
		}
	}
	if _, dup := ts.byName[name]; dup {
		return fmt.Errorf("schema: type %s is registered twice", name)
	}
	if _, dup := ts.byGo[t]; dup {
		return fmt.Errorf("schema: Go type %s is registered twice", t)
	}
	e := &typeEntry[I]{
		schema: c.Schema(),
		encode: func(buf []byte, v I) ([]byte, error) { return c.AppendEncode(buf, any(v).(T)) },
		decode: func(fp Fingerprint, data []byte) (I, error) {
			v, err := c.Decode(fp, data)
			if err != nil {
				var zero I
				return zero, err
			}
			return any(v).(I), nil
		},
	}
	ts.byName[name] = e
	ts.byGo[t] = e
	return nil
}

// Encode encodes v with the codec of its dynamic type and returns the type name and
// writer fingerprint for the headers (see Headers).
func (ts *Types[I]) Encode(v I) (typeName string, fp Fingerprint, data []byte, err error) {
	e, ok := ts.byGo[reflect.TypeOf(v)]
	if !ok {
		return "", 0, nil, fmt.Errorf("schema: no codec registered for Go type %T", v)
	}
	// Never nil: a record with a null value is a tombstone to every Kafka tool, so a
	// zero-field record is written as an empty value.
	data, err = e.encode(make([]byte, 0, 64), v)
	return e.schema.Name(), e.schema.Fingerprint(), data, err
}

// Schema returns the schema registered for a type name.
func (ts *Types[I]) Schema(typeName string) (*Schema, bool) {
	e, ok := ts.byName[typeName]
	if !ok {
		return nil, false
	}
	return e.schema, true
}

// Decode decodes data written with the schema fp. typeName, from the kastor.type header,
// may be empty; when set it must be the writer schema's name. Errors are
// *kastor.UndecodableError.
func (ts *Types[I]) Decode(typeName string, fp Fingerprint, data []byte) (I, error) {
	var zero I
	w, ok := ts.reg.Schema(fp)
	if !ok {
		return zero, ts.undecodable(typeName, fp, &UnknownSchemaError{Fingerprint: fp})
	}
	if typeName != "" && typeName != w.Name() {
		return zero, ts.undecodable(typeName, fp, fmt.Errorf("%w: %s header %q does not match the writer schema %s", ErrBadHeader, HeaderType, typeName, w.Name()))
	}
	target := ts.reg.finalType(w)
	e, ok := ts.byName[target]
	if !ok {
		return zero, ts.undecodable(w.Name(), fp, fmt.Errorf("no Go type is registered for %s", target))
	}
	v, err := e.decode(fp, data)
	if ue, ok := err.(*kastor.UndecodableError); ok {
		ue.What = ts.what
	}
	return v, err
}

// DecodeRecord decodes a Kafka record by its envelope headers; errors locate the record.
func (ts *Types[I]) DecodeRecord(r *kgo.Record) (I, error) {
	v, err := ts.decodeRecord(r)
	if ue, ok := err.(*kastor.UndecodableError); ok {
		ue.Topic, ue.Partition, ue.Offset = r.Topic, r.Partition, r.Offset
	}
	return v, err
}

func (ts *Types[I]) decodeRecord(r *kgo.Record) (I, error) {
	typeName, fp, err := ReadHeaders(r.Headers)
	if err != nil {
		var zero I
		return zero, ts.undecodable(typeName, fp, err)
	}
	return ts.Decode(typeName, fp, r.Value)
}

func (ts *Types[I]) undecodable(typeName string, fp Fingerprint, err error) error {
	return &kastor.UndecodableError{What: ts.what, Type: typeName, Fingerprint: uint64(fp), Offset: -1, Err: err}
}
