package saga

// StuckReason returns why the instance waits for an operator, p.Stuck: "" unless a
// compensation kept failing after its retries. The saga runner's metrics count an
// instance whose state has this method and answers non-empty as stuck
// (kastor_saga_partition_instances{status="stuck"}); a Definition of its own can give its
// state the same method.
func (p Progress[D]) StuckReason() string { return p.Stuck }
