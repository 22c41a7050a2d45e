package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/snapshot"
	"github.com/kastor-dev/kastor/wire"
)

// TestCheckpointOnRevoke: with Policy.OnRevoke, an instance that hands its shards over
// (graceful stop here) writes their snapshots and checkpoints, so the next owner reads no
// event at all; without it, the next owner reads the event tail. Both halves check the
// snapshots read back from the topic and the restored state.
func TestCheckpointOnRevoke(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		for _, onRevoke := range []bool{true, false} {
			t.Run(fmt.Sprintf("OnRevoke=%v", onRevoke), func(t *testing.T) {
				const partitions, aggs = 3, 12
				r := newRig(t, c, partitions)
				// No snapshot by count or time: only the revoke can write one.
				pol := snapshot.Policy{Every: -1, CheckpointEvery: 1 << 40, CheckpointInterval: time.Hour, OnRevoke: onRevoke}
				withPolicy := func(cfg *gateway.Config[account, command, kastor.Event]) { cfg.Snapshots = pol }
				_, stop := r.start(r.config(withPolicy))
				for i := range aggs {
					id := fmt.Sprintf("acct-%02d", i)
					r.submit(id, "open-"+id, openAccount{})
					r.submit(id, "dep-"+id, deposit{int64(10 + i)})
				}
				for i := range aggs {
					if rep := r.reply(fmt.Sprintf("dep-acct-%02d", i)); rep.Status != gateway.StatusOK || rep.To != 2 {
						t.Fatalf("deposit %d: %+v", i, rep)
					}
				}
				stop()

				snaps := 0
				for p := range int32(partitions) {
					recs, checkpoint := r.snapshotsIn(p)
					snaps += len(recs)
					if !onRevoke {
						continue
					}
					if checkpoint < 0 {
						t.Errorf("partition %d: no checkpoint after a graceful handover", p)
					}
					for id, rec := range recs {
						if producer.PartitionFor([]byte(id), partitions) != p || rec.Version != 2 || len(rec.Commands) != 2 {
							t.Errorf("partition %d: snapshot %+v", p, rec)
						}
					}
				}
				if want := map[bool]int{true: aggs, false: 0}[onRevoke]; snaps != want {
					t.Fatalf("%d snapshots written, want %d", snaps, want)
				}

				g, _ := r.start(r.config(withPolicy))
				for i := range aggs {
					id := fmt.Sprintf("acct-%02d", i)
					// The restored state: the whole balance can be withdrawn, and no more.
					if rep := r.send(id, "w-"+id, withdraw{int64(10 + i + 1)}); rep.Status != gateway.StatusRejected {
						t.Fatalf("%s: withdrawing more than the balance gave %+v", id, rep)
					}
					if rep := r.send(id, "w2-"+id, withdraw{int64(10 + i)}); rep.Status != gateway.StatusOK || rep.From != 3 {
						t.Fatalf("%s: withdrawing the balance gave %+v, want OK at version 3", id, rep)
					}
				}
				read := 0
				for _, rec := range g.Recoveries() {
					read += rec.EventRecords
				}
				if onRevoke && read != 0 {
					t.Fatalf("restores read %d events after a checkpointed handover, want 0", read)
				}
				if !onRevoke && read != 2*aggs {
					t.Fatalf("restores read %d events without checkpoints, want all %d", read, 2*aggs)
				}
			})
		}
	})
}

