package kastor

import (
	"errors"
	"fmt"
	"strconv"
)

// Record header names of kastor's envelope. Metadata travels in headers so tools (kcat,
// the kastor CLI, other languages) can route and filter records without decoding the Avro
// value, and so the value stays the plain Avro encoding of the payload.
const (
	HeaderAggregateType = "kastor.aggregate.type"
	HeaderAggregateID   = "kastor.aggregate.id"
	// HeaderVersion is the event's version in its aggregate, in decimal.
	HeaderVersion = "kastor.version"
	// HeaderType is the payload's type name (an event, command or state type).
	HeaderType = "kastor.type"
	// HeaderSchema is the writer schema's CRC-64-AVRO fingerprint, 16 lower-case hex digits.
	HeaderSchema        = "kastor.schema"
	HeaderCommandID     = "kastor.command.id"
	HeaderCorrelationID = "kastor.correlation.id"
	HeaderCausationID   = "kastor.causation.id"
	// HeaderTag is repeated, once per tag: Kafka headers may repeat a key, and a tag may
	// contain any character.
	HeaderTag = "kastor.tag"
)

// Header is a Kafka record header. It has the shape of franz-go's kgo.RecordHeader, so
// converting is a field-by-field copy; the root package stays free of client libraries.
type Header struct {
	Key   string
	Value []byte
}

// Metadata is the envelope of an event (or a command, which uses the subset that applies).
type Metadata struct {
	AggregateType string
	AggregateID   string
	// Version is the event's position in its aggregate's history, 1 for the first event;
	// 0 when not applicable (commands).
	Version int64
	// Type is the payload's type name (Event.EventType for events).
	Type string
	// Fingerprint is the CRC-64-AVRO fingerprint of the payload's writer schema.
	Fingerprint uint64
	// CommandID is the command that produced the event, or the command's own ID.
	CommandID string
	// CorrelationID is the business request the message belongs to.
	CorrelationID string
	// CausationID is the message that directly caused this one.
	CausationID string
	Tags        []string
}

// AppendHeaders appends m's non-empty fields as headers to dst.
func (m *Metadata) AppendHeaders(dst []Header) []Header {
	m.EachHeader(func(k string, v []byte) { dst = append(dst, Header{Key: k, Value: v}) })
	return dst
}

// EachHeader calls fn with each of m's non-empty fields as a header, in a fixed order.
// The values share one allocation and are capped, so appending to one cannot overwrite
// another; fn may keep them.
func (m *Metadata) EachHeader(fn func(key string, value []byte)) {
	n := len(m.AggregateType) + len(m.AggregateID) + len(m.Type) + len(m.CommandID) +
		len(m.CorrelationID) + len(m.CausationID) + 20 + 16 // the longest version, the fingerprint
	for _, t := range m.Tags {
		n += len(t)
	}
	// One buffer for every value: a record's headers live as long as the record, and a
	// gateway writes them for every event, so one allocation instead of up to nine counts.
	buf := make([]byte, 0, n)
	emit := func(k string, from int) {
		fn(k, buf[from:len(buf):len(buf)])
	}
	add := func(k, v string) {
		if v != "" {
			from := len(buf)
			buf = append(buf, v...)
			emit(k, from)
		}
	}
	add(HeaderAggregateType, m.AggregateType)
	add(HeaderAggregateID, m.AggregateID)
	if m.Version != 0 {
		from := len(buf)
		buf = strconv.AppendInt(buf, m.Version, 10)
		emit(HeaderVersion, from)
	}
	add(HeaderType, m.Type)
	if m.Fingerprint != 0 {
		from := len(buf)
		const hex = "0123456789abcdef"
		for shift := 60; shift >= 0; shift -= 4 {
			buf = append(buf, hex[(m.Fingerprint>>uint(shift))&0xf])
		}
		emit(HeaderSchema, from)
	}
	add(HeaderCommandID, m.CommandID)
	add(HeaderCorrelationID, m.CorrelationID)
	add(HeaderCausationID, m.CausationID)
	for _, t := range m.Tags {
		from := len(buf)
		buf = append(buf, t...)
		emit(HeaderTag, from)
	}
}

// ParseHeaders reads kastor's headers into m, ignoring other headers. A malformed version
// or fingerprint is an error naming the header; missing headers leave fields zero.
func ParseHeaders(hs []Header) (Metadata, error) {
	var m Metadata
	var errs []error
	for _, h := range hs {
		v := string(h.Value)
		switch h.Key {
		case HeaderAggregateType:
			m.AggregateType = v
		case HeaderAggregateID:
			m.AggregateID = v
		case HeaderVersion:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("header %s: %q is not a version (a positive integer)", h.Key, v))
			}
			m.Version = n
		case HeaderType:
			m.Type = v
		case HeaderSchema:
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil || len(v) != 16 {
				errs = append(errs, fmt.Errorf("header %s: %q is not a schema fingerprint (16 hex digits)", h.Key, v))
			}
			m.Fingerprint = n
		case HeaderCommandID:
			m.CommandID = v
		case HeaderCorrelationID:
			m.CorrelationID = v
		case HeaderCausationID:
			m.CausationID = v
		case HeaderTag:
			m.Tags = append(m.Tags, v)
		}
	}
	return m, errors.Join(errs...)
}
