package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
)

// The Watermill peer: Watermill's CQRS component over Kafka (watermill-kafka v3, Sarama),
// command bus -> command handler -> event bus, running the same bank-account Decide and
// Evolve as the gateway. Watermill has no event store: the handler keeps each account's
// state in a map in memory, and delivery is at-least-once (a command is acked, and its
// offset committed, after its event is published; a crash in between publishes the event
// again). The gateway, for comparison, commits events, replies, snapshots and the command
// offsets in one Kafka transaction and can restore its state.
//
// Layout: one commands topic and one events topic of p.partitions partitions each. The
// command's payload is the gateway's ({"amount":1}); the account goes, as in kastor, in the
// record key (Watermill's partitioning marshaler) and a header ("account" metadata).

const (
	wmAccount   = "account"    // metadata: the aggregate ID, also the Kafka key
	wmCommandID = "command_id" // metadata of an event: the UUID of the command that produced it
)

type wmTopics struct{ ns, commands, events string }

func newWMTopics(ctx context.Context, c *kafkatest.Cluster, partitions int32) (wmTopics, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "wm" + hex.EncodeToString(b[:])
	ts := wmTopics{ns: ns, commands: ns + ".bank.account.commands", events: ns + ".bank.account.events"}
	for _, t := range []string{ts.commands, ts.events} {
		if err := c.CreateTopicContext(ctx, t, partitions, 1, nil); err != nil {
			return ts, err
		}
	}
	return ts, nil
}

// wmProducerConfig is the Sarama config of every Watermill publisher (command bus and event
// bus). Watermill's default (DefaultSaramaSyncPublisherConfig) is acks=WaitForLocal, not
// idempotent, protocol 1.0. For a fair comparison with the gateway's transactional
// producer we choose acks=all and the idempotent producer (which needs one request in
// flight per broker), and the broker's protocol version (Kafka 4 refuses the old request
// versions Sarama uses for 1.0). Publishing stays synchronous (SyncProducer): Publish
// returns once the broker has acknowledged the event. No linger (Sarama's default).
func wmProducerConfig() *sarama.Config {
	cfg := kafka.DefaultSaramaSyncPublisherConfig()
	cfg.Version = sarama.V4_1_0_0
	cfg.ClientID = "watermill-bench"
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

// wmConsumerConfig is the Sarama config of the subscribers: Watermill's default (consumer
// group, offsets auto-committed every second once messages are acked), starting from the
// oldest offset since the topics are fresh, and the broker's protocol version.
func wmConsumerConfig() *sarama.Config {
	cfg := kafka.DefaultSaramaSubscriberConfig()
	cfg.Version = sarama.V4_1_0_0
	cfg.ClientID = "watermill-bench"
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	return cfg
}

var wmNames = cqrs.JSONMarshaler{GenerateName: func(v any) string {
	switch v.(type) {
	case deposit, *deposit:
		return "bank.Deposit"
	case deposited, *deposited:
		return "bank.MoneyDeposited"
	}
	return cqrs.FullyQualifiedStructName(v)
}}

var wmMarshaler = kafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) {
	return m.Metadata.Get(wmAccount), nil
})

// wmApp is one Watermill service: a router running the command processor (and, for the
// latency run, an event processor that observes the events).
type wmApp struct {
	router *message.Router
	pub    *kafka.Publisher
	errc   chan error
}

