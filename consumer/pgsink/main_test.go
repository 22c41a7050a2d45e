package pgsink_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/consumer/pgsink"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/pgtest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

var (
	realKafka = kafkatest.NewShared()
	postgres  = pgtest.NewShared()
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	kafkatest.Main(m, realKafka, postgres)
}

func quietLogger() *slog.Logger {
	if os.Getenv("PGSINK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var codecs = func() *bank.Codecs {
	c, err := bank.NewCodecs(nil)
	if err != nil {
		panic(err)
	}
	return c
}()

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newDB returns a fresh database of the shared server and a pool on it.
func newDB(t testing.TB) (dsn string, pool *pgxpool.Pool) {
	t.Helper()
	dsn = postgres.Get(t).NewDatabase(t)
	return dsn, pgtest.Connect(t, dsn)
}

// The counting projection used by most tests: counts(aggregate_id) counts the events
// applied per aggregate, and applied logs each application, so that an event applied
// twice shows.
var countingSchema = []string{
	`CREATE TABLE IF NOT EXISTS counts (aggregate_id text PRIMARY KEY, applied bigint NOT NULL, last_version bigint NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS applied (aggregate_id text NOT NULL, version bigint NOT NULL, topic text NOT NULL, part int NOT NULL, off bigint NOT NULL)`,
}

func countEvent(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
	if _, err := tx.Exec(ctx, `INSERT INTO applied VALUES ($1, $2, $3, $4, $5)`,
		ev.AggregateID, ev.Version, ev.Topic, ev.Partition, ev.Offset); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO counts VALUES ($1, 1, $2)
		ON CONFLICT (aggregate_id) DO UPDATE SET applied = counts.applied + 1, last_version = EXCLUDED.last_version`,
		ev.AggregateID, ev.Version)
	return err
}

func migrate(t testing.TB, pool *pgxpool.Pool, statements ...string) {
	t.Helper()
	if err := pgsink.Migrate(testCtx(t, 30*time.Second), pool, statements...); err != nil {
		t.Fatal(err)
	}
}

func newSink(t testing.TB, pool *pgxpool.Pool, mod ...func(*pgsink.Config[kastor.Event])) *pgsink.Sink[kastor.Event] {
	t.Helper()
	cfg := pgsink.Config[kastor.Event]{Name: projName, Version: 1, Apply: countEvent}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := pgsink.New(testCtx(t, 30*time.Second), pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// counted returns counts(aggregate_id) -> applied, and the number of events applied more
// than once according to the applied log.
func counted(t testing.TB, pool *pgxpool.Pool) (counts map[string]int64, total int64, dups int64) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	counts = map[string]int64{}
	rows, _ := pool.Query(ctx, `SELECT aggregate_id, applied FROM counts`)
	var id string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error { counts[id] = n; total += n; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(c - 1), 0) FROM
		(SELECT count(*) AS c FROM applied GROUP BY aggregate_id, version HAVING count(*) > 1) d`).Scan(&dups); err != nil {
		t.Fatal(err)
	}
	return counts, total, dups
}

const projName = "balances"

// rig is a bank.account events topic and its projection's dead-letter topic on real
// Kafka, with a transactional writer that appends events as the gateway does.
type rig struct {
	t          *testing.T
	c          *kafkatest.Cluster
	kc         *cluster.Cluster // the namespace's kastor cluster, that readers run on
	ns         string
	partitions int32
	events     string
	dlq        string
	w          *kgo.Client

	mu       sync.Mutex
	versions map[string]int64
}

func newRig(t *testing.T, partitions int32) *rig {
	c := realKafka.Get(t)
	ns := strings.ToLower(strings.ReplaceAll(kafkatest.TopicName(t), "/", "-"))
	r := &rig{t: t, c: c, ns: ns, partitions: partitions,
		events:   topics.TopicName(ns, bank.Type, topics.RoleEvents),
		dlq:      consumer.DLQTopic(ns, projName),
		versions: map[string]int64{},
	}
	c.CreateTopic(t, r.events, partitions, 1, nil)
	c.CreateTopic(t, r.dlq, partitions, 1, nil)
	r.w = c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID(ns+"-writer"),
		kgo.TransactionTimeout(10*time.Second))
	r.kc = c.Kastor(t, ns, cluster.Logger(quietLogger()))
	return r
}

// record encodes e as the gateway would, as the next version of agg.
func (r *rig) record(agg string, e kastor.Event) *kgo.Record {
	enc, err := codecs.Events.Encode(e)
	if err != nil {
		panic(err)
	}
	r.mu.Lock()
	r.versions[agg]++
	v := r.versions[agg]
	r.mu.Unlock()
	md := kastor.Metadata{AggregateType: bank.Type, AggregateID: agg, Version: v,
		Type: enc.Type, Fingerprint: enc.Fingerprint, CommandID: fmt.Sprintf("cmd-%s-%d", agg, v)}
	return &kgo.Record{Topic: r.events, Key: []byte(agg), Value: enc.Data, Headers: wire.Headers(&md),
		Partition: producer.PartitionFor([]byte(agg), r.partitions)}
}

