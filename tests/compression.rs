//! Compressed batches end to end: the producer's `compression.type`, the topic's
//! `compression.type` (producer keeps, a codec recompresses), reads and consumers seeking into
//! the middle of a compressed batch, `append_batches` with compressed client batches, the size
//! limit on the compressed batch, compaction keeping each batch's codec, and retention.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use embroker::codec::{self, Compression, CompressionCodec};
use embroker::{
    Broker, CleanupPolicy, ConsumerConfig, ManualClock, OffsetReset, Partition, ProducerConfig,
    ProducerRecord, TopicCompression, TopicConfig, TopicPartition,
};

const T0: i64 = 1_700_000_000_000;
const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// The codec id of every batch stored in the partition's `.log` files, in order.
fn stored_codecs(dir: &Path, topic_partition: &str) -> Vec<i16> {
    let mut logs: Vec<_> = std::fs::read_dir(dir.join(topic_partition))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut ids = Vec::new();
    for log in logs {
        let bytes = std::fs::read(&log).unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let batch = codec::decode_batch(&bytes[at..]).unwrap();
            ids.push(batch.header.compression_id());
            at += batch.header.total_bytes();
        }
    }
    ids
}

/// A value that compresses well, distinct per `i`.
fn value(i: usize) -> String {
    format!("value {i:06} {}", "lorem ipsum dolor sit amet ".repeat(8))
}

fn produce(broker: &Broker, topic: &str, codec: Compression, n: usize) {
    let producer = broker
        .producer(
            ProducerConfig::default()
                .compression_type(codec)
                .linger_ms(1000)
                .batch_size(64 * 1024),
        )
        .unwrap();
    let futures: Vec<_> = (0..n)
        .map(|i| {
            producer
                .send(
                    ProducerRecord::new(topic.to_string(), value(i))
                        .key(format!("k{}", i % 50))
                        .header("i", i.to_string())
                        .timestamp(T0 + i as i64),
                )
                .unwrap()
        })
        .collect();
    producer.flush().unwrap();
    for f in futures {
        f.wait().unwrap();
    }
}

fn check_all(p: &Partition, n: usize) {
    let records = common::read_all(p, 0);
    assert_eq!(records.len(), n);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.timestamp, T0 + i as i64);
        assert_eq!(r.key.as_deref(), Some(format!("k{}", i % 50).as_bytes()));
        assert_eq!(r.value.as_deref(), Some(value(i).as_bytes()));
        assert_eq!(
            r.headers[0].value.as_deref(),
            Some(i.to_string().as_bytes())
        );
    }
}

#[test]
fn each_producer_codec_is_stored_as_sent_and_read_back_transparently() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        produce(&broker, "t", codec, 500);
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        check_all(&p, 500);
        let ids = stored_codecs(dir.path(), "t-0");
        assert!(!ids.is_empty());
        assert!(
            ids.iter().all(|id| *id == codec.id()),
            "{codec:?}: stored codec ids {ids:?}"
        );
        // Compressed batches take less room than the records do.
        let stored = std::fs::metadata(dir.path().join("t-0").join(format!("{:020}.log", 0)))
            .unwrap()
            .len();
        let plain: usize = (0..500).map(|i| value(i).len()).sum();
        assert!(
            (stored as usize) < plain / 2,
            "{codec:?}: {stored} bytes stored"
        );
        broker.close().unwrap();
        // And after a restart (recovery reads compressed batches too).
        let broker = Broker::open(dir.path()).unwrap();
        check_all(&broker.topic("t").unwrap().partition(0).unwrap(), 500);
    }
}