// newWMApp builds the command side; handled is called after each command's event is
// published; observed, if not nil, by an event handler on the events topic for each event.
func newWMApp(brokers []string, ts wmTopics, handled func(), observed func(commandID string)) (*wmApp, error) {
	logger := watermill.NopLogger{}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		return nil, err
	}
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers, Marshaler: wmMarshaler, OverwriteSaramaConfig: wmProducerConfig()}, logger)
	if err != nil {
		return nil, err
	}
	eventBus, err := cqrs.NewEventBusWithConfig(pub, cqrs.EventBusConfig{
		GeneratePublishTopic: func(cqrs.GenerateEventPublishTopicParams) (string, error) { return ts.events, nil },
		// The event keeps its command's account (key) and ID.
		OnPublish: func(params cqrs.OnEventSendParams) error {
			cmd := cqrs.OriginalMessageFromCtx(params.Message.Context())
			if cmd == nil {
				return errors.New("event published outside a command handler")
			}
			params.Message.Metadata.Set(wmAccount, cmd.Metadata.Get(wmAccount))
			params.Message.Metadata.Set(wmCommandID, cmd.UUID)
			return nil
		},
		Marshaler: wmNames, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	subscriber := func(group string) (message.Subscriber, error) {
		return kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: brokers, Unmarshaler: wmMarshaler,
			OverwriteSaramaConfig: wmConsumerConfig(), ConsumerGroup: group}, logger)
	}
	cp, err := cqrs.NewCommandProcessorWithConfig(router, cqrs.CommandProcessorConfig{
		GenerateSubscribeTopic: func(cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) { return ts.commands, nil },
		SubscriberConstructor: func(params cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return subscriber(ts.ns + "-" + params.HandlerName)
		},
		Marshaler: wmNames, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	// The account state, in memory. A partition's commands are handled one at a time (the
	// subscriber waits for each ack), and an account lives on one partition, so the lock
	// only guards the map.
	var mu sync.Mutex
	states := map[string]account{}
	err = cp.AddHandlers(cqrs.NewCommandHandler("deposit", func(ctx context.Context, cmd *deposit) error {
		id := cqrs.OriginalMessageFromCtx(ctx).Metadata.Get(wmAccount)
		mu.Lock()
		s, ok := states[id]
		mu.Unlock()
		if !ok {
			s = accountAggregate.Initial(id)
		}
		evs, err := accountAggregate.Decide(s, *cmd)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if err := eventBus.Publish(ctx, &e); err != nil {
				return err
			}
			s = accountAggregate.Evolve(s, e)
		}
		mu.Lock()
		states[id] = s
		mu.Unlock()
		handled()
		return nil
	}))
	if err != nil {
		return nil, err
	}
	if observed != nil {
		ep, err := cqrs.NewEventProcessorWithConfig(router, cqrs.EventProcessorConfig{
			GenerateSubscribeTopic: func(cqrs.EventProcessorGenerateSubscribeTopicParams) (string, error) { return ts.events, nil },
			SubscriberConstructor: func(params cqrs.EventProcessorSubscriberConstructorParams) (message.Subscriber, error) {
				return subscriber(ts.ns + "-" + params.HandlerName)
			},
			Marshaler: wmNames, Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		err = ep.AddHandlers(cqrs.NewEventHandler("observer", func(ctx context.Context, _ *deposited) error {
			observed(cqrs.OriginalMessageFromCtx(ctx).Metadata.Get(wmCommandID))
			return nil
		}))
		if err != nil {
			return nil, err
		}
	}
	return &wmApp{router: router, pub: pub}, nil
}

func (a *wmApp) start(ctx context.Context) {
	a.errc = make(chan error, 1)
	go func() { a.errc <- a.router.Run(ctx) }()
}

func (a *wmApp) stop() {
	_ = a.router.Close()
	<-a.errc
	_ = a.pub.Close()
}

// wmPreload appends n deposit commands in Watermill's Kafka format (a UUID header, the
// command name and the account in metadata headers, JSON payload), keyed by account.
func wmPreload(ctx context.Context, c *kafkatest.Cluster, ts wmTopics, p params) error {
	payload, _ := json.Marshal(deposit{Amount: 1})
	return produceAll(ctx, c, p.commands, func(i int) *kgo.Record {
		acct := fmt.Sprintf("acct-%06d", i%p.aggregates)
		hs := []kgo.RecordHeader{
			{Key: kafka.UUIDHeaderKey, Value: fmt.Appendf(nil, "cmd-%08d", i)},
			{Key: "name", Value: []byte("bank.Deposit")},
			{Key: wmAccount, Value: []byte(acct)},
		}
		return &kgo.Record{Topic: ts.commands, Partition: producer.PartitionFor([]byte(acct), p.partitions),
			Key: []byte(acct), Value: payload, Headers: hs}
	})
}

// wmBudget bounds the Watermill throughput run. Watermill handles about a fifth of the
// gateway's rate here, so p.commands (100,000, as for the others) takes about 40 s on the
// idle bench machine; on a busier one the run stops after wmBudget and its figure is the
// rate until then. One round, not a median of three: three would add about 80 s to
// `make bench`, and the ratio to the gateway (about 5) is far outside the noise.
const wmBudget = 60 * time.Second

type wmThroughputResult struct {
	perSecond float64
	handled   int // commands handled when the run ended: p.commands unless wmBudget ran out
}

// watermillThroughput runs the Watermill command processor over p.commands preloaded
// commands until each has published its event, or for wmBudget: commands per second. As
// for the gateway, the time includes the processor's start (joining its consumer group),
// which -v prints.
func watermillThroughput(ctx context.Context, c *kafkatest.Cluster, p params) (wmThroughputResult, error) {
	ts, err := newWMTopics(ctx, c, p.partitions)
	if err != nil {
		return wmThroughputResult{}, err
	}
	if err := wmPreload(ctx, c, ts, p); err != nil {
		return wmThroughputResult{}, err
	}
	var n atomic.Int64
	var first atomic.Int64
	finished := make(chan struct{})
	app, err := newWMApp(c.Brokers(), ts, func() {
		switch n.Add(1) {
		case 1:
			first.Store(time.Now().UnixNano())
		case int64(p.commands):
			close(finished)
		}
	}, nil)
	if err != nil {
		return wmThroughputResult{}, err
	}
	start := time.Now()
	app.start(ctx)
	defer app.stop()
	select {
	case <-finished:
	case err := <-app.errc:
		app.errc <- err
		return wmThroughputResult{}, fmt.Errorf("watermill router stopped: %v", err)
	case <-time.After(wmBudget):
		if n.Load() == 0 {
			return wmThroughputResult{}, fmt.Errorf("watermill: no command handled after %v", wmBudget)
		}
	}
	took := time.Since(start)
	handled := int(n.Load())
	if verbose {
		fmt.Printf("  watermill throughput: %d of %d commands in %v, first event after %v\n",
			handled, p.commands, took.Round(time.Millisecond), time.Unix(0, first.Load()).Sub(start).Round(time.Millisecond))
	}
	return wmThroughputResult{perSecond: float64(handled) / took.Seconds(), handled: handled}, nil
}

// watermillLatency sends commands through Watermill's CommandBus (its own synchronous
// publisher, as a separate client would) at the given rate and measures, for each, the
// time from Send to its event reaching an event handler subscribed to the events topic.
// Commands whose event has not arrived wmDrain after the last send are reported as missing
// and count as slower than every observed one.
func watermillLatency(ctx context.Context, c *kafkatest.Cluster, p params, rate float64) (latencies, int, error) {
	ts, err := newWMTopics(ctx, c, p.partitions)
	if err != nil {
		return latencies{}, 0, err
	}
	tr := newTracker(func(id string) bool { return id[0] == 'w' })
	app, err := newWMApp(c.Brokers(), ts, func() {}, func(id string) {
		tr.seen(id, time.Now())
		tr.notify()
	})
	if err != nil {
		return latencies{}, 0, err
	}
	app.start(ctx)
	defer app.stop()

	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: c.Brokers(), Marshaler: wmMarshaler, OverwriteSaramaConfig: wmProducerConfig()}, watermill.NopLogger{})
	if err != nil {
		return latencies{}, 0, err
	}
	defer pub.Close()
	bus, err := cqrs.NewCommandBusWithConfig(pub, cqrs.CommandBusConfig{
		GeneratePublishTopic: func(cqrs.CommandBusGeneratePublishTopicParams) (string, error) { return ts.commands, nil },
		Marshaler:            wmNames,
	})
	if err != nil {
		return latencies{}, 0, err
	}
	var sendErr atomic.Value
	var mu sync.Mutex
	var sends []time.Duration // how long each Send took (the command bus's synchronous publish)
	send := func(id, acct string) error {
		t0 := time.Now()
		tr.send(id)
		err := bus.SendWithModifiedMessage(ctx, &deposit{Amount: 1}, func(m *message.Message) error {
			m.UUID = id
			m.Metadata.Set(wmAccount, acct)
			return nil
		})
		d := time.Since(t0)
		mu.Lock()
		sends = append(sends, d)
		mu.Unlock()
		return err
	}
	if _, err := warmUp(tr.got, time.Minute, func(i int) error { return send(fmt.Sprintf("warm-%d", i), "warm-up") }, tr.ready); err != nil {
		return latencies{}, 0, fmt.Errorf("watermill: %w", err)
	}
	total := int(rate * latencyRun.Seconds())
	var wg sync.WaitGroup
	// Send blocks until the broker acknowledges: each runs on its own, as callers would.
	pace(rate, total, func(i int) {
		wg.Go(func() {
			if err := send(fmt.Sprintf("cmd-%08d", i), fmt.Sprintf("acct-%06d", i%p.aggregates)); err != nil {
				sendErr.CompareAndSwap(nil, err)
			}
		})
	})
	wg.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		return latencies{}, 0, err
	}
	// What is still missing after wmDrain counts as lost, not as a failed run.
	_, _ = await(tr.got, wmDrain, tr.timedAtLeast(total), nil)
	lats := tr.latencies()
	if len(lats) == 0 {
		return latencies{}, total, errors.New("watermill: no event observed")
	}
	missing := total - len(lats)
	if verbose {
		mu.Lock()
		sp := percentiles(sends)
		mu.Unlock()
		fmt.Printf("  watermill latency at %.0f/s: Send (publish) p50 %.1f ms p99 %.1f ms; %d of %d events seen\n",
			rate, ms(sp.p50), ms(sp.p99), len(lats), total)
	}
	// A missing event counts as slower than every observed one.
	for range missing {
		lats = append(lats, time.Duration(1<<62))
	}
	return percentiles(lats), missing, nil
}

