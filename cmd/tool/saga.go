package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kastor-dev/kastor/saga/runner"
	"github.com/kastor-dev/kastor/schema"
)

const sagaLong = `A saga type (saga.Definition.Type, such as bank.transfer) keeps its instances in three
topics, created by 'kastor topics apply' from kastor.yaml's sagas: section:

  <ns>.saga.<type>.inputs   each instance's inputs in order (routed events, outcomes
                            of the commands it sent), key instance ID
  <ns>.saga.<type>.state    each instance's latest record (version, state, pending
                            deadlines and commands, the input IDs it has seen) and one
                            checkpoint per partition: where the runner stands
  <ns>.saga.<type>.dlq      inputs the runner parked, with the reason, and instances
                            that became stuck, with why

These commands read them without the saga's code, read_committed, to their ends as of
the call. The instance records are decoded with kastor's fixed schema; each state with
its writer schema from _kastor.schemas (published by the runner), shown as JSON, or as
its type and fingerprint when that schema is not there.

An instance is active, done, stuck (its state has a "stuck" reason: an orchestration
whose compensation kept failing, saga.Progress.Stuck; the runner parked it with the
reason, and 'kastor saga retry TYPE ID' resumes it) or broken (its record does not
decode: the runner parks its inputs).

Exit codes: 0 ok, 1 error, 2 usage error.`

const sagaExample = `  kastor saga list bank.transfer -f examples/kastor.yaml
  kastor saga show bank.transfer t-42 -o json | jq '.instance.deadlines'
  kastor saga stuck bank.transfer
  kastor saga retry bank.transfer t-42`

func newSagaCmd(a *app) *cobra.Command {
	f := &projFlags{}
	cmd := &cobra.Command{
		Use:     "saga",
		Short:   "Inspect saga instances, their inputs and parked inputs; retry parked inputs, resume stuck instances",
		Long:    sagaLong,
		Example: sagaExample,
		Args:    subcommandArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f.register(cmd)
	cmd.AddCommand(newSagaListCmd(a, f), newSagaShowCmd(a, f), newSagaStuckCmd(a, f), newSagaRetryCmd(a, f))
	return cmd
}

func sagaArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			want := "the saga TYPE"
			if n == 2 {
				want = "the saga TYPE and an instance ID"
			}
			return usagef(cmd, "want %s, got %d argument(s)", want, len(args))
		}
		return nil
	}
}

// sagaTarget connects for saga type typ. With a topic file (no --namespace), a type the
// file does not declare is an error naming the declared ones.
func (a *app) sagaTarget(ctx context.Context, f *projFlags, typ string) (*target, error) {
	if f.namespace == "" {
		cfg, err := loadConfig(f.file)
		if err != nil {
			return nil, err
		}
		var declared []string
		for _, s := range cfg.Sagas {
			declared = append(declared, s.Type)
		}
		if !slices.Contains(declared, typ) {
			list := "none"
			if len(declared) > 0 {
				list = strings.Join(declared, ", ")
			}
			return nil, fmt.Errorf("saga type %q is not in %s (its sagas: %s); add `sagas: [{type: %s}]` and run `kastor topics apply`, or name the namespace with --namespace",
				typ, f.file, list, typ)
		}
	}
	return a.connectTarget(ctx, f)
}

// sagaInstance is one instance as the saga commands print it.
type sagaInstance struct {
	ID        string `json:"id"`
	Status    string `json:"status"` // active, done, stuck, broken
	Version   int64  `json:"version"`
	Partition int32  `json:"partition"`
	// Offset and Updated locate and date the instance's latest record.
	Offset  int64     `json:"offset"`
	Updated time.Time `json:"updated"`
	// StateType and StateFingerprint name the state's writer schema; State is the state as
	// JSON when that schema is in _kastor.schemas, StateError why not.
	StateType        string          `json:"stateType,omitempty"`
	StateFingerprint string          `json:"stateFingerprint,omitempty"`
	State            json.RawMessage `json:"state,omitempty"`
	StateError       string          `json:"stateError,omitempty"`
	// Reason is why a stuck or broken instance is.
	Reason    string         `json:"reason,omitempty"`
	Deadlines []sagaDeadline `json:"deadlines"`
	Pending   []sagaCommand  `json:"pending"`
	Seen      []string       `json:"seen"`
	// Parked counts the instance's parked inputs not resolved.
	Parked int `json:"parked"`
}

