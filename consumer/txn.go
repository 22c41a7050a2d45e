package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/cluster"
)

// runTransactional consumes through a transactional group session for a TxSink: each
// round is one Kafka transaction holding the sink's output, the round's dead letters and
// the consumed offsets. A round that cannot finish (the sink or the dead-letter topic
// unavailable, a shutdown, a rebalance) is aborted whole and read again from the
// committed offsets.
func (r *Reader[E]) runTransactional(ctx context.Context) error {
	// The shared client's options first, then the reader's, which override them.
	opts := cluster.Options(r.cfg.kc.Client(), append(r.groupOpts(),
		kgo.TransactionalID(r.tx.TransactionalID()),
		kgo.TransactionTimeout(10*time.Second),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	)...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	cl := sess.Client()
	r.setClient(cl)
	r.tx.Transactional(cl)
	r.cfg.log.Info("transactional reader started", "group", r.cfg.Group, "topics", r.topics, "transactional_id", r.tx.TransactionalID())
	produce := func(ctx context.Context, rec *kgo.Record) error { return cl.ProduceSync(ctx, rec).FirstErr() }
	var runErr error
	for {
		fetches := sess.PollRecords(ctx, r.poll)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		if fetches.NumRecords() == 0 {
			r.round(ctx, r.fetchers[0], fetches, produce) // logs fetch errors, updates ends
			r.allowRebalance(cl)
			r.recycle(fetches)
			continue
		}
		if err := sess.Begin(); err != nil {
			runErr = fmt.Errorf("consumer: begin transaction: %w", err)
			break
		}
		rewinds := r.round(ctx, r.fetchers[0], fetches, produce)
		if r.crash != nil && r.crash() {
			sess.CloseAllowingRebalance() // the open transaction is left to be aborted
			return errCrashed
		}
		try := kgo.TryCommit
		if len(rewinds) > 0 {
			try = kgo.TryAbort
		}
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		committed, err := sess.End(ectx, try)
		cancel()
		if err == nil && r.fenced.Load() {
			err = errors.New("fenced")
		}
		if err != nil {
			switch {
			case r.fenced.Load() || fenced(err):
				err = fmt.Errorf("the producer was fenced: another instance runs with the transactional ID %q (%w)", r.tx.TransactionalID(), err)
			case errors.Is(err, kerr.InvalidTxnState):
				// What a producer is told when a newer one with its transactional ID
				// aborted its open transaction between its writes and its End (Kafka 4,
				// transactions v2), rather than PRODUCER_FENCED.
				err = fmt.Errorf("the transaction was aborted from outside, most likely because the producer was fenced: "+
					"another instance runs with the transactional ID %q (%w)", r.tx.TransactionalID(), err)
			}
			runErr = fmt.Errorf("consumer: end transaction: %w", err)
			break
		}
		r.mu.Lock()
		for _, st := range r.parts {
			if committed {
				st.committed = st.next
			} else {
				// The session went back to the committed offsets; what the round did
				// in Kafka is aborted, so forget it (and the dead letters it wrote).
				st.next, st.letters, st.held, st.loaded = st.committed, nil, nil, false
			}
		}
		r.mu.Unlock()
		r.allowRebalance(cl)
		r.recycle(fetches)
	}
	r.allowRebalance(cl)
	sess.Close()
	r.cfg.log.Info("reader stopped", "group", r.cfg.Group)
	return runErr
}
