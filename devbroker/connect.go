package devbroker

import (
	"context"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/topics"
)

// Connect returns a cluster handle in the namespace of topicFile (the YAML of a
// kastor.yaml) with the file's topics applied, and a function that closes the client and
// any broker Connect started. The client's seeds are brokers (comma-separated host:port),
// or when brokers is empty those of an embedded broker that Connect starts with the
// default options; the file's own brokers list, which is the CLI's, is not used. It is the start of a development program or a test that runs on a cluster when
// given one and on its own otherwise, as kastor's examples do; a deployed service makes
// its client and cluster.New itself and has its topics applied by `kastor topics apply`.
func Connect(ctx context.Context, brokers string, topicFile []byte, opts ...cluster.Option) (*cluster.Cluster, func(), error) {
	cfg, err := topics.Parse(topicFile, "topic file")
	if err != nil {
		return nil, nil, err
	}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var seeds []string
	if brokers = strings.TrimSpace(brokers); brokers != "" {
		seeds = strings.Split(brokers, ",")
	} else {
		b, err := Start()
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, b.Close)
		seeds = b.Addrs()
	}
	c, err := connect(ctx, seeds, cfg, &closers, opts)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return c, closeAll, nil
}

func connect(ctx context.Context, seeds []string, cfg *topics.Config, closers *[]func(), opts []cluster.Option) (*cluster.Cluster, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, fmt.Errorf("devbroker: %w", err)
	}
	*closers = append(*closers, cl.Close)
	c, err := cluster.New(cl, cfg.Namespace, opts...)
	if err != nil {
		return nil, err
	}
	// Options.Brokers names the seeds in an unreachable cluster's error.
	if _, err := topics.Apply(ctx, c.Admin(), topics.NewPlan(cfg), topics.Options{Brokers: seeds}); err != nil {
		return nil, err
	}
	return c, nil
}
