// Package runner runs sagas (package saga) on Kafka, exactly once.
//
//	rn, err := runner.New(c, runner.ConfigFor(def, states, requestCodecs.Events,
//		map[string]kastor.Codec[account.Command]{"bank.account": accountCodecs.Commands},
//		"bank.transfer-request"))
//	go rn.Run(ctx)
//
// A saga type has three topics (kastor.yaml's sagas: section, topics.SagaTopicName):
// <ns>.saga.<type>.inputs, keyed by instance ID, holds each instance's inputs in order;
// <ns>.saga.<type>.state, compacted and co-partitioned with the inputs, holds each
// instance's record (InstanceSchema) and one checkpoint per partition
// (CheckpointSchema); <ns>.saga.<type>.dlq holds the inputs the runtime parked, with
// the reason. docs/wire-format.md ("Saga records") describes every record.
//
// A Runner is two consumer-group members:
//
//   - The router reads the events topics of Config.Sources, routes each event with the
//     saga's Correlate and writes it to the inputs topic keyed by instance ID, in a
//     transaction with the consumed offsets (kgo.GroupTransactSession). An event that
//     Correlate refuses, or that does not decode, is parked with the reason.
//   - The runner owns inputs partitions. On assignment of p it fences p's transactional
//     ID (one per partition: <ns>.saga.<type>.runner-p<N>), which aborts the previous
//     owner's open transaction and rejects everything that owner sends later, then reads
//     state partition p to its end, read_committed, while p's inputs are not fetched.
//     Each poll's inputs of p are applied with saga.Apply in one transaction of p's
//     producer holding the commands the transitions send (to each target aggregate
//     type's commands topic, replies addressed to the inputs topic), the new instance
//     records, the parked inputs and p's checkpoint (the offset of the next input). The
//     gateways write their replies to the inputs topic in their own transactions: an
//     outcome is one more input.
//
// Deadlines live in the instances' records. Each owned partition keeps them in a heap;
// when one is due, the runner takes the partition's high watermark, and fires it through
// Apply, in a transaction like any input, once it has applied every input up to that
// mark: an outcome already written, even in a transaction still open, is never
// overtaken by the timeout it answers. A deadline React refuses is parked, and the same
// transaction writes the instance's next version without it, so it never fires again. It fires without
// any input arriving, once, and after a restart or a rebalance when it came due meanwhile.
//
// An instance that becomes stuck (its state's StuckReason() goes from "" to a reason,
// as saga.Progress's does when a compensation kept failing) is parked too: the
// transaction of the version that made it stuck also writes a letter with reason
// ReasonStuck and the reason to the dead-letter topic, once. Resume (`kastor saga retry
// TYPE ID`) writes a resume input that the runner hands to React as saga.Input.Resume.
//
// A transaction that fails (a fenced producer, a commit of unknown outcome) ends the
// member's session: it rejoins its group and restores what it is assigned from Kafka,
// whose committed records are the only truth.
package runner
