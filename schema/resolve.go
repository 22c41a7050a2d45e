package schema

import (
	"fmt"
	"strings"
)

// convFn converts one native value (goavro's form for the writer schema) into the native
// value for the reader schema. A nil convFn is the identity.
type convFn func(v any) (any, error)

// resolver converts goavro native values decoded with a writer schema into the native values
// the reader schema describes, following the Avro specification's resolution rules. It is
// built once per (writer, reader) pair: all schema analysis happens at build time, and the
// per-value work is map lookups and type switches on precomputed steps.
type resolver struct {
	fn       convFn
	problems []Problem
}

// resolve applies the resolver to one value.
func (r *resolver) resolve(v any) (any, error) {
	if r.fn == nil {
		return v, nil
	}
	return r.fn(v)
}

// newResolver builds the resolver from writer to reader. It always succeeds: each
// incompatibility becomes a Problem (what CheckBackward reports) and a step that fails
// with that problem if a value ever reaches it (Avro signals some incompatibilities, such
// as an unknown enum symbol or an unreadable union branch, only when the data has them).
//
// conform builds a resolver for values that claim to follow the writer schema without
// having been decoded by it (an upcaster's output): identical sub-schemas are still
// checked value by value, with Go numeric types coerced and missing fields defaulted.
func newResolver(w, r *node, conform bool) *resolver {
	b := &resolveBuilder{memo: map[[2]*node]*convBox{}, conform: conform}
	fn := b.build(w, r, "")
	return &resolver{fn: fn, problems: b.problems}
}

type resolveBuilder struct {
	memo     map[[2]*node]*convBox
	problems []Problem
	conform  bool
	// renamedRoot: an upcaster renamed the root type, so its name is not checked.
	renamedRoot bool
}

// convBox holds a pair's converter so recursive schemas can refer to it before it is built.
type convBox struct {
	fn   convFn
	done bool
}

func (c *convBox) call(v any) (any, error) {
	if c.fn == nil {
		return v, nil
	}
	return c.fn(v)
}

func (b *resolveBuilder) build(w, r *node, path string) convFn {
	key := [2]*node{w, r}
	if box, ok := b.memo[key]; ok {
		if box.done {
			return box.fn
		}
		return box.call
	}
	box := &convBox{}
	b.memo[key] = box
	box.fn = b.buildPair(w, r, path)
	box.done = true
	return box.fn
}

func (b *resolveBuilder) problem(path, format string, args ...any) convFn {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = fmt.Sprintf("field %q: %s", path, msg)
	}
	b.problems = append(b.problems, Problem{Path: path, Message: msg})
	err := fmt.Errorf("%w: %s", ErrIncompatible, msg)
	return func(any) (any, error) { return nil, err }
}

func (b *resolveBuilder) buildPair(w, r *node, path string) convFn {
	if !b.conform && identical(w, r, map[[2]*node]bool{}) {
		return nil
	}
	if w.kind == Union {
		return b.fromUnion(w, r, path)
	}
	if r.kind == Union {
		return b.toUnion(w, r, path)
	}
	switch {
	case w.kind == r.kind && w.kind <= String, promotable(w.kind, r.kind):
		if w.kind == r.kind && w.logical == logicalDecimal && r.logical == logicalDecimal && w.scale != r.scale {
			return b.problem(path, "decimal scale changed from %d to %d (the stored unscaled values would be read %s)", w.scale, r.scale, scaleEffect(w.scale, r.scale))
		}
		return primitiveConv(w, r)
	case w.kind != r.kind:
		return b.problem(path, "type changed from %s to %s (not a promotion)", w.name(), r.name())
	}
	switch r.kind {
	case Record:
		return b.record(w, r, path)
	case Enum:
		return b.enum(w, r, path)
	case Fixed:
		if !namesMatch(w, r) {
			return b.problem(path, "fixed name changed from %s to %s (add the old name to the reader's aliases)", w.fullName, r.fullName)
		}
		if w.size != r.size {
			return b.problem(path, "fixed %s size changed from %d to %d", r.fullName, w.size, r.size)
		}
		if w.logical == logicalDecimal && r.logical == logicalDecimal && w.scale != r.scale {
			return b.problem(path, "decimal scale changed from %d to %d (the stored unscaled values would be read %s)", w.scale, r.scale, scaleEffect(w.scale, r.scale))
		}
		return primitiveConv(w, r)
	case Array:
		items := b.build(w.items, r.items, path+"[]")
		if items == nil && !b.conform {
			return nil
		}
		return func(v any) (any, error) {
			a, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("array value is %T, not []any", v)
			}
			out := make([]any, len(a))
			for i, x := range a {
				if items == nil {
					out[i] = x
					continue
				}
				var err error
				if out[i], err = items(x); err != nil {
					return nil, fmt.Errorf("item %d: %w", i, err)
				}
			}
			return out, nil
		}
	case Map:
		values := b.build(w.values, r.values, path+"{}")
		if values == nil && !b.conform {
			return nil
		}
		return func(v any) (any, error) {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("map value is %T, not map[string]any", v)
			}
			out := make(map[string]any, len(m))
			for k, x := range m {
				if values == nil {
					out[k] = x
					continue
				}
				var err error
				if out[k], err = values(x); err != nil {
					return nil, fmt.Errorf("key %q: %w", k, err)
				}
			}
			return out, nil
		}
	}
	return b.problem(path, "type changed from %s to %s", w.name(), r.name())
}

