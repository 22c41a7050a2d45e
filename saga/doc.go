// Package saga coordinates work across aggregates: sagas and process managers as pure
// reactions over durable state.
//
// A saga type is a Definition: Correlate routes an event (of any aggregate type) to the
// instance it concerns, and React decides, for one input of one instance, a Transition:
// the new state, the commands to send, the deadlines to set or cancel, and whether the
// instance is done. Inputs are the events routed to the instance, the outcomes of the
// commands it sent (rejections too: a rejected command writes no event), its deadlines
// when they come due, and an operator's Resume of an instance that is stuck (its state's
// StuckReason is not empty: it waits for an operator). A process manager is a Definition whose state names its phase;
// Orchestrate builds one from steps, each with an action and its compensation.
//
// Apply is the whole semantics of an instance, with no I/O: given the Instance record (its
// state, version, pending deadlines and the IDs of recent inputs) and one input, it
// returns the next record and the commands to send. It is what makes the runtime's
// guarantees hold whatever Kafka redelivers:
//
//   - An input applied twice (same Input.ID, within the window of remembered IDs) changes
//     nothing the second time.
//   - The commands of a transition get IDs derived from the saga type, the instance ID, the
//     version the transition creates and their position (CommandID), so a re-sent command
//     is deduplicated by the gateway.
//   - A deadline fires once, never before its time: Due lists the pending deadlines whose
//     time has come, and Apply accepts a fired deadline only while it is still pending with
//     that time, so a deadline cancelled or moved before its input is applied never fires,
//     and a cancel racing the fire gives exactly one outcome. Deadlines live in the record:
//     they survive restarts and are due after one if their time passed meanwhile; a clock
//     that steps back delays them and loses none.
//
// Package saga/runner is the Kafka runtime that drives Apply: a router that routes events
// to an input topic keyed by instance ID, and a runner that keeps the records in a
// compacted topic co-partitioned with it and applies each batch of inputs in one
// transaction holding records, commands and the input position; it fires deadlines
// itself. Its topics come from kastor.yaml's sagas: section: `kastor topics apply`
// creates <ns>.saga.<type>.inputs, .state and .dlq (topics.SagaTopicName).
package saga
