package devbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/kastor-dev/kastor/devbroker"
)

const topicFile = `{namespace: dev, defaults: {partitions: 2, replicationFactor: 1, minInsyncReplicas: 1},
  aggregates: [{type: shop.cart}], schemas: {replicationFactor: 1}}`

// Connect starts an embedded broker when given no brokers, uses the brokers it is given
// otherwise, and applies the topic file either way.
func TestConnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, closeAll, err := devbroker.Connect(ctx, "", []byte(topicFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace() != "dev" {
		t.Errorf("namespace %q, want the file's, dev", c.Namespace())
	}
	td, err := c.Admin().ListTopics(ctx, "dev.shop.cart.events")
	if err != nil || td["dev.shop.cart.events"].Err != nil || len(td["dev.shop.cart.events"].Partitions) != 2 {
		t.Fatalf("events topic: %v %+v, want 2 partitions", err, td)
	}

	// A second Connect on the first one's broker: the same topics, applied again (no change).
	again, closeAgain, err := devbroker.Connect(ctx, c.Brokers()[0], []byte(topicFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Brokers(); len(got) != 1 || got[0] != c.Brokers()[0] {
		t.Errorf("seeds %v, want %v", got, c.Brokers())
	}
	closeAgain()
	closeAll()
	closeAll() // idempotent, as Broker.Close is

	if _, _, err := devbroker.Connect(ctx, "", []byte("{namespace: [")); err == nil {
		t.Error("Connect with a bad topic file: no error")
	}
}
