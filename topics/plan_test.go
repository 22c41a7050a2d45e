package topics

import (
	"maps"
	"testing"
)

func TestNewPlan(t *testing.T) {
	cfg, err := Parse([]byte(fullYAML), "kastor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plan := NewPlan(cfg)
	type want struct {
		role       Role
		agg        string
		partitions int32
		rf         int16
		configs    map[string]string
	}
	wants := map[string]want{
		"shop.bank.account.commands": {RoleCommands, "bank.account", 24, 3, map[string]string{
			"cleanup.policy": "delete", "retention.ms": "5400000", "min.insync.replicas": "2"}},
		"shop.bank.account.events": {RoleEvents, "bank.account", 24, 3, map[string]string{
			"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "2"}},
		"shop.bank.account.snapshots": {RoleSnapshots, "bank.account", 24, 3, map[string]string{
			"cleanup.policy": "compact", "min.insync.replicas": "2"}},
		"shop.bank.account.replies": {RoleReplies, "bank.account", 24, 3, map[string]string{
			"cleanup.policy": "delete", "retention.ms": "129600000", "min.insync.replicas": "2"}},
		"shop.bank.account.schedules": {RoleSchedules, "bank.account", 24, 3, map[string]string{
			"cleanup.policy": "compact", "min.insync.replicas": "2"}},
		"shop.shop.order.commands": {RoleCommands, "shop.order", 6, 1, map[string]string{
			"cleanup.policy": "delete", "retention.ms": "604800000", "min.insync.replicas": "1"}},
		"shop.shop.order.events": {RoleEvents, "shop.order", 6, 1, map[string]string{
			"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "1"}},
		"shop.shop.order.snapshots": {RoleSnapshots, "shop.order", 6, 1, map[string]string{
			"cleanup.policy": "compact", "min.insync.replicas": "1"}},
		"shop.shop.order.replies": {RoleReplies, "shop.order", 6, 1, map[string]string{
			"cleanup.policy": "delete", "retention.ms": "129600000", "min.insync.replicas": "1"}},
		"shop.shop.order.schedules": {RoleSchedules, "shop.order", 6, 1, map[string]string{
			"cleanup.policy": "compact", "min.insync.replicas": "1"}},
		// RF from schemas (2); min.insync.replicas = min(defaults 2, RF 2).
		"_kastor.schemas": {RoleSchemas, "", 1, 2, map[string]string{
			"cleanup.policy": "compact", "min.insync.replicas": "2"}},
	}
	if len(plan.Topics) != len(wants) {
		t.Fatalf("plan has %d topics %v, want %d", len(plan.Topics), plan.Names(), len(wants))
	}
	for _, ts := range plan.Topics {
		w, ok := wants[ts.Name]
		if !ok {
			t.Errorf("unexpected topic %s", ts.Name)
			continue
		}
		if ts.Role != w.role || ts.Aggregate != w.agg || ts.Partitions != w.partitions || ts.ReplicationFactor != w.rf {
			t.Errorf("%s: got role %s agg %q partitions %d RF %d; want %s %q %d %d",
				ts.Name, ts.Role, ts.Aggregate, ts.Partitions, ts.ReplicationFactor, w.role, w.agg, w.partitions, w.rf)
		}
		if !maps.Equal(ts.Configs, w.configs) {
			t.Errorf("%s: configs %v, want %v", ts.Name, ts.Configs, w.configs)
		}
	}
	if got := plan.Names()[0]; got != "shop.bank.account.commands" {
		t.Errorf("first topic %s", got)
	}
	if got := plan.Names()[len(plan.Topics)-1]; got != SchemasTopic {
		t.Errorf("last topic %s", got)
	}
}

// Without a schemas section the schemas topic takes the default RF, and its
// min.insync.replicas never exceeds its RF.
func TestPlanSchemasTopicDefaults(t *testing.T) {
	for _, tc := range []struct {
		yaml   string
		rf     int16
		minISR string
	}{
		{"namespace: ns\naggregates: [{type: a}]\n", 3, "2"},
		{"namespace: ns\naggregates: [{type: a}]\nschemas: {replicationFactor: 1}\n", 1, "1"},
		{"namespace: ns\ndefaults: {replicationFactor: 1, minInsyncReplicas: 1}\naggregates: [{type: a}]\n", 1, "1"},
	} {
		cfg, err := Parse([]byte(tc.yaml), "k.yaml")
		if err != nil {
			t.Fatal(err)
		}
		plan := NewPlan(cfg)
		s := plan.Topics[len(plan.Topics)-1]
		if s.Name != SchemasTopic || s.Partitions != 1 || s.ReplicationFactor != tc.rf ||
			s.Configs["min.insync.replicas"] != tc.minISR || s.Configs["cleanup.policy"] != "compact" {
			t.Errorf("%q: schemas topic %+v, want RF %d min ISR %s", tc.yaml, s, tc.rf, tc.minISR)
		}
	}
}

// projections: in kastor.yaml plans each projection's dead-letter topic, with the name
// the reader expects, one partition by default, kept forever and never compacted.
func TestPlanProjectionDLQ(t *testing.T) {
	cfg, err := Parse([]byte(`namespace: demo
defaults: {replicationFactor: 1, minInsyncReplicas: 1}
aggregates: [{type: bank.account}]
projections:
  - name: balances
  - name: audit
    partitions: 3
`), "kastor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var dlqs []TopicSpec
	registry := 0
	for _, s := range NewPlan(cfg).Topics {
		switch s.Role {
		case RoleDLQ:
			dlqs = append(dlqs, s)
		case RoleRegistry:
			registry++
			if s.Name != ProjectionsTopic || s.Partitions != 1 || s.Configs[ConfigCleanupPolicy] != "compact" || s.ReplicationFactor != 1 {
				t.Errorf("registry topic: %+v", s)
			}
		}
	}
	if registry != 1 {
		t.Errorf("%d registry topics planned, want 1", registry)
	}
	if len(dlqs) != 2 {
		t.Fatalf("%d dead-letter topics planned, want 2", len(dlqs))
	}
	b := dlqs[0]
	if b.Name != "demo.proj.balances.dlq" || b.Projection != "balances" || b.Partitions != 1 || b.ReplicationFactor != 1 ||
		b.Configs[ConfigCleanupPolicy] != "delete" || b.Configs[ConfigRetentionMs] != "-1" || b.Configs[ConfigMinInsyncReplicas] != "1" {
		t.Errorf("balances: %+v", b)
	}
	if dlqs[1].Name != "demo.proj.audit.dlq" || dlqs[1].Partitions != 3 {
		t.Errorf("audit: %+v", dlqs[1])
	}
	for _, bad := range []string{
		"projections: [{name: ''}]",
		"projections: [{name: 'a b'}]",
		"projections: [{name: x}, {name: x}]",
		"projections: [{name: x, partitions: 0}]",
		"projections: [{name: x, colour: red}]",
	} {
		if _, err := Parse([]byte("namespace: demo\naggregates: [{type: a}]\n"+bad+"\n"), "k.yaml"); err == nil {
			t.Errorf("%s: parsed, want an error", bad)
		}
	}
}
