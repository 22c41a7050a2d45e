package snapshot

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/wire"
)

// Record is the snapshot of one aggregate.
type Record struct {
	// AggregateID is the aggregate's ID, the record's key.
	AggregateID string
	// Version is the aggregate version the state includes.
	Version int64
	// EventOffset is the offset, in the events partition, of the last event included.
	EventOffset int64
	// Commands are the aggregate's most recent accepted commands, oldest first: the
	// deduplication window, kept with the state so it survives restarts and failover.
	Commands []Command
	// StateType is the state's type name.
	StateType string
	// StateFingerprint identifies the state's writer schema (kastor.Encoded.Fingerprint).
	StateFingerprint uint64
	// State is the Avro encoding of the state with that writer schema. A restored
	// record's State, AggregateID and command IDs alias the buffer of the Kafka record it
	// was read from, which must not change.
	State []byte
	// Refusals are the aggregate's most recent refused commands, oldest first, so that a
	// re-sent command gets its refusal back instead of running again. A refusal writes no
	// event, so it is kept here: the gateway writes a snapshot in every refusal's
	// transaction. An aggregate with only refusals has a record of version 0 whose
	// EventOffset is -1. See decision 27.
	Refusals []Refusal
}

// Refusal is a refused command in the deduplication window: the status and message of
// its reply, and the versions of a conflict.
type Refusal struct {
	// ID is the command ID.
	ID string
	// Status is the reply status (gateway.Status): REJECTED, CONFLICT or INVARIANT.
	Status string
	// Message is the reply's message: the refusal's error text.
	Message string
	// Expected and Actual are the versions of a CONFLICT; zero otherwise.
	Expected, Actual int64
}

// Command is an accepted command in the deduplication window, with the versions of the
// events it produced (From > To when it produced none), so a re-sent command gets its
// first result back.
type Command struct {
	// ID is the command ID.
	ID string
	// From and To are the versions of the events the command wrote.
	From, To int64
}

// CheckpointKey is the key of a shard's checkpoint record. Aggregate IDs may not begin
// with a NUL byte, so it cannot collide with one.
const CheckpointKey = "\x00kastor.checkpoint"

// Type names in the kastor.type header of the snapshots topic.
const (
	// TypeSnapshot is the type of a snapshot record.
	TypeSnapshot = "kastor.Snapshot"
	// TypeCheckpoint is the type of a shard's checkpoint record.
	TypeCheckpoint = "kastor.Checkpoint"
)

// Avro schemas of the values. They belong to kastor, not to the application, so any tool
// can read a snapshots topic; the state inside is described by its own fingerprint.
const (
	// SnapshotSchema is the Avro schema of a snapshot record's value (Record).
	SnapshotSchema = `{"type":"record","name":"Snapshot","namespace":"kastor","fields":[` +
		`{"name":"version","type":"long"},` +
		`{"name":"eventOffset","type":"long"},` +
		`{"name":"commands","type":{"type":"array","items":{"type":"record","name":"Command","fields":[` +
		`{"name":"id","type":"string"},{"name":"from","type":"long"},{"name":"to","type":"long"}]}}},` +
		`{"name":"stateType","type":"string"},` +
		`{"name":"stateFingerprint","type":"long"},` +
		`{"name":"state","type":"bytes"},` +
		`{"name":"refusals","type":{"type":"array","items":{"type":"record","name":"Refusal","fields":[` +
		`{"name":"id","type":"string"},{"name":"status","type":"string"},{"name":"message","type":"string"},` +
		`{"name":"expected","type":"long"},{"name":"actual","type":"long"}]}},"default":[]}]}`
	// CheckpointSchema is the Avro schema of a checkpoint record's value.
	CheckpointSchema = `{"type":"record","name":"Checkpoint","namespace":"kastor","fields":[` +
		`{"name":"eventOffset","type":"long"}]}`
)

// The codecs encode; decoding is by hand (wire.go).
var (
	snapshotCodec   = mustCodec(SnapshotSchema)
	checkpointCodec = mustCodec(CheckpointSchema)
)

func mustCodec(s string) *goavro.Codec {
	c, err := goavro.NewCodec(s)
	if err != nil {
		panic(err)
	}
	return c
}

