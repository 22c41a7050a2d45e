package runner

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/wire"
)

// InstanceSchema is the Avro schema of the values of a saga type's state topic: one
// saga.Instance, its state encoded with the saga's state codec. kastor fixes it (it is
// not the application's) and publishes it to _kastor.schemas, so any reader can decode a
// state topic; docs/wire-format.md describes it field by field.
const InstanceSchema = `{"type":"record","name":"SagaInstance","namespace":"kastor","fields":[` +
	`{"name":"id","type":"string"},` +
	`{"name":"version","type":"long"},` +
	`{"name":"stateType","type":"string"},` +
	`{"name":"stateFingerprint","type":"long"},` +
	`{"name":"state","type":"bytes"},` +
	`{"name":"deadlines","type":{"type":"array","items":{"type":"record","name":"SagaDeadline","fields":[` +
	`{"name":"name","type":"string"},{"name":"at","type":"long"}]}}},` +
	`{"name":"seen","type":{"type":"array","items":"string"}},` +
	`{"name":"pending","type":{"type":"array","items":{"type":"record","name":"SagaCommand","fields":[` +
	`{"name":"id","type":"string"},{"name":"name","type":"string"},` +
	`{"name":"aggregateType","type":"string"},{"name":"aggregateId","type":"string"},` +
	`{"name":"deadline","type":"long"}]}}},` +
	`{"name":"done","type":"boolean"}]}`

// CheckpointSchema is the Avro schema of the checkpoint record of a state partition: the
// offset of the next input of the inputs partition with the same number, written in every
// transaction of the runner that owns the partition.
const CheckpointSchema = `{"type":"record","name":"SagaCheckpoint","namespace":"kastor","fields":[` +
	`{"name":"inputsOffset","type":"long"}]}`

// ResumeSchema is the Avro schema of an operator's request to resume a stuck instance, a
// record of the inputs topic with kastor.saga.input = resume (Resume writes it): the
// instance's version the operator saw stuck, which makes the input's ID
// (saga.ResumeInputID), and the stuck reason they saw.
const ResumeSchema = `{"type":"record","name":"SagaResume","namespace":"kastor","fields":[` +
	`{"name":"version","type":"long"},` +
	`{"name":"reason","type":"string"}]}`

// CheckpointKey is the key of a state partition's checkpoint record: a NUL byte, which no
// instance ID starts with, then "kastor.checkpoint".
const CheckpointKey = "\x00kastor.checkpoint"

// The type names of the state topic's records (kastor.type headers).
const (
	InstanceType   = "kastor.SagaInstance"
	CheckpointType = "kastor.SagaCheckpoint"
	// ResumeType is the kastor.type of a resume input (on the inputs topic).
	ResumeType = "kastor.SagaResume"
)

type instanceValue struct {
	ID               string         `avro:"id"`
	Version          int64          `avro:"version"`
	StateType        string         `avro:"stateType"`
	StateFingerprint int64          `avro:"stateFingerprint"`
	State            []byte         `avro:"state"`
	Deadlines        []deadlineItem `avro:"deadlines"`
	Seen             []string       `avro:"seen"`
	Pending          []pendingItem  `avro:"pending"`
	Done             bool           `avro:"done"`
}

type deadlineItem struct {
	Name string `avro:"name"`
	At   int64  `avro:"at"` // Unix nanoseconds
}

type pendingItem struct {
	ID            string `avro:"id"`
	Name          string `avro:"name"`
	AggregateType string `avro:"aggregateType"`
	AggregateID   string `avro:"aggregateId"`
	Deadline      int64  `avro:"deadline"` // Unix nanoseconds; 0: none
}

type checkpointValue struct {
	InputsOffset int64 `avro:"inputsOffset"`
}

type resumeValue struct {
	Version int64  `avro:"version"`
	Reason  string `avro:"reason"`
}

var (
	instanceSchema   = schema.MustParse(InstanceSchema)
	checkpointSchema = schema.MustParse(CheckpointSchema)
	resumeSchema     = schema.MustParse(ResumeSchema)
	// Records are small; a tenth of the default bounds what a corrupt length can make a
	// decoder allocate.
	recordLimits    = schema.Limits{MaxBytes: 16 << 20}
	instanceCodec   = schema.MustCodec[instanceValue](nil, instanceSchema, schema.Describe("saga instance"), schema.WithLimits(recordLimits))
	checkpointCodec = schema.MustCodec[checkpointValue](nil, checkpointSchema, schema.Describe("saga checkpoint"), schema.WithLimits(recordLimits))
	resumeCodec     = schema.MustCodec[resumeValue](nil, resumeSchema, schema.Describe("saga resume"), schema.WithLimits(recordLimits))
)

