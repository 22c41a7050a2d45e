package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"io"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The Sender is tested against a fake gateway: a goroutine that reads the commands topic,
// decides with sndCmd's instructions, and writes replies keyed by reply-to in transactions,
// as the real gateway does.

const (
	sndAgg         = "snd.account"
	sndType        = "snd.Cmd"
	sndFingerprint = uint64(0x0123456789abcdef)
)

// sndCmd tells the fake gateway what to do.
type sndCmd struct {
	Events  int    `json:"events"`            // events to "write" on success
	Outcome string `json:"outcome,omitempty"` // "", "reject", "invariant", "undecodable"
	Message string `json:"message,omitempty"` // the reason of a failure
	// AbortFirst makes the fake write a bogus reply in an aborted transaction first.
	AbortFirst bool `json:"abortFirst,omitempty"`
	// Garbage makes the fake write an undecodable reply (with the caller's key) first.
	Garbage bool `json:"garbage,omitempty"`
}

// sndCodec is JSON with a fixed type name and fingerprint.
type sndCodec struct{}

func (sndCodec) Encode(c sndCmd) (kastor.Encoded, error) {
	b, err := json.Marshal(c)
	return kastor.Encoded{Type: sndType, Fingerprint: sndFingerprint, Data: b}, err
}

func (sndCodec) Decode(e kastor.Encoded) (sndCmd, error) {
	var c sndCmd
	if e.Type != sndType || e.Fingerprint != sndFingerprint {
		return c, fmt.Errorf("unknown command type %q/%016x", e.Type, e.Fingerprint)
	}
	err := json.Unmarshal(e.Data, &c)
	return c, err
}

func sndCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// sndTopics creates the commands and replies topics of a fresh namespace.
func sndTopics(t *testing.T, c *kafkatest.Cluster, commandsP, repliesP int32) string {
	t.Helper()
	ns := kafkatest.TopicName(t)
	c.CreateTopic(t, topics.TopicName(ns, sndAgg, topics.RoleCommands), commandsP, 1, nil)
	c.CreateTopic(t, topics.TopicName(ns, sndAgg, topics.RoleReplies), repliesP, 1, nil)
	return ns
}

