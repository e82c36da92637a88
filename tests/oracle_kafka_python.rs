//! The outside oracle: kafka-python's own record-batch reader and builder against embroker.
//!
//! Both directions go through `tests/outside/kafka_python_oracle.py`, run with the Python of
//! the virtual environment `.ci/run` makes (packages pinned in `tests/outside/requirements.txt`),
//! named by `EMBROKER_ORACLE_PYTHON`. Without it each test says it is skipped and passes, so
//! plain `cargo test` needs no Python; `.ci/run` always sets it.
//!
//! - **kafka-python reads embroker's segments.** A broker directory gets every kind of batch
//!   through the public API (plain, keyed, headers, tombstones, large records, many records,
//!   the producer's batches, LogAppendTime, segment rolls, idempotent and transactional batches
//!   and their COMMIT/ABORT markers); the expectations are written from what this test put in,
//!   never from reading the files back, so a bug in the reader or in `dump` cannot hide one in
//!   the writer. The script walks every `.log` with kafka-python's reader, validates each
//!   CRC-32C with it, compares every header field and record with the expectations and with
//!   `embroker dump --json --records` (feature `cli`), and re-encodes the records with
//!   kafka-python's builder, which must give the same bytes.
//! - **embroker reads kafka-python's batches.** The script builds batches with kafka-python's
//!   builder (no compression and each codec it supports, idempotent, transactional); each is
//!   appended with `Partition::append_batches`, read back through a `Consumer` and compared
//!   record by record, and `Partition::read` must return the batch as sent but for its base
//!   offset. Then kafka-python reads the segments those appends wrote.

// Setup helpers panic on failure: in a test that is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use embroker::codec::{
    set_base_offset, BatchBuilder, Compression, ControlRecordType, EndTransactionMarker,
    ProducerFields,
};
use embroker::{
    Broker, CleanupPolicy, ConsumerConfig, ConsumerRecord, ManualClock, OffsetReset, Partition,
    ProducerConfig, ProducerRecord, Record, TimestampType, TopicCompression, TopicConfig,
    TopicPartition,
};
use serde_json::{json, Value};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/outside/kafka_python_oracle.py"
);

/// The broker clock's time during the tests: what LogAppendTime stamps.
const NOW_MS: i64 = 1_765_000_000_000;
/// Create times of the records this test writes.
const T0: i64 = 1_700_000_000_000;

/// Whether compressed batches can be written and read yet: embroker refuses them until the
/// codecs (`src/codec/compression.rs`, a placeholder on main until then) land, and these
/// tests assert exactly that meanwhile, so they fail, and this is set, once they work.
/// FIXME: true once the codecs are on main.
const COMPRESSION_LANDED: bool = true;

/// The venv's Python, or `None` (the test then says it is skipped).
fn oracle_python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("EMBROKER_ORACLE_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            println!("{test}: skipped: EMBROKER_ORACLE_PYTHON not set (.ci/run sets it)");
            None
        }
    }
}

/// Runs the oracle script; panics with its output unless it exits 0. Returns its stdout.
fn run_oracle(python: &Path, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(SCRIPT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} {SCRIPT}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the kafka-python oracle failed ({}) on {args:?}:\n{stdout}\n{stderr}",
        out.status
    );
    print!("{stdout}");
    stdout
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_or_null(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, |b| Value::String(hex(b)))
}

/// A record as the oracle's JSON gives it.
fn record_json(offset: i64, timestamp: i64, r: &Record) -> Value {
    json!({
        "offset": offset,
        "timestamp": timestamp,
        "key": hex_or_null(r.key.as_deref()),
        "value": hex_or_null(r.value.as_deref()),
        "headers": r.headers.iter().map(|h| json!([h.key, h.value.as_deref().map(hex)])).collect::<Vec<_>>(),
    })
}

/// What the test wrote into one partition, batch by batch, for the expectations file.
#[derive(Default)]
struct Written {
    /// (base offset, expected batch JSON).
    batches: Vec<(i64, Value)>,
    /// When batch boundaries are the producer's to choose: the records in offset order, and
    /// header fields every batch has.
    records: Option<(Vec<Value>, Value)>,
    /// When compaction chose what stays: every record written, by offset, the offsets that
    /// must stay (the latest of each key), and the codec id every batch has.
    compacted: Option<(BTreeMap<String, Value>, Vec<i64>, i16)>,
}

impl Written {
    /// Records appended with `Partition::append` (one batch, CreateTime topic).
    fn appended(&mut self, kind: &str, p: &Partition, records: &[Record]) {
        let base = p.append(records).unwrap();
        let timestamps: Vec<i64> = records.iter().map(|r| r.timestamp.unwrap()).collect();
        self.batches.push((
            base,
            json!({
                "kind": kind,
                "header": plain_header(base, &timestamps, 0),
                "records": records.iter().enumerate()
                    .map(|(i, r)| record_json(base + i as i64, timestamps[i], r))
                    .collect::<Vec<_>>(),
            }),
        ));
    }
}

