package consumer

import "context"

// SimulateCrash makes r's Run return after a round for which fn returns true, without
// committing that round, as a killed process would.
func SimulateCrash[E any](r *Reader[E], fn func() bool) { r.crash = fn }

// CheckTopics runs the start-up check of r's topics.
func CheckTopics[E any](ctx context.Context, r *Reader[E]) (map[string]int32, error) {
	return r.checkTopics(ctx)
}
