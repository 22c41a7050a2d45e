package consumer

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/topics"
)

// FailurePolicy says what a reader does with an event that still fails after its retries.
type FailurePolicy int

const (
	// ParkEvent parks the failed event on the dead-letter topic and goes on with the
	// partition, including the aggregate's later events. The aggregate's order is broken
	// for the parked event only: a replay applies it after its successors.
	ParkEvent FailurePolicy = iota
	// ParkAggregate parks the failed event and then holds every later event of the same
	// aggregate (sending it to the dead-letter topic marked "held") until the parked
	// events are replayed, while other aggregates keep flowing. A replay applies the
	// parked event and the held ones in their original order, so the aggregate's order is
	// kept at the price of a stale read model for that aggregate. The aggregate's next
	// events flow again once readers learn of the replay (or a purge): a
	// projection.Projection does through the registry; a Reader run alone, when
	// Reader.ReloadDeadLetters is called.
	ParkAggregate
)

// String names the policy.
func (p FailurePolicy) String() string {
	switch p {
	case ParkEvent:
		return "ParkEvent"
	case ParkAggregate:
		return "ParkAggregate"
	}
	return fmt.Sprintf("FailurePolicy(%d)", int(p))
}

// Retry is how an event that fails to apply is retried before it is parked. The delay
// doubles after each failed attempt, from InitialBackoff up to MaxBackoff, less a random
// jitter of up to a fifth so that partitions failing together do not retry in step.
type Retry struct {
	// Attempts is how many times an event is tried in all, the first included (default
	// 5). 1 parks an event at its first failure.
	Attempts int
	// InitialBackoff is the pause after the first failure (default 100ms).
	InitialBackoff time.Duration
	// MaxBackoff caps the pause (default 5s). It also paces retries of an unavailable
	// sink or dead-letter topic, which are retried without limit (see ErrUnavailable).
	MaxBackoff time.Duration
}

// Filter selects the events a projection applies. Filters read record headers only, so a
// filtered-out event is never decoded. An empty field does not filter; set fields must
// all match.
type Filter struct {
	// EventTypes keeps events whose type name (kastor.type header) is listed.
	EventTypes []string
	// Tags keeps events that carry at least one of the tags.
	Tags []string
	// AggregateIDs keeps events of the listed aggregates.
	AggregateIDs []string
}

// Config configures a Reader (a projection) over one or more events topics. Its name and
// version name the consumer group (GroupName) and its name the dead-letter topic
// (DLQTopic), both in the namespace of the cluster.Cluster the reader is given (New),
// which also gives the brokers, the client options, the logger and the metrics
// registerer. The zero values of optional fields are the documented defaults.
type Config[E any] struct {
	// Name identifies the projection, for example "account-balances". It names the
	// consumer group and the dead-letter topic, so it may only hold the characters of a
	// Kafka topic name: letters, digits, '.', '_' and '-'.
	Name string
	// Version is the projection's version, 1 or more. A new version is a new consumer
	// group that starts from the earliest offsets: that is how a projection is rebuilt
	// while the previous version keeps serving.
	Version int
	// AggregateTypes are the aggregate types whose events topics are read, in the
	// cluster's namespace (topics.TopicName(c.Namespace(), type, topics.RoleEvents)).
	AggregateTypes []string
	// Topics are further events topics to read, by full name. At least one topic, here
	// or through AggregateTypes, is required.
	Topics []string
	// Events decodes the events (schema.TypesCodec gives one for an event family):
	// writer schema, then reader schema, then upcasters.
	Events kastor.Codec[E]
	// Filter selects the events applied; the others are skipped without decoding.
	Filter Filter

	// Group overrides the consumer group name (default GroupName(c.Namespace(), Name,
	// Version), c the reader's cluster).
	Group string
	// AllPartitions makes the reader join no group: it reads every partition of its
	// topics itself, from the offsets its sink stored (earliest when none). Use it when
	// each process must hold the whole projection, as an in-memory read model queried
	// in every instance of a service. It needs a sink that stores its offsets
	// (OffsetStore); nothing is committed to Kafka.
	AllPartitions bool
	// Fetchers is, with AllPartitions, how many Kafka clients the partitions are dealt
	// to (default 2; never more than the partitions). Each fetcher decodes and applies
	// its own partitions in its own rounds, since franz-go decodes a client's fetches on
	// one goroutine (see decision 26). Each costs a connection per broker and a fetch
	// buffer (up to kgo.FetchMaxBytes). In a group the partitions are shared between
	// instances instead: Fetchers must be 0 or 1.
	Fetchers int
	// Retry is the retry schedule of events that fail to apply (default 5 attempts,
	// 100ms doubling up to 5s).
	Retry Retry
	// OnFailure is what happens to an event that still fails after its retries
	// (default ParkEvent).
	OnFailure FailurePolicy
	// Concurrency bounds how many partitions are applied at the same time (default 8).
	// Events of one partition are always applied one batch at a time, in offset order;
	// a sink must accept concurrent Apply calls for different partitions, or set 1.
	Concurrency int
	// MaxPollRecords is the most records taken from Kafka per round. A round applies
	// them, commits and only then lets the group rebalance; after a crash, an
	// at-least-once sink (Handler) sees the last round again, so smaller rounds mean fewer
	// duplicates. Default: 1000 for an at-least-once sink and for a TxSink (one
	// transaction per round, never cut short); for a sink that stores its offsets
	// (OffsetStore, as Memory) or with AllPartitions, everything the client has buffered,
	// since a crash duplicates nothing there and a round ends early, at a batch
	// boundary (at most 1000 events per Apply), when the group wants to rebalance. Large
	// rounds apply partitions in parallel and overlap the next fetch with the applying.
	MaxPollRecords int
}

