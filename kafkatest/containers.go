package kafkatest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"

	"github.com/kastor-dev/kastor/internal/dockerenv"
)

// The label marks every container and network the harness starts, so leftovers of a killed
// test run can be found and removed: docker rm -f $(docker ps -aq --filter label=dev.kastor.kafkatest)
const harnessLabel = "dev.kastor.kafkatest"

// Listener ports inside a container. The client listener, clientPort, is published on
// 127.0.0.1 at the host port chosen for the node and advertised as 127.0.0.1:<host port>.
// It is a fixed port below the ephemeral range: a node's own outgoing connections (to the
// other controllers, at start-up) take ephemeral ports inside the container, and one of
// them once took the host port's number before the broker bound it there.
const (
	clientPort     = 9092
	brokerPort     = 19092
	controllerPort = 9093
)

type dockerCluster struct {
	docker  *testcontainers.DockerClient
	network *testcontainers.DockerNetwork
	image   string
	nodes   []*dockerNode
}

type dockerNode struct {
	id        int32
	port      int
	container *testcontainers.DockerContainer
}

// chooseImage applies the documented order: Image option, KAFKA_IMAGE, the official image
// when present or pullable, the offline-built local image when only that one is present.
func chooseImage(ctx context.Context, cfg config) string {
	if cfg.image != "" {
		return cfg.image
	}
	if env := os.Getenv("KAFKA_IMAGE"); env != "" {
		return env
	}
	if !dockerenv.ImagePresent(ctx, OfficialImage) && dockerenv.ImagePresent(ctx, LocalImage) {
		return LocalImage
	}
	return OfficialImage
}

func startContainers(ctx context.Context, cfg config) (*dockerCluster, error) {
	dockerenv.Defaults(ctx)
	cli, err := dockerenv.Client(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	dc := &dockerCluster{docker: cli, image: chooseImage(ctx, cfg)}
	nw, err := tcnetwork.New(ctx, tcnetwork.WithLabels(map[string]string{harnessLabel: "1"}))
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("kafkatest: create docker network: %w", err)
	}
	dc.network = nw

	clusterID, err := newClusterID()
	if err != nil {
		dc.terminate(ctx)
		return nil, err
	}
	var voters []string
	for i := 1; i <= cfg.nodes; i++ {
		voters = append(voters, fmt.Sprintf("%d@%s:%d", i, nodeAlias(int32(i)), controllerPort))
	}
	for i := 1; i <= cfg.nodes; i++ {
		n, err := dc.startNode(ctx, cfg, int32(i), clusterID, strings.Join(voters, ","))
		if err != nil {
			dc.terminate(context.Background())
			return nil, err
		}
		dc.nodes = append(dc.nodes, n)
	}
	return dc, nil
}

func nodeAlias(id int32) string { return fmt.Sprintf("kafka-%d", id) }

// newClusterID returns a KRaft cluster ID: 16 random bytes, base64url without padding. An ID
// starting with '-' is valid, but a storage tool given it as a separate argument reads it as
// an option, so such IDs are drawn again.
func newClusterID() (string, error) {
	for {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		if id := base64.RawURLEncoding.EncodeToString(b[:]); id[0] != '-' {
			return id, nil
		}
	}
}

func nodeEnv(cfg config, id int32, port int, clusterID, voters string) map[string]string {
	rf := strconv.Itoa(min(3, cfg.nodes))
	isr := strconv.Itoa(min(2, cfg.nodes))
	env := map[string]string{
		"CLUSTER_ID":                                             clusterID,
		"KAFKA_NODE_ID":                                          strconv.Itoa(int(id)),
		"KAFKA_PROCESS_ROLES":                                    "broker,controller",
		"KAFKA_LISTENERS":                                        fmt.Sprintf("CLIENT://0.0.0.0:%d,BROKER://0.0.0.0:%d,CONTROLLER://0.0.0.0:%d", clientPort, brokerPort, controllerPort),
		"KAFKA_ADVERTISED_LISTENERS":                             fmt.Sprintf("CLIENT://127.0.0.1:%d,BROKER://%s:%d", port, nodeAlias(id), brokerPort),
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":                   "CLIENT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"KAFKA_INTER_BROKER_LISTENER_NAME":                       "BROKER",
		"KAFKA_CONTROLLER_LISTENER_NAMES":                        "CONTROLLER",
		"KAFKA_CONTROLLER_QUORUM_VOTERS":                         voters,
		"KAFKA_LOG_DIRS":                                         "/tmp/kraft-combined-logs",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":                 rf,
		"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS":                     "10",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR":         rf,
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":                    isr,
		"KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS":             "10",
		"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": rf,
		"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR":            isr,
		"KAFKA_DEFAULT_REPLICATION_FACTOR":                       rf,
		"KAFKA_MIN_INSYNC_REPLICAS":                              isr,
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":                 "0",
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                        "false",
		"KAFKA_HEAP_OPTS":                                        cfg.heap,
	}
	for k, v := range cfg.brokerConfig {
		env[propertyEnv(k)] = v
	}
	return env
}

