package schema

import (
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"time"
	"unicode"
)

// A binding encodes a Go type to one schema's Avro binary encoding, and decodes goavro's
// native form of that schema into the Go type. It is compiled once per (Go type, schema) by
// reflection; encoding and decoding then walk precomputed steps (field indexes, union
// indexes and keys, element bindings, the encoded defaults) over reflect.Values. The Go
// types it accepts for each Avro type, and how it names struct fields, are listed in the
// package documentation under "Binding Go types".
type binding struct {
	app  func(buf []byte, v reflect.Value) ([]byte, error)
	dec  func(x any, v reflect.Value) error
	read readFunc // direct decoding (read.go)
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
	ratType      = reflect.TypeFor[big.Rat]()
	nativeMap    = reflect.TypeFor[map[string]any]()
)

type bindBuilder struct {
	goType string
	schema string
	memo   map[bindKey]*binding
	// native: some field takes goavro's native values (any, map[string]any), so the
	// binding cannot decode directly.
	native bool
}

type bindKey struct {
	t reflect.Type
	n *node
}

// newBinding compiles the binding of Go type t to schema s; direct reports whether it can
// decode without goavro's native values.
func newBinding(t reflect.Type, s *Schema) (b *binding, direct bool, err error) {
	bb := &bindBuilder{goType: t.String(), schema: s.Name(), memo: map[bindKey]*binding{}}
	b, err = bb.build(t, s.root, "")
	return b, !bb.native, err
}

func (bb *bindBuilder) fail(path, format string, args ...any) error {
	return &BindError{GoType: bb.goType, Schema: bb.schema, Path: path, Msg: fmt.Sprintf(format, args...)}
}

func (bb *bindBuilder) build(t reflect.Type, n *node, path string) (*binding, error) {
	key := bindKey{t, n}
	if b, ok := bb.memo[key]; ok {
		return b, nil // possibly still being built: recursive types call through the pointer
	}
	b := &binding{}
	bb.memo[key] = b
	if err := bb.fill(b, t, n, path); err != nil {
		delete(bb.memo, key)
		return nil, err
	}
	return b, nil
}

func (bb *bindBuilder) fill(b *binding, t reflect.Type, n *node, path string) error {
	if t.Kind() == reflect.Interface && t.NumMethod() == 0 || t == nativeMap && (n.kind == Record || n.kind == Map) {
		bb.passthrough(b, n, path)
		return nil
	}
	if n.kind == Union {
		return bb.union(b, t, n, path)
	}
	if t.Kind() == reflect.Pointer {
		return bb.pointer(b, t, n, path)
	}
	switch n.kind {
	case Boolean:
		if t.Kind() == reflect.Bool {
			b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
				if v.Bool() {
					return append(buf, 1), nil
				}
				return append(buf, 0), nil
			}
			b.dec = func(x any, v reflect.Value) error {
				y, ok := x.(bool)
				if !ok {
					return bb.mismatch(path, x, v)
				}
				v.SetBool(y)
				return nil
			}
			b.read = readBool
			return nil
		}
	case Int, Long:
		return bb.integer(b, t, n, path)
	case Float, Double:
		if t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32 && n.kind == Float {
			if n.kind == Double {
				b.app = func(buf []byte, v reflect.Value) ([]byte, error) { return appendDouble(buf, v.Float()), nil }
				b.read = readDouble
			} else {
				b.app = func(buf []byte, v reflect.Value) ([]byte, error) { return appendFloat(buf, float32(v.Float())), nil }
				b.read = readFloat
			}
			b.dec = func(x any, v reflect.Value) error {
				switch y := x.(type) {
				case float64:
					v.SetFloat(y)
				case float32:
					v.SetFloat(float64(y))
				default:
					return bb.mismatch(path, x, v)
				}
				return nil
			}
			return nil
		}
		if t.Kind() == reflect.Float32 {
			return bb.fail(path, "Go float32 cannot hold every Avro double; use float64")
		}
	case String:
		if t.Kind() == reflect.String {
			b.app = func(buf []byte, v reflect.Value) ([]byte, error) { return appendString(buf, v.String()), nil }
			b.read = readString
			b.dec = func(x any, v reflect.Value) error {
				switch y := x.(type) {
				case string:
					v.SetString(y)
				case []byte:
					v.SetString(string(y))
				default:
					return bb.mismatch(path, x, v)
				}
				return nil
			}
			return nil
		}
	case Enum:
		if t.Kind() == reflect.String {
			b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
				s := v.String()
				i, ok := n.symbolIndex[s]
				if !ok {
					return nil, bb.fail(path, "%q is not a symbol of enum %s (symbols: %s)", s, n.fullName, strings.Join(n.symbols, ", "))
				}
				return appendLong(buf, int64(i)), nil
			}
			b.dec = func(x any, v reflect.Value) error {
				y, ok := x.(string)
				if !ok {
					return bb.mismatch(path, x, v)
				}
				v.SetString(y)
				return nil
			}
			b.read = func(s *scanner, v reflect.Value) error {
				i, err := s.enumIndex(n)
				if err != nil {
					return err
				}
				v.SetString(n.symbols[i])
				return nil
			}
			return nil
		}
	case Bytes, Fixed:
		if n.logical == logicalDecimal && t == ratType {
			bb.decimal(b, n, path)
			return nil
		}
		return bb.bytes(b, t, n, path)
	case Array:
		if t.Kind() == reflect.Slice {
			return bb.slice(b, t, n, path)
		}
	case Map:
		if t.Kind() == reflect.Map && t.Key().Kind() == reflect.String {
			return bb.mapping(b, t, n, path)
		}
	case Record:
		if t.Kind() == reflect.Struct && t != timeType && t != ratType {
			return bb.record(b, t, n, path)
		}
	case Null:
		return bb.fail(path, "Avro null needs a Go pointer or interface, not %s", t)
	}
	return bb.fail(path, "Go type %s cannot hold Avro %s", t, n.name())
}

