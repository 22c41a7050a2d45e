package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// DefaultTimeout bounds each cluster call when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options tune Diff and Apply.
type Options struct {
	// Timeout bounds every single cluster call (default DefaultTimeout), so an unreachable
	// or hung cluster turns into an error instead of an endless retry.
	Timeout time.Duration
	// DryRun makes Apply compute and report what it would do without creating anything.
	DryRun bool
	// Brokers are the bootstrap addresses the admin client uses; they only make error
	// messages say where kastor tried to connect.
	Brokers []string
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

// State is how a topic on the cluster compares with its spec.
type State string

// The states of a topic.
const (
	StateMissing State = "missing" // the topic does not exist
	StateOK      State = "ok"      // it exists and matches the spec
	StateDrift   State = "drift"   // it exists with other settings; see the differences
)

// Field names used in Difference.Field besides topic config keys.
const (
	FieldPartitions        = "partitions"
	FieldReplicationFactor = "replication.factor"
)

// Difference is one setting in which an existing topic differs from its spec.
type Difference struct {
	Field string `json:"field"` // "partitions", "replication.factor" or a config key
	Want  string `json:"want"`
	Have  string `json:"have"`
	// Note says what kastor does about it and why.
	Note string `json:"note"`
}

// String renders the difference as "field: want X, have Y", the form the CLI prints.
func (d Difference) String() string {
	return fmt.Sprintf("%s: want %s, have %s", d.Field, d.Want, d.Have)
}

// Notes that explain why kastor leaves drift alone.
const (
	notePartitions = "refused: changing the partition count remaps aggregate IDs to other partitions (shards); migrate explicitly"
	// A saga's inputs and state topics must keep equal counts: an instance's inputs and
	// record are on the same partition number of both.
	noteSagaPartitions = "refused: changing the partition count remaps saga instance IDs to other partitions, away from their records (inputs and state are co-partitioned); migrate explicitly"
	noteDLQPartitions  = "refused: kastor never changes a partition count; the parked letters must be kept, so migrate explicitly"
	noteCleanup        = "not changed: switching cleanup.policy on a live topic can erase history (compact) or snapshots (delete); resolve by hand"
	noteRF             = "not changed: the replication factor changes only by partition reassignment (kafka-reassign-partitions)"
	noteConfig         = "not changed: kastor never alters existing topics; use kafka-configs --alter if the file is right"
)

// Observed is a topic as it exists on the cluster.
type Observed struct {
	Partitions        int32 `json:"partitions"`
	ReplicationFactor int16 `json:"replicationFactor"`
	// Configs holds the effective values (topic override, else broker setting, else
	// Kafka's default) of the config keys the spec sets.
	Configs map[string]string `json:"configs"`
}

// TopicStatus is a spec compared with the cluster.
type TopicStatus struct {
	Spec        TopicSpec    `json:"spec"`
	State       State        `json:"state"`
	Observed    *Observed    `json:"observed,omitempty"` // nil when missing
	Differences []Difference `json:"differences,omitempty"`
}

// Compare computes a topic's state from what was observed; observed nil means missing.
// Configs are compared by meaning: numbers as numbers, cleanup.policy as a set.
func Compare(spec TopicSpec, observed *Observed) TopicStatus {
	st := TopicStatus{Spec: spec, Observed: observed}
	if observed == nil {
		st.State = StateMissing
		return st
	}
	if observed.Partitions != spec.Partitions {
		st.Differences = append(st.Differences, Difference{
			Field: FieldPartitions,
			Want:  strconv.Itoa(int(spec.Partitions)),
			Have:  strconv.Itoa(int(observed.Partitions)),
			Note:  partitionsNote(spec.Role),
		})
	}
	if observed.ReplicationFactor != spec.ReplicationFactor {
		st.Differences = append(st.Differences, Difference{
			Field: FieldReplicationFactor,
			Want:  strconv.Itoa(int(spec.ReplicationFactor)),
			Have:  strconv.Itoa(int(observed.ReplicationFactor)),
			Note:  noteRF,
		})
	}
	keys := make([]string, 0, len(spec.Configs))
	for k := range spec.Configs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareConfigKeys)
	for _, k := range keys {
		want := spec.Configs[k]
		have, ok := observed.Configs[k]
		if ok && sameConfig(k, want, have) {
			continue
		}
		if !ok {
			have = "(not reported by the broker)"
		}
		note := noteConfig
		if k == ConfigCleanupPolicy {
			note = noteCleanup
		}
		st.Differences = append(st.Differences, Difference{Field: k, Want: want, Have: have, Note: note})
	}
	st.State = StateOK
	if len(st.Differences) > 0 {
		st.State = StateDrift
	}
	return st
}

