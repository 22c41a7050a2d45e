package projection

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
)

// Config configures a Projection: a projection run by name across its versions,
// rebuilt without downtime.
type Config[E any] struct {
	// Reader is the configuration of each version's consumer.Reader, run on the
	// Projection's cluster. Its Version and Group are set by the Projection (each version
	// has its own group, consumer.GroupName) and must be zero.
	Reader consumer.Config[E]
	// Version is the version that serves when the registry does not know the projection
	// yet (its first run). Afterwards the registry says which version serves: an
	// instance follows it, so NewSink must build any version the registry may name.
	Version int
	// NewSink returns a new, empty sink for version: the serving version's at the start,
	// and a fresh one for the version a rebuild builds.
	NewSink func(version int) (consumer.Sink[E], error)
	// OnSwitch, when set, is called after the projection switched from version from to
	// version to in this instance: Serving returns the new version's sink from then on,
	// and queries holding the old one should let it go. It is also called at the start,
	// with from 0, once the serving version's reader is started.
	OnSwitch func(from, to int)
	// Instance names this instance in the registry (default: the host name, the process
	// ID and a random suffix).
	Instance string
	// Interval is how often a rebuild's progress is checked and reported, and a retired
	// group's deletion retried (default 1s).
	Interval time.Duration
	// ReplayLease is how long this instance's claim of a replay request lasts unless
	// renewed (default DefaultReplayLease). The instance executing a replay renews it
	// every third of it and stops before applying another letter once less than a sixth
	// of it is left without a renewal read back, so the other instances can take the
	// request over when it expires: instances' clocks must agree to within a sixth of
	// it. A sink whose Apply can take longer than the lease may see the letter it is
	// applying at a takeover applied again (see Replay).
	ReplayLease time.Duration
}

// Projection runs a projection by name in an application process: the serving version's
// consumer.Reader, and during a rebuild the next version's Reader beside it, following
// the projection registry (RegistryTopic) that every instance of the application and the
// kastor CLI share.
//
// A rebuild (Rebuild, or `kastor projection rebuild`) starts version v+1 from the
// earliest offsets under its own consumer group, into a fresh sink from NewSink, while v
// keeps serving. Once v+1 has applied up to the end offsets captured at the start (as its
// group's committed offsets show, or with consumer.Config.AllPartitions this instance's
// own reader), every instance switches to it (OnSwitch), stops v's reader, and v's group
// is deleted once empty. A replay request (`kastor dlq replay`) is executed with Replay,
// through the serving sink, by the instance holding its lease (ReplayLease); another
// instance takes it over when that one dies or stalls. Both go through the registry,
// whose single partition makes every instance agree (decisions 19 and 25).
type Projection[E any] struct {
	kc       *cluster.Cluster
	cfg      Config[E]
	topics   []string
	instance string
	interval time.Duration

	mu        sync.RWMutex
	serving   int
	sink      consumer.Sink[E]
	state     State
	haveState bool
	reg       *registryClient // set while Run runs
	running   bool

	lease time.Duration
	// Test hooks (export_test.go): renewalsPaused stops this instance's lease renewals
	// while it returns true, as a stalled process would; replayEnded is told when an
	// executor of a replay request returns.
	renewalsPaused func() bool
	replayEnded    func(id string, err error)
}

// New validates cfg and returns a projection of c's namespace; Run starts it.
//
// Its readers run on c as consumer.New describes. The registry (RegistryTopic, shared by
// every namespace of the Kafka cluster) is read and written by clients of its own made
// with c.NewClient; offsets and groups are listed and deleted through the shared client.
// The projection logs to c.Logger() with the attributes component=kastor.projection,
// projection and instance.
func New[E any](c *cluster.Cluster, cfg Config[E]) (*Projection[E], error) {
	var errs []error
	if cfg.Reader.Version != 0 {
		errs = append(errs, errors.New("Config.Reader.Version is set: the Projection sets each reader's version (use Config.Version)"))
	}
	if cfg.Reader.Group != "" {
		errs = append(errs, errors.New("Config.Reader.Group is set: each version has its own group, consumer.GroupName(ns, name, version)"))
	}
	if cfg.Version < 1 {
		errs = append(errs, fmt.Errorf("Config.Version is %d; versions start at 1", cfg.Version))
	}
	if cfg.NewSink == nil {
		errs = append(errs, errors.New("Config.NewSink is nil"))
	}
	rc := cfg.Reader
	rc.Version = max(cfg.Version, 1)
	if err := rc.Validate(c); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("projection: %w", errors.Join(errs...))
	}
	p := &Projection[E]{kc: c, cfg: cfg, topics: rc.TopicNames(c.Namespace()), instance: cfg.Instance, interval: cfg.Interval}
	if p.instance == "" {
		host, _ := os.Hostname()
		p.instance = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), newID()[:4])
	}
	if p.interval <= 0 {
		p.interval = time.Second
	}
	p.lease = cfg.ReplayLease
	if p.lease <= 0 {
		p.lease = DefaultReplayLease
	}
	return p, nil
}

