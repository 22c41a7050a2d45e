package wire

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/tracecontext"
)

// AppendHeaders appends md's envelope headers to dst and returns the extended slice. Empty
// fields are left out; the values share one allocation.
func AppendHeaders(dst []kgo.RecordHeader, md *kastor.Metadata) []kgo.RecordHeader {
	dst = slices.Grow(dst, 10+len(md.Tags))
	n := len(md.AggregateType) + len(md.AggregateID) + len(md.Type) + len(md.CommandID) +
		len(md.CorrelationID) + len(md.CausationID) + 20 + 16 + // the longest version, the fingerprint
		tracecontext.Len + len(md.Trace.State)
	for _, t := range md.Tags {
		n += len(t)
	}
	buf := make([]byte, 0, n)
	emit := func(k string, from int) {
		dst = append(dst, kgo.RecordHeader{Key: k, Value: buf[from:len(buf):len(buf)]})
	}
	add := func(k, v string) {
		if v != "" {
			from := len(buf)
			buf = append(buf, v...)
			emit(k, from)
		}
	}
	add(kastor.HeaderAggregateType, md.AggregateType)
	add(kastor.HeaderAggregateID, md.AggregateID)
	if md.Version != 0 {
		from := len(buf)
		buf = strconv.AppendInt(buf, md.Version, 10)
		emit(kastor.HeaderVersion, from)
	}
	add(kastor.HeaderType, md.Type)
	if md.Fingerprint != 0 {
		from := len(buf)
		buf = appendFingerprint(buf, md.Fingerprint)
		emit(kastor.HeaderSchema, from)
	}
	add(kastor.HeaderCommandID, md.CommandID)
	add(kastor.HeaderCorrelationID, md.CorrelationID)
	add(kastor.HeaderCausationID, md.CausationID)
	for _, t := range md.Tags {
		from := len(buf)
		buf = append(buf, t...)
		emit(kastor.HeaderTag, from)
	}
	if md.Trace.IsValid() {
		from := len(buf)
		buf = tracecontext.Append(buf, md.Trace.TraceID, md.Trace.SpanID, md.Trace.Flags)
		emit(kastor.HeaderTraceParent, from)
		add(kastor.HeaderTraceState, md.Trace.State)
	}
	return dst
}

// Headers returns md's envelope headers.
func Headers(md *kastor.Metadata) []kgo.RecordHeader { return AppendHeaders(nil, md) }

// ParseHeaders reads kastor's envelope from a record's headers, ignoring other headers. A
// malformed version or fingerprint is an error naming the header (the other fields are
// read all the same); missing headers leave fields zero. When a header repeats, the last
// one counts, except tags, which accumulate. A malformed traceparent is not an error: the
// trace is left zero, as when there is none (ParseTrace tells the difference).
func ParseHeaders(hs []kgo.RecordHeader) (kastor.Metadata, error) {
	var m kastor.Metadata
	var errs []error
	for _, h := range hs {
		if err := parseInto(&m, h); err != nil {
			errs = append(errs, err)
		}
	}
	endTrace(&m.Trace)
	return m, errors.Join(errs...)
}

// ParseTrace reads the trace context of any record (an event, a command, a reply) from
// its traceparent and tracestate headers, the last of each. It returns the zero
// TraceContext and no error when there is no traceparent, and the zero TraceContext and
// the reason when it is malformed: kastor then starts a new trace, and a caller may log
// the reason.
func ParseTrace(hs []kgo.RecordHeader) (kastor.TraceContext, error) {
	var t kastor.TraceContext
	var raw []byte
	for _, h := range hs {
		switch h.Key {
		case kastor.HeaderTraceParent:
			raw = h.Value
		case kastor.HeaderTraceState:
			t.State = string(h.Value)
		}
	}
	if raw == nil {
		return kastor.TraceContext{}, nil
	}
	var err error
	if t.TraceID, t.SpanID, t.Flags, err = tracecontext.Parse(raw); err != nil {
		return kastor.TraceContext{}, fmt.Errorf("header %s: %q: %w", kastor.HeaderTraceParent, raw, err)
	}
	return t, nil
}

// AppendTrace appends t's traceparent and tracestate headers to dst, nothing when t is
// not valid.
func AppendTrace(dst []kgo.RecordHeader, t kastor.TraceContext) []kgo.RecordHeader {
	if !t.IsValid() {
		return dst
	}
	dst = append(dst, kgo.RecordHeader{Key: kastor.HeaderTraceParent, Value: tracecontext.Append(make([]byte, 0, tracecontext.Len), t.TraceID, t.SpanID, t.Flags)})
	if t.State != "" {
		dst = append(dst, kgo.RecordHeader{Key: kastor.HeaderTraceState, Value: []byte(t.State)})
	}
	return dst
}

// endTrace drops what parseInto read of a trace unless its traceparent parsed: the
// tracestate of a missing or malformed traceparent is discarded, as the specification says.
func endTrace(t *kastor.TraceContext) {
	if !t.IsValid() {
		*t = kastor.TraceContext{}
	}
}

// parseInto reads one envelope header into m; other headers are ignored.
func parseInto(m *kastor.Metadata, h kgo.RecordHeader) error {
	v := string(h.Value)
	switch h.Key {
	case kastor.HeaderAggregateType:
		m.AggregateType = v
	case kastor.HeaderAggregateID:
		m.AggregateID = v
	case kastor.HeaderVersion:
		n, err := strconv.ParseInt(v, 10, 64)
		m.Version = n
		if err != nil || n < 1 {
			return fmt.Errorf("header %s: %q is not a version (a positive integer)", h.Key, v)
		}
	case kastor.HeaderType:
		m.Type = v
	case kastor.HeaderSchema:
		n, err := strconv.ParseUint(v, 16, 64)
		m.Fingerprint = n
		if err != nil || len(v) != 16 {
			return fmt.Errorf("header %s: %q is not a schema fingerprint (16 hex digits)", h.Key, v)
		}
	case kastor.HeaderCommandID:
		m.CommandID = v
	case kastor.HeaderCorrelationID:
		m.CorrelationID = v
	case kastor.HeaderCausationID:
		m.CausationID = v
	case kastor.HeaderTag:
		m.Tags = append(m.Tags, v)
	case kastor.HeaderTraceParent:
		// The last one counts; a malformed one leaves the IDs zero, which endTrace
		// turns into no trace.
		m.Trace.TraceID, m.Trace.SpanID, m.Trace.Flags, _ = tracecontext.Parse(h.Value)
	case kastor.HeaderTraceState:
		m.Trace.State = v
	}
	return nil
}

// appendFingerprint appends fp as 16 lower-case hexadecimal digits, most significant
// first: the kastor.schema header's form.
func appendFingerprint(buf []byte, fp uint64) []byte {
	const hex = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		buf = append(buf, hex[(fp>>uint(shift))&0xf])
	}
	return buf
}
