package schema_test

import (
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/schema"
)

// The bank account's schemas as written by hand (those of the bank example, before they
// were derived): the test domain's types must derive to them.
var (
	stateSchema = schema.MustParse(`{"type":"record","name":"Account","namespace":"bank","fields":[
		{"name":"owner","type":"string"},{"name":"balance","type":"long"},
		{"name":"open","type":"boolean"},{"name":"closed","type":"boolean"}]}`)

	openSchema     = schema.MustParse(`{"type":"record","name":"OpenAccount","namespace":"bank","fields":[{"name":"owner","type":"string"}]}`)
	depositSchema  = schema.MustParse(`{"type":"record","name":"Deposit","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`)
	withdrawSchema = schema.MustParse(`{"type":"record","name":"Withdraw","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`)
	closeSchema    = schema.MustParse(`{"type":"record","name":"CloseAccount","namespace":"bank","fields":[]}`)

	openedSchema    = schema.MustParse(`{"type":"record","name":"AccountOpened","namespace":"bank","fields":[{"name":"owner","type":"string"}]}`)
	depositedSchema = schema.MustParse(`{"type":"record","name":"MoneyDeposited","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`)
	withdrawnSchema = schema.MustParse(`{"type":"record","name":"MoneyWithdrawn","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`)
	closedSchema    = schema.MustParse(`{"type":"record","name":"AccountClosed","namespace":"bank","fields":[]}`)
)

func sameSchema(t *testing.T, got, want *schema.Schema) {
	t.Helper()
	if got.Name() != want.Name() {
		t.Errorf("name %s, want %s", got.Name(), want.Name())
	}
	if got.Canonical() != want.Canonical() {
		t.Errorf("%s: canonical form\n got %s\nwant %s", want.Name(), got.Canonical(), want.Canonical())
	}
	if got.Fingerprint() != want.Fingerprint() {
		t.Errorf("%s: fingerprint %s, want %s", want.Name(), got.Fingerprint(), want.Fingerprint())
	}
}

// TestDeriveBank: the schemas derived from the bank account's types (internal/testdomain)
// are the hand-written ones, by canonical form and fingerprint.
func TestDeriveBank(t *testing.T) {
	ns := schema.Namespace("bank")
	for _, c := range []struct {
		derive func() (*schema.Schema, error)
		want   *schema.Schema
	}{
		{func() (*schema.Schema, error) { return schema.Derive[bank.State](schema.Name("bank.Account")) }, stateSchema},
		{func() (*schema.Schema, error) { return schema.Derive[bank.Open](ns, schema.Name("OpenAccount")) }, openSchema},
		{func() (*schema.Schema, error) { return schema.Derive[bank.Deposit](ns) }, depositSchema},
		{func() (*schema.Schema, error) { return schema.Derive[*bank.Withdraw](ns) }, withdrawSchema},
		{func() (*schema.Schema, error) { return schema.Derive[bank.Close](schema.Name("bank.CloseAccount")) }, closeSchema},
		{func() (*schema.Schema, error) { return schema.Derive[bank.Opened]() }, openedSchema},
		{func() (*schema.Schema, error) { return schema.Derive[bank.Deposited](ns) }, depositedSchema},
		{func() (*schema.Schema, error) { return schema.Derive[bank.Withdrawn]() }, withdrawnSchema},
		{func() (*schema.Schema, error) { return schema.Derive[bank.Closed]() }, closedSchema},
	} {
		got, err := c.derive()
		if err != nil {
			t.Fatal(err)
		}
		sameSchema(t, got, c.want)
		// The derived JSON is the hand-written one, whitespace aside.
		if want := strings.Join(strings.Fields(c.want.JSON()), ""); got.JSON() != want {
			t.Errorf("JSON\n got %s\nwant %s", got.JSON(), want)
		}
	}
}