#[test]
fn the_topic_codec_recompresses_and_producer_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let cases = [
        (
            "keep",
            TopicCompression::Producer,
            Compression::Lz4,
            Compression::Lz4,
        ),
        (
            "to-zstd",
            TopicCompression::Codec(Compression::Zstd),
            Compression::Gzip,
            Compression::Zstd,
        ),
        (
            "to-gzip",
            TopicCompression::Codec(Compression::Gzip),
            Compression::None,
            Compression::Gzip,
        ),
        (
            "plain",
            TopicCompression::Codec(Compression::None),
            Compression::Snappy,
            Compression::None,
        ),
    ];
    for (topic, topic_codec, producer_codec, stored) in cases {
        broker
            .create_topic(topic, TopicConfig::default().compression_type(topic_codec))
            .unwrap();
        produce(&broker, topic, producer_codec, 300);
        check_all(&broker.topic(topic).unwrap().partition(0).unwrap(), 300);
        let ids = stored_codecs(dir.path(), &format!("{topic}-0"));
        assert!(ids.iter().all(|id| *id == stored.id()), "{topic}: {ids:?}");
    }
    // Kafka's names, and the level keys, through properties.
    let config = TopicConfig::from_properties(&[
        ("compression.type", "zstd"),
        ("compression.zstd.level", "9"),
    ])
    .unwrap();
    assert_eq!(
        config.compression_codec(),
        Some(CompressionCodec::with_level(Compression::Zstd, 9).unwrap())
    );
    assert!(TopicConfig::from_properties(&[("compression.type", "none")]).is_err());
    assert!(TopicConfig::from_properties(&[("compression.lz4.level", "18")]).is_err());
    assert!(ProducerConfig::from_properties(&[("compression.type", "uncompressed")]).is_err());
    assert!(ProducerConfig::from_properties(&[("compression.type", "GZIP")]).is_err());
}

#[test]
fn a_consumer_seeking_into_a_compressed_batch_starts_at_that_record() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    produce(&broker, "t", Compression::Zstd, 200);
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let batches = p.read(0, 1 << 20).unwrap();
    assert!(
        batches.batches().any(|b| b.header.record_count > 50),
        "the producer made big batches"
    );
    let mut c = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    let tp = TopicPartition::new("t", 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    for target in [0i64, 1, 77, 150, 199] {
        c.seek(&tp, target).unwrap();
        let records = c.poll(Duration::from_secs(1)).unwrap();
        let first = records.iter().next().expect("records after a seek");
        assert_eq!(first.offset, target);
        assert_eq!(
            first.value.as_deref(),
            Some(value(target as usize).as_bytes())
        );
    }
    // A read from the middle of a batch returns the whole batch; iteration skips below.
    let r = p.read(77, 1 << 20).unwrap();
    assert_eq!(r.iter().next().unwrap().offset, 77);
    assert_eq!(
        p.offset_for_timestamp(T0 + 120).unwrap().unwrap().offset,
        120
    );
}

fn compressed_batch(codec: Compression, values: &[&[u8]], key: bool) -> Vec<u8> {
    let mut b = codec::BatchBuilder::new();
    for (i, v) in values.iter().enumerate() {
        let k = format!("k{i}");
        b.push(T0 + i as i64, key.then_some(k.as_bytes()), Some(v), &[])
            .unwrap();
    }
    let plain = b.finish();
    let batch = codec::decode_batch(&plain).unwrap();
    let mut out = Vec::new();
    codec::compress_batch(&batch, CompressionCodec::new(codec), &mut out).unwrap();
    out
}

