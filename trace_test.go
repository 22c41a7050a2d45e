package kastor_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kastor-dev/kastor"
)

// The examples of the W3C Trace Context specification, and its invalid cases.
func TestParseTraceParent(t *testing.T) {
	const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tc, err := kastor.ParseTraceParent(good)
	if err != nil || tc.TraceIDString() != "4bf92f3577b34da6a3ce929d0e0e4736" || tc.SpanIDString() != "00f067aa0ba902b7" ||
		tc.Flags != kastor.TraceSampled || tc.TraceParent() != good || !tc.IsValid() {
		t.Fatalf("%s: %+v, %v", good, tc, err)
	}
	// A later version is read from its first 55 characters and written as version 00.
	for _, s := range []string{"01" + good[2:], "cc" + good[2:] + "-what-the-future-holds"} {
		tc, err := kastor.ParseTraceParent(s)
		if err != nil || tc.TraceParent() != good {
			t.Errorf("%s: %v, %v", s, tc, err)
		}
	}
	for _, s := range []string{
		"", "00", good[:54], good + "-", good + "0", // version 00 is 55 characters exactly
		"ff" + good[2:],       // version ff is invalid
		"cc" + good[2:] + "x", // a later version's next field starts with '-'
		strings.ToUpper(good), "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "0A" + good[2:],
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // all-zero trace ID
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // all-zero parent ID
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", " 0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	} {
		if tc, err := kastor.ParseTraceParent(s); err == nil || tc != (kastor.TraceContext{}) {
			t.Errorf("%q: %+v, %v; want an error and no trace", s, tc, err)
		}
	}
}

func TestTraceContextChildAndContext(t *testing.T) {
	root := kastor.NewTrace()
	if !root.IsValid() || root.Flags != kastor.TraceSampled {
		t.Fatalf("NewTrace: %+v", root)
	}
	if other := kastor.NewTrace(); other.TraceID == root.TraceID {
		t.Fatal("two new traces share a trace ID")
	}
	root.State = "congo=t61rcWkgMzE"
	c := root.Child()
	if c.TraceID != root.TraceID || c.SpanID == root.SpanID || c.Flags != root.Flags || c.State != root.State {
		t.Fatalf("child %+v of %+v", c, root)
	}
	if (kastor.TraceContext{}).TraceParent() != "" {
		t.Fatal("the zero TraceContext has a traceparent")
	}
	ctx := context.Background()
	if _, ok := kastor.TraceFrom(ctx); ok {
		t.Fatal("trace in an empty context")
	}
	if _, ok := kastor.TraceFrom(kastor.WithTrace(ctx, kastor.TraceContext{})); ok {
		t.Fatal("an invalid trace was put in the context")
	}
	if got, ok := kastor.TraceFrom(kastor.WithTrace(ctx, c)); !ok || got != c {
		t.Fatalf("TraceFrom: %+v, %v", got, ok)
	}
	j, err := json.Marshal(struct{ T, Z kastor.TraceContext }{c, kastor.TraceContext{}})
	if err != nil || string(j) != `{"T":"`+c.TraceParent()+`","Z":""}` {
		t.Fatalf("JSON %s, %v", j, err)
	}
	var back struct{ T, Z kastor.TraceContext }
	if err := json.Unmarshal(j, &back); err != nil || back.T.TraceParent() != c.TraceParent() || back.Z.IsValid() {
		t.Fatalf("JSON back: %+v, %v", back, err)
	}
}

// FuzzParseTraceParent: whatever parses is valid and formats to the version-00 form of
// the same fields, which parses back to the same; nothing else is accepted.
// go test -fuzz FuzzParseTraceParent -fuzztime 30s .
func FuzzParseTraceParent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tc, err := kastor.ParseTraceParent(s)
		if err != nil {
			if tc != (kastor.TraceContext{}) {
				t.Fatalf("%q: error %v with %+v", s, err, tc)
			}
			return
		}
		out := tc.TraceParent()
		if !tc.IsValid() || len(out) != 55 || out[2:] != s[2:55] || s[:2] == "ff" {
			t.Fatalf("%q parsed to %+v, formats to %q", s, tc, out)
		}
		if s[:2] == "00" && out != s {
			t.Fatalf("%q formats to %q", s, out)
		}
		again, err := kastor.ParseTraceParent(out)
		if err != nil || again != tc {
			t.Fatalf("%q: again %+v, %v", out, again, err)
		}
	})
}
