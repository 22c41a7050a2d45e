package schema

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"
)

const everythingSchema = `{"type":"record","name":"Everything","namespace":"t","fields":[
	{"name":"flag","type":"boolean"},
	{"name":"small","type":"int"},
	{"name":"i32","type":"int"},
	{"name":"i64","type":"long"},
	{"name":"f32","type":"float"},
	{"name":"f64","type":"double"},
	{"name":"f64FromFloat","type":"float"},
	{"name":"text","type":"string"},
	{"name":"raw","type":"bytes"},
	{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"atMicros","type":{"type":"long","logicalType":"timestamp-micros"}},
	{"name":"atRaw","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"day","type":{"type":"int","logicalType":"date"}},
	{"name":"timeOfDay","type":{"type":"int","logicalType":"time-millis"}},
	{"name":"currency","type":{"type":"enum","name":"Currency","symbols":["EUR","USD"]}},
	{"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
	{"name":"hashSlice","type":"Hash"},
	{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
	{"name":"maybeAmount","type":["null",{"type":"fixed","name":"Money","size":8,"logicalType":"decimal","precision":12,"scale":2}],"default":null},
	{"name":"home","type":{"type":"record","name":"Place","fields":[{"name":"city","type":"string"},{"name":"zip","type":["null","string"],"default":null}]}},
	{"name":"work","type":["null","Place"],"default":null},
	{"name":"visited","type":{"type":"array","items":"Place"}},
	{"name":"counts","type":{"type":"map","values":"long"}},
	{"name":"labels","type":["null",{"type":"array","items":"string"}],"default":null},
	{"name":"nick","type":["null","string"],"default":null},
	{"name":"extra","type":["null","long","string"],"default":null},
	{"name":"renamed","type":"string"},
	{"name":"embeddedField","type":"int"},
	{"name":"withDefault","type":"string","default":"dflt"}
]}`

type Place struct {
	City string
	Zip  *string
}

type Embedded struct {
	EmbeddedField int
}

type Everything struct {
	Flag         bool
	Small        int
	I32          int32
	I64          int64
	F32          float32
	F64          float64
	F64FromFloat float64
	Text         string
	Raw          []byte
	At           time.Time
	AtMicros     time.Time
	AtRaw        int64
	Day          time.Time
	TimeOfDay    time.Duration
	Currency     Currency
	Hash         [4]byte
	HashSlice    []byte
	Amount       big.Rat
	MaybeAmount  *big.Rat
	Home         Place
	Work         *Place
	Visited      []Place
	Counts       map[string]int64
	Labels       []string
	Nick         *string
	Extra        any
	Other        string `avro:"renamed"`
	Skipped      string `avro:"-"`
	unexported   int
	Embedded
}

func TestBindRoundTrip(t *testing.T) {
	s := MustParse(everythingSchema)
	c, err := NewCodec[Everything](nil, s)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 9, 30, 15, 123_000_000, time.UTC)
	full := Everything{
		Flag: true, Small: -5, I32: 1 << 30, I64: -1 << 50, F32: 1.25, F64: 3.5e100, F64FromFloat: 0.5,
		Text: "héllo", Raw: []byte{0, 1, 255}, At: at, AtMicros: at.Add(456 * time.Microsecond), AtRaw: 1234,
		Day: time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC), TimeOfDay: 3*time.Hour + 7*time.Millisecond,
		Currency: "USD", Hash: [4]byte{1, 2, 3, 4}, HashSlice: []byte{9, 8, 7, 6},
		Amount: *big.NewRat(-12345, 100), MaybeAmount: big.NewRat(5, 2),
		Home: Place{City: "Paris", Zip: ptr("75001")}, Work: &Place{City: "Lyon"},
		Visited: []Place{{City: "Rome"}, {City: "Oslo", Zip: ptr("0150")}},
		Counts:  map[string]int64{"a": 1, "b": -2}, Labels: []string{"x", "y"}, Nick: ptr("nico"),
		Extra: map[string]any{"string": "free-form"}, Other: "tagged", Embedded: Embedded{EmbeddedField: 77},
	}
	empty := Everything{Currency: "EUR", HashSlice: []byte{0, 0, 0, 0}, Home: Place{City: "Nowhere"}, Visited: []Place{}, Counts: map[string]int64{}}
	for name, in := range map[string]Everything{"full": full, "empty": empty} {
		t.Run(name, func(t *testing.T) {
			data, err := c.Encode(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.Decode(s.Fingerprint(), data)
			if err != nil {
				t.Fatal(err)
			}
			want := in
			want.Skipped, want.unexported = "", 0
			if want.Raw == nil {
				want.Raw = []byte{}
			}
			// big.Rat's representation of a value is not unique: compare values.
			if out.Amount.Cmp(&in.Amount) != 0 {
				t.Errorf("amount %s, want %s", out.Amount.FloatString(2), in.Amount.FloatString(2))
			}
			if (out.MaybeAmount == nil) != (in.MaybeAmount == nil) || out.MaybeAmount != nil && out.MaybeAmount.Cmp(in.MaybeAmount) != 0 {
				t.Errorf("maybeAmount %v, want %v", out.MaybeAmount, in.MaybeAmount)
			}
			out.Amount, want.Amount, out.MaybeAmount, want.MaybeAmount = big.Rat{}, big.Rat{}, nil, nil
			if !reflect.DeepEqual(out, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", out, want)
			}
		})
	}
	// The record fields without a Go field are written with their defaults.
	data, _ := c.Encode(full)
	native, err := c.DecodeNative(s.Fingerprint(), data)
	if err != nil {
		t.Fatal(err)
	}
	if got := native.(map[string]any)["withDefault"]; got != "dflt" {
		t.Errorf("withDefault = %v", got)
	}
	// Decoded bytes do not alias the input.
	out, _ := c.Decode(s.Fingerprint(), data)
	for i := range data {
		data[i] = 0xAA
	}
	if out.Raw[2] != 255 || out.Text != "héllo" {
		t.Errorf("decoded value changed with the input buffer: %v %q", out.Raw, out.Text)
	}
}

