package gateway_test

import (
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/kastor-dev/kastor/gateway"
)

// The reply codec is written by hand; goavro, reading the published ReplySchema, is the
// reference it must agree with: on what it encodes, and on every input it decodes or refuses.
var replyReference = func() *goavro.Codec {
	c, err := goavro.NewCodec(gateway.ReplySchema)
	if err != nil {
		panic(err)
	}
	return c
}()

func FuzzReplyCodec(f *testing.F) {
	for _, r := range []gateway.Reply{
		{CommandID: "c1", Status: gateway.StatusOK, AggregateID: "acct-1", From: 1, To: 3},
		{CommandID: "c2", Status: gateway.StatusConflict, Message: "expected 2, is 5", AggregateID: "a", From: 1, Expected: 2, Actual: 5},
		{Status: gateway.StatusRejected, Message: "ünïcode ✓", From: -1, To: -9223372036854775808, Expected: 9223372036854775807},
	} {
		b, err := r.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := gateway.DecodeReply(b)
		native, rest, refErr := replyReference.NativeFromBinary(b)
		if refErr == nil && len(rest) > 0 {
			refErr = errTrailing
		}
		if err != nil && refErr == nil && strings.Contains(err.Error(), "over 64 bits") {
			return // stricter than goavro, which drops a varint's bits beyond 64
		}
		if (err == nil) != (refErr == nil) {
			t.Fatalf("DecodeReply(%x): err %v, goavro: %v", b, err, refErr)
		}
		if err != nil {
			return
		}
		m := native.(map[string]any)
		want := gateway.Reply{
			CommandID: m["commandId"].(string), Status: gateway.Status(m["status"].(string)), Message: m["message"].(string),
			AggregateID: m["aggregateId"].(string), From: m["from"].(int64), To: m["to"].(int64),
			Expected: m["expected"].(int64), Actual: m["actual"].(int64),
		}
		if got != want {
			t.Fatalf("DecodeReply(%x) = %+v, goavro reads %+v", b, got, want)
		}
		// What the gateway writes, goavro reads back the same.
		enc, err := got.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, _, err := replyReference.NativeFromBinary(enc)
		if err != nil {
			t.Fatalf("goavro cannot read Encode(%+v): %v", got, err)
		}
		if bm := back.(map[string]any); bm["commandId"] != got.CommandID || bm["message"] != got.Message ||
			bm["from"] != got.From || bm["to"] != got.To || bm["expected"] != got.Expected || bm["actual"] != got.Actual {
			t.Fatalf("goavro reads Encode(%+v) as %v", got, bm)
		}
	})
}

type trailingError struct{}

func (trailingError) Error() string { return "trailing bytes" }

var errTrailing = trailingError{}

// BenchmarkReplyEncode is the reply the gateway writes for every command, beside goavro
// encoding the same reply from its generic map.
func BenchmarkReplyEncode(b *testing.B) {
	r := gateway.Reply{CommandID: "0b9a6f43-8c52-4e0e-9a47-5f3c0c1e2d7a", Status: gateway.StatusOK, AggregateID: "acct-000042", From: 17, To: 17}
	b.Run("kastor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := replyReference.BinaryFromNative(nil, map[string]any{
				"commandId": r.CommandID, "status": string(r.Status), "message": r.Message,
				"aggregateId": r.AggregateID, "from": r.From, "to": r.To, "expected": r.Expected, "actual": r.Actual,
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
