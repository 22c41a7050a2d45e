package projection

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/internal/brokerwait"
	"github.com/kastor-dev/kastor/topics"
)

// RegistryTopic is the projection registry: a compacted topic with one partition, shared
// by every namespace, that holds each projection's state (the version serving, the one
// being built, the end offsets captured when the build started) and the requests tools
// make of the running projections (rebuild, replay dead letters) with their outcomes, as
// JSON records. One partition gives every record one total order, which makes the
// registry a compare-and-set log (see State.Epoch and decision 19). kastor never creates
// it implicitly: `kastor topics apply` does when kastor.yaml declares projections, and so
// do `kastor projection init` and CreateRegistry.
const RegistryTopic = topics.ProjectionsTopic

// RegistryTopicConfigs are the configs of RegistryTopic: compacted, so the registry keeps
// one record per projection, request and progress report, forever.
func RegistryTopicConfigs() map[string]string {
	return map[string]string{"cleanup.policy": "compact"}
}

// ErrNoRegistry is matched by the error returned when RegistryTopic does not exist.
var ErrNoRegistry = errors.New("projection: the registry topic does not exist")

type noRegistryError struct{}

func (noRegistryError) Error() string {
	return fmt.Sprintf("projection: the registry topic %q does not exist (kastor creates no topic implicitly): "+
		"declare the projection in kastor.yaml and run `kastor topics apply`, or run `kastor projection init` (1 partition, cleanup.policy=compact)", RegistryTopic)
}
func (noRegistryError) Is(target error) bool { return target == ErrNoRegistry }

// CreateRegistry creates RegistryTopic (1 partition, compacted) with the replication
// factor given (-1: the broker default). A topic that already exists is not an error;
// nothing else is created or changed.
func CreateRegistry(ctx context.Context, adm *kadm.Client, replicationFactor int16) error {
	cfg := map[string]*string{}
	for k, v := range RegistryTopicConfigs() {
		cfg[k] = &v
	}
	resp, err := adm.CreateTopic(ctx, 1, replicationFactor, cfg, RegistryTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("projection: creating %s: %w", RegistryTopic, err)
	}
	return nil
}

// Phase is where a projection is in its life cycle.
type Phase string

// The phases of a projection.
const (
	// PhaseServing: one version serves; nothing is being built.
	PhaseServing Phase = "serving"
	// PhaseRebuilding: Serving serves while Building catches up from the earliest offsets
	// under its own group, up to the end offsets captured when the rebuild started.
	PhaseRebuilding Phase = "rebuilding"
	// PhaseSwitched: Building caught up and now serves; the previous version's readers are
	// stopping and its consumer group is deleted once they have all left.
	PhaseSwitched Phase = "switched"
)