#[test]
fn append_batches_takes_compressed_batches_and_limits_their_compressed_size() {
    let broker = Broker::temporary().unwrap();
    let limit = 4096u32;
    broker
        .create_topic("t", TopicConfig::default().max_message_bytes(limit))
        .unwrap();
    broker
        .create_topic(
            "c",
            TopicConfig::default().cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let big = vec![b'z'; 3000];
    let values: Vec<&[u8]> = vec![&big; 4]; // 12 KB of records, far less compressed
    for codec in CODECS {
        let batch = compressed_batch(codec, &values, true);
        assert!(batch.len() < limit as usize, "{codec:?}: {}", batch.len());
        let at = p.log_end_offset();
        p.append_batches(&batch).unwrap();
        let records = p.read(at, 1 << 20).unwrap();
        let got: Vec<_> = records.iter().map(|r| r.value.unwrap().len()).collect();
        assert_eq!(got, vec![3000; 4], "{codec:?}");
    }
    // Keyless records inside a compressed batch are still refused by a compacted topic.
    let c = broker.topic("c").unwrap().partition(0).unwrap();
    let err = c
        .append_batches(&compressed_batch(Compression::Lz4, &values, false))
        .unwrap_err();
    assert!(err.to_string().contains("without a key"), "{err}");
    // A batch whose records do not decompress is corrupt, however good its CRC.
    let mut bad = compressed_batch(Compression::Gzip, &values, true);
    let n = bad.len();
    bad[n - 12] ^= 0xff;
    let crc = crc32c::crc32c(&bad[21..]);
    bad[17..21].copy_from_slice(&crc.to_be_bytes());
    let at = p.log_end_offset();
    let err = p.append_batches(&bad).unwrap_err();
    assert!(
        matches!(err, embroker::Error::CorruptRecord { .. }),
        "{err}"
    );
    assert_eq!(p.log_end_offset(), at);
}

#[test]
fn compaction_keeps_each_batchs_codec_and_the_latest_values() {
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::builder()
        .log_cleaner(false)
        .clock(clock.clone())
        .open(dir.path())
        .unwrap();
    broker
        .create_topic(
            "t",
            TopicConfig::default()
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(4096)
                .min_cleanable_dirty_ratio(0.0),
        )
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    // 20 rounds over 50 keys, each round one batch of one codec.
    for round in 0..20 {
        let codec = CODECS[round % CODECS.len()];
        let values: Vec<Vec<u8>> = (0..50)
            .map(|k| format!("round {round} key {k} {}", "x".repeat(40)).into_bytes())
            .collect();
        let mut b = codec::BatchBuilder::new();
        for (k, v) in values.iter().enumerate() {
            let key = format!("key-{k}");
            b.push(T0, Some(key.as_bytes()), Some(v), &[]).unwrap();
        }
        let plain = b.finish();
        let mut out = Vec::new();
        codec::compress_batch(
            &codec::decode_batch(&plain).unwrap(),
            CompressionCodec::new(codec),
            &mut out,
        )
        .unwrap();
        p.append_batches(&out).unwrap();
    }
    let before = stored_codecs(dir.path(), "t-0");
    broker.flush().unwrap();
    let report = broker.run_log_cleaner().unwrap();
    assert!(report.records_removed > 0, "{report:?}");
    let latest = common::latest(&common::read_all(&p, p.log_start_offset()));
    assert_eq!(latest.len(), 50);
    for (k, (_, v)) in &latest {
        let key = String::from_utf8(k.clone()).unwrap();
        let n: usize = key.trim_start_matches("key-").parse().unwrap();
        assert!(
            String::from_utf8(v.clone())
                .unwrap()
                .starts_with(&format!("round 19 key {n} ")),
            "{key}"
        );
    }
    let after = stored_codecs(dir.path(), "t-0");
    assert!(after.len() <= before.len());
    assert!(
        after.iter().all(|id| *id != 0),
        "a compressed batch was stored uncompressed after cleaning: {after:?}"
    );
}

#[test]
fn retention_deletes_compressed_segments() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(2048)
                .retention_bytes(4096)
                .retention_ms(-1),
        )
        .unwrap();
    produce(&broker, "t", Compression::Gzip, 2000);
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    broker.enforce_retention().unwrap();
    let start = p.log_start_offset();
    assert!(start > 0, "retention deleted nothing");
    let rest = common::read_all(&p, start);
    assert_eq!(rest.len() as i64, 2000 - start);
    assert_eq!(
        rest[0].value.as_deref(),
        Some(value(start as usize).as_bytes())
    );
}
