/*
 * Reads Avro object container files with Apache Avro's own Java reader (DataFileReader +
 * GenericDatumReader, the writer's schema from the file header) and prints each file as one
 * JSON line:
 *
 *   {"file": PATH, "codec": "null"|"deflate"|..., "schema": WRITER SCHEMA (JSON),
 *    "blocks": N, "records": [{field: value, ...}, ...]}
 *
 * Values are printed as read, no logical types applied (timestamp-millis stays a long):
 * long/int as JSON integers, double/float as Java's Double.toString (always with a '.' or an
 * exponent, so a reader can tell them from integers; NaN and Infinity as the bare words
 * Python's json accepts), strings JSON-escaped, enums as their symbol, bytes/fixed as
 * {"$bytes": hex}, unions as the branch's value (no type wrapper), arrays, maps, records.
 *
 * A bad file (wrong magic, a block not followed by the sync marker, a short block, a codec
 * Java does not know, a body that does not decode) ends the program with a stack trace and
 * exit status 1.
 *
 * Usage: java -cp 'classes:lib/*' AvroToJson FILE...   (tools/avro-java/avro_java.py)
 */
import java.io.File;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import org.apache.avro.Schema;
import org.apache.avro.file.DataFileReader;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;

public final class AvroToJson {
    private AvroToJson() {}

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        for (String path : args) {
            StringBuilder sb = new StringBuilder(1 << 16);
            GenericDatumReader<GenericRecord> datum = new GenericDatumReader<>();
            try (DataFileReader<GenericRecord> reader = new DataFileReader<>(new File(path), datum)) {
                Schema schema = reader.getSchema();
                String codec = reader.getMetaString("avro.codec");
                sb.append("{\"file\":");
                string(sb, path);
                sb.append(",\"codec\":");
                string(sb, codec == null ? "null" : codec);
                sb.append(",\"schema\":").append(schema.toString());
                sb.append(",\"records\":[");
                GenericRecord record = null;
                long blocks = 0;
                long lastSync = -1;
                boolean first = true;
                while (reader.hasNext()) {
                    long sync = reader.previousSync();  // start of the block being read
                    if (sync != lastSync) {
                        blocks++;
                        lastSync = sync;
                    }
                    record = reader.next(record);
                    if (!first) {
                        sb.append(',');
                    }
                    first = false;
                    value(sb, record);
                }
                sb.append("],\"blocks\":").append(blocks).append('}');
            }
            out.println(sb);
        }
        out.flush();
        if (out.checkError()) {
            System.exit(2);
        }
    }

    private static void value(StringBuilder sb, Object v) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof GenericRecord) {
            GenericRecord r = (GenericRecord) v;
            sb.append('{');
            boolean first = true;
            for (Schema.Field f : r.getSchema().getFields()) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                string(sb, f.name());
                sb.append(':');
                value(sb, r.get(f.pos()));
            }
            sb.append('}');
        } else if (v instanceof CharSequence) {
            string(sb, v.toString());
        } else if (v instanceof Long || v instanceof Integer) {
            sb.append(v.toString());
        } else if (v instanceof Double || v instanceof Float) {
            // a float widened to double exactly: the value fastavro gives for an Avro float
            sb.append(Double.toString(((Number) v).doubleValue()));
        } else if (v instanceof Boolean) {
            sb.append(((Boolean) v) ? "true" : "false");
        } else if (v instanceof GenericEnumSymbol) {
            string(sb, v.toString());
        } else if (v instanceof ByteBuffer) {
            ByteBuffer b = ((ByteBuffer) v).duplicate();
            byte[] raw = new byte[b.remaining()];
            b.get(raw);
            hex(sb, raw);
        } else if (v instanceof GenericFixed) {
            hex(sb, ((GenericFixed) v).bytes());
        } else if (v instanceof List) {
            sb.append('[');
            boolean first = true;
            for (Object item : (List<?>) v) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                value(sb, item);
            }
            sb.append(']');
        } else if (v instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                string(sb, e.getKey().toString());
                sb.append(':');
                value(sb, e.getValue());
            }
            sb.append('}');
        } else {
            throw new IllegalStateException("unexpected Avro value " + v.getClass() + ": " + v);
        }
    }

    private static void hex(StringBuilder sb, byte[] raw) {
        sb.append("{\"$bytes\":\"");
        for (byte x : raw) {
            sb.append(Character.forDigit((x >> 4) & 0xF, 16)).append(Character.forDigit(x & 0xF, 16));
        }
        sb.append("\"}");
    }

    private static void string(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20 || Character.isSurrogate(c)) {
                        // surrogates escaped too: a lone one (not valid UTF-16) still reaches the reader
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }
}