// PartitionOffset is an offset in one partition.
type PartitionOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// State is a projection's record in the registry, keyed "<ns>/<name>": which version
// serves, which one is being built, and the offsets a rebuild must reach.
type State struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Epoch numbers the state's transitions. A record is accepted only when its epoch is
	// the current one plus one, so when several instances propose the same transition at
	// once the first in the registry wins and the others are ignored by everyone.
	Epoch   int64 `json:"epoch"`
	Phase   Phase `json:"phase"`
	Serving int   `json:"serving"`
	// Building is the version being built, 0 for none.
	Building int `json:"building,omitempty"`
	// Previous is the version Serving replaced, being retired (PhaseSwitched) or retired.
	Previous int `json:"previous,omitempty"`
	// Starts and Ends are the log start and end (last stable) offsets captured when the
	// rebuild started: Building has caught up when its applied offsets reach Ends.
	Starts []PartitionOffset `json:"starts,omitempty"`
	Ends   []PartitionOffset `json:"ends,omitempty"`
	// RequestID is the rebuild request being (or last) executed, or the cancel request
	// that abandoned it.
	RequestID string `json:"requestId,omitempty"`
	// Abandoned is the last version whose build was cancelled; Cancelled is the rebuild
	// request that started it. The next rebuild builds max(Serving, Abandoned)+1.
	Abandoned int    `json:"abandoned,omitempty"`
	Cancelled string `json:"cancelled,omitempty"`
	// Topics are the events topics the projection reads.
	Topics []string `json:"topics"`
	// SinkOffsets is true when the serving sink stores its own offsets
	// (consumer.OffsetStore): resetting the consumer group does not reset it.
	SinkOffsets bool `json:"sinkOffsets,omitempty"`
	// AllPartitions is true when every instance reads every partition (no consumer group).
	AllPartitions bool      `json:"allPartitions,omitempty"`
	Instance      string    `json:"instance,omitempty"`
	StartedAt     time.Time `json:"startedAt,omitzero"`
	SwitchedAt    time.Time `json:"switchedAt,omitzero"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// EndOffsets returns Ends as a map, the form consumer.Progress.CaughtUp takes.
func (s *State) EndOffsets() map[consumer.TopicPartition]int64 { return offsetMap(s.Ends) }

func offsetMap(ps []PartitionOffset) map[consumer.TopicPartition]int64 {
	m := make(map[consumer.TopicPartition]int64, len(ps))
	for _, p := range ps {
		m[consumer.TopicPartition{Topic: p.Topic, Partition: p.Partition}] = p.Offset
	}
	return m
}

// RequestKind is what a request asks.
type RequestKind string

// The kinds of requests.
const (
	// RequestRebuild asks the running instances to build version Serving+1 and switch.
	RequestRebuild RequestKind = "rebuild"
	// RequestReplay asks one running instance to replay the serving version's dead letters
	// into its sink (Replay): only the application has the sink.
	RequestReplay RequestKind = "replay"
	// RequestPurge records that a tool marked dead letters resolved without applying them.
	RequestPurge RequestKind = "purge"
	// RequestCancel asks the running instances to abandon the rebuild in progress: the
	// serving version goes on, the building version's reader stops and its consumer
	// group is deleted, and the next rebuild builds a later version number, so it never
	// resumes the abandoned version's group or sink.
	RequestCancel RequestKind = "cancel"
)

// RequestStatus is where a request stands.
type RequestStatus string

// The statuses of a request. Done and failed are final: the first final record of a
// request is its outcome.
const (
	StatusPending RequestStatus = "pending"
	StatusRunning RequestStatus = "running"
	StatusDone    RequestStatus = "done"
	StatusFailed  RequestStatus = "failed"
)

// Request is a request of a tool or of code to the running instances of a projection,
// keyed "<ns>/<name>/request/<id>"; its outcome is written under the same key, so the
// compacted registry keeps the outcome.
type Request struct {
	ID        string        `json:"id"`
	Kind      RequestKind   `json:"kind"`
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	Status    RequestStatus `json:"status"`
	// Version is the version concerned: for a replay or purge the dead letters' version;
	// for a rebuild the version built (set when it starts).
	Version int `json:"version,omitempty"`
	// By says who asked (a user and host for the CLI).
	By string `json:"by,omitempty"`
	// Instance is the instance that executed (or is executing) the request.
	Instance string `json:"instance,omitempty"`
	// Claim identifies one claim of a replay request: a random token the claiming
	// instance writes with its "running" record and repeats in each renewal. Renewals
	// are matched by claim, not by Instance, so an instance restarted under the same
	// name does not inherit the claim of the process it replaced.
	Claim string `json:"claim,omitempty"`
	// LeaseUntil is when a running replay's claim expires unless renewed (see
	// DefaultReplayLease): another instance may then take the request over.
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// Released marks the record with which the holder of a running replay gave its
	// claim up when it stopped gracefully: the lease ends at the record's UpdatedAt,
	// so another instance takes the request over at once instead of a lease later.
	Released bool `json:"released,omitempty"`
	// TakenFrom is the instance whose expired claim this claim replaced.
	TakenFrom string `json:"takenFrom,omitempty"`
	Error     string `json:"error,omitempty"`
	// From and To are a rebuild's versions.
	From int `json:"from,omitempty"`
	To   int `json:"to,omitempty"`
	// Resolved, Failed and Kept count a replay's or purge's dead letters (see ReplayResult).
	Resolved    int       `json:"resolved,omitempty"`
	Failed      int       `json:"failed,omitempty"`
	Kept        int       `json:"kept,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// Final reports whether the request has its outcome.
func (r *Request) Final() bool { return r.Status == StatusDone || r.Status == StatusFailed }

