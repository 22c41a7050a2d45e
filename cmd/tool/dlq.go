package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	ks "github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/projection"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/wire"
)

const dlqLong = `Each projection parks the events it cannot apply on its dead-letter topic,
<ns>.proj.<name>.dlq, shared by its versions: failed events (after their retries),
undecodable records, and with ParkAggregate the later events of the same aggregate,
held. Resolution markers (written by a replay or a purge) close them.

list counts the letters, show prints them with their events decoded, replay asks a
running instance of the application to apply them again (only it has the sink), purge
marks them resolved without applying them.

Exit codes: 0 ok, 1 error (also: letters that failed again in a replay), 2 usage error.`

func newDLQCmd(a *app) *cobra.Command {
	f := &projFlags{}
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, replay and purge projections' dead letters",
		Long:  dlqLong,
		Example: `  kastor dlq list -f kastor.yaml
  kastor dlq show balances -o json | jq '.[] | {reason, error, event}'
  kastor dlq replay balances
  kastor dlq purge balances --yes`,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f.register(cmd)
	cmd.AddCommand(newDLQListCmd(a, f), newDLQShowCmd(a, f), newDLQReplayCmd(a, f), newDLQPurgeCmd(a, f))
	return cmd
}

// dlqCount is one projection version's letters in `dlq list`.
type dlqCount struct {
	Projection string `json:"projection"`
	Version    int    `json:"version"`
	Topic      string `json:"topic"`
	Unresolved int    `json:"unresolved"` // failed or undecodable, not resolved
	Held       int    `json:"held"`       // held behind a parked event, not resolved
	Resolved   int    `json:"resolved"`
}

var dlqTopicName = regexp.MustCompile(`^(.+)\.proj\.(.+)\.dlq$`)

