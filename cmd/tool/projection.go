package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/projection"
	"github.com/kastor-dev/kastor/topics"
)

// target is where a projection or dlq command works: the namespace and the brokers,
// from --namespace or the topic file, with an admin client the caller closes.
type target struct {
	ns      string
	brokers []string
	adm     *kadm.Client
	c       *cluster.Cluster // over adm's client
}

// projFlags are the flags shared by the projection and dlq commands.
type projFlags struct{ file, namespace string }

func (f *projFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVarP(&f.file, "file", "f", topics.DefaultFile, "topic file (gives the namespace and the brokers)")
	cmd.PersistentFlags().StringVar(&f.namespace, "namespace", "", "namespace of the application (default: the topic file's)")
}

func (a *app) connectTarget(ctx context.Context, f *projFlags) (*target, error) {
	var cfg *topics.Config
	ns := f.namespace
	if ns == "" {
		c, err := loadConfig(f.file)
		if err != nil {
			return nil, err
		}
		cfg, ns = c, c.Namespace
	}
	brokers := a.resolveBrokers(cfg)
	cl, err := a.dial(ctx, brokers)
	if err != nil {
		return nil, err
	}
	c, err := cluster.New(cl, ns, cluster.Logger(a.logger()))
	if err != nil {
		cl.Close()
		return nil, err
	}
	return &target{ns: ns, brokers: brokers, adm: a.adminOf(cl), c: c}, nil
}

// registry reads the projection registry, with the command that creates it when absent.
func (a *app) registry(ctx context.Context, t *target) (*projection.Registry, error) {
	rctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	g, err := projection.ReadRegistry(rctx, t.c)
	if errors.Is(err, projection.ErrNoRegistry) {
		return nil, fmt.Errorf("the projection registry topic %s does not exist: create it with `kastor projection init`", projection.RegistryTopic)
	}
	return g, err
}

const projectionLong = `A projection is a read model fed by events topics: a consumer group per version,
<ns>.proj.<name>.v<version>, run by the application (package consumer: Reader, or
Projection for rebuilds without downtime). The application's Projection instances and
these commands share the projection registry, the compacted topic _kastor.projections:
it says which version serves, which one is being built and up to which offsets, and
carries the requests these commands make (rebuild, dead-letter replay) and their outcome.

The tool has no application code: it cannot apply events to a sink. So a rebuild or a
replay is a request executed by the application's running instances; the commands wait
for the outcome and fail when no instance runs the projection.

Exit codes: 0 ok, 1 error, 2 usage error.`

const projectionExample = `  kastor projection init                         # once per cluster: creates _kastor.projections
  kastor projection list -f kastor.yaml
  kastor projection status balances -o json
  kastor projection rebuild balances             # progress bar until the switch
  kastor projection reset balances --in-place --yes`

func newProjectionCmd(a *app) *cobra.Command {
	f := &projFlags{}
	cmd := &cobra.Command{
		Use:     "projection",
		Short:   "Inspect, rebuild and reset projections (read models fed by events)",
		Long:    projectionLong,
		Example: projectionExample,
		Args:    subcommandArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f.register(cmd)
	cmd.AddCommand(newProjectionInitCmd(a), newProjectionListCmd(a, f), newProjectionStatusCmd(a, f),
		newProjectionRebuildCmd(a, f), newProjectionResetCmd(a, f))
	return cmd
}

func nameArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef(cmd, "want the projection's NAME, got %d argument(s)", len(args))
	}
	return nil
}

func newProjectionInitCmd(a *app) *cobra.Command {
	var rf int16
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the projection registry topic " + projection.RegistryTopic + " if missing",
		Long: `init creates ` + projection.RegistryTopic + `, the projection registry shared by every
namespace: 1 partition (one total order: it is how instances agree on a switch),
cleanup.policy=compact. An existing topic is left as it is. kastor creates no topic
implicitly, so an application's Projection refuses to start without it.`,
		Example: `  kastor projection init
  kastor projection init --replication-factor 1 --brokers 127.0.0.1:9092`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			adm, err := a.admin(cmd.Context(), a.resolveBrokers(nil))
			if err != nil {
				return err
			}
			defer adm.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
			defer cancel()
			if err := projection.CreateRegistry(ctx, adm, rf); err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, map[string]any{"topic": projection.RegistryTopic, "ready": true})
			}
			_, err = fmt.Fprintf(a.stdout, "%s is ready\n", projection.RegistryTopic)
			return err
		},
	}
	cmd.Flags().Int16Var(&rf, "replication-factor", -1, "replication factor (-1: the broker default)")
	return cmd
}