func (bb *bindBuilder) mismatch(path string, x any, v reflect.Value) error {
	return bb.fail(path, "cannot store a %T in Go %s", x, v.Type())
}

func (bb *bindBuilder) passthrough(b *binding, n *node, path string) {
	bb.native = true
	b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
		var x any
		if !(v.Kind() == reflect.Interface || v.Kind() == reflect.Map) || !v.IsNil() {
			x = v.Interface()
		}
		out, err := appendNative(buf, n, x)
		if err != nil {
			return nil, bb.fail(path, "%v", err)
		}
		return out, nil
	}
	b.dec = func(x any, v reflect.Value) error {
		if x == nil {
			v.SetZero()
			return nil
		}
		v.Set(reflect.ValueOf(copyNative(x)))
		return nil
	}
}

func (bb *bindBuilder) pointer(b *binding, t reflect.Type, n *node, path string) error {
	elem, err := bb.build(t.Elem(), n, path)
	if err != nil {
		return err
	}
	b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
		if v.IsNil() {
			return nil, bb.fail(path, "nil %s for Avro %s, which has no null (make the schema a union with null)", t, n.name())
		}
		return elem.app(buf, v.Elem())
	}
	b.dec = func(x any, v reflect.Value) error {
		p := reflect.New(t.Elem())
		if err := elem.dec(x, p.Elem()); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	b.read = func(s *scanner, v reflect.Value) error {
		p := reflect.New(t.Elem())
		if err := elem.read(s, p.Elem()); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	return nil
}

// union binds a Go type to a union: null is a nil pointer, slice or map (or the zero value of
// other types), and the value is bound to every non-null branch its Go type fits: encoding
// writes the first of them, decoding accepts any.
func (bb *bindBuilder) union(b *binding, t reflect.Type, n *node, path string) error {
	valueType, nilable := t, false
	switch t.Kind() {
	case reflect.Pointer:
		valueType, nilable = t.Elem(), true
	case reflect.Slice, reflect.Map:
		nilable = true
	}
	type branch struct {
		index int64
		b     *binding
	}
	var branches []branch
	byKey := map[string]*binding{}
	byIndex := make([]*binding, len(n.union))
	var firstErr error
	for i, br := range n.union {
		if br.kind == Null {
			continue
		}
		bd, err := bb.build(valueType, br, path)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		branches = append(branches, branch{int64(i), bd})
		byKey[br.unionKey] = bd
		byIndex[i] = bd
	}
	if len(branches) == 0 {
		if firstErr != nil {
			return firstErr
		}
		return bb.fail(path, "Go type %s cannot hold the union %s (only null); use a pointer or any", t, unionName(n))
	}
	hasNull := n.nullIndex >= 0
	if t.Kind() == reflect.Pointer && !hasNull {
		return bb.fail(path, "Go pointer %s needs a union with null, not %s", t, unionName(n))
	}
	first := branches[0]
	null := int64(n.nullIndex)
	b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
		if nilable && v.IsNil() {
			if !hasNull {
				return nil, bb.fail(path, "nil %s for the union %s, which has no null", t, unionName(n))
			}
			return appendLong(buf, null), nil
		}
		if t.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		return first.b.app(appendLong(buf, first.index), v)
	}
	b.dec = func(x any, v reflect.Value) error {
		if x == nil {
			v.SetZero()
			return nil
		}
		m, ok := x.(map[string]any)
		if !ok || len(m) != 1 {
			return bb.mismatch(path, x, v)
		}
		for k, y := range m {
			bd, ok := byKey[k]
			if !ok {
				return bb.fail(path, "union branch %s cannot be stored in Go %s", k, t)
			}
			if t.Kind() == reflect.Pointer {
				p := reflect.New(valueType)
				if err := bd.dec(y, p.Elem()); err != nil {
					return err
				}
				v.Set(p)
				return nil
			}
			return bd.dec(y, v)
		}
		return nil
	}
	b.read = func(s *scanner, v reflect.Value) error {
		if err := s.enter(); err != nil {
			return err
		}
		defer s.leave()
		i, err := s.unionIndex(n)
		if err != nil {
			return err
		}
		if i == n.nullIndex {
			v.SetZero()
			return nil
		}
		bd := byIndex[i]
		if bd == nil {
			return bb.fail(path, "union branch %s cannot be stored in Go %s", n.union[i].unionKey, t)
		}
		if t.Kind() == reflect.Pointer {
			p := reflect.New(valueType)
			if err := bd.read(s, p.Elem()); err != nil {
				return err
			}
			v.Set(p)
			return nil
		}
		return bd.read(s, v)
	}
	return nil
}

