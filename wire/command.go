package wire

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// Headers of command records beyond kastor's envelope (which carries the command ID,
// correlation ID, type and fingerprint), and of replies.
const (
	// HeaderReplyTo names the caller to reply to (the key of its replies); absent for a
	// command submitted without waiting.
	HeaderReplyTo = "kastor.reply.to"
	// HeaderReplyTopic, when set, is the topic the reply goes to instead of the aggregate
	// type's replies topic, keyed by HeaderReplyTo: a saga's inputs topic
	// (<namespace>.saga.<type>.inputs), where the outcome of a command the saga sent is
	// one of its instance's inputs. A gateway refuses any other topic.
	HeaderReplyTopic = "kastor.reply.topic"
	// HeaderDeadline is when the caller stops waiting, in Unix milliseconds. A command
	// read after its deadline is not executed: its caller has gone and would retry.
	HeaderDeadline = "kastor.deadline"
	// HeaderExpectedVersion is the command's expected aggregate version, in decimal.
	HeaderExpectedVersion = "kastor.expected.version"
	// HeaderAttemptID identifies one attempt to run a command: a Sender draws a new one
	// for every Send, also when it re-sends a command ID. The gateway copies it onto the
	// reply, so that a Sender hands each reply to the attempt it answers and to no other.
	HeaderAttemptID = "kastor.attempt.id"
	// HeaderQuery, on a record of the commands topic, makes it a question about its
	// command ID instead of a command to run now: QueryOutcome asks for the outcome of the
	// ID (never executed, no payload); QuerySchedule, QueryCancel and QueryFire are the
	// operations on a scheduled command (see schedule.go).
	HeaderQuery = "kastor.query"
	// HeaderRepeat, "true" on a reply, says the reply repeats an outcome the command ID
	// already had (a re-sent command, or an answer to a question): nothing was executed.
	HeaderRepeat = "kastor.reply.repeat"
)

// QueryOutcome is the HeaderQuery value of an outcome question.
const QueryOutcome = "outcome"

// Command is what a command record's headers say: the envelope, and how to answer.
type Command struct {
	kastor.Metadata
	// ReplyTo is the caller's ID, the key of its replies; empty: no reply is wanted.
	ReplyTo string
	// ReplyTopic is where the reply goes; empty: the aggregate type's replies topic.
	ReplyTopic string
	// Deadline is when the caller stops waiting; zero: none.
	Deadline time.Time
	// ExpectedVersion is the aggregate version the command expects (kastor.AnyVersion:
	// none, the default when the header is absent).
	ExpectedVersion int64
	// AttemptID identifies this attempt of the command ID.
	AttemptID string
	// Query is HeaderQuery's value: "" for a command, QueryOutcome for a question, or an
	// operation on a scheduled command (QuerySchedule, QueryCancel, QueryFire).
	Query string
	// ScheduleAt is HeaderScheduleAt's value: when a scheduled command is due; zero: none.
	ScheduleAt time.Time
}

// ParseCommand reads a command record's headers. It reads every header, also past a
// malformed one, since the reply to an undecodable command still needs its command ID,
// attempt ID and reply-to; the error joins every problem found.
func ParseCommand(hs []kgo.RecordHeader) (Command, error) {
	c := Command{ExpectedVersion: kastor.AnyVersion}
	var errs []error
	for _, h := range hs {
		switch h.Key {
		case HeaderReplyTo:
			c.ReplyTo = string(h.Value)
		case HeaderReplyTopic:
			c.ReplyTopic = string(h.Value)
		case HeaderDeadline:
			ms, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("header %s: %q is not Unix milliseconds", h.Key, h.Value))
				continue
			}
			c.Deadline = time.UnixMilli(ms)
		case HeaderExpectedVersion:
			v, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil || v < kastor.AnyVersion {
				errs = append(errs, fmt.Errorf("header %s: %q is not a version", h.Key, h.Value))
				continue
			}
			c.ExpectedVersion = v
		case HeaderAttemptID:
			c.AttemptID = string(h.Value)
		case HeaderQuery:
			switch v := string(h.Value); v {
			case QueryOutcome, QuerySchedule, QueryCancel, QueryFire:
				c.Query = v
			default:
				errs = append(errs, fmt.Errorf("header %s: %q is not a known question (want %q, %q, %q or %q)", h.Key, h.Value, QueryOutcome, QuerySchedule, QueryCancel, QueryFire))
			}
		case HeaderScheduleAt:
			ms, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("header %s: %q is not Unix milliseconds", h.Key, h.Value))
				continue
			}
			c.ScheduleAt = time.UnixMilli(ms)
		default:
			if err := parseInto(&c.Metadata, h); err != nil {
				errs = append(errs, err)
			}
		}
	}
	endTrace(&c.Trace)
	return c, errors.Join(errs...)
}

// AppendHeaders appends the command's headers to dst: the envelope without its trace, the
// others that are set, then the trace (traceparent, tracestate).
func (c *Command) AppendHeaders(dst []kgo.RecordHeader) []kgo.RecordHeader {
	md := c.Metadata
	md.Trace = kastor.TraceContext{}
	dst = AppendHeaders(dst, &md)
	if c.ReplyTo != "" {
		dst = append(dst, kgo.RecordHeader{Key: HeaderReplyTo, Value: []byte(c.ReplyTo)})
	}
	if c.ReplyTopic != "" {
		dst = append(dst, kgo.RecordHeader{Key: HeaderReplyTopic, Value: []byte(c.ReplyTopic)})
	}
	if !c.Deadline.IsZero() {
		dst = append(dst, kgo.RecordHeader{Key: HeaderDeadline, Value: strconv.AppendInt(nil, c.Deadline.UnixMilli(), 10)})
	}
	if c.ExpectedVersion != kastor.AnyVersion {
		dst = append(dst, kgo.RecordHeader{Key: HeaderExpectedVersion, Value: strconv.AppendInt(nil, c.ExpectedVersion, 10)})
	}
	if c.AttemptID != "" {
		dst = append(dst, kgo.RecordHeader{Key: HeaderAttemptID, Value: []byte(c.AttemptID)})
	}
	if c.Query != "" {
		dst = append(dst, kgo.RecordHeader{Key: HeaderQuery, Value: []byte(c.Query)})
	}
	if !c.ScheduleAt.IsZero() {
		dst = append(dst, kgo.RecordHeader{Key: HeaderScheduleAt, Value: strconv.AppendInt(nil, c.ScheduleAt.UnixMilli(), 10)})
	}
	return AppendTrace(dst, c.Trace)
}

// ReplyHeaders returns a reply record's headers: the attempt it answers, and HeaderRepeat
// when it repeats an outcome the command ID already had. AppendTrace adds its trace.
func ReplyHeaders(attemptID string, repeat bool) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	if attemptID != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderAttemptID, Value: []byte(attemptID)})
	}
	if repeat {
		hs = append(hs, kgo.RecordHeader{Key: HeaderRepeat, Value: []byte("true")})
	}
	return hs
}

// ParseReply reads a reply record's headers: the attempt it answers and whether it
// repeats an earlier outcome. Other headers are ignored.
func ParseReply(hs []kgo.RecordHeader) (attemptID string, repeat bool) {
	for _, h := range hs {
		switch h.Key {
		case HeaderAttemptID:
			attemptID = string(h.Value)
		case HeaderRepeat:
			repeat = string(h.Value) == "true"
		}
	}
	return attemptID, repeat
}
