// Prints the partition Apache Kafka's Java producer picks for a set of keys, so the Go
// partitioner is checked against the real thing rather than against itself.
// Regenerate (needs the kafka-clients jar; `mvn dependency:copy-dependencies` on
// docker/kafka/pom.xml fetches it):
//   java -cp "libs/*" Murmur2Golden.java > murmur2.golden
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.utils.Utils;

public class Murmur2Golden {
    public static void main(String[] args) {
        String[] fixed = {"", "a", "21", "abc", "foobar", "a-little-bit-long-string",
            "a-little-bit-longer-string", "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            "bank.account/42", "ünïcødé-ключ-キー", "acct-000001"};
        int[] counts = {1, 2, 3, 12, 24, 100};
        System.out.println("# key(hex)\tmurmur2\tpartition for 1,2,3,12,24,100 partitions");
        for (int i = 0; i < fixed.length + 300; i++) {
            String key = i < fixed.length ? fixed[i] : "acct-" + (i * 7919L);
            byte[] b = key.getBytes(StandardCharsets.UTF_8);
            StringBuilder sb = new StringBuilder();
            for (byte x : b) sb.append(String.format("%02x", x));
            sb.append('\t').append(Utils.murmur2(b));
            for (int n : counts) sb.append('\t').append(BuiltInPartitioner.partitionForKey(b, n));
            System.out.println(sb);
        }
    }
}