func (bb *bindBuilder) integer(b *binding, t reflect.Type, n *node, path string) error {
	switch {
	case t == timeType && (n.logical == logicalTimestampMillis || n.logical == logicalTimestampMicros || n.logical == logicalDate),
		t == durationType && (n.logical == logicalTimeMillis || n.logical == logicalTimeMicros):
		raw := func(v reflect.Value) int64 {
			if t == durationType {
				if n.logical == logicalTimeMicros {
					return v.Int() / int64(time.Microsecond)
				}
				return v.Int() / int64(time.Millisecond)
			}
			if v.CanAddr() { // no copy to the heap
				return timeRaw(n, *v.Addr().Interface().(*time.Time))
			}
			return timeRaw(n, v.Interface().(time.Time))
		}
		b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
			i := raw(v)
			if n.kind == Int && int64(int32(i)) != i {
				return nil, bb.fail(path, "%v does not fit Avro %s", v.Interface(), n.name())
			}
			return appendLong(buf, i), nil
		}
		b.dec = func(x any, v reflect.Value) error {
			if _, ok := x.(time.Time); !ok && t == timeType || t == durationType && !isDuration(x) {
				var err error
				if x, err = raise(n, x); err != nil {
					return bb.fail(path, "%v", err)
				}
			}
			if tm, ok := x.(time.Time); ok {
				x = tm.UTC()
			}
			v.Set(reflect.ValueOf(x))
			return nil
		}
		if t == timeType {
			b.read = func(s *scanner, v reflect.Value) error {
				raw, err := s.integer(n)
				if err != nil {
					return err
				}
				*v.Addr().Interface().(*time.Time) = rawTime(n, raw)
				return nil
			}
		} else {
			b.read = func(s *scanner, v reflect.Value) error {
				raw, err := s.integer(n)
				v.SetInt(int64(rawDuration(n, raw)))
				return err
			}
		}
		return nil
	case t == timeType:
		return bb.fail(path, "Go time.Time needs a long with logical type timestamp-millis or timestamp-micros, or an int date, not %s", n.name())
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
	case reflect.Int32:
		if n.kind == Long {
			return bb.fail(path, "Go %s cannot hold every Avro long; use int64 or int", t)
		}
	default:
		return bb.fail(path, "Go type %s cannot hold Avro %s", t, n.name())
	}
	if n.kind == Long {
		b.app = func(buf []byte, v reflect.Value) ([]byte, error) { return appendLong(buf, v.Int()), nil }
	} else {
		b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
			i := v.Int()
			if int64(int32(i)) != i {
				return nil, bb.fail(path, "%d does not fit an Avro int", i)
			}
			return appendLong(buf, i), nil
		}
	}
	b.dec = func(x any, v reflect.Value) error {
		raw, err := lower(n, x)
		if err != nil {
			return bb.fail(path, "%v", err)
		}
		i, ok := toInt64(raw)
		if !ok {
			return bb.mismatch(path, x, v)
		}
		if v.OverflowInt(i) {
			return bb.fail(path, "%d overflows Go %s", i, v.Type())
		}
		v.SetInt(i)
		return nil
	}
	b.read = func(s *scanner, v reflect.Value) error {
		i, err := s.integer(n)
		if err != nil {
			return err
		}
		if v.OverflowInt(i) {
			return bb.fail(path, "%d overflows Go %s", i, v.Type())
		}
		v.SetInt(i)
		return nil
	}
	return nil
}

