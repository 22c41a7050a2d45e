package schema

import "math"

// Limits bound what a decoder accepts, so hostile or corrupt bytes cannot make it allocate
// without bound. Before goavro sees the bytes, kastor walks them with the writer schema,
// allocating nothing, and checks each length against the bytes that remain, so allocation
// stays proportional to the input's length; goavro alone would preallocate whatever count
// the data claims (see decision 14).
type Limits struct {
	// MaxBytes is the largest encoded datum decoded (default 64 MiB).
	MaxBytes int
	// MaxDepth bounds the nesting of records, arrays, maps and unions in a datum
	// (default 256).
	MaxDepth int
	// MaxZeroByteItems bounds the number of collection items in a datum whose encoding
	// may take no bytes at all (nulls, empty records, zero-size fixed): their count is not
	// bounded by the input's length (default 65536).
	MaxZeroByteItems int
}

// DefaultLimits are the limits used when a Codec is given none.
var DefaultLimits = Limits{MaxBytes: 64 << 20, MaxDepth: 256, MaxZeroByteItems: 1 << 16}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxZeroByteItems <= 0 {
		l.MaxZeroByteItems = DefaultLimits.MaxZeroByteItems
	}
	return l
}

// scanner validates the binary encoding of one datum without decoding it.
type scanner struct {
	buf   []byte
	pos   int
	lim   Limits
	depth int
	free  int
}

// prescan checks that data is exactly one well-formed datum of n within the limits.
func prescan(n *node, data []byte, lim Limits) error {
	if len(data) > lim.MaxBytes {
		return malformed(0, "%d bytes exceed the limit of %d", len(data), lim.MaxBytes)
	}
	s := &scanner{buf: data, lim: lim}
	if err := s.skip(n); err != nil {
		return err
	}
	if s.pos != len(data) {
		return malformed(s.pos, "%d trailing bytes after the datum", len(data)-s.pos)
	}
	return nil
}

func (s *scanner) remaining() int { return len(s.buf) - s.pos }

// varint reads an unsigned base-128 varint of at most maxBytes bytes.
func (s *scanner) varint(maxBytes int) (uint64, error) {
	start := s.pos
	var v uint64
	for i := 0; i < maxBytes; i++ {
		if s.pos >= len(s.buf) {
			return 0, malformed(start, "truncated varint")
		}
		b := s.buf[s.pos]
		s.pos++
		if i == 9 && b > 1 {
			return 0, malformed(start, "varint overflows 64 bits")
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, malformed(start, "varint longer than %d bytes", maxBytes)
}

func (s *scanner) long() (int64, error) {
	u, err := s.varint(10)
	if err != nil {
		return 0, err
	}
	return int64(u>>1) ^ -int64(u&1), nil
}

func (s *scanner) int() (int32, error) {
	start := s.pos
	u, err := s.varint(5)
	if err != nil {
		return 0, err
	}
	if u > math.MaxUint32 {
		return 0, malformed(start, "int overflows 32 bits")
	}
	return int32(uint32(u>>1) ^ -uint32(u&1)), nil
}

// bytes reads a length-prefixed byte string, returning a slice of the input.
func (s *scanner) bytes(what string) ([]byte, error) {
	start := s.pos
	l, err := s.long()
	if err != nil {
		return nil, err
	}
	if l < 0 || l > int64(s.remaining()) {
		return nil, malformed(start, "%s length %d with %d bytes remaining", what, l, s.remaining())
	}
	b := s.buf[s.pos : s.pos+int(l)]
	s.pos += int(l)
	return b, nil
}

// count reads an array's or map's block count (and the byte size that follows a negative
// one), checking it as blocks does; 0 ends the collection.
func (s *scanner) count(itemMin int) (int, error) {
	start := s.pos
	count, err := s.long()
	if err != nil || count == 0 {
		return 0, err
	}
	if count < 0 {
		if count == math.MinInt64 {
			return 0, malformed(start, "block count %d", count)
		}
		count = -count
		size, err := s.long()
		if err != nil {
			return 0, err
		}
		if size < 0 || size > int64(s.remaining()) {
			return 0, malformed(start, "block size %d with %d bytes remaining", size, s.remaining())
		}
	}
	if itemMin > 0 {
		if count > int64(s.remaining()/itemMin) {
			return 0, malformed(start, "block of %d items cannot fit in the %d bytes remaining", count, s.remaining())
		}
	} else {
		if count > int64(s.lim.MaxZeroByteItems-s.free) {
			return 0, malformed(start, "more than %d items that take no bytes", s.lim.MaxZeroByteItems)
		}
		s.free += int(count)
	}
	return int(count), nil
}

func (s *scanner) need(n int, what string) error {
	if n > s.remaining() {
		return malformed(s.pos, "%s needs %d bytes, %d remain", what, n, s.remaining())
	}
	s.pos += n
	return nil
}

func (s *scanner) skip(n *node) error {
	switch n.kind {
	case Null:
		return nil
	case Boolean:
		if s.pos >= len(s.buf) {
			return malformed(s.pos, "truncated boolean")
		}
		if b := s.buf[s.pos]; b > 1 {
			return malformed(s.pos, "boolean byte %d is neither 0 nor 1", b)
		}
		s.pos++
		return nil
	case Int:
		_, err := s.int()
		return err
	case Long:
		_, err := s.long()
		return err
	case Float:
		return s.need(4, "float")
	case Double:
		return s.need(8, "double")
	case Bytes, String:
		start := s.pos
		l, err := s.long()
		if err != nil {
			return err
		}
		if l < 0 || l > int64(s.remaining()) {
			return malformed(start, "%s length %d with %d bytes remaining", n.kind, l, s.remaining())
		}
		s.pos += int(l)
		return nil
	case Fixed:
		return s.need(n.size, "fixed "+n.fullName)
	case Enum:
		start := s.pos
		i, err := s.long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(n.symbols)) {
			return malformed(start, "enum %s index %d out of range [0,%d)", n.fullName, i, len(n.symbols))
		}
		return nil
	}
	if s.depth++; s.depth > s.lim.MaxDepth {
		return malformed(s.pos, "nesting deeper than %d", s.lim.MaxDepth)
	}
	err := s.skipComplex(n)
	s.depth--
	return err
}

func (s *scanner) skipComplex(n *node) error {
	switch n.kind {
	case Record:
		for _, f := range n.fields {
			if err := s.skip(f.typ); err != nil {
				return err
			}
		}
		return nil
	case Union:
		start := s.pos
		i, err := s.long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(n.union)) {
			return malformed(start, "union branch %d out of range [0,%d)", i, len(n.union))
		}
		return s.skip(n.union[i])
	case Array:
		return s.blocks(n.items.minSize, func() error { return s.skip(n.items) })
	case Map:
		keyed := func() error {
			if err := s.skip(stringNode); err != nil {
				return err
			}
			return s.skip(n.values)
		}
		return s.blocks(1+n.values.minSize, keyed)
	}
	return malformed(s.pos, "unexpected schema kind %s", n.kind)
}

// blocks walks an array's or map's blocks: a count, then (if the count is negative) a byte
// size, then the items, until a zero count.
func (s *scanner) blocks(itemMin int, item func() error) error {
	for {
		count, err := s.count(itemMin)
		if err != nil || count == 0 {
			return err
		}
		for range count {
			if err := item(); err != nil {
				return err
			}
		}
	}
}

var stringNode = &node{kind: String}
