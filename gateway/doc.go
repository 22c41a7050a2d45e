// Package gateway is kastor's command gateway: the single writer of each shard.
//
// Gateway instances form one consumer group on an aggregate type's commands topic; owning
// partition p makes an instance the only writer of shard p. On assignment it fences the
// previous writer, restores state from the snapshots and the event tail, then processes
// commands sequentially per aggregate, committing events, snapshots, replies and command
// offsets in one Kafka transaction per batch. What a shard's restore reads and which
// snapshots and checkpoints a transaction writes are package snapshot's (snapshot.Store,
// Shard, Txn): the gateway drives it with its aggregates, its codecs and its transactions.
//
// A gateway and a Sender take the service's *cluster.Cluster: one franz-go client, the
// namespace of the topic names, the logger and the metrics registerer. The clients they
// must own (the gateway's transactional group member, its restore readers, the Sender's
// producer and reply reader) are built from that client's options, with kastor's own
// after them:
//
//	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092"))
//	...
//	defer cl.Close()
//	c, err := cluster.New(cl, "shop")
//	...
//	codecs, err := schema.ForAggregate(account.Aggregate, // Avro, derived from the Go types
//		schema.Commands(schema.Of[account.Open](), schema.Of[account.Deposit]()),
//		schema.Events(schema.Of[account.Opened](), schema.Of[account.Deposited]()))
//	...
//	g, err := gateway.New(c, gateway.ConfigFor(account.Aggregate, codecs))
//	...
//	go g.Run(ctx)
//	s, err := gateway.NewSender(ctx, c, gateway.SenderConfigFor(account.Aggregate, codecs))
//
// ConfigFor and SenderConfigFor fill a Config and a SenderConfig with the type arguments
// inferred; set their other fields before New for anything but the defaults.
// A process that is only a gateway calls Run as its main loop; one that runs a gateway
// beside other work calls Start, which returns once the topics are checked.
//
// A Sender is the client side: Send appends a command and waits for its result on the
// replies topic; Submit appends it and returns. Results are typed errors
// (kastor.RejectedError, VersionConflictError, InvariantError, ...) callers test with
// errors.Is and errors.As.
//
// A command ID has at most one outcome: the first attempt a gateway executes decides it,
// accepted or refused, and every later attempt with that ID gets it back without executing
// anything, across restarts and failovers, within the dedupe window. Replies name the
// attempt they answer, an attempt read after its deadline is reported as not executed
// (kastor.ErrExpired), and Sender.Outcome asks for a command's outcome with no risk of
// executing it (decision 27).
//
// docs/decisions.md records why the gateway fences by group generation (decision 10),
// restores from shard checkpoints (11), decodes snapshot states lazily (13) and keeps one
// outcome per command ID (27).
package gateway
