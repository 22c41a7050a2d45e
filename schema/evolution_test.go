package schema

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
)

// TestEvolution writes events with v1 and reads them with code built for v2.
func TestEvolution(t *testing.T) {
	v1, v2 := MustParse(openedV1), MustParse(openedV2)
	reg := NewRegistry()
	w := MustCodec[OpenedV1](reg, v1)
	r := MustCodec[AccountOpened](reg, v2, Describe("event"))

	old := OpenedV1{AccountID: "acct-1", Owner: "ann", Initial: -42, Rate: 1.5, Currency: "USD", Note: ptr("first"), LegacyCode: "X9"}
	data, err := w.Encode(old)
	if err != nil {
		t.Fatal(err)
	}

	// Without the upcaster, v2 cannot read v1: holder is new and has no default.
	_, err = r.Decode(v1.Fingerprint(), data)
	if !errors.Is(err, kastor.ErrUndecodable) || !errors.Is(err, ErrIncompatible) {
		t.Fatalf("decode without upcaster: %v, want undecodable and incompatible", err)
	}
	wantErrContains(t, err, `field "holder" added without a default`, "bank.AccountOpened", v1.Fingerprint().String())
	if err := reg.CheckCompatible(v2); err == nil {
		t.Fatal("v2 is compatible with v1 without the upcaster")
	}

	if err := reg.AddUpcaster(Upcaster{Type: "bank.AccountOpened", Fingerprint: v1.Fingerprint(), Func: renameOwner}); err != nil {
		t.Fatal(err)
	}
	if err := reg.CheckCompatible(v2); err != nil {
		t.Fatalf("v2 with the upcaster: %v", err)
	}
	got, err := r.Decode(v1.Fingerprint(), data)
	if err != nil {
		t.Fatal(err)
	}
	want := AccountOpened{
		AccountID: "acct-1",
		Holder:    "ann",                   // upcaster rename
		Initial:   -42,                     // int -> long
		Rate:      1.5,                     // float -> double
		Currency:  "USD",                   // enum with a symbol added
		Note:      ptr("first"),            // union widened
		OpenedAt:  time.UnixMilli(0).UTC(), // added, default
		Tags:      map[string]string{},     // added, default
		Address:   nil,                     // added, default null
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read v1 as v2:\n got %+v\nwant %+v", got, want)
	}

	// v2 data reads back as itself.
	cur := AccountOpened{AccountID: "acct-2", Holder: "bob", Initial: 1 << 40, Rate: 0.25, Currency: "GBP",
		OpenedAt: time.UnixMilli(1_700_000_000_123).UTC(), Tags: map[string]string{"vip": "yes"},
		Address: &Address{Street: "1 Main St", City: "Springfield", Zip: ptr("12345")}}
	data2, err := r.Encode(cur)
	if err != nil {
		t.Fatal(err)
	}
	back, err := r.Decode(v2.Fingerprint(), data2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, cur) {
		t.Errorf("v2 round trip:\n got %+v\nwant %+v", back, cur)
	}
}