// sagaCommand is a command sent whose outcome is not applied yet.
type sagaCommand struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	AggregateType string     `json:"aggregateType"`
	AggregateID   string     `json:"aggregateId"`
	Deadline      *time.Time `json:"deadline,omitempty"`
}

type sagaDeadline struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

const (
	statusActive = "active"
	statusDone   = "done"
	statusStuck  = "stuck"
	statusBroken = "broken"
)

// describeInstance turns a stored instance into what is printed, its state decoded with
// reg (nil: schemas not loaded, loadErr says why).
func describeInstance(si runner.StoredInstance, reg *schema.Registry, loadErr error) sagaInstance {
	out := sagaInstance{ID: si.ID, Version: si.Version, Partition: si.Partition, Offset: si.Offset, Updated: si.Timestamp.UTC(),
		Deadlines: []sagaDeadline{}, Pending: []sagaCommand{}, Seen: si.Seen}
	for _, p := range si.Pending {
		c := sagaCommand{ID: p.ID, Name: p.Name, AggregateType: p.AggregateType, AggregateID: p.AggregateID}
		if !p.Deadline.IsZero() {
			d := p.Deadline.UTC()
			c.Deadline = &d
		}
		out.Pending = append(out.Pending, c)
	}
	if out.Seen == nil {
		out.Seen = []string{}
	}
	if si.Err != nil {
		out.Status, out.Reason = statusBroken, si.Err.Error()
		return out
	}
	out.StateType, out.StateFingerprint = si.State.Type, fmt.Sprintf("%016x", si.State.Fingerprint)
	for name, at := range si.Deadlines {
		out.Deadlines = append(out.Deadlines, sagaDeadline{Name: name, At: at.UTC()})
	}
	sort.Slice(out.Deadlines, func(i, j int) bool { return out.Deadlines[i].At.Before(out.Deadlines[j].At) })
	switch {
	case reg == nil:
		out.StateError = "schemas not loaded: " + loadErr.Error()
	default:
		st, err := runner.StateJSON(reg, si.State)
		if err != nil {
			out.StateError = err.Error()
		} else {
			out.State = st
		}
	}
	switch {
	case si.Done:
		out.Status = statusDone
	case runner.StuckReason(out.State) != "":
		out.Status, out.Reason = statusStuck, runner.StuckReason(out.State)
	default:
		out.Status = statusActive
	}
	return out
}

// loadSchemas reads _kastor.schemas; nil and the error when it cannot (the states are
// then shown by type and fingerprint).
func (a *app) loadSchemas(ctx context.Context, t *target) (*schema.Registry, error) {
	reg := schema.NewRegistry()
	lctx, cancel := context.WithTimeout(ctx, 4*a.timeout)
	defer cancel()
	if err := schema.Load(lctx, t.c.Client(), reg); err != nil {
		return nil, err
	}
	return reg, nil
}

// sagaList is the document of `saga list -o json`.
type sagaList struct {
	Namespace  string                   `json:"namespace"`
	Saga       string                   `json:"saga"`
	Topics     runner.Topics            `json:"topics"`
	Summary    map[string]int           `json:"summary"` // by status
	Lag        int64                    `json:"lag"`     // inputs not applied, all partitions
	Partitions []runner.PartitionStatus `json:"partitions"`
	Instances  []sagaInstance           `json:"instances"`
}

