package interop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	bank "github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/examples/bank/avro"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/snapshot"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

const partitions = 3

// step is one command the test sends, and the event it writes (none when refused).
type step struct {
	id, account string
	cmd         bank.Command
	event       string // type of the event written; "" when the command is refused
	json        string // the event's fields as JSON
}

// The bank example's commands: acct-1 runs its whole life, so its history ends with the
// zero-field bank.AccountClosed (an empty value); acct-2's owner needs JSON escapes and
// UTF-8, and its overdraft is refused (no event; remembered in its snapshot).
var steps = []step{
	{"c1", "acct-1", bank.Open{Owner: "Ann"}, "bank.AccountOpened", `{"owner":"Ann"}`},
	{"c2", "acct-1", bank.Deposit{Amount: 100}, "bank.MoneyDeposited", `{"amount":100}`},
	{"c3", "acct-1", bank.Withdraw{Amount: 30}, "bank.MoneyWithdrawn", `{"amount":30}`},
	{"c4", "acct-1", bank.Withdraw{Amount: 70}, "bank.MoneyWithdrawn", `{"amount":70}`},
	{"c5", "acct-1", bank.Close{}, "bank.AccountClosed", `{}`},
	{"c6", "acct-2", bank.Open{Owner: "Zoë \"Z\" Ωmega\t"}, "bank.AccountOpened", `{"owner":"Zoë \"Z\" Ωmega\t"}`},
	{"c7", "acct-2", bank.Deposit{Amount: 5}, "bank.MoneyDeposited", `{"amount":5}`},
	{"c8", "acct-2", bank.Withdraw{Amount: 1000}, "", ""},
}

// line is one event as the readers print it: ID, version, type, JSON, tab-separated.
type line struct {
	id      string
	version int64
	typ     string
	json    string // normalised: compact, keys sorted
}

func (l line) String() string { return fmt.Sprintf("%s v%d %s %s", l.id, l.version, l.typ, l.json) }

