package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/devbroker"

	"github.com/kastor-dev/kastor/internal/dockerenv"
)

// Backend names what runs a Cluster's brokers.
type Backend string

const (
	// Containers is Apache Kafka in Docker containers started by the harness.
	Containers Backend = "containers"
	// External is a cluster named by KAFKA_BROKERS; the harness starts and stops nothing.
	External Backend = "external"
	// Embedded is franz-go's kfake in the test process: not Apache Kafka.
	Embedded Backend = "embedded"
)

// ErrNoDocker is returned by New when no Docker engine can be reached.
var ErrNoDocker = errors.New("kafkatest: no Docker engine reachable")

// ErrNotContainers is returned by node operations on a cluster the harness does not run in
// containers (an external cluster or the embedded broker).
var ErrNotContainers = errors.New("kafkatest: node control needs a cluster started in containers")

// Cluster is a running Kafka cluster for tests.
type Cluster struct {
	backend  Backend
	brokers  []string
	client   *kgo.Client
	admin    *kadm.Client
	embedded *devbroker.Broker
	docker   *dockerCluster

	closeOnce sync.Once
	closeErr  error
}

// Start returns a running cluster for the test and closes it when the test ends. See the
// package documentation for how the backend is chosen and when the test is skipped.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := New(ctx, opts...)
	c = Use(t, c, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, line := range c.nodeLogTails(context.Background(), 60) {
				t.Log(line)
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("kafkatest: closing cluster: %v", err)
		}
	})
	return c
}

// Use hands a test the cluster that New returned, typically in TestMain for a cluster shared
// by a package's tests. When New failed for lack of Docker, the test is skipped with a message
// saying how to run it, or fails when CI or KASTOR_REQUIRE_DOCKER is set; other errors fail it.
func Use(t testing.TB, c *Cluster, err error) *Cluster {
	t.Helper()
	dockerenv.Require(t, err, ErrNoDocker, howToRun)
	return c
}

const howToRun = "integration tests need real Kafka: run `make test` (it installs and starts Docker " +
	"and builds the Kafka image when they are missing), or point KAFKA_BROKERS at a running cluster"

// New starts a cluster (or connects to KAFKA_BROKERS) without a testing.TB, for TestMain and
// programs. The caller must Close it. It returns an error wrapping ErrNoDocker when it would
// need Docker and none can be reached.
func New(ctx context.Context, opts ...Option) (*Cluster, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if env := strings.TrimSpace(os.Getenv("KAFKA_BROKERS")); env != "" {
		var brokers []string
		for _, b := range strings.Split(env, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
		return connect(ctx, External, brokers, cfg.nodes)
	}
	dc, err := startContainers(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, Containers, dc.brokers(), cfg.nodes)
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, strings.Join(dc.logTails(context.Background(), 40), "\n"))
		dc.terminate(context.Background())
		return nil, err
	}
	c.docker = dc
	return c, nil
}

// StartEmbedded returns franz-go's kfake broker running in the test process, closed when the
// test ends. Only Nodes applies among the options.
func StartEmbedded(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	c, err := NewEmbedded(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// NewEmbedded is StartEmbedded without a testing.TB. The caller must Close the cluster.
func NewEmbedded(ctx context.Context, opts ...Option) (*Cluster, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	b, err := devbroker.Start(devbroker.Nodes(cfg.nodes))
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, Embedded, b.Addrs(), cfg.nodes)
	if err != nil {
		b.Close()
		return nil, err
	}
	c.embedded = b
	return c, nil
}

// connect makes the admin client and waits until the cluster answers with wantBrokers
// brokers (at least one for an external cluster, whose size the harness does not know).
func connect(ctx context.Context, backend Backend, brokers []string, wantBrokers int) (*Cluster, error) {
	if len(brokers) == 0 {
		return nil, errors.New("kafkatest: no broker address")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DialTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("kafkatest: client for %v: %w", brokers, err)
	}
	c := &Cluster{backend: backend, brokers: brokers, client: cl, admin: kadm.NewClient(cl)}
	if backend == External {
		wantBrokers = 1
	}
	if err := c.waitForBrokers(ctx, wantBrokers, 2*time.Minute); err != nil {
		cl.Close()
		return nil, err
	}
	return c, nil
}

// waitForBrokers polls the cluster metadata until it lists at least n brokers and a
// controller.
func (c *Cluster) waitForBrokers(ctx context.Context, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		m, err := c.metadata(ctx)
		switch {
		case err != nil:
			last = err
		case len(m.Brokers) < n:
			last = fmt.Errorf("%d of %d brokers registered", len(m.Brokers), n)
		case m.ControllerID < 0:
			last = errors.New("no active controller")
		default:
			// Registered is not yet reachable: ask every broker directly (a published port
			// can accept a connection before the broker behind it does).
			last = nil
			for _, b := range m.Brokers {
				if _, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, c.client.Broker(int(b.NodeID))); err != nil {
					last = fmt.Errorf("broker %d: %w", b.NodeID, err)
					break
				}
			}
			if last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkatest: cluster at %v not ready after %v: %v", c.brokers, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Backend tells what runs the brokers.
func (c *Cluster) Backend() Backend { return c.backend }

// Brokers returns the bootstrap addresses (host:port) for clients.
func (c *Cluster) Brokers() []string { return append([]string(nil), c.brokers...) }

// Admin returns an admin client for the cluster, owned by the Cluster.
func (c *Cluster) Admin() *kadm.Client { return c.admin }

// NewClient returns a franz-go client seeded with the cluster's brokers, with opts applied
// after the seed. The caller closes it.
func (c *Cluster) NewClient(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...)}, opts...)...)
}

