package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

// This file reads a saga type's topics for operators (the `kastor saga` commands): it
// needs no saga code, only the cluster and the saga type's name. Everything is read
// read_committed, each partition to its last stable offset as of the call.

// Topics are the names of a saga type's three topics in a namespace.
type Topics struct {
	Inputs string `json:"inputs"`
	State  string `json:"state"`
	DLQ    string `json:"dlq"`
}

// TopicsOf returns the topics of saga type sagaType in namespace ns
// (topics.SagaTopicName).
func TopicsOf(ns, sagaType string) Topics {
	return Topics{
		Inputs: topics.SagaTopicName(ns, sagaType, topics.RoleSagaInputs),
		State:  topics.SagaTopicName(ns, sagaType, topics.RoleSagaState),
		DLQ:    topics.SagaTopicName(ns, sagaType, topics.RoleSagaDLQ),
	}
}

// ErrNoSagaTopics is wrapped by the inspection functions' error when a topic of the saga
// type does not exist: a saga type missing from kastor.yaml, a wrong namespace or type,
// or `kastor topics apply` not run.
var ErrNoSagaTopics = errors.New("saga topics missing")

// sagaTopics checks that t's topics exist and returns the inputs (and state) partition
// count.
func sagaTopics(ctx context.Context, c *cluster.Cluster, sagaType string) (Topics, int32, error) {
	if c == nil {
		return Topics{}, 0, errors.New("saga: nil *cluster.Cluster")
	}
	t := TopicsOf(c.Namespace(), sagaType)
	md, err := c.Admin().Metadata(ctx, t.Inputs, t.State, t.DLQ)
	if err != nil {
		return t, 0, fmt.Errorf("saga %s: metadata: %w", sagaType, err)
	}
	var missing []string
	for _, name := range []string{t.Inputs, t.State, t.DLQ} {
		td, ok := md.Topics[name]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			missing = append(missing, name)
		case td.Err != nil:
			return t, 0, fmt.Errorf("saga %s: topic %s: %w", sagaType, name, td.Err)
		}
	}
	if len(missing) > 0 {
		return t, 0, fmt.Errorf("%w: saga type %q in namespace %q: topic(s) %s do not exist (is the type spelled as in saga.Definition.Type? "+
			"declare it in kastor.yaml, `sagas: [{type: %s}]`, and run `kastor topics apply`)",
			ErrNoSagaTopics, sagaType, c.Namespace(), strings.Join(missing, ", "), sagaType)
	}
	n := int32(len(md.Topics[t.Inputs].Partitions))
	if s := int32(len(md.Topics[t.State].Partitions)); s != n {
		return t, 0, fmt.Errorf("saga %s: %s has %d partitions and %s has %d: they must be equal", sagaType, t.Inputs, n, t.State, s)
	}
	return t, n, nil
}

// StoredInstance is an instance's latest record on the state topic.
type StoredInstance struct {
	InstanceRecord
	// Partition, Offset and Timestamp locate the record in the state topic.
	Partition int32
	Offset    int64
	Timestamp time.Time
	// Err is why the record does not decode (then only ID is set): the runner treats the
	// instance as broken and parks its inputs.
	Err error
}

// PartitionStatus is where the runner stands in one inputs partition.
type PartitionStatus struct {
	Partition int32 `json:"partition"`
	// Applied is the offset of the next input the runner will apply (its checkpoint in
	// the state partition); -1 when it has written none yet.
	Applied int64 `json:"applied"`
	// InputsEnd is the inputs partition's last stable offset.
	InputsEnd int64 `json:"inputsEnd"`
	// Lag is how many offsets of the inputs partition are not applied yet
	// (InputsEnd - Applied). Transaction markers count: the checkpoint is written with
	// the inputs applied, before the marker of their transaction, so a partition read to
	// its end usually shows a lag of a marker or two.
	Lag int64 `json:"lag"`
	// Unapplied counts the committed inputs from Applied to InputsEnd: 0 when the runner
	// has applied every input. It is counted by reading them, up to MaxUnappliedCount;
	// beyond, it is Lag.
	Unapplied int64 `json:"unapplied"`
}

// MaxUnappliedCount is how many inputs past a checkpoint the inspection functions read to
// count PartitionStatus.Unapplied.
const MaxUnappliedCount = 10000