// bankCodecs makes the bank account's codecs from its Go types, as bank.NewCodecs does.
func bankCodecs(reg *schema.Registry) (*schema.Types[bank.Command], *schema.Types[kastor.Event], *schema.Codec[bank.State], error) {
	ns := schema.Namespace("bank")
	cmds, err1 := schema.DeriveTypes[bank.Command](reg, "command",
		schema.Of[bank.Open](schema.Name("bank.OpenAccount")), schema.Of[bank.Deposit](ns),
		schema.Of[bank.Withdraw](ns), schema.Of[bank.Close](schema.Name("bank.CloseAccount")))
	evs, err2 := schema.DeriveTypes[kastor.Event](reg, "event",
		schema.Of[bank.Opened](), schema.Of[bank.Deposited](), schema.Of[bank.Withdrawn](), schema.Of[bank.Closed]())
	state, err3 := schema.NewCodec[bank.State](reg, schema.MustDerive[bank.State](schema.Name("bank.Account")), schema.Describe("state"))
	return cmds, evs, state, errors.Join(err1, err2, err3)
}

// TestDeriveTypesBank: the bank's codecs from its Go types alone read and write what the
// hand-written codecs do.
func TestDeriveTypesBank(t *testing.T) {
	reg := schema.NewRegistry()
	cmds, evs, state, err := bankCodecs(reg)
	if err != nil {
		t.Fatal(err)
	}
	want := []*schema.Schema{stateSchema, openSchema, depositSchema, withdrawSchema, closeSchema,
		openedSchema, depositedSchema, withdrawnSchema, closedSchema}
	got := append(append([]*schema.Schema{state.Schema()}, cmds.Schemas()...), evs.Schemas()...)
	if len(got) != len(want) {
		t.Fatalf("%d schemas, want %d", len(got), len(want))
	}
	for _, w := range want {
		if s, ok := reg.Schema(w.Fingerprint()); !ok || s.Name() != w.Name() {
			t.Errorf("%s is not in the registry", w)
		}
	}
	names := func(ss []*schema.Schema) (out []string) {
		for _, s := range ss {
			out = append(out, s.Name())
		}
		return out
	}
	if n := names(evs.Schemas()); !reflect.DeepEqual(n, []string{"bank.AccountClosed", "bank.AccountOpened", "bank.MoneyDeposited", "bank.MoneyWithdrawn"}) {
		t.Errorf("event schemas %v", n)
	}

	// Events written by the hand-written codecs decode through the derived set, and back.
	hand := schema.MustCodec[bank.Deposited](nil, depositedSchema)
	data, err := hand.Encode(bank.Deposited{Amount: 250})
	if err != nil {
		t.Fatal(err)
	}
	r := &kgo.Record{Value: data, Headers: hand.Headers()}
	ev, err := evs.DecodeRecord(r)
	if err != nil || ev != (bank.Deposited{Amount: 250}) {
		t.Fatalf("decoded %#v, %v", ev, err)
	}
	for _, e := range []kastor.Event{bank.Opened{Owner: "ann"}, bank.Deposited{Amount: 7}, bank.Withdrawn{Amount: 3}, bank.Closed{}} {
		typ, fp, data, err := evs.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if typ != e.EventType() {
			t.Errorf("type %s for %T", typ, e)
		}
		back, err := evs.Decode(typ, fp, data)
		if err != nil || back != e {
			t.Errorf("%#v came back as %#v, %v", e, back, err)
		}
	}
	for _, c := range []bank.Command{bank.Open{Owner: "bob"}, bank.Deposit{Amount: 1}, bank.Withdraw{Amount: 2}, bank.Close{}} {
		typ, fp, data, err := cmds.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := cmds.Decode(typ, fp, data)
		if err != nil || back != c {
			t.Errorf("%#v came back as %#v, %v", c, back, err)
		}
	}
	s := bank.State{Owner: "ann", Balance: 42, Open: true}
	data, err = state.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := schema.MustCodec[bank.State](nil, stateSchema).Decode(stateSchema.Fingerprint(), data); err != nil || back != s {
		t.Errorf("state %+v came back as %+v, %v", s, back, err)
	}
}

// The Go types of a richer event.

type Money [8]byte

type Line struct {
	SKU      string `avro:"sku"`
	Quantity int32
	Price    big.Rat `avro:",precision=12,scale=2"`
	Tags     []string
}