func TestBindTimePrecision(t *testing.T) {
	s := MustParse(`{"type":"record","name":"T","fields":[{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}`)
	type T struct{ At time.Time }
	c := MustCodec[T](nil, s)
	in := time.Date(1969, 7, 20, 20, 17, 40, 999_999_999, time.FixedZone("X", 3600))
	data, err := c.Encode(T{in})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Decode(s.Fingerprint(), data)
	if err != nil {
		t.Fatal(err)
	}
	if want := in.Truncate(time.Millisecond).UTC(); !out.At.Equal(want) || out.At.Location() != time.UTC {
		t.Errorf("got %v, want %v in UTC", out.At, want)
	}
}

func TestBindMismatch(t *testing.T) {
	rec := func(fields string) *Schema {
		return MustParse(`{"type":"record","name":"R","fields":[` + fields + `]}`)
	}
	check := func(t *testing.T, err error, path string, parts ...string) {
		t.Helper()
		var be *BindError
		if !errors.As(err, &be) || !errors.Is(err, ErrBinding) {
			t.Fatalf("error %v is not a *BindError", err)
		}
		if be.Path != path {
			t.Errorf("path %q, want %q (%v)", be.Path, path, err)
		}
		wantErrContains(t, err, parts...)
	}
	t.Run("wrong type", func(t *testing.T) {
		type G struct{ Amount string }
		_, err := NewCodec[G](nil, rec(`{"name":"amount","type":"long"}`))
		check(t, err, "amount", "Go type string cannot hold Avro long")
	})
	t.Run("nested", func(t *testing.T) {
		type In struct{ City int }
		type G struct{ Home []In }
		_, err := NewCodec[G](nil, rec(`{"name":"home","type":{"type":"array","items":{"type":"record","name":"P","fields":[{"name":"city","type":"string"}]}}}`))
		check(t, err, "home[].city", "Go type int cannot hold Avro string")
	})
	t.Run("go field not in schema", func(t *testing.T) {
		type G struct{ A, B string }
		_, err := NewCodec[G](nil, rec(`{"name":"a","type":"string"}`))
		check(t, err, "b", `Go field schema.G.B has no field "b" in record R`)
	})
	t.Run("schema field without go field or default", func(t *testing.T) {
		type G struct{ A string }
		_, err := NewCodec[G](nil, rec(`{"name":"a","type":"string"},{"name":"c","type":"int"}`))
		check(t, err, "c", "no Go field", "no default")
	})
	t.Run("narrowing", func(t *testing.T) {
		type G struct{ A int32 }
		_, err := NewCodec[G](nil, rec(`{"name":"a","type":"long"}`))
		check(t, err, "a", "cannot hold every Avro long")
		type F struct{ A float32 }
		_, err = NewCodec[F](nil, rec(`{"name":"a","type":"double"}`))
		check(t, err, "a", "cannot hold every Avro double")
	})
	t.Run("time without logical type", func(t *testing.T) {
		type G struct{ A time.Time }
		_, err := NewCodec[G](nil, rec(`{"name":"a","type":"long"}`))
		check(t, err, "a", "timestamp-millis")
	})
	t.Run("pointer without null", func(t *testing.T) {
		type G struct{ A *string }
		_, err := NewCodec[G](nil, rec(`{"name":"a","type":["string","long"]}`))
		check(t, err, "a", "needs a union with null")
	})
	t.Run("fixed size", func(t *testing.T) {
		type G struct{ A [3]byte }
		_, err := NewCodec[G](nil, rec(`{"name":"a","type":{"type":"fixed","name":"F","size":4}}`))
		check(t, err, "a", "has 3 bytes", "has 4")
	})
	t.Run("duplicate names", func(t *testing.T) {
		type G struct {
			A string
			B string `avro:"a"`
		}
		_, err := NewCodec[G](nil, rec(`{"name":"a","type":"string"}`))
		check(t, err, "", "both map to Avro field")
	})
}