// TestRecipesReadTheEvents runs the bank example's gateway, checks the records it wrote
// against docs/wire-format.md, and has the Java and Python recipes read its events.
func TestRecipesReadTheEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Kafka, Java 17 with Maven, and Python 3 (not with -short)")
	}
	requireTools(t)

	// The recipes build while Kafka starts and the gateway runs; a test that ends first
	// stops the builds and waits for them, so nothing half-built is left in the cache.
	type built struct {
		r   reader
		err error
	}
	bctx, cancelBuilds := context.WithTimeout(context.Background(), 8*time.Minute)
	var wg sync.WaitGroup
	defer func() { cancelBuilds(); wg.Wait() }()
	builds := map[string]chan built{"java": make(chan built, 1), "python": make(chan built, 1)}
	for name, build := range map[string]func(context.Context) (reader, error){"java": javaReader, "python": pythonReader} {
		wg.Go(func() {
			r, err := build(bctx)
			builds[name] <- built{r, err}
		})
	}

	c := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	brokers := c.Brokers()

	// The bank example's topics in a fresh namespace, as `kastor topics apply` makes them.
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "interop-" + hex.EncodeToString(b[:])
	cfg, err := topics.Parse(fmt.Appendf(nil, `namespace: %s
defaults: {partitions: %d, replicationFactor: 1, minInsyncReplicas: 1}
aggregates: [{type: %s}]
schemas: {replicationFactor: 1}
`, ns, partitions, bank.Type), "interop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Drift is allowed: on a cluster of KAFKA_BROKERS, _kastor.schemas may predate us.
	if _, err := topics.Apply(ctx, c.Admin(), topics.NewPlan(cfg), topics.Options{Brokers: brokers}); err != nil && !errors.Is(err, topics.ErrDrift) {
		t.Fatal(err)
	}
	name := func(role topics.Role) string { return topics.TopicName(ns, bank.Type, role) }

	codecs, err := avro.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Publish(ctx, c.Client(t), codecs.Registry, codecs.Schemas...); err != nil {
		t.Fatal(err)
	}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("INTEROP_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	kc := c.Kastor(t, ns, cluster.Logger(logger))
	runGateway(t, kc, gateway.Config[bank.State, bank.Command, kastor.Event]{
		Aggregate: bank.Aggregate, Commands: codecs.Commands, Events: codecs.Events, States: codecs.States,
	})
	sender, err := gateway.NewSender(ctx, kc, gateway.SenderConfig[bank.Command]{AggregateType: bank.Type, Commands: codecs.Commands})
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	var want []line
	versions := map[string]int64{}
	for _, s := range steps {
		cmd := kastor.NewCommand(s.account, s.cmd)
		cmd.ID = s.id
		res, err := sender.Send(ctx, cmd)
		switch {
		case s.event == "" && !errors.Is(err, kastor.ErrRejected):
			t.Fatalf("%s %T: %v, want a refusal", s.id, s.cmd, err)
		case s.event == "":
		case err != nil:
			t.Fatalf("%s %T: %v", s.id, s.cmd, err)
		default:
			versions[s.account]++
			if res.From != versions[s.account] || res.To != res.From {
				t.Fatalf("%s %T: versions %d-%d, want %d", s.id, s.cmd, res.From, res.To, versions[s.account])
			}
			want = append(want, line{s.account, versions[s.account], s.event, normalise(t, s.json)})
		}
	}

	// The records, as docs/wire-format.md describes them.
	t.Run("events", func(t *testing.T) { checkEvents(t, readTopic(t, c, name(topics.RoleEvents))) })
	t.Run("schemas", func(t *testing.T) { checkSchemas(t, readTopic(t, c, schema.Topic)) })
	t.Run("commands", func(t *testing.T) { checkCommands(t, readTopic(t, c, name(topics.RoleCommands)), sender.CallerID()) })
	t.Run("replies", func(t *testing.T) { checkReplies(t, readTopic(t, c, name(topics.RoleReplies)), sender.CallerID()) })
	t.Run("traces", func(t *testing.T) {
		checkTraces(t, readTopic(t, c, name(topics.RoleCommands)), readTopic(t, c, name(topics.RoleEvents)), readTopic(t, c, name(topics.RoleReplies)))
	})
	t.Run("snapshots", func(t *testing.T) { checkSnapshots(t, readTopic(t, c, name(topics.RoleSnapshots))) })

	// The recipes.
	for _, lang := range []string{"java", "python"} {
		t.Run(lang, func(t *testing.T) {
			var bd built
			select {
			case bd = <-builds[lang]:
			case <-bctx.Done():
				t.Fatalf("building the %s recipe: %v", lang, bctx.Err())
			}
			if bd.err != nil {
				t.Fatal(bd.err)
			}
			if bd.r.prepared > 0 {
				t.Logf("%s recipe built in %v (cached for the next runs)", lang, bd.r.prepared.Round(time.Millisecond))
			}
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			out, err := bd.r.output(rctx, strings.Join(brokers, ","), name(topics.RoleEvents))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s recipe read the events in %v:\n%s", lang, time.Since(start).Round(time.Millisecond), out)
			compare(t, parse(t, out), want)
		})
	}
}

// runGateway runs a gateway until the test ends.
func runGateway[S, C, E any](t *testing.T, kc *cluster.Cluster, cfg gateway.Config[S, C, E]) {
	t.Helper()
	g, err := gateway.New(kc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})
}

// normalise re-encodes a JSON object compactly with sorted keys.
func normalise(t *testing.T, s string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not a JSON object: %q: %v", s, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parse reads a recipe's output.
func parse(t *testing.T, out string) []line {
	t.Helper()
	var got []line
	for _, s := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.SplitN(s, "\t", 4)
		if len(f) != 4 {
			t.Fatalf("output line %q: want ID, version, type and JSON separated by tabs", s)
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("output line %q: version: %v", s, err)
		}
		got = append(got, line{f[0], v, f[2], normalise(t, f[3])})
	}
	return got
}

// compare checks that got holds the wanted events, each aggregate's in version order.
func compare(t *testing.T, got, want []line) {
	t.Helper()
	last := map[string]int64{}
	for _, l := range got {
		if l.version != last[l.id]+1 {
			t.Errorf("%s: version %d follows %d: an aggregate's events must come in order", l.id, l.version, last[l.id])
		}
		last[l.id] = l.version
	}
	got = slices.Clone(got)
	sort.Slice(got, func(i, j int) bool {
		return got[i].id < got[j].id || got[i].id == got[j].id && got[i].version < got[j].version
	})
	if !slices.Equal(got, want) {
		t.Errorf("the recipe read\n%v\nwant\n%v", got, want)
	}
}

// readTopic reads every partition of topic to its last stable offset, read_committed.
func readTopic(t *testing.T, c *kafkatest.Cluster, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := c.Admin().ListCommittedOffsets(ctx, topic) // read_committed ends: the LSOs
	if err != nil {
		t.Fatal(err)
	}
	start := map[int32]kgo.Offset{}
	pending := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end of %s/%d: %v", topic, o.Partition, o.Err)
		}
		start[o.Partition] = kgo.NewOffset().AtStart()
		if o.Offset > 0 {
			pending[o.Partition] = o.Offset
		}
	})
	cl := c.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	defer cl.Close()
	var out []*kgo.Record
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v short of the end", topic, pending)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("reading %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := pending[r.Partition]; ok && r.Offset+1 >= end {
				delete(pending, r.Partition)
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}