// wmDrain is how long the latency run waits for the last events after the last send.
const wmDrain = 10 * time.Second

const wmPeer = "Watermill CQRS (at-least-once, no event store)"

// watermillBench runs both Watermill measurements and prints them beside the gateway's.
// When Watermill cannot keep up with the gateway's latency rate (events still missing
// wmDrain after the last send), it measures its latency again at half of its own peak.
func watermillBench(ctx context.Context, c *kafkatest.Cluster, p params, gw float64, gwLat latencies, rate float64, what string) error {
	r, err := watermillThroughput(ctx, c, p)
	if err != nil {
		return err
	}
	note := fmt.Sprintf("%d commands, one round", p.commands)
	if r.handled < p.commands {
		note = fmt.Sprintf("stopped after %v: %d of %d commands handled", wmBudget, r.handled, p.commands)
	}
	wm := r.perSecond
	fmt.Printf("%-44s %10.0f   %s %10.0f   ratio kastor/watermill %.2f (%s)\n",
		"gateway vs Watermill CQRS (commands/s)", gw, wmPeer, wm, gw/wm, note)
	fmtLat := func(d time.Duration) string {
		if d >= time.Duration(1<<62) {
			return "    lost"
		}
		return fmt.Sprintf("%6.1f ms", ms(d))
	}
	lat, missing, err := watermillLatency(ctx, c, p, rate)
	if err != nil {
		return err
	}
	note = ""
	if missing > 0 {
		note = fmt.Sprintf(" — overloaded: %d of %d events not seen %v after the last send", missing, int(rate*latencyRun.Seconds()), wmDrain)
	}
	fmt.Printf("%-44s p50 %6.1f ms  p99 %6.1f ms   %s Send->event p50 %s  p99 %s   at %.0f commands/s (%s)%s\n",
		"gateway vs Watermill CQRS latency", ms(gwLat.p50), ms(gwLat.p99), wmPeer, fmtLat(lat.p50), fmtLat(lat.p99), rate, what, note)
	if missing == 0 {
		return nil
	}
	own := wm / 2
	lat, missing, err = watermillLatency(ctx, c, p, own)
	if err != nil {
		return err
	}
	note = ""
	if missing > 0 {
		note = fmt.Sprintf(" — %d of %d events not seen %v after the last send", missing, int(own*latencyRun.Seconds()), wmDrain)
	}
	fmt.Printf("%-44s %s Send->event p50 %s  p99 %s   at %.0f commands/s (half of its own peak)%s\n",
		"Watermill CQRS latency at its own rate", wmPeer, fmtLat(lat.p50), fmtLat(lat.p99), own, note)
	return nil
}

// watermillPart is the -only watermill part: it takes the gateway's figures from the
// throughput and latency parts of the same run, measuring those that did not run.
func watermillPart(ctx context.Context, c *kafkatest.Cluster, p params, gw float64, gwLat latencies, rate float64) error {
	var err error
	if gw == 0 {
		if gw, err = gatewayThroughput(ctx, c, p); err != nil {
			return err
		}
	}
	what := "given rate"
	if rate == 0 {
		rate, what = gw/2, "half of the gateway's peak"
	}
	if gwLat == (latencies{}) {
		if gwLat, err = gatewayLatency(ctx, c, p, rate); err != nil {
			return err
		}
	}
	return watermillBench(ctx, c, p, gw, gwLat, rate, what)
}
