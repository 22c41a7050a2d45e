package schema

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
)

// fuzzCodec reads AccountOpened v2 from v1 (through the upcaster) and v2 bytes.
func fuzzCodec(f *testing.F) (*Codec[AccountOpened], *Codec[OpenedV1], *Schema, *Schema) {
	v1, v2 := MustParse(openedV1), MustParse(openedV2)
	reg := NewRegistry()
	w := MustCodec[OpenedV1](reg, v1)
	r := MustCodec[AccountOpened](reg, v2, Describe("event"))
	if err := reg.AddUpcaster(Upcaster{Type: "bank.AccountOpened", Fingerprint: v1.Fingerprint(), Func: renameOwner}); err != nil {
		f.Fatal(err)
	}
	return r, w, v1, v2
}

// FuzzDecode feeds arbitrary bytes to the typed decoder, as data written with v1 (upcast
// and resolved) or with v2 (decoded directly): each input gives a value or an
// *kastor.UndecodableError, never a panic or a runaway allocation; a value it gives
// encodes again and decodes to the same value.
func FuzzDecode(f *testing.F) {
	r, w, v1, v2 := fuzzCodec(f)
	seed1, _ := w.Encode(OpenedV1{AccountID: "acct-1", Owner: "ann", Initial: -3, Rate: 0.5, Currency: "USD", Note: ptr("n")})
	seed2, _ := r.Encode(AccountOpened{AccountID: "a", Holder: "h", Initial: 1 << 40, Rate: 2, Currency: "GBP",
		Note: ptr("x"), OpenedAt: time.UnixMilli(1_700_000_000_000).UTC(), Tags: map[string]string{"k": "v"},
		Address: &Address{Street: "s", City: "c", Zip: ptr("z")}})
	f.Add(false, seed1)
	f.Add(true, seed2)
	f.Add(true, seed2[:len(seed2)/2])
	f.Add(true, []byte{})
	f.Add(true, []byte{0x02, 'a', 0x02, 'h', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, current bool, data []byte) {
		fp := v1.Fingerprint()
		if current {
			fp = v2.Fingerprint()
		}
		v, err := r.Decode(fp, data)
		if current {
			// Two decoders must agree: the direct one and goavro's (guarded, then bound).
			viaGoavro, gerr := r.decodeNative(fp, data)
			if (err == nil) != (gerr == nil) {
				t.Fatalf("direct decoding: %v; through goavro: %v", err, gerr)
			}
			if err == nil && !sameValue(v, viaGoavro) {
				t.Fatalf("direct decoding gives\n%+v\nthrough goavro\n%+v", v, viaGoavro)
			}
		}
		if err != nil {
			var ue *kastor.UndecodableError
			if !errors.As(err, &ue) {
				t.Fatalf("error %T is not a *kastor.UndecodableError: %v", err, err)
			}
			return
		}
		again, err := r.Encode(v)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", v, err)
		}
		back, err := r.Decode(v2.Fingerprint(), again)
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if !sameValue(back, v) {
			t.Fatalf("round trip changed the value:\n%+v\n%+v", v, back)
		}
	})
}

// fuzzSchemas cover every Avro type, including the shapes whose lengths goavro trusts:
// collections of items that take no bytes, recursion, maps, fixed and decimals.
var fuzzSchemas = []string{
	everythingSchema,
	`{"type":"record","name":"Node","fields":[{"name":"label","type":"string"},{"name":"children","type":{"type":"array","items":"Node"}},{"name":"next","type":["null","Node"]}]}`,
	`{"type":"array","items":["null",{"type":"record","name":"E","fields":[]},{"type":"map","values":{"type":"array","items":"null"}}]}`,
	`{"type":"map","values":["boolean","float","double",{"type":"fixed","name":"Z","size":1},{"type":"enum","name":"S","symbols":["A","B","C"]}]}`,
}

// FuzzDecodeNative feeds arbitrary bytes to the guarded goavro decoder for each schema
// of fuzzSchemas: a value or an ErrMalformed error, nothing else.
func FuzzDecodeNative(f *testing.F) {
	reg := NewRegistry()
	var fps []Fingerprint
	for _, text := range fuzzSchemas {
		s := MustParse(text)
		reg.Add(s)
		fps = append(fps, s.Fingerprint())
	}
	f.Add(uint8(1), []byte{0x06, 'r', 'o', 'o', 't', 0x02, 0x02, 'a', 0x00, 0x00, 0x00, 0x00})
	f.Add(uint8(2), []byte{0x03, 0x02, 0x00, 0x02, 0x04, 0x02, 0x06, 0x00, 0x00, 0x00})
	f.Add(uint8(3), []byte{0x04, 0x02, 'k', 0x02, 0x00, 0x00, 0x00, 0xc0, 0x7f, 0x00})
	f.Add(uint8(2), []byte{0xfe, 0xff, 0xff, 0xff, 0x0f, 0x00})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		fp := fps[int(which)%len(fps)]
		if _, _, err := reg.DecodeNative(fp, data, Limits{}); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
	})
}

