package schema

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// Codec encodes Go values of type T with one schema (the type's current schema: the writer
// schema for what this process produces, and the reader schema for what it consumes), and
// decodes values written with any schema in its registry into T.
//
// Data written with the codec's own schema is read straight into T (the common case, and
// the fast one). Data written with another schema is decoded by goavro with that writer
// schema (found by fingerprint), rewritten by the upcasters registered for it, resolved to
// the codec's schema by Avro's rules, then bound to T. Encoding writes Avro binary straight
// from T. Either way the input is checked against Limits before anything is allocated.
//
// The Go type is checked against the schema once, when the Codec is made; decode plans are
// built once per writer fingerprint and cached. A Codec is safe for concurrent use.
type Codec[T any] struct {
	schema  *Schema
	reg     *Registry
	bind    *binding
	direct  bool // the binding can read the schema's own encoding without goavro
	what    string
	limits  Limits
	headers []kgo.RecordHeader

	mu    sync.RWMutex
	plans map[Fingerprint]*decodePlan
}

// CodecOption configures a Codec.
type CodecOption func(*codecConfig)

type codecConfig struct {
	what   string
	limits Limits
}

// Describe names what the codec's values are ("event", "command", "state"), for the
// *kastor.UndecodableError it returns.
func Describe(what string) CodecOption { return func(c *codecConfig) { c.what = what } }

// WithLimits sets the decoder's limits (zero fields take DefaultLimits' values).
func WithLimits(l Limits) CodecOption { return func(c *codecConfig) { c.limits = l } }

// NewCodec binds Go type T to schema s and adds s to reg (nil: a registry of its own, which
// then decodes only s's data). The error is a *BindError naming the first field whose Go
// type does not fit; the Go types each Avro type accepts are listed in the package
// documentation under "Binding Go types".
func NewCodec[T any](reg *Registry, s *Schema, opts ...CodecOption) (*Codec[T], error) {
	cfg := codecConfig{what: "record"}
	for _, o := range opts {
		o(&cfg)
	}
	b, direct, err := newBinding(reflect.TypeFor[T](), s)
	if err != nil {
		return nil, err
	}
	if reg == nil {
		reg = NewRegistry()
	}
	reg.Add(s)
	return &Codec[T]{
		schema:  s,
		reg:     reg,
		bind:    b,
		direct:  direct,
		what:    cfg.what,
		limits:  cfg.limits.withDefaults(),
		headers: Headers(s),
		plans:   map[Fingerprint]*decodePlan{},
	}, nil
}

// MustCodec is NewCodec for bindings known at compile time; it panics on error.
func MustCodec[T any](reg *Registry, s *Schema, opts ...CodecOption) *Codec[T] {
	c, err := NewCodec[T](reg, s, opts...)
	if err != nil {
		panic(err)
	}
	return c
}

// Schema returns the codec's schema.
func (c *Codec[T]) Schema() *Schema { return c.schema }

// Registry returns the registry the codec decodes from.
func (c *Codec[T]) Registry() *Registry { return c.reg }

// Headers returns the envelope headers naming the codec's schema, to set on produced
// records. The slice is shared: copy it before changing it.
func (c *Codec[T]) Headers() []kgo.RecordHeader { return c.headers }

// Encode returns the Avro binary encoding of v with the codec's schema. It is never nil: a
// record with a null value is a tombstone to every Kafka tool, so a zero-field record is an
// empty, not a null, value.
func (c *Codec[T]) Encode(v T) ([]byte, error) { return c.AppendEncode(make([]byte, 0, 64), v) }

// AppendEncode appends the Avro binary encoding of v to buf.
func (c *Codec[T]) AppendEncode(buf []byte, v T) ([]byte, error) {
	out, err := c.bind.app(buf, reflect.ValueOf(&v).Elem())
	if err != nil {
		return buf, err
	}
	return out, nil
}

// Decode decodes data written with the schema whose fingerprint is writer. Errors are
// *kastor.UndecodableError (errors.Is(err, kastor.ErrUndecodable)), wrapping
// ErrUnknownSchema, ErrMalformed, ErrIncompatible or ErrBinding.
func (c *Codec[T]) Decode(writer Fingerprint, data []byte) (T, error) {
	v, err := c.decode(writer, data)
	if err != nil {
		var zero T
		return zero, c.undecodable("", writer, err)
	}
	return v, nil
}

