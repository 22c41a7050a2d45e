package avro_test

import (
	"testing"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/examples/bank/avro"
	"github.com/kastor-dev/kastor/schema"
)

// The schemas the example published before they were derived from the Go types. Records
// in the topics were written with them: the derived ones must have their fingerprints.
var published = []string{
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

func TestDerivedSchemasKeepTheirFingerprints(t *testing.T) {
	c, err := avro.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	derived := map[string]schema.Fingerprint{}
	for _, s := range c.Schemas {
		derived[s.Name()] = s.Fingerprint()
	}
	if len(derived) != len(published) {
		t.Errorf("%d derived schemas, want %d", len(derived), len(published))
	}
	for _, text := range published {
		s := schema.MustParse(text)
		if fp, ok := derived[s.Name()]; !ok || fp != s.Fingerprint() {
			t.Errorf("%s: derived fingerprint %v (present %v), published %v", s.Name(), fp, ok, s.Fingerprint())
		}
	}
}

// Every payload round-trips, and data written with a published schema decodes.
func TestCodecsRoundTrip(t *testing.T) {
	c, err := avro.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []kastor.Event{account.Opened{Owner: "Ada"}, account.Deposited{Amount: 5}, account.Withdrawn{Amount: 2}, account.Closed{}} {
		enc, err := c.Events.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Events.Decode(enc)
		if err != nil || got != ev {
			t.Errorf("%T: %v, %v", ev, got, err)
		}
	}
	for _, cmd := range []account.Command{account.Open{Owner: "Ada"}, account.Deposit{Amount: 1}, account.Withdraw{Amount: 1}, account.Close{}} {
		enc, err := c.Commands.Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Commands.Decode(enc); err != nil || got != cmd {
			t.Errorf("%T: %v, %v", cmd, got, err)
		}
	}
	st := account.State{Owner: "Ada", Balance: 3, Open: true}
	enc, err := c.States.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.States.Decode(enc); err != nil || got != st {
		t.Errorf("state: %v, %v", got, err)
	}
}
