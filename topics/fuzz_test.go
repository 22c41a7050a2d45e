package topics

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the topic-file parser: it must return a config that
// yields a valid plan, or a *ConfigError; it must never panic.
func FuzzParse(f *testing.F) {
	if seed, err := os.ReadFile("../examples/kastor.yaml"); err == nil {
		f.Add(seed)
	}
	f.Add([]byte("namespace: a\naggregates: [{type: x}]\n"))
	f.Add([]byte("namespace: a\ndefaults: {partitions: -1, commandsRetention: 9999999999d}\naggregates: [{type: x}]\n"))
	f.Add([]byte("namespace: a\naggregates: [{type: x}]\nsagas: [{type: s, partitions: 2, inputsRetention: 1d}, {type: t}]\n"))
	f.Add([]byte("namespace: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Parse error is %T, not *ConfigError: %v", err, err)
			}
			return
		}
		plan := NewPlan(cfg)
		for _, ts := range plan.Topics {
			if ts.Partitions < 1 || ts.ReplicationFactor < 1 || len(ts.Name) > MaxTopicNameLength || ts.Name == "" {
				t.Fatalf("accepted config gives invalid topic %+v", ts)
			}
		}
	})
}
