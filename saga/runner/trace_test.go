package runner_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/internal/testdomain/transfer"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

// recorder is a kastor.Tracer that keeps every span it starts.
type recorder struct {
	mu    sync.Mutex
	spans map[[8]byte]*recorded
}

type recorded struct {
	start  kastor.SpanStart
	parent kastor.TraceContext
	tc     kastor.TraceContext
	attrs  map[string]any
	ended  bool
	err    error
}

func (r *recorder) Start(_ context.Context, parent kastor.TraceContext, s kastor.SpanStart) kastor.Span {
	tc := kastor.NewTrace()
	if parent.IsValid() {
		tc = parent.Child()
	}
	sp := &recorded{start: s, parent: parent, tc: tc, attrs: map[string]any{}}
	for _, a := range s.Attributes {
		sp.attrs[a.Key] = a.Value
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spans == nil {
		r.spans = map[[8]byte]*recorded{}
	}
	r.spans[tc.SpanID] = sp
	return &recSpan{r, sp}
}

func (r *recorder) span(id [8]byte) (recorded, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp, ok := r.spans[id]
	if !ok {
		return recorded{}, false
	}
	return *sp, true
}

type recSpan struct {
	r  *recorder
	sp *recorded
}

func (s *recSpan) TraceContext() kastor.TraceContext { return s.sp.tc }
func (s *recSpan) SetAttributes(attrs ...kastor.Attribute) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for _, a := range attrs {
		s.sp.attrs[a.Key] = a.Value
	}
}
func (s *recSpan) End(err error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.sp.ended, s.sp.err = true, err
}

// TestTraceTransfer runs a transfer whose request is sent under a caller's trace
// (kastor.WithTrace), then a refused one, and reads every topic back: the request
// command, its event (as routed to the saga), the saga's commands, their events and
// their replies all carry the caller's trace ID, each with a span of its own, and the
// correlation and causation IDs of decision 37. With a tracer, each record's span is a
// child of its cause's: the gateway's of the command's, the saga's of the input's.
func TestTraceTransfer(t *testing.T) {
	for _, withTracer := range []bool{false, true} {
		t.Run(map[bool]string{false: "headers", true: "tracer"}[withTracer], func(t *testing.T) {
			kafka.Backends(t, func(t *testing.T, kc *kafkatest.Cluster) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				rec := &recorder{}
				var opts []cluster.Option
				if withTracer {
					opts = append(opts, cluster.Tracer(rec))
				}
				b := newBed(t, kc, 2*time.Second, opts...)
				rn := b.runner()
				_, _ = b.start(rn)
				b.open(ctx, "alice", 100)
				b.open(ctx, "bob", 0)
				b.open(ctx, "dave", 50)

				caller := kastor.NewTrace()
				caller.State = "vendor=abc"
				tctx := kastor.WithTrace(ctx, caller)
				b.request(tctx, "t-ok", "alice", "bob", 30)
				if got, err := rn.Await(ctx, "t-ok", finished); err != nil || !got.Done || got.State.Failed {
					t.Fatalf("t-ok: %+v, %v", got, err)
				}
				b.request(tctx, "t-refused", "alice", "carol", 20) // no account: refunded
				if got, err := rn.Await(ctx, "t-refused", finished); err != nil || !got.State.Failed {
					t.Fatalf("t-refused: %+v, %v", got, err)
				}
				// The credit gets no outcome in time: its deadline fires (no input record)
				// and the refund continues the transfer's trace.
				b.stall.set("dave")
				b.request(tctx, "t-timeout", "dave", "bob", 10)
				if got, err := rn.Await(ctx, "t-timeout", func(i saga.Instance[progress]) bool { return i.State.Compensating }); err != nil {
					t.Fatalf("t-timeout compensating: %+v, %v", got, err)
				}
				b.stall.unblock()
				if got, err := rn.Await(ctx, "t-timeout", finished); err != nil || !got.State.Failed {
					t.Fatalf("t-timeout: %+v, %v", got, err)
				}
				checkTraces(ctx, t, b.c, caller, map[bool]*recorder{true: rec}[withTracer])
			})
		})
	}
}

// traced is a record read back with its envelope and trace.
type traced struct {
	topic string
	md    kastor.Metadata
	input bool // a routed event on the saga's inputs topic
	reply string
}

