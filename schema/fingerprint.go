package schema

import (
	"fmt"
	"strconv"
)

// Fingerprint is the CRC-64-AVRO (Rabin) fingerprint of a schema's Parsing Canonical Form,
// as defined by the Avro specification and computed by Java's
// SchemaNormalization.parsingFingerprint64. It identifies a writer schema: records carry it
// in the kastor.schema header and _kastor.schemas is keyed by it. Two schemas with the same
// fingerprint encode data identically; they may still differ in what the canonical form
// strips (doc, aliases, defaults, logical types).
type Fingerprint uint64

// String formats the fingerprint as 16 lower-case hexadecimal digits, the form used in
// headers and as the key of _kastor.schemas.
func (f Fingerprint) String() string {
	var b [16]byte
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = digits[f&0xf]
		f >>= 4
	}
	return string(b[:])
}

// ParseFingerprint reads the 16-hex-digit form written by Fingerprint.String.
func ParseFingerprint(s string) (Fingerprint, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("schema: fingerprint %q is not 16 hexadecimal digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("schema: fingerprint %q is not 16 hexadecimal digits", s)
	}
	return Fingerprint(v), nil
}

// rabinEmpty is the CRC-64-AVRO of no bytes: the Avro specification's EMPTY constant, the
// polynomial seed of the fingerprint.
const rabinEmpty = 0xc15d213aa4d7a795

var rabinTable = func() (t [256]uint64) {
	for i := range t {
		fp := uint64(i)
		for range 8 {
			fp = (fp >> 1) ^ (rabinEmpty & -(fp & 1))
		}
		t[i] = fp
	}
	return t
}()

// FingerprintOf returns the CRC-64-AVRO fingerprint of b, which should be a schema's
// Parsing Canonical Form (Schema.Fingerprint does this for a parsed schema).
func FingerprintOf(b []byte) Fingerprint {
	fp := uint64(rabinEmpty)
	for _, c := range b {
		fp = (fp >> 8) ^ rabinTable[byte(fp)^c]
	}
	return Fingerprint(fp)
}
