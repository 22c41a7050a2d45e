package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kastor-dev/kastor/topics"
)

// applyOutput is the JSON document of `topics apply -o json`.
type applyOutput struct {
	Namespace string                `json:"namespace"`
	Brokers   []string              `json:"brokers"`
	DryRun    bool                  `json:"dryRun"`
	Summary   map[topics.Action]int `json:"summary"`
	Topics    []topics.TopicResult  `json:"topics"`
}

// describeOutput is the JSON document of `topics describe -o json`.
type describeOutput struct {
	Namespace string               `json:"namespace"`
	Brokers   []string             `json:"brokers"`
	Summary   map[topics.State]int `json:"summary"`
	Topics    []topics.TopicStatus `json:"topics"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func applySummary(res *topics.Result) map[topics.Action]int {
	sum := map[topics.Action]int{}
	for _, t := range res.Topics {
		sum[t.Action]++
	}
	return sum
}

func printApply(w io.Writer, format string, plan topics.Plan, brokers []string, res *topics.Result) error {
	if format == "json" {
		return writeJSON(w, applyOutput{
			Namespace: plan.Namespace, Brokers: brokers, DryRun: res.DryRun,
			Summary: applySummary(res), Topics: res.Topics,
		})
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRF\tCLEANUP\tACTION\tNOTES")
	for _, t := range res.Topics {
		var notes []string
		for _, d := range t.Differences {
			notes = append(notes, d.String()+" ("+d.Note+")")
		}
		if t.Note != "" {
			notes = append(notes, t.Note)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", t.Spec.Name, t.Spec.Partitions, t.Spec.ReplicationFactor,
			t.Spec.Configs[topics.ConfigCleanupPolicy], t.Action, strings.Join(notes, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var parts []string
	for _, a := range []topics.Action{topics.ActionCreated, topics.ActionWouldCreate, topics.ActionUnchanged, topics.ActionDrift, topics.ActionFailed} {
		if n := res.Count(a); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	prefix := ""
	if res.DryRun {
		prefix = "dry run, nothing created: "
	}
	_, err := fmt.Fprintf(w, "%s%d topics: %s\n", prefix, len(res.Topics), strings.Join(parts, ", "))
	return err
}

func printDescribe(w io.Writer, format string, plan topics.Plan, brokers []string, statuses []topics.TopicStatus) error {
	if format == "json" {
		sum := map[topics.State]int{}
		for _, s := range statuses {
			sum[s.State]++
		}
		return writeJSON(w, describeOutput{Namespace: plan.Namespace, Brokers: brokers, Summary: sum, Topics: statuses})
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRF\tCLEANUP\tMIN.ISR\tRETENTION\tSTATUS")
	for _, s := range statuses {
		if s.Observed == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t%s\n", s.Spec.Name, s.State)
			continue
		}
		o := s.Observed
		retention := "-"
		if _, ok := s.Spec.Configs[topics.ConfigRetentionMs]; ok {
			retention = formatRetention(o.Configs[topics.ConfigRetentionMs])
		}
		status := string(s.State)
		if len(s.Differences) > 0 {
			var diffs []string
			for _, d := range s.Differences {
				diffs = append(diffs, d.String())
			}
			status += ": " + strings.Join(diffs, "; ")
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Spec.Name, o.Partitions, o.ReplicationFactor,
			orDash(o.Configs[topics.ConfigCleanupPolicy]), orDash(o.Configs[topics.ConfigMinInsyncReplicas]), retention, status)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatRetention shows retention.ms the way the topic file writes it.
func formatRetention(ms string) string {
	n, err := strconv.ParseInt(ms, 10, 64)
	switch {
	case err != nil:
		return orDash(ms)
	case n < 0:
		return "infinite"
	default:
		return topics.FormatDuration(time.Duration(n) * time.Millisecond)
	}
}
