package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/wire"
)

// Status is the outcome of a command, as carried by its reply.
type Status string

// The statuses of a reply.
const (
	StatusOK          Status = "OK"          // events written (possibly none)
	StatusDuplicate   Status = "DUPLICATE"   // the command ID was already applied: the first result
	StatusRejected    Status = "REJECTED"    // Decide refused the command
	StatusConflict    Status = "CONFLICT"    // expected version differs
	StatusInvariant   Status = "INVARIANT"   // invariant check failed
	StatusUndecodable Status = "UNDECODABLE" // the command payload could not be decoded
	StatusExpired     Status = "EXPIRED"     // read after its deadline; not executed
	StatusNone        Status = "NONE"        // answer to an outcome question: no outcome known
	StatusUnavailable Status = "UNAVAILABLE" // the shard could not be restored; not executed
	StatusScheduled   Status = "SCHEDULED"   // a scheduled command is stored, pending (decision 43)
	StatusCancelled   Status = "CANCELLED"   // a scheduled command was cancelled before it fired
)

// Reply is the result of a command, written to the replies topic in the same transaction
// as the command's events.
type Reply struct {
	// CommandID is the ID of the command answered.
	CommandID string
	// Status is the outcome.
	Status Status
	// Message is the refusal's error text, or why a command was not executed.
	Message string
	// AggregateID is the command's aggregate.
	AggregateID string
	// From and To are the versions of the events written (From > To: none written).
	From, To int64
	// Expected and Actual are the versions of a conflict.
	Expected, Actual int64
	// AttemptID is the attempt the reply answers (wire.HeaderAttemptID), "" when the command
	// carried none. It travels in a header, not in the value.
	AttemptID string
	// Repeat says the reply repeats the command ID's earlier outcome (wire.HeaderRepeat).
	Repeat bool
	// Trace is the reply's trace context (traceparent header): the span of the gateway
	// that handled the command, a child of the command's. Zero when it carries none.
	Trace kastor.TraceContext
}

// ReplySchema is the Avro schema of reply values; it belongs to kastor, not to the
// application, so any tool can read the replies topic.
const ReplySchema = `{"type":"record","name":"Reply","namespace":"kastor","fields":[` +
	`{"name":"commandId","type":"string"},` +
	`{"name":"status","type":"string"},` +
	`{"name":"message","type":"string"},` +
	`{"name":"aggregateId","type":"string"},` +
	`{"name":"from","type":"long"},{"name":"to","type":"long"},` +
	`{"name":"expected","type":"long"},{"name":"actual","type":"long"}]}`

// Encode returns the reply's value bytes: the Avro binary encoding of ReplySchema, written
// by hand (strings and longs only) because the gateway writes one reply per command and
// goavro's generic map of fields was slower (docs/BENCHMARKS.md, BenchmarkReplyEncode).
func (r *Reply) Encode() ([]byte, error) {
	b := make([]byte, 0, len(r.CommandID)+len(r.Status)+len(r.Message)+len(r.AggregateID)+4*2+4*10)
	for _, s := range []string{r.CommandID, string(r.Status), r.Message, r.AggregateID} {
		b = appendAvroLong(b, int64(len(s)))
		b = append(b, s...)
	}
	for _, n := range []int64{r.From, r.To, r.Expected, r.Actual} {
		b = appendAvroLong(b, n)
	}
	return b, nil
}

// appendAvroLong appends n as an Avro long: zig-zag, then a base-128 varint.
func appendAvroLong(b []byte, n int64) []byte {
	return binary.AppendUvarint(b, uint64(n<<1)^uint64(n>>63))
}

// DecodeReply decodes a reply value (ReplySchema's Avro binary encoding). It never reads
// past the input nor allocates beyond its size (see decision 14).
func DecodeReply(b []byte) (Reply, error) {
	d := avroReader{b: b}
	var r Reply
	r.CommandID = d.string("commandId")
	r.Status = Status(d.string("status"))
	r.Message = d.string("message")
	r.AggregateID = d.string("aggregateId")
	r.From, r.To = d.long("from"), d.long("to")
	r.Expected, r.Actual = d.long("expected"), d.long("actual")
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes after the reply", len(d.b))
	}
	if d.err != nil {
		return Reply{}, &kastor.UndecodableError{What: "reply", Offset: -1, Err: d.err}
	}
	return r, nil
}