// TestEvolutionUpcasterToIntermediate uses an upcaster whose output follows an
// intermediate schema (v1 with the field renamed), which Avro resolution then takes to v2.
func TestEvolutionUpcasterToIntermediate(t *testing.T) {
	v1, v2 := MustParse(openedV1), MustParse(openedV2)
	v1b := MustParse(`{"type":"record","name":"AccountOpened","namespace":"bank","fields":[
		{"name":"accountID","type":"string"},{"name":"holder","type":"string"},
		{"name":"initial","type":"int"},{"name":"rate","type":"float"},
		{"name":"currency","type":{"type":"enum","name":"Currency","symbols":["EUR","USD"]}},
		{"name":"note","type":["null","string"],"default":null}]}`)
	reg := NewRegistry()
	w := MustCodec[OpenedV1](reg, v1)
	r := MustCodec[AccountOpened](reg, v2)
	if err := reg.AddUpcaster(Upcaster{Type: "bank.AccountOpened", Fingerprint: v1.Fingerprint(), Func: renameOwner, To: v1b}); err != nil {
		t.Fatal(err)
	}
	data, _ := w.Encode(OpenedV1{AccountID: "a", Owner: "zoe", Initial: 7, Rate: 2, Currency: "EUR"})
	got, err := r.Decode(v1.Fingerprint(), data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Holder != "zoe" || got.Initial != 7 || got.Rate != 2 || got.Note != nil {
		t.Errorf("got %+v", got)
	}
	if err := reg.CheckCompatible(v2); err != nil {
		t.Errorf("CheckCompatible with the upcaster: %v", err)
	}
}

// TestTypeRename reads events of a type that was renamed (AccountCreated became
// AccountOpened) through a renaming upcaster, and dispatches them to the new Go type.
func TestTypeRename(t *testing.T) {
	created := MustParse(`{"type":"record","name":"AccountCreated","namespace":"bank","fields":[
		{"name":"accountID","type":"string"},{"name":"holder","type":"string"},
		{"name":"initial","type":"long"},{"name":"rate","type":"double"},
		{"name":"currency","type":{"type":"enum","name":"Currency","symbols":["EUR","USD"]}}]}`)
	type AccountCreated struct {
		AccountID, Holder string
		Initial           int64
		Rate              float64
		Currency          Currency
	}
	v2 := MustParse(openedV2)
	reg := NewRegistry()
	old := MustCodec[AccountCreated](reg, created)
	data, err := old.Encode(AccountCreated{AccountID: "a", Holder: "h", Initial: 5, Rate: 1, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	events := NewTypes[kastor.Event](reg, "event")
	if err := Register(events, MustCodec[AccountOpened](reg, v2)); err != nil {
		t.Fatal(err)
	}
	if _, err := events.Decode("bank.AccountCreated", created.Fingerprint(), data); err == nil {
		t.Fatal("decoded a renamed type without its upcaster")
	} else {
		wantErrContains(t, err, "no Go type is registered for bank.AccountCreated")
	}
	if err := reg.CheckCompatible(v2); err != nil {
		t.Fatalf("before the rename is declared, AccountCreated is another type: %v", err)
	}
	if err := reg.AddUpcaster(Upcaster{Type: "bank.AccountCreated", Rename: "bank.AccountOpened"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.CheckCompatible(v2); err != nil {
		t.Fatalf("AccountOpened reads AccountCreated data: %v", err)
	}
	ev, err := events.Decode("bank.AccountCreated", created.Fingerprint(), data)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := ev.(AccountOpened)
	if !ok || got.Holder != "h" || got.Initial != 5 || got.Currency != "USD" {
		t.Errorf("got %#v", ev)
	}
}

// TestIncompatibleV3 checks that a breaking version is refused, naming the fields.
func TestIncompatibleV3(t *testing.T) {
	v1, v2, v3 := MustParse(openedV1), MustParse(openedV2), MustParse(openedV3)
	err := CheckBackward(v2, v3)
	var ie *IncompatibleError
	if !errors.As(err, &ie) || !errors.Is(err, ErrIncompatible) {
		t.Fatalf("CheckBackward(v2, v3) = %v, want *IncompatibleError", err)
	}
	wantErrContains(t, err,
		`field "initial": type changed from long to int (not a promotion)`,
		`field "branch" added without a default`,
		"bank.AccountOpened")
	if len(ie.Problems) != 2 || ie.Problems[0].Path != "initial" || ie.Problems[1].Path != "branch" {
		t.Errorf("problems %+v", ie.Problems)
	}
	// The history check reads every earlier version: v3 cannot read v1 either.
	reg := NewRegistry()
	reg.Add(v1, v2)
	err = reg.CheckCompatible(v3)
	wantErrContains(t, err, v1.Fingerprint().String(), v2.Fingerprint().String(),
		`field "holder" added without a default`, `field "branch" added without a default`)
	// An upcaster whose output follows the reader schema is trusted for its writer schema;
	// v2 is still checked.
	if err := reg.AddUpcaster(Upcaster{Type: "bank.AccountOpened", Fingerprint: v1.Fingerprint(), Func: renameOwner}); err != nil {
		t.Fatal(err)
	}
	err = reg.CheckCompatible(v3)
	wantErrContains(t, err, v2.Fingerprint().String(), `field "branch" added without a default`)
	if err := CheckHistory([]*Schema{v2}, v2); err != nil {
		t.Errorf("a schema against itself: %v", err)
	}
}

// TestEvolutionRules covers single rules of resolution one by one, each with a value.
func TestEvolutionRules(t *testing.T) {
	rec := func(fields string) string {
		return `{"type":"record","name":"R","namespace":"t","fields":[` + fields + `]}`
	}
	cases := []struct {
		name         string
		w, r         string
		in           map[string]any
		want         map[string]any
		incompatible string
	}{
		{"enum default used for an unknown symbol",
			rec(`{"name":"c","type":{"type":"enum","name":"C","symbols":["A","B","Z"]}}`),
			rec(`{"name":"c","type":{"type":"enum","name":"C","symbols":["A","B","OTHER"],"default":"OTHER"}}`),
			map[string]any{"c": "Z"}, map[string]any{"c": "OTHER"}, ""},
		{"enum symbol removed without default",
			rec(`{"name":"c","type":{"type":"enum","name":"C","symbols":["A","B","Z"]}}`),
			rec(`{"name":"c","type":{"type":"enum","name":"C","symbols":["A","B"]}}`),
			map[string]any{"c": "A"}, map[string]any{"c": "A"}, `field "c": enum t.C lost symbol "Z" and has no default`},
		{"union branch cannot be read",
			rec(`{"name":"v","type":["null","string"]}`),
			rec(`{"name":"v","type":["null","long"]}`),
			map[string]any{"v": nil}, map[string]any{"v": nil}, `field "v": type changed from string to [null, long]`},
		{"field renamed by alias",
			rec(`{"name":"owner","type":"string"}`),
			rec(`{"name":"holder","type":"string","aliases":["owner"]}`),
			map[string]any{"owner": "x"}, map[string]any{"holder": "x"}, ""},
		{"fixed size changed",
			rec(`{"name":"h","type":{"type":"fixed","name":"H","size":2}}`),
			rec(`{"name":"h","type":{"type":"fixed","name":"H","size":3}}`),
			nil, nil, `field "h": fixed t.H size changed from 2 to 3`},
		{"nested field path",
			rec(`{"name":"a","type":{"type":"record","name":"A","fields":[{"name":"lines","type":{"type":"array","items":{"type":"record","name":"L","fields":[{"name":"qty","type":"double"}]}}}]}}`),
			rec(`{"name":"a","type":{"type":"record","name":"A","fields":[{"name":"lines","type":{"type":"array","items":{"type":"record","name":"L","fields":[{"name":"qty","type":"float"}]}}}]}}`),
			nil, nil, `field "a.lines[].qty": type changed from double to float (not a promotion)`},
		{"decimal scale changed",
			rec(`{"name":"m","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}}`),
			rec(`{"name":"m","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":4}}`),
			nil, nil, `field "m": decimal scale changed from 2 to 4 (the stored unscaled values would be read 100 times smaller)`},
		{"logical type added",
			rec(`{"name":"at","type":"long"}`),
			rec(`{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}`),
			map[string]any{"at": int64(1500)}, map[string]any{"at": time.UnixMilli(1500).UTC()}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, r := MustParse(c.w), MustParse(c.r)
			err := CheckBackward(w, r)
			if c.incompatible == "" && err != nil {
				t.Fatalf("CheckBackward: %v", err)
			}
			if c.incompatible != "" {
				wantErrContains(t, err, c.incompatible)
			}
			if c.in == nil {
				return
			}
			data, err := w.Codec().BinaryFromNative(nil, c.in)
			if err != nil {
				t.Fatal(err)
			}
			reg := NewRegistry()
			reg.Add(w)
			codec := MustCodec[map[string]any](reg, r)
			got, err := codec.Decode(w.Fingerprint(), data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %#v, want %#v", got, c.want)
			}
		})
	}
}

// TestCodecConcurrent decodes from several goroutines while upcasters are added, for the
// race detector: plans are cached per writer and rebuilt when upcasters change.
func TestCodecConcurrent(t *testing.T) {
	v1, v2 := MustParse(openedV1), MustParse(openedV2)
	reg := NewRegistry()
	w := MustCodec[OpenedV1](reg, v1)
	r := MustCodec[AccountOpened](reg, v2)
	old, _ := w.Encode(OpenedV1{AccountID: "a", Owner: "o", Currency: "EUR"})
	cur, _ := r.Encode(AccountOpened{AccountID: "b", Holder: "h", Currency: "GBP", Tags: map[string]string{}})
	done := make(chan struct{})
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				if v, err := r.Decode(v2.Fingerprint(), cur); err != nil || v.Holder != "h" {
					errs <- fmt.Errorf("current: %+v %v", v, err)
					return
				}
				if v, err := r.Decode(v1.Fingerprint(), old); err == nil && v.Holder != "o" {
					errs <- fmt.Errorf("old: %+v", v)
					return
				}
			}
		}()
	}
	if err := reg.AddUpcaster(Upcaster{Type: "bank.AccountOpened", Fingerprint: v1.Fingerprint(), Func: renameOwner}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Decode(v1.Fingerprint(), old); err != nil {
		t.Errorf("after the upcaster was added: %v", err)
	}
	close(done)
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
