package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers a reader adds to a record it parks on a projection's dead-letter topic. The
// parked record keeps the original key, value and headers unchanged, followed by these,
// so kcat or the kastor CLI can read and re-drive it without the reader's code.
const (
	// HeaderDLQReason is why the record is there (consumer.ReasonFailed, ...).
	HeaderDLQReason = "kastor.dlq.reason"
	// HeaderDLQError is the last error's message (absent for held records).
	HeaderDLQError = "kastor.dlq.error"
	// HeaderDLQAttempts is how many times the event was tried, in decimal.
	HeaderDLQAttempts = "kastor.dlq.attempts"
	// HeaderDLQTopic, HeaderDLQPartition and HeaderDLQOffset locate the original record.
	HeaderDLQTopic     = "kastor.dlq.topic"
	HeaderDLQPartition = "kastor.dlq.partition"
	HeaderDLQOffset    = "kastor.dlq.offset"
	// HeaderDLQTimestamp is the original record's timestamp, in Unix milliseconds.
	HeaderDLQTimestamp = "kastor.dlq.timestamp"
	// HeaderDLQProjection and HeaderDLQVersion name the projection that parked the
	// record: the topic is shared by the projection's versions, and a rebuild's version
	// may park the same event again.
	HeaderDLQProjection = "kastor.dlq.projection"
	HeaderDLQVersion    = "kastor.dlq.projection.version"
	// HeaderDLQHeldBehind is, on a held record, the offset (in the same topic and
	// partition) of the parked event of the aggregate it is held behind.
	HeaderDLQHeldBehind = "kastor.dlq.held.behind"
)

// dlqPrefix starts every dead-letter header's name.
const dlqPrefix = "kastor.dlq."

// DeadLetter is what the kastor.dlq.* headers of a dead-letter record say.
type DeadLetter struct {
	Reason string
	Err    string // "": none (HeaderDLQError is left out)
	// Attempts is how many times the event was tried; negative: not applicable
	// (HeaderDLQAttempts is left out, as on a resolution marker).
	Attempts int
	// Topic, Partition, Offset and Timestamp locate and date the original record.
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time // zero: unknown (HeaderDLQTimestamp is left out)
	// Projection and Version name the projection version that parked it.
	Projection string
	Version    int
	// HeldBehind is the offset of the parked event a held record waits for; -1: none
	// (HeaderDLQHeldBehind is left out).
	HeldBehind int64
}

// AppendHeaders appends the dead-letter headers of d to dst.
func (d *DeadLetter) AppendHeaders(dst []kgo.RecordHeader) []kgo.RecordHeader {
	add := func(k, v string) { dst = append(dst, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderDLQReason, d.Reason)
	if d.Err != "" {
		add(HeaderDLQError, d.Err)
	}
	if d.Attempts >= 0 {
		add(HeaderDLQAttempts, strconv.Itoa(d.Attempts))
	}
	add(HeaderDLQTopic, d.Topic)
	add(HeaderDLQPartition, strconv.FormatInt(int64(d.Partition), 10))
	add(HeaderDLQOffset, strconv.FormatInt(d.Offset, 10))
	if !d.Timestamp.IsZero() {
		add(HeaderDLQTimestamp, strconv.FormatInt(d.Timestamp.UnixMilli(), 10))
	}
	add(HeaderDLQProjection, d.Projection)
	add(HeaderDLQVersion, strconv.Itoa(d.Version))
	if d.HeldBehind >= 0 {
		add(HeaderDLQHeldBehind, strconv.FormatInt(d.HeldBehind, 10))
	}
	return dst
}

// ParseDeadLetter reads the kastor.dlq.* headers of hs and returns them with the other
// headers (the original record's), in order. Reason, origin (topic, partition, offset)
// and projection version are required; a number that does not parse is an error naming
// its header.
func ParseDeadLetter(hs []kgo.RecordHeader) (DeadLetter, []kgo.RecordHeader, error) {
	d := DeadLetter{HeldBehind: -1, Offset: -1}
	var others []kgo.RecordHeader
	var errs []error
	num := func(k, v string) int64 {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %q is not a number", k, v))
		}
		return n
	}
	seen := map[string]bool{}
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, dlqPrefix) {
			others = append(others, h)
			continue
		}
		v := string(h.Value)
		seen[h.Key] = true
		switch h.Key {
		case HeaderDLQReason:
			d.Reason = v
		case HeaderDLQError:
			d.Err = v
		case HeaderDLQAttempts:
			d.Attempts = int(num(h.Key, v))
		case HeaderDLQTopic:
			d.Topic = v
		case HeaderDLQPartition:
			d.Partition = int32(num(h.Key, v))
		case HeaderDLQOffset:
			d.Offset = num(h.Key, v)
		case HeaderDLQTimestamp:
			d.Timestamp = time.UnixMilli(num(h.Key, v))
		case HeaderDLQProjection:
			d.Projection = v
		case HeaderDLQVersion:
			d.Version = int(num(h.Key, v))
		case HeaderDLQHeldBehind:
			d.HeldBehind = num(h.Key, v)
		}
	}
	for _, k := range []string{HeaderDLQReason, HeaderDLQTopic, HeaderDLQPartition, HeaderDLQOffset, HeaderDLQProjection, HeaderDLQVersion} {
		if !seen[k] {
			errs = append(errs, fmt.Errorf("header %s is missing", k))
		}
	}
	return d, others, errors.Join(errs...)
}
