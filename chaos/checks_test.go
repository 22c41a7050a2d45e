package chaos

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/producer"
)

// The checks of the log against the callers. Each returns one line per violation; an
// empty result passes. They take the events in log order (partition, then offset), as
// readBack returns them.

// eventKind is the event each bank command writes: every command of the example writes
// exactly one event, which is what lets check (b) count executions.
var eventKind = map[string]string{"open": "opened", "deposit": "deposited", "withdraw": "withdrawn"}

// checkVersions is check (a): every aggregate's events have versions 1..n in log order,
// no gap and no duplicate, and sit in the partition its ID hashes to (its shard).
func checkVersions(evs []event, partitions int32) []string {
	var out []string
	next := map[string]int64{}
	for _, e := range evs {
		if want := producer.PartitionFor([]byte(e.key), partitions); e.partition != want {
			out = append(out, fmt.Sprintf("event %v is in partition %d, its aggregate's shard is %d", e, e.partition, want))
		}
		if e.md.AggregateID != e.key || e.md.AggregateType != account.Type {
			out = append(out, fmt.Sprintf("event %v has aggregate headers %s %q, want %s %q", e, e.md.AggregateType, e.md.AggregateID, account.Type, e.key))
		}
		want := next[e.key] + 1
		if e.md.Version != want {
			what := "a gap"
			if e.md.Version < want {
				what = "a duplicate version"
			}
			out = append(out, fmt.Sprintf("aggregate %s: version %d where %d was due (%s): %v", e.key, e.md.Version, want, what, e))
		}
		next[e.key] = max(next[e.key], e.md.Version)
	}
	return out
}

// checkOneExecution is check (b): every command ID in the log belongs to a command a
// caller sent, to that command's aggregate, and to exactly one event of the kind and
// amount the command asks for. A command executed twice (a retry not recognised as the
// same command, a zombie's commit besides its successor's) has two events with its ID.
func checkOneExecution(evs []event, cmds map[string]*command) []string {
	var out []string
	byID := map[string][]event{}
	var ids []string
	for _, e := range evs {
		if e.md.CommandID == "" {
			out = append(out, fmt.Sprintf("event %v has no command ID", e))
			continue
		}
		if byID[e.md.CommandID] == nil {
			ids = append(ids, e.md.CommandID)
		}
		byID[e.md.CommandID] = append(byID[e.md.CommandID], e)
	}
	for _, id := range ids {
		list := byID[id]
		c := cmds[id]
		if c == nil {
			out = append(out, fmt.Sprintf("command %s, which no caller sent, wrote %d event(s), first %v", id, len(list), list[0]))
			continue
		}
		if len(list) != 1 {
			out = append(out, fmt.Sprintf("command %s was executed %d times: %v; %s", id, len(list), list, c.history()))
		}
		for _, e := range list {
			if e.key != c.account || e.kind != eventKind[c.kind] || c.kind != "open" && e.amount != c.amount {
				out = append(out, fmt.Sprintf("command %s (%s %s %d) wrote %v", id, c.account, c.kind, c.amount, e))
			}
		}
	}
	return out
}

// checkTold is check (c): what each caller was told is what the log holds. A success
// v(From)..v(To) means exactly those versions of the command's aggregate carry its ID; a
// refusal, or "no outcome", means no event carries it. Contradictory answers fail too.
func checkTold(evs []event, cmds map[string]*command) []string {
	var out []string
	versions := map[string][]int64{}
	for _, e := range evs {
		if c := cmds[e.md.CommandID]; c != nil && e.key == c.account {
			versions[e.md.CommandID] = append(versions[e.md.CommandID], e.md.Version)
		}
	}
	for _, c := range sortedCommands(cmds) {
		kind, from, to, contradiction := c.outcome()
		if contradiction != "" {
			out = append(out, fmt.Sprintf("command %s: the caller was %s: %s", c.id, contradiction, c.history()))
		}
		got := versions[c.id]
		switch kind {
		case toldSuccess:
			var want []int64
			for v := from; v <= to; v++ {
				want = append(want, v)
			}
			if !slices.Equal(got, want) {
				out = append(out, fmt.Sprintf("command %s: the caller was told v%d..%d, the log has its ID at versions %v: %s", c.id, from, to, got, c.history()))
			}
		case toldRefused, toldNone:
			if len(got) > 0 {
				out = append(out, fmt.Sprintf("command %s: the caller was told %v, the log has its ID at versions %v: %s", c.id, kind, got, c.history()))
			}
		}
	}
	return out
}

