package schema

import (
	"errors"
	"math/big"
	"reflect"
	"testing"
	"time"
)

func TestParseInvalid(t *testing.T) {
	for schema, msg := range map[string]string{
		`{`:                            "invalid JSON",
		`"int" "long"`:                 "trailing data",
		`"Nope"`:                       `unknown type "Nope"`,
		`42`:                           "not a number",
		`{"type":"record","name":"R"}`: `"fields" must be an array`,
		`{"type":"record","name":"1R","fields":[]}`:                                                                        "names must match",
		`{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}`:                      `field "a" is defined twice`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}`:                                  `invalid default "x"`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":2147483648}]}`:                           "out of range",
		`{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"],"default":"x"}]}`:                         "fits none of its branches",
		`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"fixed","name":"F","size":2},"default":"abc"}]}`: "has 3 bytes",
		`{"type":"record","name":"R","fields":[{"name":"a","type":"bytes","default":"\u0100"}]}`:                           "is not a byte",
		`{"type":"record","name":"R","fields":[{"name":"r","type":"R","default":{}}]}`:                                     "deeper than",
		`{"type":"enum","name":"E","symbols":["A","A"]}`:                                                                   `duplicate symbol "A"`,
		`{"type":"enum","name":"E","symbols":["A"],"default":"B"}`:                                                         `default "B" is not one of its symbols`,
		`{"type":"enum","name":"E","symbols":[]}`:                                                                          "has no symbols",
		`["int","int"]`:                         "duplicate int",
		`["null",["int"]]`:                      "may not directly contain a union",
		`[]`:                                    "at least one branch",
		`{"type":"fixed","name":"F","size":-1}`: "non-negative",
		`{"type":"record","name":"int","fields":[]}`:                                                                                          "cannot be redefined",
		`[{"type":"fixed","name":"F","size":1},{"type":"fixed","name":"F","size":1}]`:                                                         "defined twice",
		`{"type":"bytes","logicalType":"decimal","precision":2,"scale":3}`:                                                                    "decimal scale",
		`{"type":"string","logicalType":"validated-string","pattern":"x"}`:                                                                    "goavro extension",
		`{"type":"record","name":"R","namespace":"a","fields":[{"name":"s","type":{"type":"record","name":"S","namespace":"","fields":[]}}]}`: "explicit empty namespace",
		`{"type":"array"}`: `no "items"`,
		`"record"`:         "must be the type of a schema object",
	} {
		_, err := Parse(schema)
		var pe *ParseError
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidSchema) {
			t.Errorf("Parse(%s) = %v, want a *ParseError", schema, err)
			continue
		}
		wantErrContains(t, err, msg)
	}
}

func TestParseNames(t *testing.T) {
	s := MustParse(`{"type":"record","name":"Outer","namespace":"a.b","aliases":["Old","x.Older"],"fields":[
		{"name":"in","type":{"type":"enum","name":"E","symbols":["X"]}},
		{"name":"ref","type":"E"},
		{"name":"other","type":{"type":"fixed","name":"c.F","size":1}},
		{"name":"ref2","type":"c.F"}]}`)
	if s.Name() != "a.b.Outer" || s.Kind() != Record {
		t.Errorf("Name %s Kind %s", s.Name(), s.Kind())
	}
	root := s.root
	if got := root.aliases; !reflect.DeepEqual(got, []string{"a.b.Old", "x.Older"}) {
		t.Errorf("aliases %v", got)
	}
	if root.fields[1].typ != root.fields[0].typ || root.fields[0].typ.fullName != "a.b.E" {
		t.Error("a reference does not resolve to its definition")
	}
	if root.fields[3].typ.fullName != "c.F" {
		t.Errorf("dotted name: %s", root.fields[3].typ.fullName)
	}
	if MustParse(`"string"`).Name() != "string" {
		t.Error("primitive name")
	}
}

