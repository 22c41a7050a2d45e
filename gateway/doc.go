// Package gateway is kastor's command gateway: the single writer of each shard.
//
// Gateway instances form one consumer group on an aggregate type's commands topic; owning
// partition p makes an instance the only writer of shard p. On assignment it fences the
// previous writer, restores state from the snapshots and the event tail, then processes
// commands sequentially per aggregate, committing events, snapshots, replies and command
// offsets in one Kafka transaction per batch.
//
// Not implemented yet: this package is the subject of issue #3.
package gateway
