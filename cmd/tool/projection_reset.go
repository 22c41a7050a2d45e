package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/projection"
)

// resetResult is the document of `projection reset -o json`.
type resetResult struct {
	Namespace string                       `json:"namespace"`
	Name      string                       `json:"name"`
	Version   int                          `json:"version"`
	Group     string                       `json:"group"`
	Offsets   []projection.PartitionOffset `json:"offsets"`
}

func newProjectionResetCmd(a *app, f *projFlags) *cobra.Command {
	var inPlace, yes bool
	var ver int
	cmd := &cobra.Command{
		Use:   "reset NAME --in-place [--version v] --yes",
		Short: "Reset a stopped projection's consumer group to the earliest offsets (downtime)",
		Long: `reset sets the committed offsets of a projection version's consumer group to the
earliest offsets of its events topics, so its next run reads everything again into the
same sink. It is the plain reset, with downtime: the sink keeps what it applied unless
the application clears it. For a rebuild without downtime, use 'kastor projection rebuild'.

--in-place is required (it names what happens: this version, in place), and so is --yes.
The group must have no live members: stop the application's instances first (a running
reader would overwrite the offsets). The version is the serving one by default.

A sink that stores its own offsets (an OffsetStore: the in-memory model, a PostgreSQL
sink) resumes from them, not from the group: resetting the group would not reset it, so
reset refuses when the registry says so; clear the sink instead, or rebuild.`,
		Example: `  kastor projection reset balances --in-place --yes
  kastor projection reset balances --in-place --version 3 --yes -o json`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !inPlace {
				return usagef(cmd, "reset needs --in-place (it resets this version's group where it is, with downtime); for a rebuild without downtime use `kastor projection rebuild %s`", args[0])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
			defer cancel()
			t, err := a.connectTarget(ctx, f)
			if err != nil {
				return err
			}
			defer t.adm.Close()
			g, err := a.registry(ctx, t)
			if err != nil {
				return err
			}
			name := args[0]
			st, known := g.State(t.ns, name)
			if ver == 0 {
				if !known {
					return fmt.Errorf("projection %q is not in the registry: name the version with --version", name)
				}
				ver = st.Serving
			}
			if known && ver == st.Serving && st.SinkOffsets {
				return fmt.Errorf("projection %s v%d has a sink that stores its own offsets: the reader resumes from the sink's offsets, so resetting the group would not reset it; clear the sink (or rebuild: `kastor projection rebuild %s`)", name, ver, name)
			}
			if known && st.Phase == projection.PhaseRebuilding && ver == st.Building {
				return fmt.Errorf("projection %s is building v%d: it already reads from the earliest offsets", name, ver)
			}
			group := consumer.GroupName(t.ns, name, ver)
			members, err := liveMembers(ctx, t.adm, group)
			if err != nil {
				return err
			}
			if len(members) > 0 {
				return fmt.Errorf("group %s has %d live member(s): %s; stop them first (a running reader would commit over the reset)", group, len(members), strings.Join(members, ", "))
			}
			tops := st.Topics
			if len(tops) == 0 {
				offs, err := t.adm.FetchOffsets(ctx, group)
				if err != nil {
					return fmt.Errorf("committed offsets of %s: %w", group, err)
				}
				tops = offs.Offsets().TopicsSet().Topics()
			}
			if len(tops) == 0 {
				return fmt.Errorf("group %s has no committed offsets and the registry does not know the projection's topics: nothing to reset", group)
			}
			starts, err := t.adm.ListStartOffsets(ctx, tops...)
			if err == nil {
				err = starts.Error()
			}
			if err != nil {
				return fmt.Errorf("start offsets: %w", err)
			}
			res := resetResult{Namespace: t.ns, Name: name, Version: ver, Group: group, Offsets: []projection.PartitionOffset{}}
			for _, p := range starts.Offsets().Sorted() {
				res.Offsets = append(res.Offsets, projection.PartitionOffset{Topic: p.Topic, Partition: p.Partition, Offset: p.At})
			}
			if !yes {
				return fmt.Errorf("reset would set the offsets of group %s (%d partitions of %s) to the earliest: re-run with --yes", group, len(res.Offsets), strings.Join(tops, ", "))
			}
			resp, err := t.adm.CommitOffsets(ctx, group, starts.Offsets())
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				return fmt.Errorf("committing the earliest offsets to %s: %w", group, err)
			}
			if a.output == "json" {
				return writeJSON(a.stdout, res)
			}
			_, err = fmt.Fprintf(a.stdout, "reset group %s to the earliest offsets (%d partitions); its next run reads every event again\n", group, len(res.Offsets))
			return err
		},
	}
	cmd.Flags().BoolVar(&inPlace, "in-place", false, "reset this version's group where it is (required)")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the reset")
	cmd.Flags().IntVar(&ver, "version", 0, "version to reset (default: the serving version)")
	return cmd
}