// headers returns a record's header keys in order, and the last value of each.
func headers(r *kgo.Record) ([]string, map[string]string) {
	var keys []string
	values := map[string]string{}
	for _, h := range r.Headers {
		keys = append(keys, h.Key)
		values[h.Key] = string(h.Value)
	}
	return keys, values
}

var (
	hex16   = regexp.MustCompile(`^[0-9a-f]{16}$`)
	decimal = regexp.MustCompile(`^(0|-?[1-9][0-9]*)$`)
)

// bankSchemas are the schemas the bank example publishes.
func bankSchemas() []*schema.Schema {
	c, err := avro.New(nil)
	if err != nil {
		panic(err)
	}
	return c.Schemas
}

// fingerprintOf is the fingerprint of the bank example's schema name, as a snapshot holds it.
func fingerprintOf(t *testing.T, name string) int64 {
	for _, s := range bankSchemas() {
		if s.Name() == name {
			return int64(s.Fingerprint())
		}
	}
	t.Fatalf("no schema %s", name)
	return 0
}

// fingerprints maps the bank example's schema names to their fingerprint headers.
func fingerprints() map[string]string {
	m := map[string]string{}
	for _, s := range bankSchemas() {
		m[s.Name()] = s.Fingerprint().String()
	}
	return m
}

func checkEvents(t *testing.T, recs []*kgo.Record) {
	wantKeys := []string{kastor.HeaderAggregateType, kastor.HeaderAggregateID, kastor.HeaderVersion, kastor.HeaderType,
		kastor.HeaderSchema, kastor.HeaderCommandID, kastor.HeaderCorrelationID, kastor.HeaderCausationID, kastor.HeaderTraceParent}
	fps := fingerprints()
	byCommand := map[string]step{}
	for _, s := range steps {
		byCommand[s.id] = s
	}
	codecs := map[uint8]int{}
	for _, r := range recs {
		keys, h := headers(r)
		s := byCommand[h[kastor.HeaderCommandID]]
		where := fmt.Sprintf("event %s/%d@%d (%s)", r.Topic, r.Partition, r.Offset, s.id)
		codecs[r.Attrs.CompressionType()]++
		switch {
		case !slices.Equal(keys, wantKeys):
			t.Errorf("%s: headers %q, want %q", where, keys, wantKeys)
		case string(r.Key) != s.account || h[kastor.HeaderAggregateID] != s.account:
			t.Errorf("%s: key %q, aggregate ID %q, want %q", where, r.Key, h[kastor.HeaderAggregateID], s.account)
		case h[kastor.HeaderAggregateType] != bank.Type || h[kastor.HeaderType] != s.event:
			t.Errorf("%s: aggregate type %q, type %q", where, h[kastor.HeaderAggregateType], h[kastor.HeaderType])
		case !decimal.MatchString(h[kastor.HeaderVersion]):
			t.Errorf("%s: version %q is not decimal", where, h[kastor.HeaderVersion])
		case !hex16.MatchString(h[kastor.HeaderSchema]) || h[kastor.HeaderSchema] != fps[s.event]:
			t.Errorf("%s: fingerprint %q, want %s", where, h[kastor.HeaderSchema], fps[s.event])
		case h[kastor.HeaderCausationID] != s.id || h[kastor.HeaderCorrelationID] != s.id:
			t.Errorf("%s: causation %q, correlation %q, want the command ID", where, h[kastor.HeaderCausationID], h[kastor.HeaderCorrelationID])
		case s.json == "{}" && (r.Value == nil || len(r.Value) != 0):
			t.Errorf("%s: a zero-field event's value is %q (nil: %v), want empty", where, r.Value, r.Value == nil)
		case s.json != "{}" && len(r.Value) == 0:
			t.Errorf("%s: empty value", where)
		case r.Partition != producer.PartitionFor(r.Key, partitions):
			t.Errorf("%s: partition %d, murmur2 says %d", where, r.Partition, producer.PartitionFor(r.Key, partitions))
		case !r.Attrs.IsTransactional() || r.Attrs.TimestampType() != 0:
			t.Errorf("%s: transactional %v, timestamp type %d; want a transactional record with CreateTime", where, r.Attrs.IsTransactional(), r.Attrs.TimestampType())
		case r.Attrs.CompressionType() != 0 && r.Attrs.CompressionType() != 2:
			t.Errorf("%s: compression codec %d, want none (0) or snappy (2)", where, r.Attrs.CompressionType())
		}
	}
	if len(recs) != 7 {
		t.Errorf("%d events, want 7", len(recs))
	}
	t.Logf("events by batch compression codec (0 none, 2 snappy): %v", codecs)
}

