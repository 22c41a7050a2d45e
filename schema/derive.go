package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/kastor-dev/kastor"
)

// DeriveOption configures Derive.
type DeriveOption func(*deriveConfig)

type deriveConfig struct {
	name      string
	namespace string
	nsSet     bool
	aliases   []string
}

// Namespace sets the namespace of the derived record when its name does not carry one: a
// Go type name, or a Name without a dot. A type whose name is qualified (by Name or by
// EventType) must agree with it.
func Namespace(ns string) DeriveOption {
	return func(c *deriveConfig) { c.namespace, c.nsSet = ns, true }
}

// Name sets the derived record's name instead of the Go type name: a full name when it
// contains a dot ("bank.OpenAccount"), else a name in the Namespace. A type with an
// EventType method may only be given the name EventType returns, which is its record
// name anyway.
func Name(name string) DeriveOption { return func(c *deriveConfig) { c.name = name } }

// Aliases lists the record's former names (full, or relative to its namespace), so that
// data written under an old name resolves to the derived schema. See also the field tag
// option alias=.
func Aliases(names ...string) DeriveOption {
	return func(c *deriveConfig) { c.aliases = append(c.aliases, names...) }
}

// ErrDerive: no Avro schema can be derived from a Go type (*DeriveError).
var ErrDerive = errors.New("schema: cannot derive an Avro schema from the Go type")

// DeriveError says why no Avro schema can be derived from a Go type, and where.
type DeriveError struct {
	GoType string // the Go type derived, such as "account.Opened"
	Path   string // the Go field path, such as "Lines[].Price"; empty for the type itself
	Msg    string
	Err    error // the underlying error, if any (a *ParseError or *BindError)
}

// Error names the Go type and the field.
func (e *DeriveError) Error() string {
	s := "schema: cannot derive an Avro schema from Go type " + e.GoType
	if e.Path != "" {
		s += ": field " + e.Path
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is matches ErrDerive.
func (e *DeriveError) Is(target error) bool { return target == ErrDerive }

// Unwrap returns the underlying error.
func (e *DeriveError) Unwrap() error { return e.Err }

// Derive returns the Avro record schema of Go struct type T (or of the struct a pointer
// type T points to). The schema binds to T (NewCodec[T] accepts it), its JSON is what one
// would write by hand, and its canonical form and fingerprint are those of that JSON: a
// schema can be derived today and written by hand later, or the reverse, without changing
// the data.
//
// The record's full name is, in order: the Name option; the result of T's EventType
// method (kastor events: "bank.AccountOpened" is record AccountOpened in namespace bank);
// the Go type name in the Namespace option's namespace. Nested structs become records
// named after their Go types (or their EventType) in the root record's namespace, defined
// at first use and referred to by name afterwards (recursive types work); two Go types of
// the same name are an error.
//
// The fields are those NewCodec binds, with the same names, in struct order. The Go types
// Derive accepts, the Avro types they become and the tag options (defaults, aliases,
// logical types) are listed in the package documentation, under "Deriving schemas"; any
// other Go type is a *DeriveError naming the field. A field added to a type already in use
// needs a default (Publish refuses it otherwise); pointer fields always have one (null).
func Derive[T any](opts ...DeriveOption) (*Schema, error) {
	return DeriveType(reflect.TypeFor[T](), opts...)
}

// MustDerive is Derive for Go types known at compile time; it panics on error.
func MustDerive[T any](opts ...DeriveOption) *Schema {
	s, err := Derive[T](opts...)
	if err != nil {
		panic(err)
	}
	return s
}

// DeriveType is Derive for a reflect.Type.
func DeriveType(t reflect.Type, opts ...DeriveOption) (*Schema, error) {
	var cfg deriveConfig
	for _, o := range opts {
		o(&cfg)
	}
	if t == nil {
		return nil, &DeriveError{GoType: "<nil>", Msg: "no type"}
	}
	d := &deriver{goType: t.String(), names: map[string]reflect.Type{}, types: map[reflect.Type]string{}}
	st := t
	if st.Kind() == reflect.Pointer {
		st = st.Elem()
	}
	if st.Kind() != reflect.Struct || st == timeType || st == ratType {
		return nil, d.fail("", "Go type %s is not a struct; only structs become Avro records", t)
	}
	full, err := d.rootName(st, cfg)
	if err != nil {
		return nil, err
	}
	d.ns = namespaceOf(full)
	d.names[full], d.types[st] = st, full
	rec, err := d.record(st, full, d.ns, "")
	if err != nil {
		return nil, err
	}
	rec.Name, rec.Namespace, rec.Aliases = shortName(full), d.ns, cfg.aliases
	text, err := marshalSchema(rec)
	if err != nil {
		return nil, d.wrap("", "cannot write the schema JSON", err)
	}
	s, err := Parse(text)
	if err != nil {
		return nil, d.wrap("", "the derived schema is invalid", err)
	}
	// The promise of Derive: the schema binds to the type it came from.
	if _, _, err := newBinding(t, s); err != nil {
		return nil, d.wrap("", "the derived schema does not bind to the Go type", err)
	}
	return s, nil
}

type deriver struct {
	goType string
	ns     string                  // the root record's namespace, that of nested records
	names  map[string]reflect.Type // full name -> the Go type defining it
	types  map[reflect.Type]string // Go type -> its full name, once defined
}

func (d *deriver) fail(path, format string, args ...any) error {
	return &DeriveError{GoType: d.goType, Path: path, Msg: fmt.Sprintf(format, args...)}
}

func (d *deriver) wrap(path, msg string, err error) error {
	return &DeriveError{GoType: d.goType, Path: path, Msg: msg, Err: err}
}

var eventType = reflect.TypeFor[kastor.Event]()

// eventTypeOf returns the result of t's EventType method, if t or *t has one.
func eventTypeOf(t reflect.Type) (string, bool) {
	switch {
	case t.Implements(eventType):
		return reflect.Zero(t).Interface().(kastor.Event).EventType(), true
	case reflect.PointerTo(t).Implements(eventType):
		return reflect.New(t).Interface().(kastor.Event).EventType(), true
	}
	return "", false
}

func namespaceOf(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i]
	}
	return ""
}

