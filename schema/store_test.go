package schema

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/kafkatest"
)

// testNamespace gives each test its own schema names: _kastor.schemas is shared by the
// tests of a cluster (and, on a real cluster, outlives them).
func testNamespace(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "kastortest.n" + hex.EncodeToString(b[:])
}

// inNamespace moves the bank schemas into ns.
func inNamespace(ns, schema string) *Schema {
	return MustParse(strings.Replace(schema, `"namespace":"bank"`, `"namespace":"`+ns+`"`, 1))
}

func createSchemasTopic(t *testing.T, c *kafkatest.Cluster) {
	t.Helper()
	c.CreateTopic(t, Topic, 1, 0, map[string]string{"cleanup.policy": "compact"})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// keysOf reads the topic's records and counts those of the given fingerprints.
func keysOf(t *testing.T, cl *kgo.Client, schemas ...*Schema) map[Fingerprint]int {
	t.Helper()
	recs, err := Store{Client: cl}.readAll(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Fingerprint{}
	for _, s := range schemas {
		want[s.Fingerprint().String()] = s.Fingerprint()
	}
	got := map[Fingerprint]int{}
	for _, r := range recs {
		if fp, ok := want[string(r.Key)]; ok {
			got[fp]++
		}
	}
	return got
}

// publishAndLoad is the startup sequence of two versions of a service, then of a broken
// third version, against a cluster.
func publishAndLoad(t *testing.T, c *kafkatest.Cluster) {
	ctx := testContext(t)
	createSchemasTopic(t, c)
	cl := c.Client(t)
	ns := testNamespace(t)
	v1, v2, v3 := inNamespace(ns, openedV1), inNamespace(ns, openedV2), inNamespace(ns, openedV3)
	typeName := ns + ".AccountOpened"

	// Version 1 of the service starts.
	reg1 := NewRegistry()
	w := MustCodec[OpenedV1](reg1, v1)
	if err := Publish(ctx, cl, reg1, v1); err != nil {
		t.Fatal(err)
	}
	if err := Publish(ctx, cl, reg1, v1); err != nil { // a restart
		t.Fatal(err)
	}
	if n := keysOf(t, cl, v1)[v1.Fingerprint()]; n != 1 {
		t.Errorf("v1 is %d times in the topic after two publications", n)
	}
	data, err := w.Encode(OpenedV1{AccountID: "a", Owner: "ann", Initial: 3, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}

	// Version 2 needs its upcaster to pass the check.
	reg2 := NewRegistry()
	r := MustCodec[AccountOpened](reg2, v2)
	err = Publish(ctx, cl, reg2, v2)
	wantErrContains(t, err, "nothing published", typeName, `field "holder" added without a default`)
	if !errors.Is(err, ErrIncompatible) {
		t.Errorf("refusal %v does not match ErrIncompatible", err)
	}
	if err := reg2.AddUpcaster(Upcaster{Type: typeName, Fingerprint: v1.Fingerprint(), Func: renameOwner}); err != nil {
		t.Fatal(err)
	}
	if err := Publish(ctx, cl, reg2, v2); err != nil {
		t.Fatal(err)
	}
	if got := reg2.History(typeName); len(got) != 2 || got[0] != v1 && got[0].Fingerprint() != v1.Fingerprint() || got[1] != v2 {
		t.Errorf("registry after Publish: %v", got)
	}
	got, err := r.Decode(v1.Fingerprint(), data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Holder != "ann" || got.Initial != 3 || got.Currency != "USD" {
		t.Errorf("v1 event read by v2: %+v", got)
	}

	// Version 3 is refused, naming the type and the fields; nothing is written.
	err = Publish(ctx, cl, reg2, v3)
	wantErrContains(t, err, "nothing published", typeName, `field "initial": type changed from long to int`, `field "branch" added without a default`)
	if n := keysOf(t, cl, v3)[v3.Fingerprint()]; n != 0 {
		t.Errorf("the refused v3 is in the topic %d times", n)
	}

	// A consumer without the producers' code loads every schema, in order.
	fresh := NewRegistry()
	if err := Load(ctx, cl, fresh); err != nil {
		t.Fatal(err)
	}
	h := fresh.History(typeName)
	if len(h) != 2 || h[0].Fingerprint() != v1.Fingerprint() || h[1].Fingerprint() != v2.Fingerprint() {
		t.Fatalf("loaded history %v", h)
	}
	if h[1].JSON() != v2.JSON() {
		t.Error("the stored schema is not the JSON as written")
	}
	native, writer, err := fresh.DecodeNative(v1.Fingerprint(), data, Limits{})
	if err != nil || writer.Name() != typeName || native.(map[string]any)["owner"] != "ann" {
		t.Errorf("generic decode: %v %v %v", native, writer, err)
	}
}

func TestStoreEmbedded(t *testing.T) {
	publishAndLoad(t, kafkatest.StartEmbedded(t))
}

func TestStoreKafka(t *testing.T) {
	publishAndLoad(t, kafka.Get(t))
}

func TestStoreMissingTopic(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	cl := c.Client(t)
	err := Load(testContext(t), cl, NewRegistry())
	var nt *NoTopicError
	if !errors.As(err, &nt) || !errors.Is(err, ErrNoSchemasTopic) {
		t.Fatalf("Load without the topic: %v", err)
	}
	wantErrContains(t, err, `"_kastor.schemas"`, "kastor topics apply")
	err = Publish(testContext(t), cl, nil, MustParse(openedV1))
	if !errors.As(err, &nt) {
		t.Fatalf("Publish without the topic: %v", err)
	}
}

func TestStoreMissingTopicKafka(t *testing.T) {
	c := kafka.Get(t)
	err := Store{Client: c.Client(t), Topic: kafkatest.TopicName(t)}.Load(testContext(t), NewRegistry())
	var nt *NoTopicError
	if !errors.As(err, &nt) {
		t.Fatalf("Load without the topic: %v", err)
	}
}

// TestStoreTransactions: records of aborted transactions are not schemas, and control
// records at the end of the topic do not keep Load waiting for offsets it never sees.
func TestStoreTransactions(t *testing.T) {
	for name, c := range map[string]func(*testing.T) *kafkatest.Cluster{
		"embedded": func(t *testing.T) *kafkatest.Cluster { return kafkatest.StartEmbedded(t) },
		"kafka":    func(t *testing.T) *kafkatest.Cluster { return kafka.Get(t) },
	} {
		t.Run(name, func(t *testing.T) {
			c := c(t)
			ctx := testContext(t)
			createSchemasTopic(t, c)
			ns := testNamespace(t)
			committed, aborted := inNamespace(ns, openedV1), inNamespace(ns, openedV2)
			txn := c.Client(t, kgo.TransactionalID("schema-test-"+ns), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
			for _, tc := range []struct {
				s      *Schema
				commit kgo.TransactionEndTry
			}{{committed, kgo.TryCommit}, {aborted, kgo.TryAbort}} {
				if err := txn.BeginTransaction(); err != nil {
					t.Fatal(err)
				}
				rec := &kgo.Record{Topic: Topic, Key: []byte(tc.s.Fingerprint().String()), Value: []byte(tc.s.JSON())}
				if err := txn.ProduceSync(ctx, rec).FirstErr(); err != nil {
					t.Fatal(err)
				}
				if err := txn.EndTransaction(ctx, tc.commit); err != nil {
					t.Fatal(err)
				}
			}
			reg := NewRegistry()
			if err := Load(ctx, c.Client(t), reg); err != nil {
				t.Fatal(err)
			}
			if _, ok := reg.Schema(committed.Fingerprint()); !ok {
				t.Error("the committed schema is missing")
			}
			if _, ok := reg.Schema(aborted.Fingerprint()); ok {
				t.Error("the aborted schema was loaded")
			}
		})
	}
}

// TestStoreBadRecords: a record that is not a schema under its key is reported, and does
// not hide the others; Publish refuses to go on over it. (Embedded only: the bad record
// would stay in a shared topic.)
func TestStoreBadRecords(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	ctx := testContext(t)
	createSchemasTopic(t, c)
	cl := c.Client(t)
	v1 := MustParse(openedV1)
	if err := Publish(ctx, cl, nil, v1); err != nil {
		t.Fatal(err)
	}
	bad := []*kgo.Record{
		{Topic: Topic, Key: []byte("not-a-fingerprint"), Value: []byte(`"int"`)},
		{Topic: Topic, Key: []byte("0000000000000001"), Value: []byte(`"int"`)},
		{Topic: Topic, Key: []byte("0000000000000002"), Value: []byte(`{"type":`)},
		{Topic: Topic, Key: []byte(MustParse(`"int"`).Fingerprint().String()), Value: []byte(`"int"`),
			Headers: []kgo.RecordHeader{{Key: HeaderSchemaType, Value: []byte("long")}}},
		{Topic: Topic, Key: []byte("0000000000000003")}, // a tombstone: ignored
	}
	if err := cl.ProduceSync(ctx, bad...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	err := Load(ctx, cl, reg)
	if !errors.Is(err, kastor.ErrUndecodable) {
		t.Fatalf("Load = %v, want undecodable records", err)
	}
	wantErrContains(t, err, "not 16 hexadecimal digits", "not its key", "invalid Avro schema", `header kastor.schema.type is "long"`, "_kastor.schemas/0@")
	if _, ok := reg.Schema(v1.Fingerprint()); !ok {
		t.Error("a bad record hid a good one")
	}
	if err := Publish(ctx, cl, nil, MustParse(openedV2)); !errors.Is(err, kastor.ErrUndecodable) {
		t.Errorf("Publish over bad records: %v", err)
	}
}

// TestStoreSameFingerprint: the fingerprint ignores logical types, so a decimal whose scale
// changed keeps its fingerprint; Publish must still refuse it (readers would misread every
// amount by a power of ten).
func TestStoreSameFingerprint(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	ctx := testContext(t)
	createSchemasTopic(t, c)
	cl := c.Client(t)
	money := func(scale string) *Schema {
		return MustParse(`{"type":"record","name":"bank.Paid","fields":[{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":` + scale + `}}]}`)
	}
	if err := Publish(ctx, cl, nil, money("2")); err != nil {
		t.Fatal(err)
	}
	if money("2").Fingerprint() != money("4").Fingerprint() {
		t.Fatal("the fingerprint covers the scale: the test is moot")
	}
	err := Publish(ctx, cl, nil, money("4"))
	wantErrContains(t, err, "nothing published", `field "amount": decimal scale changed from 2 to 4`)
	// A timestamp over a plain long is the same data read more precisely: accepted.
	at := func(logical string) *Schema {
		return MustParse(`{"type":"record","name":"bank.Stamp","fields":[{"name":"at","type":{"type":"long"` + logical + `}}]}`)
	}
	if err := Publish(ctx, cl, nil, at("")); err != nil {
		t.Fatal(err)
	}
	if err := Publish(ctx, cl, nil, at(`,"logicalType":"timestamp-millis"`)); err != nil {
		t.Errorf("logical type added: %v", err)
	}
}