/// The header fields Kafka's format gives a batch of records with these create times, written
/// by a producer without idempotence; `attributes` as expected.
fn plain_header(base: i64, timestamps: &[i64], attributes: i16) -> Value {
    json!({
        "base_offset": base,
        "partition_leader_epoch": -1,
        "magic": 2,
        "attributes": attributes,
        "compression": attributes & 7,
        "timestamp_type": (attributes >> 3) & 1,
        "transactional": attributes & 0x10 != 0,
        "control": attributes & 0x20 != 0,
        "last_offset_delta": timestamps.len() - 1,
        "base_timestamp": timestamps[0],
        "max_timestamp": timestamps.iter().max().unwrap(),
        "producer_id": -1,
        "producer_epoch": -1,
        "base_sequence": -1,
        "record_count": timestamps.len(),
    })
}

/// Numbered records with create times from `t`.
fn numbered(n: usize, t: i64, value_len: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let value = format!("{i:0width$}", width = value_len.max(1));
            Record::new(value)
                .key(format!("key-{}", i % 13))
                .timestamp(t + i as i64)
        })
        .collect()
}

fn broker_at(dir: &Path) -> Broker {
    Broker::builder()
        .clock(ManualClock::new(NOW_MS))
        .log_cleaner(false)
        .open(dir)
        .unwrap()
}

/// The `.log` files of a partition directory, by base offset.
fn segment_logs(partition_dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut logs: Vec<(i64, PathBuf)> = std::fs::read_dir(partition_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            (stem.parse::<i64>().unwrap(), p)
        })
        .collect();
    logs.sort();
    logs
}

/// `embroker dump --json --records` of a file, saved beside the expectations, or `None`
/// without the `cli` feature (the tool is not built then).
fn dump_json(log: &Path, out_dir: &Path, name: &str) -> Option<PathBuf> {
    #[cfg(feature = "cli")]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_embroker"))
            .args(["--json", "dump", "--records"])
            .arg(log)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dump {}: {}",
            log.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let path = out_dir.join(format!("{name}.dump.json"));
        std::fs::write(&path, &out.stdout).unwrap();
        Some(path)
    }
    #[cfg(not(feature = "cli"))]
    {
        let _ = (log, out_dir, name);
        None
    }
}

/// The expectations of every segment of each partition written, split between its files by
/// their base offsets.
fn expectations(root: &Path, out_dir: &Path, written: &BTreeMap<String, Written>) -> Value {
    let mut logs = Vec::new();
    for (dir_name, w) in written {
        let files = segment_logs(&root.join(dir_name));
        assert!(!files.is_empty(), "{dir_name} has no segment");
        for (i, (base, path)) in files.iter().enumerate() {
            let end = files.get(i + 1).map_or(i64::MAX, |(b, _)| *b);
            let name = format!("{dir_name}-{base}");
            let mut log = json!({
                "kind": dir_name,
                "path": path,
                "dump": dump_json(path, out_dir, &name),
            });
            if let Some((by_offset, latest, codec)) = &w.compacted {
                log["written_by_offset"] = json!(by_offset);
                log["cleaned"] = json!(true);
                log["must_contain"] = json!(latest
                    .iter()
                    .filter(|o| (*base..end).contains(o))
                    .collect::<Vec<_>>());
                log["every_batch"] = json!({
                    "partition_leader_epoch": -1, "magic": 2, "compression": codec,
                    "timestamp_type": 0, "transactional": false, "control": false,
                    "producer_id": -1, "producer_epoch": -1, "base_sequence": -1,
                });
            } else if let Some((records, every_batch)) = &w.records {
                assert_eq!(
                    files.len(),
                    1,
                    "{dir_name}: flat expectations need one segment"
                );
                log["records"] = json!(records);
                log["every_batch"] = every_batch.clone();
            } else {
                let batches: Vec<&Value> = w
                    .batches
                    .iter()
                    .filter(|(b, _)| (*base..end).contains(b))
                    .map(|(_, v)| v)
                    .collect();
                log["batches"] = json!(batches);
            }
            logs.push(log);
        }
    }
    json!({ "root": root, "logs": logs })
}

fn write_and_read(python: &Path, root: &Path, written: &BTreeMap<String, Written>) -> String {
    let out_dir = tempfile::tempdir().unwrap();
    let expect = expectations(root, out_dir.path(), written);
    let expect_path = out_dir.path().join("expected.json");
    std::fs::write(&expect_path, serde_json::to_vec_pretty(&expect).unwrap()).unwrap();
    run_oracle(
        python,
        &[
            "read",
            root.to_str().unwrap(),
            "--expect",
            expect_path.to_str().unwrap(),
        ],
    )
}

/// A batch built with embroker's codec (idempotent or transactional), appended whole.
/// `records` encoded as one batch by embroker's codec, with these producer fields.
fn build_batch(producer: ProducerFields, transactional: bool, records: &[Record]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.set_producer(producer);
    b.set_transactional(transactional);
    for r in records {
        b.push(
            r.timestamp.unwrap(),
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        )
        .unwrap();
    }
    b.finish()
}

