package org.apache.kafka.common.record;
// Stub: only what Lz4BlockOutputStream uses (LZ4.defaultLevel() = 9, as Kafka's CompressionType).
public enum CompressionType {
    LZ4;
    public int defaultLevel() { return 9; }
}
