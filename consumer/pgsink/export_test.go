package pgsink

// AfterCommit makes s call fn after each transaction it commits, before Apply returns:
// a test process can kill itself there, the database committed and the reader unaware.
func AfterCommit[E any](s *Sink[E], fn func()) { s.afterCommit = fn }
