package topics

import (
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	spec := TopicSpec{Name: "ns.a.events", Role: RoleEvents, Aggregate: "a", Partitions: 6, ReplicationFactor: 3,
		Configs: map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "min.insync.replicas": "2"}}
	same := func() *Observed {
		return &Observed{Partitions: 6, ReplicationFactor: 3,
			Configs: map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "min.insync.replicas": "2"}}
	}
	tests := []struct {
		name   string
		obs    func() *Observed
		state  State
		fields []string
	}{
		{"missing", func() *Observed { return nil }, StateMissing, nil},
		{"ok", same, StateOK, nil},
		{"numbers compare as numbers", func() *Observed {
			o := same()
			o.Configs["retention.ms"] = " -1"
			o.Configs["min.insync.replicas"] = "02"
			return o
		}, StateOK, nil},
		{"cleanup policy is a set", func() *Observed {
			o := same()
			o.Configs["cleanup.policy"] = " Delete,delete"
			return o
		}, StateOK, nil},
		{"partitions", func() *Observed { o := same(); o.Partitions = 12; return o }, StateDrift, []string{"partitions"}},
		{"replication factor", func() *Observed { o := same(); o.ReplicationFactor = 1; return o }, StateDrift, []string{"replication.factor"}},
		{"compacted events", func() *Observed { o := same(); o.Configs["cleanup.policy"] = "compact"; return o }, StateDrift, []string{"cleanup.policy"}},
		{"compact and delete", func() *Observed { o := same(); o.Configs["cleanup.policy"] = "compact,delete"; return o }, StateDrift, []string{"cleanup.policy"}},
		{"finite retention", func() *Observed { o := same(); o.Configs["retention.ms"] = "604800000"; return o }, StateDrift, []string{"retention.ms"}},
		{"not reported", func() *Observed { o := same(); delete(o.Configs, "min.insync.replicas"); return o }, StateDrift, []string{"min.insync.replicas"}},
		{"several, cleanup first", func() *Observed {
			o := same()
			o.Partitions = 3
			o.Configs["retention.ms"] = "1"
			o.Configs["cleanup.policy"] = "compact"
			return o
		}, StateDrift, []string{"partitions", "cleanup.policy", "retention.ms"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := Compare(spec, tc.obs())
			if st.State != tc.state {
				t.Errorf("state %s, want %s (%v)", st.State, tc.state, st.Differences)
			}
			var fields []string
			for _, d := range st.Differences {
				fields = append(fields, d.Field)
				if d.Note == "" {
					t.Errorf("difference %v has no note", d)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("differences %v, want fields %v", st.Differences, tc.fields)
			}
		})
	}
}

func TestSameConfig(t *testing.T) {
	for _, tc := range []struct {
		key, want, have string
		same            bool
	}{
		{"cleanup.policy", "compact,delete", "delete,compact", true},
		{"cleanup.policy", "compact,delete", "compact", false},
		{"retention.ms", "604800000", "604800000", true},
		{"retention.ms", "-1", "604800000", false},
		{"compression.type", "zstd", "zstd", true},
		{"compression.type", "zstd", "lz4", false},
	} {
		if got := sameConfig(tc.key, tc.want, tc.have); got != tc.same {
			t.Errorf("sameConfig(%s, %q, %q) = %v", tc.key, tc.want, tc.have, got)
		}
	}
}

func TestCompareNotes(t *testing.T) {
	spec := TopicSpec{Name: "t", Partitions: 6, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "compact"}}
	st := Compare(spec, &Observed{Partitions: 3, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete"}})
	if len(st.Differences) != 2 {
		t.Fatalf("differences %v", st.Differences)
	}
	p, c := st.Differences[0], st.Differences[1]
	if p.Want != "6" || p.Have != "3" || !strings.Contains(p.Note, "remaps aggregate IDs to other partitions (shards); migrate explicitly") {
		t.Errorf("partition difference %+v", p)
	}
	if c.Want != "compact" || c.Have != "delete" || !strings.Contains(c.Note, "not changed") {
		t.Errorf("cleanup difference %+v", c)
	}
}