// checkBalances is check (d): every account's balance folded from the log equals the sum
// of the deposits minus the withdrawals its callers were told succeeded. Accounts with a
// command whose outcome nobody learned are skipped (unresolved lists them; the run fails
// on those separately).
func checkBalances(evs []event, cmds map[string]*command) (out, unresolved []string) {
	logged := map[string]int64{}
	for _, e := range evs {
		switch e.kind {
		case "deposited":
			logged[e.key] += e.amount
		case "withdrawn":
			logged[e.key] -= e.amount
		}
	}
	told := map[string]int64{}
	skip := map[string]bool{}
	for _, c := range sortedCommands(cmds) {
		kind, _, _, _ := c.outcome()
		switch kind {
		case toldNothing:
			skip[c.account] = true
			unresolved = append(unresolved, c.history())
		case toldSuccess:
			switch c.kind {
			case "deposit":
				told[c.account] += c.amount
			case "withdraw":
				told[c.account] -= c.amount
			}
		}
	}
	accounts := map[string]bool{}
	for a := range logged {
		accounts[a] = true
	}
	for a := range told {
		accounts[a] = true
	}
	for _, a := range slices.Sorted(maps.Keys(accounts)) {
		if !skip[a] && logged[a] != told[a] {
			out = append(out, fmt.Sprintf("account %s: balance %d in the log, %d from what the callers were told", a, logged[a], told[a]))
		}
	}
	return out, unresolved
}

// checkZombie is check (e): nothing the stopped gateway's producer could still write
// after it resumed is committed. Once the group had dropped it and another gateway had
// fenced its transactional ID, its producer (this ID, this epoch or lower) may not
// commit anything: neither an event it produced after resuming (timestamp at or after
// the resume) nor the transaction it had open when it was stopped (a commit marker
// written after the resume over its records). seen counts its committed events from
// before the stop: zero would mean the check looked for the wrong producer and proved
// nothing.
func checkZombie(evs []event, markers []marker, z zombie) (out []string, seen int) {
	resumed := z.resumedAt.Truncate(1e6) // record timestamps are milliseconds
	old := func(pid int64, epoch int16) bool { return pid == z.producerID && epoch <= z.epoch }
	for _, e := range evs {
		if e.producerID == z.producerID && e.timestamp.Before(z.stoppedAt) {
			seen++
		}
		if old(e.producerID, e.producerEpoch) && !e.timestamp.Before(resumed) {
			out = append(out, fmt.Sprintf("event %v was written by the zombie %s after it resumed at %s and is committed",
				e, z.instance, z.resumedAt.Format("15:04:05.000")))
		}
	}
	// A commit marker after the resume of a transaction holding old-epoch records.
	pending := map[int32][]event{} // per partition: the zombie producer's records since its last marker
	i, j := 0, 0
	for i < len(evs) || j < len(markers) {
		if j >= len(markers) || i < len(evs) && logBefore(evs[i].partition, evs[i].offset, markers[j].partition, markers[j].offset) {
			if e := evs[i]; e.producerID == z.producerID {
				pending[e.partition] = append(pending[e.partition], e)
			}
			i++
			continue
		}
		m := markers[j]
		j++
		if m.producerID != z.producerID {
			continue
		}
		recs := pending[m.partition]
		delete(pending, m.partition)
		if !m.commit || m.timestamp.Before(resumed) {
			continue
		}
		for _, e := range recs {
			if old(e.producerID, e.producerEpoch) {
				out = append(out, fmt.Sprintf("event %v of the zombie %s's transaction was committed after it resumed (marker at %d@%d, %s)",
					e, z.instance, m.partition, m.offset, m.timestamp.Format("15:04:05.000")))
			}
		}
	}
	return out, seen
}

func sortedCommands(cmds map[string]*command) []*command {
	out := make([]*command, 0, len(cmds))
	for _, c := range cmds {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *command) int { return cmp.Compare(a.id, b.id) })
	return out
}

// logBefore orders records as readBack returns them: by partition, then offset.
func logBefore(p1 int32, o1 int64, p2 int32, o2 int64) bool {
	return p1 < p2 || p1 == p2 && o1 < o2
}
