package runner

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/topics"
)

// Config configures a Runner for one saga type. The cluster, the namespace of the topic
// names, the logger and the metrics registerer come from the *cluster.Cluster given to
// New. ConfigFor fills the required fields.
type Config[S, C, E any] struct {
	// Saga is the saga type: its Type names the topics (<namespace>.saga.<type>.inputs,
	// .state, .dlq), which must exist (`kastor topics apply` with a sagas: entry).
	Saga *saga.Definition[S, C, E]
	// Sources are the aggregate types whose events the router reads and routes with
	// Saga.Correlate, such as "bank.transfer-request". Required unless NoRouter.
	Sources []string
	// States encodes each instance's state into its record on the state topic.
	States kastor.Codec[S]
	// Events decodes the events of Sources, for Correlate (the router) and React (the
	// runner). One codec for every source: with several source types, build it over one
	// registry (schema.DeriveTypes with the union of their events).
	Events kastor.Codec[E]
	// Commands encodes the commands the saga sends, by target aggregate type: a command
	// for an aggregate type with no codec here is refused and its input parked.
	Commands map[string]kastor.Codec[C]

	// InstanceID names this process in client IDs and every log line (default: host, pid
	// and a random suffix). Transactional IDs are per partition, not per process, so two
	// processes under one name do not fence each other.
	InstanceID string
	// NoRouter runs the runner alone, without the router (default: both). Run the router
	// in as many processes as the runner; each is a consumer group of its own.
	NoRouter bool
	// SessionTimeout is how long the group coordinator waits for a member's heartbeats
	// before it moves its partitions to the others (default 6s, the least brokers accept
	// by default: group.min.session.timeout.ms; as the gateway's, decision 28).
	SessionTimeout time.Duration
	// HeartbeatInterval is how often members heartbeat (default 1s, at most a third of
	// SessionTimeout).
	HeartbeatInterval time.Duration
	// TransactionTimeout bounds how long a transaction may stay open before the broker
	// aborts it (default 20s, the gateway's, so that it outlasts a leader election after
	// a broker's death). A crashed owner's open transaction is aborted at once by the
	// new owner's fencing, not at this timeout.
	TransactionTimeout time.Duration
	// MaxBatch is the most inputs of one partition applied in one transaction (default
	// 500). Larger batches mean fewer commits; smaller ones, earlier commands.
	MaxBatch int
	// Window is how many input IDs and pending commands each instance remembers (default
	// saga.DefaultWindow): an input redelivered within that many later inputs of its
	// instance changes nothing.
	Window int
	// Clock is the runtime's time, given to React as Input.At and compared with deadlines
	// (default time.Now). Tests set it.
	Clock func() time.Time
}

// ConfigFor is the Config of a Runner of def whose states are encoded with states,
// whose commands are encoded with commands (by target aggregate type), and whose router
// reads the events of sources, decoded with events; every other field at its default.
func ConfigFor[S, C, E any](def *saga.Definition[S, C, E], states kastor.Codec[S], events kastor.Codec[E], commands map[string]kastor.Codec[C], sources ...string) Config[S, C, E] {
	return Config[S, C, E]{Saga: def, States: states, Events: events, Commands: commands, Sources: sources}
}

// settings is a Config with its defaults and what the runner takes from its cluster.
type settings[S, C, E any] struct {
	Config[S, C, E]
	namespace string
	logger    *slog.Logger
	inputs    string // topic names
	state     string
	dlq       string
	// commandTopics are the commands topics by target aggregate type.
	commandTopics map[string]string
	// eventTopics are the Sources' events topics.
	eventTopics []string
	routerGroup string
	runnerGroup string
}

func (c *Config[S, C, E]) withDefaults(cl *cluster.Cluster) (*settings[S, C, E], error) {
	cfg := &settings[S, C, E]{Config: *c, namespace: cl.Namespace()}
	var errs []error
	if cfg.Saga == nil {
		errs = append(errs, errors.New("saga runner: Config.Saga is nil"))
	} else if err := cfg.Saga.Validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.States == nil || cfg.Events == nil {
		errs = append(errs, errors.New("saga runner: Config.States and Events codecs are required"))
	}
	if len(cfg.Commands) == 0 {
		errs = append(errs, errors.New("saga runner: Config.Commands needs a codec per aggregate type the saga sends commands to"))
	}
	for typ, codec := range cfg.Commands {
		if typ == "" || codec == nil {
			errs = append(errs, fmt.Errorf("saga runner: Config.Commands[%q]: an aggregate type and a codec are required", typ))
		}
	}
	if len(cfg.Sources) == 0 && !cfg.NoRouter {
		errs = append(errs, errors.New("saga runner: Config.Sources lists no aggregate type to route events from (set NoRouter to run without a router)"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	typ := cfg.Saga.Type
	cfg.inputs = topics.SagaTopicName(cfg.namespace, typ, topics.RoleSagaInputs)
	cfg.state = topics.SagaTopicName(cfg.namespace, typ, topics.RoleSagaState)
	cfg.dlq = topics.SagaTopicName(cfg.namespace, typ, topics.RoleSagaDLQ)
	cfg.commandTopics = map[string]string{}
	for agg := range cfg.Commands {
		cfg.commandTopics[agg] = topics.TopicName(cfg.namespace, agg, topics.RoleCommands)
	}
	for _, src := range cfg.Sources {
		t := topics.TopicName(cfg.namespace, src, topics.RoleEvents)
		if !slices.Contains(cfg.eventTopics, t) {
			cfg.eventTopics = append(cfg.eventTopics, t)
		}
	}
	cfg.routerGroup = fmt.Sprintf("%s.saga.%s.router", cfg.namespace, typ)
	cfg.runnerGroup = fmt.Sprintf("%s.saga.%s.runner", cfg.namespace, typ)
	if cfg.InstanceID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.InstanceID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 6 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = min(time.Second, cfg.SessionTimeout/3)
	}
	if cfg.TransactionTimeout <= 0 {
		cfg.TransactionTimeout = 20 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	if cfg.Window <= 0 {
		cfg.Window = saga.DefaultWindow
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	cfg.logger = cl.Logger().With("component", "kastor.saga", "saga", typ, "instance", cfg.InstanceID)
	return cfg, nil
}

// stateTxnID is the transactional ID of the owner of partition p: one per partition, so
// that a new owner's InitProducerID fences the previous one, zombie or not, and aborts
// its open transaction (decision 10's first mechanism; see the package doc).
func (s *settings[S, C, E]) stateTxnID(p int32) string {
	return fmt.Sprintf("%s-p%d", s.runnerGroup, p)
}