type Address struct {
	Street string
	City   string
	Zip    *string
}

type Audit struct {
	By string
	At time.Time
}

type Node struct {
	Label    string
	Children []Node
	Next     *Node
}

type OrderPlaced struct {
	Audit             // embedded: its fields are the record's
	OrderID  string   `avro:"id"`
	Customer string   `avro:",alias=buyer"`
	Lines    []Line   // nested records in an array
	Ship     Address  // nested record
	Bill     *Address // the same record, by name, optional
	Notes    map[string]string
	Counts   map[string][]int64
	Weight   float32
	Total    float64
	Priority int
	Express  bool
	Hash     Money
	Raw      []byte
	Due      *time.Time
	Deliver  time.Time     `avro:",date"`
	Precise  time.Time     `avro:",timestamp-micros"`
	Window   time.Duration // nanoseconds
	Slot     time.Duration `avro:",time-millis"`
	Tree     *Node
	Channel  string   `avro:",default=web"`
	Discount *big.Rat `avro:",precision=12,scale=2"`
	Internal string   `avro:"-"`
}

func (OrderPlaced) EventType() string { return "shop.OrderPlaced" }

const orderPlacedJSON = `{"type":"record","name":"OrderPlaced","namespace":"shop","fields":[
	{"name":"by","type":"string"},
	{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"id","type":"string"},
	{"name":"customer","type":"string","aliases":["buyer"]},
	{"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
		{"name":"sku","type":"string"},
		{"name":"quantity","type":"int"},
		{"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
		{"name":"tags","type":{"type":"array","items":"string"}}]}}},
	{"name":"ship","type":{"type":"record","name":"Address","fields":[
		{"name":"street","type":"string"},
		{"name":"city","type":"string"},
		{"name":"zip","type":["null","string"],"default":null}]}},
	{"name":"bill","type":["null","Address"],"default":null},
	{"name":"notes","type":{"type":"map","values":"string"}},
	{"name":"counts","type":{"type":"map","values":{"type":"array","items":"long"}}},
	{"name":"weight","type":"float"},
	{"name":"total","type":"double"},
	{"name":"priority","type":"long"},
	{"name":"express","type":"boolean"},
	{"name":"hash","type":{"type":"fixed","name":"Money","size":8}},
	{"name":"raw","type":"bytes"},
	{"name":"due","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
	{"name":"deliver","type":{"type":"int","logicalType":"date"}},
	{"name":"precise","type":{"type":"long","logicalType":"timestamp-micros"}},
	{"name":"window","type":"long"},
	{"name":"slot","type":{"type":"int","logicalType":"time-millis"}},
	{"name":"tree","type":["null",{"type":"record","name":"Node","fields":[
		{"name":"label","type":"string"},
		{"name":"children","type":{"type":"array","items":"Node"}},
		{"name":"next","type":["null","Node"],"default":null}]}],"default":null},
	{"name":"channel","type":"string","default":"web"},
	{"name":"discount","type":["null",{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}],"default":null}]}`

// TestDeriveNested: nested, repeated and recursive records, optional fields, arrays, maps,
// time and decimals; the JSON is what one writes by hand.
func TestDeriveNested(t *testing.T) {
	s, err := schema.Derive[OrderPlaced]()
	if err != nil {
		t.Fatal(err)
	}
	want := schema.MustParse(orderPlacedJSON)
	sameSchema(t, s, want)
	if w := strings.Join(strings.Fields(orderPlacedJSON), ""); s.JSON() != w {
		t.Errorf("JSON\n got %s\nwant %s", s.JSON(), w)
	}

	// A recursive root record refers to itself by name.
	sameSchema(t, schema.MustDerive[Node](schema.Namespace("t")), schema.MustParse(`{"type":"record","name":"t.Node","fields":[
		{"name":"label","type":"string"},
		{"name":"children","type":{"type":"array","items":"Node"}},
		{"name":"next","type":["null","Node"],"default":null}]}`))

	// A nested event keeps its type name, in its own namespace; the records it contains
	// are in the root's namespace.
	type Envelope struct {
		Event bank.Opened
		Where Address
		Notes string `avro:",default=<none> & more"`
	}
	s = schema.MustDerive[Envelope](schema.Name("audit.Envelope"))
	sameSchema(t, s, schema.MustParse(`{"type":"record","name":"Envelope","namespace":"audit","fields":[
		{"name":"event","type":{"type":"record","name":"bank.AccountOpened","fields":[{"name":"owner","type":"string"}]}},
		{"name":"where","type":{"type":"record","name":"Address","fields":[
			{"name":"street","type":"string"},{"name":"city","type":"string"},{"name":"zip","type":["null","string"],"default":null}]}},
		{"name":"notes","type":"string","default":"<none> & more"}]}`))
	if !strings.Contains(s.JSON(), `"default":"<none> & more"`) {
		t.Errorf("JSON %s", s.JSON())
	}
}