func TestParseDefaults(t *testing.T) {
	s := MustParse(`{"type":"record","name":"D","fields":[
		{"name":"l","type":"long","default":9007199254740993},
		{"name":"b","type":"bytes","default":"\u00ff\u0000"},
		{"name":"f","type":"float","default":"NaN"},
		{"name":"u","type":["string","null"],"default":"s"},
		{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"},"default":1000},
		{"name":"r","type":{"type":"record","name":"S","fields":[{"name":"x","type":"int","default":3},{"name":"y","type":"string"}]},"default":{"y":"why"}}]}`)
	f := s.root.fields
	if f[0].def != int64(9007199254740993) {
		t.Errorf("long default %v (precision lost?)", f[0].def)
	}
	if !reflect.DeepEqual(f[1].def, []byte{0xff, 0}) {
		t.Errorf("bytes default %v: code points, not UTF-8", f[1].def)
	}
	if v, ok := f[2].def.(float32); !ok || v == v {
		t.Errorf("NaN default %v", f[2].def)
	}
	if !reflect.DeepEqual(f[3].def, map[string]any{"string": "s"}) {
		t.Errorf("union default %v", f[3].def)
	}
	if f[4].def != time.UnixMilli(1000).UTC() {
		t.Errorf("timestamp default %v", f[4].def)
	}
	if !reflect.DeepEqual(f[5].def, map[string]any{"x": int32(3), "y": "why"}) {
		t.Errorf("record default %v", f[5].def)
	}
}

func TestDecimal(t *testing.T) {
	s := MustParse(`{"type":"record","name":"M","fields":[
		{"name":"b","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":3}},
		{"name":"f","type":{"type":"fixed","name":"F8","size":8,"logicalType":"decimal","precision":18,"scale":2}}]}`)
	type M struct {
		B big.Rat
		F *big.Rat
	}
	c := MustCodec[M](nil, s)
	for _, v := range []string{"0", "-1", "1", "-128.5", "127.99", "-123456789012.34", "99999999999999.99"} {
		r, _ := new(big.Rat).SetString(v)
		in := M{B: *r, F: r}
		data, err := c.Encode(in)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		out, err := c.Decode(s.Fingerprint(), data)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if out.B.Cmp(r) != 0 || out.F.Cmp(r) != 0 {
			t.Errorf("%s came back as %s and %s", v, out.B.FloatString(3), out.F.FloatString(2))
		}
	}
	// The fixed encoding is the two's complement, sign-extended: -1.00 is -100.
	data, _ := c.Encode(M{F: big.NewRat(-1, 1)})
	if got := data[len(data)-8:]; !reflect.DeepEqual(got, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x9c}) {
		t.Errorf("fixed -1.00 = % x", got)
	}
	if _, err := c.Encode(M{F: new(big.Rat).SetFrac64(1<<62, 1)}); err == nil {
		t.Error("a decimal too wide for its fixed was encoded")
	}
}

// TestParsePathological: schemas no datum can satisfy must be refused or parsed quickly,
// and their data refused, never hang.
func TestParsePathological(t *testing.T) {
	start := time.Now()
	// Two records whose defaults refer to each other through a union: the search over
	// branches is exponential without a bound.
	_, err := Parse(`{"type":"record","name":"A","fields":[{"name":"f","type":["A",{"type":"record","name":"B","fields":[{"name":"f","type":["A","B"],"default":{}}]}],"default":{}}]}`)
	if !errors.Is(err, ErrInvalidSchema) {
		t.Errorf("mutually recursive defaults: %v", err)
	}
	// A record containing itself: no finite datum exists.
	s, err := Parse(`{"type":"record","name":"A","fields":[{"name":"b","type":"int"},{"name":"a","type":"A"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	reg.Add(s)
	if _, _, err := reg.DecodeNative(s.Fingerprint(), make([]byte, 10_000), Limits{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("datum of a self-containing record: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