// DefaultReplayLease is how long a replay claim lasts unless renewed
// (Config.ReplayLease). The executing instance renews it every third of it, so
// it survives two lost renewals; an instance that dies leaves the request to the others
// this long after its last renewal.
const DefaultReplayLease = 30 * time.Second

// LeaseEnd is when a running replay's claim expires: LeaseUntil, or, for a claim
// written before claims had leases, DefaultReplayLease after it was written. It is
// computed from the record alone, so every reader of the registry agrees on it.
func (r *Request) LeaseEnd() time.Time {
	if !r.LeaseUntil.IsZero() {
		return r.LeaseUntil
	}
	return r.UpdatedAt.Add(DefaultReplayLease)
}

// RebuildProgress is a rebuild's progress as an instance last reported it, keyed
// "<ns>/<name>/progress": Done of Total offsets between the start offsets and the end
// offsets captured at the start.
type RebuildProgress struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	Done      int64     `json:"done"`
	Total     int64     `json:"total"`
	CaughtUp  bool      `json:"caughtUp"`
	Instance  string    `json:"instance,omitempty"`
	At        time.Time `json:"at"`
}

func stateKey(ns, name string) string       { return ns + "/" + name }
func progressKey(ns, name string) string    { return ns + "/" + name + "/progress" }
func requestKey(ns, name, id string) string { return ns + "/" + name + "/request/" + id }
func requestPrefix(ns, name string) string  { return ns + "/" + name + "/request/" }
func newID() string                         { b := make([]byte, 8); _, _ = rand.Read(b); return hex.EncodeToString(b) }
func registryRecord(key string, v any) *kgo.Record {
	data, _ := json.Marshal(v) // plain structs: Marshal cannot fail
	return &kgo.Record{Topic: RegistryTopic, Partition: 0, Key: []byte(key), Value: data}
}

// Registry is the registry's content folded up to some offset: every record was
// applied in order, by the rules every reader of the registry shares, so instances
// that read the same prefix agree.
type Registry struct {
	states   map[string]*State
	requests map[string]*Request
	progress map[string]*RebuildProgress
	next     int64
}

func newRegistry() *Registry {
	return &Registry{states: map[string]*State{}, requests: map[string]*Request{}, progress: map[string]*RebuildProgress{}}
}

// State returns the state of projection name in namespace ns.
func (g *Registry) State(ns, name string) (State, bool) {
	s, ok := g.states[stateKey(ns, name)]
	if !ok {
		return State{}, false
	}
	return *s, true
}