// checkTraces reads the topics of a transfer bed back and checks the traces of every
// record against its cause's (see TestTraceTransfer). rec, when not nil, is the tracer
// the components used.
func checkTraces(ctx context.Context, t *testing.T, c *cluster.Cluster, caller kastor.TraceContext, rec *recorder) {
	t.Helper()
	ns := c.Namespace()
	read := func(topic string) []traced {
		var out []traced
		for _, r := range readAll(ctx, t, c, topic) {
			md, err := wire.ParseHeaders(r.Headers)
			if err != nil {
				t.Fatalf("%s@%d: %v", topic, r.Offset, err)
			}
			tr := traced{topic: topic, md: md}
			for _, h := range r.Headers {
				if h.Key == wire.HeaderSagaInput {
					tr.input = true
				}
			}
			if strings.HasSuffix(topic, ".inputs") && !tr.input {
				rep, err := gatewayReply(r)
				if err != nil {
					t.Fatal(err)
				}
				tr.reply = rep
			}
			out = append(out, tr)
		}
		return out
	}
	reqCmds := read(topics.TopicName(ns, transfer.RequestType, topics.RoleCommands))
	reqEvents := read(topics.TopicName(ns, transfer.RequestType, topics.RoleEvents))
	inputs := read(topics.SagaTopicName(ns, transfer.SagaType, topics.RoleSagaInputs))
	acctCmds := read(topics.TopicName(ns, bank.Type, topics.RoleCommands))
	acctEvents := read(topics.TopicName(ns, bank.Type, topics.RoleEvents))

	// Every record of the transfers is in the caller's trace, with a span of its own.
	spans := map[[8]byte]string{}
	inTrace := func(what string, tc kastor.TraceContext) {
		t.Helper()
		switch {
		case tc.TraceID != caller.TraceID || tc.State != caller.State:
			t.Errorf("%s: trace %s (state %q), want the caller's %s (%q)", what, tc, tc.State, caller.TraceIDString(), caller.State)
		case tc.SpanID == caller.SpanID:
			t.Errorf("%s: the caller's span %s", what, tc.SpanIDString())
		}
	}
	// child checks that effect's span is a child of cause's: with a tracer, the
	// recorded span's parent; without one the headers only show a new span.
	child := func(what string, effect, cause kastor.TraceContext) {
		t.Helper()
		inTrace(what, effect)
		if effect.SpanID == cause.SpanID {
			t.Errorf("%s: the span of its cause, %s", what, cause.SpanIDString())
		}
		if rec == nil {
			return
		}
		sp, ok := rec.span(effect.SpanID)
		switch {
		case !ok:
			t.Errorf("%s: span %s was not recorded", what, effect.SpanIDString())
		case sp.parent.SpanID != cause.SpanID || sp.parent.TraceID != cause.TraceID:
			t.Errorf("%s: span %s (%s) has parent %s, want its cause's %s", what, effect.SpanIDString(), sp.start.Name, sp.parent, cause)
		case !sp.ended || sp.err != nil:
			t.Errorf("%s: span %s ended %v, err %v", what, sp.start.Name, sp.ended, sp.err)
		}
	}

	cmdTrace := map[string]kastor.TraceContext{} // command ID -> its record's trace
	transfers := map[string]bool{"t-ok": true, "t-refused": true, "t-timeout": true}
	for _, r := range reqCmds {
		if !transfers[r.md.AggregateID] {
			continue
		}
		child("request "+r.md.AggregateID, r.md.Trace, caller)
		if rec != nil {
			if sp, _ := rec.span(r.md.Trace.SpanID); sp.start.Kind != kastor.SpanProducer || sp.attrs["kastor.outcome"] != "ok" {
				t.Errorf("request %s: span %+v, want a producer span with outcome ok", r.md.AggregateID, sp)
			}
		}
		cmdTrace[r.md.CommandID] = r.md.Trace
		spans[r.md.Trace.SpanID] = "request " + r.md.AggregateID
	}
	eventTrace := map[string]kastor.TraceContext{} // saga input ID of an event -> trace
	for _, e := range reqEvents {
		what := fmt.Sprintf("event %s/%d", e.md.AggregateID, e.md.Version)
		child(what, e.md.Trace, cmdTrace[e.md.CommandID])
		if e.md.CausationID != e.md.CommandID || e.md.CorrelationID != e.md.CommandID {
			t.Errorf("%s: causation %q, correlation %q, want the command's ID %q", what, e.md.CausationID, e.md.CorrelationID, e.md.CommandID)
		}
		eventTrace[fmt.Sprintf("event/%s/%s/%d", e.md.AggregateType, e.md.AggregateID, e.md.Version)] = e.md.Trace
	}
	routed := 0
	replyTrace := map[string]kastor.TraceContext{} // saga input ID of an outcome -> trace
	for _, in := range inputs {
		switch {
		case in.input:
			routed++
			id := fmt.Sprintf("event/%s/%s/%d", in.md.AggregateType, in.md.AggregateID, in.md.Version)
			if in.md.Trace != eventTrace[id] {
				t.Errorf("routed %s: trace %s, the event has %s", id, in.md.Trace, eventTrace[id])
			}
		default:
			replyTrace["outcome/"+in.reply] = in.md.Trace
		}
	}
	if routed != 3 || len(replyTrace) == 0 {
		t.Fatalf("%d routed events, %d replies on the inputs topic; want 3 and some", routed, len(replyTrace))
	}
	// The saga's commands: caused by an input (the routed event or an outcome), in its
	// trace, correlated by instance.
	sagaCmds := 0
	for _, c := range acctCmds {
		inst, _, ok := commandVersion(c.md.CommandID)
		if !ok || !transfers[inst] {
			continue
		}
		sagaCmds++
		what := "saga command " + c.md.CommandID
		cause, ok := eventTrace[c.md.CausationID]
		if !ok {
			cause, ok = replyTrace[c.md.CausationID]
		}
		if !ok && strings.HasPrefix(c.md.CausationID, "deadline/") {
			// A fired deadline continues the instance's last transition: the one that
			// sent the command before.
			cause, ok = lastBefore(acctCmds, c.md.CommandID)
		}
		if !ok || c.md.CorrelationID != inst {
			t.Errorf("%s: causation %q (found: %v), correlation %q; want an input of the instance, the instance %q", what, c.md.CausationID, ok, c.md.CorrelationID, inst)
			continue
		}
		child(what, c.md.Trace, cause)
		cmdTrace[c.md.CommandID] = c.md.Trace
		spans[c.md.Trace.SpanID] = what
	}
	// t-ok: debit, credit; t-refused: debit, credit (refused), refund; t-timeout: debit,
	// credit (expired), refund.
	if sagaCmds != 8 {
		t.Errorf("%d saga commands, want 8", sagaCmds)
	}
	// Their events and replies: in the span of the gateway that handled the command.
	handled := map[string]kastor.TraceContext{}
	for _, e := range acctEvents {
		ct, ok := cmdTrace[e.md.CommandID]
		if !ok {
			continue // opening the accounts
		}
		what := fmt.Sprintf("event %s/%d of %s", e.md.AggregateID, e.md.Version, e.md.CommandID)
		child(what, e.md.Trace, ct)
		if e.md.CausationID != e.md.CommandID || e.md.CorrelationID != ct2corr(e.md.CommandID) {
			t.Errorf("%s: causation %q, correlation %q", what, e.md.CausationID, e.md.CorrelationID)
		}
		handled[e.md.CommandID] = e.md.Trace
	}
	for id, tc := range replyTrace {
		cmd := strings.TrimPrefix(id, "outcome/")
		child("reply to "+cmd, tc, cmdTrace[cmd])
		if h, ok := handled[cmd]; ok && h != tc {
			t.Errorf("reply to %s: trace %s, the command's events have %s", cmd, tc, h)
		}
	}
	if rec != nil {
		gw := 0
		for _, c := range acctCmds {
			if _, ok := spans[c.md.Trace.SpanID]; !ok {
				continue
			}
			if h, ok := handled[c.md.CommandID]; ok {
				sp, _ := rec.span(h.SpanID)
				gw++
				if sp.start.Kind != kastor.SpanConsumer || sp.attrs["kastor.aggregate.type"] != bank.Type || sp.attrs["kastor.outcome"] != "OK" ||
					sp.attrs["kastor.command.id"] != c.md.CommandID {
					t.Errorf("gateway span of %s: %+v", c.md.CommandID, sp)
				}
			}
		}
		if gw == 0 {
			t.Error("no gateway span checked")
		}
	}
}

// lastBefore returns the trace of the instance's command sent last before command id
// (the one of the highest version below id's).
func lastBefore(cmds []traced, id string) (kastor.TraceContext, bool) {
	inst, v, _ := commandVersion(id)
	var best int64
	var tc kastor.TraceContext
	for _, c := range cmds {
		if i, cv, ok := commandVersion(c.md.CommandID); ok && i == inst && cv < v && cv > best {
			best, tc = cv, c.md.Trace
		}
	}
	return tc, best > 0
}

// ct2corr is the correlation ID of a saga command's events: the saga command's, the
// instance ID.
func ct2corr(commandID string) string {
	inst, _, _ := commandVersion(commandID)
	return inst
}

// gatewayReply returns the command ID a reply on the inputs topic answers.
func gatewayReply(r *kgo.Record) (string, error) {
	rep, err := gateway.DecodeReplyRecord(r)
	return rep.CommandID, err
}
