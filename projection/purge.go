package projection

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
)

// Purge marks every unresolved dead letter of version version of projection name
// resolved without applying it: it appends to the projection's dead-letter topic,
// consumer.DLQTopic(c.Namespace(), name), the same resolution markers Replay writes
// (consumer.ResolutionMarker), so readers and later replays treat the letters as done.
// It is for letters an operator decided to drop (the events stay in their events topic).
// It returns the letters it resolved.
//
// It reads the letters as consumer.ReadDeadLetters does and writes the markers with a
// producer of its own made with c.NewClient, waiting for every in-sync replica
// (acks=all).
func Purge(ctx context.Context, c *cluster.Cluster, name string, version int) ([]consumer.DeadLetter, error) {
	if c == nil {
		return nil, errNilCluster
	}
	topic := consumer.DLQTopic(c.Namespace(), name)
	letters, err := consumer.ReadDeadLetters(ctx, c, topic, name, version)
	if err != nil || len(letters) == 0 {
		return nil, err
	}
	cl, err := c.NewClient(kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return nil, fmt.Errorf("projection: %w", err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(letters))
	for i, d := range letters {
		recs[i] = consumer.ResolutionMarker(topic, d)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, fmt.Errorf("projection: writing resolution markers to %s: %w", topic, err)
	}
	return letters, nil
}