func (d *deriver) rootName(t reflect.Type, cfg deriveConfig) (string, error) {
	if cfg.nsSet && cfg.namespace != "" {
		if err := validFullName(cfg.namespace); err != nil {
			return "", d.fail("", "namespace %q: %v", cfg.namespace, err)
		}
	}
	ev, isEvent := eventTypeOf(t)
	var full string
	switch {
	case cfg.name != "":
		full = cfg.name
		if !strings.Contains(full, ".") && cfg.namespace != "" {
			full = cfg.namespace + "." + full
		}
		if isEvent && ev != full {
			return "", d.fail("", "Name(%q) makes the record %s, but EventType() is %q: an event's record name is its type name", cfg.name, full, ev)
		}
	case isEvent:
		full = ev
	default:
		full = t.Name()
		if full == "" {
			return "", d.fail("", "an anonymous struct has no name; give one with schema.Name")
		}
		if cfg.namespace != "" {
			full = cfg.namespace + "." + full
		}
	}
	if cfg.nsSet && namespaceOf(full) != cfg.namespace {
		return "", d.fail("", "the record %s is not in Namespace(%q)", full, cfg.namespace)
	}
	if err := validFullName(full); err != nil {
		return "", d.fail("", "record name %q: %v (give another with schema.Name)", full, err)
	}
	return full, nil
}

// The schema JSON, with its attributes in the conventional order.
type (
	recordJSON struct {
		Type      string      `json:"type"`
		Name      string      `json:"name"`
		Namespace string      `json:"namespace,omitempty"`
		Aliases   []string    `json:"aliases,omitempty"`
		Fields    []fieldJSON `json:"fields"`
	}
	fieldJSON struct {
		Name    string          `json:"name"`
		Type    any             `json:"type"`
		Aliases []string        `json:"aliases,omitempty"`
		Default json.RawMessage `json:"default,omitempty"`
	}
	arrayJSON struct {
		Type  string `json:"type"`
		Items any    `json:"items"`
	}
	mapJSON struct {
		Type   string `json:"type"`
		Values any    `json:"values"`
	}
	fixedJSON struct {
		Type string `json:"type"`
		Name string `json:"name"`
		Size int    `json:"size"`
	}
	logicalJSON struct {
		Type        string `json:"type"`
		LogicalType string `json:"logicalType"`
		Precision   int    `json:"precision,omitempty"`
		Scale       int    `json:"scale,omitempty"`
	}
)