fn append_built(
    w: &mut Written,
    kind: &str,
    p: &Partition,
    producer: ProducerFields,
    transactional: bool,
    records: &[Record],
) -> i64 {
    let bytes = build_batch(producer, transactional, records);
    let crc = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
    let appended = p.append_batches(&bytes).unwrap();
    let base = appended.base_offset;
    assert_eq!(appended.last_offset, base + records.len() as i64 - 1);
    let timestamps: Vec<i64> = records.iter().map(|r| r.timestamp.unwrap()).collect();
    let mut header = plain_header(base, &timestamps, if transactional { 0x10 } else { 0 });
    header["producer_id"] = json!(producer.producer_id);
    header["producer_epoch"] = json!(producer.producer_epoch);
    header["base_sequence"] = json!(producer.base_sequence);
    header["crc"] = json!(crc);
    w.batches.push((
        base,
        json!({
            "kind": kind,
            "header": header,
            "records": records.iter().enumerate()
                .map(|(i, r)| record_json(base + i as i64, timestamps[i], r))
                .collect::<Vec<_>>(),
        }),
    ));
    base
}

/// A transaction marker as Kafka's coordinator writes it, at `base` in a log image `log` (the
/// public API has no way to put one in a partition: `append_batches` refuses control batches
/// from clients, as Kafka does).
fn marker_at(
    w: &mut Written,
    log: &mut Vec<u8>,
    base: i64,
    producer: ProducerFields,
    kind: ControlRecordType,
    coordinator_epoch: i32,
    timestamp: i64,
) {
    let marker = EndTransactionMarker {
        kind,
        coordinator_epoch,
    };
    let mut bytes = marker.encode_batch(producer, timestamp).unwrap();
    set_base_offset(&mut bytes, base);
    let crc = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
    log.extend_from_slice(&bytes);
    let mut header = plain_header(base, &[timestamp], 0x30);
    header["producer_id"] = json!(producer.producer_id);
    header["producer_epoch"] = json!(producer.producer_epoch);
    header["crc"] = json!(crc);
    // Kafka's control record: key version 0 and type; value version 0 and coordinator epoch.
    let mut key = 0i16.to_be_bytes().to_vec();
    key.extend_from_slice(&kind.id().to_be_bytes());
    let mut value = 0i16.to_be_bytes().to_vec();
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    w.batches.push((
        base,
        json!({
            "kind": "control",
            "header": header,
            "records": [{
                "offset": base,
                "timestamp": timestamp,
                "key": hex(&key),
                "value": hex(&value),
                "headers": [],
                "control": {"version": 0, "type": kind.id(), "coordinator_epoch": coordinator_epoch},
            }],
        }),
    ));
}

/// A batch built with embroker's codec at `base` in a log image `log`.
fn built_at(
    w: &mut Written,
    log: &mut Vec<u8>,
    base: i64,
    producer: ProducerFields,
    records: &[Record],
) -> i64 {
    let mut bytes = build_batch(producer, true, records);
    set_base_offset(&mut bytes, base);
    let crc = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
    log.extend_from_slice(&bytes);
    let timestamps: Vec<i64> = records.iter().map(|r| r.timestamp.unwrap()).collect();
    let mut header = plain_header(base, &timestamps, 0x10);
    header["producer_id"] = json!(producer.producer_id);
    header["producer_epoch"] = json!(producer.producer_epoch);
    header["base_sequence"] = json!(producer.base_sequence);
    header["crc"] = json!(crc);
    w.batches.push((
        base,
        json!({
            "kind": "transactional",
            "header": header,
            "records": records.iter().enumerate()
                .map(|(i, r)| record_json(base + i as i64, timestamps[i], r))
                .collect::<Vec<_>>(),
        }),
    ));
    base + records.len() as i64
}

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// 500 records sent to `name` (a new topic) by a producer compressing with `codec`: keyed and
/// not, headers on some, tombstones, explicit create times. The producer picks the batch
/// boundaries, so the expectations are the records in offset order, and the header fields
/// every batch has.
fn produced(
    broker: &Broker,
    written: &mut BTreeMap<String, Written>,
    name: &str,
    codec: Compression,
) {
    broker.create_topic(name, TopicConfig::default()).unwrap();
    let producer = broker
        .producer(
            ProducerConfig::default()
                .linger_ms(5)
                .compression_type(codec),
        )
        .unwrap();
    let mut sent = Vec::new();
    let mut futures = Vec::new();
    for i in 0..500i64 {
        let (mut r, mut plain) = if i % 50 == 49 {
            (
                ProducerRecord::tombstone(name.to_string(), format!("k{}", i % 10)),
                Record::tombstone(format!("k{}", i % 10)),
            )
        } else {
            let value = format!("sent {i} {}", "compressible ".repeat(4));
            (
                ProducerRecord::new(name.to_string(), value.clone()),
                Record::new(value),
            )
        };
        r = r.partition(0).timestamp(T0 + i);
        plain = plain.timestamp(T0 + i);
        if i % 3 == 0 {
            r = r.key(format!("k{}", i % 10));
            plain = plain.key(format!("k{}", i % 10));
        }
        if i % 7 == 0 {
            r = r.header("n", i.to_string());
            plain = plain.header("n", i.to_string());
        }
        sent.push(plain);
        futures.push(producer.send(r).unwrap());
    }
    producer.flush().unwrap();
    let mut records = Vec::new();
    for (r, f) in sent.iter().zip(futures) {
        let meta = f.wait().unwrap();
        records.push(record_json(meta.offset, r.timestamp.unwrap(), r));
    }
    producer.close().unwrap();
    records.sort_by_key(|r| r["offset"].as_i64().unwrap());
    let every_batch = json!({
        "partition_leader_epoch": -1, "magic": 2, "attributes": codec.id(),
        "compression": codec.id(), "producer_id": -1, "producer_epoch": -1, "base_sequence": -1,
    });
    written.insert(
        format!("{name}-0"),
        Written {
            records: Some((records, every_batch)),
            ..Written::default()
        },
    );
}

