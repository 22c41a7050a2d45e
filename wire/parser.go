package wire

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/tracecontext"
)

// Parser reads kastor's envelope from record headers, as ParseHeaders does,
// with two string allocations per record instead of one per header plus a copy of the
// header slice: the reader parses every record it reads, so this is on the hot path.
// Aggregate and event type names are few: they are interned. The aggregate ID gets its
// own string, since models keep it (as a map key) and it must not pin anything else;
// the other values (command, correlation, causation IDs, tags, tracestate) are substrings
// of one string; the traceparent is parsed in place. Anything it does not accept as well formed (a version or fingerprint that does
// not parse) falls back to ParseHeaders, so errors and edge cases are the same. The zero
// Parser is ready to use; a Parser is not safe for concurrent use.
type Parser struct {
	buf    []byte            // scratch: the other values of one record, concatenated
	recent [8]string         // type names met last: compared as bytes, no hashing
	next   int               // where the next name goes in recent
	intern map[string]string // type names seen, at most maxInterned
}

const maxInterned = 1024

func (p *Parser) name(b []byte) string {
	for _, s := range p.recent {
		if string(b) == s { // no allocation for the comparison
			return s
		}
	}
	s, ok := p.intern[string(b)] // nor for the lookup
	if !ok {
		s = string(b)
		if len(p.intern) < maxInterned {
			if p.intern == nil {
				p.intern = map[string]string{}
			}
			p.intern[s] = s
		}
	}
	p.recent[p.next] = s
	p.next = (p.next + 1) % len(p.recent)
	return s
}

// Parse reads hs into *m, which must be zero.
func (p *Parser) Parse(hs []kgo.RecordHeader, m *kastor.Metadata) error {
	p.buf = p.buf[:0]
	type span struct{ key, from, to int }
	var spans [16]span
	n, tags := 0, 0
	for _, h := range hs {
		k := headerKind(h.Key)
		switch k {
		case hNone:
			continue
		case hVersion:
			v, ok := parseVersion(h.Value)
			if !ok {
				return p.slow(hs, m)
			}
			m.Version = v
			continue
		case hSchema:
			v, ok := parseFingerprint(h.Value)
			if !ok {
				return p.slow(hs, m)
			}
			m.Fingerprint = v
			continue
		case hAggregateType:
			m.AggregateType = p.name(h.Value)
			continue
		case hType:
			m.Type = p.name(h.Value)
			continue
		case hAggregateID:
			m.AggregateID = string(h.Value)
			continue
		case hTraceParent:
			m.Trace.TraceID, m.Trace.SpanID, m.Trace.Flags, _ = tracecontext.Parse(h.Value)
			continue
		case hTag:
			tags++
		}
		if n == len(spans) {
			return p.slow(hs, m) // unusual: more headers than the fast path keeps
		}
		spans[n] = span{k, len(p.buf), len(p.buf) + len(h.Value)}
		n++
		p.buf = append(p.buf, h.Value...)
	}
	if n == 0 {
		endTrace(&m.Trace)
		return nil
	}
	all := string(p.buf)
	if tags > 0 {
		m.Tags = make([]string, 0, tags)
	}
	for _, s := range spans[:n] {
		v := all[s.from:s.to]
		switch s.key {
		case hCommandID:
			m.CommandID = v
		case hCorrelationID:
			m.CorrelationID = v
		case hCausationID:
			m.CausationID = v
		case hTag:
			m.Tags = append(m.Tags, v)
		case hTraceState:
			m.Trace.State = v
		}
	}
	endTrace(&m.Trace)
	return nil
}

// slow is ParseHeaders itself.
func (p *Parser) slow(hs []kgo.RecordHeader, m *kastor.Metadata) error {
	var err error
	*m, err = ParseHeaders(hs)
	return err
}

const (
	hNone = iota
	hAggregateType
	hAggregateID
	hVersion
	hType
	hSchema
	hCommandID
	hCorrelationID
	hCausationID
	hTag
	hTraceParent
	hTraceState
)

func headerKind(k string) int {
	switch k {
	case kastor.HeaderAggregateType:
		return hAggregateType
	case kastor.HeaderAggregateID:
		return hAggregateID
	case kastor.HeaderVersion:
		return hVersion
	case kastor.HeaderType:
		return hType
	case kastor.HeaderSchema:
		return hSchema
	case kastor.HeaderCommandID:
		return hCommandID
	case kastor.HeaderCorrelationID:
		return hCorrelationID
	case kastor.HeaderCausationID:
		return hCausationID
	case kastor.HeaderTag:
		return hTag
	case kastor.HeaderTraceParent:
		return hTraceParent
	case kastor.HeaderTraceState:
		return hTraceState
	}
	return hNone
}

// parseVersion accepts what ParseHeaders accepts for a version, restricted to
// plain decimal digits without sign or leading zero (what kastor writes); anything else
// goes to the slow path.
func parseVersion(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 || b[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseFingerprint accepts exactly 16 hex digits, as ParseHeaders does.
func parseFingerprint(b []byte) (uint64, bool) {
	if len(b) != 16 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(d)
	}
	return n, true
}
