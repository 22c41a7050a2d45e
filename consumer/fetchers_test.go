package consumer_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
)

// With AllPartitions the partitions are dealt to Config.Fetchers clients, each applying
// its own in its own rounds. Whatever their number (8 is more than the partitions):
// every other event is applied once and in order per aggregate, and a parked aggregate
// is held in its own partition only. (projection's TestReplayReachesEveryFetcher replays the parked aggregates and
// checks that the reload reaches the fetcher that holds each.)
func TestAllPartitionsFetchers(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		for _, n := range []int{1, 3, 8} {
			t.Run(fmt.Sprint("fetchers-", n), func(t *testing.T) {
				r := newRig(t, c, 6)
				var batch []ev
				for i := range 40 {
					agg := fmt.Sprintf("acc-%d", i)
					batch = append(batch, opened(agg), deposited(agg, 1), deposited(agg, 2))
				}
				r.Write(batch...)
				broken := map[string]bool{"acc-3": true, "acc-4": true, "acc-17": true}
				s := newSeen()
				mem := consumer.NewMemory(balances{}, func(m *balances, e kastor.Envelope[kastor.Event]) error {
					if broken[e.AggregateID] && e.Version == 2 {
						return errors.New("broken")
					}
					s.Add(e)
					return foldBalance(m, e)
				})
				cfg := r.Config(func(c *consumer.Config[kastor.Event]) {
					c.AllPartitions, c.Fetchers, c.OnFailure = true, n, consumer.ParkAggregate
				})
				r.Start(cfg, mem)
				if err := mem.WaitFor(testCtx(t), r.Ends()); err != nil {
					t.Fatal(err)
				}
				// Versions 2 and 3 of each broken aggregate are parked (failed, then held).
				if got := len(r.ReadDLQ()); got != 2*len(broken) {
					t.Fatalf("%d dead letters, want %d", got, 2*len(broken))
				}
				mem.Read(func(m *balances) {
					for agg := range broken {
						if m.Balance[agg] != 0 {
							t.Errorf("%s has balance %d while parked, want 0", agg, m.Balance[agg])
						}
					}
					if want := 40*3 - 2*len(broken); m.Events != want {
						t.Errorf("%d events applied, want %d", m.Events, want)
					}
				})
				// Every other aggregate is applied whole, once and in order.
				want := map[string]int64{}
				for agg, v := range r.Versions {
					if !broken[agg] {
						want[agg] = v
					}
				}
				if dups := s.Check(t, want); dups != 0 {
					t.Errorf("%d duplicates", dups)
				}
			})
		}
	})
}

// Readers fetch at most 256 KiB per partition at a time; an event larger than that
// still comes (Kafka returns at least one batch whatever the limit), with the events
// around it, in order, in both a group and an all-partitions reader.
func TestEventLargerThanFetch(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		big := strings.Repeat("x", 600<<10)
		r.Write(opened("a"), ev{Agg: "b", Event: bank.Opened{Owner: big}}, deposited("a", 2))
		for _, all := range []bool{false, true} {
			s := newSeen()
			mem := consumer.NewMemory(balances{}, func(m *balances, e kastor.Envelope[kastor.Event]) error {
				if o, ok := e.Event.(bank.Opened); ok && e.AggregateID == "b" && o.Owner != big {
					return fmt.Errorf("b's owner has %d bytes, want %d", len(o.Owner), len(big))
				}
				s.Add(e)
				return foldBalance(m, e)
			})
			cfg := r.Config(func(c *consumer.Config[kastor.Event]) {
				c.AllPartitions = all
				c.Version = map[bool]int{false: 1, true: 2}[all]
			})
			_, stop := r.Start(cfg, mem)
			if err := mem.WaitFor(testCtx(t), r.Ends()); err != nil {
				t.Fatal(err)
			}
			_ = stop()
			if dups := s.Check(t, r.Versions); dups != 0 {
				t.Errorf("all partitions %v: %d duplicates", all, dups)
			}
			if letters := r.ReadDLQ(); len(letters) != 0 {
				t.Errorf("all partitions %v: %d dead letters, want none", all, len(letters))
			}
		}
	})
}