// A snapshot record that cannot be decoded at all (not only its state), covered by a
// checkpoint, is a cache miss for its aggregate alone: restores keep snapshot records
// undecoded until an aggregate is needed, then replay that aggregate from its events.
func TestCorruptSnapshotRecordReplaysTheAggregate(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		pol := snapshot.Policy{Every: -1, CheckpointEvery: 1 << 40, CheckpointInterval: time.Hour, OnRevoke: true}
		withPolicy := func(cfg *gateway.Config[account, command, kastor.Event]) { cfg.Snapshots = pol }
		_, stop := r.start(r.config(withPolicy))
		r.send("acct", "open", openAccount{})
		r.send("acct", "d1", deposit{10})
		r.send("other", "open-o", openAccount{})
		r.send("other", "d-o", deposit{7})
		stop() // checkpoint on revoke: both snapshotted, events covered

		md := kastor.Metadata{AggregateID: "acct", Version: 2, Type: snapshot.TypeSnapshot}
		r.produce(&kgo.Record{Topic: r.snapshots, Partition: 0, Key: []byte("acct"), Value: []byte{0xff, 0xff, 0xff},
			Headers: wire.Headers(&md)})

		g, _ := r.start(r.config(withPolicy))
		if rep := r.send("acct", "w1", withdraw{10}); rep.Status != gateway.StatusOK || rep.From != 3 {
			t.Fatalf("withdraw 10 after a corrupt snapshot record: %+v, want OK at version 3", rep)
		}
		if rep := r.send("acct", "d1", deposit{10}); rep.Status != gateway.StatusDuplicate {
			t.Fatalf("dedupe window lost in the replay: %+v", rep)
		}
		if rep := r.send("other", "w-o", withdraw{8}); rep.Status != gateway.StatusRejected {
			t.Fatalf("other's snapshot: withdrawing 8 of 7 gave %+v", rep)
		}
		if rec := g.Recoveries(); len(rec) != 1 || rec[0].EventRecords != 0 {
			t.Fatalf("recoveries %+v: the shard's tail should be empty (the checkpoint stays usable)", rec)
		}
	})
}

// A snapshot record whose state cannot be decoded (its writer schema no longer resolves)
// still holds the aggregate's dedupe window and refusals: replaying the state from the
// events must keep them, or a re-sent refused command would run the second time.
func TestUndecodableSnapshotStateKeepsRefusals(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		pol := snapshot.Policy{Every: -1, CheckpointEvery: 1 << 40, CheckpointInterval: time.Hour, OnRevoke: true}
		withPolicy := func(cfg *gateway.Config[account, command, kastor.Event]) { cfg.Snapshots = pol }
		_, stop := r.start(r.config(withPolicy))
		r.send("acct", "open", openAccount{})
		r.send("acct", "d1", deposit{10})
		refused := r.send("acct", "w-big", withdraw{100})
		if refused.Status != gateway.StatusRejected {
			t.Fatalf("withdraw 100 of 10: %+v, want REJECTED", refused)
		}
		stop()

		// The aggregate's latest snapshot, as the gateway wrote it, but with a state no
		// schema resolves.
		bad := snapshot.Record{AggregateID: "acct", Version: 2, EventOffset: 0,
			Commands:  []snapshot.Command{{ID: "open", From: 1, To: 1}, {ID: "d1", From: 2, To: 2}},
			Refusals:  []snapshot.Refusal{{ID: "w-big", Status: string(gateway.StatusRejected), Message: refused.Message}},
			StateType: "acct.State", StateFingerprint: 0x0123456789abcdef, State: []byte{0xff, 0x01}}
		rec, err := bad.KafkaRecord(r.snapshots, 0)
		if err != nil {
			t.Fatal(err)
		}
		r.produce(rec)

		r.start(r.config(withPolicy))
		if rep := r.send("acct", "d2", deposit{200}); rep.Status != gateway.StatusOK || rep.From != 3 {
			t.Fatalf("deposit after the undecodable state: %+v, want OK at version 3 (state replayed)", rep)
		}
		if rep := r.send("acct", "w-big", withdraw{100}); rep.Status != gateway.StatusRejected || !rep.Repeat {
			t.Fatalf("re-sent refused command: %+v, want its refusal repeated, not a second execution", rep)
		}
		if rep := r.send("acct", "d1", deposit{10}); rep.Status != gateway.StatusDuplicate {
			t.Fatalf("dedupe window lost in the replay: %+v", rep)
		}
	})
}