func newDLQListCmd(a *app, f *projFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Count each projection's dead letters: unresolved, held, resolved",
		Long: `list reads every dead-letter topic of the namespace (<ns>.proj.*.dlq) to its end and
counts, per projection version, the unresolved letters (failed or undecodable), the held
ones (waiting behind a parked event of their aggregate) and the resolved ones.`,
		Example: `  kastor dlq list -f kastor.yaml
  kastor dlq list --namespace shop -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			t, err := a.connectTarget(ctx, f)
			if err != nil {
				return err
			}
			defer t.adm.Close()
			lctx, cancel := context.WithTimeout(ctx, a.timeout)
			tds, err := t.adm.ListTopics(lctx)
			cancel()
			if err != nil {
				return fmt.Errorf("listing topics: %w", err)
			}
			counts := []dlqCount{}
			for _, name := range tds.Names() {
				m := dlqTopicName.FindStringSubmatch(name)
				if m == nil || m[1] != t.ns {
					continue
				}
				c, err := countLetters(ctx, t.c.Client(), name, int32(len(tds[name].Partitions)))
				if err != nil {
					return err
				}
				counts = append(counts, c...)
			}
			if a.output == "json" {
				return writeJSON(a.stdout, counts)
			}
			if len(counts) == 0 {
				fmt.Fprintf(a.stderr, "no dead letters in namespace %s\n", t.ns)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PROJECTION\tVERSION\tUNRESOLVED\tHELD\tRESOLVED\tTOPIC")
			for _, c := range counts {
				fmt.Fprintf(tw, "%s\tv%d\t%d\t%d\t%d\t%s\n", c.Projection, c.Version, c.Unresolved, c.Held, c.Resolved, c.Topic)
			}
			return tw.Flush()
		},
	}
}

// countLetters reads a dead-letter topic and counts its letters per projection version.
func countLetters(ctx context.Context, cl *kgo.Client, topic string, partitions int32) ([]dlqCount, error) {
	type key struct {
		proj string
		ver  int
	}
	type origin struct {
		key
		tp     consumer.TopicPartition
		offset int64
	}
	letters := map[origin]string{} // reason of the first letter
	resolved := map[origin]bool{}
	for p := range partitions {
		_, err := partition.ReadToEnd(ctx, cl, topic, p, 0, func(r *kgo.Record) error {
			d, err := consumer.ParseDeadLetter(r)
			if err != nil {
				return nil
			}
			o := origin{key{d.Projection, d.Version}, d.Origin, d.Offset}
			if d.Reason == consumer.ReasonResolved {
				resolved[o] = true
			} else if _, ok := letters[o]; !ok {
				letters[o] = d.Reason
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", topic, err)
		}
	}
	byKey := map[key]*dlqCount{}
	get := func(k key) *dlqCount {
		if byKey[k] == nil {
			byKey[k] = &dlqCount{Projection: k.proj, Version: k.ver, Topic: topic}
		}
		return byKey[k]
	}
	for o, reason := range letters {
		c := get(o.key)
		switch {
		case resolved[o]:
			c.Resolved++
		case reason == consumer.ReasonHeld:
			c.Held++
		default:
			c.Unresolved++
		}
	}
	var out []dlqCount
	for _, c := range byKey {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Projection < out[j].Projection || out[i].Projection == out[j].Projection && out[i].Version < out[j].Version
	})
	return out, nil
}

// letterOut is one dead letter as `dlq show` prints it.
type letterOut struct {
	Reason      string          `json:"reason"`
	Error       string          `json:"error,omitempty"`
	Attempts    int             `json:"attempts"`
	Projection  string          `json:"projection"`
	Version     int             `json:"version"`
	Topic       string          `json:"topic"`
	Partition   int32           `json:"partition"`
	Offset      int64           `json:"offset"`
	Timestamp   time.Time       `json:"timestamp"`
	HeldBehind  *int64          `json:"heldBehind,omitempty"`
	AggregateID string          `json:"aggregateId,omitempty"`
	Type        string          `json:"type,omitempty"`
	EventVer    int64           `json:"eventVersion,omitempty"`
	Event       json.RawMessage `json:"event"`
	DecodeError string          `json:"decodeError,omitempty"`
	DLQOffset   string          `json:"dlq"` // partition/offset in the dead-letter topic
}

// dlqTarget connects and returns the version a dlq command works on: --version, else the
// serving one. The caller closes t.adm.
func (a *app) dlqTarget(ctx context.Context, f *projFlags, name string, ver int) (*target, int, error) {
	t, err := a.connectTarget(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	if ver > 0 {
		return t, ver, nil
	}
	g, err := a.registry(ctx, t)
	if err != nil {
		t.adm.Close()
		return nil, 0, fmt.Errorf("%w (or name the version with --version)", err)
	}
	st, err := projectionState(g, t.ns, name)
	if err != nil {
		t.adm.Close()
		return nil, 0, fmt.Errorf("%w; name the version with --version", err)
	}
	return t, st.Serving, nil
}

func newDLQShowCmd(a *app, f *projFlags) *cobra.Command {
	var ver int
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Print a projection's unresolved dead letters, events decoded to JSON",
		Long: `show prints the unresolved dead letters of a projection version (the serving one by
default) in dead-letter order: reason, error, attempts, the original record's topic,
partition and offset, and the event decoded to JSON with the writer schemas published
in _kastor.schemas (no application code needed). A record that does not decode is shown
with decodeError.`,
		Example: `  kastor dlq show balances -f kastor.yaml
  kastor dlq show balances --version 2 -o json | jq '.[].event'`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, v, err := a.dlqTarget(ctx, f, args[0], ver)
			if err != nil {
				return err
			}
			defer t.adm.Close()
			letters, err := consumer.ReadDeadLetters(ctx, t.c, consumer.DLQTopic(t.ns, args[0]), args[0], v)
			if err != nil {
				return err
			}
			out, err := decodeLetters(ctx, t.c.Client(), letters)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, out)
			}
			if len(out) == 0 {
				fmt.Fprintf(a.stderr, "no unresolved dead letters for %s v%d\n", args[0], v)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REASON\tATTEMPTS\tORIGIN\tAGGREGATE\tTYPE\tERROR\tEVENT")
			for _, l := range out {
				ev := string(l.Event)
				if l.DecodeError != "" {
					ev = "(" + l.DecodeError + ")"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s/%d@%d\t%s/%d\t%s\t%s\t%s\n", l.Reason, l.Attempts, l.Topic, l.Partition, l.Offset,
					l.AggregateID, l.EventVer, l.Type, l.Error, ev)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&ver, "version", 0, "projection version (default: the serving one)")
	return cmd
}

// decodeLetters decodes the letters' events with the schemas in _kastor.schemas.
func decodeLetters(ctx context.Context, cl *kgo.Client, letters []consumer.DeadLetter) ([]letterOut, error) {
	out := []letterOut{}
	if len(letters) == 0 {
		return out, nil
	}
	reg := schema.NewRegistry()
	schemaErr := schema.Load(ctx, cl, reg)
	for _, d := range letters {
		l := letterOut{Reason: d.Reason, Error: d.Err, Attempts: d.Attempts, Projection: d.Projection, Version: d.Version,
			Topic: d.Origin.Topic, Partition: d.Origin.Partition, Offset: d.Offset, Timestamp: d.Timestamp.UTC(),
			Event: json.RawMessage("null"), DLQOffset: fmt.Sprintf("%d/%d", d.Record.Partition, d.Record.Offset)}
		if d.HeldBehind >= 0 {
			hb := d.HeldBehind
			l.HeldBehind = &hb
		}
		m, err := wire.ParseHeaders(d.Headers)
		l.AggregateID, l.Type, l.EventVer = m.AggregateID, m.Type, m.Version
		switch {
		case err != nil:
			l.DecodeError = (&ks.UndecodableError{What: "event", Topic: l.Topic, Partition: l.Partition, Offset: l.Offset, Err: err}).Error()
		case schemaErr != nil:
			l.DecodeError = "schemas not loaded: " + schemaErr.Error()
		default:
			native, s, err := reg.DecodeNative(schema.Fingerprint(m.Fingerprint), d.Value, schema.DefaultLimits)
			if err == nil {
				var text []byte
				if text, err = s.Codec().TextualFromNative(nil, native); err == nil {
					l.Event = text
				}
			}
			if err != nil {
				l.DecodeError = err.Error()
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// replayResult is the document of `dlq replay -o json`.
type replayResult struct {
	Request  string                   `json:"request"`
	Name     string                   `json:"name"`
	Version  int                      `json:"version"`
	Status   projection.RequestStatus `json:"status"`
	Instance string                   `json:"instance,omitempty"`
	// TakenFrom is the instance that claimed the replay first and stopped renewing its
	// lease; Applied then counts only what Instance applied.
	TakenFrom string `json:"takenFrom,omitempty"`
	Applied   int    `json:"applied"` // resolved: applied and marked resolved
	Failed    int    `json:"failed"`
	Kept      int    `json:"kept"`
	Error     string `json:"error,omitempty"`
}

func newDLQReplayCmd(a *app, f *projFlags) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "replay NAME",
		Short: "Ask a running instance to re-apply a projection's dead letters, and report",
		Long: `replay writes a replay request to the projection registry; one running instance of the
application (projection.Projection) claims it and replays the serving version's unresolved
dead letters through its sink (projection.Replay: in order per aggregate, each applied one
marked resolved). The command waits for the outcome and reports how many letters were
applied, failed again, or kept behind a failed one of their aggregate.

It fails at once when no instance runs the projection, and exits 1 when letters failed
again (they stay unresolved: see 'kastor dlq show').`,
		Example: `  kastor dlq replay balances -f kastor.yaml
  kastor dlq replay balances -o json | jq .applied`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, st, err := a.knownProjection(ctx, f, args[0])
			if err != nil {
				return err
			}
			defer t.adm.Close()
			mctx, cancel := context.WithTimeout(ctx, a.timeout)
			err = requireRunning(mctx, t, st, "replay")
			cancel()
			if err != nil {
				return err
			}
			sctx, cancel := context.WithTimeout(ctx, a.timeout)
			req, err := projection.SubmitRequest(sctx, t.c, projection.Request{Kind: projection.RequestReplay, Namespace: t.ns, Name: st.Name,
				Version: st.Serving, By: requester()})
			cancel()
			if err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			var r projection.Request
			_, err = projection.WatchRegistry(wctx, t.c, func(g *projection.Registry) (bool, error) {
				r, _ = g.Request(t.ns, st.Name, req.ID)
				return r.Final(), nil
			})
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					if r.Status == projection.StatusRunning {
						// An instance that dies leaves the request to the others when its lease expires.
						return fmt.Errorf("no outcome for replay request %s within %s: running on instance %s, lease until %s (another instance takes it over if that one stops renewing)",
							req.ID, wait, r.Instance, r.LeaseEnd().Local().Format(time.RFC3339))
					}
					return fmt.Errorf("no outcome for replay request %s within %s (status %q): is an instance of the application running projection %s?", req.ID, wait, r.Status, st.Name)
				}
				return err
			}
			res := replayResult{Request: req.ID, Name: st.Name, Version: r.Version, Status: r.Status, Instance: r.Instance,
				TakenFrom: r.TakenFrom, Applied: r.Resolved, Failed: r.Failed, Kept: r.Kept, Error: r.Error}
			if a.output == "json" {
				if err := writeJSON(a.stdout, res); err != nil {
					return err
				}
			} else {
				by := res.Instance
				if res.TakenFrom != "" {
					by += " (taken over from " + res.TakenFrom + ", whose lease expired)"
				}
				fmt.Fprintf(a.stdout, "replay of %s v%d by %s: %d applied, %d failed again, %d kept behind a failed letter\n",
					st.Name, res.Version, by, res.Applied, res.Failed, res.Kept)
			}
			switch {
			case r.Status == projection.StatusFailed:
				return fmt.Errorf("replay of %s failed: %s", st.Name, r.Error)
			case r.Failed > 0:
				return fmt.Errorf("%d dead letter(s) of %s failed again (first error: %s); they stay unresolved: `kastor dlq show %s`", r.Failed, st.Name, r.Error, st.Name)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait-timeout", 2*time.Minute, "how long to wait for the outcome")
	return cmd
}

// purgeResult is the document of `dlq purge -o json`.
type purgeResult struct {
	Name     string `json:"name"`
	Version  int    `json:"version"`
	Resolved int    `json:"resolved"`
}

func newDLQPurgeCmd(a *app, f *projFlags) *cobra.Command {
	var ver int
	var yes bool
	cmd := &cobra.Command{
		Use:   "purge NAME --yes",
		Short: "Mark a projection's unresolved dead letters resolved without applying them",
		Long: `purge writes a resolution marker (the one a replay writes, kastor.dlq.reason=resolved)
for every unresolved dead letter of a projection version (the serving one by default),
without applying it: the projection will never see those events (they stay in their
events topic; a rebuild would apply them again). Confirmation is required: --yes.
Readers holding aggregates (ParkAggregate) release them as soon as the registry records
the purge (projection.Projection does; a bare consumer.Reader on Reader.ReloadDeadLetters).`,
		Example: `  kastor dlq purge balances --yes
  kastor dlq purge balances --version 1 --yes -o json`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, v, err := a.dlqTarget(ctx, f, args[0], ver)
			if err != nil {
				return err
			}
			defer t.adm.Close()
			if !yes {
				letters, err := consumer.ReadDeadLetters(ctx, t.c, consumer.DLQTopic(t.ns, args[0]), args[0], v)
				if err != nil {
					return err
				}
				return fmt.Errorf("purge would mark %d unresolved dead letter(s) of %s v%d resolved without applying them: re-run with --yes", len(letters), args[0], v)
			}
			letters, err := projection.Purge(ctx, t.c, args[0], v)
			if err != nil {
				return err
			}
			// The registry keeps a record of who purged what, when it exists.
			_, _ = projection.SubmitRequest(ctx, t.c, projection.Request{Kind: projection.RequestPurge, Namespace: t.ns, Name: args[0],
				Version: v, Status: projection.StatusDone, Resolved: len(letters), By: requester()})
			res := purgeResult{Name: args[0], Version: v, Resolved: len(letters)}
			if a.output == "json" {
				return writeJSON(a.stdout, res)
			}
			_, err = fmt.Fprintf(a.stdout, "purged %s v%d: %d dead letter(s) marked resolved, not applied\n", res.Name, v, res.Resolved)
			return err
		},
	}
	cmd.Flags().IntVar(&ver, "version", 0, "projection version (default: the serving one)")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the purge")
	return cmd
}
