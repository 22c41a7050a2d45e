// Package devbroker runs an embedded Kafka-protocol broker in the current process, for
// development (`kastor dev`), demos and unit tests.
//
// The broker is franz-go's kfake: it speaks the Kafka wire protocol, including idempotent
// and transactional produce, consumer groups and compaction, but it is not Apache Kafka.
// Use it where a fast, dependency-free broker helps; prove Kafka guarantees against a real
// cluster (see package kafkatest).
package devbroker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a running embedded broker cluster. Close it to release its ports.
type Broker struct {
	cluster *kfake.Cluster
	dataDir string
	once    sync.Once
}

type config struct {
	nodes   int
	ports   []int
	dataDir string
	logger  *slog.Logger
	configs map[string]string
}

// Option configures Start.
type Option func(*config)

// Nodes sets how many brokers the embedded cluster has (default 1). Partition leaders are
// spread over them, which lets a client exercise its multi-broker code paths.
func Nodes(n int) Option { return func(c *config) { c.nodes = n } }

// Ports sets the loopback ports the brokers listen on, one per node. Port 0, or no ports at
// all (the default), lets the operating system choose free ports.
func Ports(ports ...int) Option { return func(c *config) { c.ports = ports } }

// DataDir makes the broker persist its topics, offsets and groups in dir and reload them
// when started again on the same dir. Without it (the default) everything lives in memory
// and is gone on Close.
func DataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// Logger sends the broker's warnings and errors to l. By default the broker is silent.
func Logger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// BrokerConfigs sets broker-level configuration such as "transaction.max.timeout.ms".
func BrokerConfigs(configs map[string]string) Option {
	return func(c *config) { c.configs = configs }
}

// Start starts an embedded broker listening on 127.0.0.1. Like a production cluster set up
// for kastor, it does not create topics on first use: create them explicitly (for example
// with `kastor topics apply`), so a partition count is always a decision.
func Start(opts ...Option) (*Broker, error) {
	cfg := config{nodes: 1}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.nodes < 1 {
		return nil, fmt.Errorf("devbroker: nodes must be at least 1, got %d", cfg.nodes)
	}
	if len(cfg.ports) > 0 && len(cfg.ports) != cfg.nodes {
		return nil, fmt.Errorf("devbroker: %d ports given for %d nodes", len(cfg.ports), cfg.nodes)
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(cfg.nodes),
	}
	if len(cfg.ports) > 0 {
		for _, p := range cfg.ports {
			if p < 0 || p > 65535 {
				return nil, fmt.Errorf("devbroker: port %d out of range", p)
			}
		}
		ports, err := resolvePorts(cfg.ports)
		if err != nil {
			return nil, err
		}
		kopts = append(kopts, kfake.Ports(ports...))
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	if cfg.logger != nil {
		kopts = append(kopts, kfake.WithLogger(slogLogger{cfg.logger}))
	}
	if len(cfg.configs) > 0 {
		kopts = append(kopts, kfake.BrokerConfigs(cfg.configs))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			return nil, fmt.Errorf("devbroker: cannot listen on %s: %w", opErr.Addr, err)
		}
		return nil, fmt.Errorf("devbroker: %w", err)
	}
	return &Broker{cluster: c, dataDir: cfg.dataDir}, nil
}

// resolvePorts replaces port 0 by a free port: kfake treats an explicit port list literally.
func resolvePorts(ports []int) ([]int, error) {
	out := make([]int, len(ports))
	for i, p := range ports {
		if p != 0 {
			out[i] = p
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("devbroker: finding a free port: %w", err)
		}
		out[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	return out, nil
}

// Addrs returns the brokers' host:port addresses, the bootstrap list for clients.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Ports returns the brokers' ports in node order.
func (b *Broker) Ports() []int {
	var ports []int
	for _, a := range b.Addrs() {
		_, p, _ := net.SplitHostPort(a)
		n, _ := strconv.Atoi(p)
		ports = append(ports, n)
	}
	return ports
}

// DataDir returns the persistence directory, or "" when the broker keeps data in memory.
func (b *Broker) DataDir() string { return b.dataDir }

// Cluster exposes the underlying kfake cluster, for tests that inject faults.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker; with DataDir set it flushes the data to disk first. It is safe to
// call more than once.
func (b *Broker) Close() { b.once.Do(b.cluster.Close) }

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	text := fmt.Sprintf(msg, args...)
	switch level {
	case kfake.LogLevelError:
		s.l.Error(text, "component", "devbroker")
	case kfake.LogLevelWarn:
		s.l.Warn(text, "component", "devbroker")
	case kfake.LogLevelInfo:
		s.l.Info(text, "component", "devbroker")
	default:
		s.l.Debug(text, "component", "devbroker")
	}
}