// status returns the status of inputs partition p whose checkpoint is applied and whose
// last stable offset is end, counting the committed inputs between them with rd.
func status(ctx context.Context, rd *partition.Reader, inputs string, p int32, applied, end int64) (PartitionStatus, error) {
	ps := PartitionStatus{Partition: p, Applied: applied, InputsEnd: end, Lag: max(end-max(applied, 0), 0)}
	if ps.Lag > MaxUnappliedCount {
		ps.Unapplied = ps.Lag
		return ps, nil
	}
	if ps.Lag > 0 {
		if _, err := rd.Read(ctx, inputs, p, max(applied, 0), end, func(*kgo.Record) error { ps.Unapplied++; return nil }); err != nil {
			return ps, fmt.Errorf("reading %s/%d: %w", inputs, p, err)
		}
	}
	return ps, nil
}

// Instances is a saga type's state topic as read by ReadInstances.
type Instances struct {
	Topics     Topics
	Partitions []PartitionStatus
	// Instances are the instances' latest records, sorted by ID.
	Instances []StoredInstance
}

// ReadInstances reads every partition of saga type sagaType's state topic (in c's
// namespace) to its end, read_committed, and returns each instance's latest record and
// each partition's checkpoint beside its inputs partition's end. Tombstones remove
// instances. A topic of the saga type that does not exist is an error wrapping
// ErrNoSagaTopics.
func ReadInstances(ctx context.Context, c *cluster.Cluster, sagaType string) (*Instances, error) {
	t, n, err := sagaTopics(ctx, c, sagaType)
	if err != nil {
		return nil, err
	}
	rd, err := partition.NewReader(c.Client())
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	rd.Logger = c.Logger()
	ends, err := rd.Ends(ctx, t.Inputs)
	if err != nil {
		return nil, err
	}
	out := &Instances{Topics: t}
	for p := range n {
		insts, applied, err := readStatePartition(ctx, rd, t.State, p, "")
		if err != nil {
			return nil, err
		}
		end, err := partition.End(ends, t.Inputs, p)
		if err != nil {
			return nil, err
		}
		ps, err := status(ctx, rd, t.Inputs, p, applied, end)
		if err != nil {
			return nil, err
		}
		out.Partitions = append(out.Partitions, ps)
		for _, si := range insts {
			out.Instances = append(out.Instances, *si)
		}
	}
	slices.SortFunc(out.Instances, func(a, b StoredInstance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ReadInstance reads the state partition of instance id of saga type sagaType and
// returns its latest record, false when it has none, with the partition's status.
func ReadInstance(ctx context.Context, c *cluster.Cluster, sagaType, id string) (StoredInstance, PartitionStatus, bool, error) {
	if err := checkInstanceID(id); err != nil {
		return StoredInstance{}, PartitionStatus{}, false, err
	}
	t, n, err := sagaTopics(ctx, c, sagaType)
	if err != nil {
		return StoredInstance{}, PartitionStatus{}, false, err
	}
	rd, err := partition.NewReader(c.Client())
	if err != nil {
		return StoredInstance{}, PartitionStatus{}, false, err
	}
	defer rd.Close()
	rd.Logger = c.Logger()
	p := producer.PartitionFor([]byte(id), n)
	ends, err := rd.Ends(ctx, t.Inputs)
	if err != nil {
		return StoredInstance{}, PartitionStatus{}, false, err
	}
	end, err := partition.End(ends, t.Inputs, p)
	if err != nil {
		return StoredInstance{}, PartitionStatus{}, false, err
	}
	insts, applied, err := readStatePartition(ctx, rd, t.State, p, id)
	if err != nil {
		return StoredInstance{}, PartitionStatus{}, false, err
	}
	ps, err := status(ctx, rd, t.Inputs, p, applied, end)
	if err != nil {
		return StoredInstance{}, PartitionStatus{}, false, err
	}
	si, ok := insts[id]
	if !ok {
		return StoredInstance{}, ps, false, nil
	}
	return *si, ps, true, nil
}

// readStatePartition reads state partition p to its end: the latest record of each
// instance (only of instance only when it is not empty) and the checkpoint (-1: none).
func readStatePartition(ctx context.Context, rd *partition.Reader, topic string, p int32, only string) (map[string]*StoredInstance, int64, error) {
	insts := map[string]*StoredInstance{}
	applied := int64(-1)
	_, err := rd.ReadToEnd(ctx, topic, p, 0, func(rec *kgo.Record) error {
		if string(rec.Key) == CheckpointKey {
			if sr, err := decodeState(rec.Key, rec.Value, rec.Headers, nil); err == nil {
				applied = sr.next
			}
			return nil
		}
		id := string(rec.Key)
		if only != "" && id != only {
			return nil
		}
		sr, err := decodeState(rec.Key, rec.Value, rec.Headers, nil)
		switch {
		case err != nil:
			insts[id] = &StoredInstance{InstanceRecord: InstanceRecord{ID: id}, Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp, Err: err}
		case sr.tombstone:
			delete(insts, id)
		default:
			insts[id] = &StoredInstance{InstanceRecord: sr.inst, Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s/%d: %w", topic, p, err)
	}
	return insts, applied, nil
}

// The kinds of StoredInput.
const (
	InputKindEvent       = "event"
	InputKindOutcome     = "outcome"
	InputKindResume      = "resume"
	InputKindUndecodable = "undecodable"
)

// StoredInput is one record of an instance's inputs, as ReadInputs reads it.
type StoredInput struct {
	// Kind is InputKindEvent, InputKindOutcome, InputKindResume or InputKindUndecodable.
	Kind string
	// ID is the input's ID as saga.Apply knows it (saga.EventInputID,
	// saga.OutcomeInputID, saga.ResumeInputID): what the instance's record lists among the inputs it has seen.
	ID        string
	Partition int32
	Offset    int64
	Timestamp time.Time
	// Event is an event's metadata (type, aggregate, version, command and correlation).
	Event *kastor.Metadata
	// Outcome is a gateway's reply: the command ID and its status and message.
	Outcome *gateway.Reply
	// Resume is an operator's request to resume the instance (Resume).
	Resume *saga.Resume
	// Err is why an undecodable input does not decode.
	Err string
}

// ReadInputs reads the inputs partition of instance id of saga type sagaType to its end
// and returns the instance's inputs in order. The inputs topic has a finite retention
// (decision 35: 7 days by default), so an old instance's first inputs may be gone.
func ReadInputs(ctx context.Context, c *cluster.Cluster, sagaType, id string) ([]StoredInput, error) {
	if err := checkInstanceID(id); err != nil {
		return nil, err
	}
	t, n, err := sagaTopics(ctx, c, sagaType)
	if err != nil {
		return nil, err
	}
	p := producer.PartitionFor([]byte(id), n)
	var out []StoredInput
	_, err = partition.ReadToEnd(ctx, c.Client(), t.Inputs, p, 0, func(rec *kgo.Record) error {
		if string(rec.Key) != id {
			return nil
		}
		in := StoredInput{Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp}
		ir, err := decodeInput(rec.Key, rec.Value, rec.Headers)
		switch {
		case err != nil:
			in.Kind, in.Err = InputKindUndecodable, err.Error()
		case ir.kind == inputEvent:
			md := ir.event
			in.Kind, in.Event = InputKindEvent, &md
			in.ID = saga.EventInputID(kastor.Envelope[any]{Metadata: md})
		case ir.kind == inputResume:
			res := ir.resume
			in.Kind, in.Resume = InputKindResume, &res
			in.ID = saga.ResumeInputID(res.Version)
		default:
			r := ir.reply
			in.Kind, in.Outcome = InputKindOutcome, &r
			in.ID = saga.OutcomeInputID(r.CommandID)
		}
		out = append(out, in)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s/%d: %w", t.Inputs, p, err)
	}
	return out, nil
}

// The kinds of Parked: what was parked.
const (
	// ParkedInput: a record of the inputs topic (an event routed to an instance, or an
	// outcome); RetryParked can re-submit it.
	ParkedInput = "input"
	// ParkedDeadline: a deadline whose React failed. It is no input, and the transaction
	// that parked it removed it from the instance's record: it fired once.
	ParkedDeadline = "deadline"
	// ParkedEvent: an event the router could not route (unroutable or undecodable); its
	// key is the event's aggregate ID, not an instance ID.
	ParkedEvent = "event"
	// ParkedStuck: an instance that became stuck (ReasonStuck), parked by the runner in
	// the transaction of the version that made it stuck; Resume resumes it and marks it
	// resolved.
	ParkedStuck = "stuck"
)

// Parked is a record of a saga type's dead-letter topic, read by ReadParked.
type Parked struct {
	// Kind is ParkedInput, ParkedDeadline, ParkedEvent or ParkedStuck.
	Kind string
	// Reason and Err are the kastor.dlq.reason and kastor.dlq.error headers.
	Reason, Err string
	// Instance is the instance the parked input was for (ParkedInput, ParkedDeadline),
	// or the stuck instance (ParkedStuck).
	Instance string
	// Version is the stuck instance's version that made it stuck (ParkedStuck).
	Version int64
	// Deadline and DeadlineAt name the deadline of a ParkedDeadline.
	Deadline   string
	DeadlineAt time.Time
	// Origin, OriginPartition and OriginOffset locate the parked record (-1: a deadline,
	// which has no record; a stuck instance's origin is its state partition, offset -1);
	// Timestamp is its timestamp.
	Origin          string
	OriginPartition int32
	OriginOffset    int64
	Timestamp       time.Time
	// Key, Value and Headers are the parked record's, Headers without kastor.dlq.*.
	Key, Value []byte
	Headers    []kgo.RecordHeader
	// Resolved says a resolution marker closes it (RetryParked writes them).
	Resolved bool
	// Record is the dead-letter record (its offset in the dead-letter topic).
	Record *kgo.Record
}

// ReasonResolved is the kastor.dlq.reason of a resolution marker: a record with no value
// that closes an earlier parked record of the same origin (RetryParked writes them, as
// projection.Replay does for projections' dead letters).
const ReasonResolved = "resolved"

var deadlineErr = regexp.MustCompile(`^deadline ("(?:[^"\\]|\\.)*") at (\S+): `)

// identity is what tells a parked record apart: its origin, for a deadline (no record of
// its own, parked again at every restore) the instance and the deadline, and for a stuck
// instance the instance and the version that made it stuck.
func (d *Parked) identity() string {
	switch d.Kind {
	case ParkedDeadline:
		return fmt.Sprintf("deadline\x00%s\x00%s\x00%d", d.Instance, d.Deadline, d.DeadlineAt.UnixNano())
	case ParkedStuck:
		return fmt.Sprintf("stuck\x00%s\x00%d", d.Instance, d.Version)
	}
	return fmt.Sprintf("%s\x00%d\x00%d", d.Origin, d.OriginPartition, d.OriginOffset)
}

// ReadParked reads saga type sagaType's dead-letter topic to its end and returns its
// parked records in order, each origin once (the first letter; a deadline parked again
// at each restore is one), with Resolved set for those a resolution marker closes.
// Records that are not a saga's parked records are skipped.
func ReadParked(ctx context.Context, c *cluster.Cluster, sagaType string) ([]Parked, error) {
	t, _, err := sagaTopics(ctx, c, sagaType)
	if err != nil {
		return nil, err
	}
	md, err := c.Admin().Metadata(ctx, t.DLQ)
	if err != nil {
		return nil, fmt.Errorf("saga %s: metadata: %w", sagaType, err)
	}
	var all []Parked
	resolved := map[string]bool{}
	for p := range int32(len(md.Topics[t.DLQ].Partitions)) {
		_, err := partition.ReadToEnd(ctx, c.Client(), t.DLQ, p, 0, func(rec *kgo.Record) error {
			d, ok := parseParked(rec, t)
			switch {
			case !ok:
			case d.Reason == ReasonResolved:
				resolved[d.identity()] = true
			default:
				all = append(all, d)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading %s/%d: %w", t.DLQ, p, err)
		}
	}
	out := []Parked{}
	seen := map[string]bool{}
	for _, d := range all {
		id := d.identity()
		if seen[id] {
			continue
		}
		seen[id] = true
		d.Resolved = resolved[id]
		out = append(out, d)
	}
	return out, nil
}

// parseParked reads a dead-letter record of a saga whose topics are t; false for one that
// is not.
func parseParked(rec *kgo.Record, t Topics) (Parked, bool) {
	d := Parked{Key: rec.Key, Value: rec.Value, Record: rec, OriginOffset: -1}
	sagaHeader := false
	for _, h := range rec.Headers {
		v := string(h.Value)
		switch h.Key {
		case wire.HeaderDLQReason:
			d.Reason = v
		case wire.HeaderDLQError:
			d.Err = v
		case wire.HeaderDLQTopic:
			d.Origin = v
		case wire.HeaderDLQPartition:
			n, _ := strconv.ParseInt(v, 10, 32)
			d.OriginPartition = int32(n)
		case wire.HeaderDLQOffset:
			d.OriginOffset, _ = strconv.ParseInt(v, 10, 64)
		case wire.HeaderDLQTimestamp:
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				d.Timestamp = time.UnixMilli(ms).UTC()
			}
		case wire.HeaderDLQSaga:
			sagaHeader = true
		case wire.HeaderDLQSagaVersion:
			d.Version, _ = strconv.ParseInt(v, 10, 64)
		default:
			if !strings.HasPrefix(h.Key, "kastor.dlq.") {
				d.Headers = append(d.Headers, h)
			}
		}
	}
	if !sagaHeader || d.Reason == "" || d.Origin == "" {
		return d, false
	}
	switch {
	case d.Origin == t.State:
		d.Kind, d.Instance = ParkedStuck, string(rec.Key)
	case d.Origin != t.Inputs:
		d.Kind = ParkedEvent
	case d.OriginOffset < 0:
		d.Kind, d.Instance = ParkedDeadline, string(rec.Key)
		if m := deadlineErr.FindStringSubmatch(d.Err); m != nil {
			d.Deadline, _ = strconv.Unquote(m[1])
			d.DeadlineAt, _ = time.Parse(time.RFC3339Nano, m[2])
		}
	default:
		d.Kind, d.Instance = ParkedInput, string(rec.Key)
	}
	return d, true
}

// resolutionMarker is the record that marks d resolved on dead-letter topic topic: d's
// key, no value, kastor.dlq.reason = resolved, d's origin and the saga type.
func resolutionMarker(topic, sagaType string, d *Parked) *kgo.Record {
	hs := []kgo.RecordHeader{}
	add := func(k, v string) { hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(wire.HeaderDLQReason, ReasonResolved)
	add(wire.HeaderDLQTopic, d.Origin)
	add(wire.HeaderDLQPartition, strconv.FormatInt(int64(d.OriginPartition), 10))
	add(wire.HeaderDLQOffset, strconv.FormatInt(d.OriginOffset, 10))
	add(wire.HeaderDLQSaga, sagaType)
	if d.Kind == ParkedStuck {
		add(wire.HeaderDLQSagaVersion, strconv.FormatInt(d.Version, 10))
	}
	return &kgo.Record{Topic: topic, Partition: 0, Key: d.Key, Headers: hs}
}

// Retried is one parked input RetryParked re-submitted, or left alone with why.
type Retried struct {
	Parked
	// Partition and Offset are where the input was re-submitted in the inputs topic;
	// Offset -1 when it was not.
	Partition int32
	Offset    int64
	// Skipped says why it was not re-submitted ("" when it was).
	Skipped string
}

// RetryParked re-submits the unresolved parked inputs of instance id of saga type
// sagaType to the saga's inputs topic, and marks them resolved on the dead-letter topic,
// in one Kafka transaction (transactional ID <ns>.saga.<type>.retry, so two retries at
// once fence each other rather than both writing). Each input is its parked record as it
// was (key, value, headers). The runner applies them as any input: saga.Apply ignores an
// input whose ID the instance has seen already, so a retry changes state at most once
// per input; one that fails again is parked again, as a new parked record.
//
// Parked deadlines are not re-submitted (a deadline is no input, and the transaction
// that parked it removed it from the record: it fires once); they are returned with
// Skipped set and stay unresolved. Events the router
// could not route are no instance's (they are keyed by aggregate ID) and are left alone:
// routing them needs the saga's Correlate. A stuck instance's letter (ParkedStuck) is no
// input either: Resume resumes the instance and resolves it; RetryParked leaves it out.
func RetryParked(ctx context.Context, c *cluster.Cluster, sagaType, id string) ([]Retried, error) {
	if err := checkInstanceID(id); err != nil {
		return nil, err
	}
	letters, err := ReadParked(ctx, c, sagaType)
	if err != nil {
		return nil, err
	}
	t, n, err := sagaTopics(ctx, c, sagaType)
	if err != nil {
		return nil, err
	}
	var out []Retried
	var recs []*kgo.Record
	var idx []int // out index of each input record in recs
	for _, d := range letters {
		if d.Resolved || d.Instance != id || d.Kind == ParkedStuck {
			continue
		}
		r := Retried{Parked: d, Partition: -1, Offset: -1}
		switch d.Kind {
		case ParkedDeadline:
			r.Skipped = "a deadline is not an input, and it was removed from the instance's record when it was parked: it fires once"
		default:
			value := d.Value
			if value == nil {
				value = []byte{}
			}
			idx = append(idx, len(out))
			recs = append(recs, &kgo.Record{Topic: t.Inputs, Partition: producer.PartitionFor(d.Key, n), Key: d.Key, Value: value,
				Headers: slices.Clone(d.Headers)})
		}
		out = append(out, r)
	}
	if len(recs) == 0 {
		return out, nil
	}
	for _, i := range idx {
		recs = append(recs, resolutionMarker(t.DLQ, sagaType, &out[i].Parked))
	}
	res, err := submit(ctx, c, sagaType, recs)
	if err != nil {
		return nil, fmt.Errorf("saga %s retry: nothing re-submitted: %w", sagaType, err)
	}
	// ProduceSync's results are in the order records completed, not the order given.
	at := map[*kgo.Record]int{}
	for j, i := range idx {
		at[recs[j]] = i
	}
	for _, pr := range res {
		if i, ok := at[pr.Record]; ok {
			out[i].Partition, out[i].Offset = pr.Record.Partition, pr.Record.Offset
		}
	}
	return out, nil
}

// submit writes recs in one transaction of saga type sagaType's operator producer
// (transactional ID <ns>.saga.<type>.retry: two operators at once fence each other).
func submit(ctx context.Context, c *cluster.Cluster, sagaType string, recs []*kgo.Record) (kgo.ProduceResults, error) {
	cl, err := c.NewClient(
		kgo.TransactionalID(fmt.Sprintf("%s.saga.%s.retry", c.Namespace(), sagaType)),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		return nil, err
	}
	res := cl.ProduceSync(ctx, recs...)
	perr := res.FirstErr()
	if err := cl.EndTransaction(context.WithoutCancel(ctx), kgo.TransactionEndTry(perr == nil)); err != nil || perr != nil {
		return nil, errors.Join(perr, err)
	}
	return res, nil
}

// ErrNotStuck is wrapped by Resume's error for an instance that is not stuck: active,
// done, broken, or with no record. The error names the instance and its status.
var ErrNotStuck = errors.New("saga instance not stuck")

// Resumed is what Resume did for a stuck instance.
type Resumed struct {
	// Instance is the instance's ID; Version the version seen stuck, and Reason why
	// (its state's stuck reason).
	Instance string
	Version  int64
	Reason   string
	// Partition and Offset are where the resume input is in the inputs topic: written by
	// this call, or by an earlier one when Pending.
	Partition int32
	Offset    int64
	// Pending says a resume of Version was on the inputs topic already, not applied yet
	// (a second request before the runner applied the first): nothing was written.
	Pending bool
	// Resolved are the instance's stuck letters this call marked resolved.
	Resolved []Parked
}

// Resume asks the runner to resume instance id of saga type sagaType, which must be
// stuck: its latest record's state, decoded with its writer schema from _kastor.schemas,
// has a "stuck" reason (StuckReason; saga.Progress.Stuck for orchestrations). It writes a
// resume input (a kastor.SagaResume record, kastor.saga.input = resume, key the instance
// ID) to the inputs topic and marks the instance's stuck letters resolved on the
// dead-letter topic, in one Kafka transaction (the transactional ID RetryParked uses):
// both or neither. The running runner applies it as saga.Input.Resume, with the input ID
// saga.ResumeInputID(the version seen stuck): requests for the same stuck version are
// applied once. An orchestration then sends the compensation that kept failing again
// (saga.Orchestrate); fix the cause first, or it gets stuck again after its retries.
//
// An instance that is not stuck (active, done, broken, no record) is an error wrapping
// ErrNotStuck that names it and its status. When a resume of the same version is on the
// inputs topic past the runner's checkpoint (not applied yet), nothing is written and
// Resumed.Pending is set.
func Resume(ctx context.Context, c *cluster.Cluster, sagaType, id string) (Resumed, error) {
	si, ps, found, err := ReadInstance(ctx, c, sagaType, id)
	if err != nil {
		return Resumed{}, err
	}
	switch {
	case !found:
		return Resumed{}, fmt.Errorf("%w: saga %s has no instance %q (no record on its state topic)", ErrNotStuck, sagaType, id)
	case si.Err != nil:
		return Resumed{}, fmt.Errorf("%w: instance %q of saga %s is broken, not stuck: its record does not decode (%v); replace the record, restart the runner and retry its parked inputs",
			ErrNotStuck, id, sagaType, si.Err)
	case si.Done:
		return Resumed{}, fmt.Errorf("%w: instance %q of saga %s is done (version %d): nothing to resume", ErrNotStuck, id, sagaType, si.Version)
	}
	reg := schema.NewRegistry()
	if err := schema.Load(ctx, c.Client(), reg); err != nil {
		return Resumed{}, fmt.Errorf("saga %s: loading the state's schema: %w", sagaType, err)
	}
	st, err := StateJSON(reg, si.State)
	if err != nil {
		return Resumed{}, fmt.Errorf("saga %s: instance %q: decoding its state (type %s): %w", sagaType, id, si.State.Type, err)
	}
	reason := StuckReason(st)
	if reason == "" {
		return Resumed{}, fmt.Errorf("%w: instance %q of saga %s is active, not stuck (version %d): nothing to resume", ErrNotStuck, id, sagaType, si.Version)
	}
	out := Resumed{Instance: id, Version: si.Version, Reason: reason, Partition: si.Partition, Offset: -1}
	t, _, err := sagaTopics(ctx, c, sagaType)
	if err != nil {
		return Resumed{}, err
	}
	// A resume of this version written and not applied yet: the runner will apply it.
	if ps.InputsEnd > max(ps.Applied, 0) {
		rd, err := partition.NewReader(c.Client())
		if err != nil {
			return Resumed{}, err
		}
		defer rd.Close()
		_, err = rd.Read(ctx, t.Inputs, si.Partition, max(ps.Applied, 0), ps.InputsEnd, func(rec *kgo.Record) error {
			if string(rec.Key) != id || out.Pending {
				return nil
			}
			if in, err := decodeInput(rec.Key, rec.Value, rec.Headers); err == nil && in.kind == inputResume && in.resume.Version == si.Version {
				out.Pending, out.Offset = true, rec.Offset
			}
			return nil
		})
		if err != nil {
			return Resumed{}, fmt.Errorf("reading %s/%d: %w", t.Inputs, si.Partition, err)
		}
		if out.Pending {
			return out, nil
		}
	}
	letters, err := ReadParked(ctx, c, sagaType)
	if err != nil {
		return Resumed{}, err
	}
	in := resumeRecord(t.Inputs, si.Partition, id, si.Version, reason)
	recs := []*kgo.Record{in}
	for _, d := range letters {
		if d.Kind == ParkedStuck && d.Instance == id && !d.Resolved {
			recs = append(recs, resolutionMarker(t.DLQ, sagaType, &d))
			d.Resolved = true
			out.Resolved = append(out.Resolved, d)
		}
	}
	if _, err := submit(ctx, c, sagaType, recs); err != nil {
		return Resumed{}, fmt.Errorf("saga %s resume: nothing written: %w", sagaType, err)
	}
	out.Offset = in.Offset
	return out, nil
}

// StateJSON decodes an instance's state to JSON with its writer schema from reg (loaded
// from _kastor.schemas with schema.Load), without the saga's code. The error is a
// *schema.UnknownSchemaError when reg has no schema of that fingerprint.
func StateJSON(reg *schema.Registry, st kastor.Encoded) (json.RawMessage, error) {
	native, s, err := reg.DecodeNative(schema.Fingerprint(st.Fingerprint), st.Data, schema.DefaultLimits)
	if err != nil {
		return nil, err
	}
	text, err := s.Codec().TextualFromNative(nil, native)
	if err != nil {
		return nil, err
	}
	return text, nil
}

// StuckReason returns why an instance waits for an operator, from its state as JSON: the
// value of a top-level string field named "stuck" (saga.Progress.Stuck, set by an
// orchestration whose compensation kept failing), or "" when there is none.
func StuckReason(state json.RawMessage) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(state, &fields) != nil {
		return ""
	}
	for k, v := range fields {
		if !strings.EqualFold(k, "stuck") {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
		// An optional string in Avro's JSON encoding: {"string": "..."}.
		var u map[string]string
		if json.Unmarshal(v, &u) == nil {
			return u["string"]
		}
	}
	return ""
}
