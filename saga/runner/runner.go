package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/internal/brokerwait"
	"github.com/kastor-dev/kastor/schema"
)

// Runner runs one saga type: its router (events of the source aggregate types to the
// inputs topic) and its runner (inputs to instances, commands and deadlines). Run it in
// as many processes as needed: each is a member of two consumer groups, and each inputs
// partition has one writer at a time.
type Runner[S, C, E any] struct {
	cfg     *settings[S, C, E]
	cluster *cluster.Cluster
	metrics *metrics

	mu sync.Mutex
	// partitions is the inputs (and state) topic's partition count; commandParts the
	// commands topics', by aggregate type.
	partitions   int32
	commandParts map[string]int32

	// crashAfter is a fault injection for tests: when it reaches zero in a commit, after
	// the transaction's records are written and before it ends, the runner stops as if
	// killed: its open transaction is left open and its producer is not closed (crashed
	// receives it), and Run returns errCrashed.
	crashAfter atomic.Int32
	crashed    func(*kgo.Client)
}

// errCrashed is Run's error after an injected crash.
var errCrashed = errors.New("saga runner: injected crash")

// New validates cfg and returns a Runner of cluster c; Run starts it. The topics are the
// saga type's in c's namespace (topics.SagaTopicName), the commands topics of the
// aggregate types in cfg.Commands and the events topics of cfg.Sources. Logs go to c's
// logger with component=kastor.saga, saga and instance; metrics (kastor_saga_*, labelled
// with the saga type) are registered with c's registerer when it has one. Each input is
// applied in a span, child of the input's traceparent, recorded by c's tracer when it
// has one; the commands it sends carry that span as their traceparent.
//
// Run's clients are built from c's client's options (c.NewClient), followed by the
// runner's, which win: a group member for the router (a transactional session) and one
// for the runner, a transactional producer per owned partition, and read_committed
// readers for restores.
func New[S, C, E any](c *cluster.Cluster, cfg Config[S, C, E]) (*Runner[S, C, E], error) {
	if c == nil {
		return nil, errors.New("saga runner: nil *cluster.Cluster")
	}
	sc, err := cfg.withDefaults(c)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(c.Registerer(), sc.Saga.Type)
	if err != nil {
		return nil, err
	}
	return &Runner[S, C, E]{cfg: sc, cluster: c, metrics: m}, nil
}

// Run runs the router (unless Config.NoRouter) and the runner until ctx ends, then
// finishes their open transactions, leaves the groups and returns nil. It first checks
// the topics and publishes the state topic's schemas (Schemas) and those of the codecs
// made by package schema to _kastor.schemas. It returns an error when it cannot go on:
// a topic missing, partition counts that differ, the cluster unreachable beyond retries.
// A transaction that fails (a fenced producer, a commit of unknown outcome) does not end
// it: the member rejoins its group and restores what it is assigned from Kafka.
func (r *Runner[S, C, E]) Run(ctx context.Context) error {
	if err := r.checkTopics(ctx); err != nil {
		return err
	}
	if err := r.publish(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	n := 1
	go func() { errs <- r.loop(ctx, "runner", r.runSession) }()
	if !r.cfg.NoRouter {
		n++
		go func() { errs <- r.loop(ctx, "router", r.routeSession) }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel() // one cannot go on: stop the other
		}
	}
	return first
}

// rejoinError is a session that must end so that its member rejoins and restores.
type rejoinError struct{ err error }

func (e *rejoinError) Error() string { return e.err.Error() }
func (e *rejoinError) Unwrap() error { return e.err }

// loop runs sessions until ctx ends or one fails for good.
func (r *Runner[S, C, E]) loop(ctx context.Context, what string, session func(context.Context) error) error {
	for {
		err := session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var rj *rejoinError
		if !errors.As(err, &rj) {
			return err
		}
		r.cfg.logger.Warn("rejoining the group and restoring from Kafka", "loop", what, "err", rj.err)
	}
}

// publish publishes the state records' schemas and the codecs' schemas.
func (r *Runner[S, C, E]) publish(ctx context.Context) error {
	cl := r.cluster.Client()
	if err := schema.Publish(ctx, cl, nil, Schemas()...); err != nil {
		return fmt.Errorf("saga runner: %w", err)
	}
	codecs := []any{r.cfg.States, r.cfg.Events}
	for _, c := range r.cfg.Commands {
		codecs = append(codecs, c)
	}
	if err := schema.PublishCodecs(ctx, cl, codecs...); err != nil {
		return fmt.Errorf("saga runner: %w", err)
	}
	return nil
}

// checkTopics checks that every topic exists, that inputs and state have one partition
// count, and records the partition counts.
func (r *Runner[S, C, E]) checkTopics(ctx context.Context) error {
	cfg := r.cfg
	names := []string{cfg.inputs, cfg.state, cfg.dlq}
	for _, t := range cfg.commandTopics {
		names = append(names, t)
	}
	if !cfg.NoRouter {
		names = append(names, cfg.eventTopics...)
	}
	var md kadm.Metadata
	err := brokerwait.Do(ctx, cfg.logger, "the cluster's metadata of "+strings.Join(names, ", "), func(ctx context.Context) error {
		var err error
		md, err = r.cluster.Admin().Metadata(ctx, names...)
		if err != nil {
			return err
		}
		for _, name := range names {
			if td, ok := md.Topics[name]; ok && td.Err != nil && !errors.Is(td.Err, kerr.UnknownTopicOrPartition) && brokerwait.Transient(td.Err) {
				return td.Err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("saga runner: metadata: %w", err)
	}
	count := map[string]int32{}
	var errs []error
	for _, name := range names {
		td, ok := md.Topics[name]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			hint := "create it with `kastor topics apply`"
			if name == cfg.inputs || name == cfg.state || name == cfg.dlq {
				hint = fmt.Sprintf("add `sagas: [{type: %s}]` to kastor.yaml and run `kastor topics apply`", cfg.Saga.Type)
			}
			errs = append(errs, fmt.Errorf("saga runner: topic %q is missing (%s)", name, hint))
		case td.Err != nil:
			errs = append(errs, fmt.Errorf("saga runner: topic %q: %w", name, td.Err))
		default:
			count[name] = int32(len(td.Partitions))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if count[cfg.inputs] != count[cfg.state] {
		return fmt.Errorf("saga runner: topic %q has %d partitions and %q has %d: a saga's inputs and state must have the same count, since an instance's partition number is the same in both",
			cfg.inputs, count[cfg.inputs], cfg.state, count[cfg.state])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partitions = count[cfg.inputs]
	r.commandParts = map[string]int32{}
	for agg, t := range cfg.commandTopics {
		r.commandParts[agg] = count[t]
	}
	return nil
}
