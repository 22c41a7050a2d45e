package schema

import (
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// BenchmarkCodec measures a typical event (AccountOpened v2: strings, numbers, an enum,
// a timestamp, a map, optional fields and an optional nested record) through Codec[T]
// beside raw goavro on the same schema (the peer: BinaryFromNative from a ready native
// map, NativeFromBinary to one), in the same run. Codec[T] adds the binding to a Go struct
// and, on decode, the length check of the input; "decode-v1" adds upcasting and
// resolution from the older schema.
func BenchmarkCodec(b *testing.B) {
	v1, v2 := MustParse(openedV1), MustParse(openedV2)
	reg := NewRegistry()
	old := MustCodec[OpenedV1](reg, v1)
	c := MustCodec[AccountOpened](reg, v2)
	if err := reg.AddUpcaster(Upcaster{Type: "bank.AccountOpened", Fingerprint: v1.Fingerprint(), Func: renameOwner}); err != nil {
		b.Fatal(err)
	}
	ev := AccountOpened{AccountID: "acct-000123", Holder: "Ann Example", Initial: 10_000, Rate: 0.0125,
		Currency: "EUR", Note: ptr("opened at the counter"), OpenedAt: time.UnixMilli(1_764_150_000_000).UTC(),
		Tags: map[string]string{"channel": "branch"}, Address: &Address{Street: "1 Main St", City: "Springfield"}}
	data, err := c.Encode(ev)
	if err != nil {
		b.Fatal(err)
	}
	dataV1, err := old.Encode(OpenedV1{AccountID: "acct-000123", Owner: "Ann Example", Initial: 10_000, Rate: 0.0125, Currency: "EUR", Note: ptr("opened at the counter")})
	if err != nil {
		b.Fatal(err)
	}
	peer, err := goavro.NewCodec(openedV2)
	if err != nil {
		b.Fatal(err)
	}
	native, _, err := peer.NativeFromBinary(data)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 256)

	b.Run("encode/kastor", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.AppendEncode(buf[:0], ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/goavro-peer", func(b *testing.B) {
		for b.Loop() {
			if _, err := peer.BinaryFromNative(buf[:0], native); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/kastor", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Decode(v2.Fingerprint(), data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/goavro-peer", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := peer.NativeFromBinary(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-v1/kastor", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Decode(v1.Fingerprint(), dataV1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
