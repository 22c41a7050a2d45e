package wire

// Scheduled commands (package gateway: Sender.Schedule and Sender.Cancel, and the records
// of an aggregate type's schedules topic). See docs/decisions.md, 43.
//
// An operation on a scheduled command is a record of the commands topic whose HeaderQuery
// is QuerySchedule, QueryCancel or QueryFire, and whose kastor.command.id is the schedule
// ID. HeaderQuery, not a header of its own, because a gateway that predates scheduled
// commands refuses an unknown HeaderQuery value as UNDECODABLE and executes nothing: a
// schedule sent to it is never run at once by mistake.
const (
	// QuerySchedule stores the record's command (its value and envelope) to run at
	// HeaderScheduleAt, with the schedule ID as command ID.
	QuerySchedule = "schedule"
	// QueryCancel cancels the schedule; the record has no value and no type.
	QueryCancel = "cancel"
	// QueryFire asks the shard's owner to run the schedule if it is pending and due by its
	// clock; written by the owner's scheduler, with no value, type or reply-to. Only the
	// gateway that owns the aggregate's shard acts on these records, in its transaction,
	// so schedule, cancel and fire of one schedule are ordered by the commands partition.
	QueryFire = "fire"
)

// HeaderScheduleAt is when a scheduled command is due, in Unix milliseconds: on a
// QuerySchedule record, and on every record of the schedules topic. A gateway runs it at
// that time or later by its wall clock, never before.
const HeaderScheduleAt = "kastor.schedule.at"
