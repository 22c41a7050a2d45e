package kafkatest_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/kafkatest"
)

func TestSmoke(t *testing.T) {
	start := time.Now()
	c := kafkatest.Start(t)
	t.Logf("started %s cluster %v in %v", c.Backend(), c.Brokers(), time.Since(start))
	topic := kafkatest.TopicName(t)
	c.CreateTopic(t, topic, 3, 1, nil)
	cl := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if n := fs.NumRecords(); n != 1 {
		t.Fatalf("got %d records", n)
	}
}
