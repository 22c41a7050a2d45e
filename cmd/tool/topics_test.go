package main

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/topics"
)

// wantTopic is what the topic file written by oneNodeYAML must produce.
type wantTopic struct {
	partitions int
	configs    map[string]string
}

func wantTopics(ns string) map[string]wantTopic {
	return map[string]wantTopic{
		ns + ".bank.account.commands":  {3, map[string]string{"cleanup.policy": "delete", "retention.ms": "172800000", "min.insync.replicas": "1"}},
		ns + ".bank.account.events":    {3, map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "1"}},
		ns + ".bank.account.snapshots": {3, map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1"}},
		ns + ".bank.account.replies":   {3, map[string]string{"cleanup.policy": "delete", "retention.ms": "3600000", "min.insync.replicas": "1"}},
		ns + ".bank.account.schedules": {3, map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1"}},
		ns + ".shop.order.commands":    {2, map[string]string{"cleanup.policy": "delete", "retention.ms": "172800000", "min.insync.replicas": "1"}},
		ns + ".shop.order.events":      {2, map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "1"}},
		ns + ".shop.order.snapshots":   {2, map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1"}},
		ns + ".shop.order.replies":     {2, map[string]string{"cleanup.policy": "delete", "retention.ms": "3600000", "min.insync.replicas": "1"}},
		ns + ".shop.order.schedules":   {2, map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1"}},
		"_kastor.schemas":              {1, map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1"}},
	}
}

// onCluster is a topic as an independent admin client reads it.
type onCluster struct {
	exists     bool
	partitions int
	rf         int
	configs    map[string]string
}

func readTopics(t *testing.T, c *kafkatest.Cluster, names ...string) map[string]onCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	details, err := c.Admin().ListTopics(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]onCluster{}
	var existing []string
	for _, n := range names {
		td, ok := details[n]
		if !ok || td.Err != nil {
			out[n] = onCluster{}
			continue
		}
		existing = append(existing, n)
		out[n] = onCluster{exists: true, partitions: len(td.Partitions), rf: len(td.Partitions[0].Replicas), configs: map[string]string{}}
	}
	if len(existing) == 0 {
		return out
	}
	rcs, err := c.Admin().DescribeTopicConfigs(ctx, existing...)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			t.Fatalf("%s: %v", rc.Name, rc.Err)
		}
		for _, cfg := range rc.Configs {
			out[rc.Name].configs[cfg.Key] = cfg.MaybeValue()
		}
	}
	return out
}

func keys[M ~map[string]V, V any](m M) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkCreated verifies with kadm that every topic of the file exists as specified.
func checkCreated(t *testing.T, c *kafkatest.Cluster, ns string) {
	t.Helper()
	want := wantTopics(ns)
	got := readTopics(t, c, keys(want)...)
	for name, w := range want {
		g := got[name]
		if !g.exists {
			t.Errorf("%s was not created", name)
			continue
		}
		if g.partitions != w.partitions || g.rf != 1 {
			t.Errorf("%s: %d partitions RF %d, want %d RF 1", name, g.partitions, g.rf, w.partitions)
		}
		for k, v := range w.configs {
			if g.configs[k] != v {
				t.Errorf("%s: %s=%q, want %q", name, k, g.configs[k], v)
			}
		}
	}
}

func parseApply(t *testing.T, r result) applyOutput {
	t.Helper()
	var out applyOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("apply -o json output does not parse: %v\n%s", err, r.stdout)
	}
	return out
}

// actions maps topic to action, with _kastor.schemas, which tests sharing a cluster
// create in turn, reported separately.
func actions(out applyOutput) (map[string]topics.Action, topics.Action) {
	m := map[string]topics.Action{}
	var schemas topics.Action
	for _, tr := range out.Topics {
		if tr.Name() == topics.SchemasTopic {
			schemas = tr.Action
			continue
		}
		m[tr.Name()] = tr.Action
	}
	return m, schemas
}

func TestApplyCreatesTopics(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ns := namespace(t)
		file := writeFile(t, oneNodeYAML(ns))
		r := kastor(t, "topics", "apply", "-f", file, "--brokers", strings.Join(c.Brokers(), ","), "-o", "json")
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		out := parseApply(t, r)
		acts, schemas := actions(out)
		if len(acts) != 10 {
			t.Errorf("%d aggregate topics in the output, want 10", len(acts))
		}
		for name, a := range acts {
			if a != topics.ActionCreated {
				t.Errorf("%s: %s, want created", name, a)
			}
		}
		if schemas != topics.ActionCreated && schemas != topics.ActionUnchanged {
			t.Errorf("_kastor.schemas: %s", schemas)
		}
		if out.Namespace != ns || out.DryRun {
			t.Errorf("namespace %q dryRun %v", out.Namespace, out.DryRun)
		}
		checkCreated(t, c, ns)
	})
}

