package topics

import (
	"errors"
	"maps"
	"os"
	"strings"
	"testing"
	"time"
)

const sagasYAML = `namespace: shop
defaults:
  partitions: 6
  replicationFactor: 3
  minInsyncReplicas: 2
  commandsRetention: 1h
aggregates:
  - type: bank.account
sagas:
  - type: bank.transfer
  - type: shop.checkout
    partitions: 24
    replicationFactor: 2
    minInsyncReplicas: 1
    inputsRetention: 3d
`

func TestParseSagas(t *testing.T) {
	cfg, err := Parse([]byte(sagasYAML), "kastor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Saga{
		// From defaults, but not defaults.commandsRetention (1h): DefaultSagaInputsRetention.
		{Type: "bank.transfer", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2, InputsRetention: 7 * 24 * time.Hour},
		{Type: "shop.checkout", Partitions: 24, ReplicationFactor: 2, MinInsyncReplicas: 1, InputsRetention: 3 * 24 * time.Hour},
	}
	if len(cfg.Sagas) != len(want) {
		t.Fatalf("sagas %+v", cfg.Sagas)
	}
	for i := range want {
		if cfg.Sagas[i] != want[i] {
			t.Errorf("sagas[%d] = %+v, want %+v", i, cfg.Sagas[i], want[i])
		}
	}
	if cfg, err := Parse([]byte("namespace: ns\naggregates: [{type: a}]\n"), "k.yaml"); err != nil || cfg.Sagas != nil {
		t.Errorf("without sagas: %v, %+v", err, cfg)
	}
}

func TestSagaTopicName(t *testing.T) {
	for role, want := range map[Role]string{
		RoleSagaInputs: "shop.saga.bank.transfer.inputs",
		RoleSagaState:  "shop.saga.bank.transfer.state",
		RoleSagaDLQ:    "shop.saga.bank.transfer.dlq",
	} {
		if got := SagaTopicName("shop", "bank.transfer", role); got != want {
			t.Errorf("SagaTopicName(%s) = %q, want %q", role, got, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("SagaTopicName with RoleEvents did not panic")
		}
	}()
	SagaTopicName("shop", "bank.transfer", RoleEvents)
}

// TestParseSagaErrors checks that each problem of the sagas section is reported with the
// file, the line and the field or key at fault.
func TestParseSagaErrors(t *testing.T) {
	const head = "namespace: ns\naggregates:\n  - type: a\nsagas:\n" // sagas' items start on line 5
	tests := []struct {
		name string
		yaml string
		want string // the whole error
	}{
		{"unknown key", head + "  - type: bank.transfer\n    partiton: 3\n",
			`kastor.yaml:6: unknown key "partiton" in a saga (known keys: type, partitions, replicationFactor, minInsyncReplicas, inputsRetention)`},
		{"missing type", head + "  - partitions: 3\n",
			`kastor.yaml: sagas[0].type: required: the saga type, as in saga.Definition.Type, such as bank.transfer`},
		{"bad type", head + "  - type: Bank.Transfer\n",
			`kastor.yaml:5: sagas[0].type: "Bank.Transfer" is not a valid saga type: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit ([a-z0-9][a-z0-9._-]*)`},
		{"type not a string", head + "  - type: [a, b]\n",
			`kastor.yaml:5: sagas[0].type: want a string, got a list`},
		{"duplicate type", head + "  - type: bank.transfer\n  - type: shop.checkout\n  - type: bank.transfer\n",
			`kastor.yaml:7: sagas[2].type: duplicate saga type "bank.transfer" (also sagas[0], line 5)`},
		{"dot underscore collision", head + "  - type: bank.transfer\n  - type: bank_transfer\n",
			`kastor.yaml:6: sagas[1].type: saga type "bank_transfer" collides with "bank.transfer" (sagas[0], line 5): Kafka treats '.' and '_' in topic names as the same`},
		{"topic name too long", head + "  - type: " + strings.Repeat("t", 235) + "\n",
			`kastor.yaml:5: sagas[0].type: topic name "ns.saga.` + strings.Repeat("t", 235) + `.inputs" is 250 characters; Kafka allows at most 249`},
		{"zero partitions", head + "  - type: bank.transfer\n    partitions: 0\n",
			`kastor.yaml:6: sagas[0].partitions: must be at least 1, got 0`},
		{"partitions not a number", head + "  - type: bank.transfer\n    partitions: many\n",
			`kastor.yaml:6: sagas[0].partitions: want a whole number, got the string "many"`},
		{"zero replication factor", head + "  - type: bank.transfer\n    replicationFactor: 0\n    minInsyncReplicas: 1\n",
			`kastor.yaml:6: sagas[0].replicationFactor: must be at least 1, got 0`},
		{"default min ISR above RF", head + "  - type: bank.transfer\n    replicationFactor: 1\n",
			`kastor.yaml:6: sagas[0].minInsyncReplicas: 2 (the default) exceeds replicationFactor 1: acks=all writes could never succeed; set minInsyncReplicas to at most 1 (1 for a one-broker cluster)`},
		{"min ISR above RF", head + "  - type: bank.transfer\n    minInsyncReplicas: 4\n",
			`kastor.yaml:6: sagas[0].minInsyncReplicas: 4 exceeds replicationFactor 3: acks=all writes could never succeed; set minInsyncReplicas to at most 3 (1 for a one-broker cluster)`},
		{"retention without unit", head + "  - type: bank.transfer\n    inputsRetention: 100\n",
			`kastor.yaml:6: sagas[0].inputsRetention: want a duration such as 168h or 7d, got the number "100" (a bare number has no unit)`},
		{"zero retention", head + "  - type: bank.transfer\n    inputsRetention: 0s\n",
			`kastor.yaml:6: sagas[0].inputsRetention: must be at least 1ms, got 0s`},
		{"not a list", "namespace: ns\naggregates: [{type: a}]\nsagas: bank.transfer\n",
			`kastor.yaml:3: want a list of sagas (- type: bank.transfer), got the string ` + "`bank.tr...`"},
		{"item not a mapping", head + "  - bank.transfer\n",
			`kastor.yaml:5: want a mapping with a type and optional partitions, replicationFactor, minInsyncReplicas, inputsRetention, got the string ` + "`bank.tr...`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), "kastor.yaml")
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n%s\nwant\n%s", err, tc.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError", err)
			}
		})
	}
}

