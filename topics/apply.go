package topics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Action is what Apply did, or would do, with a topic.
type Action string

// The actions of Apply.
const (
	ActionCreated     Action = "created"      // the topic was missing and has been created
	ActionUnchanged   Action = "unchanged"    // the topic exists as planned
	ActionDrift       Action = "drift"        // the topic exists with other settings and was left alone
	ActionWouldCreate Action = "would-create" // dry run: the topic is missing and would be created
	ActionFailed      Action = "failed"       // creating (or, in a dry run, validating) the topic failed
)

// TopicResult is the outcome for one topic of the plan.
type TopicResult struct {
	TopicStatus
	Action Action `json:"action"`
	// Note adds context: the broker's error for a failed topic, or that another client
	// created the topic at the same moment.
	Note string `json:"note,omitempty"`
}

// Result is the outcome of Apply, in plan order.
type Result struct {
	DryRun bool          `json:"dryRun"`
	Topics []TopicResult `json:"topics"`
}

// Count returns how many topics got action a.
func (r *Result) Count(a Action) int {
	n := 0
	for _, t := range r.Topics {
		if t.Action == a {
			n++
		}
	}
	return n
}

// Drifted returns the names of the topics left with drift.
func (r *Result) Drifted() []string {
	var out []string
	for _, t := range r.Topics {
		if t.Action == ActionDrift {
			out = append(out, t.Name())
		}
	}
	return out
}

// Name is the topic's name.
func (t TopicStatus) Name() string { return t.Spec.Name }

const noteRace = "created at the same moment by another client; checked again"

// Apply creates the plan's missing topics, with their configs, and reports on the others.
// It never modifies an existing topic: differences are reported as drift, and the
// returned error matches ErrDrift, while the topics stay as they are (see the package
// documentation and decision 6).
//
// Apply is idempotent: running it again creates nothing. When another client creates a
// topic concurrently (TOPIC_ALREADY_EXISTS), the topic is treated as existing and
// compared again. Created topics are waited for until every partition has a leader, so a
// producer can use them as soon as Apply returns. With opts.DryRun nothing is created:
// missing topics are validated by the cluster (CreateTopics with validate_only) and
// reported as would-create.
//
// The result is nil only when the cluster could not be read at all; otherwise it lists
// every topic, also when the error reports failed creations or drift.
func Apply(ctx context.Context, adm *kadm.Client, plan Plan, opts Options) (*Result, error) {
	statuses, err := Diff(ctx, adm, plan, opts)
	if err != nil && !errors.Is(err, ErrDrift) {
		return nil, err
	}
	res := &Result{DryRun: opts.DryRun, Topics: make([]TopicResult, len(statuses))}
	var missing []int
	for i, st := range statuses {
		res.Topics[i].TopicStatus = st
		switch st.State {
		case StateOK:
			res.Topics[i].Action = ActionUnchanged
		case StateDrift:
			res.Topics[i].Action = ActionDrift
		case StateMissing:
			missing = append(missing, i)
		}
	}

	outcomes := make([]error, len(statuses))
	var wg sync.WaitGroup
	for _, i := range missing {
		wg.Go(func() {
			outcomes[i] = create(ctx, adm, statuses[i].Spec, opts)
		})
	}
	wg.Wait()

	var (
		errs     []error
		failures failureGroups
		created  []TopicSpec
		raced    []int
		rfBroker = -1
	)
	for _, i := range missing {
		t := &res.Topics[i]
		err := outcomes[i]
		switch {
		case err == nil && opts.DryRun:
			t.Action = ActionWouldCreate
		case err == nil:
			t.Action = ActionCreated
			created = append(created, t.Spec)
		case errors.Is(err, kerr.TopicAlreadyExists):
			raced = append(raced, i)
			created = append(created, t.Spec)
		case errors.Is(err, ErrUnreachable) || ctx.Err() != nil:
			return res, err
		default:
			if errors.Is(err, kerr.InvalidReplicationFactor) {
				if rfBroker < 0 {
					rfBroker = countBrokers(ctx, adm, opts)
				}
				if rfBroker > 0 {
					err = fmt.Errorf("%w (the cluster has %d broker(s): lower replicationFactor and minInsyncReplicas in the topic file)", err, rfBroker)
				}
			}
			t.Action = ActionFailed
			t.Note = err.Error()
			failures.add(t.Spec.Name, err)
		}
	}

	if len(created) > 0 {
		if err := waitReady(ctx, adm, created, opts); err != nil {
			return res, err
		}
	}
	if len(raced) > 0 {
		names := make([]string, len(raced))
		for j, i := range raced {
			names[j] = statuses[i].Spec.Name
		}
		observed, err := observe(ctx, adm, names, opts)
		if err != nil {
			return res, err
		}
		for _, i := range raced {
			t := &res.Topics[i]
			t.TopicStatus = Compare(t.Spec, observed[t.Spec.Name])
			t.Note = noteRace
			switch t.State {
			case StateOK:
				t.Action = ActionUnchanged
			case StateDrift:
				t.Action = ActionDrift
			default:
				t.Action = ActionFailed
				t.Note = "the broker said the topic exists, but it cannot be described"
				errs = append(errs, fmt.Errorf("creating %s: %s", t.Spec.Name, t.Note))
			}
		}
	}

	errs = append(failures.errors(opts.DryRun), errs...)
	if drifted := res.Drifted(); len(drifted) > 0 {
		errs = append(errs, &DriftError{Topics: drifted})
	}
	return res, errors.Join(errs...)
}