func TestApplyTwiceIsNoop(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ns := namespace(t)
		args := []string{"topics", "apply", "-f", writeFile(t, oneNodeYAML(ns)), "--brokers", strings.Join(c.Brokers(), ",")}
		if r := kastor(t, args...); r.code != exitOK {
			t.Fatalf("first apply: exit %d", r.code)
		}
		r := kastor(t, args...)
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("second apply: exit %d, stderr %q", r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "11 topics: 11 unchanged\n") {
			t.Errorf("second apply output:\n%s", r.stdout)
		}
		if strings.Contains(r.stdout, "created") {
			t.Errorf("second apply created something:\n%s", r.stdout)
		}
		for _, line := range strings.Split(r.stdout, "\n")[1:10] {
			if !strings.Contains(line, "unchanged") || !strings.HasPrefix(line, ns+".") && !strings.HasPrefix(line, "_kastor.schemas") {
				t.Errorf("row %q", line)
			}
		}
		r = kastor(t, append(args, "-o", "json")...)
		out := parseApply(t, r)
		if r.code != exitOK || out.Summary[topics.ActionUnchanged] != 11 || len(out.Summary) != 1 {
			t.Errorf("third apply: exit %d, summary %v", r.code, out.Summary)
		}
	})
}

func TestApplyReportsDriftAndChangesNothing(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ns := namespace(t)
		events, snapshots := ns+".bank.account.events", ns+".bank.account.snapshots"
		// Right configs, wrong partition count (the file says 3).
		c.CreateTopic(t, events, 5, 1, map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "1"})
		// Right partition count, wrong cleanup policy (the file implies compact).
		c.CreateTopic(t, snapshots, 3, 1, map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1"})
		args := []string{"topics", "apply", "-f", writeFile(t, oneNodeYAML(ns)), "--brokers", strings.Join(c.Brokers(), ",")}

		r := kastor(t, append(args, "-o", "json")...)
		if r.code != exitDrift {
			t.Fatalf("exit %d, want %d (drift)", r.code, exitDrift)
		}
		if !strings.HasPrefix(r.stderr, "kastor: 2 topic(s) differ from the plan and were left unchanged: "+events+", "+snapshots) {
			t.Errorf("stderr %q", r.stderr)
		}
		out := parseApply(t, r)
		for _, tr := range out.Topics {
			switch tr.Name() {
			case events:
				if tr.Action != topics.ActionDrift || len(tr.Differences) != 1 {
					t.Fatalf("events: %+v", tr)
				}
				d := tr.Differences[0]
				if d.Field != "partitions" || d.Want != "3" || d.Have != "5" ||
					!strings.Contains(d.Note, "changing the partition count remaps aggregate IDs to other partitions (shards); migrate explicitly") {
					t.Errorf("events difference %+v", d)
				}
			case snapshots:
				if tr.Action != topics.ActionDrift || len(tr.Differences) != 1 {
					t.Fatalf("snapshots: %+v", tr)
				}
				d := tr.Differences[0]
				if d.Field != "cleanup.policy" || d.Want != "compact" || d.Have != "delete" {
					t.Errorf("snapshots difference %+v", d)
				}
			case topics.SchemasTopic:
			default:
				if tr.Action != topics.ActionCreated {
					t.Errorf("%s: %s, want created", tr.Name(), tr.Action)
				}
			}
		}

		got := readTopics(t, c, events, snapshots)
		if got[events].partitions != 5 {
			t.Errorf("events now has %d partitions", got[events].partitions)
		}
		if p := got[snapshots].configs["cleanup.policy"]; p != "delete" {
			t.Errorf("snapshots cleanup.policy is now %q", p)
		}

		// The text table says the same; a re-run still exits with the drift code.
		r = kastor(t, args...)
		if r.code != exitDrift {
			t.Errorf("second run: exit %d", r.code)
		}
		for _, w := range []string{"partitions: want 3, have 5", "cleanup.policy: want compact, have delete", "9 unchanged, 2 drift"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("text output lacks %q:\n%s", w, r.stdout)
			}
		}

		// describe reports the same drift with the same exit code.
		r = kastor(t, "topics", "describe", "-f", args[3], "--brokers", args[5])
		if r.code != exitDrift || !strings.Contains(r.stdout, "drift: partitions: want 3, have 5") ||
			!strings.Contains(r.stdout, "drift: cleanup.policy: want compact, have delete") {
			t.Errorf("describe: exit %d\n%s", r.code, r.stdout)
		}
	})
}

