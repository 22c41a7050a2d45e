package gateway_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/wire"
)

// bankLoad sends deposits and withdrawals from several clients and keeps every reply.
type bankLoad struct {
	mu      sync.Mutex
	sent    map[string]bank.Command // command ID -> command
	acct    map[string]string       // command ID -> account
	replies map[string]gateway.Reply
	wg      sync.WaitGroup
}

func (r *rig) runBankLoad(t *testing.T, accounts, clients int, stop <-chan struct{}) *bankLoad {
	l := &bankLoad{sent: map[string]bank.Command{}, acct: map[string]string{}, replies: map[string]gateway.Reply{}}
	replies := r.c.Client(t, kgo.ConsumeTopics(r.replies), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	// Make sure the reply consumer has its position before the first command goes out.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.c.Admin().ListEndOffsets(ctx, r.replies); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			fs := replies.PollFetches(ctx)
			cancel()
			fs.EachRecord(func(rec *kgo.Record) {
				if rep, err := gateway.DecodeReply(rec.Value); err == nil {
					l.mu.Lock()
					l.replies[rep.CommandID] = rep
					l.mu.Unlock()
				}
			})
			if l.closed() {
				return
			}
		}
	}()
	for c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(c), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(3 * time.Millisecond):
				}
				acct := fmt.Sprintf("acct-%d", rnd.IntN(accounts))
				var cmd bank.Command = bank.Deposit{Amount: int64(1 + rnd.IntN(100))}
				if rnd.IntN(3) == 0 {
					cmd = bank.Withdraw{Amount: int64(1 + rnd.IntN(150))}
				}
				id := fmt.Sprintf("c%d-%d", c, i)
				enc, err := r.bank.Commands.Encode(cmd)
				if err != nil {
					panic(err)
				}
				md := kastor.Metadata{AggregateID: acct, CommandID: id, Type: enc.Type, Fingerprint: enc.Fingerprint}
				hs := wire.Headers(&md)
				hs = append(hs, kgo.RecordHeader{Key: wire.HeaderReplyTo, Value: []byte(callerID)})
				rec := &kgo.Record{Topic: r.commands, Partition: producer.PartitionFor([]byte(acct), r.partitions), Key: []byte(acct), Value: enc.Data, Headers: hs}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err = r.cl.ProduceSync(ctx, rec).FirstErr()
				cancel()
				if err != nil {
					continue // never written: no reply expected
				}
				l.mu.Lock()
				l.sent[id], l.acct[id] = cmd, acct
				l.mu.Unlock()
			}
		}()
	}
	return l
}

var loadsClosed sync.Map

func (l *bankLoad) closed() bool { _, ok := loadsClosed.Load(l); return ok }

func (l *bankLoad) okCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, rep := range l.replies {
		if rep.Status == gateway.StatusOK {
			n++
		}
	}
	return n
}

