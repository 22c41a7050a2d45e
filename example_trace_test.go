package kastor_test

import (
	"context"
	"fmt"

	"github.com/kastor-dev/kastor"
)

// An HTTP handler continues its request's trace through the commands it sends: the
// Sender writes each command as a child span of the trace in the context.
func ExampleWithTrace() {
	incoming := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" // the request's traceparent header
	ctx := context.Background()
	if tc, err := kastor.ParseTraceParent(incoming); err == nil {
		ctx = kastor.WithTrace(ctx, tc)
	} // else: ignore it, and the Sender starts a new trace
	// sender.Send(ctx, cmd) ...

	tc, _ := kastor.TraceFrom(ctx)
	child := tc.Child() // what a Sender writes without a Tracer: same trace, new span
	fmt.Println(child.TraceIDString(), child.SpanID != tc.SpanID)
	// Output: 4bf92f3577b34da6a3ce929d0e0e4736 true
}
