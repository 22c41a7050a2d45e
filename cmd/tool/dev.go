package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kastor-dev/kastor/devbroker"
	"github.com/kastor-dev/kastor/topics"
)

// devOutput is the JSON document `kastor dev -o json` prints once the broker is ready.
type devOutput struct {
	Brokers []string       `json:"brokers"`
	DataDir string         `json:"dataDir,omitempty"`
	Topics  *topics.Result `json:"topics,omitempty"`
}

func newDevCmd(a *app) *cobra.Command {
	var (
		port    int
		nodes   int
		dataDir string
		file    string
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run an embedded Kafka-protocol broker for development",
		Long: `dev runs franz-go's kfake in this process: a broker that speaks the Kafka protocol
(transactions, consumer groups, compaction) and starts in milliseconds. It is not Apache
Kafka; prove production guarantees against a real cluster.

Like a production cluster set up for kastor, it does not create topics on first use.
With -f it creates the topic file's topics at start (the file needs replicationFactor
and minInsyncReplicas no higher than --nodes). It stops on Ctrl-C or SIGTERM.

Without --data-dir everything is in memory and gone when it stops; with --data-dir the
topics, records, offsets and groups are saved there and loaded on the next start.`,
		Example: `  kastor dev -f examples/kastor.yaml
  kastor dev --port 0 --nodes 3
  kastor dev --data-dir .kastor-dev`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.brokers != "" {
				return usagef(cmd, "--brokers does not apply to kastor dev: it runs its own broker (use --port)")
			}
			if nodes < 1 {
				return usagef(cmd, "invalid --nodes %d: want at least 1", nodes)
			}
			if port < 0 || port+nodes-1 > 65535 {
				return usagef(cmd, "invalid --port %d: want 0 (any free port) or 1-65535", port)
			}
			var cfg *topics.Config
			if file != "" {
				var err error
				if cfg, err = loadConfig(file); err != nil {
					return err
				}
			}

			ports := make([]int, nodes)
			for i := range ports {
				if port != 0 {
					ports[i] = port + i
				}
			}
			opts := []devbroker.Option{
				devbroker.Nodes(nodes),
				devbroker.Ports(ports...),
				devbroker.Logger(slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
			}
			if dataDir != "" {
				opts = append(opts, devbroker.DataDir(dataDir))
			}
			b, err := devbroker.Start(opts...)
			if err != nil {
				if port != 0 && strings.Contains(err.Error(), "address already in use") {
					err = fmt.Errorf("%w (is another broker running? use --port 0 for any free port)", err)
				}
				return err
			}
			defer b.Close()
			addrs := b.Addrs()
			text := a.output == "text"
			if text {
				fmt.Fprintf(a.stdout, "kastor dev: Kafka-protocol broker (embedded kfake, not Apache Kafka) listening on %s\n", strings.Join(addrs, ","))
				if dataDir != "" {
					fmt.Fprintf(a.stdout, "kastor dev: data persisted in %s\n", dataDir)
				}
			}

			out := devOutput{Brokers: addrs, DataDir: dataDir}
			if cfg != nil {
				res, err := applyDev(cmd, a, cfg, addrs)
				if res != nil && text {
					if perr := printApply(a.stdout, "text", topics.NewPlan(cfg), addrs, res); perr != nil {
						return perr
					}
				}
				out.Topics = res
				switch {
				case errors.Is(err, topics.ErrDrift) && onlyDrift(err):
					// Persisted topics from an earlier run may differ from an edited file;
					// the broker is still useful, so report and keep running.
					fmt.Fprintf(a.stderr, "kastor dev: warning: %v\n", err)
				case err != nil:
					return fmt.Errorf("creating topics from %s: %w", file, err)
				}
			}

			if text {
				fmt.Fprintf(a.stdout, "export KAFKA_BROKERS=%s\n", strings.Join(addrs, ","))
				fmt.Fprintln(a.stdout, "kastor dev: ready; press Ctrl-C to stop")
			} else if err := writeJSON(a.stdout, out); err != nil {
				return err
			}

			<-cmd.Context().Done()
			b.Close()
			if text {
				fmt.Fprintln(a.stdout, "kastor dev: stopped")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&port, "port", 9092, "port of the first broker (the others take the next ones); 0 picks free ports")
	f.IntVar(&nodes, "nodes", 1, "number of brokers")
	f.StringVar(&dataDir, "data-dir", "", "persist data in this directory (default: in memory only)")
	f.StringVarP(&file, "file", "f", "", "topic file whose topics to create at start (default: none)")
	return cmd
}

func applyDev(cmd *cobra.Command, a *app, cfg *topics.Config, addrs []string) (*topics.Result, error) {
	adm, err := a.admin(cmd.Context(), addrs)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	return topics.Apply(cmd.Context(), adm, topics.NewPlan(cfg), topics.Options{Timeout: a.timeout, Brokers: addrs})
}
