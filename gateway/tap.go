package gateway

import (
	"context"

	"github.com/kastor-dev/kastor"
)

// Tap returns a Listener that copies every committed event to the returned channel, in
// commit order, for in-process consumers such as a live view or a test. The channel is
// buffered; when it is full the gateway waits (it never drops an event), so read it
// promptly. Use a reader (package consumer) for anything durable: a tap starts empty after
// a restart.
func Tap[E any](buffer int) (Listener[E], <-chan kastor.Envelope[E]) {
	ch := make(chan kastor.Envelope[E], buffer)
	return func(ctx context.Context, events []kastor.Envelope[E]) {
		for _, e := range events {
			select {
			case ch <- e:
			case <-ctx.Done():
				return
			}
		}
	}, ch
}