func TestApplyDryRunCreatesNothing(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ns := namespace(t)
		r := kastor(t, "topics", "apply", "--dry-run", "-f", writeFile(t, oneNodeYAML(ns)), "--brokers", strings.Join(c.Brokers(), ","), "-o", "json")
		if r.code != exitOK {
			t.Fatalf("exit %d", r.code)
		}
		out := parseApply(t, r)
		acts, _ := actions(out)
		for name, a := range acts {
			if a != topics.ActionWouldCreate {
				t.Errorf("%s: %s, want would-create", name, a)
			}
		}
		if !out.DryRun || len(acts) != 10 {
			t.Errorf("dryRun %v, %d topics", out.DryRun, len(acts))
		}
		want := wantTopics(ns)
		delete(want, topics.SchemasTopic)
		for name, g := range readTopics(t, c, keys(want)...) {
			if g.exists {
				t.Errorf("dry run created %s", name)
			}
		}
	})
}

func TestDescribe(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ns := namespace(t)
		file := writeFile(t, oneNodeYAML(ns))
		brokers := strings.Join(c.Brokers(), ",")
		describe := func() (result, describeOutput) {
			r := kastor(t, "topics", "describe", "-f", file, "--brokers", brokers, "-o", "json")
			var out describeOutput
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("describe -o json does not parse: %v\n%s", err, r.stdout)
			}
			return r, out
		}

		// Before apply: missing topics are reported, and are not an error.
		r, out := describe()
		if r.code != exitOK || len(out.Topics) != 11 {
			t.Fatalf("exit %d, %d topics", r.code, len(out.Topics))
		}
		for _, s := range out.Topics {
			if s.Name() != topics.SchemasTopic && (s.State != topics.StateMissing || s.Observed != nil) {
				t.Errorf("%s: %s %+v", s.Name(), s.State, s.Observed)
			}
		}

		if r := kastor(t, "topics", "apply", "-f", file, "--brokers", brokers); r.code != exitOK {
			t.Fatalf("apply: exit %d", r.code)
		}
		r, out = describe()
		if r.code != exitOK {
			t.Fatalf("exit %d", r.code)
		}
		want := wantTopics(ns)
		cluster := readTopics(t, c, keys(want)...)
		for _, s := range out.Topics {
			w, ok := want[s.Name()]
			if !ok {
				t.Errorf("unexpected topic %s", s.Name())
				continue
			}
			delete(want, s.Name())
			if s.State != topics.StateOK || len(s.Differences) != 0 || s.Observed == nil {
				t.Errorf("%s: %s %v", s.Name(), s.State, s.Differences)
				continue
			}
			g := cluster[s.Name()]
			if int(s.Observed.Partitions) != g.partitions || int(s.Observed.ReplicationFactor) != g.rf || g.partitions != w.partitions {
				t.Errorf("%s: describe says %d partitions RF %d; kadm %d RF %d; want %d",
					s.Name(), s.Observed.Partitions, s.Observed.ReplicationFactor, g.partitions, g.rf, w.partitions)
			}
			if !maps.Equal(s.Spec.Configs, w.configs) {
				t.Errorf("%s: spec configs %v, want %v", s.Name(), s.Spec.Configs, w.configs)
			}
			for k, v := range s.Observed.Configs {
				if g.configs[k] != v {
					t.Errorf("%s: describe says %s=%s, kadm %s", s.Name(), k, v, g.configs[k])
				}
			}
			for k := range w.configs {
				if _, ok := s.Observed.Configs[k]; !ok {
					t.Errorf("%s: describe does not show %s", s.Name(), k)
				}
			}
		}
		if len(want) != 0 {
			t.Errorf("describe omitted %v", keys(want))
		}
		if out.Summary[topics.StateOK] != 11 {
			t.Errorf("summary %v", out.Summary)
		}

		r = kastor(t, "topics", "describe", "-f", file, "--brokers", brokers)
		if r.code != exitOK || !strings.Contains(r.stdout, "TOPIC") || !strings.Contains(r.stdout, "infinite") ||
			strings.Count(r.stdout, " ok\n") != 11 {
			t.Errorf("text describe: exit %d\n%s", r.code, r.stdout)
		}
	})
}

// sagaYAML is oneNodeYAML with a saga type.
func sagaYAML(ns string) string {
	return oneNodeYAML(ns) + `sagas:
  - type: bank.transfer
    partitions: 4
    inputsRetention: 2d
`
}