func scaleEffect(w, r int) string {
	if r > w {
		return fmt.Sprintf("%d times smaller", pow10(r-w))
	}
	return fmt.Sprintf("%d times larger", pow10(w-r))
}

// promotable lists the Avro specification's promotions: int to long, float or double;
// long to float or double; float to double; string to bytes and bytes to string.
func promotable(w, r Kind) bool {
	switch w {
	case Int:
		return r == Long || r == Float || r == Double
	case Long:
		return r == Float || r == Double
	case Float:
		return r == Double
	case String:
		return r == Bytes
	case Bytes:
		return r == String
	}
	return false
}

// primitiveConv converts a primitive (or fixed) value: lower the writer's logical type,
// promote, raise to the reader's logical type. It also coerces the Go numeric types an
// upcaster may have used to the ones goavro expects.
func primitiveConv(w, r *node) convFn {
	return func(v any) (any, error) {
		raw, err := lower(w, v)
		if err != nil {
			return nil, err
		}
		p, err := promoteValue(raw, r)
		if err != nil {
			return nil, err
		}
		return raise(r, p)
	}
}

// promoteValue converts a primitive native value to r's primitive kind's native Go type.
func promoteValue(v any, r *node) (any, error) {
	switch r.kind {
	case Null:
		if v == nil {
			return nil, nil
		}
	case Boolean:
		if x, ok := v.(bool); ok {
			return x, nil
		}
	case Int:
		if x, ok := toInt64(v); ok {
			if int64(int32(x)) != x {
				return nil, fmt.Errorf("%d does not fit an Avro int", x)
			}
			return int32(x), nil
		}
	case Long:
		if x, ok := toInt64(v); ok {
			return x, nil
		}
	case Float:
		switch x := v.(type) {
		case float32:
			return x, nil
		case float64:
			return float32(x), nil
		}
		if x, ok := toInt64(v); ok {
			return float32(x), nil
		}
	case Double:
		switch x := v.(type) {
		case float64:
			return x, nil
		case float32:
			return float64(x), nil
		}
		if x, ok := toInt64(v); ok {
			return float64(x), nil
		}
	case String:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case Bytes:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case Fixed:
		if x, ok := v.([]byte); ok && len(x) == r.size {
			return x, nil
		}
	}
	return nil, fmt.Errorf("%T value cannot be read as %s", v, r.name())
}

// namesMatch: named types match when their unqualified names are equal or the reader lists
// the writer's full name among its aliases (the Avro specification's rule).
func namesMatch(w, r *node) bool {
	if shortName(w.fullName) == shortName(r.fullName) {
		return true
	}
	for _, a := range r.aliases {
		if a == w.fullName {
			return true
		}
	}
	return false
}

type fieldStep struct {
	out  string     // reader field name
	in   string     // writer field name; "" when the writer has none
	conv convFn     // writer to reader value
	wdef func() any // writer's default, for input maps that omit the field
	rdef func() any // reader's default
	err  func(any) (any, error)
}