func newSagaListCmd(a *app, f *projFlags) *cobra.Command {
	var status string
	cmd := &cobra.Command{
		Use:   "list TYPE",
		Short: "Instances of a saga type by status (active, done, stuck, broken), with the runner's lag",
		Long: `list reads the saga type's state topic to its end (read_committed) and prints each
instance's latest record: status, version, pending deadlines and commands, parked inputs
not resolved, and the counts by status. The runner's lag is the offsets of the inputs
topic it has not applied yet (its checkpoint in the state topic against each inputs
partition's last stable offset).

With -o json each instance carries its state decoded to JSON with the writer schema
from _kastor.schemas (or stateError when that schema is not there).`,
		Example: `  kastor saga list bank.transfer -f examples/kastor.yaml
  kastor saga list bank.transfer --status active
  kastor saga list bank.transfer -o json | jq '.instances[] | select(.status=="stuck") | .id'`,
		Args: sagaArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch status {
			case "", statusActive, statusDone, statusStuck, statusBroken:
			default:
				return usagef(cmd, "invalid --status %q: want active, done, stuck or broken", status)
			}
			ctx := cmd.Context()
			typ := args[0]
			t, err := a.sagaTarget(ctx, f, typ)
			if err != nil {
				return err
			}
			defer t.adm.Close()
			insts, err := runner.ReadInstances(ctx, t.c, typ)
			if err != nil {
				return err
			}
			parked, err := runner.ReadParked(ctx, t.c, typ)
			if err != nil {
				return err
			}
			open := openParked(parked)
			reg, loadErr := a.loadSchemas(ctx, t)
			doc := sagaList{Namespace: t.ns, Saga: typ, Topics: insts.Topics, Partitions: insts.Partitions, Instances: []sagaInstance{},
				Summary: map[string]int{statusActive: 0, statusDone: 0, statusStuck: 0, statusBroken: 0}}
			for _, p := range insts.Partitions {
				doc.Lag += p.Lag
			}
			for _, si := range insts.Instances {
				d := describeInstance(si, reg, loadErr)
				d.Parked = open[d.ID]
				doc.Summary[d.Status]++
				if status == "" || d.Status == status {
					doc.Instances = append(doc.Instances, d)
				}
			}
			if a.output == "json" {
				return writeJSON(a.stdout, doc)
			}
			fmt.Fprintf(a.stdout, "saga %s in %s: %d active, %d done, %d stuck, %d broken; inputs not applied: %d\n", typ, t.ns,
				doc.Summary[statusActive], doc.Summary[statusDone], doc.Summary[statusStuck], doc.Summary[statusBroken], doc.Lag)
			if len(doc.Instances) == 0 {
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STATUS\tID\tVERSION\tPARTITION\tDEADLINES\tPENDING\tPARKED\tUPDATED\tNOTE")
			for _, d := range doc.Instances {
				note := d.Reason
				if note == "" && len(d.Deadlines) > 0 {
					note = fmt.Sprintf("next deadline %s at %s", d.Deadlines[0].Name, d.Deadlines[0].At.Format(time.RFC3339))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", d.Status, d.ID, d.Version, d.Partition, len(d.Deadlines),
					len(d.Pending), d.Parked, d.Updated.Format(time.RFC3339), note)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only instances with this status: active, done, stuck or broken")
	return cmd
}

// openParked counts the unresolved parked inputs and deadlines by instance.
func openParked(ps []runner.Parked) map[string]int {
	out := map[string]int{}
	for _, p := range ps {
		if !p.Resolved && p.Instance != "" {
			out[p.Instance]++
		}
	}
	return out
}

// sagaInput is one input of an instance in `saga show`.
type sagaInput struct {
	Offset    int64     `json:"offset"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	ID        string    `json:"id,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Applied   string    `json:"applied"` // applied, parked, retried, not yet, unknown
	ParkedFor string    `json:"parkedFor,omitempty"`
}

// parkedOut is a parked record as the saga commands print it.
type parkedOut struct {
	Kind       string     `json:"kind"` // input, deadline, event
	Reason     string     `json:"reason"`
	Error      string     `json:"error,omitempty"`
	Instance   string     `json:"instance,omitempty"`
	Key        string     `json:"key"`
	Deadline   string     `json:"deadline,omitempty"`
	DeadlineAt *time.Time `json:"deadlineAt,omitempty"`
	// Version is, for a stuck instance (kind stuck), its version that made it stuck.
	Version  int64     `json:"version,omitempty"`
	Origin   string    `json:"origin"` // topic/partition@offset
	Time     time.Time `json:"time,omitzero"`
	Resolved bool      `json:"resolved"`
	DLQ      string    `json:"dlq"` // partition/offset in the dead-letter topic
}

func describeParked(p runner.Parked) parkedOut {
	o := parkedOut{Kind: p.Kind, Reason: p.Reason, Error: p.Err, Instance: p.Instance, Key: string(p.Key), Deadline: p.Deadline,
		Origin: fmt.Sprintf("%s/%d@%d", p.Origin, p.OriginPartition, p.OriginOffset), Time: p.Timestamp, Resolved: p.Resolved,
		DLQ: fmt.Sprintf("%d/%d", p.Record.Partition, p.Record.Offset)}
	if p.Kind == runner.ParkedStuck {
		o.Version = p.Version
		o.Origin = fmt.Sprintf("%s/%d (version %d)", p.Origin, p.OriginPartition, p.Version)
	}
	if p.Kind == runner.ParkedDeadline {
		o.Origin = fmt.Sprintf("%s/%d (deadline)", p.Origin, p.OriginPartition)
		if !p.DeadlineAt.IsZero() {
			at := p.DeadlineAt.UTC()
			o.DeadlineAt = &at
		}
	}
	return o
}

// sagaShow is the document of `saga show -o json`.
type sagaShow struct {
	Namespace string                 `json:"namespace"`
	Saga      string                 `json:"saga"`
	Instance  *sagaInstance          `json:"instance"` // null: no record
	Partition runner.PartitionStatus `json:"partition"`
	Inputs    []sagaInput            `json:"inputs"`
	Parked    []parkedOut            `json:"parked"`
}

func newSagaShowCmd(a *app, f *projFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show TYPE ID",
		Short: "One instance: its record, the history of its inputs and its parked inputs",
		Long: `show prints one instance of a saga type:

  - its latest record on the state topic: status, version, state (decoded to JSON with
    the writer schema from _kastor.schemas), pending deadlines with their times,
    pending commands (sent, outcome not applied yet) and the input IDs it has seen;
  - the history of its inputs, read from its partition of the inputs topic: kind (event
    or outcome), input ID, offset and time, and whether the runner applied it (its ID
    is among the seen ones), parked it, or has not read it yet. The inputs topic has a
    finite retention (7 days by default), so old inputs may be gone;
  - its parked inputs on the dead-letter topic, with the reason, resolved or not.

An instance with no record (its first input parked, or a wrong ID) is shown with its
inputs and parked inputs alone.`,
		Example: `  kastor saga show bank.transfer t-42 -f examples/kastor.yaml
  kastor saga show bank.transfer t-42 -o json | jq '.inputs[] | select(.applied != "applied")'`,
		Args: sagaArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			typ, id := args[0], args[1]
			t, err := a.sagaTarget(ctx, f, typ)
			if err != nil {
				return err
			}
			defer t.adm.Close()
			si, ps, found, err := runner.ReadInstance(ctx, t.c, typ, id)
			if err != nil {
				return err
			}
			inputs, err := runner.ReadInputs(ctx, t.c, typ, id)
			if err != nil {
				return err
			}
			parked, err := runner.ReadParked(ctx, t.c, typ)
			if err != nil {
				return err
			}
			doc := sagaShow{Namespace: t.ns, Saga: typ, Partition: ps, Inputs: []sagaInput{}, Parked: []parkedOut{}}
			byOffset := map[int64]runner.Parked{}
			open := 0
			for _, p := range parked {
				if p.Instance != id {
					continue
				}
				doc.Parked = append(doc.Parked, describeParked(p))
				if p.Kind == runner.ParkedInput {
					byOffset[p.OriginOffset] = p
				}
				if !p.Resolved {
					open++
				}
			}
			var seen []string
			if found {
				reg, loadErr := a.loadSchemas(ctx, t)
				d := describeInstance(si, reg, loadErr)
				d.Parked = open
				doc.Instance = &d
				seen = si.Seen
			}
			for _, in := range inputs {
				doc.Inputs = append(doc.Inputs, describeInput(in, seen, ps, byOffset))
			}
			if a.output == "json" {
				return writeJSON(a.stdout, doc)
			}
			return printSagaShow(a.stdout, &doc, id)
		},
	}
}

func describeInput(in runner.StoredInput, seen []string, ps runner.PartitionStatus, parked map[int64]runner.Parked) sagaInput {
	o := sagaInput{Offset: in.Offset, Time: in.Timestamp.UTC(), Kind: in.Kind, ID: in.ID}
	switch {
	case in.Event != nil:
		o.Detail = fmt.Sprintf("%s of %s %s v%d", in.Event.Type, in.Event.AggregateType, in.Event.AggregateID, in.Event.Version)
	case in.Outcome != nil:
		o.Detail = string(in.Outcome.Status)
		if in.Outcome.Message != "" {
			o.Detail += ": " + in.Outcome.Message
		}
	case in.Resume != nil:
		o.Detail = fmt.Sprintf("resume of version %d (stuck: %s)", in.Resume.Version, in.Resume.Reason)
	default:
		o.Detail = in.Err
	}
	p, isParked := parked[in.Offset]
	switch {
	// Parked first: once retried, the input's ID is seen, applied from its copy.
	case isParked && p.Resolved:
		o.Applied, o.ParkedFor = "retried", p.Reason
	case isParked:
		o.Applied, o.ParkedFor = "parked", p.Reason
	case in.ID != "" && slices.Contains(seen, in.ID):
		o.Applied = "applied"
	case in.Offset >= ps.Applied:
		o.Applied = "not yet"
	default:
		// Read by the runner and not among the IDs the record remembers: ignored (a
		// duplicate, an instance already done) or older than the window of seen IDs.
		o.Applied = "ignored"
	}
	return o
}

func printSagaShow(w io.Writer, doc *sagaShow, id string) error {
	ps := doc.Partition
	if d := doc.Instance; d == nil {
		fmt.Fprintf(w, "instance %s of saga %s: no record on the state topic\n", id, doc.Saga)
	} else {
		fmt.Fprintf(w, "instance %s of saga %s: %s, version %d, updated %s (state partition %d, offset %d)\n",
			d.ID, doc.Saga, d.Status, d.Version, d.Updated.Format(time.RFC3339), d.Partition, d.Offset)
		if d.Reason != "" {
			fmt.Fprintf(w, "reason: %s\n", d.Reason)
		}
		if d.State != nil {
			fmt.Fprintf(w, "state (%s): %s\n", d.StateType, d.State)
		} else if d.StateType != "" {
			fmt.Fprintf(w, "state: type %s, fingerprint %s (%s)\n", d.StateType, d.StateFingerprint, d.StateError)
		}
		for _, dl := range d.Deadlines {
			fmt.Fprintf(w, "deadline %s at %s\n", dl.Name, dl.At.Format(time.RFC3339Nano))
		}
		for _, p := range d.Pending {
			dl := ""
			if p.Deadline != nil {
				dl = ", deadline " + p.Deadline.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "pending command %s (%s to %s %s%s)\n", p.ID, p.Name, p.AggregateType, p.AggregateID, dl)
		}
		fmt.Fprintf(w, "seen inputs: %d (last: %s)\n", len(d.Seen), lastOf(d.Seen))
	}
	fmt.Fprintf(w, "inputs partition %d: runner at offset %d of %d (lag %d)\n", ps.Partition, ps.Applied, ps.InputsEnd, ps.Lag)
	if len(doc.Inputs) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "OFFSET\tTIME\tKIND\tINPUT ID\tAPPLIED\tDETAIL")
		for _, in := range doc.Inputs {
			applied := in.Applied
			if in.ParkedFor != "" {
				applied += " (" + in.ParkedFor + ")"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", in.Offset, in.Time.Format(time.RFC3339), in.Kind, orDash(in.ID), applied, in.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(doc.Parked) > 0 {
		fmt.Fprintln(w)
		return printParked(w, doc.Parked)
	}
	return nil
}

func lastOf(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return s[len(s)-1]
}

func printParked(w io.Writer, ps []parkedOut) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARKED\tREASON\tKEY\tORIGIN\tRESOLVED\tERROR")
	for _, p := range ps {
		kind := p.Kind
		if p.Deadline != "" {
			kind += " " + p.Deadline
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", kind, p.Reason, p.Key, p.Origin, p.Resolved, p.Error)
	}
	return tw.Flush()
}

// sagaStuck is the document of `saga stuck -o json`.
type sagaStuck struct {
	Namespace string         `json:"namespace"`
	Saga      string         `json:"saga"`
	Instances []sagaInstance `json:"instances"` // stuck or broken
	Parked    []parkedOut    `json:"parked"`    // not resolved
}

func newSagaStuckCmd(a *app, f *projFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "stuck TYPE",
		Short: "What waits for an operator: stuck and broken instances, parked inputs not resolved",
		Long: `stuck prints what of a saga type waits for an operator:

  - stuck instances (an orchestration whose compensation kept failing after its
    retries: saga.Progress.Stuck) and broken ones (a record that does not decode), with
    the reason;
  - the parked records of its dead-letter topic that no retry resolved: inputs the
    runner parked (undecodable, rejected by React, an outcome of an unknown command,
    an input of a broken instance), deadlines whose React failed (the same transaction
    removed them from the instance's record: they fire once), events the router could
    not route (key: the event's aggregate ID), and the letters of instances that became
    stuck (kind stuck: the runner writes one with the reason in the transaction of the
    version that made the instance stuck).

'kastor saga retry TYPE ID' re-submits an instance's parked inputs, and resumes it
when it is stuck, once the cause is fixed (a new version of the application deployed,
a broken record replaced, an account reopened).`,
		Example: `  kastor saga stuck bank.transfer -f examples/kastor.yaml
  kastor saga stuck bank.transfer -o json | jq '.parked[] | {instance, reason, error}'`,
		Args: sagaArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			typ := args[0]
			t, err := a.sagaTarget(ctx, f, typ)
			if err != nil {
				return err
			}
			defer t.adm.Close()
			insts, err := runner.ReadInstances(ctx, t.c, typ)
			if err != nil {
				return err
			}
			parked, err := runner.ReadParked(ctx, t.c, typ)
			if err != nil {
				return err
			}
			open := openParked(parked)
			reg, loadErr := a.loadSchemas(ctx, t)
			doc := sagaStuck{Namespace: t.ns, Saga: typ, Instances: []sagaInstance{}, Parked: []parkedOut{}}
			for _, si := range insts.Instances {
				d := describeInstance(si, reg, loadErr)
				if d.Status == statusStuck || d.Status == statusBroken {
					d.Parked = open[d.ID]
					doc.Instances = append(doc.Instances, d)
				}
			}
			for _, p := range parked {
				if !p.Resolved {
					doc.Parked = append(doc.Parked, describeParked(p))
				}
			}
			if a.output == "json" {
				return writeJSON(a.stdout, doc)
			}
			if len(doc.Instances) == 0 && len(doc.Parked) == 0 {
				_, err := fmt.Fprintf(a.stdout, "saga %s in %s: nothing stuck, broken or parked\n", typ, t.ns)
				return err
			}
			if len(doc.Instances) > 0 {
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "STATUS\tID\tVERSION\tPARKED\tREASON")
				for _, d := range doc.Instances {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", d.Status, d.ID, d.Version, d.Parked, d.Reason)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if len(doc.Parked) > 0 {
				if len(doc.Instances) > 0 {
					fmt.Fprintln(a.stdout)
				}
				return printParked(a.stdout, doc.Parked)
			}
			return nil
		},
	}
}