// Client is NewClient for a test: it fails the test on error and closes the client when the
// test ends.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := c.NewClient(opts...)
	if err != nil {
		t.Fatalf("kafkatest: new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Kastor returns a kastor cluster.Cluster over a new client of the cluster (closed when the
// test ends) whose topic names start with namespace: what gateway.New, gateway.NewSender
// and consumer.New take. opts are cluster options (logger, metrics registerer).
func (c *Cluster) Kastor(t testing.TB, namespace string, opts ...cluster.Option) *cluster.Cluster {
	t.Helper()
	kc, err := cluster.New(c.Client(t), namespace, opts...)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return kc
}

// CreateTopic creates a topic and waits until every partition has a leader. A replication
// factor of 0 or less means the broker default. configs are topic configs such as
// "min.insync.replicas". It fails the test on error.
func (c *Cluster) CreateTopic(t testing.TB, topic string, partitions int32, replicationFactor int16, configs map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateTopicContext(ctx, topic, partitions, replicationFactor, configs); err != nil {
		t.Fatal(err)
	}
}

// CreateTopicContext is CreateTopic without a testing.TB.
func (c *Cluster) CreateTopicContext(ctx context.Context, topic string, partitions int32, replicationFactor int16, configs map[string]string) error {
	if replicationFactor <= 0 {
		replicationFactor = -1
	}
	cfgs := make(map[string]*string, len(configs))
	for k, v := range configs {
		cfgs[k] = kadm.StringPtr(v)
	}
	for {
		resp, err := c.admin.CreateTopic(ctx, partitions, replicationFactor, cfgs, topic)
		if err == nil {
			err = resp.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			break
		}
		// A cluster that just started (or a node that just restarted) can drop a connection;
		// errors the broker answered with are final.
		var ke *kerr.Error
		if errors.As(err, &ke) || ctx.Err() != nil {
			return fmt.Errorf("kafkatest: create topic %q: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkatest: create topic %q: %w", topic, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return c.waitForLeaders(ctx, topic, int(partitions))
}

func (c *Cluster) waitForLeaders(ctx context.Context, topic string, partitions int) error {
	var last error
	for {
		last = c.leadersReady(ctx, topic, partitions)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkatest: topic %q not ready: %v", topic, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leadersReady checks that every broker knows the topic with a leader for each partition:
// brokers learn new topics from the controller at slightly different moments, and a test
// must not see "unknown topic" from whichever broker its next request happens to reach.
func (c *Cluster) leadersReady(ctx context.Context, topic string, partitions int) error {
	brokers, err := c.metadata(ctx)
	if err != nil {
		return err
	}
	for _, b := range brokers.Brokers {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		m, err := req.RequestWith(ctx, c.client.Broker(int(b.NodeID)))
		if err != nil {
			return fmt.Errorf("broker %d: %w", b.NodeID, err)
		}
		if err := topicReady(m, partitions); err != nil {
			return fmt.Errorf("broker %d: %w", b.NodeID, err)
		}
	}
	return nil
}

func topicReady(m *kmsg.MetadataResponse, partitions int) error {
	if len(m.Topics) != 1 {
		return errors.New("topic not in metadata yet")
	}
	td := m.Topics[0]
	if err := kerr.ErrorForCode(td.ErrorCode); err != nil {
		return err
	}
	if len(td.Partitions) < partitions {
		return fmt.Errorf("%d of %d partitions in metadata", len(td.Partitions), partitions)
	}
	for _, p := range td.Partitions {
		if p.Leader < 0 || p.ErrorCode != 0 {
			return fmt.Errorf("partition %d has no leader", p.Partition)
		}
	}
	return nil
}

// metadata asks the cluster for fresh metadata. kadm's metadata calls answer from the
// client's cache for a few seconds, which hides brokers that just joined or left.
func (c *Cluster) metadata(ctx context.Context, topics ...string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	if topics == nil {
		req.Topics = []kmsg.MetadataRequestTopic{} // brokers only
	}
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	return req.RequestWith(ctx, c.client)
}

var unsafeTopicChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// TopicName returns a topic name unique to this test and this run, derived from the test's
// name, so tests can share a cluster (or an external one) without seeing each other's data.
func TopicName(t testing.TB) string {
	name := unsafeTopicChars.ReplaceAllString(t.Name(), "-")
	if len(name) > 180 {
		name = name[:180]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// Close stops the containers the harness started (if any) and closes the admin client.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.client.Close()
		if c.embedded != nil {
			c.embedded.Close()
		}
		if c.docker != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.closeErr = c.docker.terminate(ctx)
		}
	})
	return c.closeErr
}

func (c *Cluster) nodeLogTails(ctx context.Context, lines int) []string {
	if c.docker == nil {
		return nil
	}
	return c.docker.logTails(ctx, lines)
}