// propertyEnv turns a server property into the image's environment variable name, the
// inverse of the entrypoint's mapping: '_' -> '__', '-' -> '___', '.' -> '_'.
func propertyEnv(key string) string {
	key = strings.ReplaceAll(key, "_", "__")
	key = strings.ReplaceAll(key, "-", "___")
	key = strings.ReplaceAll(key, ".", "_")
	return "KAFKA_" + strings.ToUpper(key)
}

func (dc *dockerCluster) startNode(ctx context.Context, cfg config, id int32, clusterID, voters string) (*dockerNode, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		portSpec := network.MustParsePort(fmt.Sprintf("%d/tcp", clientPort))
		ctr, err := testcontainers.Run(ctx, dc.image,
			testcontainers.WithEnv(nodeEnv(cfg, id, port, clusterID, voters)),
			tcnetwork.WithNetwork([]string{nodeAlias(id)}, dc.network),
			testcontainers.WithLabels(map[string]string{harnessLabel: "1"}),
			// Only exposed ports keep their bindings in testcontainers; the image's EXPOSE 9092
			// is this port, so nothing is published on a random port.
			testcontainers.WithExposedPorts(portSpec.String()),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
				hc.PortBindings = network.PortMap{portSpec: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}}}
			}),
		)
		if err == nil {
			return &dockerNode{id: id, port: port, container: ctr}, nil
		}
		lastErr = err
		if ctr != nil {
			_ = ctr.Terminate(context.Background())
		}
		if !strings.Contains(err.Error(), "already allocated") && !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if strings.Contains(lastErr.Error(), "pull") || strings.Contains(lastErr.Error(), "No such image") {
		return nil, fmt.Errorf("kafkatest: start node %d with image %s: %w\n(offline? build the image with docker/build-kafka-image.sh and set KAFKA_IMAGE=%s)", id, dc.image, lastErr, LocalImage)
	}
	return nil, fmt.Errorf("kafkatest: start node %d with image %s: %w", id, dc.image, lastErr)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("kafkatest: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (dc *dockerCluster) brokers() []string {
	var out []string
	for _, n := range dc.nodes {
		out = append(out, fmt.Sprintf("127.0.0.1:%d", n.port))
	}
	return out
}

func (dc *dockerCluster) node(id int32) (*dockerNode, error) {
	for _, n := range dc.nodes {
		if n.id == id {
			return n, nil
		}
	}
	return nil, fmt.Errorf("kafkatest: no node %d in this cluster", id)
}

func (dc *dockerCluster) logTails(ctx context.Context, lines int) []string {
	var out []string
	for _, n := range dc.nodes {
		rc, err := n.container.Logs(ctx)
		if err != nil {
			out = append(out, fmt.Sprintf("node %d: no logs: %v", n.id, err))
			continue
		}
		var all []string
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			all = append(all, sc.Text())
		}
		rc.Close()
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		out = append(out, fmt.Sprintf("---- last %d log lines of kafka node %d ----", len(all), n.id))
		out = append(out, all...)
	}
	return out
}

func (dc *dockerCluster) terminate(ctx context.Context) error {
	var errs []error
	for _, n := range dc.nodes {
		if err := n.container.Terminate(ctx); err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", n.id, err))
		}
	}
	if dc.network != nil {
		if err := dc.network.Remove(ctx); err != nil {
			errs = append(errs, fmt.Errorf("network: %w", err))
		}
	}
	dc.docker.Close()
	return errors.Join(errs...)
}
