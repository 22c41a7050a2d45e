// Package gateway is kastor's command gateway, the single writer of each shard, and its
// client, the Sender.
//
// Gateway instances form one consumer group on an aggregate type's commands topic; owning
// partition p makes an instance the only writer of shard p. On assignment it fences the
// previous writer and restores the shard (package snapshot), then runs commands through
// the aggregate's Decide and Evolve, committing events, snapshots, replies and command
// offsets in one Kafka transaction per batch. A command ID has at most one outcome,
// accepted or refused, which every later attempt with that ID gets back.
//
// New makes a Gateway from a Config, which ConfigFor fills with its type arguments
// inferred; Run is its main loop, and Start runs it beside other work. NewSender makes a
// Sender from a SenderConfig (SenderConfigFor): Send appends a command and waits for its
// Result, Submit appends it and returns, Outcome asks for a command's outcome without
// executing it; refusals arrive as kastor's typed errors (kastor.RejectedError, ...).
// Schedule stores a command to run at a time, fired by the shard's owner in its
// transaction with the schedule ID as command ID, and Cancel cancels it (see decision 43).
// Both take the service's *cluster.Cluster. Tap copies committed events to a channel.
//
// ExampleNew and ExampleSender show a gateway process and a sender; examples/quickstart
// shows a whole service. "See decision N" refers to docs/decisions.md: fencing by group
// generation (decision 10), shard checkpoints (11), one outcome per command ID (27),
// failover (28), scheduled commands (43).
package gateway
