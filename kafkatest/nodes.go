package kafkatest

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// NodeIDs returns the node IDs of a cluster started in containers (1..n).
func (c *Cluster) NodeIDs() []int32 {
	if c.docker == nil {
		return nil
	}
	var ids []int32
	for _, n := range c.docker.nodes {
		ids = append(ids, n.id)
	}
	return ids
}

// StopNode stops a node gracefully (SIGTERM, then SIGKILL after 30 s): the broker hands its
// partition leadership over before it exits, as in a rolling restart.
func (c *Cluster) StopNode(ctx context.Context, id int32) error {
	n, err := c.containerNode(id)
	if err != nil {
		return err
	}
	timeout := 30 * time.Second
	if err := n.container.Stop(ctx, &timeout); err != nil {
		return fmt.Errorf("kafkatest: stop node %d: %w", id, err)
	}
	return nil
}

// KillNode kills a node with SIGKILL: no clean shutdown, no leadership hand-over, as in a
// crash or a power loss of that machine.
func (c *Cluster) KillNode(ctx context.Context, id int32) error {
	n, err := c.containerNode(id)
	if err != nil {
		return err
	}
	if _, err := c.docker.docker.ContainerKill(ctx, n.container.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("kafkatest: kill node %d: %w", id, err)
	}
	// Wait for the engine to see the container as stopped, so StartNode right after works.
	for {
		st, err := n.container.State(ctx)
		if err != nil {
			return fmt.Errorf("kafkatest: kill node %d: %w", id, err)
		}
		if !st.Running {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkatest: kill node %d: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StartNode starts a stopped or killed node again, with its data, and waits until the
// cluster lists it as a broker.
func (c *Cluster) StartNode(ctx context.Context, id int32) error {
	n, err := c.containerNode(id)
	if err != nil {
		return err
	}
	if err := n.container.Start(ctx); err != nil {
		return fmt.Errorf("kafkatest: start node %d: %w", id, err)
	}
	return c.waitForNode(ctx, id, 2*time.Minute)
}

// RestartNode stops a node gracefully and starts it again.
func (c *Cluster) RestartNode(ctx context.Context, id int32) error {
	if err := c.StopNode(ctx, id); err != nil {
		return err
	}
	return c.StartNode(ctx, id)
}

// LeaderOf returns the node that leads a partition, as the cluster metadata says now.
func (c *Cluster) LeaderOf(ctx context.Context, topic string, partition int32) (int32, error) {
	m, err := c.metadata(ctx, topic)
	if err != nil {
		return -1, fmt.Errorf("kafkatest: metadata of %q: %w", topic, err)
	}
	if len(m.Topics) != 1 || m.Topics[0].ErrorCode != 0 {
		return -1, fmt.Errorf("kafkatest: topic %q not found", topic)
	}
	for _, p := range m.Topics[0].Partitions {
		if p.Partition != partition {
			continue
		}
		if p.Leader < 0 {
			return -1, fmt.Errorf("kafkatest: %s/%d has no leader", topic, partition)
		}
		return p.Leader, nil
	}
	return -1, fmt.Errorf("kafkatest: topic %q has no partition %d", topic, partition)
}

func (c *Cluster) containerNode(id int32) (*dockerNode, error) {
	if c.docker == nil {
		return nil, fmt.Errorf("%w (this one is %s)", ErrNotContainers, c.backend)
	}
	return c.docker.node(id)
}

// waitForNode waits until broker id is registered and reachable again. A fresh admin client
// is used so no connection cached before the restart hides the wait.
func (c *Cluster) waitForNode(ctx context.Context, id int32, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		m, err := c.metadata(ctx)
		if err == nil {
			last = fmt.Errorf("broker %d not registered", id)
			for _, b := range m.Brokers {
				if b.NodeID == id {
					last = c.pingNode(ctx, id)
				}
			}
			if last == nil {
				return nil
			}
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkatest: node %d not back after %v: %v", id, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pingNode asks broker id for its API versions directly.
func (c *Cluster) pingNode(ctx context.Context, id int32) error {
	cl, err := c.NewClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = cl.Broker(int(id)).Request(ctx, kmsg.NewPtrApiVersionsRequest())
	return err
}