// FuzzParse feeds arbitrary text to the schema parser: a schema or a *ParseError, never a
// panic; and a schema's canonical form parses to the same canonical form and fingerprint.
func FuzzParse(f *testing.F) {
	for _, s := range append(fuzzSchemas, openedV1, openedV2, openedV3, `"int"`, `["null","string"]`,
		`{"type":"record","name":"R","fields":[{"name":"r","type":["null","R"],"default":null}]}`,
		`{"type":"enum","name":"E","symbols":["A"],"default":"A"}`) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(text)
		if err != nil {
			if !errors.Is(err, ErrInvalidSchema) {
				t.Fatalf("error %v is not ErrInvalidSchema", err)
			}
			return
		}
		c, err := Parse(s.Canonical())
		if err != nil {
			t.Fatalf("canonical form %s of %s does not parse: %v", s.Canonical(), text, err)
		}
		if c.Canonical() != s.Canonical() || c.Fingerprint() != s.Fingerprint() {
			t.Fatalf("canonical form not stable: %s -> %s", s.Canonical(), c.Canonical())
		}
	})
}

// sameValue is reflect.DeepEqual, except that NaN equals NaN and big.Rat values compare
// by value.
func sameValue[T any](a, b T) bool {
	return deepEqualNaN(reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem())
}

func deepEqualNaN(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		x, y := a.Float(), b.Float()
		return x == y || math.IsNaN(x) && math.IsNaN(y)
	case reflect.Struct:
		if a.Type() == ratType {
			x, y := a.Interface().(big.Rat), b.Interface().(big.Rat)
			return x.Cmp(&y) == 0
		}
		if a.Type() == timeType {
			return a.Interface().(time.Time).Equal(b.Interface().(time.Time)) && a.Interface().(time.Time).Location() == b.Interface().(time.Time).Location()
		}
		for i := range a.NumField() {
			if !deepEqualNaN(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return deepEqualNaN(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !deepEqualNaN(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		it := a.MapRange()
		for it.Next() {
			y := b.MapIndex(it.Key())
			if !y.IsValid() || !deepEqualNaN(it.Value(), y) {
				return false
			}
		}
		return true
	case reflect.Array:
		for i := range a.Len() {
			if !deepEqualNaN(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Interface:
		return reflect.DeepEqual(a.Interface(), b.Interface())
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// Typed is Everything without its field of type any: it decodes directly.
type Typed struct {
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
	Other        string `avro:"renamed"`
	Embedded
}

// FuzzDecodeDirect compares the direct decoder with goavro's on a schema with every type
// and on a recursive one, for arbitrary bytes.
func FuzzDecodeDirect(f *testing.F) {
	typed := MustCodec[Typed](nil, MustParse(everythingSchema))
	type Node struct {
		Label    string
		Children []Node
		Next     *Node
	}
	nodes := MustCodec[Node](nil, MustParse(fuzzSchemas[1]))
	seed, err := typed.Encode(Typed{Currency: "USD", HashSlice: []byte{1, 2, 3, 4}, Amount: *big.NewRat(-7, 4),
		Home: Place{City: "c"}, Work: &Place{City: "w", Zip: ptr("z")}, Visited: []Place{{}}, Counts: map[string]int64{"a": 1},
		Labels: []string{"l"}, At: time.UnixMilli(-1).UTC(), Day: time.UnixMilli(0).UTC()})
	if err != nil {
		f.Fatal(err)
	}
	seed2, _ := nodes.Encode(Node{Label: "r", Children: []Node{{Label: "c", Children: []Node{}}}, Next: &Node{Children: []Node{}}})
	f.Add(false, seed)
	f.Add(true, seed2)
	f.Fuzz(func(t *testing.T, recursive bool, data []byte) {
		if recursive {
			compareDecoders(t, nodes, data)
		} else {
			compareDecoders(t, typed, data)
		}
	})
}

func compareDecoders[T any](t *testing.T, c *Codec[T], data []byte) {
	fp := c.Schema().Fingerprint()
	direct, err := c.readDirect(data)
	viaGoavro, gerr := c.decodeNative(fp, data)
	if (err == nil) != (gerr == nil) {
		t.Fatalf("direct decoding: %v; through goavro: %v", err, gerr)
	}
	if err == nil && !sameValue(direct, viaGoavro) {
		t.Fatalf("direct decoding gives\n%+v\nthrough goavro\n%+v", direct, viaGoavro)
	}
}