// marshalSchema writes v as compact JSON, without escaping <, > and &.
func marshalSchema(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// fieldTag is a struct field's `avro` tag.
type fieldTag struct {
	name    string
	zeroDef bool    // "default": the Go zero value
	def     *string // "default=...": the default as written
	aliases []string
	elem    elemOpts
}

// elemOpts are the tag options that choose the Avro type of a value, passed down through
// pointers, slices and maps.
type elemOpts struct {
	logical          string
	precision, scale int
}

func (o elemOpts) set() bool { return o != elemOpts{} }

func (o elemOpts) String() string {
	var parts []string
	if o.logical != "" {
		parts = append(parts, o.logical)
	}
	if o.precision != 0 {
		parts = append(parts, "precision="+strconv.Itoa(o.precision))
	}
	if o.scale != 0 {
		parts = append(parts, "scale="+strconv.Itoa(o.scale))
	}
	return strings.Join(parts, ",")
}

func parseFieldTag(tag string) (fieldTag, error) {
	var ft fieldTag
	name, rest, _ := strings.Cut(tag, ",")
	ft.name = name
	scaleSet := false
	for rest != "" {
		if v, ok := strings.CutPrefix(rest, "default="); ok {
			ft.def = &v
			break
		}
		var opt string
		opt, rest, _ = strings.Cut(rest, ",")
		key, val, hasVal := strings.Cut(opt, "=")
		switch {
		case opt == "default":
			ft.zeroDef = true
		case opt == logicalTimestampMillis || opt == logicalTimestampMicros || opt == logicalDate ||
			opt == logicalTimeMillis || opt == logicalTimeMicros:
			if ft.elem.logical != "" {
				return ft, fmt.Errorf("tag options %s and %s conflict", ft.elem.logical, opt)
			}
			ft.elem.logical = opt
		case key == "precision" && hasVal:
			p, err := strconv.Atoi(val)
			if err != nil || p < 1 {
				return ft, fmt.Errorf("tag option %q: the precision must be a positive integer", opt)
			}
			ft.elem.precision = p
		case key == "scale" && hasVal:
			s, err := strconv.Atoi(val)
			if err != nil || s < 0 {
				return ft, fmt.Errorf("tag option %q: the scale must be a non-negative integer", opt)
			}
			ft.elem.scale, scaleSet = s, true
		case key == "alias" && hasVal:
			if err := validName(val); err != nil {
				return ft, fmt.Errorf("tag option %q: %v", opt, err)
			}
			ft.aliases = append(ft.aliases, val)
		case opt == "":
		default:
			return ft, fmt.Errorf("unknown tag option %q (known: default, default=VALUE, alias=NAME, timestamp-millis, timestamp-micros, date, time-millis, time-micros, precision=P, scale=S)", opt)
		}
	}
	if scaleSet && ft.elem.precision == 0 {
		return ft, fmt.Errorf("tag option scale needs precision")
	}
	if ft.elem.scale > ft.elem.precision {
		return ft, fmt.Errorf("the scale %d exceeds the precision %d", ft.elem.scale, ft.elem.precision)
	}
	if ft.zeroDef && ft.def != nil {
		return ft, fmt.Errorf("tag options default and default= conflict")
	}
	return ft, nil
}

func joinGoPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// taggedField is a bound struct field with its parsed tag.
type taggedField struct {
	goField
	tag  fieldTag
	path string
}

// fieldsOf lists t's fields as bindings bind them (structFields), with their tags.
func (d *deriver) fieldsOf(t reflect.Type, path string) ([]taggedField, error) {
	gfs, err := structFields(t, nil)
	if err != nil {
		return nil, d.fail(path, "%v", err)
	}
	out := make([]taggedField, 0, len(gfs))
	byName := map[string]string{}
	for _, gf := range gfs {
		fp := joinGoPath(path, gf.goName)
		tag, err := parseFieldTag(t.FieldByIndex(gf.index).Tag.Get("avro"))
		if err != nil {
			return nil, d.fail(fp, "%v", err)
		}
		if err := validName(gf.name); err != nil {
			return nil, d.fail(fp, "Avro field name %q: %v (name it with a tag: `avro:\"name\"`)", gf.name, err)
		}
		if prev, dup := byName[gf.name]; dup {
			return nil, d.fail(fp, "Go fields %s and %s both map to Avro field %q", prev, gf.goName, gf.name)
		}
		byName[gf.name] = gf.goName
		out = append(out, taggedField{goField: gf, tag: tag, path: fp})
	}
	return out, nil
}

// record writes the fields of struct t, whose full name is full; space is the enclosing
// namespace.
func (d *deriver) record(t reflect.Type, full, space, path string) (*recordJSON, error) {
	fields, err := d.fieldsOf(t, path)
	if err != nil {
		return nil, err
	}
	rec := &recordJSON{Type: "record", Name: d.written(full, space), Fields: []fieldJSON{}}
	for _, f := range fields {
		fj, err := d.field(f, namespaceOf(full))
		if err != nil {
			return nil, err
		}
		rec.Fields = append(rec.Fields, fj)
	}
	return rec, nil
}

func (d *deriver) field(f taggedField, space string) (fieldJSON, error) {
	fj := fieldJSON{Name: f.name, Aliases: f.tag.aliases}
	t, elem, path := f.typ, f.tag.elem, f.path
	if t.Kind() == reflect.Pointer {
		// The default decides the order of the union: Avro takes a union's default from
		// its first branch.
		inner, err := d.typeOf(t.Elem(), elem, space, path)
		if err != nil {
			return fj, err
		}
		if _, isUnion := inner.([]any); isUnion {
			return fj, d.fail(path, "Go type %s: a pointer to a pointer has no Avro type (a union cannot contain a union)", t)
		}
		if f.tag.def != nil && strings.TrimSpace(*f.tag.def) != "null" {
			def, err := d.defaultJSON(t.Elem(), *f.tag.def, path)
			if err != nil {
				return fj, err
			}
			fj.Type, fj.Default = []any{inner, "null"}, def
			return fj, nil
		}
		fj.Type, fj.Default = []any{"null", inner}, json.RawMessage("null")
		return fj, nil
	}
	typ, err := d.typeOf(t, elem, space, path)
	if err != nil {
		return fj, err
	}
	fj.Type = typ
	switch {
	case f.tag.def != nil:
		fj.Default, err = d.defaultJSON(t, *f.tag.def, path)
	case f.tag.zeroDef:
		var z any
		if z, err = d.zero(t, elem, path); err == nil {
			fj.Default, err = json.Marshal(z)
		}
	}
	return fj, err
}

// defaultJSON is a default as written in a tag: JSON, or a bare string for a string field.
func (d *deriver) defaultJSON(t reflect.Type, text, path string) (json.RawMessage, error) {
	if t.Kind() == reflect.String && !strings.HasPrefix(strings.TrimSpace(text), `"`) {
		s, err := marshalSchema(text)
		return json.RawMessage(s), err
	}
	if !json.Valid([]byte(text)) {
		return nil, d.fail(path, "default %q is not JSON (Avro defaults are JSON: numbers, true, \"text\", [], {}, null)", text)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(text)); err != nil {
		return nil, d.fail(path, "default %q: %v", text, err)
	}
	return b.Bytes(), nil
}

// zero is the Avro JSON of Go type t's zero value, as a default.
func (d *deriver) zero(t reflect.Type, elem elemOpts, path string) (any, error) {
	switch t {
	case timeType:
		lt := elem.logical
		if lt == "" {
			lt = logicalTimestampMillis
		}
		return timeRaw(&node{logical: lt}, time.Time{}), nil
	case durationType:
		return 0, nil
	case ratType:
		return "\u0000", nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nil, nil
	case reflect.Bool:
		return false, nil
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Float32, reflect.Float64:
		return 0, nil
	case reflect.String:
		return "", nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "", nil
		}
		return []any{}, nil
	case reflect.Map:
		return map[string]any{}, nil
	case reflect.Array:
		return strings.Repeat("\u0000", t.Len()), nil
	case reflect.Struct:
		fields, err := d.fieldsOf(t, path)
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		for _, f := range fields {
			switch {
			case f.tag.def != nil && (f.typ.Kind() != reflect.Pointer || strings.TrimSpace(*f.tag.def) != "null"):
				ft := f.typ
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				raw, err := d.defaultJSON(ft, *f.tag.def, f.path)
				if err != nil {
					return nil, err
				}
				out[f.name] = raw
			default:
				z, err := d.zero(f.typ, f.tag.elem, f.path)
				if err != nil {
					return nil, err
				}
				out[f.name] = z
			}
		}
		return out, nil
	}
	return nil, d.fail(path, "Go type %s has no Avro zero value", t)
}