// deposits returns n records over naggs aggregates acc-0..: an aggregate's first event
// opens it, the others deposit amount(i).
func (r *rig) deposits(n, naggs int, amount func(i int) int64) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for i := range n {
		agg := fmt.Sprintf("acc-%d", i%naggs)
		r.mu.Lock()
		known := r.versions[agg] > 0
		r.mu.Unlock()
		if known {
			out[i] = r.record(agg, bank.Deposited{Amount: amount(i)})
		} else {
			out[i] = r.record(agg, bank.Opened{Owner: "o-" + agg})
		}
	}
	return out
}

// write appends records in one committed transaction and waits until they are stable.
func (r *rig) write(recs ...*kgo.Record) {
	r.t.Helper()
	ctx := testCtx(r.t, 60*time.Second)
	if err := r.w.BeginTransaction(); err != nil {
		r.t.Fatal(err)
	}
	if err := r.w.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		r.t.Fatal(err)
	}
	if err := r.w.EndTransaction(ctx, kgo.TryCommit); err != nil {
		r.t.Fatal(err)
	}
	want := map[int32]int64{}
	for _, rec := range recs {
		want[rec.Partition] = max(want[rec.Partition], rec.Offset+2) // the record, then its marker
	}
	for {
		ends := r.ends()
		done := true
		for p, o := range want {
			if ends[consumer.TopicPartition{Topic: r.events, Partition: p}] < o {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("the transaction's records never became stable: %v", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ends returns the events topic's last stable offsets.
func (r *rig) ends() map[consumer.TopicPartition]int64 {
	r.t.Helper()
	return endOffsets(r.t, r.c, r.events)
}

func endOffsets(t testing.TB, c *kafkatest.Cluster, topic string) map[consumer.TopicPartition]int64 {
	t.Helper()
	offs, err := c.Admin().ListCommittedOffsets(testCtx(t, 30*time.Second), topic)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[consumer.TopicPartition]int64{}
	offs.Each(func(o kadm.ListedOffset) {
		out[consumer.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	return out
}

func (r *rig) config(mod ...func(*consumer.Config[kastor.Event])) consumer.Config[kastor.Event] {
	cfg := consumer.Config[kastor.Event]{
		Name: projName, Version: 1, AggregateTypes: []string{bank.Type},
		Events: codecs.Events,
		Retry:  consumer.Retry{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 200 * time.Millisecond},
	}
	for _, m := range mod {
		m(&cfg)
	}
	return cfg
}

// start runs a reader on r.kc until the test ends or stop is called; stop returns Run's
// error.
func (r *rig) start(cfg consumer.Config[kastor.Event], sink consumer.Sink[kastor.Event]) (*consumer.Reader[kastor.Event], func() error) {
	r.t.Helper()
	rd, err := consumer.New(r.kc, cfg, sink)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rd.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(60 * time.Second):
				runErr = fmt.Errorf("Run did not return 60s after its context ended")
			}
		})
		return runErr
	}
	r.t.Cleanup(func() { _ = stop() })
	return rd, stop
}

// deadLetters reads the projection's unresolved dead letters.
func (r *rig) deadLetters() []consumer.DeadLetter {
	r.t.Helper()
	ds, err := consumer.ReadDeadLetters(testCtx(r.t, 60*time.Second), r.kc, r.dlq, projName, 1)
	if err != nil {
		r.t.Fatal(err)
	}
	return ds
}

// waitFor waits until sink has stored offsets reaching ends.
func waitFor(t testing.TB, sink *pgsink.Sink[kastor.Event], ends map[consumer.TopicPartition]int64, within time.Duration) {
	t.Helper()
	if err := sink.WaitFor(testCtx(t, within), ends); err != nil {
		got, _ := sink.Offsets(context.Background())
		t.Fatalf("the sink did not reach %v: %v (stored: %v)", ends, err, got)
	}
}

// proxy forwards TCP connections to a server and can cut them: down refuses connections
// (accepting and closing them) and resets those open, as a crashed or unreachable server
// does; hang forwards nothing, as a paused server or a network partition does.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  string // "up", "down", "hang"
	conns map[net.Conn]bool
	wake  chan struct{} // closed when the mode changes
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, mode: "up", conns: map[net.Conn]bool{}, wake: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		p.set("down")
	})
	go p.serve()
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	close(p.wake)
	p.wake = make(chan struct{})
	if mode == "down" {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.mode == "down" {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies from src to dst while the proxy is up; while it hangs, data waits.
func (p *proxy) pipe(src, dst net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for {
				p.mu.Lock()
				mode, wake := p.mode, p.wake
				p.mu.Unlock()
				if mode == "down" {
					return
				}
				if mode == "up" {
					break
				}
				<-wake
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// proxied returns dsn with its host and port replaced by the proxy's.
func proxied(t testing.TB, dsn string, p *proxy) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}

// target returns the host:port of dsn.
func target(t testing.TB, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// proxiedPool opens a pool on dsn through a new proxy, with short connect timeouts.
func proxiedPool(t testing.TB, dsn string) (*pgxpool.Pool, *proxy) {
	t.Helper()
	p := startProxy(t, target(t, dsn))
	cfg, err := pgxpool.ParseConfig(proxied(t, dsn, p))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, p
}
