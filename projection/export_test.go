package projection

// Test hooks of the replay lease (replay_lease.go).

// ErrLeaseLost is matched by the error of a replay executor whose claim was lost.
var ErrLeaseLost = errLeaseLost

// PauseRenewals makes p skip its replay lease renewals while paused returns true, as a
// stalled process would.
func PauseRenewals[E any](p *Projection[E], paused func() bool) { p.renewalsPaused = paused }

// OnReplayEnded calls fn when an executor of a replay request returns in p, with its
// error.
func OnReplayEnded[E any](p *Projection[E], fn func(id string, err error)) { p.replayEnded = fn }

// FoldRequests folds request records into a new registry, in order, as if read from
// the registry topic at consecutive offsets.
func FoldRequests(reqs ...Request) *Registry {
	g := newRegistry()
	for i, r := range reqs {
		rec := registryRecord(requestKey(r.Namespace, r.Name, r.ID), r)
		rec.Offset = int64(i)
		g.apply(rec)
	}
	return g
}
