package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// A Cluster is the shared client with the namespace, logger, metrics registerer and
// tracer of the components that use it. It is safe for concurrent use. It does not own the client:
// close the client when every component is done.
type Cluster struct {
	cl  *kgo.Client
	adm *kadm.Client
	ns  string
	log *slog.Logger
	reg prometheus.Registerer
	tr  kastor.Tracer
}

// An Option configures a Cluster.
type Option func(*Cluster)

// Logger sets the logger of the components (default slog.Default()). Each adds its own
// attributes (component, aggregate type, projection).
func Logger(l *slog.Logger) Option { return func(c *Cluster) { c.log = l } }

// Registerer sets where the components register their Prometheus metrics (default none:
// no metrics are registered). Components of one kind and subject (two gateways of one
// aggregate type) cannot share a registerer.
func Registerer(r prometheus.Registerer) Option { return func(c *Cluster) { c.reg = r } }

// Tracer sets the tracer that records the components' spans (default nil: none). Spans
// or not, every component propagates the W3C traceparent header (kastor.TraceContext):
// a Sender's command, the gateway's events and reply, a saga's commands; a tracer adds
// the spans of each hop, in the trace and with the parents the headers name. Package
// github.com/kastor-dev/kastor/otel implements it with OpenTelemetry.
func Tracer(t kastor.Tracer) Option { return func(c *Cluster) { c.tr = t } }

var validNamespace = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// New returns a Cluster over cl whose topic names start with namespace: an aggregate
// type's topics are <namespace>.<type>.commands, .events, .snapshots and .replies (package
// topics). A namespace is letters, digits, '.', '_' and '-', as topic names are.
//
// It refuses a client that would make the clients built
// from it (NewClient) consume or produce other than kastor asks: one that consumes topics
// or partitions, joins a group, is transactional, has a group instance ID, or has
// idempotent writes disabled (kastor's producers are idempotent and franz-go has no option
// that enables them again). Create a separate client for such uses.
func New(cl *kgo.Client, namespace string, opts ...Option) (*Cluster, error) {
	if cl == nil {
		return nil, errors.New("cluster: nil *kgo.Client")
	}
	c := &Cluster{cl: cl, ns: namespace, log: slog.Default()}
	for _, o := range opts {
		o(c)
	}
	if !validNamespace.MatchString(c.ns) {
		return nil, fmt.Errorf("cluster: namespace %q: want letters, digits, '.', '_' or '-'", c.ns)
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if bad := conflicting(cl); len(bad) > 0 {
		return nil, fmt.Errorf("cluster: the shared client sets %s: kastor builds its consumers and producers from the shared client's options, so it must not consume, join a group or be transactional; create a separate client for that", strings.Join(bad, ", "))
	}
	c.adm = kadm.NewClient(cl)
	return c, nil
}

// conflicting lists the options of cl that the clients NewClient builds must not inherit.
func conflicting(cl *kgo.Client) []string {
	var bad []string
	set := func(name string, opt any) {
		vs := cl.OptValues(opt)
		if len(vs) == 0 {
			return
		}
		switch v := vs[0].(type) {
		case string:
			if v == "" || len(vs) > 1 && vs[1] == false {
				return
			}
		case bool:
			if !v {
				return
			}
		case []string:
			if len(v) == 0 {
				return
			}
		case map[string]map[int32]kgo.Offset:
			if len(v) == 0 {
				return
			}
		case nil:
			return
		}
		bad = append(bad, name)
	}
	set("ConsumeTopics", kgo.ConsumeTopics)
	set("ConsumePartitions", kgo.ConsumePartitions)
	set("ConsumerGroup", kgo.ConsumerGroup)
	set("TransactionalID", kgo.TransactionalID)
	set("InstanceID", kgo.InstanceID)
	set("DisableIdempotentWrite", kgo.DisableIdempotentWrite)
	return bad
}

// Client returns the shared client.
func (c *Cluster) Client() *kgo.Client { return c.cl }

// Admin returns an admin client over the shared client.
func (c *Cluster) Admin() *kadm.Client { return c.adm }

// Namespace returns the namespace of the topic names.
func (c *Cluster) Namespace() string { return c.ns }

// Logger returns the components' logger.
func (c *Cluster) Logger() *slog.Logger { return c.log }

// Registerer returns where components register their metrics; nil means nowhere.
func (c *Cluster) Registerer() prometheus.Registerer { return c.reg }

// Tracer returns the components' tracer; nil means none.
func (c *Cluster) Tracer() kastor.Tracer { return c.tr }

// In returns a Cluster over the same client, logger, registerer and tracer whose topic
// names start with namespace: the topics of another bounded context.
func (c *Cluster) In(namespace string) (*Cluster, error) {
	return New(c.cl, namespace, Logger(c.log), Registerer(c.reg), Tracer(c.tr))
}

// NewClient returns a new client with the shared client's options followed by opts, which
// override them: for a component that must own a client (a consumer group member, a
// transactional producer, a reader of chosen partitions). The caller closes it.
func (c *Cluster) NewClient(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(Options(c.cl, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("cluster: new client: %w", err)
	}
	return cl, nil
}

// Options returns the options of a client derived from base: base's options followed by
// own, which override them. It is what NewClient builds with, for the constructors that
// build their client themselves (kgo.NewGroupTransactSession) and for packages handed a
// plain *kgo.Client. base's own option slice is left as it is.
func Options(base *kgo.Client, own ...kgo.Opt) []kgo.Opt {
	b := base.Opts()
	return append(b[:len(b):len(b)], own...)
}

// Brokers returns the shared client's seed brokers, for messages and for tools that
// hand them on (a child process, a Java client).
func (c *Cluster) Brokers() []string {
	if v, ok := c.cl.OptValue(kgo.SeedBrokers).([]string); ok {
		return append([]string(nil), v...)
	}
	return nil
}
