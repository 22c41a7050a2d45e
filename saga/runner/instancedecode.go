package runner

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/kastor-dev/kastor/saga"
)

// instanceFingerprint is the fingerprint of the InstanceSchema that decodeInstanceFast
// reads. A change of the schema changes it, which turns the fast path off (and fails
// TestInstanceFastDecoderFollowsTheSchema) until the decoder follows.
const instanceFingerprint = 0x88d9559cca20694

// errFast is any datum decodeInstanceFast does not read: the generic codec decodes it
// again and names the problem.
var errFast = errors.New("not read by the fast path")

// decodeInstanceFast decodes an instance record written with the current InstanceSchema
// straight into an InstanceRecord: a restore decodes one per instance, 10^6 of them for a
// large saga, and the generic codec's intermediate value doubled the allocations (see
// decision 37). Strings that repeat across instances (the state type, deadline and step
// names, aggregate types) are shared through in. Any datum it cannot read whole, trailing
// bytes included, is errFast.
func decodeInstanceFast(b []byte, in *interner) (InstanceRecord, error) {
	d := fastReader{b: b}
	var r InstanceRecord
	r.ID = d.str(nil)
	r.Version = d.long()
	r.State.Type = d.str(in)
	r.State.Fingerprint = uint64(d.long())
	r.State.Data = d.bytes()
	for n := d.block(); n > 0; n = d.block() {
		if r.Deadlines == nil {
			r.Deadlines = make(map[string]time.Time, n)
		}
		for range n {
			name := d.str(in)
			r.Deadlines[name] = fromNanos(d.long())
		}
	}
	for n := d.block(); n > 0; n = d.block() {
		if r.Seen == nil {
			r.Seen = make([]string, 0, n)
		}
		for range n {
			r.Seen = append(r.Seen, d.str(nil))
		}
	}
	for n := d.block(); n > 0; n = d.block() {
		if r.Pending == nil {
			r.Pending = make([]saga.Sent, 0, n)
		}
		for range n {
			r.Pending = append(r.Pending, saga.Sent{ID: d.str(nil), Name: d.str(in), AggregateType: d.str(in), AggregateID: d.str(nil), Deadline: fromNanos(d.long())})
		}
	}
	switch d.byte() {
	case 0:
	case 1:
		r.Done = true
	default:
		d.err = errFast
	}
	if d.err != nil || len(d.b) != 0 {
		return InstanceRecord{}, errFast
	}
	if r.Seen == nil {
		r.Seen = []string{}
	}
	if r.State.Data == nil {
		r.State.Data = []byte{}
	}
	return r, nil
}

// fastReader reads Avro binary; the first error sticks and every read after it returns a
// zero value.
type fastReader struct {
	b   []byte
	err error
}

func (d *fastReader) long() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errFast
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *fastReader) raw() []byte {
	n := d.long()
	if d.err != nil || n < 0 || n > int64(len(d.b)) {
		d.err = errFast
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *fastReader) str(in *interner) string {
	v := d.raw()
	if in != nil {
		return in.get(v)
	}
	return string(v)
}

func (d *fastReader) bytes() []byte {
	v := d.raw()
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *fastReader) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errFast
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// block returns the item count of the next block of an array, 0 at its end. A negative
// count is followed by the block's size in bytes, which is skipped. A count larger than
// the bytes left cannot be (every item takes a byte at least) and is an error.
func (d *fastReader) block() int {
	n := d.long()
	if n < 0 {
		n = -n
		d.long()
	}
	if d.err != nil || n > int64(len(d.b)) {
		d.err = errFast
		return 0
	}
	return int(n)
}

// interner shares the strings that repeat across a partition's instances. It holds at most
// internMax of them: past that, strings are copied as usual.
type interner struct{ m map[string]string }

const internMax = 4096

func (in *interner) get(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if in.m == nil {
		in.m = map[string]string{}
	}
	if len(in.m) < internMax {
		in.m[s] = s
	}
	return s
}
