package topics

import (
	"fmt"
	"strconv"
	"time"
)

// Role is what a topic is for within an aggregate type's set.
type Role string

// The roles of the topics kastor manages.
const (
	// RoleCommands topics carry commands, keyed by aggregate ID, so all commands for one
	// aggregate reach the one gateway that owns its partition, in order. Commands are
	// requests whose effect ends up in the events, so they expire after a short retention.
	RoleCommands Role = "commands"
	// RoleEvents topics are the event store: the source of truth. They keep records
	// forever (retention.ms=-1, retention.bytes=-1) and are never compacted, because
	// compaction keeps only the latest record per key and would erase an aggregate's
	// history, leaving only its last event.
	RoleEvents Role = "events"
	// RoleSnapshots topics cache aggregate state keyed by aggregate ID. They are compacted:
	// only the newest snapshot per aggregate matters, and compaction keeps exactly that
	// while bounding recovery time. Losing a snapshot is harmless; the events replay.
	RoleSnapshots Role = "snapshots"
	// RoleReplies topics carry command results back to callers, keyed by caller ID.
	// Nobody reads a reply after its caller has gone, so retention is short.
	RoleReplies Role = "replies"
	// RoleSchedules topics hold an aggregate type's scheduled commands until they fire or
	// are cancelled, keyed by aggregate ID and schedule ID, each in the partition of its
	// aggregate: the gateway owning commands partition p owns schedules partition p.
	// They are compacted: a fired or cancelled schedule's tombstone removes it, so the
	// topic holds about the pending schedules, which a restore reads. Gateways need the
	// topic only to schedule commands (see decision 43).
	RoleSchedules Role = "schedules"
	// RoleSchemas is the shared _kastor.schemas topic: writer schemas keyed by their
	// fingerprint. It is compacted (a schema never changes under its fingerprint, so the
	// latest record per key is all there is) and has one partition so that a reader can
	// load every schema by reading one partition to its end.
	RoleSchemas Role = "schemas"
	// RoleDLQ topics are projections' dead-letter topics (ProjectionDLQTopic): the events
	// a projection parked or held, and the markers resolving them. They are the durable
	// park state, so they are kept forever (retention.ms=-1) and never compacted (a
	// resolution marker shares its letter's key; compaction would erase the letter).
	RoleDLQ Role = "dlq"
	// RoleRegistry is the shared _kastor.projections topic (ProjectionsTopic): each
	// projection's state (serving and building versions) and the requests tools make of
	// running projections. Compacted, one partition: one total order for every record,
	// which makes it a compare-and-set log (package projection, docs/decisions.md 19).
	RoleRegistry Role = "registry"
	// RoleSagaInputs topics (<ns>.saga.<type>.inputs) carry a saga type's inputs: the
	// events routed to an instance by its correlation key, the outcomes of the instance's
	// commands (written by the gateways) and its deadlines when they fire, keyed by saga
	// instance ID so that all inputs of an instance reach, in order, the one runtime that
	// owns its partition. Like commands, inputs are requests whose effect ends up
	// elsewhere (in the instance's record), so they are deleted after a finite retention
	// (Saga.InputsRetention); past that they would only serve to debug an instance.
	RoleSagaInputs Role = "saga-inputs"
	// RoleSagaState topics (<ns>.saga.<type>.state) hold the saga instances' records
	// (saga.Instance), keyed by instance ID. They are compacted: only an instance's
	// latest record matters, and compaction keeps exactly that, forever, however long the
	// instance runs (a finished instance's record can be removed by a tombstone). They
	// have the inputs topic's partition count, because a partition of both is one shard:
	// the runtime that owns inputs partition p restores its instances from state
	// partition p and writes their new records there in the transaction that consumes the
	// inputs.
	RoleSagaState Role = "saga-state"
	// RoleSagaDLQ topics (<ns>.saga.<type>.dlq) are a saga type's dead-letter topics: the
	// inputs the runtime parked (unroutable or rejected inputs, the inputs of a stuck
	// instance) for an operator. As with projections' dead-letter topics (RoleDLQ) they
	// are the durable park state: kept forever (retention.ms=-1) and never compacted, one
	// partition by default (letters are rare and read in full).
	RoleSagaDLQ Role = "saga-dlq"
)