// partitionsNote explains why a topic's partition count is left alone.
func partitionsNote(role Role) string {
	switch role {
	case RoleSagaInputs, RoleSagaState:
		return noteSagaPartitions
	case RoleSagaDLQ:
		return noteDLQPartitions
	}
	return notePartitions
}

// compareConfigKeys orders cleanup.policy first: it is the difference that matters most.
func compareConfigKeys(a, b string) int {
	if a == b {
		return 0
	}
	if a == ConfigCleanupPolicy {
		return -1
	}
	if b == ConfigCleanupPolicy {
		return 1
	}
	return strings.Compare(a, b)
}

func sameConfig(key, want, have string) bool {
	if key == ConfigCleanupPolicy {
		return slices.Equal(policySet(want), policySet(have))
	}
	w, err1 := strconv.ParseInt(strings.TrimSpace(want), 10, 64)
	h, err2 := strconv.ParseInt(strings.TrimSpace(have), 10, 64)
	if err1 == nil && err2 == nil {
		return w == h
	}
	return strings.TrimSpace(want) == strings.TrimSpace(have)
}

func policySet(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Diff compares every topic of the plan with the cluster. It reads partition counts and
// replication factors from the metadata and the effective configs from DescribeConfigs:
// a topic without an override still has a value (the broker's), and that is the value
// that governs retention and compaction, so it is what must match. The error matches
// ErrDrift when some topic drifted; the statuses are returned either way.
func Diff(ctx context.Context, adm *kadm.Client, plan Plan, opts Options) ([]TopicStatus, error) {
	observed, err := observe(ctx, adm, plan.Names(), opts)
	if err != nil {
		return nil, err
	}
	out := make([]TopicStatus, len(plan.Topics))
	var drifted []string
	for i, spec := range plan.Topics {
		out[i] = Compare(spec, observed[spec.Name])
		if out[i].State == StateDrift {
			drifted = append(drifted, spec.Name)
		}
	}
	if len(drifted) > 0 {
		return out, &DriftError{Topics: drifted}
	}
	return out, nil
}

// managedConfigs are the config keys a plan may set, the only ones observe keeps.
var managedConfigs = map[string]bool{
	ConfigCleanupPolicy:     true,
	ConfigRetentionMs:       true,
	ConfigRetentionBytes:    true,
	ConfigMinInsyncReplicas: true,
}

// observe describes the named topics; missing topics have no entry in the map.
func observe(ctx context.Context, adm *kadm.Client, names []string, opts Options) (map[string]*Observed, error) {
	out := make(map[string]*Observed, len(names))
	if len(names) == 0 {
		return out, nil
	}
	cctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	details, err := adm.ListTopics(cctx, names...)
	if err != nil {
		return nil, clusterErr(ctx, "listing topics", opts, err)
	}
	var existing []string
	for _, name := range names {
		td, ok := details[name]
		if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if td.Err != nil {
			return nil, fmt.Errorf("topic %s: %w", name, td.Err)
		}
		obs := &Observed{Partitions: int32(len(td.Partitions)), Configs: map[string]string{}}
		if p0, ok := td.Partitions[0]; ok {
			obs.ReplicationFactor = int16(len(p0.Replicas))
		}
		out[name] = obs
		existing = append(existing, name)
	}
	if len(existing) == 0 {
		return out, nil
	}
	cctx, cancel = context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	rcs, err := adm.DescribeTopicConfigs(cctx, existing...)
	if err != nil {
		return nil, clusterErr(ctx, "describing topic configs", opts, err)
	}
	for _, rc := range rcs {
		obs, ok := out[rc.Name]
		if !ok {
			continue
		}
		if rc.Err != nil {
			if errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
				// Deleted between the two requests, or not yet known to the broker that
				// answered: treat it as missing rather than guess its configs.
				delete(out, rc.Name)
				continue
			}
			return nil, fmt.Errorf("describing configs of %s: %w", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Value != nil && managedConfigs[c.Key] {
				obs.Configs[c.Key] = *c.Value
			}
		}
	}
	return out, nil
}
