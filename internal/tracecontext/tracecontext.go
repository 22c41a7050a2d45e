// Package tracecontext parses and formats the W3C Trace Context traceparent field
// (https://www.w3.org/TR/trace-context/) without allocating, from a string or from a
// header's bytes. Package kastor exposes it as kastor.TraceContext; package wire reads
// it on the hot path of every reader.
package tracecontext

import "errors"

// Len is the length of a version-00 traceparent: 2+1+32+1+16+1+2.
const Len = 55

// Errors of Parse.
var (
	ErrLength    = errors.New("traceparent: not 55 characters (version 00), or a later version's fields not separated by '-'")
	ErrSyntax    = errors.New("traceparent: not version-traceid-parentid-flags in lower-case hexadecimal")
	ErrVersion   = errors.New("traceparent: version ff is invalid")
	ErrZeroTrace = errors.New("traceparent: the trace ID is all zeros")
	ErrZeroSpan  = errors.New("traceparent: the parent ID is all zeros")
)

// Parse reads a traceparent value. Version 00 must be exactly 55 characters; a later
// version (not ff) is read as version 00 from its first 55 characters, which must be
// followed by nothing or by '-' (the specification's rule for forward compatibility).
// Only lower-case hexadecimal is accepted, and neither ID may be all zeros.
func Parse[T string | []byte](s T) (trace [16]byte, span [8]byte, flags byte, err error) {
	if len(s) < Len {
		return trace, span, 0, ErrLength
	}
	v, ok := hexByte(s[0], s[1])
	switch {
	case !ok:
		return trace, span, 0, ErrSyntax
	case v == 0xff:
		return trace, span, 0, ErrVersion
	case v == 0 && len(s) != Len, v != 0 && len(s) > Len && s[Len] != '-':
		return trace, span, 0, ErrLength
	case s[2] != '-' || s[35] != '-' || s[52] != '-':
		return trace, span, 0, ErrSyntax
	}
	var nz byte
	for i := range trace {
		if trace[i], ok = hexByte(s[3+2*i], s[4+2*i]); !ok {
			return [16]byte{}, span, 0, ErrSyntax
		}
		nz |= trace[i]
	}
	if nz == 0 {
		return trace, span, 0, ErrZeroTrace
	}
	nz = 0
	for i := range span {
		if span[i], ok = hexByte(s[36+2*i], s[37+2*i]); !ok {
			return [16]byte{}, [8]byte{}, 0, ErrSyntax
		}
		nz |= span[i]
	}
	if nz == 0 {
		return [16]byte{}, span, 0, ErrZeroSpan
	}
	if flags, ok = hexByte(s[53], s[54]); !ok {
		return [16]byte{}, [8]byte{}, 0, ErrSyntax
	}
	return trace, span, flags, nil
}

// Append appends the version-00 traceparent of trace, span and flags to dst.
func Append(dst []byte, trace [16]byte, span [8]byte, flags byte) []byte {
	dst = append(dst, '0', '0', '-')
	dst = appendHex(dst, trace[:])
	dst = append(dst, '-')
	dst = appendHex(dst, span[:])
	dst = append(dst, '-')
	return appendHex(dst, []byte{flags})
}

const digits = "0123456789abcdef"

func appendHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, digits[c>>4], digits[c&0xf])
	}
	return dst
}

// hexByte reads two lower-case hexadecimal digits.
func hexByte(hi, lo byte) (byte, bool) {
	h, l := nibbles[hi], nibbles[lo]
	return h<<4 | l&0xf, h|l < 0x10
}

// nibbles maps a lower-case hex digit to its value, anything else to 0xff.
var nibbles = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range digits {
		t[c] = byte(i)
	}
	return t
}()