// failureGroups collects failed creations, grouping topics that failed for the same
// reason (typically all of them, for a replication factor the cluster cannot host) so the
// reason is reported once.
type failureGroups struct {
	order []string
	names map[string][]string
	errs  map[string]error
}

func (g *failureGroups) add(topic string, err error) {
	if g.names == nil {
		g.names, g.errs = map[string][]string{}, map[string]error{}
	}
	msg := err.Error()
	if _, ok := g.names[msg]; !ok {
		g.order = append(g.order, msg)
		g.errs[msg] = err
	}
	g.names[msg] = append(g.names[msg], topic)
}

func (g *failureGroups) errors(dryRun bool) []error {
	verb := "creating"
	if dryRun {
		verb = "validating the creation of"
	}
	var out []error
	for _, msg := range g.order {
		out = append(out, fmt.Errorf("%s %s: %w", verb, strings.Join(g.names[msg], ", "), g.errs[msg]))
	}
	return out
}

// create creates one topic (or validates its creation in a dry run).
func create(ctx context.Context, adm *kadm.Client, spec TopicSpec, opts Options) error {
	cctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	configs := make(map[string]*string, len(spec.Configs))
	for k, v := range spec.Configs {
		configs[k] = kadm.StringPtr(v)
	}
	var resps kadm.CreateTopicResponses
	var err error
	if opts.DryRun {
		resps, err = adm.ValidateCreateTopics(cctx, spec.Partitions, spec.ReplicationFactor, configs, spec.Name)
	} else {
		resps, err = adm.CreateTopics(cctx, spec.Partitions, spec.ReplicationFactor, configs, spec.Name)
	}
	if err != nil {
		return clusterErr(ctx, "creating "+spec.Name, opts, err)
	}
	r, ok := resps[spec.Name]
	if !ok {
		return fmt.Errorf("the broker did not answer for %s", spec.Name)
	}
	if r.Err != nil {
		if r.ErrMessage != "" && !strings.Contains(r.Err.Error(), r.ErrMessage) {
			return fmt.Errorf("%w (%s)", r.Err, r.ErrMessage)
		}
		return r.Err
	}
	return nil
}

func countBrokers(ctx context.Context, adm *kadm.Client, opts Options) int {
	cctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	m, err := adm.BrokerMetadata(cctx)
	if err != nil {
		return 0
	}
	return len(m.Brokers)
}

// waitReady waits until every topic is in the metadata with all its partitions led. A
// CreateTopics response means the controller has the topic; brokers learn about it an
// instant later, and a client that produces in that instant gets UNKNOWN_TOPIC errors.
func waitReady(ctx context.Context, adm *kadm.Client, specs []TopicSpec, opts Options) error {
	cctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		m, err := adm.Metadata(cctx, names...)
		if err == nil {
			last = nil
			for _, s := range specs {
				if last = topicReady(m.Topics, s.Name); last != nil {
					break
				}
			}
			if last == nil {
				return nil
			}
		} else {
			last = err
		}
		select {
		case <-cctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if isConnectionErr(last) {
				return &UnreachableError{Brokers: opts.Brokers, Timeout: opts.timeout(), Err: last}
			}
			return fmt.Errorf("topics created but not ready within %s: %v", opts.timeout(), last)
		case <-tick.C:
		}
	}
}

func topicReady(details kadm.TopicDetails, name string) error {
	td, ok := details[name]
	if !ok {
		return fmt.Errorf("%s is not in the metadata yet", name)
	}
	if td.Err != nil {
		return fmt.Errorf("%s: %w", name, td.Err)
	}
	if len(td.Partitions) == 0 {
		return fmt.Errorf("%s has no partitions in the metadata yet", name)
	}
	for _, p := range td.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return fmt.Errorf("%s partition %d has no leader yet", name, p.Partition)
		}
	}
	return nil
}

// ApplyYAML is Apply for the plan of a topic file's content (see Parse): `kastor topics
// apply` for a service that creates its own topics at startup, as the examples do.
func ApplyYAML(ctx context.Context, adm *kadm.Client, data []byte, opts Options) (*Result, error) {
	cfg, err := Parse(data, "topic file")
	if err != nil {
		return nil, err
	}
	return Apply(ctx, adm, NewPlan(cfg), opts)
}
