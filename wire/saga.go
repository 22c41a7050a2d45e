package wire

// Headers of saga records (package saga/runner).
const (
	// HeaderSagaInput, on a record of a saga type's inputs topic, says what kind of input
	// it is: SagaInputEvent for an event the saga's router routed to the instance named by
	// the key. A record without it is a gateway's reply to a command the instance sent (an
	// outcome), written as any reply is.
	HeaderSagaInput = "kastor.saga.input"
	// HeaderDLQSaga names, on a record parked on a saga type's dead-letter topic, the saga
	// type that parked it; the other kastor.dlq.* headers say why and where it was read.
	HeaderDLQSaga = "kastor.dlq.saga"
)

// SagaInputEvent is the HeaderSagaInput value of a routed event.
const SagaInputEvent = "event"
