package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// The snapshot value is decoded by hand, every count checked against the bytes that remain,
// because goavro preallocates an array from the count in the data: a corrupt record could
// ask for tens of GiB (see decision 14). The layout is Avro's binary encoding of
// SnapshotSchema; tests check it against goavro both ways.

var errShort = errors.New("truncated")

type reader struct{ b []byte }

func (r *reader) long() (int64, error) {
	u, n := binary.Uvarint(r.b)
	if n <= 0 {
		if n == 0 {
			return 0, errShort
		}
		return 0, errors.New("varint overflows 64 bits")
	}
	r.b = r.b[n:]
	return int64(u>>1) ^ -int64(u&1), nil // zig-zag
}

func (r *reader) bytes() ([]byte, error) {
	n, err := r.long()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > int64(len(r.b)) {
		return nil, fmt.Errorf("length %d with %d bytes left", n, len(r.b))
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out, nil
}

// str returns a string that aliases the record's bytes rather than a copy, which a restore
// of many aggregates would pay for (see decision 16). It is safe because Kafka record
// buffers are never written after the fetch that filled them: decoders must only ever be
// given such buffers (or copies).
func (r *reader) str() (string, error) {
	b, err := r.bytes()
	return alias(b), err
}

func alias(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// blockCount reads the item count of an Avro array's next block, 0 at the array's end;
// a negative count is followed by the block's size in bytes, which is skipped. A count
// beyond what the bytes left can hold at minItem bytes per item is corrupt, whatever it
// claims.
func (r *reader) blockCount(minItem int64) (int64, error) {
	n, err := r.long()
	if err != nil || n == 0 {
		return 0, err
	}
	if n < 0 {
		n = -n
		if _, err := r.long(); err != nil {
			return 0, err
		}
	}
	if n > int64(len(r.b))/minItem {
		return 0, fmt.Errorf("array of %d items with %d bytes left", n, len(r.b))
	}
	return n, nil
}

// commands reads an Avro array of Command records: blocks of (count, items), ended by a
// zero count.
func (r *reader) commands() ([]Command, error) {
	var out []Command
	for {
		// Every item takes at least three bytes (a length and two longs).
		n, err := r.blockCount(3)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		for range n {
			var c Command
			var err error
			if c.ID, err = r.str(); err != nil {
				return nil, err
			}
			if c.From, err = r.long(); err != nil {
				return nil, err
			}
			if c.To, err = r.long(); err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
}

// refusals reads an Avro array of Refusal records, checked like commands. Only the block
// header is shared with commands: a generic array reader was slower (docs/BENCHMARKS.md,
// "Measurements moved from code comments").
func (r *reader) refusals() ([]Refusal, error) {
	var out []Refusal
	for {
		// Every item takes at least five bytes (three lengths and two longs).
		n, err := r.blockCount(5)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		for range n {
			var f Refusal
			var err error
			if f.ID, err = r.str(); err != nil {
				return nil, err
			}
			if f.Status, err = r.str(); err != nil {
				return nil, err
			}
			if f.Message, err = r.str(); err != nil {
				return nil, err
			}
			if f.Expected, err = r.long(); err != nil {
				return nil, err
			}
			if f.Actual, err = r.long(); err != nil {
				return nil, err
			}
			out = append(out, f)
		}
	}
}