// versionStatus is one version of a projection, as the brokers and the registry see it.
type versionStatus struct {
	Version    int                          `json:"version"`
	Role       string                       `json:"role"`            // serving, building, retired, unknown
	Group      string                       `json:"group,omitempty"` // none with AllPartitions
	GroupState string                       `json:"groupState,omitempty"`
	Members    []string                     `json:"members"`
	Lag        int64                        `json:"lag"`
	Partitions []consumer.PartitionProgress `json:"partitions"`
}

// projectionStatus is the document of `projection status`.
type projectionStatus struct {
	Namespace string                      `json:"namespace"`
	Name      string                      `json:"name"`
	Phase     projection.Phase            `json:"phase,omitempty"`
	Serving   int                         `json:"serving,omitempty"`
	Building  int                         `json:"building,omitempty"`
	Topics    []string                    `json:"topics"`
	Offsets   string                      `json:"offsets,omitempty"` // group or sink
	Registry  *projection.State           `json:"registry,omitempty"`
	Progress  *projection.RebuildProgress `json:"progress,omitempty"`
	Versions  []versionStatus             `json:"versions"`
}

var groupVersion = regexp.MustCompile(`\.v([0-9]+)$`)

// projectionGroups lists the consumer groups of namespace ns's projections:
// name -> versions.
func projectionGroups(ctx context.Context, adm *kadm.Client, ns string) (map[string][]int, error) {
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing consumer groups: %w", err)
	}
	out := map[string][]int{}
	prefix := ns + ".proj."
	for _, g := range groups.Groups() {
		rest, ok := strings.CutPrefix(g, prefix)
		m := groupVersion.FindStringSubmatch(rest)
		if !ok || m == nil {
			continue
		}
		v, _ := strconv.Atoi(m[1])
		name := strings.TrimSuffix(rest, m[0])
		out[name] = append(out[name], v)
	}
	for _, vs := range out {
		sort.Ints(vs)
	}
	return out, nil
}

// statusOf gathers a projection's status.
func (a *app) statusOf(ctx context.Context, t *target, g *projection.Registry, name string, groups map[string][]int) (*projectionStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	st := &projectionStatus{Namespace: t.ns, Name: name}
	versions := map[int]string{}
	if rs, ok := g.State(t.ns, name); ok {
		st.Registry, st.Phase, st.Serving, st.Building, st.Topics = &rs, rs.Phase, rs.Serving, rs.Building, rs.Topics
		st.Offsets = "group"
		if rs.SinkOffsets {
			st.Offsets = "sink"
		}
		versions[rs.Serving] = "serving"
		if rs.Building > 0 {
			versions[rs.Building] = "building"
		}
		if p, ok := g.Progress(t.ns, name); ok && p.Version == rs.Building && rs.Phase == projection.PhaseRebuilding {
			st.Progress = &p
		}
	}
	for _, v := range groups[name] {
		if _, ok := versions[v]; !ok {
			versions[v] = "unknown"
			if st.Serving > 0 && v < st.Serving {
				versions[v] = "retired"
			}
		}
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("projection %q is unknown in namespace %s: neither the registry nor the consumer groups (%s.proj.%s.v*) know it", name, t.ns, t.ns, name)
	}
	var vs []int
	var gnames []string
	for v := range versions {
		vs = append(vs, v)
		gnames = append(gnames, consumer.GroupName(t.ns, name, v))
	}
	sort.Ints(vs)
	if st.Registry != nil && st.Registry.AllPartitions {
		// Every instance reads every partition into its own model and keeps its offsets
		// there: no group to describe, and no lag that one figure could state.
		st.Offsets = "sink of each instance (all partitions, no consumer group)"
		for _, v := range vs {
			st.Versions = append(st.Versions, versionStatus{Version: v, Role: versions[v], Members: []string{}, Partitions: []consumer.PartitionProgress{}})
		}
		return st, nil
	}
	described, err := t.adm.DescribeGroups(ctx, gnames...)
	if err != nil && len(described) == 0 {
		return nil, fmt.Errorf("describing consumer groups: %w", err)
	}
	if len(st.Topics) == 0 { // no registry record: the topics the groups committed on
		set := map[string]bool{}
		for _, gname := range gnames {
			if offs, err := t.adm.FetchOffsets(ctx, gname); err == nil {
				offs.Each(func(o kadm.OffsetResponse) { set[o.Topic] = true })
			}
		}
		for tp := range set {
			st.Topics = append(st.Topics, tp)
		}
		sort.Strings(st.Topics)
	}
	for _, v := range vs {
		gname := consumer.GroupName(t.ns, name, v)
		vst := versionStatus{Version: v, Role: versions[v], Group: gname, Members: []string{}, Partitions: []consumer.PartitionProgress{}}
		if d, ok := described[gname]; ok && d.Err == nil {
			vst.GroupState = d.State
			for _, m := range d.Members {
				vst.Members = append(vst.Members, m.ClientID+"@"+strings.TrimPrefix(m.ClientHost, "/"))
			}
		}
		if len(st.Topics) > 0 {
			pr, err := consumer.GroupProgress(ctx, t.adm, gname, st.Topics...)
			if err != nil {
				return nil, err
			}
			vst.Partitions = pr.Partitions
			for _, p := range pr.Partitions {
				vst.Lag += max(p.Lag, 0)
			}
		}
		st.Versions = append(st.Versions, vst)
	}
	return st, nil
}