func (b *resolveBuilder) record(w, r *node, path string) convFn {
	if !namesMatch(w, r) && !(b.renamedRoot && path == "") {
		return b.problem(path, "record name changed from %s to %s (add the old name to the reader's aliases, or register an upcaster)", w.fullName, r.fullName)
	}
	steps := make([]fieldStep, 0, len(r.fields))
	for _, rf := range r.fields {
		fp := joinPath(path, rf.name)
		st := fieldStep{out: rf.name}
		if rf.hasDefault {
			st.rdef = defaultFunc(rf.def)
		}
		wf := writerField(w, rf)
		switch {
		case wf != nil:
			st.in = wf.name
			st.conv = b.build(wf.typ, rf.typ, fp)
			if wf.hasDefault {
				st.wdef = defaultFunc(wf.def)
			}
		case rf.hasDefault:
		default:
			msg := fmt.Sprintf("field %q added without a default", fp)
			b.problems = append(b.problems, Problem{Path: fp, Message: msg})
			err := fmt.Errorf("%w: %s", ErrIncompatible, msg)
			st.err = func(any) (any, error) { return nil, err }
		}
		steps = append(steps, st)
	}
	return func(v any) (any, error) {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %s value is %T, not map[string]any", r.fullName, v)
		}
		out := make(map[string]any, len(steps))
		for i := range steps {
			st := &steps[i]
			if st.err != nil {
				return st.err(nil)
			}
			if st.in == "" {
				out[st.out] = st.rdef()
				continue
			}
			x, ok := m[st.in]
			if !ok {
				switch {
				case st.wdef != nil:
					x = st.wdef()
				case st.rdef != nil:
					out[st.out] = st.rdef()
					continue
				default:
					return nil, fmt.Errorf("record %s: field %q is missing", r.fullName, st.in)
				}
			}
			if st.conv != nil {
				var err error
				if x, err = st.conv(x); err != nil {
					return nil, fmt.Errorf("field %q: %w", st.out, err)
				}
			}
			out[st.out] = x
		}
		return out, nil
	}
}

// writerField finds the writer's field for a reader field: by name, then by the reader
// field's aliases.
func writerField(w *node, rf *field) *field {
	if i, ok := w.fieldIndex[rf.name]; ok {
		return w.fields[i]
	}
	for _, a := range rf.aliases {
		if i, ok := w.fieldIndex[a]; ok {
			return w.fields[i]
		}
	}
	return nil
}

func (b *resolveBuilder) enum(w, r *node, path string) convFn {
	if !namesMatch(w, r) {
		return b.problem(path, "enum name changed from %s to %s (add the old name to the reader's aliases)", w.fullName, r.fullName)
	}
	var missing []string
	for _, s := range w.symbols {
		if _, ok := r.symbolIndex[s]; !ok {
			missing = append(missing, fmt.Sprintf("%q", s))
		}
	}
	if len(missing) > 0 && !r.hasEnumDef {
		b.problem(path, "enum %s lost symbol %s and has no default (an enum default lets old symbols be read)", r.fullName, strings.Join(missing, ", "))
	}
	return func(v any) (any, error) {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("enum %s value is %T, not string", r.fullName, v)
		}
		if _, ok := r.symbolIndex[s]; ok {
			return s, nil
		}
		if r.hasEnumDef {
			return r.enumDefault, nil
		}
		return nil, fmt.Errorf("%w: enum %s has no symbol %q and no default", ErrIncompatible, r.fullName, s)
	}
}

// fromUnion resolves each writer branch against the reader; a value picks its branch by
// goavro's union key.
func (b *resolveBuilder) fromUnion(w, r *node, path string) convFn {
	convs := make([]convFn, len(w.union))
	for i, wb := range w.union {
		convs[i] = b.build(wb, r, path)
	}
	conform := b.conform
	return func(v any) (any, error) {
		i, x, err := unionBranch(w, v, conform)
		if err != nil {
			return nil, err
		}
		if convs[i] == nil {
			return x, nil
		}
		return convs[i](x)
	}
}

