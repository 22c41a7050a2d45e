package gateway

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clientIDPrefix starts every gateway client ID; the rest is the instance ID, which names
// the instance's transactional ID too. fenceDeparted relies on it.
const clientIDPrefix = "kastor-gateway-"

// txnID is an instance's transactional ID.
func (c *Config[S, C, E]) txnID(instance string) string { return c.Group + "-" + instance }

// fenceDeparted aborts the open transactions of gateway instances that left the group
// without ending them: killed, or paused past the session timeout. Until such a
// transaction ends, its command offsets are unstable (a restore waits for them) and its
// records hold back read_committed readers of every partition it wrote; Kafka aborts it
// only after the transaction timeout plus up to 10 s, the broker's check for timed-out
// transactions. Initialising a producer with the departed instance's transactional ID
// makes the coordinator abort it at once and fences the instance, were it to resume
// (see decision 28).
//
// An instance counts as departed when a transaction of the group's transactional-ID prefix
// is open and no member of the group has that instance's client ID. When a member's
// client ID is not a gateway's (a gateway of another version, or another client in the
// group), nothing is fenced: that member's transactions could not be told from a departed
// instance's.
func (g *Gateway[S, C, E]) fenceDeparted(ctx context.Context, cl *kgo.Client) {
	cfg := g.cfg
	adm := kadm.NewClient(cl)
	groups, err := adm.DescribeGroups(ctx, cfg.Group)
	if err == nil {
		err = groups.Error()
	}
	if err != nil {
		if ctx.Err() == nil {
			cfg.logger.Warn("cannot list the group's members to fence departed instances; their open transactions end at their timeout", "err", err)
		}
		return
	}
	live := map[string]bool{cfg.txnID(cfg.InstanceID): true}
	for _, m := range groups[cfg.Group].Members {
		instance, ok := strings.CutPrefix(m.ClientID, clientIDPrefix)
		if !ok {
			cfg.logger.Debug("a group member's client ID is not a gateway's: not fencing departed instances", "client_id", m.ClientID)
			return
		}
		live[cfg.txnID(instance)] = true
	}
	txns, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil {
		if ctx.Err() == nil {
			cfg.logger.Warn("cannot list open transactions to fence departed instances; they end at their timeout", "err", err)
		}
		return
	}
	prefix := cfg.txnID("")
	for id := range txns {
		if !strings.HasPrefix(id, prefix) || live[id] {
			continue
		}
		start := time.Now()
		if err := g.fence(ctx, cl, id); err != nil {
			if ctx.Err() == nil {
				cfg.logger.Warn("cannot fence a departed instance; its open transaction ends at its timeout", "transactional_id", id, "err", err)
			}
			continue
		}
		cfg.logger.Info("fenced a departed instance: its open transaction is aborted", "transactional_id", id,
			"took", time.Since(start).Round(time.Millisecond))
	}
}

// fenceOwn fences this instance's own transactional ID over the cluster's shared client,
// before the session's producer is created: fencing it through the session's client could
// bump the epoch past that client's own producer. A transaction a predecessor under the
// same instance ID left open is aborted (or, if its commit had begun, completed) at once,
// instead of holding up the restores until its timeout (see decision 28).
func (g *Gateway[S, C, E]) fenceOwn(ctx context.Context) {
	cfg := g.cfg
	id := cfg.txnID(cfg.InstanceID)
	err := g.fence(ctx, g.cluster.Client(), id)
	if err != nil && ctx.Err() == nil {
		cfg.logger.Warn("cannot fence this instance's transactional ID before joining; a predecessor's open transaction ends at its timeout",
			"transactional_id", id, "err", err)
	}
}

// fence initialises a producer for transactional ID id, as a restarted instance would:
// the coordinator aborts the transaction id has open and bumps its epoch, so the old
// producer can write nothing more. It answers CONCURRENT_TRANSACTIONS while it aborts.
func (g *Gateway[S, C, E]) fence(ctx context.Context, cl *kgo.Client, id string) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.TransactionTimeout)
	defer cancel()
	for {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = &id
		req.TransactionTimeoutMillis = int32(g.cfg.TransactionTimeout.Milliseconds())
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, err := req.RequestWith(ctx, cl)
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
