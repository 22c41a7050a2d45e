package kafkatest

import (
	"fmt"
	"time"
)

// KafkaVersion is the Apache Kafka release the harness starts by default. It matches the
// image that docker/build-kafka-image.sh builds (docker/kafka/pom.xml).
const KafkaVersion = "4.1.1"

// OfficialImage is the image used when KAFKA_IMAGE is not set and it is available.
const OfficialImage = "apache/kafka:" + KafkaVersion

// LocalImage is the image docker/build-kafka-image.sh builds from Maven Central jars.
const LocalImage = "kastor/kafka:" + KafkaVersion

type config struct {
	nodes        int
	image        string
	brokerConfig map[string]string
	startTimeout time.Duration
	heap         string
}

// Option configures a cluster started by Start, New or StartEmbedded.
type Option func(*config)

// Nodes sets the number of nodes (default 1). Each node is a combined KRaft broker and
// controller. With three or more nodes the internal topics are replicated three times with
// min.insync.replicas=2, the production layout of DESIGN.md, so a test can stop a node and
// still write with acks=all.
func Nodes(n int) Option { return func(c *config) { c.nodes = n } }

// Image overrides KAFKA_IMAGE and the default image.
func Image(image string) Option { return func(c *config) { c.image = image } }

// BrokerConfig sets a broker property on every node, such as
// BrokerConfig("transaction.max.timeout.ms", "60000"). It wins over the harness defaults.
func BrokerConfig(key, value string) Option {
	return func(c *config) {
		if c.brokerConfig == nil {
			c.brokerConfig = map[string]string{}
		}
		c.brokerConfig[key] = value
	}
}

// StartTimeout bounds how long starting the cluster may take (default 2 minutes), image
// pulls excluded.
func StartTimeout(d time.Duration) Option { return func(c *config) { c.startTimeout = d } }

// Heap sets each broker JVM's heap, as KAFKA_HEAP_OPTS (default "-Xms256m -Xmx768m").
func Heap(opts string) Option { return func(c *config) { c.heap = opts } }

func newConfig(opts []Option) (config, error) {
	c := config{nodes: 1, startTimeout: 2 * time.Minute, heap: "-Xms256m -Xmx768m"}
	for _, o := range opts {
		o(&c)
	}
	if c.nodes < 1 || c.nodes > 9 {
		return c, fmt.Errorf("kafkatest: Nodes(%d): want 1 to 9 nodes", c.nodes)
	}
	return c, nil
}
