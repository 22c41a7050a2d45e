package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kastor-dev/kastor/schema"
)

// schemaOut is one published schema, as printed.
type schemaOut struct {
	Name        string          `json:"name"`
	Version     int             `json:"version"` // 1 for the first published of its name
	Fingerprint string          `json:"fingerprint"`
	Schema      json.RawMessage `json:"schema"`
}

func newSchemaCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "List and show the Avro schemas services published to " + schema.Topic,
		Long: `schema reads ` + schema.Topic + `, where every service publishes the Avro schemas it writes
(hand-written or derived from Go types with schema.Derive), shared by all namespaces.
Each record is one writer schema: events carry its fingerprint in their headers, and
readers in any language decode with it (docs/wire-format.md).`,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the published types, with their number of versions and newest fingerprint",
		Example: "  kastor schema list --brokers 127.0.0.1:9092",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := a.publishedSchemas(cmd.Context(), "")
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, all)
			}
			latest := map[string]schemaOut{}
			var names []string
			for _, s := range all {
				if _, ok := latest[s.Name]; !ok {
					names = append(names, s.Name)
				}
				latest[s.Name] = s
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TYPE\tVERSIONS\tNEWEST FINGERPRINT")
			for _, n := range names {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", n, latest[n].Version, latest[n].Fingerprint)
			}
			return tw.Flush()
		},
	}
	show := &cobra.Command{
		Use:     "show TYPE",
		Short:   "Print every published version of a type's schema, oldest first",
		Example: "  kastor schema show bank.MoneyDeposited\n  kastor schema show shop.ItemAdded -o json | jq '.[-1].schema'",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(cmd, "want TYPE (a full Avro name such as bank.MoneyDeposited), got %d argument(s)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			got, err := a.publishedSchemas(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(got) == 0 {
				return fmt.Errorf("no schema of type %q in %s (`kastor schema list` lists the types)", args[0], schema.Topic)
			}
			if a.output == "json" {
				return writeJSON(a.stdout, got)
			}
			for _, s := range got {
				fmt.Fprintf(a.stdout, "%s version %d, fingerprint %s\n%s\n\n", s.Name, s.Version, s.Fingerprint, s.Schema)
			}
			return nil
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

// publishedSchemas reads _kastor.schemas: every schema of type name (all when empty),
// grouped by type and oldest first.
func (a *app) publishedSchemas(ctx context.Context, name string) ([]schemaOut, error) {
	cl, err := a.dial(ctx, a.resolveBrokers(nil))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	reg := schema.NewRegistry()
	lctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if err := schema.Load(lctx, cl, reg); err != nil {
		return nil, err
	}
	out := []schemaOut{}
	version := map[string]int{}
	for _, s := range reg.Schemas() {
		version[s.Name()]++
		if name != "" && s.Name() != name {
			continue
		}
		out = append(out, schemaOut{Name: s.Name(), Version: version[s.Name()], Fingerprint: s.Fingerprint().String(), Schema: json.RawMessage(s.JSON())})
	}
	return out, nil
}
