package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	ks "github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

func newAggregateCmd(a *app) *cobra.Command {
	var file, namespace string
	cmd := &cobra.Command{
		Use:   "aggregate",
		Short: "Inspect aggregates in the event store",
		Args:  subcommandArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVarP(&file, "file", "f", topics.DefaultFile, "topic file (gives the namespace and the brokers)")
	cmd.PersistentFlags().StringVar(&namespace, "namespace", "", "namespace of the topics (default: the topic file's)")
	events := &cobra.Command{
		Use:   "events TYPE ID",
		Short: "Print an aggregate's events, decoded from Avro with the schemas in _kastor.schemas",
		Long: `events prints the events of one aggregate in order, decoded to JSON without any
application code: each event's writer schema is found by the fingerprint in its headers,
in the _kastor.schemas topic that services publish their schemas to.

It reads only the aggregate's partition of <ns>.<TYPE>.events (the murmur2 partition of
its ID), with read_committed isolation: aborted writes are not shown.`,
		Example: `  kastor aggregate events bank.account acct-alice -f examples/kastor.yaml
  kastor aggregate events bank.account acct-alice --namespace demo -o json | jq '.[].event'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef(cmd, "want TYPE and ID, got %d argument(s)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg *topics.Config
			if namespace == "" {
				c, err := loadConfig(file)
				if err != nil {
					return err
				}
				cfg, namespace = c, c.Namespace
			}
			evs, err := a.aggregateEvents(cmd.Context(), a.resolveBrokers(cfg), namespace, args[0], args[1])
			if err != nil {
				return err
			}
			return printEvents(a, evs, args[1])
		},
	}
	schedules := &cobra.Command{
		Use:   "schedules TYPE ID",
		Short: "Print an aggregate's pending scheduled commands, decoded with the schemas in _kastor.schemas",
		Long: `schedules prints the scheduled commands of one aggregate that have neither fired nor
been cancelled (Sender.Schedule; decision 43), earliest first, each command decoded to
JSON without any application code.

It reads only the aggregate's partition of <ns>.<TYPE>.schedules, read_committed, and keeps
each schedule's last record: a fired or cancelled schedule has a tombstone.`,
		Example: `  kastor aggregate schedules bank.account acct-alice -f examples/kastor.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef(cmd, "want TYPE and ID, got %d argument(s)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg *topics.Config
			if namespace == "" {
				c, err := loadConfig(file)
				if err != nil {
					return err
				}
				cfg, namespace = c, c.Namespace
			}
			ss, err := a.aggregateSchedules(cmd.Context(), a.resolveBrokers(cfg), namespace, args[0], args[1])
			if err != nil {
				return err
			}
			return printSchedules(a, ss, args[1])
		},
	}
	cmd.AddCommand(events, schedules)
	return cmd
}

// pendingSchedule is one pending scheduled command, as printed.
type pendingSchedule struct {
	ScheduleID    string          `json:"scheduleId"`
	At            time.Time       `json:"at"`
	Type          string          `json:"type"`
	Partition     int32           `json:"partition"`
	Offset        int64           `json:"offset"`
	CorrelationID string          `json:"correlationId,omitempty"`
	Command       json.RawMessage `json:"command"`
}

func (a *app) aggregateSchedules(ctx context.Context, brokers []string, ns, aggType, id string) ([]pendingSchedule, error) {
	topic := topics.TopicName(ns, aggType, topics.RoleSchedules)
	cl, reg, p, err := a.aggregatePartition(ctx, brokers, ns, aggType, id, topic, "`kastor topics apply` creates the schedules topic")
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	prefix := id + "\x00"
	latest := map[string]*kgo.Record{}
	var order []string
	_, err = partition.ReadToEnd(ctx, cl, topic, p, 0, func(r *kgo.Record) error {
		key := string(r.Key)
		if !strings.HasPrefix(key, prefix) || strings.IndexByte(key[len(prefix):], 0) >= 0 {
			return nil
		}
		if _, ok := latest[key]; !ok {
			order = append(order, key)
		}
		latest[key] = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []pendingSchedule
	for _, key := range order {
		r := latest[key]
		if r.Value == nil {
			continue // fired or cancelled
		}
		c, err := wire.ParseCommand(r.Headers)
		if err == nil && (c.Type == "" || c.Fingerprint == 0 || c.ScheduleAt.IsZero()) {
			err = fmt.Errorf("no %s, %s or %s header: not a kastor scheduled command", ks.HeaderType, ks.HeaderSchema, wire.HeaderScheduleAt)
		}
		if err != nil {
			return nil, &ks.UndecodableError{What: "scheduled command", Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		native, s, err := reg.DecodeNative(schema.Fingerprint(c.Fingerprint), r.Value, schema.DefaultLimits)
		if err != nil {
			return nil, &ks.UndecodableError{What: "scheduled command", Type: c.Type, Fingerprint: c.Fingerprint, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		text, err := s.Codec().TextualFromNative(nil, native)
		if err != nil {
			return nil, err
		}
		out = append(out, pendingSchedule{ScheduleID: key[len(prefix):], At: c.ScheduleAt.UTC(), Type: c.Type, Partition: r.Partition, Offset: r.Offset,
			CorrelationID: c.CorrelationID, Command: text})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

func printSchedules(a *app, ss []pendingSchedule, id string) error {
	if a.output == "json" {
		if ss == nil {
			ss = []pendingSchedule{}
		}
		return writeJSON(a.stdout, ss)
	}
	if len(ss) == 0 {
		fmt.Fprintf(a.stderr, "no pending scheduled commands for %q\n", id)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCHEDULE\tAT\tTYPE\tOFFSET\tCOMMAND")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\n", s.ScheduleID, s.At.Format(time.RFC3339Nano), s.Type, s.Partition, s.Offset, s.Command)
	}
	return tw.Flush()
}

// storedEvent is one decoded event, as printed.
type storedEvent struct {
	Version       int64     `json:"version"`
	Type          string    `json:"type"`
	Partition     int32     `json:"partition"`
	Offset        int64     `json:"offset"`
	Timestamp     time.Time `json:"timestamp"`
	CommandID     string    `json:"commandId,omitempty"`
	CorrelationID string    `json:"correlationId,omitempty"`
	Tags          []string  `json:"tags,omitempty"`
	// TraceParent is the event's W3C traceparent: search a tracing back end by its trace ID.
	TraceParent string          `json:"traceparent,omitempty"`
	Event       json.RawMessage `json:"event"`
}

func (a *app) aggregateEvents(ctx context.Context, brokers []string, ns, aggType, id string) ([]storedEvent, error) {
	topic := topics.TopicName(ns, aggType, topics.RoleEvents)
	cl, reg, p, err := a.aggregatePartition(ctx, brokers, ns, aggType, id, topic, "`kastor topics describe` lists the topics")
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []storedEvent
	_, err = partition.ReadToEnd(ctx, cl, topic, p, 0, func(r *kgo.Record) error {
		if string(r.Key) != id {
			return nil
		}
		m, err := wire.ParseHeaders(r.Headers)
		if err == nil && (m.Type == "" || m.Fingerprint == 0) {
			err = fmt.Errorf("no %s and %s headers: not a kastor event (another producer wrote it to the events topic; "+
				"a gateway refuses this shard's commands as UNAVAILABLE while it is there)", ks.HeaderType, ks.HeaderSchema)
		}
		if err != nil {
			return &ks.UndecodableError{What: "event", Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		native, s, err := reg.DecodeNative(schema.Fingerprint(m.Fingerprint), r.Value, schema.DefaultLimits)
		if err != nil {
			return &ks.UndecodableError{What: "event", Type: m.Type, Fingerprint: m.Fingerprint, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		text, err := s.Codec().TextualFromNative(nil, native)
		if err != nil {
			return err
		}
		out = append(out, storedEvent{Version: m.Version, Type: m.Type, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC(),
			CommandID: m.CommandID, CorrelationID: m.CorrelationID, Tags: m.Tags, TraceParent: m.Trace.TraceParent(), Event: text})
		return nil
	})
	return out, err
}

func printEvents(a *app, evs []storedEvent, id string) error {
	if a.output == "json" {
		if evs == nil {
			evs = []storedEvent{}
		}
		return writeJSON(a.stdout, evs)
	}
	if len(evs) == 0 {
		fmt.Fprintf(a.stderr, "no events for %q\n", id)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tTYPE\tOFFSET\tTIME\tCOMMAND\tEVENT")
	for _, e := range evs {
		fmt.Fprintf(tw, "%d\t%s\t%d/%d\t%s\t%s\t%s\n", e.Version, e.Type, e.Partition, e.Offset, e.Timestamp.Format(time.RFC3339), e.CommandID, e.Event)
	}
	return tw.Flush()
}

// aggregatePartition dials the cluster, checks that topic and _kastor.schemas exist (hint
// says how to get topic), loads the schemas, and returns the partition of topic that holds
// aggregate id's records. The caller closes the client.
func (a *app) aggregatePartition(ctx context.Context, brokers []string, ns, aggType, id, topic, hint string) (*kgo.Client, *schema.Registry, int32, error) {
	cl, err := a.dial(ctx, brokers)
	if err != nil {
		return nil, nil, 0, err
	}
	fail := func(err error) (*kgo.Client, *schema.Registry, int32, error) {
		cl.Close()
		return nil, nil, 0, err
	}
	mctx, cancel := context.WithTimeout(ctx, a.timeout)
	md, err := a.adminOf(cl).Metadata(mctx, topic, schema.Topic)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("metadata: %w", err))
	}
	for _, t := range []string{topic, schema.Topic} {
		if td, ok := md.Topics[t]; !ok || td.Err != nil {
			return fail(fmt.Errorf("topic %s does not exist (is the namespace %q and the type %q right? %s)", t, ns, aggType, hint))
		}
	}
	reg := schema.NewRegistry()
	if err := schema.Load(ctx, cl, reg); err != nil {
		return fail(err)
	}
	return cl, reg, producer.PartitionFor([]byte(id), int32(len(md.Topics[topic].Partitions))), nil
}