func rat(s string) big.Rat {
	var r big.Rat
	r.SetString(s)
	return r
}

// TestDeriveRoundTrip encodes and decodes values through a codec on a derived schema,
// directly and through goavro (the path of data written with another schema).
func TestDeriveRoundTrip(t *testing.T) {
	s := schema.MustDerive[OrderPlaced]()
	reg := schema.NewRegistry()
	c := schema.MustCodec[OrderPlaced](reg, s)
	at := time.Date(2026, 3, 4, 5, 6, 7, 8_000_000, time.UTC)
	due := at.Add(48 * time.Hour)
	discount := rat("1.25")
	zip := "75001"
	full := OrderPlaced{
		Audit:    Audit{By: "clerk", At: at},
		OrderID:  "o-1",
		Customer: "ann",
		Lines: []Line{
			{SKU: "a", Quantity: 2, Price: rat("9.99"), Tags: []string{"x", "y"}},
			{SKU: "b", Quantity: 1, Price: rat("-0.5"), Tags: []string{}},
		},
		Ship:     Address{Street: "1 rue", City: "Paris", Zip: &zip},
		Bill:     &Address{Street: "2 rue", City: "Lyon"},
		Notes:    map[string]string{"gift": "yes"},
		Counts:   map[string][]int64{"a": {1, 2}, "b": {}},
		Weight:   1.5,
		Total:    19.48,
		Priority: -3,
		Express:  true,
		Hash:     Money{1, 2, 3, 4, 5, 6, 7, 8},
		Raw:      []byte{0, 255},
		Due:      &due,
		Deliver:  time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC),
		Precise:  at.Add(123 * time.Microsecond),
		Window:   90*time.Minute + 1,
		Slot:     9*time.Hour + 30*time.Minute,
		Tree:     &Node{Label: "root", Children: []Node{{Label: "kid", Children: []Node{}}}, Next: &Node{Label: "next", Children: []Node{}}},
		Channel:  "store",
		Discount: &discount,
	}
	empty := OrderPlaced{
		Audit:    Audit{At: time.Unix(0, 0).UTC()},
		Lines:    []Line{},
		Notes:    map[string]string{},
		Counts:   map[string][]int64{},
		Raw:      []byte{},
		Deliver:  time.Unix(0, 0).UTC(),
		Precise:  time.Unix(0, 0).UTC(),
		Internal: "", // not written
	}
	for _, in := range []OrderPlaced{full, empty} {
		data, err := c.Encode(in)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := c.Decode(s.Fingerprint(), data)
		if err != nil {
			t.Fatal(err)
		}
		equalOrders(t, direct, in)
		// goavro reads the encoding as the schema says.
		if _, _, err := s.Codec().NativeFromBinary(data); err != nil {
			t.Fatalf("goavro cannot read the encoding: %v", err)
		}
	}
}