var traceParent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

// checkTraces checks the traceparent headers: each command starts a trace (the Sender
// had none in its context), and the command's events and reply continue it with the
// span of the gateway that handled it, one span for all of them.
func checkTraces(t *testing.T, commands, events, replies []*kgo.Record) {
	byCommand := map[string]string{} // command ID -> its traceparent
	for _, r := range commands {
		_, h := headers(r)
		if !traceParent.MatchString(h[kastor.HeaderTraceParent]) {
			t.Errorf("command %s: traceparent %q", h[kastor.HeaderCommandID], h[kastor.HeaderTraceParent])
		}
		byCommand[h[kastor.HeaderCommandID]] = h[kastor.HeaderTraceParent]
	}
	handled := map[string]string{} // command ID -> the traceparent of its events
	for _, r := range events {
		_, h := headers(r)
		id, tp := h[kastor.HeaderCommandID], h[kastor.HeaderTraceParent]
		cmd := byCommand[id]
		switch {
		case !traceParent.MatchString(tp) || len(cmd) != 55:
			t.Errorf("event of %s: traceparent %q, command's %q", id, tp, cmd)
		case tp[3:35] != cmd[3:35] || tp[36:52] == cmd[36:52]:
			t.Errorf("event of %s: traceparent %q, want the command's trace %q with another span", id, tp, cmd)
		case handled[id] != "" && handled[id] != tp:
			t.Errorf("event of %s: traceparent %q, another event of the command has %q", id, tp, handled[id])
		}
		handled[id] = tp
	}
	codec, err := goavro.NewCodec(gateway.ReplySchema)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range replies {
		_, h := headers(r)
		native, _, err := codec.NativeFromBinary(r.Value)
		if err != nil {
			continue // checkReplies says so
		}
		id := fmt.Sprint(native.(map[string]any)["commandId"])
		tp, cmd := h[kastor.HeaderTraceParent], byCommand[id]
		switch {
		case !traceParent.MatchString(tp) || len(cmd) != 55 || tp[3:35] != cmd[3:35] || tp[36:52] == cmd[36:52]:
			t.Errorf("reply to %s: traceparent %q, want a child of the command's %q", id, tp, cmd)
		case handled[id] != "" && handled[id] != tp:
			t.Errorf("reply to %s: traceparent %q, the command's events have %q", id, tp, handled[id])
		}
	}
}

func checkSchemas(t *testing.T, recs []*kgo.Record) {
	for _, s := range bankSchemas() {
		var found *kgo.Record
		for _, r := range recs {
			if string(r.Key) == s.Fingerprint().String() {
				found = r
			}
		}
		if found == nil {
			t.Errorf("no record keyed %s (%s)", s.Fingerprint(), s.Name())
			continue
		}
		keys, h := headers(found)
		if !slices.Equal(keys, []string{schema.HeaderSchemaType}) || h[schema.HeaderSchemaType] != s.Name() || string(found.Value) != s.JSON() {
			t.Errorf("%s: headers %v, value %s; want %s: %s and the schema as written", s.Name(), h, found.Value, schema.HeaderSchemaType, s.Name())
		}
		if !hex16.Match(found.Key) {
			t.Errorf("%s: key %q is not 16 lower-case hex digits", s.Name(), found.Key)
		}
	}
}

func checkCommands(t *testing.T, recs []*kgo.Record, caller string) {
	wantKeys := []string{kastor.HeaderAggregateID, kastor.HeaderType, kastor.HeaderSchema, kastor.HeaderCommandID,
		kastor.HeaderCorrelationID, wire.HeaderReplyTo, wire.HeaderDeadline, wire.HeaderAttemptID, kastor.HeaderTraceParent}
	for _, r := range recs {
		keys, h := headers(r)
		where := fmt.Sprintf("command %s", h[kastor.HeaderCommandID])
		ms, _ := strconv.ParseInt(h[wire.HeaderDeadline], 10, 64)
		switch {
		case !slices.Equal(keys, wantKeys):
			t.Errorf("%s: headers %q, want %q", where, keys, wantKeys)
		case string(r.Key) != h[kastor.HeaderAggregateID] || h[wire.HeaderReplyTo] != caller:
			t.Errorf("%s: key %q, aggregate ID %q, reply to %q (caller %s)", where, r.Key, h[kastor.HeaderAggregateID], h[wire.HeaderReplyTo], caller)
		case !decimal.MatchString(h[wire.HeaderDeadline]) || time.Since(time.UnixMilli(ms)).Abs() > 10*time.Minute:
			t.Errorf("%s: deadline %q is not Unix milliseconds of about now", where, h[wire.HeaderDeadline])
		case !hex16.MatchString(h[kastor.HeaderSchema]) || h[wire.HeaderAttemptID] == "":
			t.Errorf("%s: fingerprint %q, attempt %q", where, h[kastor.HeaderSchema], h[wire.HeaderAttemptID])
		case r.Attrs.IsTransactional():
			t.Errorf("%s: written in a transaction; the Sender's are not", where)
		case h[kastor.HeaderType] == "bank.CloseAccount" && (r.Value == nil || len(r.Value) != 0):
			t.Errorf("%s: a zero-field command's value is %q (nil: %v), want empty", where, r.Value, r.Value == nil)
		}
	}
	if len(recs) != len(steps) {
		t.Errorf("%d commands, want %d", len(recs), len(steps))
	}
}

