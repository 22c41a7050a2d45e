package consumer

// SimulateCrash makes r's Run return after a round for which fn returns true, without
// committing that round, as a killed process would.
func SimulateCrash[E any](r *Reader[E], fn func() bool) { r.crash = fn }