// equalOrders compares orders, big.Rat by value.
func equalOrders(t *testing.T, got, want OrderPlaced) {
	t.Helper()
	ratsEqual := func(a, b *big.Rat) bool { return (a == nil) == (b == nil) && (a == nil || a.Cmp(b) == 0) }
	for i := range want.Lines {
		if i < len(got.Lines) && !ratsEqual(&got.Lines[i].Price, &want.Lines[i].Price) {
			t.Errorf("line %d price %s, want %s", i, got.Lines[i].Price.String(), want.Lines[i].Price.String())
		}
	}
	if !ratsEqual(got.Discount, want.Discount) {
		t.Errorf("discount %v, want %v", got.Discount, want.Discount)
	}
	strip := func(o OrderPlaced) OrderPlaced {
		o.Lines = append([]Line(nil), o.Lines...)
		for i := range o.Lines {
			o.Lines[i].Price = big.Rat{}
		}
		if o.Lines == nil {
			o.Lines = []Line{}
		}
		o.Discount = nil
		return o
	}
	if g, w := strip(got), strip(want); !reflect.DeepEqual(g, w) {
		t.Errorf("round trip:\n got %+v\nwant %+v", g, w)
	}
}

// TestDeriveNativePath: data written with an older derived schema is read through
// resolution (goavro, then Avro's rules) into the current Go type.
func TestDeriveNativePath(t *testing.T) {
	type OrderV1 struct {
		OrderID string `avro:"id"`
		Buyer   string
	}
	type OrderV2 struct {
		OrderID  string  `avro:"id"`
		Customer string  `avro:",alias=buyer"`
		Lines    []Line  `avro:",default"`
		Ship     Address `avro:",default"`
		Due      *time.Time
		Channel  string           `avro:",default=web"`
		At       time.Time        `avro:",default"`
		Deliver  time.Time        `avro:",date,default"`
		Total    float64          `avro:",default=1.5"`
		Counts   map[string]int64 `avro:",default={\"n\": 1}"`
		Note     *string          `avro:",default=none"`
	}
	name := schema.Name("shop.Order")
	v1, v2 := schema.MustDerive[OrderV1](name), schema.MustDerive[OrderV2](name)
	if err := schema.CheckBackward(v1, v2); err != nil {
		t.Fatal(err)
	}
	reg := schema.NewRegistry()
	old := schema.MustCodec[OrderV1](reg, v1)
	cur := schema.MustCodec[OrderV2](reg, v2)
	if err := cur.CheckCompatible(); err != nil {
		t.Fatal(err)
	}
	data, err := old.Encode(OrderV1{OrderID: "o-9", Buyer: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cur.Decode(v1.Fingerprint(), data)
	if err != nil {
		t.Fatal(err)
	}
	if !got.At.IsZero() || !got.Deliver.IsZero() {
		t.Errorf("the zero-value time defaults read as %v and %v", got.At, got.Deliver)
	}
	got.At, got.Deliver = time.Time{}, time.Time{}
	none := "none"
	want := OrderV2{OrderID: "o-9", Customer: "bob", Lines: []Line{}, Channel: "web", Total: 1.5,
		Counts: map[string]int64{"n": 1}, Note: &none}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("v1 read as v2:\n got %+v\nwant %+v", got, want)
	}
}

// TestDeriveEvolution: a field added with a default is compatible with the old schema;
// without one it is not, and the check names the field.
func TestDeriveEvolution(t *testing.T) {
	type AccountV1 struct {
		Owner string
	}
	type AccountV2 struct {
		Owner    string
		Currency string `avro:",default=EUR"`
		Limit    int64  `avro:",default"`
		Nick     *string
	}
	type AccountV3 struct {
		Owner  string
		Branch string
	}
	name := schema.Name("bank.Account")
	v1, v2, v3 := schema.MustDerive[AccountV1](name), schema.MustDerive[AccountV2](name), schema.MustDerive[AccountV3](name)
	if err := schema.CheckBackward(v1, v2); err != nil {
		t.Errorf("a field added with a default: %v", err)
	}
	err := schema.CheckBackward(v1, v3)
	var ie *schema.IncompatibleError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), `field "branch" added without a default`) {
		t.Errorf("a field added without a default: %v", err)
	}
	reg := schema.NewRegistry()
	reg.Add(v1)
	if err := reg.CheckCompatible(v2); err != nil {
		t.Errorf("registry: %v", err)
	}
	if err := reg.CheckCompatible(v3); !errors.Is(err, schema.ErrIncompatible) {
		t.Errorf("registry accepted v3: %v", err)
	}
	// The fingerprint ignores defaults: it is the encoding's.
	type AccountV2NoDefaults struct {
		Owner    string
		Currency string
		Limit    int64
		Nick     *string
	}
	sameSchema(t, schema.MustDerive[AccountV2NoDefaults](name), v2)
}