// A bad default is reported once, at the defaults, not again for each saga inheriting it.
func TestParseSagaBadDefaultOnce(t *testing.T) {
	_, err := Parse([]byte("namespace: ns\ndefaults:\n  partitions: 0\naggregates: [{type: a}]\nsagas: [{type: s}, {type: t}]\n"), "k.yaml")
	if err == nil || err.Error() != "k.yaml:3: defaults.partitions: must be at least 1, got 0" {
		t.Errorf("error %v", err)
	}
}

func TestValidateBuiltSagas(t *testing.T) {
	cfg := &Config{Namespace: "ns", Defaults: DefaultSettings(),
		Aggregates: []Aggregate{{Type: "a", Settings: DefaultSettings()}},
		Sagas: []Saga{{Type: "bank.transfer", Partitions: 12, ReplicationFactor: 3, MinInsyncReplicas: 2,
			InputsRetention: DefaultSagaInputsRetention}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Sagas = append(cfg.Sagas, Saga{Type: "bank.transfer"})
	err := cfg.Validate()
	for _, want := range []string{
		"sagas[1].partitions: must be at least 1, got 0",
		"sagas[1].inputsRetention: must be at least 1ms",
		`sagas[1].type: duplicate saga type "bank.transfer" (also sagas[0])`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// The plan gives each saga type its inputs and state topics, co-partitioned, and its
// dead-letter topic, after the aggregates' topics and before the shared ones.
func TestPlanSagas(t *testing.T) {
	cfg, err := Parse([]byte(sagasYAML+"projections: [{name: balances}]\n"), "kastor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plan := NewPlan(cfg)
	wantNames := []string{
		"shop.bank.account.commands", "shop.bank.account.events", "shop.bank.account.snapshots", "shop.bank.account.replies",
		"shop.bank.account.schedules",
		"shop.saga.bank.transfer.inputs", "shop.saga.bank.transfer.state", "shop.saga.bank.transfer.dlq",
		"shop.saga.shop.checkout.inputs", "shop.saga.shop.checkout.state", "shop.saga.shop.checkout.dlq",
		"shop.proj.balances.dlq", ProjectionsTopic, SchemasTopic,
	}
	if got := plan.Names(); strings.Join(got, " ") != strings.Join(wantNames, " ") {
		t.Fatalf("plan\n%v\nwant\n%v", got, wantNames)
	}
	type want struct {
		role       Role
		partitions int32
		rf         int16
		configs    map[string]string
	}
	wants := map[string]want{
		"shop.saga.bank.transfer.inputs": {RoleSagaInputs, 6, 3, map[string]string{
			"cleanup.policy": "delete", "retention.ms": "604800000", "min.insync.replicas": "2"}},
		"shop.saga.bank.transfer.state": {RoleSagaState, 6, 3, map[string]string{
			"cleanup.policy": "compact", "min.insync.replicas": "2"}},
		"shop.saga.bank.transfer.dlq": {RoleSagaDLQ, 1, 3, map[string]string{
			"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "2"}},
		"shop.saga.shop.checkout.inputs": {RoleSagaInputs, 24, 2, map[string]string{
			"cleanup.policy": "delete", "retention.ms": "259200000", "min.insync.replicas": "1"}},
		"shop.saga.shop.checkout.state": {RoleSagaState, 24, 2, map[string]string{
			"cleanup.policy": "compact", "min.insync.replicas": "1"}},
		"shop.saga.shop.checkout.dlq": {RoleSagaDLQ, 1, 2, map[string]string{
			"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "1"}},
	}
	for _, ts := range plan.Topics {
		w, ok := wants[ts.Name]
		if !ok {
			if ts.Saga != "" {
				t.Errorf("%s: saga %q", ts.Name, ts.Saga)
			}
			continue
		}
		saga := strings.TrimSuffix(strings.TrimPrefix(ts.Name, "shop.saga."), "."+strings.TrimPrefix(string(ts.Role), "saga-"))
		if ts.Role != w.role || ts.Saga != saga || ts.Aggregate != "" || ts.Projection != "" ||
			ts.Partitions != w.partitions || ts.ReplicationFactor != w.rf {
			t.Errorf("%s: %+v, want role %s saga %s partitions %d RF %d", ts.Name, ts, w.role, saga, w.partitions, w.rf)
		}
		if !maps.Equal(ts.Configs, w.configs) {
			t.Errorf("%s: configs %v, want %v", ts.Name, ts.Configs, w.configs)
		}
	}
}

// A saga topic's partition drift is refused with a note about saga instances, not
// aggregates.
func TestCompareSagaPartitionNotes(t *testing.T) {
	for role, want := range map[Role]string{
		RoleSagaInputs: "remaps saga instance IDs",
		RoleSagaState:  "inputs and state are co-partitioned",
		RoleSagaDLQ:    "parked letters",
		RoleEvents:     "remaps aggregate IDs",
	} {
		spec := TopicSpec{Name: "t", Role: role, Partitions: 6, ReplicationFactor: 1, Configs: map[string]string{}}
		st := Compare(spec, &Observed{Partitions: 3, ReplicationFactor: 1, Configs: map[string]string{}})
		if st.State != StateDrift || len(st.Differences) != 1 || !strings.Contains(st.Differences[0].Note, want) ||
			!strings.HasPrefix(st.Differences[0].Note, "refused:") {
			t.Errorf("%s: %+v, want a note with %q", role, st, want)
		}
	}
}

// examples/kastor.yaml shows a commented sagas: entry; uncommented, it must parse and plan
// the bank.transfer topics, so the example cannot go stale.
func TestExampleSagasEntry(t *testing.T) {
	data, err := os.ReadFile("../examples/kastor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for line := range strings.SplitSeq(string(data), "\n") {
		switch {
		case line == "# sagas:":
			in = true
		case in && !strings.HasPrefix(line, "#  "):
			in = false
		}
		if in {
			line = strings.TrimPrefix(line, "# ")
		}
		out = append(out, line)
	}
	cfg, err := Parse([]byte(strings.Join(out, "\n")), "examples/kastor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sagas) != 1 || cfg.Sagas[0].Type != "bank.transfer" {
		t.Fatalf("sagas %+v: the example's commented sagas: entry was not found", cfg.Sagas)
	}
	n := 0
	for _, ts := range NewPlan(cfg).Topics {
		if ts.Saga == "bank.transfer" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d bank.transfer topics planned", n)
	}
}
