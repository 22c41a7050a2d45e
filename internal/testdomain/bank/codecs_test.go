package bank_test

import (
	"testing"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/schema"
)

// The bank example's hand-written schemas. Tests and the CLI name these records, and
// topics written by the example hold their fingerprints: the derived ones must be these.
var handWritten = []string{
	`{"type":"record","name":"Account","namespace":"bank","fields":[
		{"name":"owner","type":"string"},{"name":"balance","type":"long"},
		{"name":"open","type":"boolean"},{"name":"closed","type":"boolean"}]}`,
	`{"type":"record","name":"OpenAccount","namespace":"bank","fields":[{"name":"owner","type":"string"}]}`,
	`{"type":"record","name":"Deposit","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`,
	`{"type":"record","name":"Withdraw","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`,
	`{"type":"record","name":"CloseAccount","namespace":"bank","fields":[]}`,
	`{"type":"record","name":"AccountOpened","namespace":"bank","fields":[{"name":"owner","type":"string"}]}`,
	`{"type":"record","name":"MoneyDeposited","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`,
	`{"type":"record","name":"MoneyWithdrawn","namespace":"bank","fields":[{"name":"amount","type":"long"}]}`,
	`{"type":"record","name":"AccountClosed","namespace":"bank","fields":[]}`,
}

func TestSchemasAreTheHandWrittenOnes(t *testing.T) {
	got := map[string]schema.Fingerprint{}
	for _, s := range bank.Schemas() {
		got[s.Name()] = s.Fingerprint()
	}
	if len(got) != len(handWritten) {
		t.Errorf("%d schemas, want %d", len(got), len(handWritten))
	}
	for _, text := range handWritten {
		s := schema.MustParse(text)
		if fp, ok := got[s.Name()]; !ok || fp != s.Fingerprint() {
			t.Errorf("%s: fingerprint %v (present %v), want %v", s.Name(), fp, ok, s.Fingerprint())
		}
	}
}

func TestCodecsRoundTrip(t *testing.T) {
	reg := schema.NewRegistry()
	c, err := bank.NewCodecs(reg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Registry != reg {
		t.Error("NewCodecs did not keep the registry")
	}
	for _, s := range bank.Schemas() {
		if _, ok := reg.Schema(s.Fingerprint()); !ok {
			t.Errorf("%s is not in the registry", s.Name())
		}
	}
	for _, ev := range []kastor.Event{bank.Opened{Owner: "Ada"}, bank.Deposited{Amount: 5}, bank.Withdrawn{Amount: 2}, bank.Closed{}} {
		enc, err := c.Events.Encode(ev)
		if err != nil || enc.Type != ev.EventType() {
			t.Fatalf("%T: %+v, %v", ev, enc, err)
		}
		if got, err := c.Events.Decode(enc); err != nil || got != ev {
			t.Errorf("%T: %v, %v", ev, got, err)
		}
	}
	for _, cmd := range []bank.Command{bank.Open{Owner: "Ada"}, bank.Deposit{Amount: 1}, bank.Withdraw{Amount: 1}, bank.Close{}} {
		enc, err := c.Commands.Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Commands.Decode(enc); err != nil || got != cmd {
			t.Errorf("%T: %v, %v", cmd, got, err)
		}
	}
	st := bank.State{Owner: "Ada", Balance: 3, Open: true}
	enc, err := c.States.Encode(st)
	if err != nil || enc.Type != "bank.Account" {
		t.Fatalf("state: %+v, %v", enc, err)
	}
	if got, err := c.States.Decode(enc); err != nil || got != st {
		t.Errorf("state: %v, %v", got, err)
	}
}