func isDuration(x any) bool { _, ok := x.(time.Duration); return ok }

func (bb *bindBuilder) decimal(b *binding, n *node, path string) {
	b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
		var r *big.Rat
		if v.CanAddr() {
			r = v.Addr().Interface().(*big.Rat)
		} else {
			x := v.Interface().(big.Rat)
			r = &x
		}
		raw, err := decimalBytes(r, n)
		if err != nil {
			return nil, bb.fail(path, "%v", err)
		}
		if n.kind == Fixed {
			return append(buf, raw...), nil
		}
		return appendBytes(buf, raw), nil
	}
	b.dec = func(x any, v reflect.Value) error {
		raw, ok := x.([]byte)
		if !ok || n.kind == Fixed && len(raw) != n.size {
			return bb.mismatch(path, x, v)
		}
		decimalInto(v, raw, n)
		return nil
	}
	b.read = func(s *scanner, v reflect.Value) error {
		var raw []byte
		var err error
		if n.kind == Fixed {
			raw, err = s.fixed(n.size, "fixed "+n.fullName)
		} else {
			raw, err = s.bytes("decimal")
		}
		if err != nil {
			return err
		}
		decimalInto(v, raw, n)
		return nil
	}
}

func (bb *bindBuilder) bytes(b *binding, t reflect.Type, n *node, path string) error {
	fixed := n.kind == Fixed
	switch {
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
			raw := v.Bytes()
			if !fixed {
				return appendBytes(buf, raw), nil
			}
			if len(raw) != n.size {
				return nil, bb.fail(path, "%d bytes for fixed %s of size %d", len(raw), n.fullName, n.size)
			}
			return append(buf, raw...), nil
		}
		b.dec = func(x any, v reflect.Value) error {
			raw, ok := x.([]byte)
			if !ok {
				if s, isStr := x.(string); isStr {
					raw, ok = []byte(s), true
				}
			}
			if !ok {
				return bb.mismatch(path, x, v)
			}
			// goavro's bytes alias the record's buffer: copy, so the value outlives it.
			copyBytes(v, raw)
			return nil
		}
		b.read = func(s *scanner, v reflect.Value) error {
			var raw []byte
			var err error
			if fixed {
				raw, err = s.fixed(n.size, "fixed "+n.fullName)
			} else {
				raw, err = s.bytes("bytes")
			}
			if err != nil {
				return err
			}
			copyBytes(v, raw)
			return nil
		}
		return nil
	case fixed && t.Kind() == reflect.Array && t.Elem().Kind() == reflect.Uint8:
		if t.Len() != n.size {
			return bb.fail(path, "Go %s has %d bytes, fixed %s has %d", t, t.Len(), n.fullName, n.size)
		}
		b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
			if v.CanAddr() {
				return append(buf, v.Bytes()...), nil
			}
			for i := range n.size {
				buf = append(buf, byte(v.Index(i).Uint()))
			}
			return buf, nil
		}
		b.dec = func(x any, v reflect.Value) error {
			raw, ok := x.([]byte)
			if !ok || len(raw) != n.size {
				return bb.mismatch(path, x, v)
			}
			reflect.Copy(v, reflect.ValueOf(raw))
			return nil
		}
		b.read = func(s *scanner, v reflect.Value) error {
			raw, err := s.fixed(n.size, "fixed "+n.fullName)
			if err != nil {
				return err
			}
			reflect.Copy(v, reflect.ValueOf(raw))
			return nil
		}
		return nil
	}
	return bb.fail(path, "Go type %s cannot hold Avro %s", t, n.name())
}

