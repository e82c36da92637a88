import java.io.*;
import java.nio.file.*;
import org.apache.kafka.common.compress.GzipOutputStream;
import org.apache.kafka.common.compress.Lz4BlockOutputStream;
import org.xerial.snappy.SnappyOutputStream;
import com.github.luben.zstd.ZstdOutputStreamNoFinalizer;

// Writes payloads through the same stream classes and arguments Kafka's clients use
// (clients/src/main/java/org/apache/kafka/common/compress/*Compression.java).
public class Gen {
    static byte[] text() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 40; i++)
            sb.append("{\"user\":").append(i * 37 % 101).append(",\"event\":\"page_view\",\"url\":\"/p/").append(i * 7919 % 1000).append("\"}\n");
        return sb.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }
    // 100,000 bytes: spans 4 xerial chunks (32 KiB) and 2 LZ4 blocks (64 KiB); compresses well.
    static byte[] big() {
        byte[] b = new byte[100_000];
        for (int i = 0; i < b.length; i++) b[i] = (byte) ((i % 251) ^ (i / 4096));
        return b;
    }
    interface Wrap { OutputStream wrap(OutputStream o) throws IOException; }
    static void write(String dir, String name, byte[] payload, Wrap w) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (OutputStream o = w.wrap(bos)) { o.write(payload); }
        Files.write(Paths.get(dir, name), bos.toByteArray());
    }
    public static void main(String[] args) throws Exception {
        String dir = args[0];
        Files.write(Paths.get(dir, "text.raw"), text());
        Files.write(Paths.get(dir, "big.raw"), big());
        for (String p : new String[] {"text", "big", "empty"}) {
            byte[] payload = p.equals("text") ? text() : p.equals("big") ? big() : new byte[0];
            // GzipCompression.wrapForOutput: BufferedOutputStream(GzipOutputStream(buffer, 8 KiB, level), 16 KiB); default level -1.
            write(dir, p + ".gzip", payload, o -> new BufferedOutputStream(new GzipOutputStream(o, 8 * 1024, -1), 16 * 1024));
            // SnappyCompression.wrapForOutput: new SnappyOutputStream(buffer) (32 KiB blocks).
            write(dir, p + ".snappy", payload, o -> new SnappyOutputStream(o));
            // Lz4Compression.wrapForOutput: Lz4BlockOutputStream(buffer, level, magic == V0) with level 9 (the default).
            write(dir, p + ".lz4", payload, o -> new Lz4BlockOutputStream(o, 9, false));
            // Lz4 at a non-default level: lz4-java's high compressor.
            write(dir, p + ".lz4hc", payload, o -> new Lz4BlockOutputStream(o, 12, false));
            // ZstdCompression.wrapForOutput: BufferedOutputStream(ZstdOutputStreamNoFinalizer(buffer, pool, level), 16 KiB); default level 3.
            write(dir, p + ".zstd", payload, o -> new BufferedOutputStream(new ZstdOutputStreamNoFinalizer(o, 3), 16 * 1024));
        }
    }
}
