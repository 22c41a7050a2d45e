package schema

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

func TestDecodeErrors(t *testing.T) {
	v2 := MustParse(openedV2)
	reg := NewRegistry()
	c := MustCodec[AccountOpened](reg, v2, Describe("event"))
	good, err := c.Encode(AccountOpened{AccountID: "a", Holder: "h", Currency: "EUR", Tags: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	undecodable := func(t *testing.T, err error, sentinel error, parts ...string) *kastor.UndecodableError {
		t.Helper()
		var ue *kastor.UndecodableError
		if !errors.As(err, &ue) || !errors.Is(err, kastor.ErrUndecodable) {
			t.Fatalf("error %v is not a *kastor.UndecodableError", err)
		}
		if !errors.Is(err, sentinel) {
			t.Errorf("error %v does not match %v", err, sentinel)
		}
		if ue.What != "event" {
			t.Errorf("What = %q", ue.What)
		}
		wantErrContains(t, err, parts...)
		return ue
	}

	t.Run("unknown fingerprint", func(t *testing.T) {
		_, err := c.Decode(0x0123456789abcdef, good)
		ue := undecodable(t, err, ErrUnknownSchema, "0123456789abcdef", "not in the registry", Topic)
		if ue.Fingerprint != 0x0123456789abcdef {
			t.Errorf("Fingerprint = %x", ue.Fingerprint)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		_, err := c.Decode(v2.Fingerprint(), good[:len(good)-1])
		undecodable(t, err, ErrMalformed, "malformed Avro", "bank.AccountOpened", v2.Fingerprint().String())
	})
	t.Run("trailing bytes", func(t *testing.T) {
		_, err := c.Decode(v2.Fingerprint(), append(append([]byte{}, good...), 0))
		undecodable(t, err, ErrMalformed, "1 trailing bytes")
	})
	t.Run("empty", func(t *testing.T) {
		_, err := c.Decode(v2.Fingerprint(), nil)
		undecodable(t, err, ErrMalformed, "truncated")
	})
	t.Run("bad enum index", func(t *testing.T) {
		// accountID "a", holder "h", initial 0, rate 0.0, currency index 7
		data := []byte{2, 'a', 2, 'h', 0, 0, 0, 0, 0, 0, 0, 0, 0, 14}
		_, err := c.Decode(v2.Fingerprint(), data)
		undecodable(t, err, ErrMalformed, "enum bank.Currency index 7 out of range")
	})
	t.Run("missing headers", func(t *testing.T) {
		_, err := c.DecodeHeaders(nil, good)
		undecodable(t, err, ErrMissingHeader, "no kastor.schema header")
	})
	t.Run("bad schema header", func(t *testing.T) {
		_, err := c.DecodeHeaders([]kgo.RecordHeader{{Key: HeaderSchema, Value: []byte("xyz")}}, good)
		undecodable(t, err, ErrBadHeader, `kastor.schema header "xyz"`)
	})
	t.Run("type header mismatch", func(t *testing.T) {
		h := []kgo.RecordHeader{{Key: HeaderType, Value: []byte("bank.Other")}, {Key: HeaderSchema, Value: []byte(v2.Fingerprint().String())}}
		_, err := c.DecodeHeaders(h, good)
		undecodable(t, err, ErrBadHeader, `"bank.Other" does not match the writer schema bank.AccountOpened`)
	})
	t.Run("record location", func(t *testing.T) {
		r := &kgo.Record{Topic: "bank.account.events", Partition: 3, Offset: 42, Value: good[:3], Headers: c.Headers()}
		_, err := c.DecodeRecord(r)
		ue := undecodable(t, err, ErrMalformed, "at bank.account.events/3@42")
		if ue.Offset != 42 || ue.Partition != 3 {
			t.Errorf("location %s/%d@%d", ue.Topic, ue.Partition, ue.Offset)
		}
	})
	t.Run("headers round trip", func(t *testing.T) {
		r := &kgo.Record{Value: good, Headers: c.Headers()}
		v, err := c.DecodeRecord(r)
		if err != nil || v.AccountID != "a" {
			t.Fatalf("%+v %v", v, err)
		}
		typ, fp, err := ReadHeaders(c.Headers())
		if err != nil || typ != "bank.AccountOpened" || fp != v2.Fingerprint() {
			t.Errorf("ReadHeaders = %q %s %v", typ, fp, err)
		}
	})
}

// TestHostileLengths feeds lengths goavro would trust: an array block count of 2^31-1
// makes goavro preallocate 32 GiB before reading an item. kastor must refuse such input
// without allocating in proportion to the claimed length.
func TestHostileLengths(t *testing.T) {
	type tc struct {
		schema string
		data   []byte
		msg    string
	}
	maxCount := []byte{0xfe, 0xff, 0xff, 0xff, 0x0f} // zigzag varint of 2^31-1
	cases := map[string]tc{
		"array of longs":   {`{"type":"array","items":"long"}`, maxCount, "cannot fit"},
		"map of strings":   {`{"type":"map","values":"string"}`, maxCount, "cannot fit"},
		"array of nulls":   {`{"type":"array","items":"null"}`, append(append([]byte{}, maxCount...), 0), "items that take no bytes"},
		"empty records":    {`{"type":"array","items":{"type":"record","name":"E","fields":[]}}`, append(append([]byte{}, maxCount...), 0), "items that take no bytes"},
		"negative count":   {`{"type":"array","items":"long"}`, []byte{0x01, 0x00}, "cannot fit"},
		"min int64 count":  {`{"type":"array","items":"long"}`, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "block count"},
		"huge bytes":       {`"bytes"`, maxCount, "length 2147483647"},
		"overlong varint":  {`"long"`, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, "varint"},
		"int overflow":     {`"int"`, []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, "overflows 32 bits"},
		"bad boolean":      {`"boolean"`, []byte{2}, "neither 0 nor 1"},
		"bad union branch": {`["null","int"]`, []byte{4}, "union branch 2 out of range"},
	}
	// A linked list nested past the depth limit: each level is one byte.
	deep := make([]byte, 0, 2*DefaultLimits.MaxDepth+2)
	for range DefaultLimits.MaxDepth + 1 {
		deep = append(deep, 2) // union branch 1: another node
	}
	deep = append(deep, 0)
	cases["deep recursion"] = tc{`{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}`, deep, "nesting deeper than"}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := MustParse(c.schema)
			reg := NewRegistry()
			reg.Add(s)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := reg.DecodeNative(s.Fingerprint(), c.data, Limits{})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want ErrMalformed mentioning %q", err, c.msg)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("allocated %d bytes refusing %d bytes of input", grew, len(c.data))
			}
		})
	}
	// Within the limits, the same shapes decode.
	s := MustParse(`{"type":"array","items":"null"}`)
	reg := NewRegistry()
	reg.Add(s)
	v, _, err := reg.DecodeNative(s.Fingerprint(), []byte{6, 0}, Limits{})
	if err != nil || len(v.([]any)) != 3 {
		t.Errorf("three nulls: %v %v", v, err)
	}
	if _, _, err := reg.DecodeNative(s.Fingerprint(), []byte{6, 0}, Limits{MaxZeroByteItems: 2}); !errors.Is(err, ErrMalformed) {
		t.Errorf("MaxZeroByteItems 2 accepted 3 nulls: %v", err)
	}
	if _, _, err := reg.DecodeNative(s.Fingerprint(), []byte{6, 0}, Limits{MaxBytes: 1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("MaxBytes 1 accepted 2 bytes: %v", err)
	}
}
