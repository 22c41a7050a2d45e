package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/brokerwait"
	"github.com/kastor-dev/kastor/internal/kgolog"
	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/saga"
)

// part is an owned, restored inputs partition: its instances, its transactional
// producer and where its inputs are applied up to.
type part[S any] struct {
	p    int32
	prod *kgo.Client
	// insts are the instances of the partition as committed.
	insts map[string]*saga.Instance[S]
	// broken are the instances whose record could not be decoded, with why: their inputs
	// are parked, never applied to a fresh instance.
	broken map[string]error
	// position is the offset of the next input to apply (-1: none applied yet, start at
	// the beginning of the partition).
	position int64
	timers   timers
	// mark is the inputs partition's high watermark taken when a deadline came due, at
	// markAt: the deadlines due at markAt fire once position has reached it (fireDue).
	marked bool
	mark   int64
	markAt time.Time
	// traces are the trace contexts of the last transition of each instance that this
	// process committed: a deadline it fires continues that trace. The records keep no
	// trace, so after a restore a fired deadline starts a new one.
	traces map[string]kastor.TraceContext
}

// arm adds the deadlines of next that prev (nil: none) did not have at that time.
func (pt *part[S]) arm(prev, next *saga.Instance[S]) {
	if next.Done {
		return
	}
	for name, at := range next.Deadlines {
		if prev != nil {
			if old, ok := prev.Deadlines[name]; ok && old.Equal(at) {
				continue
			}
		}
		pt.timers.add(timer{at: at, instance: next.ID, name: name})
	}
}

// restore makes this process the writer of partition p: it fences the partition's
// transactional ID (the coordinator aborts the previous owner's open transaction at once
// and rejects all it sends later), then reads state partition p to its end with
// read_committed, once no transaction is open in it.
func (r *Runner[S, C, E]) restore(ctx context.Context, p int32) (*part[S], error) {
	cfg := r.cfg
	start := time.Now()
	txnID := cfg.stateTxnID(p)
	if err := r.fence(ctx, txnID); err != nil {
		return nil, fmt.Errorf("fencing %s: %w", txnID, err)
	}
	prod, err := r.cluster.NewClient(append([]kgo.Opt{
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.ClientID("kastor-saga-" + cfg.InstanceID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.WithLogger(kgolog.New(cfg.logger)),
	}, brokerwait.ClientOptions()...)...)
	if err != nil {
		return nil, err
	}
	pt := &part[S]{p: p, prod: prod, insts: map[string]*saga.Instance[S]{}, broken: map[string]error{}, position: -1}
	ok := false
	defer func() {
		if !ok {
			prod.Close()
		}
	}()
	rd, err := partition.NewReader(r.cluster.Client())
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	rd.Logger = cfg.logger
	end, err := rd.Settled(ctx, cfg.state, p)
	if err != nil {
		return nil, err
	}
	st, err := rd.Read(ctx, cfg.state, p, 0, end, func(rec *kgo.Record) error {
		sr, err := decodeState(rec.Key, rec.Value, rec.Headers)
		id := string(rec.Key)
		switch {
		case err != nil:
			if checkInstanceID(id) == nil && id != CheckpointKey {
				pt.broken[id] = err
				delete(pt.insts, id)
			}
			cfg.logger.Error("a saga state record cannot be decoded: the instance's inputs will be parked", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
		case sr.checkpoint:
			pt.position = sr.next
		case sr.tombstone:
			delete(pt.insts, id)
			delete(pt.broken, id)
		default:
			inst, err := instance(sr.inst, cfg.States)
			if err != nil {
				pt.broken[id] = err
				delete(pt.insts, id)
				cfg.logger.Error("a saga instance's state cannot be decoded: its inputs will be parked", "partition", rec.Partition, "offset", rec.Offset, "err", err)
				return nil
			}
			pt.insts[id] = &inst
			delete(pt.broken, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, inst := range pt.insts {
		pt.arm(nil, inst)
	}
	ok = true
	r.metrics.restore.Observe(time.Since(start).Seconds())
	cfg.logger.Info("saga partition restored", "partition", p, "records", st.Records, "instances", len(pt.insts),
		"broken", len(pt.broken), "deadlines", len(pt.timers), "inputs_from", pt.position, "took", time.Since(start).Round(time.Millisecond))
	return pt, nil
}

// fence initialises a producer for transactional ID id, as a new owner does: the
// coordinator aborts the transaction id has open (or completes one whose commit had begun)
// and bumps its epoch, so the previous producer can write nothing more. It answers
// CONCURRENT_TRANSACTIONS while it ends the open one.
func (r *Runner[S, C, E]) fence(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*r.cfg.TransactionTimeout)
	defer cancel()
	for {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = &id
		req.TransactionTimeoutMillis = int32(r.cfg.TransactionTimeout.Milliseconds())
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, err := req.RequestWith(ctx, r.cluster.Client())
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err == nil || !errors.Is(err, kerr.ConcurrentTransactions) && !kerr.IsRetriable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
