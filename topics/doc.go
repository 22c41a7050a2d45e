// Package topics owns the Kafka topic layout of a kastor application: it reads the topic
// file (kastor.yaml), derives the topic set, compares it with a cluster and creates what is
// missing.
//
// Each aggregate type gets four topics, all with the same partition count, because a
// partition number is a shard across all of them:
//
//	<ns>.<agg>.commands   key aggregate ID   delete, short retention
//	<ns>.<agg>.events     key aggregate ID   delete, infinite retention, never compacted
//	<ns>.<agg>.snapshots  key aggregate ID   compact
//	<ns>.<agg>.replies    key caller ID      delete, short retention
//
// Each saga type gets three, inputs and state with the same partition count (an instance
// ID is on the same partition of both), and a dead-letter topic:
//
//	<ns>.saga.<type>.inputs  key instance ID   delete, finite retention (default 7 days)
//	<ns>.saga.<type>.state   key instance ID   compact
//	<ns>.saga.<type>.dlq     parked inputs     delete, infinite retention, one partition
//
// Each projection the file declares gets its dead-letter topic <ns>.proj.<name>.dlq
// (delete, infinite retention), and the applications of a cluster share _kastor.schemas
// (compact, one partition) and, when there are projections, the projection registry
// _kastor.projections (compact, one partition).
//
// The package creates topics but never alters them: a new partition count moves
// aggregates to other shards and a new cleanup policy can delete history, so such changes
// are migrations, made on purpose. Differences are reported as drift instead (see
// ErrDrift and decision 6).
//
// Typical use:
//
//	cfg, err := topics.Load("kastor.yaml")
//	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:9092"))
//	defer cl.Close()
//	err = topics.Reachable(ctx, cl, 10*time.Second)
//	res, err := topics.Apply(ctx, kadm.NewClient(cl), topics.NewPlan(cfg), topics.Options{})
package topics