func newProjectionStatusCmd(a *app, f *projFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "Show a projection's versions, members and lag per partition",
		Long: `status shows, for each version of the projection (serving, building, and any
leftover group): its consumer group's members, and per partition the committed offset,
the end offset (last stable offset) and the lag. During a rebuild it also shows the
progress the application reported and the end offsets captured at the start.

Committed offsets are the group's. A sink that stores its own offsets (the "offsets"
line says sink) may be ahead of them: the reader commits after the sink.`,
		Example: `  kastor projection status balances -f kastor.yaml
  kastor projection status balances --namespace shop -o json | jq '.versions[] | {version, lag}'`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, g, groups, err := a.projectionsView(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer t.adm.Close()
			st, err := a.statusOf(cmd.Context(), t, g, args[0], groups)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, st)
			}
			return printStatus(a, st)
		},
	}
}

func printStatus(a *app, st *projectionStatus) error {
	w := a.stdout
	fmt.Fprintf(w, "projection %s (namespace %s)", st.Name, st.Namespace)
	if st.Phase != "" {
		fmt.Fprintf(w, ": %s, serving v%d", st.Phase, st.Serving)
		if st.Building > 0 {
			fmt.Fprintf(w, ", building v%d", st.Building)
		}
		fmt.Fprintf(w, "; offsets owned by the %s", st.Offsets)
	} else {
		fmt.Fprint(w, ": not in the registry (no Projection has run it)")
	}
	fmt.Fprintln(w)
	if st.Progress != nil {
		fmt.Fprintf(w, "rebuild: %d/%d offsets (reported %s by %s)\n", st.Progress.Done, st.Progress.Total,
			st.Progress.At.Format(time.RFC3339), st.Progress.Instance)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tROLE\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG")
	for _, v := range st.Versions {
		for _, p := range v.Partitions {
			fmt.Fprintf(tw, "v%d\t%s\t%s\t%d\t%s\t%s\t%s\n", v.Version, v.Role, p.Topic, p.Partition, offset(p.Committed), offset(p.End), offset(p.Lag))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range st.Versions {
		if v.Group == "" {
			fmt.Fprintf(w, "v%d: no consumer group; each instance applies every partition and keeps its offsets in its sink\n", v.Version)
			continue
		}
		members := "no live members"
		if len(v.Members) > 0 {
			members = fmt.Sprintf("%d member(s): %s", len(v.Members), strings.Join(v.Members, ", "))
		}
		fmt.Fprintf(w, "v%d group %s: %s; total lag %d\n", v.Version, v.Group, members, v.Lag)
	}
	return nil
}

func offset(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

// listRow is one projection of `projection list`.
type listRow struct {
	Name     string           `json:"name"`
	Phase    projection.Phase `json:"phase,omitempty"`
	Serving  int              `json:"serving,omitempty"`
	Building int              `json:"building,omitempty"`
	Versions []int            `json:"versions"`
	Members  int              `json:"members"`
	Lag      int64            `json:"lag"`
}

func newProjectionListCmd(a *app, f *projFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the projections of a namespace: versions, members, lag",
		Long: `list shows every projection the registry or the consumer groups (<ns>.proj.*.v*)
know in the namespace: its phase, serving and building versions, the live members of
its groups, and the total lag of its serving version (of its latest group when the
registry does not know it).`,
		Example: `  kastor projection list -f kastor.yaml
  kastor projection list --namespace shop -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, g, groups, err := a.projectionsView(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer t.adm.Close()
			names := map[string]bool{}
			for _, s := range g.States(t.ns) {
				names[s.Name] = true
			}
			for n := range groups {
				names[n] = true
			}
			rows := []listRow{}
			for _, n := range sortedKeys(names) {
				st, err := a.statusOf(cmd.Context(), t, g, n, groups)
				if err != nil {
					return err
				}
				row := listRow{Name: n, Phase: st.Phase, Serving: st.Serving, Building: st.Building, Versions: []int{}}
				for _, v := range st.Versions {
					row.Versions = append(row.Versions, v.Version)
					row.Members += len(v.Members)
					if v.Role == "serving" || st.Serving == 0 {
						row.Lag = v.Lag
					}
				}
				rows = append(rows, row)
			}
			if a.output == "json" {
				return writeJSON(a.stdout, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintf(a.stderr, "no projections in namespace %s\n", t.ns)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPHASE\tSERVING\tBUILDING\tGROUPS\tMEMBERS\tLAG")
			for _, r := range rows {
				var vs []string
				for _, v := range r.Versions {
					vs = append(vs, "v"+strconv.Itoa(v))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", r.Name, orDash(string(r.Phase)), version(r.Serving), version(r.Building),
					strings.Join(vs, ","), r.Members, r.Lag)
			}
			return tw.Flush()
		},
	}
}

func version(v int) string {
	if v <= 0 {
		return "-"
	}
	return "v" + strconv.Itoa(v)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// liveMembers returns the members of group, "" entries excluded.
func liveMembers(ctx context.Context, adm *kadm.Client, group string) ([]string, error) {
	d, err := adm.DescribeGroups(ctx, group)
	if err != nil && len(d) == 0 {
		return nil, fmt.Errorf("describing group %s: %w", group, err)
	}
	g, ok := d[group]
	if !ok || errors.Is(g.Err, kerr.GroupIDNotFound) {
		return nil, nil
	}
	if g.Err != nil {
		return nil, fmt.Errorf("describing group %s: %w", group, g.Err)
	}
	var out []string
	for _, m := range g.Members {
		out = append(out, m.ClientID+"@"+strings.TrimPrefix(m.ClientHost, "/"))
	}
	return out, nil
}

// requireRunning fails when nobody runs the projection's serving version: a request
// would never be executed.
func requireRunning(ctx context.Context, t *target, st projection.State, what string) error {
	if st.AllPartitions {
		return nil // no group to ask: the wait's timeout tells
	}
	group := consumer.GroupName(t.ns, st.Name, st.Serving)
	members, err := liveMembers(ctx, t.adm, group)
	if err != nil {
		return err
	}
	if len(members) == 0 {
		return fmt.Errorf("no instance is running projection %s (its serving group %s has no live members): a %s is executed by the application's running instances, which hold the sink; start the application (projection.Projection.Run), then run this again", st.Name, group, what)
	}
	return nil
}

// projectionsView connects and reads what list and status show: the registry and the
// namespace's projection groups. The caller closes t.adm.
func (a *app) projectionsView(ctx context.Context, f *projFlags) (*target, *projection.Registry, map[string][]int, error) {
	t, err := a.connectTarget(ctx, f)
	if err != nil {
		return nil, nil, nil, err
	}
	g, err := a.registry(ctx, t)
	var groups map[string][]int
	if err == nil {
		groups, err = projectionGroups(ctx, t.adm, t.ns)
	}
	if err != nil {
		t.adm.Close()
		return nil, nil, nil, err
	}
	return t, g, groups, nil
}

// knownProjection connects, reads the registry and returns the state of projection name:
// the start of every command that acts on a running projection. The caller closes t.adm.
func (a *app) knownProjection(ctx context.Context, f *projFlags, name string) (*target, projection.State, error) {
	t, err := a.connectTarget(ctx, f)
	if err != nil {
		return nil, projection.State{}, err
	}
	g, err := a.registry(ctx, t)
	if err == nil {
		var st projection.State
		if st, err = projectionState(g, t.ns, name); err == nil {
			return t, st, nil
		}
	}
	t.adm.Close()
	return nil, projection.State{}, err
}

func projectionState(g *projection.Registry, ns, name string) (projection.State, error) {
	st, ok := g.State(ns, name)
	if !ok {
		return st, fmt.Errorf("projection %q of namespace %s is not in the registry %s: no projection.Projection has run it yet (`kastor projection list` shows what is known)", name, ns, projection.RegistryTopic)
	}
	return st, nil
}