func (bb *bindBuilder) slice(b *binding, t reflect.Type, n *node, path string) error {
	elem, err := bb.build(t.Elem(), n.items, path+"[]")
	if err != nil {
		return err
	}
	b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
		if l := v.Len(); l > 0 {
			buf = appendLong(buf, int64(l))
			for i := range l {
				var err error
				if buf, err = elem.app(buf, v.Index(i)); err != nil {
					return nil, err
				}
			}
		}
		return append(buf, 0), nil
	}
	b.dec = func(x any, v reflect.Value) error {
		a, ok := x.([]any)
		if !ok {
			return bb.mismatch(path, x, v)
		}
		s := reflect.MakeSlice(t, len(a), len(a))
		for i, y := range a {
			if err := elem.dec(y, s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	}
	b.read = func(s *scanner, v reflect.Value) error {
		if err := s.enter(); err != nil {
			return err
		}
		defer s.leave()
		out := reflect.MakeSlice(t, 0, 0)
		for {
			count, err := s.count(n.items.minSize)
			if err != nil {
				return err
			}
			if count == 0 {
				v.Set(out)
				return nil
			}
			l := out.Len()
			grown := reflect.MakeSlice(t, l+count, l+count)
			reflect.Copy(grown, out)
			out = grown
			for i := l; i < l+count; i++ {
				if err := elem.read(s, out.Index(i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (bb *bindBuilder) mapping(b *binding, t reflect.Type, n *node, path string) error {
	elem, err := bb.build(t.Elem(), n.values, path+"{}")
	if err != nil {
		return err
	}
	keyType := t.Key()
	b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
		if l := v.Len(); l > 0 {
			buf = appendLong(buf, int64(l))
			it := v.MapRange()
			for it.Next() {
				buf = appendString(buf, it.Key().String())
				var err error
				if buf, err = elem.app(buf, it.Value()); err != nil {
					return nil, err
				}
			}
		}
		return append(buf, 0), nil
	}
	b.dec = func(x any, v reflect.Value) error {
		m, ok := x.(map[string]any)
		if !ok {
			return bb.mismatch(path, x, v)
		}
		out := reflect.MakeMapWithSize(t, len(m))
		for k, y := range m {
			e := reflect.New(t.Elem()).Elem()
			if err := elem.dec(y, e); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(keyType), e)
		}
		v.Set(out)
		return nil
	}
	b.read = func(s *scanner, v reflect.Value) error {
		if err := s.enter(); err != nil {
			return err
		}
		defer s.leave()
		out := reflect.MakeMap(t)
		for {
			count, err := s.count(1 + n.values.minSize)
			if err != nil {
				return err
			}
			if count == 0 {
				v.Set(out)
				return nil
			}
			for range count {
				start := s.pos
				kb, err := s.bytes("map key")
				if err != nil {
					return err
				}
				k := reflect.ValueOf(string(kb)).Convert(keyType)
				if out.MapIndex(k).IsValid() {
					return malformed(start, "duplicate map key %q", kb)
				}
				e := reflect.New(t.Elem()).Elem()
				if err := elem.read(s, e); err != nil {
					return err
				}
				out.SetMapIndex(k, e)
			}
		}
	}
	return nil
}

type structField struct {
	name   string
	goName string
	index  []int
	b      *binding
	fixed  []byte // the encoded default of a schema field without a Go field (b is nil)
}

func (bb *bindBuilder) record(b *binding, t reflect.Type, n *node, path string) error {
	goFields, err := structFields(t, nil)
	if err != nil {
		return bb.fail(path, "%v", err)
	}
	byName := map[string]goField{}
	for _, gf := range goFields {
		if prev, dup := byName[gf.name]; dup {
			return bb.fail(path, "Go fields %s and %s both map to Avro field %q", prev.goName, gf.goName, gf.name)
		}
		byName[gf.name] = gf
	}
	// fields is in schema order, which is the encoding's order; a field without a Go
	// field is written as its default, encoded once here.
	var fields []structField
	for _, af := range n.fields {
		fp := joinPath(path, af.name)
		gf, ok := byName[af.name]
		if !ok {
			if !af.hasDefault {
				return bb.fail(fp, "record %s field has no Go field in %s and no default to write", n.fullName, t)
			}
			enc, err := appendNative(nil, af.typ, af.def)
			if err != nil {
				return bb.fail(fp, "encoding the default: %v", err)
			}
			fields = append(fields, structField{name: af.name, fixed: enc})
			continue
		}
		delete(byName, af.name)
		fb, err := bb.build(gf.typ, af.typ, fp)
		if err != nil {
			return err
		}
		fields = append(fields, structField{name: af.name, goName: gf.goName, index: gf.index, b: fb})
	}
	for _, gf := range goFields {
		if _, left := byName[gf.name]; left {
			return bb.fail(joinPath(path, gf.name), "Go field %s.%s has no field %q in record %s (tag it `avro:\"-\"` to leave it out)", t, gf.goName, gf.name, n.fullName)
		}
	}
	b.app = func(buf []byte, v reflect.Value) ([]byte, error) {
		for i := range fields {
			f := &fields[i]
			if f.b == nil {
				buf = append(buf, f.fixed...)
				continue
			}
			var err error
			if buf, err = f.b.app(buf, fieldOf(v, f.index)); err != nil {
				return nil, err
			}
		}
		return buf, nil
	}
	b.dec = func(x any, v reflect.Value) error {
		m, ok := x.(map[string]any)
		if !ok {
			return bb.mismatch(path, x, v)
		}
		for i := range fields {
			f := &fields[i]
			if f.b == nil {
				continue
			}
			y, ok := m[f.name]
			if !ok {
				continue
			}
			if err := f.b.dec(y, fieldOf(v, f.index)); err != nil {
				return err
			}
		}
		return nil
	}
	skip := make([]*node, len(fields))
	for i, af := range n.fields {
		skip[i] = af.typ
	}
	b.read = func(s *scanner, v reflect.Value) error {
		if err := s.enter(); err != nil {
			return err
		}
		defer s.leave()
		for i := range fields {
			f := &fields[i]
			var err error
			if f.b == nil {
				err = s.skip(skip[i])
			} else {
				err = f.b.read(s, fieldOf(v, f.index))
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

func fieldOf(v reflect.Value, index []int) reflect.Value {
	if len(index) == 1 {
		return v.Field(index[0])
	}
	return v.FieldByIndex(index)
}

type goField struct {
	name   string
	goName string
	index  []int
	typ    reflect.Type
}

// structFields lists a struct's bound fields, flattening untagged embedded structs.
func structFields(t reflect.Type, prefix []int) ([]goField, error) {
	var out []goField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("avro")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		index := append(append([]int(nil), prefix...), i)
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct && f.Type != timeType && f.Type != ratType {
			inner, err := structFields(f.Type, index)
			if err != nil {
				return nil, err
			}
			out = append(out, inner...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = DefaultFieldName(f.Name)
		}
		out = append(out, goField{name: name, goName: f.Name, index: index, typ: f.Type})
	}
	return out, nil
}

// DefaultFieldName is the Avro field name of an untagged Go struct field: the Go name with
// its leading run of capitals lowered, except the last capital of a run that starts the
// next word ("Amount" -> "amount", "AccountID" -> "accountID", "ID" -> "id",
// "URLPath" -> "urlPath").
func DefaultFieldName(goName string) string {
	r := []rune(goName)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	if n > 1 && n < len(r) && unicode.IsLower(r[n]) {
		n-- // the last capital begins the next word
	}
	for i := range n {
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}
