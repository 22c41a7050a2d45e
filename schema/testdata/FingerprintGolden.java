// Prints the Parsing Canonical Form and CRC-64-AVRO fingerprint that Apache Avro's Java
// implementation computes for each schema in schemas.txt, so kastor's fingerprints are
// checked against the reference rather than against themselves.
// Regenerate (needs the avro jar and its Jackson dependencies, fetched by
// `mvn dependency:get -Dartifact=org.apache.avro:avro:1.12.0`):
//   M=~/.m2/repository
//   CP=$M/org/apache/avro/avro/1.12.0/avro-1.12.0.jar:$M/com/fasterxml/jackson/core/jackson-core/2.17.2/jackson-core-2.17.2.jar:$M/com/fasterxml/jackson/core/jackson-databind/2.17.2/jackson-databind-2.17.2.jar:$M/com/fasterxml/jackson/core/jackson-annotations/2.17.2/jackson-annotations-2.17.2.jar:$M/org/slf4j/slf4j-api/2.0.13/slf4j-api-2.0.13.jar
//   java -cp "$CP" FingerprintGolden.java < schemas.txt > fingerprints.golden
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

public class FingerprintGolden {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        System.out.println("# fingerprint(hex)\tparsing canonical form, one line per schema of schemas.txt (Avro " + Schema.class.getPackage().getImplementationVersion() + ")");
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isBlank() || line.startsWith("#")) continue;
            Schema s = new Schema.Parser().parse(line);
            System.out.println(String.format("%016x", SchemaNormalization.parsingFingerprint64(s)) + "\t" + SchemaNormalization.toParsingForm(s));
        }
    }
}
