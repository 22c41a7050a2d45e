package wire

// Headers of scheduled commands (package gateway: Sender.Schedule and Sender.Cancel, and
// the records of an aggregate type's schedules topic). See docs/decisions.md, 41.
const (
	// HeaderSchedule, on a record of the commands topic, makes it an operation on a
	// scheduled command whose schedule ID is the record's kastor.command.id:
	// ScheduleAdd stores the record's command to run at HeaderScheduleAt,
	// ScheduleCancel cancels it, ScheduleFire asks the shard's owner to run it if it is
	// due. Only the gateway that owns the aggregate's shard acts on them, in its
	// transaction, so schedule, cancel and fire of one schedule are ordered by the
	// commands partition.
	HeaderSchedule = "kastor.schedule"
	// HeaderScheduleAt is when a scheduled command is due, in Unix milliseconds: on a
	// ScheduleAdd command, and on every record of the schedules topic. A gateway runs it
	// at that time or later by its wall clock, never before.
	HeaderScheduleAt = "kastor.schedule.at"
)

// The HeaderSchedule values.
const (
	ScheduleAdd    = "add"
	ScheduleCancel = "cancel"
	ScheduleFire   = "fire"
)
