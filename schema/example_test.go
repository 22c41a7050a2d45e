package schema_test

import (
	"fmt"

	"github.com/kastor-dev/kastor/schema"
)

// A service reads events written by an older version of itself: a field was renamed (by
// an upcaster), one was promoted from int to long, and one was added with a default.
func Example() {
	v1 := schema.MustParse(`{"type":"record","name":"shop.OrderPlaced","fields":[
		{"name":"orderID","type":"string"},
		{"name":"customer","type":"string"},
		{"name":"items","type":"int"}]}`)
	v2 := schema.MustParse(`{"type":"record","name":"shop.OrderPlaced","fields":[
		{"name":"orderID","type":"string"},
		{"name":"buyer","type":"string"},
		{"name":"items","type":"long"},
		{"name":"channel","type":{"type":"enum","name":"Channel","symbols":["WEB","STORE"]},"default":"WEB"}]}`)

	type OrderPlacedV1 struct {
		OrderID  string
		Customer string
		Items    int32
	}
	type OrderPlaced struct {
		OrderID string
		Buyer   string
		Items   int64
		Channel string
	}

	reg := schema.NewRegistry() // in a service: filled by schema.Load from _kastor.schemas
	old := schema.MustCodec[OrderPlacedV1](reg, v1)
	cur := schema.MustCodec[OrderPlaced](reg, v2, schema.Describe("event"))
	err := reg.AddUpcaster(schema.Upcaster{
		Type:        "shop.OrderPlaced",
		Fingerprint: v1.Fingerprint(),
		Func: func(m map[string]any) (map[string]any, error) {
			m["buyer"] = m["customer"]
			return m, nil
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("v2 reads v1:", reg.CheckCompatible(v2) == nil)

	data, _ := old.Encode(OrderPlacedV1{OrderID: "o-1", Customer: "ann", Items: 3})
	ev, err := cur.Decode(v1.Fingerprint(), data) // the fingerprint comes from the kastor.schema header
	fmt.Printf("%+v %v\n", ev, err)

	_, err = cur.Decode(0x1234, data)
	fmt.Println(err)
	// Output:
	// v2 reads v1: true
	// {OrderID:o-1 Buyer:ann Items:3 Channel:WEB} <nil>
	// kastor: cannot decode event shop.OrderPlaced (writer schema 0000000000001234): schema: unknown writer schema 0000000000001234: not in the registry (was it published to _kastor.schemas, and the registry loaded from it?)
}