// Schemas returns the schemas of the records kastor writes to a saga's topics (the state
// topic's instance and checkpoint, the inputs topic's resume), which the runtime
// publishes to _kastor.schemas when it starts.
func Schemas() []*schema.Schema {
	return []*schema.Schema{instanceSchema, checkpointSchema, resumeSchema}
}

// InstanceRecord is a state record as stored: a saga.Instance whose state is still
// encoded, for readers without the saga's state type (tools, tests).
type InstanceRecord struct {
	// ID is the instance ID, also the record's key.
	ID string
	// Version counts the inputs applied to the instance (1 or more in a stored record).
	Version int64
	// State is the state's Avro encoding, its writer schema's type and fingerprint.
	State kastor.Encoded
	// Deadlines are the pending deadlines by name; nil when none.
	Deadlines map[string]time.Time
	// Seen are the IDs of the last inputs applied, oldest first.
	Seen []string
	// Pending are the commands sent whose outcomes are not applied yet, oldest first.
	Pending []saga.Sent
	// Done says the instance is finished: later inputs are ignored.
	Done bool
}

// encodeInstance returns the value of inst's state record, its state encoded with states.
func encodeInstance[S any](inst *saga.Instance[S], states kastor.Codec[S]) ([]byte, error) {
	st, err := states.Encode(inst.State)
	if err != nil {
		return nil, fmt.Errorf("saga instance %q: encoding its state: %w", inst.ID, err)
	}
	return encodeRecord(&InstanceRecord{
		ID: inst.ID, Version: inst.Version, State: st, Deadlines: inst.Deadlines,
		Seen: inst.Seen, Pending: inst.Pending, Done: inst.Done,
	})
}