/// A compacted topic after one cleaning: each batch kafka-python reads must hold records
/// written at those offsets, and the latest of every key must be there.
fn compacted(
    broker: &Broker,
    written: &mut BTreeMap<String, Written>,
    name: &str,
    compression: TopicCompression,
) {
    let p = topic(
        broker,
        name,
        TopicConfig::default()
            .compression_type(compression)
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(2048)
            .min_cleanable_dirty_ratio(0.0),
    );
    let mut by_offset = BTreeMap::new();
    let mut latest = BTreeMap::new();
    for b in 0..40i64 {
        let records: Vec<Record> = (0..4i64)
            .map(|i| {
                let n = b * 4 + i;
                let key = format!("key-{}", n % 9);
                let r = if n % 11 == 5 {
                    Record::tombstone(key)
                } else {
                    Record::new(format!("value {n}"))
                        .key(key)
                        .header("n", n.to_string())
                };
                r.timestamp(T0 + n * 1_000)
            })
            .collect();
        let base = p.append(&records).unwrap();
        for (i, r) in records.iter().enumerate() {
            let offset = base + i as i64;
            by_offset.insert(
                offset.to_string(),
                record_json(offset, r.timestamp.unwrap(), r),
            );
            latest.insert(r.key.clone().unwrap(), offset);
        }
    }
    // The latest of two keys is a tombstone, then enough other keys to seal its segment.
    let tail: Vec<Vec<Record>> = std::iter::once(vec![
        Record::tombstone("key-0").timestamp(T0 + 200_000),
        Record::tombstone("key-1").timestamp(T0 + 200_001),
    ])
    .chain((0..10i64).map(|b| {
        (0..4i64)
            .map(|i| {
                Record::new("filler")
                    .key(format!("unique-{b}-{i}"))
                    .timestamp(T0 + 300_000 + b)
            })
            .collect()
    }))
    .collect();
    for records in &tail {
        let base = p.append(records).unwrap();
        for (i, r) in records.iter().enumerate() {
            let offset = base + i as i64;
            by_offset.insert(
                offset.to_string(),
                record_json(offset, r.timestamp.unwrap(), r),
            );
            latest.insert(r.key.clone().unwrap(), offset);
        }
    }
    broker.flush().unwrap(); // the cleaner cleans what the recovery point covers
    let report = broker.run_log_cleaner().unwrap();
    assert!(report.records_removed > 0, "{report:?}");
    written.insert(
        format!("{name}-0"),
        Written {
            compacted: Some((
                by_offset,
                latest.into_values().collect(),
                match compression {
                    TopicCompression::Codec(c) => c.id(),
                    _ => 0,
                },
            )),
            ..Written::default()
        },
    );
}

fn topic(broker: &Broker, name: &str, config: TopicConfig) -> Partition {
    broker.create_topic(name, config).unwrap();
    broker.topic(name).unwrap().partition(0).unwrap()
}

