package dev.kastor.interop;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.utils.Utils;

/**
 * Reads a kastor events topic to its end and prints one line per event: aggregate ID,
 * version, type and the decoded event as JSON, separated by tabs. The recipe of
 * docs/wire-format.md; interop/interop_test.go checks its output.
 *
 * <p>Usage: ReadEvents BOOTSTRAP_SERVERS EVENTS_TOPIC
 */
public final class ReadEvents {
    public static void main(String[] args) throws Exception {
        String brokers = args[0], eventsTopic = args[1];

        // 1. Every writer schema, by the fingerprint in its key.
        Map<String, Schema> schemas = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : readAll(brokers, "_kastor.schemas")) {
            if (r.value() == null) continue; // a tombstone: no schema
            Schema s = new Schema.Parser().parse(new String(r.value(), StandardCharsets.UTF_8)); // a parser per schema: versions share names
            String fp = String.format("%016x", SchemaNormalization.parsingFingerprint64(s)); // big-endian hex of the long
            if (!fp.equals(new String(r.key(), StandardCharsets.UTF_8)))
                throw new IllegalStateException("schema " + s.getFullName() + ": fingerprint " + fp + " is not its key");
            schemas.put(fp, s);
        }

        // 2. The events, each decoded with its writer schema.
        for (ConsumerRecord<byte[], byte[]> r : readAll(brokers, eventsTopic)) {
            String id = new String(r.key(), StandardCharsets.UTF_8);
            Schema writer = schemas.get(header(r, "kastor.schema").toLowerCase(Locale.ROOT));
            byte[] value = r.value() == null ? new byte[0] : r.value(); // zero fields: empty (older data: null)
            GenericRecord event = new GenericDatumReader<GenericRecord>(writer) // add your reader schema to resolve
                    .read(null, DecoderFactory.get().binaryDecoder(value, null));
            System.out.println(id + "\t" + header(r, "kastor.version") + "\t" + header(r, "kastor.type") + "\t" + event);

            // Kafka's default partitioner places the key where kastor did.
            int want = Utils.toPositive(Utils.murmur2(r.key())) % partitionCount(brokers, eventsTopic);
            if (r.partition() != want)
                throw new IllegalStateException(id + " is in partition " + r.partition() + ", murmur2 says " + want);
        }
    }

    static Properties config(String brokers) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"); // the Java default is read_uncommitted
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return p;
    }

    /** Reads every partition of topic from its start to its end (the last stable offset). */
    static List<ConsumerRecord<byte[], byte[]>> readAll(String brokers, String topic) {
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(config(brokers))) {
            List<TopicPartition> parts = new ArrayList<>();
            c.partitionsFor(topic).forEach(p -> parts.add(new TopicPartition(topic, p.partition())));
            c.assign(parts);
            c.seekToBeginning(parts);
            Map<TopicPartition, Long> end = c.endOffsets(parts); // read_committed: the last stable offsets
            List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
            while (parts.stream().anyMatch(tp -> c.position(tp) < end.get(tp)))
                c.poll(Duration.ofMillis(200)).forEach(out::add);
            return out;
        }
    }

    /** The last value of a header, as kastor reads a header that repeats (kastor.tag aside). */
    static String header(ConsumerRecord<byte[], byte[]> r, String key) {
        Header h = r.headers().lastHeader(key);
        return h == null ? null : new String(h.value(), StandardCharsets.UTF_8);
    }

    private static final Map<String, Integer> partitions = new HashMap<>();

    static int partitionCount(String brokers, String topic) {
        return partitions.computeIfAbsent(topic, t -> {
            try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(config(brokers))) {
                return c.partitionsFor(t).size();
            }
        });
    }

    private ReadEvents() {}
}