// TestDeriveFieldNames: fields are named and chosen as bind.go binds them.
func TestDeriveFieldNames(t *testing.T) {
	type Inner struct{ InnerField string }
	type inner struct{ Hidden string }
	type Names struct {
		Inner             // flattened
		inner             // flattened too: its exported fields are bound
		AccountID  string // accountID
		ID         string // id
		URLPath    string // urlPath
		Renamed    string `avro:"other"`
		Skipped    string `avro:"-"`
		private    string
		Tagged     Inner       `avro:"tagged"`
		PtrEmbed   *Inner      `avro:",default=null"`
		Options    string      `avro:"opt,default=a,b"` // default= takes the rest
		Quoted     string      `avro:",default=\"q\""`
		ByteString []byte      `avro:",default=\"\\u00ff\""`
		Times      []time.Time `avro:",timestamp-micros"`
	}
	s, err := schema.Derive[Names](schema.Namespace("t"))
	if err != nil {
		t.Fatal(err)
	}
	want := schema.MustParse(`{"type":"record","name":"t.Names","fields":[
		{"name":"innerField","type":"string"},
		{"name":"hidden","type":"string"},
		{"name":"accountID","type":"string"},
		{"name":"id","type":"string"},
		{"name":"urlPath","type":"string"},
		{"name":"other","type":"string"},
		{"name":"tagged","type":{"type":"record","name":"Inner","fields":[{"name":"innerField","type":"string"}]}},
		{"name":"ptrEmbed","type":["null","Inner"],"default":null},
		{"name":"opt","type":"string","default":"a,b"},
		{"name":"quoted","type":"string","default":"q"},
		{"name":"byteString","type":"bytes","default":"\u00ff"},
		{"name":"times","type":{"type":"array","items":{"type":"long","logicalType":"timestamp-micros"}}}]}`)
	sameSchema(t, s, want)
	for _, part := range []string{`"default":"a,b"`, `"default":"q"`, `"default":"\u00ff"`} {
		if !strings.Contains(s.JSON(), part) {
			t.Errorf("JSON %s lacks %s", s.JSON(), part)
		}
	}
	c := schema.MustCodec[Names](nil, s)
	in := Names{Inner: Inner{"i"}, inner: inner{"h"}, AccountID: "a", ID: "b", URLPath: "/", Renamed: "r", Skipped: "gone", private: "p",
		Tagged: Inner{"t"}, ByteString: []byte{1}, Times: []time.Time{time.UnixMicro(5).UTC()}}
	data, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Decode(s.Fingerprint(), data)
	if err != nil {
		t.Fatal(err)
	}
	in.Skipped, in.private = "", ""
	if !reflect.DeepEqual(in, out) {
		t.Errorf("got %+v, want %+v", out, in)
	}
}

type Chan struct{ C chan int }
type Deep struct{ Lines []struct{ X int } }
type Pair[A, B any] struct {
	A A
	B B
}