// avroReader reads Avro longs and strings, keeping the first error.
type avroReader struct {
	b   []byte
	err error
}

func (d *avroReader) long(field string) int64 {
	if d.err != nil {
		return 0
	}
	u, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.err = fmt.Errorf("field %s: truncated Avro long", field)
		return 0
	case n < 0:
		d.err = fmt.Errorf("field %s: Avro long over 64 bits", field)
		return 0
	}
	d.b = d.b[n:]
	return int64(u>>1) ^ -int64(u&1)
}

func (d *avroReader) string(field string) string {
	n := d.long(field)
	if d.err != nil {
		return ""
	}
	if n < 0 || n > int64(len(d.b)) {
		d.err = fmt.Errorf("field %s: string length %d with %d bytes left", field, n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// Err turns a reply into the typed error a caller receives, or nil for OK and DUPLICATE.
// SCHEDULED and CANCELLED, the states of a scheduled command, are ErrPending and
// ErrCancelled (Sender.Schedule and Sender.Cancel read them as success).
func (r *Reply) Err(aggregateType string) error {
	switch r.Status {
	case StatusOK, StatusDuplicate:
		return nil
	case StatusRejected:
		return &kastor.RejectedError{AggregateType: aggregateType, AggregateID: r.AggregateID, CommandID: r.CommandID, Err: remoteError(r.Message)}
	case StatusConflict:
		return &kastor.VersionConflictError{AggregateType: aggregateType, AggregateID: r.AggregateID, Expected: r.Expected, Actual: r.Actual}
	case StatusInvariant:
		return &kastor.InvariantError{AggregateType: aggregateType, AggregateID: r.AggregateID, Err: remoteError(r.Message)}
	case StatusUndecodable:
		return &kastor.UndecodableError{What: "command", Offset: -1, Err: remoteError(r.Message)}
	case StatusExpired:
		return &kastor.ExpiredError{CommandID: r.CommandID, Reason: r.Message}
	case StatusUnavailable:
		return &kastor.UnavailableError{AggregateType: aggregateType, AggregateID: r.AggregateID, CommandID: r.CommandID, Reason: r.Message}
	case StatusNone:
		return &kastor.NoOutcomeError{AggregateType: aggregateType, AggregateID: r.AggregateID, CommandID: r.CommandID}
	case StatusScheduled:
		return fmt.Errorf("%w: %s %q, schedule %s: %s", ErrPending, aggregateType, r.AggregateID, r.CommandID, r.Message)
	case StatusCancelled:
		return fmt.Errorf("%w: %s %q, schedule %s: %s", ErrCancelled, aggregateType, r.AggregateID, r.CommandID, r.Message)
	}
	return fmt.Errorf("kastor: command %s: unknown reply status %q: %s", r.CommandID, r.Status, r.Message)
}

// headers returns the reply record's headers: the attempt, the repeat flag and the trace.
func (r *Reply) headers() []kgo.RecordHeader {
	return wire.AppendTrace(wire.ReplyHeaders(r.AttemptID, r.Repeat), r.Trace)
}

// DecodeReplyRecord decodes a reply record of the replies topic: its value (DecodeReply)
// and its headers (the attempt it answers, the repeat flag, the trace; a malformed
// traceparent is no trace).
func DecodeReplyRecord(rec *kgo.Record) (Reply, error) {
	r, err := DecodeReply(rec.Value)
	if err != nil {
		var ue *kastor.UndecodableError
		if errors.As(err, &ue) {
			ue.Topic, ue.Partition, ue.Offset = rec.Topic, rec.Partition, rec.Offset
		}
		return r, err
	}
	r.AttemptID, r.Repeat = wire.ParseReply(rec.Headers)
	r.Trace, _ = wire.ParseTrace(rec.Headers)
	return r, nil
}

// remoteError is a domain error that crossed the wire: its message is kept, its identity
// cannot be (compare messages, or use distinct reply data, to branch on domain errors).
type remoteError string

func (e remoteError) Error() string { return string(e) }
