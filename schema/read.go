package schema

import (
	"encoding/binary"
	"math"
	"math/big"
	"reflect"
	"time"
)

// Direct decoding: data written with the codec's own schema (the common case: the current
// version reading what it writes) is read straight into the Go value by the binding,
// without goavro's intermediate maps. Every length is checked against the bytes that
// remain, as the guard does before goavro decodes, and the result is the same value the
// goavro path gives: the fuzz test decodes every input both ways and compares. Bindings
// with a field of type any or map[string]any, which want goavro's native values, always
// take the goavro path.

// readFunc reads one datum of a binding's schema into v, which is settable.
type readFunc func(s *scanner, v reflect.Value) error

func (s *scanner) enter() error {
	if s.depth++; s.depth > s.lim.MaxDepth {
		return malformed(s.pos, "nesting deeper than %d", s.lim.MaxDepth)
	}
	return nil
}

func (s *scanner) leave() { s.depth-- }

func (s *scanner) boolean() (bool, error) {
	if s.pos >= len(s.buf) {
		return false, malformed(s.pos, "truncated boolean")
	}
	b := s.buf[s.pos]
	if b > 1 {
		return false, malformed(s.pos, "boolean byte %d is neither 0 nor 1", b)
	}
	s.pos++
	return b == 1, nil
}

func (s *scanner) fixed(size int, what string) ([]byte, error) {
	start := s.pos
	if err := s.need(size, what); err != nil {
		return nil, err
	}
	return s.buf[start:s.pos], nil
}

func (s *scanner) float() (float32, error) {
	b, err := s.fixed(4, "float")
	if err != nil {
		return 0, err
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(b)), nil
}

func (s *scanner) double() (float64, error) {
	b, err := s.fixed(8, "double")
	if err != nil {
		return 0, err
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
}

func (s *scanner) enumIndex(n *node) (int, error) {
	start := s.pos
	i, err := s.long()
	if err != nil {
		return 0, err
	}
	if i < 0 || i >= int64(len(n.symbols)) {
		return 0, malformed(start, "enum %s index %d out of range [0,%d)", n.fullName, i, len(n.symbols))
	}
	return int(i), nil
}

func (s *scanner) unionIndex(n *node) (int, error) {
	start := s.pos
	i, err := s.long()
	if err != nil {
		return 0, err
	}
	if i < 0 || i >= int64(len(n.union)) {
		return 0, malformed(start, "union branch %d out of range [0,%d)", i, len(n.union))
	}
	return int(i), nil
}

// integer reads an int or a long.
func (s *scanner) integer(n *node) (int64, error) {
	if n.kind == Int {
		i, err := s.int()
		return int64(i), err
	}
	return s.long()
}

// rawTime converts a stored time value to what goavro decodes it as.
func rawTime(n *node, raw int64) time.Time {
	switch n.logical {
	case logicalTimestampMillis:
		sec := raw / 1e3
		return time.Unix(sec, (raw-sec*1e3)*1e6).UTC()
	case logicalTimestampMicros:
		sec := raw / 1e6
		return time.Unix(sec, (raw-sec*1e6)*1e3).UTC()
	default: // date
		return unixEpoch.AddDate(0, 0, int(int32(raw))).UTC()
	}
}

func rawDuration(n *node, raw int64) time.Duration {
	if n.logical == logicalTimeMillis {
		return time.Duration(raw) * time.Millisecond
	}
	return time.Duration(raw) * time.Microsecond
}

func readBool(s *scanner, v reflect.Value) error {
	b, err := s.boolean()
	v.SetBool(b)
	return err
}

func readFloat(s *scanner, v reflect.Value) error {
	f, err := s.float()
	v.SetFloat(float64(f))
	return err
}

func readDouble(s *scanner, v reflect.Value) error {
	f, err := s.double()
	v.SetFloat(f)
	return err
}

func readString(s *scanner, v reflect.Value) error {
	b, err := s.bytes("string")
	if err != nil {
		return err
	}
	v.SetString(string(b))
	return nil
}

// copyBytes sets a byte slice of v's type holding a copy of b (the input is not retained).
func copyBytes(v reflect.Value, b []byte) {
	c := reflect.MakeSlice(v.Type(), len(b), len(b))
	copy(c.Bytes(), b)
	v.Set(c)
}

func decimalInto(v reflect.Value, raw []byte, n *node) {
	v.Addr().Interface().(*big.Rat).Set(decimalRat(raw, n))
}
