package schema

import (
	"strconv"
	"strings"
)

// canonicalForm writes the Avro specification's Parsing Canonical Form of n: primitives as
// bare names; full names instead of short names and namespaces; only the attributes that
// affect parsing (type, name, fields, symbols, items, values, size), in that order; each
// named type spelt out at its first occurrence and referred to by full name afterwards; no
// whitespace. Logical types, defaults, docs and aliases are gone, so schemas that differ
// only in those share a fingerprint: they encode data identically.
func canonicalForm(n *node) string {
	var b strings.Builder
	writeCanonical(&b, n, map[*node]bool{})
	return b.String()
}

func writeCanonical(b *strings.Builder, n *node, seen map[*node]bool) {
	switch n.kind {
	case Null, Boolean, Int, Long, Float, Double, Bytes, String:
		writeString(b, n.kind.String())
	case Union:
		b.WriteByte('[')
		for i, br := range n.union {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, br, seen)
		}
		b.WriteByte(']')
	case Array:
		b.WriteString(`{"type":"array","items":`)
		writeCanonical(b, n.items, seen)
		b.WriteByte('}')
	case Map:
		b.WriteString(`{"type":"map","values":`)
		writeCanonical(b, n.values, seen)
		b.WriteByte('}')
	case Record, Enum, Fixed:
		if seen[n] {
			writeString(b, n.fullName)
			return
		}
		seen[n] = true
		b.WriteString(`{"name":`)
		writeString(b, n.fullName)
		b.WriteString(`,"type":`)
		writeString(b, n.kind.String())
		switch n.kind {
		case Record:
			b.WriteString(`,"fields":[`)
			for i, f := range n.fields {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`{"name":`)
				writeString(b, f.name)
				b.WriteString(`,"type":`)
				writeCanonical(b, f.typ, seen)
				b.WriteByte('}')
			}
			b.WriteByte(']')
		case Enum:
			b.WriteString(`,"symbols":[`)
			for i, s := range n.symbols {
				if i > 0 {
					b.WriteByte(',')
				}
				writeString(b, s)
			}
			b.WriteByte(']')
		case Fixed:
			b.WriteString(`,"size":`)
			b.WriteString(strconv.Itoa(n.size))
		}
		b.WriteByte('}')
	}
}

// writeString quotes s. Avro names and symbols are [A-Za-z0-9_.] only, so there is nothing
// to escape; the specification's [STRINGS] rule (no escapes) holds by construction.
func writeString(b *strings.Builder, s string) {
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}

// goavroForm writes the schema goavro builds its codec from: the parsed schema with every
// name fully qualified (so goavro, whose name resolution differs from the specification in
// corner cases, cannot name a type differently), "error" spelt "record" (which goavro does
// not know), the time logical types, and no defaults: kastor applies defaults itself, by the
// specification's rules (goavro reads bytes and fixed defaults as UTF-8). Decimals are
// left to kastor too: goavro would hand them over as *big.Rat, but it cannot encode a zero
// in a fixed wider than a byte, and its default encoding predates the specification's.
func goavroForm(n *node) string {
	var b strings.Builder
	writeGoavro(&b, n, map[*node]bool{})
	return b.String()
}

func writeGoavro(b *strings.Builder, n *node, seen map[*node]bool) {
	switch n.kind {
	case Null, Boolean, Int, Long, Float, Double, Bytes, String:
		if n.logical == "" || n.logical == logicalDecimal {
			writeString(b, n.kind.String())
			return
		}
		b.WriteString(`{"type":`)
		writeString(b, n.kind.String())
		b.WriteString(`,"logicalType":`)
		writeString(b, n.logical)
		b.WriteByte('}')
	case Union:
		b.WriteByte('[')
		for i, br := range n.union {
			if i > 0 {
				b.WriteByte(',')
			}
			writeGoavro(b, br, seen)
		}
		b.WriteByte(']')
	case Array:
		b.WriteString(`{"type":"array","items":`)
		writeGoavro(b, n.items, seen)
		b.WriteByte('}')
	case Map:
		b.WriteString(`{"type":"map","values":`)
		writeGoavro(b, n.values, seen)
		b.WriteByte('}')
	case Record, Enum, Fixed:
		if seen[n] {
			writeString(b, n.fullName)
			return
		}
		seen[n] = true
		b.WriteString(`{"type":`)
		writeString(b, n.kind.String())
		b.WriteString(`,"name":`)
		writeString(b, n.fullName)
		switch n.kind {
		case Record:
			b.WriteString(`,"fields":[`)
			for i, f := range n.fields {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`{"name":`)
				writeString(b, f.name)
				b.WriteString(`,"type":`)
				writeGoavro(b, f.typ, seen)
				b.WriteByte('}')
			}
			b.WriteByte(']')
		case Enum:
			b.WriteString(`,"symbols":[`)
			for i, s := range n.symbols {
				if i > 0 {
					b.WriteByte(',')
				}
				writeString(b, s)
			}
			b.WriteByte(']')
		case Fixed:
			b.WriteString(`,"size":`)
			b.WriteString(strconv.Itoa(n.size))
		}
		b.WriteByte('}')
	}
}
