package consumer

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Purge marks every unresolved dead letter of version version of projection name
// resolved without applying it: it appends to the dead-letter topic the same resolution
// markers Replay writes, so readers and later replays treat the letters as done. It is
// for letters an operator decided to drop (the events stay in their events topic). It
// returns the letters it resolved.
func Purge(ctx context.Context, brokers []string, ns, name string, version int, opts ...kgo.Opt) ([]DeadLetter, error) {
	topic := DLQTopic(ns, name)
	letters, err := ReadDeadLetters(ctx, brokers, topic, name, version, opts...)
	if err != nil || len(letters) == 0 {
		return nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(letters))
	for i, d := range letters {
		recs[i] = resolvedRecord(topic, d)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, fmt.Errorf("consumer: writing resolution markers to %s: %w", topic, err)
	}
	return letters, nil
}