// States returns the states of the projections of namespace ns ("" for all), by name.
func (g *Registry) States(ns string) []State {
	var out []State
	for _, s := range g.states {
		if ns == "" || s.Namespace == ns {
			out = append(out, *s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace < out[j].Namespace || out[i].Namespace == out[j].Namespace && out[i].Name < out[j].Name
	})
	return out
}

// Request returns request id of projection name.
func (g *Registry) Request(ns, name, id string) (Request, bool) {
	r, ok := g.requests[requestKey(ns, name, id)]
	if !ok {
		return Request{}, false
	}
	return *r, true
}

// Requests returns the requests of projection name not final yet, oldest first.
func (g *Registry) pending(ns, name string) []*Request {
	var out []*Request
	prefix := requestPrefix(ns, name)
	for k, r := range g.requests {
		if strings.HasPrefix(k, prefix) && !r.Final() {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RequestedAt.Before(out[j].RequestedAt) })
	return out
}

// resolutions counts the replays and purges of projection name that resolved dead
// letters: when it changes, readers read their dead letters again (aggregates they held
// may flow).
func (g *Registry) resolutions(ns, name string) int {
	n := 0
	prefix := requestPrefix(ns, name)
	for k, r := range g.requests {
		if !strings.HasPrefix(k, prefix) || r.Kind != RequestReplay && r.Kind != RequestPurge {
			continue
		}
		// A taken-over replay's counts are its last executor's: the instance that died
		// may have resolved letters the outcome does not count.
		if r.Status == StatusDone && r.Resolved > 0 || r.Final() && r.TakenFrom != "" {
			n++
		}
	}
	return n
}

// Progress returns the last progress reported for projection name's rebuild.
func (g *Registry) Progress(ns, name string) (RebuildProgress, bool) {
	p, ok := g.progress[progressKey(ns, name)]
	if !ok {
		return RebuildProgress{}, false
	}
	return *p, true
}

// apply folds one registry record in. Records that do not parse are ignored: the
// registry is shared, and one bad record must not stop every projection.
func (g *Registry) apply(r *kgo.Record) {
	g.next = r.Offset + 1
	key := string(r.Key)
	switch {
	case strings.Contains(key, "/request/"):
		if r.Value == nil {
			delete(g.requests, key)
			return
		}
		var req Request
		if json.Unmarshal(r.Value, &req) != nil {
			return
		}
		cur := g.requests[key]
		switch {
		case cur == nil:
		case cur.Final():
			return // the first outcome stands
		case req.Status == StatusPending:
			return // already known
		case req.Status == StatusRunning && cur.Status == StatusRunning && !takesOver(cur, &req):
			return
		}
		g.requests[key] = &req
	case strings.HasSuffix(key, "/progress"):
		var p RebuildProgress
		if r.Value != nil && json.Unmarshal(r.Value, &p) == nil {
			g.progress[key] = &p
		}
	case strings.Count(key, "/") == 1:
		if r.Value == nil {
			delete(g.states, key)
			return
		}
		var s State
		if json.Unmarshal(r.Value, &s) != nil {
			return
		}
		if cur := g.states[key]; cur != nil && s.Epoch != cur.Epoch+1 {
			return // a concurrent proposal of a transition that already happened
		}
		g.states[key] = &s
	}
}

// takesOver reports whether running record req replaces running record cur. For a
// replay, the holder's renewals (same claim) are accepted, and another claim only once
// cur's lease has expired by req's own UpdatedAt: the decision uses the records alone,
// never the reader's clock, so every instance folding the same prefix picks the same
// holder, and of several instances claiming an expired lease the first in the registry
// wins. For other requests the first claim wins.
func takesOver(cur, req *Request) bool {
	if cur.Kind != RequestReplay {
		return false
	}
	if req.Claim != "" && req.Claim == cur.Claim {
		if cur.Released {
			return false // a released claim is over: nothing of it comes back
		}
		// A renewal never shortens the lease, so one delayed behind a later one is
		// moot; a release does, and its holder wrote it after its last renewal.
		return req.Released || !req.LeaseEnd().Before(cur.LeaseEnd())
	}
	return req.UpdatedAt.After(cur.LeaseEnd())
}

// registryClient reads and writes the registry: metadata and offsets through the
// cluster's shared client, records with a producer of its own (acks=all, no linger, the
// records' partition, 0) and a reader of its own per watch.
type registryClient struct {
	kc   *cluster.Cluster
	prod *kgo.Client
}

func newRegistryClient(ctx context.Context, kc *cluster.Cluster) (*registryClient, error) {
	if kc == nil {
		return nil, errNilCluster
	}
	prod, err := kc.NewClient(
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		return nil, fmt.Errorf("projection: %w", err)
	}
	c := &registryClient{kc: kc, prod: prod}
	if err := c.check(ctx); err != nil {
		prod.Close()
		return nil, err
	}
	return c, nil
}

func (c *registryClient) close() { c.prod.Close() }

// check verifies RegistryTopic exists, waiting for the cluster until ctx ends (a
// projection started with a broker down starts once the metadata can be read) but not
// for a missing topic.
func (c *registryClient) check(ctx context.Context) error {
	adm := c.kc.Admin()
	log := c.kc.Logger().With("component", "kastor.projection")
	return brokerwait.Do(ctx, log, "the metadata of topic "+RegistryTopic, func(ctx context.Context) error {
		m, err := adm.Metadata(ctx, RegistryTopic)
		if err != nil {
			return fmt.Errorf("projection: cannot read the metadata of %s from %v: %w", RegistryTopic, c.kc.Brokers(), err)
		}
		td, ok := m.Topics[RegistryTopic]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			return noRegistryError{}
		case td.Err != nil:
			return fmt.Errorf("projection: topic %s: %w", RegistryTopic, td.Err)
		}
		return nil
	})
}

