package dev.kastor.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams peer of kastor's gateway in `make bench`: the bank account of
 * bench/domain.go. Each deposit command (key = account ID, value {"amount":N}) updates the
 * account's balance and version in a changelogged KeyValue store and emits one
 * MoneyDeposited event (value {"amount":N}, kastor's envelope headers) to the events topic
 * and one reply to the replies topic (key = the command's kastor.reply.to header), as the
 * gateway does, with processing.guarantee=exactly_once_v2.
 *
 * <p>Arguments are key=value: bootstrap, app, commands, events, replies, commit-ms, threads,
 * state-dir, and optionally client-id (the prefix of its clients' IDs, so that the bench can
 * tell instances apart in the group) and config.NAME=VALUE for any other Streams, consumer or
 * producer setting (the failover figure's tuned row; none is set otherwise). It prints "START epoch-ms" just before KafkaStreams.start() and "STATE name
 * epoch-ms" at each state change, and runs until it is terminated.
 */
public final class StreamsPeer {
  static final String STORE = "accounts";
  static final ObjectMapper JSON = new ObjectMapper();

  public static void main(String[] argv) throws Exception {
    Map<String, String> a = new HashMap<>();
    for (String s : argv) {
      int i = s.indexOf('=');
      if (i < 0) throw new IllegalArgumentException("want key=value, got " + s);
      a.put(s.substring(0, i), s.substring(i + 1));
    }
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, need(a, "app"));
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, need(a, "bootstrap"));
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.getOrDefault("commit-ms", "100"));
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, a.getOrDefault("threads", "1"));
    p.put(StreamsConfig.STATE_DIR_CONFIG, need(a, "state-dir"));
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    if (a.containsKey("client-id")) p.put(StreamsConfig.CLIENT_ID_CONFIG, a.get("client-id"));
    for (Map.Entry<String, String> e : a.entrySet()) {
      if (e.getKey().startsWith("config.")) p.put(e.getKey().substring("config.".length()), e.getValue());
    }

    Topology t = new Topology();
    t.addSource("commands", new StringDeserializer(), new ByteArrayDeserializer(), need(a, "commands"));
    t.addProcessor("decide", Account::new, "commands");
    t.addStateStore(
        Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.ByteArray()),
        "decide");
    t.addSink("events", need(a, "events"), new StringSerializer(), new ByteArraySerializer(), "decide");
    t.addSink("replies", need(a, "replies"), new StringSerializer(), new ByteArraySerializer(), "decide");

    KafkaStreams ks = new KafkaStreams(t, p);
    CountDownLatch stopped = new CountDownLatch(1);
    ks.setStateListener((now, before) -> {
      System.out.println("STATE " + now + " " + System.currentTimeMillis());
      System.out.flush();
      if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) stopped.countDown();
    });
    ks.setUncaughtExceptionHandler(e -> {
      e.printStackTrace();
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> ks.close(Duration.ofSeconds(10))));
    System.out.println("START " + System.currentTimeMillis());
    System.out.flush();
    ks.start();
    stopped.await();
  }

  static String need(Map<String, String> a, String k) {
    String v = a.get(k);
    if (v == null) throw new IllegalArgumentException("missing " + k + "=");
    return v;
  }

  /** Decide and evolve: one MoneyDeposited per positive deposit, the balance in the store. */
  static final class Account implements Processor<String, byte[], String, byte[]> {
    private ProcessorContext<String, byte[]> ctx;
    private KeyValueStore<String, byte[]> store;

    @Override
    public void init(ProcessorContext<String, byte[]> ctx) {
      this.ctx = ctx;
      this.store = ctx.getStateStore(STORE);
    }

    @Override
    public void process(Record<String, byte[]> r) {
      String id = r.key();
      String replyTo = header(r.headers(), "kastor.reply.to");
      String commandId = header(r.headers(), "kastor.command.id");
      long amount;
      try {
        JsonNode n = JSON.readTree(r.value());
        amount = n.path("amount").asLong();
      } catch (Exception e) {
        amount = 0;
      }
      byte[] cur = store.get(id);
      long balance = 0, version = 0;
      if (cur != null) {
        ByteBuffer b = ByteBuffer.wrap(cur);
        balance = b.getLong();
        version = b.getLong();
      }
      ObjectNode reply = JSON.createObjectNode().put("commandId", commandId).put("aggregateId", id);
      if (amount <= 0) {
        reply.put("status", "rejected").put("message", "amount must be positive");
      } else {
        balance += amount;
        version++;
        store.put(id, ByteBuffer.allocate(16).putLong(balance).putLong(version).array());
        byte[] ev = JSON.createObjectNode().put("amount", amount).toString().getBytes(StandardCharsets.UTF_8);
        Record<String, byte[]> e = r.withValue(ev).withHeaders(r.headers());
        Headers h = e.headers();
        h.remove("kastor.reply.to").remove("kastor.type").remove("kastor.schema");
        h.add("kastor.aggregate.type", "bank.account".getBytes(StandardCharsets.UTF_8));
        h.add("kastor.version", Long.toString(version).getBytes(StandardCharsets.UTF_8));
        h.add("kastor.type", "bank.MoneyDeposited".getBytes(StandardCharsets.UTF_8));
        h.add("kastor.schema", "0000000000000001".getBytes(StandardCharsets.UTF_8));
        ctx.forward(e, "events");
        reply.put("status", "ok").put("from", version).put("to", version);
      }
      if (replyTo != null) {
        byte[] rv = reply.toString().getBytes(StandardCharsets.UTF_8);
        ctx.forward(new Record<String, byte[]>(replyTo, rv, r.timestamp()), "replies");
      }
    }

    static String header(Headers hs, String k) {
      Header h = hs.lastHeader(k);
      return h == null ? null : new String(h.value(), StandardCharsets.UTF_8);
    }
  }
}