// GroupName is the consumer group of version version of projection name:
// "<ns>.proj.<name>.v<version>".
func GroupName(ns, name string, version int) string {
	return fmt.Sprintf("%s.proj.%s.v%d", ns, name, version)
}

// DLQTopic is the dead-letter topic of projection name, shared by its versions (records
// carry the version in a header): "<ns>.proj.<name>.dlq". A reader refuses to start
// without it, and kastor never creates topics implicitly: list the projection under
// projections: in kastor.yaml and `kastor topics apply` plans it
// (topics.ProjectionDLQTopic), or create it like the other topics (any partition count:
// readers locate letters by their origin headers).
func DLQTopic(ns, name string) string { return topics.ProjectionDLQTopic(ns, name) }

var legalName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// settings is a Config with its defaults filled in and what the reader takes from its
// cluster.
type settings[E any] struct {
	Config[E]
	kc  *cluster.Cluster
	ns  string       // kc.Namespace()
	log *slog.Logger // kc.Logger() with the reader's attributes
}

// withDefaults validates c for cluster kc and returns a copy with the defaults filled in.
func (c *Config[E]) withDefaults(kc *cluster.Cluster) (*settings[E], error) {
	cfg := settings[E]{Config: *c, kc: kc}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf("consumer: "+format, args...)) }
	if kc == nil {
		fail("the cluster is nil")
	}
	switch {
	case cfg.Name == "":
		fail("Config.Name is empty")
	case !legalName.MatchString(cfg.Name):
		fail("Config.Name %q may only hold letters, digits, '.', '_' and '-': it names the consumer group and the dead-letter topic", cfg.Name)
	}
	if cfg.Version < 1 {
		fail("Config.Version is %d; versions start at 1", cfg.Version)
	}
	if len(cfg.AggregateTypes) == 0 && len(cfg.Topics) == 0 {
		fail("no topic to read: set Config.AggregateTypes or Config.Topics")
	}
	if cfg.Events == nil {
		fail("Config.Events (the events codec) is nil")
	}
	if cfg.OnFailure != ParkEvent && cfg.OnFailure != ParkAggregate {
		fail("Config.OnFailure is %v; use ParkEvent or ParkAggregate", cfg.OnFailure)
	}
	if cfg.Retry.Attempts < 0 || cfg.Retry.InitialBackoff < 0 || cfg.Retry.MaxBackoff < 0 {
		fail("Config.Retry has a negative field: %+v", cfg.Retry)
	}
	if cfg.Concurrency < 0 {
		fail("Config.Concurrency is negative (%d)", cfg.Concurrency)
	}
	switch {
	case cfg.Fetchers < 0:
		fail("Config.Fetchers is negative (%d)", cfg.Fetchers)
	case cfg.Fetchers > 1 && !cfg.AllPartitions:
		fail("Config.Fetchers is %d without AllPartitions: in a consumer group, run more instances to read partitions side by side", cfg.Fetchers)
	}
	if cfg.MaxPollRecords < 0 {
		fail("Config.MaxPollRecords is negative (%d)", cfg.MaxPollRecords)
	}
	if cfg.AllPartitions && cfg.Group != "" {
		fail("Config.Group is set with AllPartitions, which joins no group")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.ns = kc.Namespace()
	if cfg.Group == "" && !cfg.AllPartitions {
		cfg.Group = GroupName(cfg.ns, cfg.Name, cfg.Version)
	}
	if cfg.Retry.Attempts == 0 {
		cfg.Retry.Attempts = 5
	}
	if cfg.Retry.InitialBackoff == 0 {
		cfg.Retry.InitialBackoff = 100 * time.Millisecond
	}
	if cfg.Retry.MaxBackoff == 0 {
		cfg.Retry.MaxBackoff = 5 * time.Second
	}
	if cfg.Retry.MaxBackoff < cfg.Retry.InitialBackoff {
		cfg.Retry.MaxBackoff = cfg.Retry.InitialBackoff
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	switch {
	case !cfg.AllPartitions:
		cfg.Fetchers = 1
	case cfg.Fetchers == 0:
		cfg.Fetchers = 2
	}
	if cfg.MaxPollRecords == 0 {
		cfg.MaxPollRecords = 1000
	}
	cfg.log = kc.Logger().With("component", "kastor.consumer", "projection", cfg.Name, "version", cfg.Version)
	return &cfg, nil
}

// Validate reports every problem New would find in c for cluster kc, joined into one
// error, or nil. It checks the configuration only, not the sink nor the topics. Code
// that starts readers later, as a projection does for each version it builds, calls it
// up front so a mistake shows before anything runs.
func (c *Config[E]) Validate(kc *cluster.Cluster) error {
	_, err := c.withDefaults(kc)
	return err
}

// TopicNames returns the events topics a reader of c reads in namespace ns: those of
// AggregateTypes, then Topics, in that order, each once. They are what Reader.Topics
// returns, known before a reader exists, so a projection can record them.
func (c *Config[E]) TopicNames(ns string) []string {
	var names []string
	all := make([]string, 0, len(c.AggregateTypes)+len(c.Topics))
	for _, a := range c.AggregateTypes {
		all = append(all, topics.TopicName(ns, a, topics.RoleEvents))
	}
	for _, t := range append(all, c.Topics...) {
		if !slices.Contains(names, t) {
			names = append(names, t)
		}
	}
	return names
}

// dlqTopic is the projection's dead-letter topic.
func (c *settings[E]) dlqTopic() string { return DLQTopic(c.ns, c.Name) }