// SagaTopicName returns the name of one of a saga type's topics:
// <namespace>.saga.<type>.inputs, .state or .dlq for RoleSagaInputs, RoleSagaState and
// RoleSagaDLQ. The "saga" segment keeps them apart from an aggregate type's topics and
// from projections' dead-letter topics (<namespace>.proj.<name>.dlq). It panics on
// another role, which has no saga topic.
func SagaTopicName(namespace, sagaType string, role Role) string {
	var suffix string
	switch role {
	case RoleSagaInputs:
		suffix = "inputs"
	case RoleSagaState:
		suffix = "state"
	case RoleSagaDLQ:
		suffix = "dlq"
	default:
		panic(fmt.Sprintf("topics: SagaTopicName: role %q has no saga topic", role))
	}
	return namespace + ".saga." + sagaType + "." + suffix
}

// sagaRoles are the topics of every saga type, in plan order.
var sagaRoles = []Role{RoleSagaInputs, RoleSagaState, RoleSagaDLQ}

// ProjectionDLQTopic is the dead-letter topic of projection name, shared by its
// versions: <namespace>.proj.<name>.dlq (consumer.DLQTopic returns the same).
func ProjectionDLQTopic(namespace, name string) string {
	return namespace + ".proj." + name + ".dlq"
}

// aggregateRoles are the topics of every aggregate type, in plan order.
var aggregateRoles = []Role{RoleCommands, RoleEvents, RoleSnapshots, RoleReplies, RoleSchedules}

// ProjectionsTopic is the projection registry, shared by every namespace on the cluster
// (package projection's RegistryTopic). The plan includes it when kastor.yaml declares
// projections.
const ProjectionsTopic = "_kastor.projections"

// SchemasTopic is the topic that holds every writer schema of every namespace on the
// cluster. It is shared across namespaces because schemas are identified by fingerprint,
// which is the same wherever a schema is used.
const SchemasTopic = "_kastor.schemas"

// Topic config keys kastor sets and checks.
const (
	ConfigCleanupPolicy     = "cleanup.policy"
	ConfigRetentionMs       = "retention.ms"
	ConfigRetentionBytes    = "retention.bytes"
	ConfigMinInsyncReplicas = "min.insync.replicas"
)

// TopicName returns the name of an aggregate type's topic: <namespace>.<aggregate>.<role>.
func TopicName(namespace, aggregate string, role Role) string {
	return namespace + "." + aggregate + "." + string(role)
}

// TopicSpec is one topic as the plan wants it.
type TopicSpec struct {
	Name      string `json:"name"`
	Role      Role   `json:"role"`
	Aggregate string `json:"aggregate,omitempty"` // empty for _kastor.schemas and dead-letter topics
	// Projection names the projection of a dead-letter topic.
	Projection string `json:"projection,omitempty"`
	// Saga names the saga type of a saga topic.
	Saga              string `json:"saga,omitempty"`
	Partitions        int32  `json:"partitions"`
	ReplicationFactor int16  `json:"replicationFactor"`
	// Configs are the topic configs kastor sets at creation and compares afterwards. Keys it
	// does not list are left to the broker's defaults and are not checked.
	Configs map[string]string `json:"configs"`
}

// Plan is the desired topic set of an application.
type Plan struct {
	Namespace string      `json:"namespace"`
	Topics    []TopicSpec `json:"topics"`
}

// Names returns the plan's topic names in plan order.
func (p Plan) Names() []string {
	names := make([]string, len(p.Topics))
	for i, t := range p.Topics {
		names[i] = t.Name
	}
	return names
}

