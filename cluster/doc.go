// Package cluster is a service's handle on the Kafka cluster its kastor topics live in:
// one franz-go client, the namespace that prefixes the topic names, the logger and the
// metrics registerer. Every kastor component takes it (gateway.New, gateway.NewSender,
// consumer.New, the projection and dead-letter functions) instead of a broker list of its
// own, as kadm.NewClient takes a *kgo.Client (see decision 29).
//
//	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092"))
//	...
//	defer cl.Close()
//	c, err := cluster.New(cl, "shop", cluster.Logger(logger))
//
// Requests that need no client of their own (admin requests, lookups) go over the shared
// client. Components that must own a client (a gateway's transactional group member, a
// reader's consumer group, a restore's read_committed reader) build it from the shared
// client's options with NewClient, so TLS, SASL, dialers and tuning are given once.
//
// Two namespaces of one cluster (a bounded context and the one it translates from) are
// two Cluster values over the same client (In).
package cluster