#[test]
fn kafka_python_reads_every_kind_of_batch_embroker_writes() {
    let Some(python) = oracle_python("kafka_python_reads_every_kind_of_batch_embroker_writes")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_at(dir.path());
    let mut written: BTreeMap<String, Written> = BTreeMap::new();

    // Values only, several batches.
    let p = topic(&broker, "plain", TopicConfig::default());
    let w = written.entry("plain-0".into()).or_default();
    for b in 0..3 {
        let records: Vec<Record> = (0..4)
            .map(|i| Record::new(format!("plain {b}.{i}")).timestamp(T0 + b * 10 + i))
            .collect();
        w.appended("plain", &p, &records);
    }
    w.appended("plain", &p, &[Record::new("").timestamp(T0)]);

    // Keys: text, binary, empty (not null), and none; out-of-order create times.
    let p = topic(&broker, "keyed", TopicConfig::default());
    let w = written.entry("keyed-0".into()).or_default();
    w.appended(
        "keyed",
        &p,
        &[
            Record::new("v1").key("user-1").timestamp(T0 + 5),
            Record::new("v2")
                .key(vec![0u8, 1, 0xff, 0x80])
                .timestamp(T0),
            Record::new("v3").key("").timestamp(T0 + 9),
            Record::new("v4").timestamp(T0 + 2),
        ],
    );

    // Headers: several, repeated keys, empty and binary values, UTF-8 keys.
    let p = topic(&broker, "headers", TopicConfig::default());
    let w = written.entry("headers-0".into()).or_default();
    w.appended(
        "headers",
        &p,
        &[
            Record::new("h1")
                .key("k")
                .header("trace-id", "abc123")
                .header("trace-id", "again")
                .header("empty", "")
                .header("ключ", vec![0u8, 0xff, 0x80])
                .timestamp(T0),
            Record::new("no headers").timestamp(T0 + 1),
            Record::new("")
                .header("", "a header with an empty key")
                .timestamp(T0 + 2),
        ],
    );

    // Tombstones, beside an empty (non-null) value.
    let p = topic(&broker, "tombstones", TopicConfig::default());
    let w = written.entry("tombstones-0".into()).or_default();
    w.appended(
        "tombstones",
        &p,
        &[
            Record::tombstone("gone-1").timestamp(T0),
            Record::new("").key("empty-not-null").timestamp(T0 + 1),
            Record::tombstone("gone-2")
                .header("why", "deleted")
                .timestamp(T0 + 2),
        ],
    );

    // Large records (multi-byte varints) and many records per batch (offset deltas past 63
    // and 8191, which take two and three varint bytes).
    let p = topic(&broker, "large", TopicConfig::default());
    let w = written.entry("large-0".into()).or_default();
    w.appended(
        "large",
        &p,
        &[
            Record::new(vec![b'x'; 300_000])
                .key(vec![b'k'; 200])
                .timestamp(T0),
            Record::new(vec![7u8; 20_000])
                .header("h", vec![1u8; 5_000])
                .timestamp(T0 + 1),
        ],
    );
    w.appended("many", &p, &numbered(10_000, T0, 3));

    // Segment rolls: every file is walked, and each starts at its own base offset.
    let p = topic(
        &broker,
        "rolled",
        TopicConfig::default().segment_bytes(1024),
    );
    let w = written.entry("rolled-0".into()).or_default();
    for b in 0..12 {
        w.appended("rolled", &p, &numbered(5, T0 + b * 100, 30));
    }

    // LogAppendTime: the log stamps the broker clock's time as every record's timestamp
    // (max_timestamp); the base timestamp keeps the first create time, as Kafka's broker keeps
    // it when it sets LOG_APPEND_TIME in place.
    let p = topic(
        &broker,
        "log-append-time",
        TopicConfig::default().timestamp_type(TimestampType::LogAppendTime),
    );
    let w = written.entry("log-append-time-0".into()).or_default();
    for b in 0..2 {
        let records = numbered(3, T0 + b * 10, 4);
        let base = p.append(&records).unwrap();
        let mut header = plain_header(base, &[T0 + b * 10, T0 + b * 10 + 2], 0x08);
        header["last_offset_delta"] = json!(2);
        header["record_count"] = json!(3);
        header["max_timestamp"] = json!(NOW_MS);
        w.batches.push((
            base,
            json!({
                "kind": "log-append-time",
                "header": header,
                "records": records.iter().enumerate()
                    .map(|(i, r)| record_json(base + i as i64, NOW_MS, r))
                    .collect::<Vec<_>>(),
            }),
        ));
    }

    // The producer's batches (boundaries are its own): records compared in offset order.
    produced(&broker, &mut written, "producer", Compression::None);

    // Each codec: as the producer compresses (`compression.type` of the producer), and as a
    // topic recompresses what it is given (`compression.type` of the topic), CreateTime and
    // LogAppendTime.
    for codec in CODECS {
        if !COMPRESSION_LANDED {
            let p = topic(
                &broker,
                &format!("gated-{}", codec.name()),
                TopicConfig::default().compression_type(TopicCompression::Codec(codec)),
            );
            let refused = p.append(&numbered(2, T0, 8));
            assert!(
                refused.is_err(),
                "{}: {refused:?}: set COMPRESSION_LANDED",
                codec.name()
            );
            println!(
                "gated until the codecs land: {}: {}",
                codec.name(),
                refused.unwrap_err()
            );
            written.insert(format!("gated-{}-0", codec.name()), Written::default());
            continue;
        }
        produced(
            &broker,
            &mut written,
            &format!("producer-{}", codec.name()),
            codec,
        );
        for timestamp_type in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
            let name = format!("topic-{}-{}", codec.name(), timestamp_type.as_str());
            let p = topic(
                &broker,
                &name,
                TopicConfig::default()
                    .compression_type(TopicCompression::Codec(codec))
                    .timestamp_type(timestamp_type),
            );
            let w = written.entry(format!("{name}-0")).or_default();
            for b in 0..3 {
                let mut records = numbered(50, T0 + b * 100, 40);
                records[3] = Record::tombstone("gone").timestamp(T0 + b * 100 + 3);
                records[4] = records[4]
                    .clone()
                    .header("h", vec![0u8, 1, 2])
                    .header("e", "");
                let base = p.append(&records).unwrap();
                let timestamps: Vec<i64> = records.iter().map(|r| r.timestamp.unwrap()).collect();
                let lat = timestamp_type == TimestampType::LogAppendTime;
                let mut header =
                    plain_header(base, &timestamps, codec.id() | if lat { 0x08 } else { 0 });
                if lat {
                    header["max_timestamp"] = json!(NOW_MS);
                }
                w.batches.push((
                    base,
                    json!({
                        "kind": format!("topic compression.type ({})", timestamp_type.as_str()),
                        "header": header,
                        "records": records.iter().enumerate()
                            .map(|(i, r)| {
                                let t = if lat { NOW_MS } else { timestamps[i] };
                                record_json(base + i as i64, t, r)
                            })
                            .collect::<Vec<_>>(),
                    }),
                ));
            }
        }
    }

    // Compaction: the cleaner rewrites batches (records removed, tombstones given a delete
    // horizon, KIP-534's attribute bit 6, with record timestamps re-based on it); on a
    // compressed topic it rewrites them with their codec.
    compacted(
        &broker,
        &mut written,
        "compacted",
        TopicCompression::Producer,
    );
    if COMPRESSION_LANDED {
        compacted(
            &broker,
            &mut written,
            "compacted-zstd",
            TopicCompression::Codec(Compression::Zstd),
        );
    }

    // Idempotent and transactional batches and their markers, appended whole as a Kafka
    // client and coordinator send them.
    let p = topic(&broker, "transactions", TopicConfig::default());
    let w = written.entry("transactions-0".into()).or_default();
    let idempotent = ProducerFields {
        producer_id: 4_000,
        producer_epoch: 0,
        base_sequence: 0,
    };
    append_built(w, "idempotent", &p, idempotent, false, &numbered(3, T0, 2));
    let txn = ProducerFields {
        producer_id: 1 << 40,
        producer_epoch: 7,
        base_sequence: 0,
    };
    append_built(w, "transactional", &p, txn, true, &numbered(4, T0, 2));
    let txn_next = ProducerFields {
        base_sequence: 4,
        ..txn
    };
    append_built(
        w,
        "transactional",
        &p,
        txn_next,
        true,
        &numbered(2, T0 + 4, 2),
    );
    // A client may not write a transaction marker, in Kafka or here.
    let commit = EndTransactionMarker {
        kind: ControlRecordType::Commit,
        coordinator_epoch: 5,
    };
    let refused = p.append_batches(&commit.encode_batch(txn, T0 + 10).unwrap());
    assert!(
        matches!(&refused, Err(embroker::Error::InvalidRecord { reason, .. }) if reason.contains("control")),
        "{refused:?}"
    );

    // Control batches, then, as embroker's codec encodes them: a log image of two transactions
    // (one committed, one aborted), each batch's base offset stamped as the log stamps it.
    let codec_dir = tempfile::tempdir().unwrap();
    let codec_log = codec_dir.path().join("codec-0");
    std::fs::create_dir(&codec_log).unwrap();
    let w = written
        .entry(codec_log.to_str().unwrap().to_string())
        .or_default();
    let mut image = Vec::new();
    let mut next = built_at(w, &mut image, 0, txn, &numbered(4, T0, 2));
    marker_at(
        w,
        &mut image,
        next,
        txn,
        ControlRecordType::Commit,
        5,
        T0 + 10,
    );
    let aborted = ProducerFields {
        producer_id: 99,
        producer_epoch: i16::MAX,
        base_sequence: i32::MAX - 1,
    };
    next = built_at(w, &mut image, next + 1, aborted, &numbered(2, T0 + 20, 2));
    marker_at(
        w,
        &mut image,
        next,
        aborted,
        ControlRecordType::Abort,
        0,
        T0 + 21,
    );
    std::fs::write(codec_log.join("00000000000000000000.log"), &image).unwrap();

    // Compression codecs, by topic and by producer: FIXME once compression is on main.

    broker.close().unwrap();
    let out = write_and_read(&python, dir.path(), &written);
    assert!(out.contains("no differences"), "{out}");
}

