// Package gateway is kastor's command gateway: the single writer of each shard.
//
// Gateway instances form one consumer group on an aggregate type's commands topic; owning
// partition p makes an instance the only writer of shard p. On assignment it fences the
// previous writer, restores state from the snapshots and the event tail, then processes
// commands sequentially per aggregate, committing events, snapshots, replies and command
// offsets in one Kafka transaction per batch.
//
// A Sender is the client side: Send appends a command and waits for its result on the
// replies topic; Submit appends it and returns. Results are typed errors
// (kastor.RejectedError, VersionConflictError, InvariantError, ...) callers test with
// errors.Is and errors.As.
//
// docs/decisions.md records why the gateway fences by group generation (decision 10),
// restores from shard checkpoints (11) and decodes snapshot states lazily (13).
package gateway
