// For each case of resolve.txt (writer schema, reader schema, datum), prints what Apache
// Avro's Java implementation says: whether the reader can read the writer's data
// (SchemaCompatibility), the datum's binary encoding with the writer schema, and the datum
// as the reader reads it (GenericDatumReader(writer, reader), written as Avro JSON with
// the reader schema) or the error it raises. kastor's resolver and compatibility check are
// tested against these verdicts.
// Regenerate with the classpath of FingerprintGolden.java:
//   java -cp "$CP" ResolveGolden.java < resolve.txt > resolve.golden
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.io.JsonEncoder;

public class ResolveGolden {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        System.out.println("# name\tcompatible|incompatible\twriter binary (hex)\treader's datum (Avro JSON) or error: message (Avro "
            + Schema.class.getPackage().getImplementationVersion() + ")");
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isBlank() || line.startsWith("#")) continue;
            String[] f = line.split("\t");
            Schema w = new Schema.Parser().parse(f[1]);
            Schema r = new Schema.Parser().parse(f[2]);
            SchemaCompatibility.SchemaCompatibilityType c =
                SchemaCompatibility.checkReaderWriterCompatibility(r, w).getType();
            String compat = c == SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE ? "compatible" : "incompatible";
            Object datum = new GenericDatumReader<Object>(w).read(null, DecoderFactory.get().jsonDecoder(w, f[3]));
            ByteArrayOutputStream bos = new ByteArrayOutputStream();
            BinaryEncoder enc = EncoderFactory.get().binaryEncoder(bos, null);
            new GenericDatumWriter<Object>(w).write(datum, enc);
            enc.flush();
            byte[] bin = bos.toByteArray();
            StringBuilder hex = new StringBuilder();
            for (byte b : bin) hex.append(String.format("%02x", b));
            String result;
            try {
                Object read = new GenericDatumReader<Object>(w, r).read(null, DecoderFactory.get().binaryDecoder(bin, null));
                ByteArrayOutputStream jos = new ByteArrayOutputStream();
                JsonEncoder je = EncoderFactory.get().jsonEncoder(r, jos);
                new GenericDatumWriter<Object>(r).write(read, je);
                je.flush();
                result = jos.toString(StandardCharsets.UTF_8);
            } catch (Exception e) {
                result = "error: " + e.getClass().getSimpleName() + ": " + e.getMessage();
            }
            System.out.println(f[0] + "\t" + compat + "\t" + hex + "\t" + result.replace("\n", " "));
        }
    }
}
