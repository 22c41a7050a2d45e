package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// replyTopics knows the partition counts of the topics commands name in
// wire.HeaderReplyTopic: looked up once per topic, on first use.
type replyTopics struct {
	mu    sync.Mutex
	parts map[string]int32
}

// replyPartitions returns the partition count of topic, a saga inputs topic of the
// gateway's namespace, or an error naming why replies cannot go there: another topic (a
// command must not make the gateway write into, say, an events topic), or one that does
// not exist.
func (g *Gateway[S, C, E]) replyPartitions(ctx context.Context, topic string) (int32, error) {
	prefix := g.cluster.Namespace() + ".saga."
	if !strings.HasPrefix(topic, prefix) || !strings.HasSuffix(topic, ".inputs") || len(topic) <= len(prefix)+len(".inputs") {
		return 0, fmt.Errorf("reply topic %q is not a saga inputs topic of namespace %s (%s<type>.inputs)", topic, g.cluster.Namespace(), prefix)
	}
	g.replyTopics.mu.Lock()
	defer g.replyTopics.mu.Unlock()
	if n, ok := g.replyTopics.parts[topic]; ok {
		return n, nil
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := g.cluster.Admin().Metadata(mctx, topic)
	if err != nil {
		return 0, fmt.Errorf("reply topic %q: metadata: %w", topic, err)
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil || len(td.Partitions) == 0 {
		return 0, fmt.Errorf("reply topic %q does not exist (kastor topics apply creates a saga's topics)", topic)
	}
	if g.replyTopics.parts == nil {
		g.replyTopics.parts = map[string]int32{}
	}
	n := int32(len(td.Partitions))
	g.replyTopics.parts[topic] = n
	return n, nil
}
