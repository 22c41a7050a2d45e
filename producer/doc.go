// Package producer appends keyed records to kastor's topics.
//
// An Appender (New) writes records idempotently, each to the partition that Kafka's default
// partitioner gives its key; PartitionFor and Murmur2 are that partitioner, so every client
// (Java, kcat, franz-go) routes an aggregate to the same partition (shard). See decision 7
// in docs/decisions.md.
package producer