// resumeOut is a stuck instance in `saga retry`'s answer: resumed (Resubmitted is its
// resume input), or pending (Skipped says where the earlier resume is).
func resumeOut(ns, typ string, r runner.Resumed) retryOut {
	o := retryOut{parkedOut: parkedOut{Kind: runner.ParkedStuck, Reason: runner.ReasonStuck, Error: r.Reason, Instance: r.Instance, Key: r.Instance,
		Version: r.Version, Origin: fmt.Sprintf("%s/%d (version %d)", runner.TopicsOf(ns, typ).State, r.Partition, r.Version), Resolved: true}}
	if len(r.Resolved) > 0 {
		rec := r.Resolved[0].Record
		o.DLQ = fmt.Sprintf("%d/%d", rec.Partition, rec.Offset)
		o.Time = r.Resolved[0].Timestamp
	}
	if r.Pending {
		o.Skipped = fmt.Sprintf("a resume of version %d is at inputs %d/%d already, not applied yet", r.Version, r.Partition, r.Offset)
	} else {
		o.Resubmitted = fmt.Sprintf("%d/%d", r.Partition, r.Offset)
	}
	return o
}

// retryOut is one parked record in `saga retry`'s answer.
type retryOut struct {
	parkedOut
	// Resubmitted is where the input was written again (partition/offset of the inputs
	// topic); empty when it was not.
	Resubmitted string `json:"resubmitted,omitempty"`
	Skipped     string `json:"skipped,omitempty"`
}