func (l *bankLoad) waitOK(t *testing.T, more int, timeout time.Duration) {
	t.Helper()
	target := l.okCount() + more
	deadline := time.Now().Add(timeout)
	for l.okCount() < target {
		if time.Now().After(deadline) {
			t.Fatalf("no progress: %d acknowledged commands, want %d", l.okCount(), target)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestW2ExactlyOnceThroughCrashesAndFailover runs three gateway processes of the bank
// account (internal/testdomain/bank: its domain, Avro codecs and schemas) under load from
// several clients, kills one with SIGKILL several times and stops a broker of the 3-node
// cluster once. Afterwards every acknowledged command's event is present exactly once,
// every account's versions are contiguous, and each balance equals the sum of the
// acknowledged deposits and withdrawals.
func TestW2ExactlyOnceThroughCrashesAndFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test with a 3-node cluster")
	}
	c := kafkatest.Start(t, kafkatest.Nodes(3))
	if c.Backend() != kafkatest.Containers {
		t.Skip("needs a cluster whose nodes the harness controls")
	}
	r := newRigRF(t, c, 6, 3, map[string]string{"min.insync.replicas": "2"})
	c.CreateTopic(t, schema.Topic, 1, 3, map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "2"})
	codecs, err := bank.NewCodecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	r.bank = codecs
	const accounts = 30
	for i := range accounts {
		r.submitBank(fmt.Sprintf("acct-%d", i), fmt.Sprintf("open-%d", i), bank.Open{Owner: fmt.Sprintf("owner-%d", i)})
	}
	bankEnv := "CHILD_DOMAIN=bank"
	children := []*child{r.spawn("g0", 0, bankEnv), r.spawn("g1", 0, bankEnv), r.spawn("g2", 0, bankEnv)}
	if rep := r.reply(fmt.Sprintf("open-%d", accounts-1)); rep.Status != gateway.StatusOK {
		t.Fatalf("open: %+v", rep)
	}

	stop := make(chan struct{})
	l := r.runBankLoad(t, accounts, 3, stop)
	l.waitOK(t, 200, time.Minute)

	rnd := rand.New(rand.NewPCG(42, 42))
	for round := range 3 {
		i := rnd.IntN(len(children))
		children[i].signal(t, syscall.SIGKILL)
		_ = children[i].cmd.Wait()
		children[i] = r.spawn(fmt.Sprintf("g%d-r%d", i, round), 0, bankEnv)
		l.waitOK(t, 150, 2*time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.StopNode(ctx, 2); err != nil {
		t.Fatal(err)
	}
	l.waitOK(t, 200, 2*time.Minute)
	if err := c.StartNode(ctx, 2); err != nil {
		t.Fatal(err)
	}
	l.waitOK(t, 100, 2*time.Minute)

	close(stop)
	l.wg.Wait()
	// Every written command gets exactly one reply in the end; wait for all of them.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		l.mu.Lock()
		missing := 0
		for id := range l.sent {
			if _, ok := l.replies[id]; !ok {
				missing++
			}
		}
		l.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d written commands never got a reply", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	loadsClosed.Store(l, true)

	evs := r.eventsOf() // versions contiguous per account
	want := map[string]int64{}
	byCmd := map[string]int{}
	l.mu.Lock()
	for id, rep := range l.replies {
		if rep.Status != gateway.StatusOK {
			continue
		}
		switch cmd := l.sent[id].(type) {
		case bank.Deposit:
			want[l.acct[id]] += cmd.Amount
		case bank.Withdraw:
			want[l.acct[id]] -= cmd.Amount
		}
	}
	l.mu.Unlock()
	got := map[string]int64{}
	for acct, list := range evs {
		for _, md := range list {
			byCmd[md.CommandID]++
			_ = acct
		}
	}
	for id, n := range byCmd {
		if n != 1 {
			t.Fatalf("command %s has %d events", id, n)
		}
	}
	// Fold balances from the events themselves.
	r.foldBalances(t, got)
	for acct, w := range want {
		if got[acct] != w {
			t.Fatalf("%s: balance from events %d, acknowledged commands sum to %d", acct, got[acct], w)
		}
	}
	t.Logf("%d commands acknowledged OK across 3 gateway kills and a broker stop", l.okCount())
}

// foldBalances reads every event and folds the accounts' balances.
func (r *rig) foldBalances(t *testing.T, into map[string]int64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := r.c.Admin().ListCommittedOffsets(ctx, r.events)
	if err != nil {
		t.Fatal(err)
	}
	for p := range r.partitions {
		end, _ := ends.Lookup(r.events, p)
		if end.Offset == 0 {
			continue
		}
		cl := r.c.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.events: {p: kgo.NewOffset().AtStart()}}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
		for done := false; !done; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatal(ctx.Err())
			}
			fs.EachRecord(func(rec *kgo.Record) {
				if rec.Offset+1 >= end.Offset {
					done = true
				}
				if rec.Attrs.IsControl() {
					return
				}
				md, err := wire.ParseHeaders(rec.Headers)
				if err != nil {
					t.Fatal(err)
				}
				ev, err := r.bank.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: rec.Value})
				if err != nil {
					t.Fatal(err)
				}
				switch e := ev.(type) {
				case bank.Deposited:
					into[string(rec.Key)] += e.Amount
				case bank.Withdrawn:
					into[string(rec.Key)] -= e.Amount
				}
			})
		}
		cl.Close()
	}
}

// submitBank appends a bank account command, Avro-encoded, with a reply-to.
func (r *rig) submitBank(aggID, cmdID string, c bank.Command) {
	r.t.Helper()
	enc, err := r.bank.Commands.Encode(c)
	if err != nil {
		r.t.Fatal(err)
	}
	md := kastor.Metadata{AggregateID: aggID, CommandID: cmdID, Type: enc.Type, Fingerprint: enc.Fingerprint}
	hs := wire.AppendHeaders([]kgo.RecordHeader{{Key: wire.HeaderReplyTo, Value: []byte(callerID)}}, &md)
	r.produce(&kgo.Record{Topic: r.commands, Partition: producer.PartitionFor([]byte(aggID), r.partitions), Key: []byte(aggID), Value: enc.Data, Headers: hs})
}
