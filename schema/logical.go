package schema

import (
	"fmt"
	"math/big"
	"time"
)

// goavro decodes the time logical types to Go values other than the underlying primitive's
// (time.Time, time.Duration). Avro resolution ignores logical types: what is
// resolved is the underlying primitive. So when writer and reader disagree about a logical
// type (long written, timestamp-millis read, or the reverse), the value is lowered to its
// primitive with the writer's logical type and raised with the reader's, which is what
// decoding the same bytes with the reader schema would have produced. The formulas are
// goavro's, so both paths agree to the nanosecond.

var unixEpoch = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// lower converts a native value of n's logical type to its primitive's native value.
func lower(n *node, v any) (any, error) {
	switch n.logical {
	case "":
		return v, nil
	case logicalTimestampMillis, logicalTimestampMicros, logicalDate:
		t, ok := v.(time.Time)
		if !ok {
			return primitiveOf(n, v)
		}
		switch n.logical {
		case logicalTimestampMillis:
			return t.Unix()*1e3 + int64(t.Nanosecond()/1e6), nil
		case logicalTimestampMicros:
			return t.Unix()*1e6 + int64(t.Nanosecond()/1e3), nil
		default:
			return int32(t.Unix() / 86400), nil
		}
	case logicalTimeMillis, logicalTimeMicros:
		d, ok := v.(time.Duration)
		if !ok {
			return primitiveOf(n, v)
		}
		if n.logical == logicalTimeMillis {
			return int32(d / time.Millisecond), nil
		}
		return int64(d / time.Microsecond), nil
	}
	return v, nil
}

// primitiveOf accepts a value already in primitive form for a logical type's lowering.
func primitiveOf(n *node, v any) (any, error) {
	switch n.kind {
	case Int:
		if x, ok := toInt64(v); ok && int64(int32(x)) == x {
			return int32(x), nil
		}
	case Long:
		if x, ok := toInt64(v); ok {
			return x, nil
		}
	}
	return nil, fmt.Errorf("%T is not a %s value", v, n.name())
}

// raise converts a primitive native value to n's logical type's native value.
func raise(n *node, v any) (any, error) {
	switch n.logical {
	case logicalTimestampMillis:
		ms, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("%T is not a long", v)
		}
		s := ms / 1e3
		return time.Unix(s, (ms-s*1e3)*1e6).UTC(), nil
	case logicalTimestampMicros:
		us, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("%T is not a long", v)
		}
		s := us / 1e6
		return time.Unix(s, (us-s*1e6)*1e3).UTC(), nil
	case logicalDate:
		d, ok := v.(int32)
		if !ok {
			return nil, fmt.Errorf("%T is not an int", v)
		}
		return unixEpoch.AddDate(0, 0, int(d)).UTC(), nil
	case logicalTimeMillis:
		d, ok := v.(int32)
		if !ok {
			return nil, fmt.Errorf("%T is not an int", v)
		}
		return time.Duration(d) * time.Millisecond, nil
	case logicalTimeMicros:
		d, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("%T is not a long", v)
		}
		return time.Duration(d) * time.Microsecond, nil
	}
	return v, nil
}

// decimalRat reads a decimal's two's-complement big-endian unscaled value at n's scale.
func decimalRat(b []byte, n *node) *big.Rat {
	num := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		num.Sub(num, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return new(big.Rat).SetFrac(num, pow10(n.scale))
}

func pow10(scale int) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)
}

// decimalBytes is the two's-complement big-endian encoding of r's unscaled value at n's
// scale (truncated toward zero), sign-extended to the size of a fixed.
func decimalBytes(r *big.Rat, n *node) ([]byte, error) {
	unscaled := new(big.Int).Mul(r.Num(), pow10(n.scale))
	unscaled.Quo(unscaled, r.Denom())
	var b []byte
	switch unscaled.Sign() {
	case 0:
		b = []byte{0}
	case 1:
		b = unscaled.Bytes()
		if b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
	default:
		size := uint(unscaled.BitLen()/8+1) * 8
		b = new(big.Int).Add(unscaled, new(big.Int).Lsh(big.NewInt(1), size)).Bytes()
		for len(b) >= 2 && b[0] == 0xff && b[1]&0x80 != 0 {
			b = b[1:]
		}
	}
	if n.kind != Fixed {
		return b, nil
	}
	if len(b) > n.size {
		return nil, fmt.Errorf("decimal %s does not fit fixed %s of %d bytes", r.FloatString(n.scale), n.fullName, n.size)
	}
	out := make([]byte, n.size)
	if unscaled.Sign() < 0 {
		for i := range out {
			out[i] = 0xff
		}
	}
	copy(out[n.size-len(b):], b)
	return out, nil
}

// sameLogical reports whether two nodes' values are represented alike.
func sameLogical(a, b *node) bool {
	return a.logical == b.logical && (a.logical != logicalDecimal || a.scale == b.scale && a.precision == b.precision)
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	}
	return 0, false
}