func TestBindEncodeErrors(t *testing.T) {
	s := MustParse(`{"type":"record","name":"R","fields":[
		{"name":"c","type":{"type":"enum","name":"C","symbols":["A","B"]}},
		{"name":"n","type":"int"},
		{"name":"f","type":{"type":"fixed","name":"F","size":2}},
		{"name":"p","type":{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}}]}`)
	type P struct{ X int }
	type R struct {
		C string
		N int64
		F []byte
		P *P
	}
	c := MustCodec[R](nil, s)
	good := R{C: "A", N: 1, F: []byte{1, 2}, P: &P{}}
	if _, err := c.Encode(good); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mod  func(*R)
		path string
		msg  string
	}{
		"enum symbol": {func(r *R) { r.C = "Z" }, "c", `"Z" is not a symbol of enum C`},
		"int range":   {func(r *R) { r.N = 1 << 40 }, "n", "does not fit an Avro int"},
		"fixed size":  {func(r *R) { r.F = []byte{1} }, "f", "1 bytes for fixed F of size 2"},
		"nil pointer": {func(r *R) { r.P = nil }, "p", "which has no null"},
	} {
		t.Run(name, func(t *testing.T) {
			v := good
			tc.mod(&v)
			_, err := c.Encode(v)
			var be *BindError
			if !errors.As(err, &be) || be.Path != tc.path {
				t.Fatalf("error %v, want a *BindError at %q", err, tc.path)
			}
			wantErrContains(t, err, tc.msg)
		})
	}
}

func TestDefaultFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"Amount": "amount", "AccountID": "accountID", "ID": "id", "URLPath": "urlPath",
		"X": "x", "already": "already", "HTTPServer2": "httpServer2", "ÉtéX": "étéX",
	} {
		if got := DefaultFieldName(in); got != want {
			t.Errorf("DefaultFieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTopLevelNonRecord(t *testing.T) {
	s := MustParse(`["null","string"]`)
	c := MustCodec[*string](nil, s)
	for _, in := range []*string{nil, ptr("x")} {
		data, err := c.Encode(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.Decode(s.Fingerprint(), data)
		if err != nil {
			t.Fatal(err)
		}
		if (in == nil) != (out == nil) || in != nil && *in != *out {
			t.Errorf("round trip of %v gave %v", in, out)
		}
	}
}

// TestRecursiveBinding binds a recursive schema to a recursive Go type.
func TestRecursiveBinding(t *testing.T) {
	s := MustParse(`{"type":"record","name":"Node","fields":[{"name":"label","type":"string"},{"name":"children","type":{"type":"array","items":"Node"}},{"name":"next","type":["null","Node"],"default":null}]}`)
	type Node struct {
		Label    string
		Children []Node
		Next     *Node
	}
	c := MustCodec[Node](nil, s)
	in := Node{Label: "root", Children: []Node{{Label: "a", Children: []Node{}}, {Label: "b", Children: []Node{}, Next: &Node{Label: "c", Children: []Node{}}}}}
	data, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Decode(s.Fingerprint(), data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("got %+v", out)
	}
}

// TestEncoderMatchesGoavro: kastor writes Avro itself; the bytes must be those goavro
// writes for the same value (maps have one key, so the order of entries is fixed).
func TestEncoderMatchesGoavro(t *testing.T) {
	s := MustParse(everythingSchema)
	c := MustCodec[Everything](nil, s)
	at := time.Date(2026, 11, 26, 9, 30, 15, 123_456_789, time.UTC)
	for _, in := range []Everything{
		{Currency: "EUR", HashSlice: make([]byte, 4), Home: Place{City: "x"}},
		{Flag: true, Small: -1 << 31, I32: 1<<31 - 1, I64: -1 << 63, F32: float32(math.Copysign(0, -1)), F64: 1e-300, Text: "ünï", Raw: []byte{0},
			At: at, AtMicros: at, AtRaw: -5, Day: at.Truncate(24 * time.Hour), TimeOfDay: 86399999 * time.Millisecond,
			Currency: "USD", Hash: [4]byte{255}, HashSlice: []byte{1, 2, 3, 4}, Amount: *big.NewRat(-1, 100),
			MaybeAmount: big.NewRat(0, 1), Home: Place{City: "a", Zip: ptr("")}, Work: &Place{},
			Visited: []Place{{}, {City: "b"}}, Counts: map[string]int64{"k": 1 << 40}, Labels: []string{},
			Nick: ptr(""), Extra: map[string]any{"long": int64(-7)}, Other: "o", Embedded: Embedded{-1}},
	} {
		ours, err := c.Encode(in)
		if err != nil {
			t.Fatal(err)
		}
		native, rest, err := s.Codec().NativeFromBinary(ours)
		if err != nil || len(rest) != 0 {
			t.Fatalf("goavro cannot read our encoding: %v (%d bytes left)", err, len(rest))
		}
		theirs, err := s.Codec().BinaryFromNative(nil, native)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ours, theirs) {
			t.Errorf("encoding differs from goavro's:\nours   % x\ngoavro % x", ours, theirs)
		}
	}
}