// encode returns the record's value bytes.
func (r *Record) encode() ([]byte, error) {
	cmds := make([]any, len(r.Commands))
	for i, c := range r.Commands {
		cmds[i] = map[string]any{"id": c.ID, "from": c.From, "to": c.To}
	}
	refusals := make([]any, len(r.Refusals))
	for i, f := range r.Refusals {
		refusals[i] = map[string]any{"id": f.ID, "status": f.Status, "message": f.Message, "expected": f.Expected, "actual": f.Actual}
	}
	return snapshotCodec.BinaryFromNative(nil, map[string]any{
		"version":          r.Version,
		"eventOffset":      r.EventOffset,
		"commands":         cmds,
		"stateType":        r.StateType,
		"stateFingerprint": int64(r.StateFingerprint),
		"state":            r.State,
		"refusals":         refusals,
	})
}

// empty reports whether the record holds nothing to remember: no event and no refusal. No
// such record is written (decodeSnapshot refuses one).
func (r *Record) empty() bool { return r.Version == 0 && len(r.Refusals) == 0 }

// decodeSnapshot decodes a snapshot value (see wire.go). State and the strings alias
// value, which must never be written again, as Kafka record buffers are not (see
// decision 16).
func decodeSnapshot(key string, value []byte) (Record, error) {
	rd := reader{b: value}
	r := Record{AggregateID: key}
	var fp int64
	var err error
	field := "version"
	if r.Version, err = rd.long(); err != nil {
		goto bad
	}
	field = "eventOffset"
	if r.EventOffset, err = rd.long(); err != nil {
		goto bad
	}
	field = "commands"
	if r.Commands, err = rd.commands(); err != nil {
		goto bad
	}
	field = "stateType"
	if r.StateType, err = rd.str(); err != nil {
		goto bad
	}
	field = "stateFingerprint"
	if fp, err = rd.long(); err != nil {
		goto bad
	}
	field = "state"
	if r.State, err = rd.bytes(); err != nil {
		goto bad
	}
	// Records written before refusals were kept end here (the field's default is empty).
	field = "refusals"
	if len(rd.b) > 0 {
		if r.Refusals, err = rd.refusals(); err != nil {
			goto bad
		}
	}
	if len(rd.b) > 0 {
		return Record{}, fmt.Errorf("%d bytes after the record", len(rd.b))
	}
	r.StateFingerprint = uint64(fp)
	switch {
	case r.Version < 0 || r.EventOffset < -1 || (r.Version == 0) != (r.EventOffset == -1):
		return Record{}, fmt.Errorf("version %d, event offset %d: not a snapshot of written events", r.Version, r.EventOffset)
	case r.Version == 0 && len(r.Refusals) == 0:
		return Record{}, errors.New("version 0 with no refusal: nothing to remember")
	}
	return r, nil
bad:
	return Record{}, fmt.Errorf("field %s: %w", field, err)
}

// KafkaRecord returns the record to write to the snapshots topic, in partition (the
// aggregate's shard: the partition of its events). Txn.Records and Shard.Handover build
// the gateway's with it, and tools that write a snapshots topic (the benchmarks) use it
// too, so that every writer agrees on the key, headers and value.
func (r *Record) KafkaRecord(topic string, partition int32) (*kgo.Record, error) {
	if r.AggregateID == "" || r.AggregateID[0] == 0 {
		return nil, fmt.Errorf("snapshot: aggregate ID %q is empty or starts with NUL", r.AggregateID)
	}
	v, err := r.encode()
	if err != nil {
		return nil, fmt.Errorf("snapshot of %q: %w", r.AggregateID, err)
	}
	md := kastor.Metadata{AggregateID: r.AggregateID, Version: r.Version, Type: TypeSnapshot}
	return &kgo.Record{Topic: topic, Partition: partition, Key: []byte(r.AggregateID), Value: v, Headers: wire.Headers(&md)}, nil
}

// CheckpointRecord returns the checkpoint record of a shard: every aggregate of the
// partition is covered by a snapshot up to eventOffset (inclusive) of the events
// partition. Txn.Records and Shard.Handover write the gateway's; tools that lay out a
// snapshots topic themselves (the benchmarks) use it too.
func CheckpointRecord(topic string, partition int32, eventOffset int64) (*kgo.Record, error) {
	v, err := checkpointCodec.BinaryFromNative(nil, map[string]any{"eventOffset": eventOffset})
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Partition: partition, Key: []byte(CheckpointKey), Value: v,
		Headers: wire.Headers(&kastor.Metadata{Type: TypeCheckpoint})}, nil
}

func decodeCheckpoint(value []byte) (int64, error) {
	rd := reader{b: value}
	off, err := rd.long()
	if err != nil {
		return 0, fmt.Errorf("field eventOffset: %w", err)
	}
	if len(rd.b) > 0 {
		return 0, fmt.Errorf("%d bytes after the record", len(rd.b))
	}
	if off < -1 {
		return 0, errors.New("negative event offset " + strconv.FormatInt(off, 10))
	}
	return off, nil
}