// TestDeriveErrors: what has no Avro schema is an error naming the Go type and field.
func TestDeriveErrors(t *testing.T) {
	type Inner struct {
		Handler func()
	}
	type Wrapper struct {
		Items []map[string]Inner
	}
	type Money struct{ Cents int64 }
	type Both struct {
		A Money
		C pkgMoney // another Go type named Money
	}
	type Dup struct {
		Amount int64
		Other  int64 `avro:"amount"`
	}
	type Plain struct{ X string }
	e := func(_ *schema.Schema, err error) error { return err }
	x := schema.Name("X") // anonymous structs need a name
	check := func(name string, err error, path string, parts ...string) {
		t.Helper()
		var de *schema.DeriveError
		if !errors.As(err, &de) || !errors.Is(err, schema.ErrDerive) {
			t.Errorf("%s: %v, want a *DeriveError", name, err)
			return
		}
		if de.Path != path {
			t.Errorf("%s: path %q, want %q (%v)", name, de.Path, path, err)
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("%s: %q does not contain %q", name, err, p)
			}
		}
	}
	check("chan", e(schema.Derive[Chan]()), "C", "schema_test.Chan", "chan int")
	check("func, nested", e(schema.Derive[Wrapper]()), "Items[]{}.Handler", "func()")
	check("interface", e(schema.Derive[struct{ V any }](x)), "V", "interface")
	check("event interface", e(schema.Derive[struct{ E kastor.Event }](x)), "E", "interface")
	check("complex", e(schema.Derive[struct{ Z complex128 }](x)), "Z", "complex128")
	check("uint", e(schema.Derive[struct{ N uint32 }](x)), "N", "unsigned")
	check("uint8", e(schema.Derive[struct{ N uint8 }](x)), "N", "unsigned")
	check("int8", e(schema.Derive[struct{ N int8 }](x)), "N", "int8", "int32")
	check("int16", e(schema.Derive[struct{ N int16 }](x)), "N", "int16")
	check("map key", e(schema.Derive[struct{ M map[int]string }](x)), "M", "map keys are strings")
	check("array", e(schema.Derive[struct{ A [3]int }](x)), "A", "use a slice")
	check("unnamed byte array", e(schema.Derive[struct{ A [16]byte }](x)), "A", "named byte array")
	check("anonymous struct field", e(schema.Derive[Deep]()), "Lines[]", "anonymous struct")
	check("anonymous root", e(schema.Derive[struct{ X int }]()), "", "schema.Name")
	check("pointer to pointer", e(schema.Derive[struct{ P **string }](x)), "P", "pointer to a pointer")
	check("pointer to pointer in a slice", e(schema.Derive[struct{ P []**string }](x)), "P[]", "pointer to a pointer")
	check("not a struct", e(schema.Derive[int]()), "", "not a struct")
	check("time root", e(schema.Derive[time.Time]()), "", "not a struct")
	check("same name", e(schema.Derive[Both]()), "C", "Money", "both")
	check("duplicate field", e(schema.Derive[Dup]()), "Other", `"amount"`)
	check("bad field name", e(schema.Derive[struct{ Größe int64 }](x)), "Größe", `avro:"name"`)
	check("bad tag option", e(schema.Derive[struct {
		N int64 `avro:",defualt=1"`
	}](x)), "N", "unknown tag option")
	check("option on the wrong type", e(schema.Derive[struct {
		N int64 `avro:",timestamp-micros"`
	}](x)), "N", "does not apply to Go type int64")
	check("time option", e(schema.Derive[struct {
		T time.Time `avro:",time-millis"`
	}](x)), "T", "does not apply to time.Time")
	check("precision on time", e(schema.Derive[struct {
		T time.Time `avro:",precision=3"`
	}](x)), "T", "does not apply to time.Time")
	check("duration option", e(schema.Derive[struct {
		D time.Duration `avro:",date"`
	}](x)), "D", "does not apply to time.Duration")
	check("decimal without precision", e(schema.Derive[struct{ R big.Rat }](x)), "R", "precision")
	check("scale over precision", e(schema.Derive[struct {
		R big.Rat `avro:",precision=2,scale=3"`
	}](x)), "R", "exceeds")
	check("bad default JSON", e(schema.Derive[struct {
		N int64 `avro:",default=abc"`
	}](x)), "N", "not JSON")
	check("default of the wrong type", e(schema.Derive[struct {
		N int64 `avro:",default=1.5"`
	}](schema.Name("X"))), "", "invalid default", `"n"`)
	check("generic type", e(schema.Derive[Pair[int64, string]]()), "", "schema.Name")
	check("event renamed", e(schema.Derive[bank.Opened](schema.Name("bank.Other"))), "", "EventType")
	check("namespace conflict", e(schema.Derive[bank.Opened](schema.Namespace("shop"))), "", "Namespace")
	check("bad namespace", e(schema.Derive[Plain](schema.Namespace("a-b"))), "", "namespace")
	if _, err := schema.Derive[Pair[int64, string]](schema.Name("t.Pair")); err != nil {
		t.Errorf("a generic type with a name: %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("MustDerive did not panic")
			}
		}()
		schema.MustDerive[Chan]()
	}()
}