// unionBranch finds the branch of a union native value: nil for null, else goavro's
// single-entry map {branch key: value}. With loose set, a bare value is matched to a
// branch by its Go type, for upcasters that did not wrap it.
func unionBranch(u *node, v any, loose bool) (int, any, error) {
	if v == nil {
		if u.nullIndex < 0 {
			return 0, nil, fmt.Errorf("null value for a union without null")
		}
		return u.nullIndex, nil, nil
	}
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, x := range m {
			if i, ok := u.branchIndex[k]; ok {
				return i, x, nil
			}
		}
	}
	if loose {
		for i, b := range u.union {
			if goFits(b, v) {
				return i, v, nil
			}
		}
	}
	return 0, nil, fmt.Errorf("value of type %T matches no branch of the union (want nil or a single-entry map keyed by the branch type)", v)
}

// goFits reports whether a bare Go value plausibly belongs to a union branch.
func goFits(n *node, v any) bool {
	switch v.(type) {
	case bool:
		return n.kind == Boolean
	case int32:
		return n.kind == Int
	case int64, int:
		return n.kind == Long
	case float32:
		return n.kind == Float
	case float64:
		return n.kind == Double
	case string:
		return n.kind == String || n.kind == Enum
	case []byte:
		return n.kind == Bytes || n.kind == Fixed
	case []any:
		return n.kind == Array
	case map[string]any:
		return n.kind == Record || n.kind == Map
	}
	return false
}

func (b *resolveBuilder) toUnion(w, r *node, path string) convFn {
	j := bestBranch(w, r)
	if j < 0 {
		return b.problem(path, "type changed from %s to %s (no branch of the union can read it)", w.name(), unionName(r))
	}
	rb := r.union[j]
	inner := b.build(w, rb, path)
	if rb.kind == Null {
		return func(any) (any, error) { return nil, nil }
	}
	key := rb.unionKey
	return func(v any) (any, error) {
		if inner != nil {
			var err error
			if v, err = inner(v); err != nil {
				return nil, err
			}
		}
		return map[string]any{key: v}, nil
	}
}

// bestBranch picks the reader union branch for a non-union writer schema as Java's
// resolver does: the first branch of the same type (for named types, the same full name,
// then the same unqualified name or an alias), else the first the writer promotes to.
func bestBranch(w *node, r *node) int {
	for j, b := range r.union {
		if b.kind == w.kind && (!w.kind.named() || b.fullName == w.fullName) {
			return j
		}
	}
	if w.kind.named() {
		for j, b := range r.union {
			if b.kind == w.kind && namesMatch(w, b) {
				return j
			}
		}
	}
	for j, b := range r.union {
		if promotable(w.kind, b.kind) {
			return j
		}
	}
	return -1
}

func unionName(u *node) string {
	names := make([]string, len(u.union))
	for i, b := range u.union {
		names[i] = b.name()
	}
	return "[" + strings.Join(names, ", ") + "]"
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// identical reports whether two schemas decode to the same native values: same types,
// names, fields, symbols and logical types (defaults, docs and aliases aside).
func identical(a, b *node, seen map[[2]*node]bool) bool {
	if a == b {
		return true
	}
	if a.kind != b.kind || !sameLogical(a, b) {
		return false
	}
	key := [2]*node{a, b}
	if seen[key] {
		return true // assume equal while comparing a recursive type
	}
	seen[key] = true
	switch a.kind {
	case Record:
		if a.fullName != b.fullName || len(a.fields) != len(b.fields) {
			return false
		}
		for i, f := range a.fields {
			if f.name != b.fields[i].name || !identical(f.typ, b.fields[i].typ, seen) {
				return false
			}
		}
	case Enum:
		if a.fullName != b.fullName || len(a.symbols) != len(b.symbols) {
			return false
		}
		for i, s := range a.symbols {
			if s != b.symbols[i] {
				return false
			}
		}
	case Fixed:
		return a.fullName == b.fullName && a.size == b.size
	case Array:
		return identical(a.items, b.items, seen)
	case Map:
		return identical(a.values, b.values, seen)
	case Union:
		if len(a.union) != len(b.union) {
			return false
		}
		for i := range a.union {
			if !identical(a.union[i], b.union[i], seen) {
				return false
			}
		}
	}
	return true
}
