// Package producer appends keyed records to kastor's topics.
//
// Aggregate IDs are record keys, and the partition of a key is Kafka's default: murmur2 of
// the key's bytes, made positive, modulo the partition count. Java producers, kcat and
// franz-go agree on it, so every client routes an aggregate to the same partition (shard).
package producer