func (c *registryClient) write(ctx context.Context, key string, v any) error {
	if err := c.prod.ProduceSync(ctx, registryRecord(key, v)).FirstErr(); err != nil {
		return fmt.Errorf("projection: writing to %s: %w", RegistryTopic, err)
	}
	return nil
}

// watch reads the registry from its start and calls fn with the folded registry once it
// has read up to the end as of the call, then after each later fetch, until fn returns
// true, fn returns an error, or ctx ends. fn must not keep g.
func (c *registryClient) watch(ctx context.Context, fn func(g *Registry) (bool, error)) error {
	ends, err := c.kc.Admin().ListEndOffsets(ctx, RegistryTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("projection: end offset of %s: %w", RegistryTopic, err)
	}
	end := int64(0)
	if o, ok := ends.Lookup(RegistryTopic, 0); ok {
		end = o.Offset
	}
	cl, err := c.kc.NewClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{RegistryTopic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return fmt.Errorf("projection: %w", err)
	}
	defer cl.Close()
	g := newRegistry()
	for {
		if g.next >= end {
			done, err := fn(g)
			if done || err != nil {
				return err
			}
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) {
				time.Sleep(100 * time.Millisecond) // a transient fetch error: pace the retries
			}
		})
		fs.EachRecord(g.apply)
	}
}

// ReadRegistry reads the projection registry of c's Kafka cluster to its end (as of the
// call): the projections of every namespace, since RegistryTopic is shared. It fails with
// ErrNoRegistry when RegistryTopic does not exist; brokers that are down are waited for,
// with a log line on c.Logger(), until ctx ends.
func ReadRegistry(ctx context.Context, c *cluster.Cluster) (*Registry, error) {
	return WatchRegistry(ctx, c, func(*Registry) (bool, error) { return true, nil })
}

// WatchRegistry reads the projection registry of c's Kafka cluster and calls fn with its
// content once it is read to its end as of the call, then after each change, until fn
// returns true or an error, or ctx ends; it returns the registry fn last saw. Tools use
// it to wait for a request's outcome and to follow a rebuild's progress. The registry is
// read by a client of its own made with c.NewClient (fetches wait at most 200 ms for new
// records); it fails with ErrNoRegistry when RegistryTopic does not exist.
func WatchRegistry(ctx context.Context, c *cluster.Cluster, fn func(g *Registry) (bool, error)) (*Registry, error) {
	rc, err := newRegistryClient(ctx, c)
	if err != nil {
		return nil, err
	}
	defer rc.close()
	var last *Registry
	err = rc.watch(ctx, func(g *Registry) (bool, error) { last = g; return fn(g) })
	return last, err
}

// SubmitRequest writes a request for the running instances of projection req.Name of c's
// namespace (a rebuild, a cancellation or a replay), or the record of a purge, and
// returns it with its ID, namespace and times set; it does not wait for the outcome,
// since the instances execute the request when they read it. req.Namespace, when set,
// must be c.Namespace(); req.Status defaults to StatusPending. The record is written to
// RegistryTopic with acks=all by a producer of its own made with c.NewClient. Follow its
// outcome with WatchRegistry and Registry.Request.
func SubmitRequest(ctx context.Context, c *cluster.Cluster, req Request) (Request, error) {
	if c == nil {
		return req, errNilCluster
	}
	switch {
	case req.Namespace == "":
		req.Namespace = c.Namespace()
	case req.Namespace != c.Namespace():
		return req, fmt.Errorf("projection: the request is for namespace %q, the cluster's is %q", req.Namespace, c.Namespace())
	}
	rc, err := newRegistryClient(ctx, c)
	if err != nil {
		return req, err
	}
	defer rc.close()
	if req.ID == "" {
		req.ID = newID()
	}
	if req.Status == "" {
		req.Status = StatusPending
	}
	now := time.Now().UTC()
	if req.RequestedAt.IsZero() {
		req.RequestedAt = now
	}
	req.UpdatedAt = now
	return req, rc.write(ctx, requestKey(req.Namespace, req.Name, req.ID), req)
}

// errNilCluster is returned by the functions given a nil *cluster.Cluster.
var errNilCluster = errors.New("projection: the cluster is nil")
