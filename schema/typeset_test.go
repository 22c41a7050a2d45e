package schema

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

type Deposited struct {
	AccountID string
	Amount    int64
}

func (Deposited) EventType() string { return "bank.Deposited" }

type Misnamed struct{ AccountID string }

func (Misnamed) EventType() string { return "bank.SomethingElse" }

const depositedSchema = `{"type":"record","name":"Deposited","namespace":"bank","fields":[{"name":"accountID","type":"string"},{"name":"amount","type":"long"}]}`

func TestTypes(t *testing.T) {
	reg := NewRegistry()
	events := NewTypes[kastor.Event](reg, "event")
	if err := Register(events, MustCodec[AccountOpened](reg, MustParse(openedV2))); err != nil {
		t.Fatal(err)
	}
	if err := Register(events, MustCodec[Deposited](reg, MustParse(depositedSchema))); err != nil {
		t.Fatal(err)
	}
	in := []kastor.Event{
		AccountOpened{AccountID: "a", Holder: "h", Currency: "EUR", Tags: map[string]string{}},
		Deposited{AccountID: "a", Amount: 100},
	}
	for _, e := range in {
		typ, fp, data, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if typ != e.EventType() {
			t.Errorf("type %q for %T", typ, e)
		}
		s, _ := events.Schema(typ)
		r := &kgo.Record{Value: data, Headers: Headers(s)}
		if s.Fingerprint() != fp {
			t.Errorf("fingerprint %s, schema %s", fp, s.Fingerprint())
		}
		out, err := events.DecodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := out.(Deposited); ok && d != e {
			t.Errorf("got %+v, want %+v", out, e)
		}
		if _, ok := out.(AccountOpened); ok != (typ == "bank.AccountOpened") {
			t.Errorf("%T decoded as %T", e, out)
		}
	}

	// Errors.
	if _, _, _, err := events.Encode(Misnamed{}); err == nil {
		t.Error("encoded an unregistered Go type")
	}
	if err := Register(events, MustCodec[Misnamed](reg, MustParse(`{"type":"record","name":"bank.Misnamed","fields":[{"name":"accountID","type":"string"}]}`))); err == nil {
		t.Error("registered a type whose EventType differs from its schema name")
	}
	if err := Register(events, MustCodec[Deposited](reg, MustParse(depositedSchema))); err == nil {
		t.Error("registered a type twice")
	}
	if err := Register(events, MustCodec[Deposited](NewRegistry(), MustParse(depositedSchema))); err == nil {
		t.Error("registered a codec of another registry")
	}
	_, err := events.DecodeRecord(&kgo.Record{Topic: "x", Offset: 9, Value: []byte{0}})
	var ue *kastor.UndecodableError
	if !errors.As(err, &ue) || !errors.Is(err, ErrMissingHeader) || ue.Offset != 9 || ue.What != "event" {
		t.Errorf("no headers: %v", err)
	}
	if _, err := events.Decode("", 99, nil); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("unknown fingerprint: %v", err)
	}
	reg.Add(MustParse(`{"type":"record","name":"bank.Closed","fields":[]}`))
	closed := MustParse(`{"type":"record","name":"bank.Closed","fields":[]}`)
	if _, err := events.Decode("bank.Closed", closed.Fingerprint(), nil); err == nil || !errors.Is(err, kastor.ErrUndecodable) {
		t.Errorf("a type without a Go type: %v", err)
	} else {
		wantErrContains(t, err, "no Go type is registered for bank.Closed")
	}
}
