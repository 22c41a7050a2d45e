package gateway

import (
	"fmt"
	"strconv"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/producer"
)

// Command record headers beyond kastor's envelope (kastor.Metadata's headers carry the
// command ID, correlation ID, type and fingerprint).
const (
	// HeaderReplyTo names the caller to reply to (the key of its replies); absent for Submit.
	HeaderReplyTo = "kastor.reply.to"
	// HeaderDeadline is when the caller stops waiting, in Unix milliseconds. A command
	// read after its deadline is not executed: its caller has gone and would retry.
	HeaderDeadline = "kastor.deadline"
	// HeaderExpectedVersion is the command's expected aggregate version, in decimal.
	HeaderExpectedVersion = "kastor.expected.version"
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
)

// Reply is the result of a command, written to the replies topic in the same transaction
// as the command's events.
type Reply struct {
	CommandID   string
	Status      Status
	Message     string
	AggregateID string
	// From and To are the versions of the events written (From > To: none written).
	From, To int64
	// Expected and Actual are the versions of a conflict.
	Expected, Actual int64
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

var replyCodec = func() *goavro.Codec {
	c, err := goavro.NewCodec(ReplySchema)
	if err != nil {
		panic(err)
	}
	return c
}()

// Encode returns the reply's value bytes.
func (r *Reply) Encode() ([]byte, error) {
	return replyCodec.BinaryFromNative(nil, map[string]any{
		"commandId": r.CommandID, "status": string(r.Status), "message": r.Message,
		"aggregateId": r.AggregateID, "from": r.From, "to": r.To,
		"expected": r.Expected, "actual": r.Actual,
	})
}

// DecodeReply decodes a reply value. The schema has no arrays or maps, so goavro cannot be
// made to allocate beyond the input's size.
func DecodeReply(b []byte) (Reply, error) {
	native, rest, err := replyCodec.NativeFromBinary(b)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("%d bytes after the reply", len(rest))
	}
	if err != nil {
		return Reply{}, &kastor.UndecodableError{What: "reply", Offset: -1, Err: err}
	}
	m := native.(map[string]any)
	return Reply{
		CommandID: m["commandId"].(string), Status: Status(m["status"].(string)), Message: m["message"].(string),
		AggregateID: m["aggregateId"].(string), From: m["from"].(int64), To: m["to"].(int64),
		Expected: m["expected"].(int64), Actual: m["actual"].(int64),
	}, nil
}

// Err turns a reply into the typed error a caller receives, or nil for OK and DUPLICATE.
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
		return &kastor.TimeoutError{CommandID: r.CommandID, Err: remoteError(r.Message)}
	}
	return fmt.Errorf("kastor: command %s: unknown reply status %q: %s", r.CommandID, r.Status, r.Message)
}

// remoteError is a domain error that crossed the wire: its message is kept, its identity
// cannot be (compare messages, or use distinct reply data, to branch on domain errors).
type remoteError string

func (e remoteError) Error() string { return string(e) }

// commandHeaders is what a gateway reads from a command record.
type commandHeaders struct {
	kastor.Metadata
	ReplyTo         string
	Deadline        time.Time // zero: none
	ExpectedVersion int64
}

func parseCommandHeaders(hs []kgo.RecordHeader) (commandHeaders, error) {
	ch := commandHeaders{ExpectedVersion: kastor.AnyVersion}
	kh := make([]kastor.Header, 0, len(hs))
	for _, h := range hs {
		switch h.Key {
		case HeaderReplyTo:
			ch.ReplyTo = string(h.Value)
		case HeaderDeadline:
			ms, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				return ch, fmt.Errorf("header %s: %q is not Unix milliseconds", h.Key, h.Value)
			}
			ch.Deadline = time.UnixMilli(ms)
		case HeaderExpectedVersion:
			v, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil || v < kastor.AnyVersion {
				return ch, fmt.Errorf("header %s: %q is not a version", h.Key, h.Value)
			}
			ch.ExpectedVersion = v
		default:
			kh = append(kh, kastor.Header{Key: h.Key, Value: h.Value})
		}
	}
	md, err := kastor.ParseHeaders(kh)
	ch.Metadata = md
	return ch, err
}

func (ch *commandHeaders) append(dst []kgo.RecordHeader) []kgo.RecordHeader {
	dst = producer.AppendHeaders(dst, &ch.Metadata)
	if ch.ReplyTo != "" {
		dst = append(dst, kgo.RecordHeader{Key: HeaderReplyTo, Value: []byte(ch.ReplyTo)})
	}
	if !ch.Deadline.IsZero() {
		dst = append(dst, kgo.RecordHeader{Key: HeaderDeadline, Value: []byte(strconv.FormatInt(ch.Deadline.UnixMilli(), 10))})
	}
	if ch.ExpectedVersion != kastor.AnyVersion {
		dst = append(dst, kgo.RecordHeader{Key: HeaderExpectedVersion, Value: []byte(strconv.FormatInt(ch.ExpectedVersion, 10))})
	}
	return dst
}
