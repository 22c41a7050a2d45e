package schema

import (
	"reflect"
	"testing"
)

func TestRegistryHistory(t *testing.T) {
	v1, v2 := MustParse(openedV1), MustParse(openedV2)
	other := MustParse(`{"type":"enum","name":"bank.Currency","symbols":["EUR"]}`)
	reg := NewRegistry()
	reg.Add(v2) // a codec adds its own schema before the topic is loaded
	reg.addPublished(v1)
	reg.addPublished(v2)
	reg.Add(other, v2) // adding again changes nothing
	if got := reg.History("bank.AccountOpened"); !reflect.DeepEqual(got, []*Schema{v1, v2}) {
		t.Errorf("History = %v, want v1 then v2 (published order)", got)
	}
	if s, ok := reg.Latest("bank.AccountOpened"); !ok || s != v2 {
		t.Errorf("Latest = %v", s)
	}
	if s, ok := reg.Schema(v1.Fingerprint()); !ok || s != v1 {
		t.Errorf("Schema(v1) = %v", s)
	}
	if _, ok := reg.Schema(1); ok {
		t.Error("Schema(1) found")
	}
	if got := reg.Schemas(); len(got) != 3 || got[0] != v1 || got[2] != other {
		t.Errorf("Schemas = %v", got)
	}
	// A schema with a known fingerprint keeps the first one's text.
	v2doc := MustParse(`{"doc":"same shape","type":"record","name":"AccountOpened","namespace":"bank","fields":[
		{"name":"accountID","type":"string"},{"name":"holder","type":"string"},{"name":"initial","type":"long"},
		{"name":"rate","type":"double"},{"name":"currency","type":{"type":"enum","name":"Currency","symbols":["EUR","USD","GBP"]}},
		{"name":"note","type":["null","string","long"],"default":null},
		{"name":"openedAt","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},
		{"name":"tags","type":{"type":"map","values":"string"},"default":{}},
		{"name":"address","type":["null",{"type":"record","name":"Address","fields":[{"name":"street","type":"string"},{"name":"city","type":"string"},{"name":"zip","type":["null","string"],"default":null}]}],"default":null}]}`)
	if v2doc.Fingerprint() != v2.Fingerprint() {
		t.Fatal("a doc changed the fingerprint")
	}
	reg.Add(v2doc)
	if s, _ := reg.Schema(v2.Fingerprint()); s != v2 {
		t.Error("a later schema with the same fingerprint replaced the first")
	}
}

func TestUpcasterValidation(t *testing.T) {
	reg := NewRegistry()
	id := func(m map[string]any) (map[string]any, error) { return m, nil }
	for _, u := range []Upcaster{
		{},
		{Type: "a.B"},
		{Type: "a.B", Rename: "a.B"},
		{Type: "a.B", To: MustParse(openedV2)},
		{Type: "a.B", Func: id, Rename: "a.C", To: MustParse(openedV2)},
		{Type: "a.B", Func: id, To: MustParse(`"string"`)},
	} {
		if err := reg.AddUpcaster(u); err == nil {
			t.Errorf("AddUpcaster(%+v) accepted", u)
		}
	}
	if err := reg.AddUpcaster(Upcaster{Type: "a.B", Func: id}); err != nil {
		t.Fatal(err)
	}
	if err := reg.AddUpcaster(Upcaster{Type: "a.B", Func: id}); err == nil {
		t.Error("a second upcaster for the same type and fingerprint was accepted")
	}
	if err := reg.AddUpcaster(Upcaster{Type: "a.B", Fingerprint: 7, Func: id}); err != nil {
		t.Errorf("an upcaster for one fingerprint beside the type-wide one: %v", err)
	}
}

// TestRenameCycle: upcasters renaming A to B and B to A must give an error, not a hang.
func TestRenameCycle(t *testing.T) {
	a := MustParse(`{"type":"record","name":"A","fields":[]}`)
	b := MustParse(`{"type":"record","name":"B","fields":[]}`)
	reg := NewRegistry()
	c := MustCodec[struct{}](reg, b)
	reg.Add(a)
	for _, u := range []Upcaster{{Type: "A", Rename: "B"}, {Type: "B", Rename: "A"}} {
		if err := reg.AddUpcaster(u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Decode(a.Fingerprint(), nil); err == nil {
		t.Fatal("decoded through a cycle of renames")
	} else {
		wantErrContains(t, err, "cycle")
	}
}
