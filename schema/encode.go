package schema

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Avro's binary encoding, written directly. goavro encodes only from its native values
// (map[string]any for a record, a one-entry map for a union branch), and building those
// for a Go struct costs several times the encoding itself; a Codec therefore appends the
// encoding of a Go value straight from its binding, and goavro decodes it (the tests check
// the bytes against goavro's).

// appendLong appends the zigzag varint encoding of an int or long.
func appendLong(buf []byte, v int64) []byte {
	return binary.AppendUvarint(buf, uint64(v<<1)^uint64(v>>63))
}

func appendBytes(buf, b []byte) []byte {
	return append(appendLong(buf, int64(len(b))), b...)
}

func appendString(buf []byte, s string) []byte {
	return append(appendLong(buf, int64(len(s))), s...)
}

func appendFloat(buf []byte, f float32) []byte {
	return binary.LittleEndian.AppendUint32(buf, math.Float32bits(f))
}

func appendDouble(buf []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(buf, math.Float64bits(f))
}

// timeRaw is the long or int a time value of logical type n is stored as.
func timeRaw(n *node, t time.Time) int64 {
	switch n.logical {
	case logicalTimestampMillis:
		return t.Unix()*1e3 + int64(t.Nanosecond()/1e6)
	case logicalTimestampMicros:
		return t.Unix()*1e6 + int64(t.Nanosecond()/1e3)
	default: // date
		return t.Unix() / 86400
	}
}

// appendNative appends the encoding of a native value (goavro's form, with any Go integer
// or float type accepted for numbers) of schema n: for defaults, and for Go fields of type
// any or map[string]any.
func appendNative(buf []byte, n *node, v any) ([]byte, error) {
	if n.logical != "" && n.logical != logicalDecimal {
		raw, err := lower(n, v)
		if err != nil {
			return nil, err
		}
		v = raw
	}
	switch n.kind {
	case Null:
		if v == nil {
			return buf, nil
		}
	case Boolean:
		if b, ok := v.(bool); ok {
			if b {
				return append(buf, 1), nil
			}
			return append(buf, 0), nil
		}
	case Int, Long:
		if i, ok := toInt64(v); ok {
			if n.kind == Int && int64(int32(i)) != i {
				return nil, fmt.Errorf("%d does not fit an Avro int", i)
			}
			return appendLong(buf, i), nil
		}
	case Float, Double:
		var f float64
		switch x := v.(type) {
		case float32:
			f = float64(x)
		case float64:
			f = x
		default:
			i, ok := toInt64(v)
			if !ok {
				return nil, fmt.Errorf("%T is not a %s value", v, n.kind)
			}
			f = float64(i)
		}
		if n.kind == Float {
			return appendFloat(buf, float32(f)), nil
		}
		return appendDouble(buf, f), nil
	case Bytes, String:
		switch x := v.(type) {
		case []byte:
			return appendBytes(buf, x), nil
		case string:
			return appendString(buf, x), nil
		}
	case Fixed:
		if b, ok := v.([]byte); ok {
			if len(b) != n.size {
				return nil, fmt.Errorf("%d bytes for fixed %s of size %d", len(b), n.fullName, n.size)
			}
			return append(buf, b...), nil
		}
	case Enum:
		if s, ok := v.(string); ok {
			i, ok := n.symbolIndex[s]
			if !ok {
				return nil, fmt.Errorf("%q is not a symbol of enum %s", s, n.fullName)
			}
			return appendLong(buf, int64(i)), nil
		}
	case Array:
		if a, ok := v.([]any); ok {
			if len(a) > 0 {
				buf = appendLong(buf, int64(len(a)))
				for i, x := range a {
					var err error
					if buf, err = appendNative(buf, n.items, x); err != nil {
						return nil, fmt.Errorf("item %d: %w", i, err)
					}
				}
			}
			return append(buf, 0), nil
		}
	case Map:
		if m, ok := v.(map[string]any); ok {
			if len(m) > 0 {
				buf = appendLong(buf, int64(len(m)))
				for k, x := range m {
					buf = appendString(buf, k)
					var err error
					if buf, err = appendNative(buf, n.values, x); err != nil {
						return nil, fmt.Errorf("key %q: %w", k, err)
					}
				}
			}
			return append(buf, 0), nil
		}
	case Record:
		if m, ok := v.(map[string]any); ok {
			for _, f := range n.fields {
				x, ok := m[f.name]
				if !ok {
					if !f.hasDefault {
						return nil, fmt.Errorf("record %s: field %q is missing and has no default", n.fullName, f.name)
					}
					x = f.def
				}
				var err error
				if buf, err = appendNative(buf, f.typ, x); err != nil {
					return nil, fmt.Errorf("field %q: %w", f.name, err)
				}
			}
			return buf, nil
		}
	case Union:
		i, x, err := unionBranch(n, v, false)
		if err != nil {
			return nil, err
		}
		return appendNative(appendLong(buf, int64(i)), n.union[i], x)
	}
	return nil, fmt.Errorf("%T is not a %s value", v, n.name())
}
