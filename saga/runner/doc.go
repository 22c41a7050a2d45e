// Package runner runs sagas (package saga) on Kafka, exactly once.
//
// A saga type has three topics (kastor.yaml's sagas: section; topics.SagaTopicName):
// <ns>.saga.<type>.inputs, keyed by instance ID, holds an instance's inputs in order (the
// events its router routed, and the gateways' replies to the commands it sent);
// <ns>.saga.<type>.state, compacted and co-partitioned with the inputs, holds each
// instance's record (InstanceSchema) and one checkpoint per partition (CheckpointSchema);
// <ns>.saga.<type>.dlq holds the inputs the runtime parked, with the reason.
//
// The record formats are described in docs/wire-format.md, "Saga records".
package runner