// The saga topics of kastor.yaml are created, described and checked for drift like the
// others: inputs and state with the saga's partition count, the dead-letter topic with one.
func TestApplySagaTopics(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ns := namespace(t)
		file := writeFile(t, sagaYAML(ns))
		brokers := strings.Join(c.Brokers(), ",")
		inputs, state, dlq := ns+".saga.bank.transfer.inputs", ns+".saga.bank.transfer.state", ns+".saga.bank.transfer.dlq"
		want := map[string]wantTopic{
			inputs: {4, map[string]string{"cleanup.policy": "delete", "retention.ms": "172800000", "min.insync.replicas": "1"}},
			state:  {4, map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1"}},
			dlq:    {1, map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "1"}},
		}
		roles := map[string]topics.Role{inputs: topics.RoleSagaInputs, state: topics.RoleSagaState, dlq: topics.RoleSagaDLQ}

		r := kastor(t, "topics", "apply", "-f", file, "--brokers", brokers, "-o", "json")
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		out := parseApply(t, r)
		acts, _ := actions(out)
		if len(acts) != 13 {
			t.Errorf("%d topics in the output, want 10 aggregate and 3 saga topics", len(acts))
		}
		for _, tr := range out.Topics {
			if _, ok := want[tr.Name()]; !ok {
				continue
			}
			if tr.Action != topics.ActionCreated || tr.Spec.Saga != "bank.transfer" || tr.Spec.Role != roles[tr.Name()] ||
				!maps.Equal(tr.Spec.Configs, want[tr.Name()].configs) {
				t.Errorf("%s: %+v", tr.Name(), tr)
			}
		}
		if !strings.Contains(r.stdout, `"saga": "bank.transfer"`) || !strings.Contains(r.stdout, `"role": "saga-inputs"`) {
			t.Errorf("JSON lacks the saga and its role:\n%s", r.stdout)
		}
		got := readTopics(t, c, keys(want)...)
		for name, w := range want {
			g := got[name]
			if !g.exists || g.partitions != w.partitions || g.rf != 1 {
				t.Errorf("%s: %+v, want %d partitions RF 1", name, g, w.partitions)
				continue
			}
			for k, v := range w.configs {
				if g.configs[k] != v {
					t.Errorf("%s: %s=%q, want %q", name, k, g.configs[k], v)
				}
			}
		}

		r = kastor(t, "topics", "describe", "-f", file, "--brokers", brokers)
		if r.code != exitOK || strings.Count(r.stdout, " ok\n") != 14 {
			t.Errorf("describe: exit %d\n%s", r.code, r.stdout)
		}
		rows := map[string][]string{}
		for _, line := range strings.Split(r.stdout, "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				rows[f[0]] = f
			}
		}
		// TOPIC PARTITIONS RF CLEANUP MIN.ISR RETENTION STATUS
		for name, w := range map[string]string{inputs: "4 1 delete 1 2d ok", state: "4 1 compact 1 - ok", dlq: "1 1 delete 1 infinite ok"} {
			if got := strings.Join(rows[name][1:], " "); got != w {
				t.Errorf("describe row of %s: %q, want %q", name, got, w)
			}
		}
		if r := kastor(t, "topics", "apply", "-f", file, "--brokers", brokers); r.code != exitOK ||
			!strings.Contains(r.stdout, "14 topics: 14 unchanged\n") {
			t.Errorf("second apply: exit %d\n%s", r.code, r.stdout)
		}

		// A file that now asks for 6 partitions: inputs and state drift, refused.
		file6 := writeFile(t, strings.Replace(sagaYAML(ns), "partitions: 4", "partitions: 6", 1))
		r = kastor(t, "topics", "apply", "-f", file6, "--brokers", brokers, "-o", "json")
		if r.code != exitDrift || !strings.HasPrefix(r.stderr, "kastor: 2 topic(s) differ from the plan and were left unchanged: "+inputs+", "+state) {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		for _, tr := range parseApply(t, r).Topics {
			if tr.Name() != inputs && tr.Name() != state {
				continue
			}
			if tr.Action != topics.ActionDrift || len(tr.Differences) != 1 || tr.Differences[0].Field != "partitions" ||
				tr.Differences[0].Want != "6" || tr.Differences[0].Have != "4" ||
				!strings.Contains(tr.Differences[0].Note, "inputs and state are co-partitioned") {
				t.Errorf("%s: %+v", tr.Name(), tr)
			}
		}
		for name, g := range readTopics(t, c, inputs, state) {
			if g.partitions != 4 {
				t.Errorf("%s now has %d partitions", name, g.partitions)
			}
		}
	})
}
