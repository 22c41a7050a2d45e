package gateway_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/logtest"
	"github.com/kastor-dev/kastor/kafkatest"
)

func withHeader(k, v string) sendOpt {
	return func(rec *kgo.Record) { rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
}

// A command's events and reply continue its trace in one span of the gateway's; a
// command without a traceparent, or with one kastor cannot read (a foreign writer's),
// is executed all the same, in a new trace, and the bad header is logged at debug level.
func TestCommandTraceContinues(t *testing.T) {
	r := newRig(t, kafkatest.StartEmbedded(t), 3)
	_, logs := logtest.New()
	kc := r.kastor(cluster.Logger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	r.startOn(kc, r.config())

	caller := kastor.NewTrace()
	const state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	ok := func(rep gateway.Reply) {
		t.Helper()
		if err := rep.Err("bank.account"); err != nil {
			t.Fatal(err)
		}
	}
	ok(r.send("a1", "c1", openAccount{}, withHeader(kastor.HeaderTraceParent, caller.TraceParent()), withHeader(kastor.HeaderTraceState, state)))
	ok(r.send("a1", "c2", depositTwice{5}, withHeader(kastor.HeaderTraceParent, caller.TraceParent())))
	ok(r.send("a1", "c3", deposit{1}, withHeader(kastor.HeaderTraceParent, strings.ToUpper(caller.TraceParent()))))
	ok(r.send("a1", "c4", deposit{1}))

	evs := r.eventsOf()["a1"]
	if len(evs) != 5 {
		t.Fatalf("%d events, want 5", len(evs))
	}
	byCmd := map[string][]kastor.TraceContext{}
	for _, e := range evs {
		if !e.Trace.IsValid() {
			t.Fatalf("event %d of %s: no trace", e.Version, e.CommandID)
		}
		byCmd[e.CommandID] = append(byCmd[e.CommandID], e.Trace)
	}
	for _, id := range []string{"c1", "c2"} {
		tc := byCmd[id][0]
		rep := r.got[id]
		switch {
		case tc.TraceID != caller.TraceID || tc.SpanID == caller.SpanID:
			t.Errorf("%s: events in %s, want a child of %s", id, tc, caller)
		case rep.Trace != tc:
			t.Errorf("%s: reply in %+v, events in %+v: want the same span", id, rep.Trace, tc)
		}
	}
	if s := byCmd["c1"][0].State; s != state {
		t.Errorf("c1: tracestate %q, want %q", s, state)
	}
	if c2 := byCmd["c2"]; len(c2) != 2 || c2[0] != c2[1] || c2[0].State != "" {
		t.Errorf("c2: the events' traces %+v, want one span and no state", c2)
	}
	for _, id := range []string{"c3", "c4"} {
		if tc := byCmd[id][0]; tc.TraceID == caller.TraceID || r.got[id].Trace != tc {
			t.Errorf("%s: events in %s, reply in %s; want a new trace", id, tc, r.got[id].Trace)
		}
	}
	if byCmd["c3"][0].TraceID == byCmd["c4"][0].TraceID {
		t.Error("two commands without a trace share a new one")
	}
	if l := logs.String(); !strings.Contains(l, "malformed traceparent") || !strings.Contains(l, "command_id=c3") || strings.Contains(l, "command_id=c4") {
		t.Errorf("debug log:\n%s\nwant the malformed traceparent of c3 only", l)
	}
}
