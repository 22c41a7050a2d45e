package runner

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/saga"
)

// CrashAtCommit makes the n-th transaction from now stop the runner as a kill would, with
// the transaction's records written and the transaction left open; crashed gets the
// producer left behind (the test closes it at the end). Run then returns ErrCrashed.
func (r *Runner[S, C, E]) CrashAtCommit(n int, crashed func(*kgo.Client)) {
	r.crashed = crashed
	r.crashAfter.Store(int32(n))
}

// ErrCrashed is Run's error after CrashAtCommit.
var ErrCrashed = errCrashed

// DecodeInstance decodes an instance record of the state topic with the saga's state
// codec, as a restore does.
func DecodeInstance[S any](ir InstanceRecord, states kastor.Codec[S]) (saga.Instance[S], error) {
	return instance(ir, states)
}
