package schema_test

import (
	"fmt"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/schema"
)

// A shopping cart's events: plain Go types, no hand-written Avro.
type (
	ItemAdded struct {
		CartID   string
		SKU      string `avro:"sku"`
		Quantity int32
		AddedAt  time.Time
		Note     *string // optional: ["null","string"], default null
		Channel  string  `avro:",default=web"` // added later: it needs a default
	}
	CartCheckedOut struct {
		CartID string
	}
)

func (ItemAdded) EventType() string      { return "shop.ItemAdded" }
func (CartCheckedOut) EventType() string { return "shop.CartCheckedOut" }

// The schema derived from a Go type is the one written by hand: same canonical form, same
// fingerprint.
func ExampleDerive() {
	s, err := schema.Derive[ItemAdded]()
	if err != nil {
		panic(err)
	}
	fmt.Println(s.JSON())

	hand := schema.MustParse(`{"type":"record","name":"ItemAdded","namespace":"shop","fields":[
		{"name":"cartID","type":"string"},
		{"name":"sku","type":"string"},
		{"name":"quantity","type":"int"},
		{"name":"addedAt","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"note","type":["null","string"],"default":null},
		{"name":"channel","type":"string","default":"web"}]}`)
	fmt.Println(s.Fingerprint() == hand.Fingerprint(), s.Fingerprint())
	// Output:
	// {"type":"record","name":"ItemAdded","namespace":"shop","fields":[{"name":"cartID","type":"string"},{"name":"sku","type":"string"},{"name":"quantity","type":"int"},{"name":"addedAt","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"note","type":["null","string"],"default":null},{"name":"channel","type":"string","default":"web"}]}
	// true de873b08309232fc
}

// An aggregate's events registered from their Go types alone. At startup a service would
// then call schema.Publish(ctx, client, reg, events.Schemas()...).
func ExampleDeriveTypes() {
	reg := schema.NewRegistry() // in a service: filled by schema.Load from _kastor.schemas
	events, err := schema.DeriveTypes[kastor.Event](reg, "event",
		schema.Of[ItemAdded](), schema.Of[CartCheckedOut]())
	if err != nil {
		panic(err)
	}
	for _, s := range events.Schemas() {
		fmt.Println(s.Name())
	}

	in := ItemAdded{CartID: "c-1", SKU: "tea", Quantity: 2, AddedAt: time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC), Channel: "app"}
	typ, fp, data, err := events.Encode(in) // typ and fp go in the record's headers
	if err != nil {
		panic(err)
	}
	out, err := events.Decode(typ, fp, data)
	fmt.Printf("%s: %+v %v\n", typ, out, err)
	// Output:
	// shop.CartCheckedOut
	// shop.ItemAdded
	// shop.ItemAdded: {CartID:c-1 SKU:tea Quantity:2 AddedAt:2026-05-01 09:30:00 +0000 UTC Note:<nil> Channel:app} <nil>
}
