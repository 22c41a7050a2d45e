package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"time"
)

// defaultNative converts a field's JSON default to goavro's native form for n, following
// the Avro specification: bytes and fixed defaults are strings whose code points 0-255 are
// the bytes; a union's default belongs to its first branch (kastor, like Avro 1.12, accepts
// the first branch the value fits); a record's default is an object whose missing fields
// take their own defaults.
func defaultNative(n *node, v any) (any, error) {
	budget := maxDefaultSteps
	return defaultAt(n, v, 0, &budget)
}

// A record whose default relies on its own default (a schema no data could satisfy)
// recurses without end, and unions of such records try every branch at every level: the
// depth and the total work of converting one default are bounded, so such a schema is an
// error rather than a stack overflow or an exponential search.
const (
	maxDefaultDepth = 64
	maxDefaultSteps = 100_000
)

func defaultAt(n *node, v any, depth int, budget *int) (any, error) {
	if depth > maxDefaultDepth {
		return nil, fmt.Errorf("default nested deeper than %d levels", maxDefaultDepth)
	}
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("default needs more than %d steps to check", maxDefaultSteps)
	}
	raw, err := defaultPrimitive(n, v, depth+1, budget)
	if err != nil {
		return nil, err
	}
	if n.logical == "" || n.logical == logicalDecimal || n.kind == Union {
		return raw, nil
	}
	return raise(n, raw)
}

func defaultPrimitive(n *node, v any, depth int, budget *int) (any, error) {
	switch n.kind {
	case Null:
		if v != nil {
			return nil, fmt.Errorf("null default must be null, not %s", jsonKind(v))
		}
		return nil, nil
	case Boolean:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("boolean default must be true or false, not %s", jsonKind(v))
		}
		return b, nil
	case Int, Long:
		num, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s default must be a number, not %s", n.kind, jsonKind(v))
		}
		i, err := num.Int64()
		if err != nil {
			return nil, fmt.Errorf("%s default %s is not an integer", n.kind, num)
		}
		if n.kind == Int {
			if i < math.MinInt32 || i > math.MaxInt32 {
				return nil, fmt.Errorf("int default %s is out of range", num)
			}
			return int32(i), nil
		}
		return i, nil
	case Float, Double:
		var f float64
		switch x := v.(type) {
		case json.Number:
			var err error
			if f, err = x.Float64(); err != nil {
				return nil, fmt.Errorf("%s default %s: %w", n.kind, x, err)
			}
		case string: // Java writes non-finite defaults as strings
			switch x {
			case "NaN":
				f = math.NaN()
			case "Infinity":
				f = math.Inf(1)
			case "-Infinity":
				f = math.Inf(-1)
			default:
				return nil, fmt.Errorf("%s default must be a number, not %q", n.kind, x)
			}
		default:
			return nil, fmt.Errorf("%s default must be a number, not %s", n.kind, jsonKind(v))
		}
		if n.kind == Float {
			return float32(f), nil
		}
		return f, nil
	case String:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("string default must be a string, not %s", jsonKind(v))
		}
		return s, nil
	case Bytes, Fixed:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s default must be a string, not %s", n.kind, jsonKind(v))
		}
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 255 {
				return nil, fmt.Errorf("%s default: code point U+%04X is not a byte (0-255)", n.kind, r)
			}
			b = append(b, byte(r))
		}
		if n.kind == Fixed && len(b) != n.size {
			return nil, fmt.Errorf("fixed %s default has %d bytes, the size is %d", n.fullName, len(b), n.size)
		}
		return b, nil
	case Enum:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("enum %s default must be a symbol, not %s", n.fullName, jsonKind(v))
		}
		if _, ok := n.symbolIndex[s]; !ok {
			return nil, fmt.Errorf("%q is not a symbol of enum %s", s, n.fullName)
		}
		return s, nil
	case Array:
		a, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("array default must be an array, not %s", jsonKind(v))
		}
		out := make([]any, len(a))
		for i, x := range a {
			var err error
			if out[i], err = defaultAt(n.items, x, depth, budget); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
		}
		return out, nil
	case Map:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("map default must be an object, not %s", jsonKind(v))
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			var err error
			if out[k], err = defaultAt(n.values, x, depth, budget); err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
		}
		return out, nil
	case Record:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %s default must be an object, not %s", n.fullName, jsonKind(v))
		}
		out := make(map[string]any, len(n.fields))
		for _, f := range n.fields {
			x, ok := m[f.name]
			if !ok {
				if !f.hasDefault {
					return nil, fmt.Errorf("record %s default has no field %q, which has no default", n.fullName, f.name)
				}
				x = f.defJSON
			}
			var err error
			if out[f.name], err = defaultAt(f.typ, x, depth, budget); err != nil {
				return nil, fmt.Errorf("field %q: %w", f.name, err)
			}
		}
		return out, nil
	case Union:
		var first error
		for _, b := range n.union {
			nat, err := defaultAt(b, v, depth, budget)
			if err == nil {
				if b.kind == Null {
					return nil, nil
				}
				return map[string]any{b.unionKey: nat}, nil
			}
			if first == nil {
				first = err
			}
		}
		return nil, fmt.Errorf("union default fits none of its branches: %w", first)
	}
	return nil, fmt.Errorf("no default for %s", n.kind)
}

// copyNative deep-copies a native value, so a shared default cannot be changed through a
// decoded value.
func copyNative(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyNative(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyNative(e)
		}
		return out
	case []byte:
		return append([]byte(nil), x...)
	case *big.Rat:
		return new(big.Rat).Set(x)
	case time.Time:
		return x
	}
	return v
}

// defaultFunc returns a function yielding fresh copies of a default value; scalars are
// shared, composites copied.
func defaultFunc(v any) func() any {
	switch v.(type) {
	case map[string]any, []any, []byte, *big.Rat:
		return func() any { return copyNative(v) }
	}
	return func() any { return v }
}