// NewPlan derives the topic set from a validated Config: five topics per aggregate type,
// all with the aggregate's partition count, since a partition of each is the same shard
// (a gateway owning commands partition p writes events, snapshots, schedules and replies to
// partition p of the others), three per saga type (inputs and state with the saga's
// partition count, co-partitioned likewise, and a dead-letter topic), each declared
// projection's dead-letter topic, the shared projection registry when there are
// projections, and the shared schemas topic.
func NewPlan(cfg *Config) Plan {
	p := Plan{Namespace: cfg.Namespace}
	for _, a := range cfg.Aggregates {
		minISR := strconv.Itoa(a.MinInsyncReplicas)
		base := func(role Role, configs map[string]string) TopicSpec {
			configs[ConfigMinInsyncReplicas] = minISR
			return TopicSpec{
				Name:              TopicName(cfg.Namespace, a.Type, role),
				Role:              role,
				Aggregate:         a.Type,
				Partitions:        a.Partitions,
				ReplicationFactor: a.ReplicationFactor,
				Configs:           configs,
			}
		}
		p.Topics = append(p.Topics,
			base(RoleCommands, map[string]string{
				ConfigCleanupPolicy: "delete",
				ConfigRetentionMs:   millis(a.CommandsRetention),
			}),
			base(RoleEvents, map[string]string{
				ConfigCleanupPolicy:  "delete",
				ConfigRetentionMs:    "-1",
				ConfigRetentionBytes: "-1",
			}),
			base(RoleSnapshots, map[string]string{
				ConfigCleanupPolicy: "compact",
			}),
			base(RoleReplies, map[string]string{
				ConfigCleanupPolicy: "delete",
				ConfigRetentionMs:   millis(a.RepliesRetention),
			}),
			base(RoleSchedules, map[string]string{
				ConfigCleanupPolicy: "compact",
			}),
		)
	}
	for _, sg := range cfg.Sagas {
		minISR := strconv.Itoa(sg.MinInsyncReplicas)
		base := func(role Role, partitions int32, configs map[string]string) TopicSpec {
			configs[ConfigMinInsyncReplicas] = minISR
			return TopicSpec{
				Name:              SagaTopicName(cfg.Namespace, sg.Type, role),
				Role:              role,
				Saga:              sg.Type,
				Partitions:        partitions,
				ReplicationFactor: sg.ReplicationFactor,
				Configs:           configs,
			}
		}
		p.Topics = append(p.Topics,
			base(RoleSagaInputs, sg.Partitions, map[string]string{
				ConfigCleanupPolicy: "delete",
				ConfigRetentionMs:   millis(sg.InputsRetention),
			}),
			base(RoleSagaState, sg.Partitions, map[string]string{
				ConfigCleanupPolicy: "compact",
			}),
			base(RoleSagaDLQ, DefaultDLQPartitions, map[string]string{
				ConfigCleanupPolicy:  "delete",
				ConfigRetentionMs:    "-1",
				ConfigRetentionBytes: "-1",
			}),
		)
	}
	for _, pr := range cfg.Projections {
		parts, prf := pr.Partitions, pr.ReplicationFactor
		if parts <= 0 {
			parts = DefaultDLQPartitions
		}
		if prf <= 0 {
			prf = cfg.Defaults.ReplicationFactor
		}
		p.Topics = append(p.Topics, TopicSpec{
			Name:              ProjectionDLQTopic(cfg.Namespace, pr.Name),
			Role:              RoleDLQ,
			Projection:        pr.Name,
			Partitions:        parts,
			ReplicationFactor: prf,
			Configs: map[string]string{
				ConfigCleanupPolicy:     "delete",
				ConfigRetentionMs:       "-1",
				ConfigRetentionBytes:    "-1",
				ConfigMinInsyncReplicas: strconv.Itoa(min(cfg.Defaults.MinInsyncReplicas, int(prf))),
			},
		})
	}
	rf := cfg.SchemasReplicationFactor
	if rf <= 0 {
		rf = cfg.Defaults.ReplicationFactor
	}
	minISR := min(cfg.Defaults.MinInsyncReplicas, int(rf))
	if len(cfg.Projections) > 0 {
		p.Topics = append(p.Topics, TopicSpec{
			Name:              ProjectionsTopic,
			Role:              RoleRegistry,
			Partitions:        1,
			ReplicationFactor: rf,
			Configs: map[string]string{
				ConfigCleanupPolicy:     "compact",
				ConfigMinInsyncReplicas: strconv.Itoa(minISR),
			},
		})
	}
	p.Topics = append(p.Topics, TopicSpec{
		Name:              SchemasTopic,
		Role:              RoleSchemas,
		Partitions:        1,
		ReplicationFactor: rf,
		Configs: map[string]string{
			ConfigCleanupPolicy:     "compact",
			ConfigMinInsyncReplicas: strconv.Itoa(minISR),
		},
	})
	return p
}

func millis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