// encodeRecord returns the value of r's state record.
func encodeRecord(r *InstanceRecord) ([]byte, error) {
	v := instanceValue{
		ID: r.ID, Version: r.Version, StateType: r.State.Type, StateFingerprint: int64(r.State.Fingerprint),
		State: r.State.Data, Seen: r.Seen, Done: r.Done,
		Deadlines: make([]deadlineItem, 0, len(r.Deadlines)), Pending: make([]pendingItem, 0, len(r.Pending)),
	}
	if v.State == nil {
		v.State = []byte{}
	}
	if v.Seen == nil {
		v.Seen = []string{}
	}
	for name, at := range r.Deadlines {
		v.Deadlines = append(v.Deadlines, deadlineItem{Name: name, At: at.UnixNano()})
	}
	// A deterministic order: the same instance always encodes to the same bytes.
	slices.SortFunc(v.Deadlines, func(a, b deadlineItem) int { return strings.Compare(a.Name, b.Name) })
	for _, p := range r.Pending {
		v.Pending = append(v.Pending, pendingItem{ID: p.ID, Name: p.Name, AggregateType: p.AggregateType, AggregateID: p.AggregateID, Deadline: nanos(p.Deadline)})
	}
	return instanceCodec.Encode(v)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// instanceHeaders are the headers of an instance's state record.
func instanceHeaders(inst string, version int64) []kgo.RecordHeader {
	md := kastor.Metadata{AggregateID: inst, Version: version, Type: InstanceType, Fingerprint: uint64(instanceSchema.Fingerprint())}
	return wire.Headers(&md)
}

// checkpointRecord is the checkpoint record of state partition p: inputs partition p is
// applied up to offset next (exclusive).
func checkpointRecord(topic string, p int32, next int64) *kgo.Record {
	v, _ := checkpointCodec.Encode(checkpointValue{InputsOffset: next}) // a long: cannot fail
	md := kastor.Metadata{Type: CheckpointType, Fingerprint: uint64(checkpointSchema.Fingerprint())}
	return &kgo.Record{Topic: topic, Partition: p, Key: []byte(CheckpointKey), Value: v, Headers: wire.Headers(&md)}
}

// ErrNotARecord is wrapped by DecodeStateRecord's error for a record of the state topic
// whose kastor.type header names neither an instance nor a checkpoint.
var ErrNotARecord = errors.New("not a saga state record")

// stateRecord is a decoded record of the state topic: a checkpoint, an instance, or a
// tombstone (an instance removed).
type stateRecord struct {
	checkpoint bool
	next       int64 // a checkpoint's inputs offset
	tombstone  bool
	inst       InstanceRecord
}

// DecodeStateRecord decodes a record of a saga type's state topic. It returns the
// instance record, or ok false for a checkpoint or a tombstone (which removes the
// instance named by the key). Errors name what is wrong.
func DecodeStateRecord(r *kgo.Record) (inst InstanceRecord, ok bool, err error) {
	sr, err := decodeState(r.Key, r.Value, r.Headers, nil)
	if err != nil || sr.checkpoint || sr.tombstone {
		return InstanceRecord{}, false, err
	}
	return sr.inst, true, nil
}

// decodeState decodes a record of the state topic; in shares repeated strings across the
// records of one restore (nil: none shared).
func decodeState(key, value []byte, hs []kgo.RecordHeader, in *interner) (stateRecord, error) {
	if string(key) == CheckpointKey {
		if value == nil {
			return stateRecord{}, errors.New("saga checkpoint: null value")
		}
		v, err := checkpointCodec.Decode(checkpointSchema.Fingerprint(), value)
		if err != nil {
			return stateRecord{}, fmt.Errorf("saga checkpoint: %w", err)
		}
		if v.InputsOffset < 0 {
			return stateRecord{}, fmt.Errorf("saga checkpoint: inputs offset %d is negative", v.InputsOffset)
		}
		return stateRecord{checkpoint: true, next: v.InputsOffset}, nil
	}
	if err := checkInstanceID(string(key)); err != nil {
		return stateRecord{}, fmt.Errorf("saga state record: key: %w", err)
	}
	if value == nil {
		return stateRecord{tombstone: true, inst: InstanceRecord{ID: string(key)}}, nil
	}
	typ, fp, err := wire.ReadSchemaHeaders(hs)
	if err != nil {
		return stateRecord{}, fmt.Errorf("saga instance %q: %w", key, err)
	}
	if typ != InstanceType && typ != "" {
		return stateRecord{}, fmt.Errorf("saga instance %q: %w: type %q, want %s", key, ErrNotARecord, typ, InstanceType)
	}
	inst, err := decodeInstance(schema.Fingerprint(fp), value, in)
	if err != nil {
		return stateRecord{}, fmt.Errorf("saga instance %q: %w", key, err)
	}
	if inst.ID != string(key) {
		return stateRecord{}, fmt.Errorf("saga instance %q: the record is instance %q's", key, inst.ID)
	}
	if inst.Version < 1 {
		return stateRecord{}, fmt.Errorf("saga instance %q: version %d (a stored instance has had an input)", key, inst.Version)
	}
	for name, at := range inst.Deadlines {
		if at.IsZero() {
			return stateRecord{}, fmt.Errorf("saga instance %q: deadline %q has no time", key, name)
		}
	}
	return stateRecord{inst: inst}, nil
}

// decodeInstance decodes an instance record's value written with schema fp: with the
// fast path when fp is the current schema's, else (or when the fast path cannot read it)
// with the generic codec, which resolves older schemas and names what is wrong.
func decodeInstance(fp schema.Fingerprint, value []byte, in *interner) (InstanceRecord, error) {
	if fp == instanceFingerprint && instanceSchema.Fingerprint() == instanceFingerprint && len(value) <= recordLimits.MaxBytes {
		if r, err := decodeInstanceFast(value, in); err == nil {
			return r, nil
		}
	}
	v, err := instanceCodec.Decode(fp, value)
	if err != nil {
		return InstanceRecord{}, err
	}
	inst := InstanceRecord{
		ID: v.ID, Version: v.Version, Seen: v.Seen, Done: v.Done,
		State: kastor.Encoded{Type: v.StateType, Fingerprint: uint64(v.StateFingerprint), Data: v.State},
	}
	if len(v.Deadlines) > 0 {
		inst.Deadlines = make(map[string]time.Time, len(v.Deadlines))
		for _, d := range v.Deadlines {
			inst.Deadlines[d.Name] = fromNanos(d.At)
		}
	}
	for _, p := range v.Pending {
		inst.Pending = append(inst.Pending, saga.Sent{ID: p.ID, Name: p.Name, AggregateType: p.AggregateType, AggregateID: p.AggregateID, Deadline: fromNanos(p.Deadline)})
	}
	return inst, nil
}

// instance decodes r's state with states.
func instance[S any](r InstanceRecord, states kastor.Codec[S]) (saga.Instance[S], error) {
	st, err := states.Decode(r.State)
	if err != nil {
		return saga.Instance[S]{}, fmt.Errorf("saga instance %q: state: %w", r.ID, err)
	}
	return saga.Instance[S]{ID: r.ID, Version: r.Version, State: st, Deadlines: r.Deadlines, Seen: r.Seen, Pending: r.Pending, Done: r.Done}, nil
}

// checkInstanceID refuses an instance ID that cannot be a key of the saga's topics.
func checkInstanceID(id string) error {
	if id == "" || id[0] == 0 {
		return fmt.Errorf("instance ID %q is empty or starts with NUL", id)
	}
	return nil
}

// inputKind is what an input record is.
type inputKind int

const (
	inputEvent   inputKind = iota + 1 // a routed event
	inputOutcome                      // a gateway's reply to a command of the instance
	inputResume                       // an operator's request to resume a stuck instance
)

// inputRecord is a decoded record of the inputs topic, before the event's payload is
// decoded.
type inputRecord struct {
	kind     inputKind
	instance string
	event    kastor.Metadata // of an event
	reply    gateway.Reply   // of an outcome
	resume   saga.Resume     // of a resume
	trace    kastor.TraceContext
}

// decodeInput reads an input record: its key (the instance ID), its headers and, for an
// outcome, its value (a gateway.Reply), for a resume its value (a kastor.SagaResume). An event's payload is left to the event codec.
// Errors name what is wrong.
func decodeInput(key, value []byte, hs []kgo.RecordHeader) (inputRecord, error) {
	in := inputRecord{instance: string(key)}
	if err := checkInstanceID(in.instance); err != nil {
		return in, fmt.Errorf("saga input: key: %w", err)
	}
	kind := ""
	for _, h := range hs {
		if h.Key == wire.HeaderSagaInput {
			kind = string(h.Value)
		}
	}
	switch kind {
	case wire.SagaInputEvent:
		md, err := wire.ParseHeaders(hs)
		if err != nil {
			return in, fmt.Errorf("saga input (event) of instance %q: %w", in.instance, err)
		}
		if md.AggregateType == "" || md.AggregateID == "" || md.Version < 1 || md.Type == "" || md.Fingerprint == 0 {
			return in, fmt.Errorf("saga input (event) of instance %q: the event's aggregate type, ID, version, type and schema headers are all required", in.instance)
		}
		in.kind, in.event = inputEvent, md
	case wire.SagaInputResume:
		typ, fp, err := wire.ReadSchemaHeaders(hs)
		if err != nil {
			return in, fmt.Errorf("saga input (resume) of instance %q: %w", in.instance, err)
		}
		if typ != ResumeType {
			return in, fmt.Errorf("saga input (resume) of instance %q: type %q, want %s", in.instance, typ, ResumeType)
		}
		v, err := resumeCodec.Decode(schema.Fingerprint(fp), value)
		if err != nil {
			return in, fmt.Errorf("saga input (resume) of instance %q: %w", in.instance, err)
		}
		if v.Version < 1 {
			return in, fmt.Errorf("saga input (resume) of instance %q: version %d (a stuck instance has had an input)", in.instance, v.Version)
		}
		in.kind, in.resume = inputResume, saga.Resume{Version: v.Version, Reason: v.Reason}
		in.trace, _ = wire.ParseTrace(hs)
	case "":
		r, err := gateway.DecodeReply(value)
		if err != nil {
			return in, fmt.Errorf("saga input (outcome) of instance %q: %w", in.instance, err)
		}
		if r.CommandID == "" {
			return in, fmt.Errorf("saga input (outcome) of instance %q: the reply names no command", in.instance)
		}
		r.AttemptID, r.Repeat = wire.ParseReply(hs)
		r.Trace, _ = wire.ParseTrace(hs)
		in.kind, in.reply = inputOutcome, r
	default:
		return in, fmt.Errorf("saga input of instance %q: header %s: unknown kind %q (want %q, %q, or none for an outcome)",
			in.instance, wire.HeaderSagaInput, kind, wire.SagaInputEvent, wire.SagaInputResume)
	}
	return in, nil
}

// resumeRecord is the record of an operator's request to resume instance id, seen stuck
// at version with reason, on partition p of inputs topic topic.
func resumeRecord(topic string, p int32, id string, version int64, reason string) *kgo.Record {
	v, _ := resumeCodec.Encode(resumeValue{Version: version, Reason: reason}) // a long and a string: cannot fail
	md := kastor.Metadata{Type: ResumeType, Fingerprint: uint64(resumeSchema.Fingerprint())}
	hs := append(wire.Headers(&md), kgo.RecordHeader{Key: wire.HeaderSagaInput, Value: []byte(wire.SagaInputResume)})
	return &kgo.Record{Topic: topic, Partition: p, Key: []byte(id), Value: v, Headers: hs}
}

// outcomeOf turns a gateway reply into the Outcome of the pending command it answers.
func outcomeOf[C any](r gateway.Reply, sent saga.Sent) saga.Outcome[C] {
	return saga.Outcome[C]{
		Command: saga.Command[C]{ID: sent.ID, Send: saga.Send[C]{
			Name: sent.Name, AggregateType: sent.AggregateType, AggregateID: sent.AggregateID, Deadline: sent.Deadline,
		}},
		Err:  r.Err(sent.AggregateType),
		From: r.From, To: r.To,
	}
}