// sndLog is a concurrency-safe log buffer.
type sndLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *sndLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *sndLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func sndNewSender(t *testing.T, c *kafkatest.Cluster, ns, callerID string, log *sndLog) *gateway.Sender[sndCmd] {
	t.Helper()
	if log == nil {
		log = &sndLog{}
	}
	kc := c.Kastor(t, ns, cluster.Logger(slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	s, err := gateway.NewSender(sndCtx(t, time.Minute), kc, gateway.SenderConfig[sndCmd]{
		AggregateType: sndAgg, Commands: sndCodec{}, CallerID: callerID,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// sndSeen is a command as the fake gateway read it.
type sndSeen struct {
	Key       string
	Partition int32
	Headers   map[string][]string
	Status    gateway.Status
}

func (s sndSeen) header(k string) (string, bool) {
	v, ok := s.Headers[k]
	if !ok {
		return "", false
	}
	return v[0], true
}

type sndFake struct {
	t        *testing.T
	replies  string
	app      *sndTxns
	hold     int // replies are written by groups of hold, in reverse order
	seen     chan sndSeen
	versions map[string]int64
	applied  map[string]gateway.Reply // by aggregate ID + "\x00" + command ID
	// late makes the fake read each command only once its deadline header has passed.
	late bool
}

// sndStartFake runs a fake gateway for namespace ns until the test ends.
func sndStartFake(t *testing.T, c *kafkatest.Cluster, ns string, hold int) *sndFake {
	t.Helper()
	app, err := newSndTxns(c, "snd-fake-"+ns, topics.TopicName(ns, sndAgg, topics.RoleReplies))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.NewClient(
		kgo.ConsumeTopics(topics.TopicName(ns, sndAgg, topics.RoleCommands)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		app.Close()
		t.Fatal(err)
	}
	f := &sndFake{
		t: t, replies: topics.TopicName(ns, sndAgg, topics.RoleReplies), app: app, hold: max(hold, 1),
		seen: make(chan sndSeen, 4096), versions: map[string]int64{}, applied: map[string]gateway.Reply{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var pending []*kgo.Record
		replies := 0
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			if err := fs.Err0(); err != nil {
				t.Errorf("fake gateway: reading commands: %v", err)
				return
			}
			for _, r := range fs.Records() {
				recs := f.handle(ctx, r)
				if len(recs) > 0 {
					replies++
					pending = append(pending, recs...)
				}
			}
			if replies >= f.hold {
				if f.hold > 1 {
					for i, j := 0, len(pending)-1; i < j; i, j = i+1, j-1 {
						pending[i], pending[j] = pending[j], pending[i]
					}
				}
				if err := app.transact(ctx, true, pending...); err != nil {
					if ctx.Err() == nil {
						t.Errorf("fake gateway: writing replies: %v", err)
					}
					return
				}
				pending, replies = nil, 0
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
		app.Close()
	})
	return f
}

// sndTxns writes the fake gateway's replies in Kafka transactions, as the gateway does:
// a transactional client of its own, each record in its key's partition.
type sndTxns struct {
	cl         *kgo.Client
	partitions int32
}

func newSndTxns(c *kafkatest.Cluster, id, replies string) (*sndTxns, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	md, err := c.Admin().Metadata(ctx, replies)
	if err != nil {
		return nil, err
	}
	td, ok := md.Topics[replies]
	if !ok || td.Err != nil || len(td.Partitions) == 0 {
		return nil, fmt.Errorf("topic %s: %v", replies, td.Err)
	}
	cl, err := c.NewClient(kgo.TransactionalID(id), kgo.TransactionTimeout(10*time.Second), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return nil, err
	}
	return &sndTxns{cl: cl, partitions: int32(len(td.Partitions))}, nil
}

// transact writes recs in one transaction, and commits it, or aborts it when commit is
// false or a record failed.
func (w *sndTxns) transact(ctx context.Context, commit bool, recs ...*kgo.Record) error {
	if err := w.cl.BeginTransaction(); err != nil {
		return err
	}
	for _, r := range recs {
		r.Partition = producer.PartitionFor(r.Key, w.partitions)
	}
	err := w.cl.ProduceSync(ctx, recs...).FirstErr()
	end := kgo.TransactionEndTry(commit && err == nil)
	if endErr := w.cl.EndTransaction(ctx, end); err == nil {
		err = endErr
	}
	return err
}

func (w *sndTxns) Close() { w.cl.Close() }

// handle decides one command and returns the reply records to commit (none without reply-to).
func (f *sndFake) handle(ctx context.Context, r *kgo.Record) []*kgo.Record {
	seen := sndSeen{Key: string(r.Key), Partition: r.Partition, Headers: map[string][]string{}}
	for _, h := range r.Headers {
		seen.Headers[h.Key] = append(seen.Headers[h.Key], string(h.Value))
	}
	md, err := wire.ParseHeaders(r.Headers) // ignores the gateway's own headers
	if err != nil {
		f.t.Errorf("fake gateway: command headers: %v", err)
	}
	replyTo, _ := seen.header(wire.HeaderReplyTo)
	reply := gateway.Reply{CommandID: md.CommandID, AggregateID: string(r.Key), From: 1, To: 0}
	cmd, err := sndCodec{}.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: r.Value})
	version := f.versions[reply.AggregateID]
	key := reply.AggregateID + "\x00" + md.CommandID
	prev, dup := f.applied[key]
	expected := kastor.AnyVersion
	if v, ok := seen.header(wire.HeaderExpectedVersion); ok {
		expected, _ = strconv.ParseInt(v, 10, 64)
	}
	deadline := time.Time{}
	if v, ok := seen.header(wire.HeaderDeadline); ok {
		ms, _ := strconv.ParseInt(v, 10, 64)
		deadline = time.UnixMilli(ms)
	}
	if f.late && !deadline.IsZero() {
		time.Sleep(time.Until(deadline) + 10*time.Millisecond) // a gateway that reads it too late
	}
	attempt, _ := seen.header(wire.HeaderAttemptID)
	attemptHeader := []kgo.RecordHeader{{Key: wire.HeaderAttemptID, Value: []byte(attempt)}}
	switch {
	case err != nil:
		reply.Status, reply.Message = gateway.StatusUndecodable, err.Error()
	case !deadline.IsZero() && time.Now().After(deadline):
		reply.Status, reply.Message = gateway.StatusExpired, "read after its deadline"
	case dup:
		reply = prev
		reply.Status = gateway.StatusDuplicate
	case expected != kastor.AnyVersion && expected != version:
		reply.Status, reply.Expected, reply.Actual = gateway.StatusConflict, expected, version
	case cmd.Outcome == "reject":
		reply.Status, reply.Message = gateway.StatusRejected, cmd.Message
	case cmd.Outcome == "invariant":
		reply.Status, reply.Message = gateway.StatusInvariant, cmd.Message
	case cmd.Outcome == "undecodable":
		reply.Status, reply.Message = gateway.StatusUndecodable, cmd.Message
	default:
		reply.Status, reply.From, reply.To = gateway.StatusOK, version+1, version+int64(cmd.Events)
		f.versions[reply.AggregateID] = reply.To
		f.applied[key] = reply
	}
	seen.Status = reply.Status
	f.seen <- seen
	if replyTo == "" {
		return nil
	}
	var out []*kgo.Record
	if cmd.AbortFirst {
		bogus := gateway.Reply{CommandID: md.CommandID, Status: gateway.StatusOK, AggregateID: "bogus", From: 900, To: 999}
		v, _ := bogus.Encode()
		err := f.app.transact(ctx, false, &kgo.Record{Topic: f.replies, Key: []byte(replyTo), Value: v, Headers: attemptHeader})
		if err != nil && ctx.Err() == nil {
			f.t.Errorf("fake gateway: aborted transaction: %v", err)
		}
	}
	if cmd.Garbage {
		out = append(out, &kgo.Record{Topic: f.replies, Key: []byte(replyTo), Value: []byte{0xff, 0xff, 0xff}, Headers: attemptHeader})
	}
	v, err := reply.Encode()
	if err != nil {
		f.t.Errorf("fake gateway: encoding reply: %v", err)
	}
	return append(out, &kgo.Record{Topic: f.replies, Key: []byte(replyTo), Value: v, Headers: attemptHeader})
}

// next returns the next command the fake read.
func (f *sndFake) next(t *testing.T) sndSeen {
	t.Helper()
	select {
	case s := <-f.seen:
		return s
	case <-time.After(time.Minute):
		t.Fatal("the fake gateway read no command within a minute")
		return sndSeen{}
	}
}

var sndUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// Scenarios, run on the embedded broker by their own tests and on real Kafka by
// TestSenderRealKafka.

func sndScenarioOK(t *testing.T, c *kafkatest.Cluster) {
	ns := sndTopics(t, c, 3, 3)
	f := sndStartFake(t, c, ns, 1)
	s := sndNewSender(t, c, ns, "", nil)

	ctx := sndCtx(t, time.Minute)
	deadline, _ := ctx.Deadline()
	res, err := s.Send(ctx, kastor.NewCommand("acc-1", sndCmd{Events: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if !sndUUID.MatchString(res.CommandID) || res.AggregateID != "acc-1" || res.From != 1 || res.To != 2 || res.Duplicate {
		t.Fatalf("first command: %+v", res)
	}
	seen := f.next(t)
	for k, want := range map[string]string{
		kastor.HeaderCommandID:     res.CommandID,
		kastor.HeaderCorrelationID: res.CommandID, // defaults to the command ID
		kastor.HeaderAggregateID:   "acc-1",
		kastor.HeaderType:          sndType,
		kastor.HeaderSchema:        fmt.Sprintf("%016x", sndFingerprint),
		wire.HeaderReplyTo:         s.CallerID(),
		// A fifth of the time left, at most a second, before ctx's deadline.
		wire.HeaderDeadline: strconv.FormatInt(deadline.Add(-time.Second).UnixMilli(), 10),
	} {
		if got, _ := seen.header(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	firstAttempt, _ := seen.header(wire.HeaderAttemptID)
	if !sndUUID.MatchString(firstAttempt) {
		t.Errorf("attempt ID header %q, want a UUID", firstAttempt)
	}
	if v, ok := seen.header(wire.HeaderExpectedVersion); ok {
		t.Errorf("AnyVersion sent an expected version header %q", v)
	}
	if want := producer.PartitionFor([]byte("acc-1"), 3); seen.Partition != want {
		t.Errorf("command in partition %d, want %d", seen.Partition, want)
	}

	// No events: From > To. An explicit correlation ID and expected version travel.
	res2, err := s.Send(ctx, kastor.Command[sndCmd]{AggregateID: "acc-1", ID: "cmd-2", CorrelationID: "corr-2", ExpectedVersion: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res2 != (gateway.Result{CommandID: "cmd-2", AggregateID: "acc-1", From: 3, To: 2}) {
		t.Fatalf("command without events: %+v", res2)
	}
	seen = f.next(t)
	if v, _ := seen.header(kastor.HeaderCorrelationID); v != "corr-2" {
		t.Errorf("correlation ID %q, want corr-2", v)
	}
	if v, _ := seen.header(wire.HeaderExpectedVersion); v != "2" {
		t.Errorf("expected version header %q, want 2", v)
	}

	// The same command ID again: the first result, flagged duplicate.
	again, err := s.Send(ctx, kastor.Command[sndCmd]{AggregateID: "acc-1", ID: res.CommandID, ExpectedVersion: kastor.AnyVersion, Payload: sndCmd{Events: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (gateway.Result{CommandID: res.CommandID, AggregateID: "acc-1", From: 1, To: 2, Duplicate: true}); again != want {
		t.Fatalf("re-sent command: %+v, want %+v", again, want)
	}
	if a, _ := f.next(t).header(wire.HeaderAttemptID); a == firstAttempt || !sndUUID.MatchString(a) {
		t.Errorf("the re-sent command's attempt ID %q, want a new UUID (first %q)", a, firstAttempt)
	}
}

// An attempt a gateway reads after its deadline is not executed, and the caller still
// waiting hears so: an ExpiredError, not a timeout.
func TestSendExpired(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	ns := sndTopics(t, c, 1, 1)
	f := sndStartFake(t, c, ns, 1)
	f.late = true
	s := sndNewSender(t, c, ns, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := s.Send(ctx, kastor.Command[sndCmd]{AggregateID: "acc-x", ID: "late-1", ExpectedVersion: kastor.AnyVersion, Payload: sndCmd{Events: 1}})
	var ee *kastor.ExpiredError
	if !errors.As(err, &ee) || !errors.Is(err, kastor.ErrExpired) || errors.Is(err, kastor.ErrTimeout) || ee.CommandID != "late-1" {
		t.Fatalf("got %v, want a *kastor.ExpiredError for late-1 that is not a timeout", err)
	}
}

func sndScenarioTypedErrors(t *testing.T, c *kafkatest.Cluster) {
	ns := sndTopics(t, c, 3, 3)
	sndStartFake(t, c, ns, 1)
	s := sndNewSender(t, c, ns, "", nil)
	ctx := sndCtx(t, time.Minute)
	sentinels := []error{kastor.ErrRejected, kastor.ErrVersionConflict, kastor.ErrInvariant, kastor.ErrUndecodable, kastor.ErrTimeout, kastor.ErrShuttingDown}

	for _, tc := range []struct {
		name  string
		cmd   kastor.Command[sndCmd]
		want  error
		check func(t *testing.T, err error)
	}{
		{"rejected", kastor.Command[sndCmd]{AggregateID: "acc-r", ID: "c-r", ExpectedVersion: kastor.AnyVersion, Payload: sndCmd{Outcome: "reject", Message: "insufficient funds"}},
			kastor.ErrRejected, func(t *testing.T, err error) {
				var re *kastor.RejectedError
				if !errors.As(err, &re) || re.AggregateType != sndAgg || re.AggregateID != "acc-r" || re.CommandID != "c-r" || re.Err.Error() != "insufficient funds" {
					t.Fatalf("%#v", err)
				}
			}},
		{"conflict", kastor.Command[sndCmd]{AggregateID: "acc-c", ID: "c-c", ExpectedVersion: 5, Payload: sndCmd{Events: 1}},
			kastor.ErrVersionConflict, func(t *testing.T, err error) {
				var vc *kastor.VersionConflictError
				if !errors.As(err, &vc) || vc.AggregateType != sndAgg || vc.AggregateID != "acc-c" || vc.Expected != 5 || vc.Actual != 0 {
					t.Fatalf("%#v", err)
				}
			}},
		{"invariant", kastor.Command[sndCmd]{AggregateID: "acc-i", ID: "c-i", ExpectedVersion: kastor.AnyVersion, Payload: sndCmd{Outcome: "invariant", Message: "balance below zero"}},
			kastor.ErrInvariant, func(t *testing.T, err error) {
				var ie *kastor.InvariantError
				if !errors.As(err, &ie) || ie.AggregateID != "acc-i" || ie.Err.Error() != "balance below zero" {
					t.Fatalf("%#v", err)
				}
			}},
		{"undecodable", kastor.Command[sndCmd]{AggregateID: "acc-u", ID: "c-u", ExpectedVersion: kastor.AnyVersion, Payload: sndCmd{Outcome: "undecodable", Message: "unknown schema 42"}},
			kastor.ErrUndecodable, func(t *testing.T, err error) {
				var ue *kastor.UndecodableError
				if !errors.As(err, &ue) || ue.What != "command" || ue.Err.Error() != "unknown schema 42" {
					t.Fatalf("%#v", err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Send(ctx, tc.cmd)
			if err == nil {
				t.Fatalf("no error, result %+v", res)
			}
			for _, sentinel := range sentinels {
				if errors.Is(err, sentinel) != (sentinel == tc.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, sentinel, !(sentinel == tc.want))
				}
			}
			if res.CommandID != tc.cmd.ID {
				t.Errorf("result command ID %q, want %q", res.CommandID, tc.cmd.ID)
			}
			tc.check(t, err)
			t.Log(err)
		})
	}
	// A rejection's message reaches the caller in the error text.
	_, err := s.Send(ctx, kastor.NewCommand("acc-r2", sndCmd{Outcome: "reject", Message: "account is frozen"}))
	if err == nil || !strings.Contains(err.Error(), "account is frozen") || !strings.Contains(err.Error(), sndAgg) {
		t.Fatalf("rejection message: %v", err)
	}
}

// sndSameReplyPartition returns two caller IDs whose replies share a partition of n.
func sndSameReplyPartition(t *testing.T, n int32) (string, string) {
	a := "caller-a"
	pa := producer.PartitionFor([]byte(a), n)
	for i := range 1000 {
		b := fmt.Sprintf("caller-b%d", i)
		if producer.PartitionFor([]byte(b), n) == pa {
			return a, b
		}
	}
	t.Fatal("no caller ID shares a partition with caller-a")
	return "", ""
}

func sndScenarioSharedPartition(t *testing.T, c *kafkatest.Cluster) {
	ns := sndTopics(t, c, 3, 3)
	// The fake holds replies until it has both, then writes them in one transaction in
	// reverse order of arrival: each Sender reads the other's reply, for the same command
	// ID, while it waits for its own.
	f := sndStartFake(t, c, ns, 2)
	idA, idB := sndSameReplyPartition(t, 3)
	sa := sndNewSender(t, c, ns, idA, nil)
	sb := sndNewSender(t, c, ns, idB, nil)
	ctx := sndCtx(t, time.Minute)

	type out struct {
		res gateway.Result
		err error
	}
	ra, rb := make(chan out, 1), make(chan out, 1)
	go func() {
		res, err := sa.Send(ctx, kastor.Command[sndCmd]{AggregateID: "agg-a", ID: "same-id", ExpectedVersion: kastor.AnyVersion, Payload: sndCmd{Events: 1}})
		ra <- out{res, err}
	}()
	go func() {
		res, err := sb.Send(ctx, kastor.Command[sndCmd]{AggregateID: "agg-b", ID: "same-id", ExpectedVersion: kastor.AnyVersion, Payload: sndCmd{Events: 3}})
		rb <- out{res, err}
	}()
	a, b := <-ra, <-rb
	if a.err != nil || b.err != nil {
		t.Fatalf("A: %v, B: %v", a.err, b.err)
	}
	if a.res.AggregateID != "agg-a" || a.res.To != 1 {
		t.Errorf("sender A got %+v, want agg-a's result", a.res)
	}
	if b.res.AggregateID != "agg-b" || b.res.To != 3 {
		t.Errorf("sender B got %+v, want agg-b's result", b.res)
	}
	for range 2 {
		if s := f.next(t); s.Status != gateway.StatusOK {
			t.Errorf("fake: %+v", s)
		}
	}
}

func sndScenarioSkipsAbortedAndUndecodable(t *testing.T, c *kafkatest.Cluster) {
	ns := sndTopics(t, c, 3, 3)
	sndStartFake(t, c, ns, 1)
	log := &sndLog{}
	s := sndNewSender(t, c, ns, "", log)
	ctx := sndCtx(t, time.Minute)

	res, err := s.Send(ctx, kastor.NewCommand("acc-a", sndCmd{Events: 1, AbortFirst: true}))
	if err != nil {
		t.Fatal(err)
	}
	if res.AggregateID != "acc-a" || res.From != 1 || res.To != 1 {
		t.Fatalf("got %+v: a reply of an aborted transaction reached the caller", res)
	}
	res, err = s.Send(ctx, kastor.NewCommand("acc-a", sndCmd{Events: 1, Garbage: true}))
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 2 || res.To != 2 {
		t.Fatalf("after an undecodable reply: %+v", res)
	}
	if l := log.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "cannot decode reply") {
		t.Errorf("no warning about the undecodable reply in the log:\n%s", l)
	}
}

// sndScenarioOpenTransactionDoesNotHoldReplies: a transaction left open in the Sender's
// replies partition by another producer (a gateway that crashed mid-transaction) must not
// hold back replies committed after it. A read_committed reader waits for it to be
// aborted, a transaction timeout later (a minute here); the Sender does not.
func sndScenarioOpenTransactionDoesNotHoldReplies(t *testing.T, c *kafkatest.Cluster) {
	ns := sndTopics(t, c, 1, 1)
	replies := topics.TopicName(ns, sndAgg, topics.RoleReplies)
	zombie, err := c.NewClient(kgo.TransactionalID("zombie-"+ns), kgo.TransactionTimeout(time.Minute), kgo.DefaultProduceTopic(replies))
	if err != nil {
		t.Fatal(err)
	}
	defer zombie.Close()
	ctx := sndCtx(t, time.Minute)
	s := sndNewSender(t, c, ns, "", nil)
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	stale := gateway.Reply{CommandID: "c-open", Status: gateway.StatusOK, AggregateID: "acc-o", From: 7, To: 7}
	v, _ := stale.Encode()
	if err := zombie.ProduceSync(ctx, &kgo.Record{Key: []byte(s.CallerID()), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sndStartFake(t, c, ns, 1)
	start := time.Now()
	short, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	res, err := s.Send(short, kastor.Command[sndCmd]{AggregateID: "acc-o", ID: "c-open", ExpectedVersion: kastor.AnyVersion, Payload: sndCmd{Events: 1}})
	if err != nil {
		t.Fatalf("with another producer's transaction open in the replies partition: %v (after %v)", err, time.Since(start))
	}
	if res.From != 1 || res.To != 1 {
		t.Fatalf("got %+v: the open transaction's reply reached the caller", res)
	}
	if err := zombie.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

func TestSendNotHeldByAnotherOpenTransaction(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { sndScenarioOpenTransactionDoesNotHoldReplies(t, kafkatest.StartEmbedded(t)) })
	t.Run("kafka", func(t *testing.T) { sndScenarioOpenTransactionDoesNotHoldReplies(t, realKafka.Get(t)) })
}

func sndScenarioTimeoutThenRetry(t *testing.T, c *kafkatest.Cluster) {
	ns := sndTopics(t, c, 3, 3)
	s := sndNewSender(t, c, ns, "", nil)

	// Connect the producer first, so the timed-out command below is surely written.
	if _, err := s.Submit(sndCtx(t, time.Minute), kastor.NewCommand("warm-up", sndCmd{})); err != nil {
		t.Fatal(err)
	}
	// No gateway runs: the wait ends with the context.
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := s.Send(short, kastor.NewCommand("acc-t", sndCmd{Events: 1}))
	var te *kastor.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, kastor.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a *kastor.TimeoutError for the deadline", err)
	}
	if te.CommandID == "" || te.CommandID != res.CommandID {
		t.Fatalf("timeout error names command %q, result %q", te.CommandID, res.CommandID)
	}

	// A gateway comes up and reads the first attempt after its deadline (EXPIRED), then the
	// retry with the same ID: the retry gets the retry's result, not the stale expiry.
	f := sndStartFake(t, c, ns, 1)
	retry, err := s.Send(sndCtx(t, time.Minute), kastor.Command[sndCmd]{AggregateID: "acc-t", ID: te.CommandID, ExpectedVersion: kastor.AnyVersion, Payload: sndCmd{Events: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (gateway.Result{CommandID: te.CommandID, AggregateID: "acc-t", From: 1, To: 1}); retry != want {
		t.Fatalf("retry: %+v, want %+v", retry, want)
	}
	var statuses []gateway.Status
	for len(statuses) < 2 {
		if seen := f.next(t); seen.Headers[kastor.HeaderCommandID][0] == te.CommandID {
			statuses = append(statuses, seen.Status)
		}
	}
	if statuses[0] != gateway.StatusExpired || statuses[1] != gateway.StatusOK {
		t.Fatalf("the fake saw %v, want EXPIRED then OK", statuses)
	}
}

func TestSendOK(t *testing.T) { sndScenarioOK(t, kafkatest.StartEmbedded(t)) }

func TestSendTypedErrors(t *testing.T) { sndScenarioTypedErrors(t, kafkatest.StartEmbedded(t)) }

func TestSendersSharingARepliesPartition(t *testing.T) {
	sndScenarioSharedPartition(t, kafkatest.StartEmbedded(t))
}

func TestSendSkipsAbortedAndUndecodableReplies(t *testing.T) {
	sndScenarioSkipsAbortedAndUndecodable(t, kafkatest.StartEmbedded(t))
}

func TestSendTimeoutThenRetry(t *testing.T) {
	sndScenarioTimeoutThenRetry(t, kafkatest.StartEmbedded(t))
}

// TestSenderRealKafka runs the scenarios against Apache Kafka (skipped without Docker).
func TestSenderRealKafka(t *testing.T) {
	c := kafkatest.Start(t)
	t.Run("OK", func(t *testing.T) { sndScenarioOK(t, c) })
	t.Run("TypedErrors", func(t *testing.T) { sndScenarioTypedErrors(t, c) })
	t.Run("SharedPartition", func(t *testing.T) { sndScenarioSharedPartition(t, c) })
	t.Run("AbortedAndUndecodable", func(t *testing.T) { sndScenarioSkipsAbortedAndUndecodable(t, c) })
	t.Run("TimeoutThenRetry", func(t *testing.T) { sndScenarioTimeoutThenRetry(t, c) })
	t.Run("Submit", func(t *testing.T) { sndScenarioSubmit(t, c) })
	t.Run("Concurrent", func(t *testing.T) { sndScenarioConcurrent(t, c) })
}

func sndScenarioSubmit(t *testing.T, c *kafkatest.Cluster) {
	ns := sndTopics(t, c, 3, 3)
	commands := topics.TopicName(ns, sndAgg, topics.RoleCommands)
	s := sndNewSender(t, c, ns, "", nil)
	ctx := sndCtx(t, time.Minute) // has a deadline, which Submit must not send

	caller := kastor.NewTrace()
	caller.State = "vendor=x"
	id, err := s.Submit(kastor.WithTrace(ctx, caller), kastor.Command[sndCmd]{AggregateID: "acc-s", ID: "submit-1", CorrelationID: "corr-s", ExpectedVersion: 3, Payload: sndCmd{Events: 4}})
	if err != nil || id != "submit-1" {
		t.Fatalf("Submit = %q, %v", id, err)
	}
	id2, err := s.Submit(ctx, kastor.NewCommand("acc-s2", sndCmd{Events: 1}))
	if err != nil || !sndUUID.MatchString(id2) {
		t.Fatalf("Submit = %q, %v", id2, err)
	}
	// Both are written when Submit returns: the end offsets already count them.
	ends, err := c.Admin().ListEndOffsets(ctx, commands)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 2 {
		t.Fatalf("end offsets of %s sum to %d after two Submits, want 2", commands, total)
	}

	cl := c.Client(t, kgo.ConsumeTopics(commands), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	byID := map[string]*kgo.Record{}
	for len(byID) < 2 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == kastor.HeaderCommandID {
					byID[string(h.Value)] = r
				}
			}
		})
	}
	check := func(r *kgo.Record, key string, want map[string]string, parent kastor.TraceContext) {
		t.Helper()
		// Every command carries a traceparent: a child of the caller's trace, or a new
		// trace when the caller has none.
		tc, err := wire.ParseTrace(r.Headers)
		switch {
		case err != nil || !tc.IsValid():
			t.Errorf("traceparent: %+v, %v", tc, err)
		case parent.IsValid() && (tc.TraceID != parent.TraceID || tc.SpanID == parent.SpanID || tc.State != parent.State):
			t.Errorf("trace %+v, want a child of %+v", tc, parent)
		}
		if parent.State != "" {
			want[kastor.HeaderTraceState] = parent.State
		}
		want[kastor.HeaderTraceParent] = tc.TraceParent()
		if string(r.Key) != key || r.Partition != producer.PartitionFor([]byte(key), 3) {
			t.Errorf("record key %q partition %d, want %q in %d", r.Key, r.Partition, key, producer.PartitionFor([]byte(key), 3))
		}
		got := map[string]string{}
		for _, h := range r.Headers {
			if _, dup := got[h.Key]; dup {
				t.Errorf("header %s repeated", h.Key)
			}
			got[h.Key] = string(h.Value)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("headers\n got %v\nwant %v", got, want)
		}
		cmd, err := sndCodec{}.Decode(kastor.Encoded{Type: got[kastor.HeaderType], Fingerprint: sndFingerprint, Data: r.Value})
		if err != nil || cmd.Events == 0 {
			t.Errorf("payload %q: %v", r.Value, err)
		}
	}
	fp := fmt.Sprintf("%016x", sndFingerprint)
	check(byID["submit-1"], "acc-s", map[string]string{
		kastor.HeaderAggregateID: "acc-s", kastor.HeaderType: sndType, kastor.HeaderSchema: fp,
		kastor.HeaderCommandID: "submit-1", kastor.HeaderCorrelationID: "corr-s",
		wire.HeaderExpectedVersion: "3",
	}, caller)
	check(byID[id2], "acc-s2", map[string]string{
		kastor.HeaderAggregateID: "acc-s2", kastor.HeaderType: sndType, kastor.HeaderSchema: fp,
		kastor.HeaderCommandID: id2, kastor.HeaderCorrelationID: id2,
	}, kastor.TraceContext{})
}

func TestSubmit(t *testing.T) { sndScenarioSubmit(t, kafkatest.StartEmbedded(t)) }

func sndScenarioConcurrent(t *testing.T, c *kafkatest.Cluster) {
	ns := sndTopics(t, c, 3, 3)
	sndStartFake(t, c, ns, 1)
	s := sndNewSender(t, c, ns, "", nil)
	ctx := sndCtx(t, 2*time.Minute)

	const n, aggregates = 200, 10
	results := make([]gateway.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.Send(ctx, kastor.NewCommand(fmt.Sprintf("acc-%d", i%aggregates), sndCmd{Events: 1 + i%3}))
		})
	}
	wg.Wait()
	ids := map[string]bool{}
	covered := map[string]map[int64]bool{}
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("Send %d: %v", i, errs[i])
		}
		if want := fmt.Sprintf("acc-%d", i%aggregates); res.AggregateID != want || res.To-res.From+1 != int64(1+i%3) || res.Duplicate {
			t.Fatalf("Send %d got %+v", i, res)
		}
		ids[res.CommandID] = true
		if covered[res.AggregateID] == nil {
			covered[res.AggregateID] = map[int64]bool{}
		}
		for v := res.From; v <= res.To; v++ {
			if covered[res.AggregateID][v] {
				t.Fatalf("version %d of %s in two results", v, res.AggregateID)
			}
			covered[res.AggregateID][v] = true
		}
	}
	if len(ids) != n {
		t.Fatalf("%d distinct command IDs for %d commands", len(ids), n)
	}
	for agg, vs := range covered {
		for v := int64(1); v <= int64(len(vs)); v++ {
			if !vs[v] {
				t.Fatalf("%s: version %d missing from the results (have %d versions)", agg, v, len(vs))
			}
		}
	}
}

func TestSendConcurrent(t *testing.T) { sndScenarioConcurrent(t, kafkatest.StartEmbedded(t)) }

func TestNewSenderMissingTopics(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	ns := kafkatest.TopicName(t)
	commands := topics.TopicName(ns, sndAgg, topics.RoleCommands)
	replies := topics.TopicName(ns, sndAgg, topics.RoleReplies)
	kc := c.Kastor(t, ns, cluster.Logger(quietSndLogger()))
	cfg := gateway.SenderConfig[sndCmd]{AggregateType: sndAgg, Commands: sndCodec{}}

	_, err := gateway.NewSender(sndCtx(t, time.Minute), kc, cfg)
	if !errors.Is(err, producer.ErrUnknownTopic) || !strings.Contains(err.Error(), strconv.Quote(commands)) ||
		!strings.Contains(err.Error(), strconv.Quote(replies)) || !strings.Contains(err.Error(), "kastor topics apply") {
		t.Fatalf("no topics: %v", err)
	}
	c.CreateTopic(t, commands, 3, 1, nil)
	_, err = gateway.NewSender(sndCtx(t, time.Minute), kc, cfg)
	if !errors.Is(err, producer.ErrUnknownTopic) || strings.Contains(err.Error(), strconv.Quote(commands)) ||
		!strings.Contains(err.Error(), strconv.Quote(replies)) {
		t.Fatalf("no replies topic: %v", err)
	}
	t.Log(err)
}

func TestNewSenderConfigErrors(t *testing.T) {
	ctx := sndCtx(t, time.Minute)
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	kc, err := cluster.New(cl, "ns")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c   *cluster.Cluster
		cfg gateway.SenderConfig[sndCmd]
	}{
		{nil, gateway.SenderConfig[sndCmd]{AggregateType: sndAgg, Commands: sndCodec{}}},
		{kc, gateway.SenderConfig[sndCmd]{Commands: sndCodec{}}},
		{kc, gateway.SenderConfig[sndCmd]{AggregateType: sndAgg}},
	} {
		if _, err := gateway.NewSender(ctx, tc.c, tc.cfg); err == nil {
			t.Errorf("NewSender accepted %+v (cluster %v)", tc.cfg, tc.c)
		}
	}
}

func TestSendRefusesBadCommands(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	s := sndNewSender(t, c, sndTopics(t, c, 1, 1), "", nil)
	ctx := sndCtx(t, time.Minute)
	if _, err := s.Send(ctx, kastor.NewCommand("", sndCmd{})); err == nil || !strings.Contains(err.Error(), "no aggregate ID") {
		t.Errorf("empty aggregate ID: %v", err)
	}
	if _, err := s.Submit(ctx, kastor.Command[sndCmd]{AggregateID: "a", ExpectedVersion: -2}); err == nil {
		t.Error("expected version -2 accepted")
	}
}

func TestSenderCloseFailsPendingSend(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	ns := sndTopics(t, c, 3, 3)
	s := sndNewSender(t, c, ns, "", nil)
	ctx := sndCtx(t, time.Minute)

	errc := make(chan error, 1)
	go func() {
		_, err := s.Send(ctx, kastor.NewCommand("acc-c", sndCmd{Events: 1}))
		errc <- err
	}()
	// The Send waits once its command is in the topic (it registers before producing).
	cl := c.Client(t, kgo.ConsumeTopics(topics.TopicName(ns, sndAgg, topics.RoleCommands)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		if fs.NumRecords() > 0 {
			break
		}
	}
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, kastor.ErrShuttingDown) {
			t.Fatalf("pending Send returned %v, want ErrShuttingDown", err)
		}
		t.Log(err)
	case <-ctx.Done():
		t.Fatal("the pending Send did not return after Close")
	}
	if _, err := s.Send(ctx, kastor.NewCommand("acc-c", sndCmd{})); !errors.Is(err, kastor.ErrShuttingDown) {
		t.Errorf("Send after Close: %v", err)
	}
	if _, err := s.Submit(ctx, kastor.NewCommand("acc-c", sndCmd{})); !errors.Is(err, kastor.ErrShuttingDown) {
		t.Errorf("Submit after Close: %v", err)
	}
	s.Close() // idempotent
}

// A Sender reads its replies from the end it captured at NewSender: replies written before,
// even with its caller ID and a command ID it then sends, are not taken for results.
func TestSenderStartsAtTheEndOfItsRepliesPartition(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	ns := sndTopics(t, c, 3, 3)
	stale := gateway.Reply{CommandID: "cmd-old", Status: gateway.StatusOK, AggregateID: "stale", From: 7, To: 8}
	v, err := stale.Encode()
	if err != nil {
		t.Fatal(err)
	}
	app, err := producer.New(c.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := app.Append(sndCtx(t, time.Minute), &kgo.Record{Topic: topics.TopicName(ns, sndAgg, topics.RoleReplies), Key: []byte("caller-x"), Value: v}); err != nil {
		t.Fatal(err)
	}
	s := sndNewSender(t, c, ns, "caller-x", nil)
	sndStartFake(t, c, ns, 1)
	res, err := s.Send(sndCtx(t, time.Minute), kastor.Command[sndCmd]{AggregateID: "acc-x", ID: "cmd-old", ExpectedVersion: kastor.AnyVersion, Payload: sndCmd{Events: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (gateway.Result{CommandID: "cmd-old", AggregateID: "acc-x", From: 1, To: 1}); res != want {
		t.Fatalf("got %+v, want %+v", res, want)
	}
}

// A Send whose command is in flight to a broker that does not answer (it died with the
// request) returns at its deadline: franz-go fails an in-flight record only at the request
// timeout, and the caller's deadline comes first.
func TestSendReturnsAtItsDeadlineWithAProduceInFlight(t *testing.T) {
	ns := "stuck"
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3,
		topics.TopicName(ns, sndAgg, topics.RoleCommands), topics.TopicName(ns, sndAgg, topics.RoleReplies)))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	t.Cleanup(func() { close(release); kc.Close() })
	kc.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		kc.SleepControl(func() { <-release })
		return nil, nil, false
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	kk, err := cluster.New(cl, ns, cluster.Logger(quietSndLogger()))
	if err != nil {
		t.Fatal(err)
	}
	s, err := gateway.NewSender(sndCtx(t, time.Minute), kk, gateway.SenderConfig[sndCmd]{
		AggregateType: sndAgg, Commands: sndCodec{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err = s.Send(ctx, kastor.NewCommand("acc-stuck", sndCmd{Events: 1}))
	if took := time.Since(start); !errors.Is(err, kastor.ErrTimeout) || took > 3*time.Second {
		t.Fatalf("Send with its produce in flight returned %v after %v, want a timeout at its 1 s deadline", err, took)
	}
}

func quietSndLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