// typeOf is the Avro type of Go type t, written in namespace space.
func (d *deriver) typeOf(t reflect.Type, elem elemOpts, space, path string) (any, error) {
	if (t == timeType || t == durationType) && elem.precision != 0 {
		return nil, d.fail(path, "tag option %s does not apply to %s", elem, t)
	}
	switch t {
	case timeType:
		switch elem.logical {
		case "", logicalTimestampMillis:
			return logicalJSON{Type: "long", LogicalType: logicalTimestampMillis}, nil
		case logicalTimestampMicros:
			return logicalJSON{Type: "long", LogicalType: logicalTimestampMicros}, nil
		case logicalDate:
			return logicalJSON{Type: "int", LogicalType: logicalDate}, nil
		}
		return nil, d.fail(path, "tag option %s does not apply to time.Time (timestamp-millis, timestamp-micros or date do)", elem)
	case durationType:
		switch elem.logical {
		case "":
			if elem.set() {
				break
			}
			return "long", nil
		case logicalTimeMillis:
			return logicalJSON{Type: "int", LogicalType: logicalTimeMillis}, nil
		case logicalTimeMicros:
			return logicalJSON{Type: "long", LogicalType: logicalTimeMicros}, nil
		}
		return nil, d.fail(path, "tag option %s does not apply to time.Duration (time-millis or time-micros do)", elem)
	case ratType:
		if elem.logical != "" || elem.precision == 0 {
			return nil, d.fail(path, "big.Rat needs the tag options precision=P and scale=S (a bytes decimal)")
		}
		return logicalJSON{Type: "bytes", LogicalType: logicalDecimal, Precision: elem.precision, Scale: elem.scale}, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if t.Elem().Kind() == reflect.Pointer {
			return nil, d.fail(path, "Go type %s: a pointer to a pointer has no Avro type (a union cannot contain a union)", t)
		}
		inner, err := d.typeOf(t.Elem(), elem, space, path)
		if err != nil {
			return nil, err
		}
		return []any{"null", inner}, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			break // bytes
		}
		items, err := d.typeOf(t.Elem(), elem, space, path+"[]")
		if err != nil {
			return nil, err
		}
		return arrayJSON{Type: "array", Items: items}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, d.fail(path, "Go type %s: Avro map keys are strings, not %s", t, t.Key())
		}
		values, err := d.typeOf(t.Elem(), elem, space, path+"{}")
		if err != nil {
			return nil, err
		}
		return mapJSON{Type: "map", Values: values}, nil
	}
	if elem.set() {
		return nil, d.fail(path, "tag option %s does not apply to Go type %s", elem, t)
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean", nil
	case reflect.Int32:
		return "int", nil
	case reflect.Int, reflect.Int64:
		return "long", nil
	case reflect.Float32:
		return "float", nil
	case reflect.Float64:
		return "double", nil
	case reflect.String:
		return "string", nil
	case reflect.Slice: // of bytes
		return "bytes", nil
	case reflect.Int8, reflect.Int16:
		return nil, d.fail(path, "Go type %s cannot hold every Avro int; use int32 (Avro int) or int64 (Avro long)", t)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return nil, d.fail(path, "Go type %s is unsigned and Avro has no unsigned integers; use int32 or int64", t)
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Name() != "" {
			return d.named(t, space, path, func(full string) (any, error) {
				return fixedJSON{Type: "fixed", Name: d.written(full, space), Size: t.Len()}, nil
			})
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return nil, d.fail(path, "Go type %s: only a named byte array type becomes an Avro fixed (named after it); declare one, or use []byte", t)
		}
		return nil, d.fail(path, "Go type %s: arrays have no Avro type; use a slice", t)
	case reflect.Struct:
		if t.Name() == "" {
			return nil, d.fail(path, "Go type %s: an anonymous struct has no name for its Avro record; declare a named type", t)
		}
		return d.named(t, space, path, func(full string) (any, error) {
			return d.record(t, full, space, path)
		})
	case reflect.Interface:
		return nil, d.fail(path, "Go type %s is an interface: its values have no fixed Avro type (write the schema by hand)", t)
	}
	return nil, d.fail(path, "Go type %s has no Avro type", t)
}

// named defines a named Avro type (record or fixed) for Go type t at its first use, with
// define, and refers to it by name afterwards.
func (d *deriver) named(t reflect.Type, space, path string, define func(full string) (any, error)) (any, error) {
	if full, ok := d.types[t]; ok {
		return d.written(full, space), nil
	}
	full := t.Name()
	if ev, ok := eventTypeOf(t); ok && t.Kind() == reflect.Struct {
		full = ev
	}
	if !strings.Contains(full, ".") && d.ns != "" {
		full = d.ns + "." + full
	}
	if err := validFullName(full); err != nil {
		return nil, d.fail(path, "Go type %s: Avro name %q: %v", t, full, err)
	}
	if _, ok := primitiveKinds[full]; ok {
		return nil, d.fail(path, "Go type %s: %q is an Avro primitive type name", t, full)
	}
	if other, dup := d.names[full]; dup {
		return nil, d.fail(path, "Go types %s and %s would both be the Avro type %s", other, t, full)
	}
	d.names[full], d.types[t] = t, full
	return define(full)
}

// written is how a named type is written in namespace space: its short name if it is in
// space, else its full name.
func (d *deriver) written(full, space string) string {
	if namespaceOf(full) == space {
		return shortName(full)
	}
	return full
}