/// The batches kafka-python built, from its manifest: (entry, bytes).
fn kafka_python_batches(python: &Path, dir: &Path) -> Vec<(Value, Vec<u8>)> {
    run_oracle(python, &["build", dir.to_str().unwrap()]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let bytes = std::fs::read(dir.join(b["file"].as_str().unwrap())).unwrap();
            assert_eq!(bytes.len() as u64, b["size"].as_u64().unwrap());
            (b.clone(), bytes)
        })
        .collect()
}

fn opt_bytes(v: &Value) -> Option<Vec<u8>> {
    v.as_str().map(unhex)
}

/// Everything a consumer assigned to `tp` from the start reads, up to `end`.
fn consume_all(broker: &Broker, tp: &TopicPartition, end: i64) -> Vec<ConsumerRecord> {
    let mut c = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(std::slice::from_ref(tp)).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.position(tp).unwrap() < end {
        assert!(Instant::now() < deadline, "the consumer stalled at {out:?}");
        out.extend(c.poll(Duration::from_millis(100)).unwrap().iter());
    }
    out
}

#[test]
fn embroker_reads_every_batch_kafka_python_builds() {
    let Some(python) = oracle_python("embroker_reads_every_batch_kafka_python_builds") else {
        return;
    };
    let built_dir = tempfile::tempdir().unwrap();
    let built = kafka_python_batches(&python, built_dir.path());
    assert!(built.len() >= 10, "{} batches", built.len());

    let dir = tempfile::tempdir().unwrap();
    let broker = broker_at(dir.path());
    let create = topic(&broker, "create-time", TopicConfig::default());
    let append = topic(
        &broker,
        "log-append-time",
        TopicConfig::default().timestamp_type(TimestampType::LogAppendTime),
    );
    let mut written: BTreeMap<String, Written> = BTreeMap::new();
    let mut null_header_values = 0;
    let mut gated = Vec::new();
    for (p, log_append_time) in [(&create, false), (&append, true)] {
        let w = written.entry(format!("{}-0", p.topic())).or_default();
        // (entry, first offset) of each batch appended.
        let mut appended = Vec::new();
        for (entry, bytes) in &built {
            let name = entry["name"].as_str().unwrap();
            let compressed = entry["compression"].as_i64().unwrap() != 0;
            let result = p.append_batches(bytes);
            if compressed && !COMPRESSION_LANDED {
                let err = result.err().unwrap_or_else(|| {
                    panic!("{name}: appended: the codecs have landed, set COMPRESSION_LANDED")
                });
                gated.push(format!("{name}: {err}"));
                continue;
            }
            let r = result.unwrap_or_else(|e| panic!("{name}: append_batches: {e}"));
            let delta = entry["last_offset_delta"].as_i64().unwrap();
            assert_eq!(r.last_offset - r.base_offset, delta, "{name}");
            assert_eq!(
                r.log_append_time,
                log_append_time.then_some(NOW_MS),
                "{name}"
            );
            appended.push((entry, bytes, r.base_offset));
        }
        let end = p.log_end_offset();
        let consumed = consume_all(&broker, &p.topic_partition(), end);
        let mut at = 0;
        for (entry, bytes, first) in &appended {
            let name = entry["name"].as_str().unwrap();
            // The stored batch is the one sent but for its base offset and leader epoch; under
            // LogAppendTime the log also stamps attributes bit 3 and max_timestamp and
            // recomputes the CRC. A read gives a compressed batch uncompressed (its codec bits,
            // length and CRC then differ): kafka-python checks the stored one, below.
            let compressed = entry["compression"].as_i64().unwrap() != 0;
            let stored = p.read(*first, 1).unwrap();
            let batch = stored.batches().next().unwrap();
            let h = batch.header;
            assert_eq!(h.base_offset, *first, "{name}");
            let check = |field: &str, ours: i64| {
                assert_eq!(ours, entry[field].as_i64().unwrap(), "{name}: {field}");
            };
            // Kafka's broker stamps its leader epoch over the client's; embroker has no
            // leaders and stamps -1, as on its own batches.
            assert_eq!(h.partition_leader_epoch, -1, "{name}");
            check("magic", h.magic.into());
            check("last_offset_delta", h.last_offset_delta.into());
            check("base_timestamp", h.base_timestamp);
            check("producer_id", h.producer_id);
            check("producer_epoch", h.producer_epoch.into());
            check("base_sequence", h.base_sequence.into());
            check("record_count", h.record_count.into());
            assert_eq!(
                h.is_transactional(),
                entry["transactional"].as_bool().unwrap(),
                "{name}"
            );
            assert!(!h.is_control(), "{name}");
            let codec_bits = if compressed { 0x07 } else { 0 };
            assert_eq!(
                i64::from(h.attributes) & !codec_bits,
                entry["attributes"].as_i64().unwrap() & !codec_bits
                    | if log_append_time { 0x08 } else { 0 },
                "{name}"
            );
            if log_append_time {
                assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime, "{name}");
                assert_eq!(h.max_timestamp, NOW_MS, "{name}");
            } else {
                check("max_timestamp", h.max_timestamp);
            }
            if !compressed {
                check("batch_length", h.batch_length.into());
                if log_append_time {
                    assert_eq!(batch.bytes[23..35], bytes[23..35], "{name}");
                    assert_eq!(batch.bytes[43..], bytes[43..], "{name}");
                } else {
                    check("crc", h.crc.into());
                    assert_eq!(batch.bytes[8..12], bytes[8..12], "{name}");
                    assert_eq!(
                        batch.bytes[16..],
                        bytes[16..],
                        "{name}: only offset and epoch change"
                    );
                }
            }

            // Through a consumer, record by record.
            let expected = entry["records"].as_array().unwrap();
            let mut records = Vec::new();
            for e in expected {
                let c = &consumed[at];
                at += 1;
                let delta = e["offset_delta"].as_i64().unwrap();
                assert_eq!(c.offset, first + delta, "{name}");
                let (timestamp, kind) = if log_append_time {
                    (NOW_MS, TimestampType::LogAppendTime)
                } else {
                    (e["timestamp"].as_i64().unwrap(), TimestampType::CreateTime)
                };
                assert_eq!((c.timestamp, c.timestamp_type), (timestamp, kind), "{name}");
                assert_eq!(c.key.as_deref(), opt_bytes(&e["key"]).as_deref(), "{name}");
                assert_eq!(
                    c.value.as_deref(),
                    opt_bytes(&e["value"]).as_deref(),
                    "{name}"
                );
                let want = e["headers"].as_array().unwrap();
                assert_eq!(c.headers.len(), want.len(), "{name}");
                let mut headers = Vec::new();
                for (got, want) in c.headers.iter().zip(want) {
                    assert_eq!(got.key, want[0].as_str().unwrap(), "{name}");
                    match opt_bytes(&want[1]) {
                        Some(v) => assert_eq!(got.value.as_deref(), Some(&v[..]), "{name}"),
                        None => {
                            // Kafka's header values are nullable (length -1): read back as null.
                            assert_eq!(got.value, None, "{name}");
                            null_header_values += 1;
                        }
                    }
                    headers.push(got.clone());
                }
                // For kafka-python's read of the segment below: the record as stored.
                records.push(record_json(
                    c.offset,
                    timestamp,
                    &Record {
                        key: c.key.clone(),
                        value: c.value.clone(),
                        headers,
                        timestamp: None,
                    },
                ));
            }
            let mut header: Value = json!({});
            header["partition_leader_epoch"] = json!(-1);
            for field in [
                "magic",
                "last_offset_delta",
                "base_timestamp",
                "producer_id",
                "producer_epoch",
                "base_sequence",
                "record_count",
                "compression",
                "transactional",
                "control",
            ] {
                header[field] = entry[field].clone();
            }
            header["base_offset"] = json!(first);
            header["max_timestamp"] = if log_append_time {
                json!(NOW_MS)
            } else {
                entry["max_timestamp"].clone()
            };
            header["timestamp_type"] = json!(i64::from(log_append_time));
            // Stored as sent (a topic with compression.type=producer keeps the client's codec).
            header["batch_length"] = entry["batch_length"].clone();
            if !log_append_time {
                header["crc"] = entry["crc"].clone();
            }
            // A null header value is stored as kafka-python sent it (length -1): kafka-python
            // reads it back as null, while the consumer above says empty.
            for (r, e) in records.iter_mut().zip(expected) {
                r["headers"] = e["headers"].clone();
            }
            w.batches.push((
                *first,
                json!({"kind": format!("from kafka-python: {name}"), "header": header, "records": records}),
            ));
        }
        assert_eq!(
            at,
            consumed.len(),
            "the consumer read records no batch holds"
        );
    }
    println!(
        "embroker read {} kafka-python batches twice (CreateTime and LogAppendTime topics) \
         through append_batches, Partition::read and a Consumer; {null_header_values} null \
         header value(s) read back as null",
        built.len() - gated.len() / 2,
    );
    if !gated.is_empty() {
        println!("gated until compression lands (append_batches refuses them): {gated:#?}");
    }
    broker.close().unwrap();
    // And kafka-python reads back the segments these appends wrote.
    let out = write_and_read(&python, dir.path(), &written);
    assert!(out.contains("no differences"), "{out}");
}

#[test]
fn the_oracle_catches_a_wrong_expectation() {
    // The oracle must fail when embroker and the expectations disagree, or a broken comparison
    // would pass everything: one flipped value in the expectations must be named.
    let Some(python) = oracle_python("the_oracle_catches_a_wrong_expectation") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_at(dir.path());
    let p = topic(&broker, "t", TopicConfig::default());
    let mut w = Written::default();
    w.appended("plain", &p, &[Record::new("right").key("k").timestamp(T0)]);
    broker.close().unwrap();
    w.batches[0].1["records"][0]["value"] = json!(hex(b"wrong"));
    let out_dir = tempfile::tempdir().unwrap();
    let written = BTreeMap::from([("t-0".to_string(), w)]);
    let expect = expectations(dir.path(), out_dir.path(), &written);
    let expect_path = out_dir.path().join("expected.json");
    std::fs::write(&expect_path, serde_json::to_vec(&expect).unwrap()).unwrap();
    let out = Command::new(&python)
        .args([SCRIPT, "read", "--expect", expect_path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("1 difference(s)"), "{stdout}");
    assert!(stdout.contains("offset 0: value"), "{stdout}");
    assert!(stdout.contains(&hex(b"right")), "{stdout}");
}