// DecodeHeaders reads the writer fingerprint from envelope headers and decodes value. A
// kastor.type header that names another type than the writer schema is an error: the
// record is not what it claims to be.
func (c *Codec[T]) DecodeHeaders(headers []kgo.RecordHeader, value []byte) (T, error) {
	v, err := c.decodeHeaders(headers, value)
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// DecodeRecord decodes a Kafka record's value using its envelope headers; errors locate
// the record (topic, partition, offset).
func (c *Codec[T]) DecodeRecord(r *kgo.Record) (T, error) {
	v, err := c.decodeHeaders(r.Headers, r.Value)
	if err != nil {
		var zero T
		if ue, ok := err.(*kastor.UndecodableError); ok {
			ue.Topic, ue.Partition, ue.Offset = r.Topic, r.Partition, r.Offset
		}
		return zero, err
	}
	return v, nil
}

func (c *Codec[T]) decodeHeaders(headers []kgo.RecordHeader, value []byte) (T, error) {
	var zero T
	typeName, fp, err := ReadHeaders(headers)
	if err != nil {
		return zero, c.undecodable(typeName, fp, err)
	}
	if typeName != "" {
		if w, ok := c.reg.Schema(fp); ok && w.Name() != typeName {
			return zero, c.undecodable(typeName, fp, fmt.Errorf("%w: %s header %q does not match the writer schema %s", ErrBadHeader, HeaderType, typeName, w.Name()))
		}
	}
	v, err := c.decode(fp, value)
	if err != nil {
		return zero, c.undecodable(typeName, fp, err)
	}
	return v, nil
}

func (c *Codec[T]) decode(fp Fingerprint, data []byte) (T, error) {
	if fp == c.schema.Fingerprint() && c.direct {
		return c.readDirect(data)
	}
	return c.decodeNative(fp, data)
}

// readDirect decodes data written with the codec's own schema straight into a T.
func (c *Codec[T]) readDirect(data []byte) (T, error) {
	var out T
	if len(data) > c.limits.MaxBytes {
		return out, malformed(0, "%d bytes exceed the limit of %d", len(data), c.limits.MaxBytes)
	}
	// The datum and the scanner both escape (through reflect and the bound read
	// functions): one allocation holds both. Readers decode a datum per event.
	d := &struct {
		out T
		s   scanner
	}{s: scanner{buf: data, lim: c.limits}}
	if err := c.bind.read(&d.s, reflect.ValueOf(&d.out).Elem()); err != nil {
		return out, err
	}
	if d.s.pos != len(data) {
		return out, malformed(d.s.pos, "%d trailing bytes after the datum", len(data)-d.s.pos)
	}
	return d.out, nil
}

// decodeNative decodes with goavro, upcasts and resolves, then binds the native value.
func (c *Codec[T]) decodeNative(fp Fingerprint, data []byte) (T, error) {
	var out T
	native, err := c.DecodeNative(fp, data)
	if err != nil {
		return out, err
	}
	if err := c.bind.dec(native, reflect.ValueOf(&out).Elem()); err != nil {
		return out, err
	}
	return out, nil
}

// DecodeNative is Decode without the binding to T: goavro's native form of the codec's
// schema (map[string]any for a record, a single-entry map for a non-null union value,
// time.Time for timestamps, bytes for decimals). Errors are not wrapped in
// UndecodableError.
func (c *Codec[T]) DecodeNative(writer Fingerprint, data []byte) (any, error) {
	p, err := c.plan(writer)
	if err != nil {
		return nil, err
	}
	return p.decode(c.schema, data, c.limits)
}

func (c *Codec[T]) plan(fp Fingerprint) (*decodePlan, error) {
	gen := c.reg.gen.Load()
	c.mu.RLock()
	p, ok := c.plans[fp]
	c.mu.RUnlock()
	if ok && p.gen == gen {
		return p, nil
	}
	p, err := c.reg.plan(fp, c.schema)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.plans[fp] = p
	c.mu.Unlock()
	return p, nil
}

func (c *Codec[T]) undecodable(typeName string, fp Fingerprint, err error) error {
	if typeName == "" {
		// Without a type header: the writer's type if known, else the type expected.
		typeName = c.schema.Name()
		if w, ok := c.reg.Schema(fp); ok {
			typeName = w.Name()
		}
	}
	return &kastor.UndecodableError{What: c.what, Type: typeName, Fingerprint: uint64(fp), Offset: -1, Err: err}
}

// CheckCompatible checks that the codec's schema can read every schema of its type in
// the registry: what a service runs at startup after loading _kastor.schemas.
func (c *Codec[T]) CheckCompatible() error { return c.reg.CheckCompatible(c.schema) }
