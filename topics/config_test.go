package topics

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const fullYAML = `namespace: shop
brokers: [127.0.0.1:9092, "broker-2:9093"]
defaults:
  partitions: 6
  replicationFactor: 3
  minInsyncReplicas: 2
  commandsRetention: 7d
  repliesRetention: 1d12h
aggregates:
  - type: bank.account
    partitions: 24
    commandsRetention: 90m
  - type: shop.order
    replicationFactor: 1
    minInsyncReplicas: 1
schemas:
  replicationFactor: 2
`

func TestParseFull(t *testing.T) {
	cfg, err := Parse([]byte(fullYAML), "kastor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "shop" {
		t.Errorf("namespace %q", cfg.Namespace)
	}
	if got := strings.Join(cfg.Brokers, ","); got != "127.0.0.1:9092,broker-2:9093" {
		t.Errorf("brokers %q", got)
	}
	wantDefaults := Settings{Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2,
		CommandsRetention: 7 * 24 * time.Hour, RepliesRetention: 36 * time.Hour}
	if cfg.Defaults != wantDefaults {
		t.Errorf("defaults %+v, want %+v", cfg.Defaults, wantDefaults)
	}
	if len(cfg.Aggregates) != 2 {
		t.Fatalf("%d aggregates", len(cfg.Aggregates))
	}
	acc := cfg.Aggregates[0]
	wantAcc := Aggregate{Type: "bank.account", Settings: wantDefaults}
	wantAcc.Partitions = 24
	wantAcc.CommandsRetention = 90 * time.Minute
	if acc != wantAcc {
		t.Errorf("bank.account %+v, want %+v", acc, wantAcc)
	}
	ord := cfg.Aggregates[1]
	wantOrd := Aggregate{Type: "shop.order", Settings: wantDefaults}
	wantOrd.ReplicationFactor, wantOrd.MinInsyncReplicas = 1, 1
	if ord != wantOrd {
		t.Errorf("shop.order %+v, want %+v", ord, wantOrd)
	}
	if cfg.SchemasReplicationFactor != 2 {
		t.Errorf("schemas RF %d", cfg.SchemasReplicationFactor)
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse([]byte("namespace: ns\naggregates:\n  - type: a\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Defaults != DefaultSettings() {
		t.Errorf("defaults %+v", cfg.Defaults)
	}
	want := Settings{Partitions: 12, ReplicationFactor: 3, MinInsyncReplicas: 2,
		CommandsRetention: 168 * time.Hour, RepliesRetention: 24 * time.Hour}
	if cfg.Aggregates[0].Settings != want {
		t.Errorf("aggregate settings %+v, want %+v", cfg.Aggregates[0].Settings, want)
	}
	if cfg.Brokers != nil || cfg.SchemasReplicationFactor != 0 {
		t.Errorf("brokers %v, schemas RF %d", cfg.Brokers, cfg.SchemasReplicationFactor)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"7d":     7 * 24 * time.Hour,
		"168h":   168 * time.Hour,
		"1d12h":  36 * time.Hour,
		"0d30m":  30 * time.Minute,
		"90s":    90 * time.Second,
		"2d":     48 * time.Hour,
		"1500ms": 1500 * time.Millisecond,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7days", "1.5d", "-1d", "abc", "7", "1h2d", "99999999999999d"} {
		if d, err := ParseDuration(in); err == nil && in != "" {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		}
	}
	if got := FormatDuration(7 * 24 * time.Hour); got != "7d" {
		t.Errorf("FormatDuration(7d) = %q", got)
	}
	if got := FormatDuration(90 * time.Minute); got != "1h30m0s" {
		t.Errorf("FormatDuration(90m) = %q", got)
	}
}

// TestParseErrors checks that each problem is reported with the file, the line and the
// field or key at fault.
func TestParseErrors(t *testing.T) {
	const valid = "namespace: ns\naggregates:\n  - type: a\n"
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
		line int      // line of the first ConfigError
	}{
		{"unknown top-level key", "namespace: ns\nnamepsace: x\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:2:`, `unknown key "namepsace"`, "top level", "namespace, brokers"}, 2},
		{"unknown key in defaults", "namespace: ns\ndefaults:\n  partitons: 3\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:3:`, `unknown key "partitons"`, "in defaults", "partitions, replicationFactor"}, 3},
		{"unknown key in aggregate", "namespace: ns\naggregates:\n  - type: a\n    partition: 24\n",
			[]string{`kastor.yaml:4:`, `unknown key "partition"`, "in an aggregate", "type, partitions"}, 4},
		{"unknown key in schemas", valid + "schemas:\n  partitions: 3\n",
			[]string{`kastor.yaml:5:`, `unknown key "partitions"`, "in schemas"}, 5},
		{"zero partitions", "namespace: ns\ndefaults:\n  partitions: 0\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:3:`, "defaults.partitions", "at least 1"}, 3},
		{"negative aggregate partitions", "namespace: ns\naggregates:\n  - type: a\n    partitions: -2\n",
			[]string{`kastor.yaml:4:`, "aggregates[0].partitions", "at least 1, got -2"}, 4},
		{"partitions not a number", "namespace: ns\ndefaults:\n  partitions: many\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:3:`, "defaults.partitions", "whole number", `"many"`}, 3},
		{"partitions out of range", "namespace: ns\ndefaults:\n  partitions: 99999999999\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:3:`, "defaults.partitions", "out of range"}, 3},
		{"zero replication factor", "namespace: ns\naggregates:\n  - type: a\n    replicationFactor: 0\n    minInsyncReplicas: 1\n",
			[]string{`kastor.yaml:4:`, "aggregates[0].replicationFactor", "at least 1"}, 4},
		{"min ISR above RF", "namespace: ns\ndefaults:\n  replicationFactor: 2\n  minInsyncReplicas: 3\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:4:`, "defaults.minInsyncReplicas", "3 exceeds replicationFactor 2"}, 4},
		{"default min ISR above RF", "namespace: ns\ndefaults:\n  replicationFactor: 1\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:3:`, "defaults.minInsyncReplicas", "2 (the default) exceeds replicationFactor 1"}, 3},
		{"aggregate RF below default min ISR", "namespace: ns\naggregates:\n  - type: a\n    replicationFactor: 1\n",
			[]string{`kastor.yaml:4:`, "aggregates[0].minInsyncReplicas", "2 (the default) exceeds replicationFactor 1"}, 4},
		{"zero min ISR", "namespace: ns\ndefaults:\n  minInsyncReplicas: 0\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:3:`, "defaults.minInsyncReplicas", "at least 1"}, 3},
		{"retention without unit", "namespace: ns\ndefaults:\n  commandsRetention: 100\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:3:`, "defaults.commandsRetention", "no unit"}, 3},
		{"bad retention", "namespace: ns\naggregates:\n  - type: a\n    repliesRetention: soon\n",
			[]string{`kastor.yaml:4:`, "aggregates[0].repliesRetention", `invalid duration "soon"`}, 4},
		{"zero retention", "namespace: ns\ndefaults:\n  repliesRetention: 0s\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:3:`, "defaults.repliesRetention", "at least 1ms"}, 3},
		{"missing namespace", "aggregates:\n  - type: a\n",
			[]string{"kastor.yaml: namespace: required"}, 0},
		{"bad namespace", "namespace: _kastor\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:1:`, "namespace", `"_kastor" is not a valid namespace`}, 1},
		{"no aggregates", "namespace: ns\n",
			[]string{"aggregates: at least one"}, 0},
		{"missing type", "namespace: ns\naggregates:\n  - partitions: 3\n",
			[]string{"aggregates[0].type: required"}, 0},
		{"bad type", "namespace: ns\naggregates:\n  - type: Bank.Account\n",
			[]string{`kastor.yaml:3:`, "aggregates[0].type", `"Bank.Account" is not a valid aggregate type`}, 3},
		{"duplicate type", "namespace: ns\naggregates:\n  - type: a\n  - type: b\n  - type: a\n",
			[]string{`kastor.yaml:5:`, "aggregates[2].type", `duplicate aggregate type "a" (also aggregates[0])`}, 5},
		{"dot underscore collision", "namespace: ns\naggregates:\n  - type: bank.account\n  - type: bank_account\n",
			[]string{`kastor.yaml:4:`, "aggregates[1].type", "collides", "'.' and '_'"}, 4},
		{"topic name too long", "namespace: ns\naggregates:\n  - type: " + strings.Repeat("a", 240) + "\n",
			[]string{`kastor.yaml:3:`, "aggregates[0].type", "Kafka allows at most 249"}, 3},
		{"bad broker", "namespace: ns\nbrokers: [localhost]\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:2:`, "brokers[0]", "host:port"}, 2},
		{"schemas RF zero", valid + "schemas:\n  replicationFactor: 0\n",
			[]string{`kastor.yaml:5:`, "schemas.replicationFactor", "at least 1"}, 5},
		{"defaults not a mapping", "namespace: ns\ndefaults: 3\naggregates:\n  - type: a\n",
			[]string{`kastor.yaml:2:`, "want a mapping of settings"}, 2},
		{"aggregates not a list", "namespace: ns\naggregates: bank.account\n",
			[]string{`kastor.yaml:2:`, "want a list of aggregates"}, 2},
		{"syntax error", "namespace: ns\naggregates:\n  - type: a\n   bad indent: [\n",
			[]string{"kastor.yaml:", "invalid YAML"}, -1},
		{"empty file", "", []string{"kastor.yaml: the file is empty"}, 0},
		{"two documents", valid + "---\nnamespace: other\n", []string{"kastor.yaml:", "second YAML document"}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), "kastor.yaml")
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError", err)
			}
			if tc.line >= 0 && ce.Line != tc.line {
				t.Errorf("line %d, want %d (%v)", ce.Line, tc.line, err)
			}
		})
	}
}

// A bad default is reported once, not again for each aggregate that inherits it.
func TestParseReportsBadDefaultOnce(t *testing.T) {
	_, err := Parse([]byte("namespace: ns\ndefaults:\n  partitions: 0\naggregates:\n  - type: a\n  - type: b\n"), "k.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	if n := strings.Count(err.Error(), "partitions"); n != 1 {
		t.Errorf("partitions reported %d times: %v", n, err)
	}
}

func TestValidateBuiltConfig(t *testing.T) {
	cfg := &Config{Namespace: "ns", Defaults: DefaultSettings(),
		Aggregates: []Aggregate{{Type: "a", Settings: DefaultSettings()}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Aggregates[0].Partitions = 0
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "aggregates[0].partitions: must be at least 1") {
		t.Fatalf("got %v", err)
	}
}