type pkgMoney = Money

// TestDeriveTypesErrors: DeriveTypes refuses what Register refuses, naming every failure.
func TestDeriveTypesErrors(t *testing.T) {
	reg := schema.NewRegistry()
	_, err := schema.DeriveTypes[kastor.Event](reg, "event", schema.Of[bank.Opened](), schema.Of[bank.Open]())
	if err == nil || !strings.Contains(err.Error(), "Go type bank.Open is not a kastor.Event") {
		t.Errorf("a command as an event: %v", err)
	}
	_, err = schema.DeriveTypes[any](reg, "event", schema.Of[bank.Opened](), schema.Of[bank.Opened](), schema.Of[Chan](), schema.Member{})
	for _, part := range []string{"Go type bank.Opened is registered twice", "chan int", "schema.Of"} {
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("%v does not contain %q", err, part)
		}
	}
	if !errors.Is(err, schema.ErrDerive) {
		t.Errorf("%v is not ErrDerive", err)
	}
	type Renamed struct{ Owner string }
	_, err = schema.DeriveTypes[any](nil, "event", schema.Of[bank.Opened](), schema.Of[Renamed](schema.Name("bank.AccountOpened")))
	if err == nil || !strings.Contains(err.Error(), "type bank.AccountOpened is registered twice") {
		t.Errorf("two Go types of one name: %v", err)
	}

	// RegisterDerived mixes derived and hand-written schemas in one set.
	evs := schema.NewTypes[kastor.Event](reg, "event")
	if err := schema.Register(evs, schema.MustCodec[bank.Opened](reg, openedSchema)); err != nil {
		t.Fatal(err)
	}
	if err := schema.RegisterDerived[bank.Deposited](evs); err != nil {
		t.Fatal(err)
	}
	if err := schema.RegisterDerived[bank.Deposited](evs); err == nil {
		t.Error("registered a Go type twice")
	}
	if err := schema.RegisterDerived[Chan](evs); !errors.Is(err, schema.ErrDerive) {
		t.Errorf("RegisterDerived of a chan: %v", err)
	}
	if err := schema.RegisterDerived[bank.Open](evs, schema.Namespace("bank")); err == nil {
		t.Error("registered a command as an event")
	}
	if got := len(evs.Schemas()); got != 2 {
		t.Errorf("%d schemas", got)
	}
	_, fp, data, err := evs.Encode(bank.Deposited{Amount: 5})
	if err != nil || fp != depositedSchema.Fingerprint() {
		t.Fatalf("encode: %s, %v", fp, err)
	}
	if v, err := evs.Decode("", fp, data); err != nil || v != (bank.Deposited{Amount: 5}) {
		t.Errorf("decoded %v, %v", v, err)
	}
}

// TestDerivePointerTypes: a family of pointer types, with pointer-receiver methods.
func TestDerivePointerTypes(t *testing.T) {
	evs, err := schema.DeriveTypes[kastor.Event](nil, "event", schema.Of[*ptrEvent]())
	if err != nil {
		t.Fatal(err)
	}
	typ, fp, data, err := evs.Encode(&ptrEvent{N: 3})
	if err != nil || typ != "p.Event" {
		t.Fatalf("%s, %v", typ, err)
	}
	v, err := evs.Decode(typ, fp, data)
	if err != nil || *v.(*ptrEvent) != (ptrEvent{N: 3}) {
		t.Errorf("decoded %v, %v", v, err)
	}
	s := schema.MustDerive[ptrEvent]()
	if s.Name() != "p.Event" {
		t.Errorf("name %s", s.Name())
	}
}

type ptrEvent struct{ N int64 }

func (*ptrEvent) EventType() string { return "p.Event" }
