package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kastor-dev/kastor/topics"
)

func newTopicsCmd(a *app) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Create and inspect the Kafka topics of a topic file (kastor.yaml)",
		Long: `The topics commands read a topic file (kastor.yaml: the namespace, the aggregate
types, saga types and projections, their partition counts, replication and retention)
and compare the topics it implies with the cluster. See docs/cli.md for the file format.`,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVarP(&file, "file", "f", topics.DefaultFile, "topic file")
	cmd.AddCommand(newApplyCmd(a, &file), newDescribeCmd(a, &file))
	return cmd
}

func newApplyCmd(a *app, file *string) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Create the missing topics; report topics that differ (never change them)",
		Long: `apply creates every topic of the topic file that does not exist yet, with its
partition count, replication factor and configs. It never modifies an existing topic:

  - a different partition count is refused: changing it remaps aggregate IDs (or saga
    instance IDs) to other partitions (shards), so it needs an explicit migration;
  - a different cleanup.policy is reported, never changed: compacting an events topic
    would erase history;
  - other differences (replication factor, min.insync.replicas, retention) are reported.

Running apply again is a no-op. With --dry-run it only reports what it would create
(the cluster still validates each creation).

Exit codes: 0 in sync or created, 1 error, 2 usage error, 3 drift remains.`,
		Example: `  kastor topics apply -f kastor.yaml --dry-run
  kastor topics apply -f kastor.yaml --brokers kafka-1:9092,kafka-2:9092
  kastor topics apply -o json | jq '.topics[] | select(.action != "unchanged")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, brokers, adm, err := a.connectPlan(cmd.Context(), *file)
			if err != nil {
				return err
			}
			defer adm.Close()
			res, err := topics.Apply(cmd.Context(), adm, plan, topics.Options{
				Timeout: a.timeout, DryRun: dryRun, Brokers: brokers,
			})
			if res != nil {
				if perr := printApply(a.stdout, a.output, plan, brokers, res); perr != nil {
					return perr
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be created without creating anything")
	return cmd
}

func newDescribeCmd(a *app, file *string) *cobra.Command {
	return &cobra.Command{
		Use:   "describe",
		Short: "Show each topic of the topic file as it exists on the cluster",
		Long: `describe shows, for each topic of the topic file, what the cluster has: partitions,
replication factor, cleanup.policy, min.insync.replicas and retention (effective values,
including broker defaults), and a status: ok, missing, or drift with the differences.

Exit codes: 0 no drift (missing topics are not an error: apply creates them),
1 error, 2 usage error, 3 drift.`,
		Example: `  kastor topics describe -f kastor.yaml
  kastor topics describe -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, brokers, adm, err := a.connectPlan(cmd.Context(), *file)
			if err != nil {
				return err
			}
			defer adm.Close()
			statuses, err := topics.Diff(cmd.Context(), adm, plan, topics.Options{Timeout: a.timeout, Brokers: brokers})
			if statuses != nil {
				if perr := printDescribe(a.stdout, a.output, plan, brokers, statuses); perr != nil {
					return perr
				}
			}
			return err
		},
	}
}

// connectPlan reads the topic file, derives its plan and connects an admin client to the
// brokers that apply (see resolveBrokers). The caller closes the client.
func (a *app) connectPlan(ctx context.Context, file string) (topics.Plan, []string, *kadm.Client, error) {
	cfg, err := loadConfig(file)
	if err != nil {
		return topics.Plan{}, nil, nil, err
	}
	brokers := a.resolveBrokers(cfg)
	adm, err := a.admin(ctx, brokers)
	if err != nil {
		return topics.Plan{}, nil, nil, err
	}
	return topics.NewPlan(cfg), brokers, adm, nil
}