func checkReplies(t *testing.T, recs []*kgo.Record, caller string) {
	codec, err := goavro.NewCodec(gateway.ReplySchema)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]string{}
	for _, r := range recs {
		keys, h := headers(r)
		native, rest, err := codec.NativeFromBinary(r.Value)
		if err != nil || len(rest) > 0 {
			t.Errorf("reply at %d: not a kastor.Reply: %v (%d bytes left)", r.Offset, err, len(rest))
			continue
		}
		m := native.(map[string]any)
		where := fmt.Sprintf("reply to %v", m["commandId"])
		switch {
		case string(r.Key) != caller || r.Partition != producer.PartitionFor(r.Key, partitions):
			t.Errorf("%s: key %q in partition %d, want %s in %d", where, r.Key, r.Partition, caller, producer.PartitionFor([]byte(caller), partitions))
		case !slices.Equal(keys, []string{wire.HeaderAttemptID, kastor.HeaderTraceParent}) || h[wire.HeaderAttemptID] == "":
			t.Errorf("%s: headers %q, want %s and %s", where, keys, wire.HeaderAttemptID, kastor.HeaderTraceParent)
		case !r.Attrs.IsTransactional():
			t.Errorf("%s: not transactional", where)
		}
		statuses[fmt.Sprint(m["commandId"])] = fmt.Sprint(m["status"])
	}
	for _, s := range steps {
		want := string(gateway.StatusOK)
		if s.event == "" {
			want = string(gateway.StatusRejected)
		}
		if statuses[s.id] != want {
			t.Errorf("reply to %s: status %q, want %s", s.id, statuses[s.id], want)
		}
	}
}

func checkSnapshots(t *testing.T, recs []*kgo.Record) {
	snap, err := goavro.NewCodec(snapshot.SnapshotSchema)
	if err != nil {
		t.Fatal(err)
	}
	check, err := goavro.NewCodec(snapshot.CheckpointSchema)
	if err != nil {
		t.Fatal(err)
	}
	var refused map[string]any
	for _, r := range recs {
		keys, h := headers(r)
		codec, wantKeys, typ := snap, []string{kastor.HeaderAggregateID, kastor.HeaderVersion, kastor.HeaderType}, snapshot.TypeSnapshot
		if string(r.Key) == snapshot.CheckpointKey {
			codec, wantKeys, typ = check, []string{kastor.HeaderType}, snapshot.TypeCheckpoint
		}
		native, rest, err := codec.NativeFromBinary(r.Value)
		switch {
		case err != nil || len(rest) > 0:
			t.Errorf("snapshot record %q: %v (%d bytes left)", r.Key, err, len(rest))
		case !slices.Equal(keys, wantKeys) || h[kastor.HeaderType] != typ:
			t.Errorf("snapshot record %q: headers %q, type %q", r.Key, keys, h[kastor.HeaderType])
		case string(r.Key) == "acct-2":
			refused = native.(map[string]any)
		}
	}
	if refused == nil {
		t.Fatal("no snapshot of acct-2, whose overdraft was refused")
	}
	refusals, _ := refused["refusals"].([]any)
	if len(refusals) != 1 || refused["version"] != int64(2) || refused["stateType"] != "bank.Account" ||
		refused["stateFingerprint"] != fingerprintOf(t, "bank.Account") {
		t.Fatalf("acct-2's snapshot: %v", refused)
	}
	if f := refusals[0].(map[string]any); f["id"] != "c8" || f["status"] != string(gateway.StatusRejected) {
		t.Errorf("acct-2's refusal: %v", f)
	}
}