// Serving returns the version serving in this instance and its sink (nil before Run
// started it). Queries go to that sink; after OnSwitch, call Serving again.
func (p *Projection[E]) Serving() (int, consumer.Sink[E]) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.serving, p.sink
}

// State returns the projection's registry record as this instance last read it, and
// false before Run has read the registry.
func (p *Projection[E]) State() (State, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.state, p.haveState
}

// Rebuild asks every running instance of the projection (this one included) to build
// version Serving+1 and switch to it once caught up, as `kastor projection rebuild`
// does, and returns the request's ID. It returns at once; the outcome is recorded in
// the registry (WatchRegistry, Registry.Request). It needs Run to be running, since the
// request is executed by the running instances.
func (p *Projection[E]) Rebuild(ctx context.Context) (string, error) {
	return p.request(ctx, RequestRebuild)
}

// request writes a request of this instance to the registry.
func (p *Projection[E]) request(ctx context.Context, kind RequestKind) (string, error) {
	p.mu.RLock()
	reg := p.reg
	p.mu.RUnlock()
	if reg == nil {
		return "", fmt.Errorf("projection: a %s request needs the projection to be running (call Run first)", kind)
	}
	req := Request{ID: newID(), Kind: kind, Namespace: p.kc.Namespace(), Name: p.cfg.Reader.Name,
		Status: StatusPending, By: p.instance, RequestedAt: time.Now().UTC()}
	req.UpdatedAt = req.RequestedAt
	return req.ID, reg.write(ctx, requestKey(req.Namespace, req.Name, req.ID), req)
}

// CancelRebuild asks the running instances to abandon the rebuild in progress (see
// RequestCancel) and returns the request's ID; its outcome is recorded in the registry.
func (p *Projection[E]) CancelRebuild(ctx context.Context) (string, error) {
	return p.request(ctx, RequestCancel)
}

// readerConfig is the reader configuration of version v.
func (p *Projection[E]) readerConfig(v int) consumer.Config[E] {
	c := p.cfg.Reader
	c.Version = v
	return c
}

// versionRun is one version's reader running in this instance.
type versionRun[E any] struct {
	version int
	sink    consumer.Sink[E]
	reader  *consumer.Reader[E]
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run returned, err set
	err     error
}

// startVersion starts version v's reader with a new sink.
func (p *Projection[E]) startVersion(ctx context.Context, v int) (*versionRun[E], error) {
	sink, err := p.cfg.NewSink(v)
	if err != nil {
		return nil, fmt.Errorf("projection: NewSink(%d): %w", v, err)
	}
	rd, err := consumer.New(p.kc, p.readerConfig(v), sink)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	run := &versionRun[E]{version: v, sink: sink, reader: rd, cancel: cancel, done: make(chan struct{})}
	go func() {
		run.err = rd.Run(rctx)
		close(run.done)
	}()
	return run, nil
}

// stop stops the reader and waits for it, then closes the sink when it has a Close
// method (an io.Closer): nothing will use it again.
func (r *versionRun[E]) stop() error {
	r.cancel()
	<-r.done
	if c, ok := r.sink.(interface{ Close() error }); ok {
		_ = c.Close()
	}
	return r.err
}

// Run runs the projection until ctx ends, then stops its readers and returns nil. It
// returns an error when it cannot start: the registry topic (RegistryTopic) missing, an
// events or dead-letter topic missing, a sink that cannot be made, or a reader that
// stops with an error.
func (p *Projection[E]) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return errors.New("projection: Run was already called on this projection")
	}
	p.running = true
	p.mu.Unlock()
	rc := p.cfg.Reader
	reg, err := newRegistryClient(ctx, p.kc)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer reg.close()
	c := &controller[E]{p: p, reg: reg, adm: p.kc.Admin(),
		log: p.kc.Logger().With("component", "kastor.projection", "projection", rc.Name, "instance", p.instance)}
	p.mu.Lock()
	p.reg = reg
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.reg = nil
		p.mu.Unlock()
	}()
	return c.run(ctx)
}