func newSagaRetryCmd(a *app, f *projFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "retry TYPE ID",
		Short: "Re-submit an instance's parked inputs and resume it when it is stuck; mark them resolved",
		Long: `retry re-submits the parked inputs of one instance that no earlier retry resolved:
each is written again to the saga's inputs topic as it was parked (key, value, headers),
and a resolution marker (kastor.dlq.reason=resolved, as 'kastor dlq replay' and 'dlq
purge' write for projections) is appended to the dead-letter topic, all in one Kafka
transaction: both or neither. The running saga runner then applies them as any input.

It is safe to run twice: an input whose ID the instance has seen already (it was
applied meanwhile) is ignored by saga.Apply, and a retry reads the markers of earlier
ones. It does not fix the cause: an input that fails again (the same bug, the record
still broken) is parked again, as a new parked record; check with 'kastor saga show'.
Deploy the fix first (a new version of the application, a broken record replaced and
the runner restarted).

Not re-submitted: a parked deadline (a deadline is no input, and the transaction that
parked it removed it from the instance's record, so it fires once: the saga's code must
handle what it meant on the instance's next input), and events the router could not
route (keyed by aggregate: routing them needs the saga's Correlate, which the tool does
not have).

A stuck instance (its state has a "stuck" reason: an orchestration whose compensation
kept failing) is resumed: a resume input (kastor.SagaResume, the version seen stuck)
is written to the inputs topic and the instance's stuck letter marked resolved, in one
transaction. The runner applies it once per stuck version (input ID resume/VERSION):
an orchestration sends the failing compensation again, as a new attempt with a new
command ID, and is stuck again after its retries if the cause is not fixed. Running it
again before the runner applied the first resume writes nothing (the resume is shown
as pending); once the instance went on, it is not stuck and nothing is resumed. An
instance neither stuck nor with parked inputs is reported as such, exit 0.`,
		Example: `  kastor saga retry bank.transfer t-42 -f examples/kastor.yaml
  kastor saga retry bank.transfer t-42 -o json | jq '.[].resubmitted'
  kastor saga retry bank.transfer t-42 -o json | jq '.[] | select(.kind=="stuck")'`,
		Args: sagaArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			typ, id := args[0], args[1]
			t, err := a.sagaTarget(ctx, f, typ)
			if err != nil {
				return err
			}
			defer t.adm.Close()
			res, err := runner.RetryParked(ctx, t.c, typ, id)
			if err != nil {
				return err
			}
			resumed, rerr := runner.Resume(ctx, t.c, typ, id)
			if rerr != nil && !errors.Is(rerr, runner.ErrNotStuck) {
				return rerr
			}
			out := []retryOut{}
			n := 0
			for _, r := range res {
				o := retryOut{parkedOut: describeParked(r.Parked), Skipped: r.Skipped}
				if r.Offset >= 0 {
					o.Resubmitted = fmt.Sprintf("%d/%d", r.Partition, r.Offset)
					o.Resolved = true
					n++
				}
				out = append(out, o)
			}
			if rerr == nil {
				out = append(out, resumeOut(t.ns, typ, resumed))
			}
			if a.output == "json" {
				return writeJSON(a.stdout, out)
			}
			if len(out) == 0 {
				_, err := fmt.Fprintf(a.stdout, "instance %s of saga %s has no parked input to retry and nothing to resume: %v\n", id, typ, rerr)
				return err
			}
			for _, o := range out {
				switch {
				case o.Kind == runner.ParkedStuck && o.Resubmitted != "":
					fmt.Fprintf(a.stdout, "resumed stuck instance %s (version %d: %s) with a resume input at inputs %s; the runner sends what failed again\n",
						id, o.Version, o.Error, o.Resubmitted)
					continue
				case o.Kind == runner.ParkedStuck:
					fmt.Fprintf(a.stdout, "not resumed again: %s\n", o.Skipped)
					continue
				}
				if o.Resubmitted != "" {
					fmt.Fprintf(a.stdout, "re-submitted %s (parked: %s) at inputs %s\n", o.Origin, o.Reason, o.Resubmitted)
				} else {
					fmt.Fprintf(a.stdout, "skipped %s %s: %s\n", o.Kind, o.Deadline, o.Skipped)
				}
			}
			if len(res) == 0 {
				_, err = fmt.Fprintf(a.stdout, "see `kastor saga show %s %s`\n", typ, id)
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%d input(s) re-submitted to %s and marked resolved; the runner applies them (see `kastor saga show %s %s`)\n",
				n, runner.TopicsOf(t.ns, typ).Inputs, typ, id)
			return err
		},
	}
}
