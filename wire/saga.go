package wire

// Headers of saga records (package saga/runner).
const (
	// HeaderSagaInput, on a record of a saga type's inputs topic, says what kind of input
	// it is: SagaInputEvent for an event the saga's router routed to the instance named by
	// the key, SagaInputResume for an operator's request to resume the instance (a
	// kastor.SagaResume record). A record without it is a gateway's reply to a command the instance sent (an
	// outcome), written as any reply is.
	HeaderSagaInput = "kastor.saga.input"
	// HeaderDLQSaga names, on a record parked on a saga type's dead-letter topic, the saga
	// type that parked it; the other kastor.dlq.* headers say why and where it was read.
	HeaderDLQSaga = "kastor.dlq.saga"
	// HeaderDLQSagaVersion is, on a stuck letter of a saga type's dead-letter topic (reason
	// "stuck", keyed by instance ID), the instance's version that made it stuck, in
	// decimal.
	HeaderDLQSagaVersion = "kastor.dlq.saga.version"
)

// Values of HeaderSagaInput.
const (
	// SagaInputEvent is the HeaderSagaInput value of a routed event.
	SagaInputEvent = "event"
	// SagaInputResume is the HeaderSagaInput value of an operator's request to resume a
	// stuck instance.
	SagaInputResume = "resume"
)
