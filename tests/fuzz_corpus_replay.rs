//! Runs every checked-in fuzz corpus file (`fuzz/corpus/<target>/*`) through the same body the
//! fuzz target runs (`fuzz/bodies/mod.rs`), as an ordinary test on stable Rust.
//!
//! Why: the corpus holds the inputs that reached the deepest code (and every crash the fuzzer
//! ever found, once fixed), so replaying it on each `cargo test` keeps those paths covered and
//! those bugs fixed without needing libFuzzer. Each corpus directory must be non-empty, so a
//! missing or misnamed directory fails instead of passing with nothing checked.
//!
//! It also holds the seed generator. `decode_batch_seeds_run` builds valid, torn and bit-flipped
//! batches with `BatchBuilder` and runs them through the body on every test run. With
//! `EMBROKER_WRITE_SEEDS=1`, `write_seeds` writes those and a few structured seeds (partition
//! directory images with and without a recovery point, damaged ones; config pairs), found by a
//! deterministic search that takes seconds, to `fuzz/corpus/<target>/seed-*`: that is how the
//! checked-in seeds were made, and the corpus replay runs them from there.
// The helpers below run outside #[test] functions; a failed expect there is a failed test.
#![allow(clippy::expect_used)]

#[path = "../fuzz/bodies/mod.rs"]
mod bodies;
#[cfg(feature = "server")]
mod wire;

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use bodies::{
    ConfigInput, ConfigKey, ConfigValue, Damage, DirImage, IndexFile, RecoveryPointFile,
    TimeIndexFile, TopicFile,
};
use embroker::codec::{self, BatchBuilder};
use embroker::Header;

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()))
        .map(|entry| entry.expect("listing the corpus").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "corpus directory {} is empty: the replay would check nothing",
        dir.display()
    );
    files
}

fn replay(target: &str) {
    let body = bodies::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .unwrap_or_else(|| panic!("no body named {target}"));
    replay_body(target, body);
}

fn replay_body(target: &str, body: bodies::Body) {
    for file in corpus_files(target) {
        let data = std::fs::read(&file).expect("reading a corpus file");
        // Name the file if the body panics, so the failure can be reproduced with
        // `cargo fuzz run <target> <file>`.
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(
            outcome.is_ok(),
            "{target}: corpus file {} failed",
            file.display()
        );
    }
}

#[test]
fn decode_batch_corpus() {
    replay("decode_batch");
}

#[test]
fn open_partition_dir_corpus() {
    replay("open_partition_dir");
}

#[test]
fn config_properties_corpus() {
    replay("config_properties");
}

#[test]
fn offsets_log_corpus() {
    replay("offsets_log");
}

#[test]
fn txn_state_log_corpus() {
    replay("txn_state_log");
}

/// `server_request` runs only with feature `server` (its body and the server are compiled
/// only then); `cargo test --features server --test fuzz_corpus_replay` runs it.
#[cfg(feature = "server")]
#[test]
fn server_request_corpus() {
    replay_body("server_request", bodies::server_request);
}

#[test]
fn every_body_has_a_replay_test() {
    let names: Vec<&str> = bodies::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "decode_batch",
            "open_partition_dir",
            "config_properties",
            "offsets_log",
            "txn_state_log"
        ],
        "a new body needs its replay test above"
    );
}

/// Recomputes the CRC-32C a batch carries (bytes 21 to its end), after an edit: a seed that is
/// to reach the checks behind the CRC (attributes, records) needs one that holds.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A batch as embroker's format 1 wrote it: magic 1 and a CRC-32 (IEEE) over the same bytes.
fn as_format_1(batch: &[u8]) -> Vec<u8> {
    let mut old = batch.to_vec();
    old[16] = 1;
    let crc = crc32fast::hash(&old[21..]);
    old[17..21].copy_from_slice(&crc.to_be_bytes());
    old
}

/// A seed record: timestamp, key, value, headers.
type SeedRecord<'a> = (i64, Option<&'a [u8]>, Option<&'a [u8]>, Vec<Header>);

fn some(bytes: &[u8]) -> Option<&[u8]> {
    Some(bytes)
}

fn one_batch(records: &[SeedRecord<'_>]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for (ts, key, value, headers) in records {
        b.push(*ts, *key, *value, headers)
            .expect("a seed record fits");
    }
    b.finish()
}

/// A batch the log cleaner rewrote with a delete horizon (attributes bit 6): a tombstone kept
/// by a real cleaner pass, read back from the log.
fn delete_horizon_batch() -> Vec<u8> {
    use embroker::{Broker, CleanupPolicy, ManualClock, Record, TopicConfig};

    let clock = ManualClock::new(1_700_000_000_000);
    let broker = Broker::builder()
        .log_cleaner(false)
        .clock(clock.clone())
        .open_temporary()
        .expect("temporary broker");
    let config = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1024)
        .delete_retention_ms(60_000);
    broker.create_topic("t", config).expect("create topic");
    let p = broker.topic("t").and_then(|t| t.partition(0)).expect("t-0");
    p.append(&[Record::new("v").key("k")]).expect("append");
    p.append(&[Record::tombstone("k"), Record::new("w").key("other")])
        .expect("append");
    for i in 0..30 {
        p.append(&[Record::new(format!("filler {i}")).key("filler")])
            .expect("append");
    }
    broker.flush().expect("flush");
    broker.run_log_cleaner().expect("cleaner pass");
    let read = p.read(0, 1 << 20).expect("read");
    let batch = read
        .batches()
        .find(|b| b.header.delete_horizon().is_some())
        .map(|b| b.bytes.to_vec())
        .expect("the cleaner kept the tombstone under a delete horizon");
    broker.close().expect("close");
    batch
}

/// Seeds for `decode_batch`: format-2 batches as the producer, the transaction coordinator
/// and the cleaner write them, then damaged copies. Damage behind the CRC (attributes, records)
/// comes with a CRC that holds, so that the seed reaches the check it is about; the fuzzer
/// cannot forge one.
fn decode_batch_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use embroker::codec::{
        Compression, CompressionCodec, ControlRecordType, EndTransactionMarker, ProducerFields,
    };

    let one = one_batch(&[(1_700_000_000_000, some(b"key"), some(b"value"), vec![])]);
    let mut many = one_batch(&[
        (1_700_000_000_000, some(b"k1"), some(b"v1"), vec![]),
        (
            1_700_000_000_005,
            None,
            some(b"no key"),
            vec![Header::new("trace", "abc"), Header::new("", "")],
        ),
        (1_699_999_999_990, some(b"k3"), None, vec![]), // a tombstone, earlier timestamp
    ]);
    codec::set_base_offset(&mut many, 42);
    let keyless = one_batch(&[(1_700_000_000_000, None, some(b"no key"), vec![])]);
    let tombstone = one_batch(&[(1_700_000_000_000, some(b"gone"), None, vec![])]);
    let big_key = vec![b'k'; 300]; // two-byte length varints
    let wide = one_batch(&[
        (0, some(&big_key), some(b"epoch"), vec![]),
        (i64::from(i32::MAX) * 4, None, None, vec![]), // a five-byte timestamp delta
        (
            1,
            some(b""),
            some(b""),
            vec![Header::new("h", vec![0xff; 200])],
        ),
    ]);

    let mut append_time = one.clone();
    codec::set_log_append_time(&mut append_time, 1_800_000_000_000);

    let producer = ProducerFields {
        producer_id: 4000,
        producer_epoch: 2,
        base_sequence: 17,
    };
    let mut idempotent = BatchBuilder::new();
    idempotent.set_producer(producer);
    idempotent.push(1_700_000_000_000, some(b"k"), some(b"once"), &[]);
    idempotent.push(1_700_000_000_001, some(b"k"), some(b"twice"), &[]);
    let idempotent = idempotent.finish();
    let mut transactional = BatchBuilder::new();
    transactional.set_producer(producer);
    transactional.set_transactional(true);
    transactional.push(
        1_700_000_000_000,
        some(b"k"),
        some(b"in a transaction"),
        &[],
    );
    let transactional = transactional.finish();
    let marker = |kind, epoch| {
        let m = EndTransactionMarker {
            kind,
            coordinator_epoch: epoch,
        };
        let mut b = m.encode_batch(producer, 1_700_000_000_002).expect("marker");
        codec::set_base_offset(&mut b, 7);
        b
    };
    let commit = marker(ControlRecordType::Commit, 5);
    let abort = marker(ControlRecordType::Abort, 0);
    // A control record of a type other than the two markers (Kafka's KRaft types are 2..=6).
    let mut other_control = BatchBuilder::new();
    other_control.set_control(true);
    other_control.push(1_700_000_000_000, some(&[0, 0, 0, 3]), some(&[0, 0]), &[]);
    let other_control = other_control.finish();

    // A header value of length -1 (null), which Kafka's reader accepts and embroker reads as
    // empty; the builder never writes one. The empty header value's length is the batch's
    // last byte.
    let mut null_header_value = one_batch(&[(
        1_700_000_000_000,
        some(b"k"),
        some(b"v"),
        vec![Header::new("h", "")],
    )]);
    let last = null_header_value.len() - 1;
    assert_eq!(
        null_header_value[last], 0x00,
        "the empty header value's length"
    );
    null_header_value[last] = 0x01; // zig-zag -1
    fix_crc(&mut null_header_value);

    let mut flipped_crc = many.clone();
    flipped_crc[17] ^= 0x01;
    let mut flipped_record = many.clone();
    let last = flipped_record.len() - 3;
    flipped_record[last] ^= 0x40;
    let mut two = one.clone();
    two.extend_from_slice(&many);

    let with_attributes = |attributes: i16| {
        let mut b = one.clone();
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        fix_crc(&mut b);
        b
    };
    let mut magic_3 = one.clone();
    magic_3[16] = 3;
    let mut record_count_0 = one.clone();
    record_count_0[57..61].copy_from_slice(&0i32.to_be_bytes());
    fix_crc(&mut record_count_0);
    let mut trailing_byte = one.clone();
    trailing_byte.push(0);
    let length = i32::from_be_bytes(trailing_byte[8..12].try_into().expect("4 bytes")) + 1;
    trailing_byte[8..12].copy_from_slice(&length.to_be_bytes());
    fix_crc(&mut trailing_byte);
    let mut non_utf8_header_key = one_batch(&[(
        1_700_000_000_000,
        None,
        some(b"v"),
        vec![Header::new("\u{e9}", "x")],
    )]);
    // The batch ends `04 c3 a9 02 78`: the key's length, "é", the value's length, "x".
    let at = non_utf8_header_key.len() - 4;
    assert_eq!(non_utf8_header_key[at], 0xc3);
    non_utf8_header_key[at] = 0xff;
    fix_crc(&mut non_utf8_header_key);
    let mut long_varint = one.clone();
    // The first record's length as a varint that never ends within five bytes.
    long_varint.splice(61..62, [0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    let length = i32::from_be_bytes(long_varint[8..12].try_into().expect("4 bytes")) + 5;
    long_varint[8..12].copy_from_slice(&length.to_be_bytes());
    fix_crc(&mut long_varint);

    // The same three records compressed with each codec, as the producer's and the topic's
    // `compression.type` write them; a raw snappy block as librdkafka writes it; and two
    // damaged streams, each with a CRC that holds so that the codec meets the damage.
    let compressed = |c: Compression| {
        let mut out = Vec::new();
        codec::compress_batch(
            &codec::decode_batch(&many).expect("a seed decodes"),
            CompressionCodec::new(c),
            &mut out,
        )
        .expect("the codecs compress");
        out
    };
    let with_records_section = |batch: &[u8], attributes: i16, section: &[u8]| {
        let mut b = batch[..codec::HEADER_BYTES].to_vec();
        b.extend_from_slice(section);
        let length = i32::try_from(b.len() - codec::LENGTH_PREFIX_BYTES).expect("small");
        b[8..12].copy_from_slice(&length.to_be_bytes());
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        fix_crc(&mut b);
        b
    };
    let snappy_raw = with_records_section(
        &many,
        2,
        &snap::raw::Encoder::new()
            .compress_vec(&many[codec::HEADER_BYTES..])
            .expect("snappy compresses"),
    );
    let gzip = compressed(Compression::Gzip);
    let gzip_cut = with_records_section(&gzip, 1, &gzip[codec::HEADER_BYTES..gzip.len() - 1]);
    let lz4 = compressed(Compression::Lz4);
    let mut lz4_stream = lz4[codec::HEADER_BYTES..].to_vec();
    lz4_stream[6] ^= 0xff; // the frame descriptor's checksum
    let lz4_bad_header = with_records_section(&lz4, 3, &lz4_stream);

    vec![
        ("valid-one-record", one.clone()),
        ("valid-three-records-headers", many.clone()),
        ("valid-keyless", keyless),
        ("valid-tombstone", tombstone),
        ("valid-wide-varints", wide),
        ("valid-log-append-time", append_time),
        ("valid-idempotent", idempotent),
        ("valid-transactional", transactional),
        ("valid-control-commit", commit),
        ("valid-control-abort", abort),
        ("valid-control-other-type", other_control),
        ("valid-delete-horizon", delete_horizon_batch()),
        ("valid-null-header-value", null_header_value),
        ("two-batches", two),
        ("header-only", one[..codec::HEADER_BYTES].to_vec()),
        ("torn-last-byte", many[..many.len() - 1].to_vec()),
        ("bad-crc", flipped_crc),
        ("flipped-record-byte", flipped_record),
        ("format-1-magic-1-crc32", as_format_1(&one)),
        ("unknown-magic-3", magic_3),
        ("unknown-codec-5", with_attributes(5)),
        ("unknown-attribute-bit-7", with_attributes(1 << 7)),
        ("gzip-id-over-plain-records", with_attributes(1)),
        ("record-count-0", record_count_0),
        ("byte-after-last-record", trailing_byte),
        ("non-utf8-header-key", non_utf8_header_key),
        ("record-length-varint-too-long", long_varint),
        ("valid-gzip", gzip),
        ("valid-snappy", compressed(Compression::Snappy)),
        ("valid-snappy-raw-block", snappy_raw),
        ("valid-lz4", lz4),
        ("valid-zstd", compressed(Compression::Zstd)),
        ("gzip-stream-cut", gzip_cut),
        ("lz4-bad-frame-header-checksum", lz4_bad_header),
    ]
}

/// Crash inputs the fuzzer found, made again in the current format (`regress-*` files).
fn decode_batch_regressions() -> Vec<(&'static str, Vec<u8>)> {
    // Finding 1 (fuzz/README.md): a batch whose last offset is i64::MAX. The base offset lies
    // outside the CRC, so the fuzzer found it by mutating a valid seed.
    let mut last_offset_max =
        one_batch(&[(1_700_000_000_000, some(b"key"), some(b"value"), vec![])]);
    codec::set_base_offset(&mut last_offset_max, i64::MAX);
    vec![("last-offset-i64-max", last_offset_max)]
}

/// A small deterministic generator (xorshift64*) for the seed search below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Finds, by a deterministic search over random inputs, the first input for which `wanted`
/// holds of what `arbitrary` decodes it to. (arbitrary has no encoder, so searching is the
/// simple way to get an input that means something specific.)
fn search<T: for<'a> Arbitrary<'a>>(seed: u64, len: usize, wanted: impl Fn(&T) -> bool) -> Vec<u8> {
    let mut rng = Rng(seed);
    for _ in 0..2_000_000 {
        let data = rng.bytes(len);
        if let Ok(value) = T::arbitrary_take_rest(Unstructured::new(&data)) {
            if wanted(&value) {
                return data;
            }
        }
    }
    panic!("no seed found for seed {seed}");
}

fn batch_count(image: &DirImage) -> usize {
    image
        .segments
        .iter()
        .take(3)
        .flat_map(|s| s.batches.iter().take(8))
        .filter(|b| !b.records.is_empty())
        .count()
}

fn small_topic_file(image: &DirImage) -> bool {
    matches!(image.topic_file, TopicFile::Minimal)
}

/// Seeds for `open_partition_dir`: directory images that open, checkpointed ones, damaged ones.
fn open_partition_dir_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "clean-one-segment",
            search::<DirImage>(1, 600, |i| {
                small_topic_file(i)
                    && i.segments.len() == 1
                    && batch_count(i) >= 2
                    && matches!(i.segments[0].damage, Damage::None)
                    && i.segments[0].tail.is_empty()
                    && matches!(i.recovery_point, RecoveryPointFile::Missing)
            }),
        ),
        (
            "checkpointed-exact-indexes",
            search::<DirImage>(2, 900, |i| {
                small_topic_file(i)
                    && i.segments.len() >= 2
                    && batch_count(i) >= 3
                    && i.segments.iter().all(|s| {
                        matches!(s.damage, Damage::None)
                            && matches!(s.index, IndexFile::Exact(_))
                            && matches!(s.time_index, TimeIndexFile::Exact)
                    })
                    && matches!(i.recovery_point, RecoveryPointFile::AtBatch { .. })
            }),
        ),
        (
            "torn-tail",
            search::<DirImage>(3, 600, |i| {
                small_topic_file(i)
                    && i.segments.len() == 1
                    && batch_count(i) >= 2
                    && matches!(i.segments[0].damage, Damage::Truncate(n) if n < 40)
            }),
        ),
        (
            "bit-flip",
            search::<DirImage>(4, 600, |i| {
                small_topic_file(i)
                    && i.segments.len() == 1
                    && batch_count(i) >= 2
                    && matches!(i.segments[0].damage, Damage::Flip { .. })
            }),
        ),
        (
            "topic-file-pairs",
            search::<DirImage>(5, 600, |i| {
                matches!(&i.topic_file, TopicFile::WithPairs(p) if !p.is_empty())
                    && batch_count(i) >= 1
            }),
        ),
    ]
}

fn known_pairs(input: &ConfigInput) -> bool {
    input.pairs.len() >= 2
        && input.pairs.iter().all(|(k, v)| {
            matches!(k, ConfigKey::Known(_))
                && matches!(v, ConfigValue::Int(0..=100_000) | ConfigValue::Bool(_))
        })
}

/// Seeds for `config_properties`: pairs of known keys with plausible values, and unknown keys.
fn config_properties_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("known-keys", search::<ConfigInput>(6, 48, known_pairs)),
        ("more-known-keys", search::<ConfigInput>(7, 96, known_pairs)),
        (
            "unknown-key",
            search::<ConfigInput>(8, 32, |i| {
                i.pairs.len() == 1 && matches!(i.pairs[0].0, ConfigKey::Other(_))
            }),
        ),
        ("no-pairs", Vec::new()),
    ]
}

/// The records a real broker wrote to `__consumer_offsets`, as (key, value) pairs in log
/// order: commits of `g` (no metadata, then UTF-8 metadata), a commit of a 300-byte group id,
/// then the tombstones `delete_group("g")` writes.
fn real_offset_records() -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    use std::collections::BTreeMap;

    use embroker::{Broker, ConsumerConfig, OffsetAndMetadata, TopicConfig, TopicPartition};

    let broker = Broker::temporary().expect("temporary broker");
    broker
        .create_topic("orders", TopicConfig::default().partitions(2))
        .expect("create topic");
    let commit = |group: &str, partition: i32, om: OffsetAndMetadata| {
        let mut c = broker
            .consumer(ConsumerConfig::default().group_id(group))
            .expect("consumer");
        let tp = TopicPartition::new("orders", partition);
        c.assign(std::slice::from_ref(&tp)).expect("assign");
        c.commit_offsets_sync(&BTreeMap::from([(tp, om)]))
            .expect("commit");
        c.close().expect("close");
    };
    commit("g", 0, OffsetAndMetadata::new(1));
    commit(
        "g",
        1,
        OffsetAndMetadata::new(1_234_567_890_123).metadata("worker 3 \u{2713}"),
    );
    commit(
        &"long-group-".repeat(28)[..300],
        0,
        OffsetAndMetadata::new(42),
    );
    broker.delete_group("g").expect("delete group");
    let log = broker
        .topic("__consumer_offsets")
        .and_then(|t| t.partition(0))
        .expect("__consumer_offsets-0");
    let records = log.read(0, 1 << 20).expect("read the offsets log");
    let out: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.key.expect("offset records have keys").to_vec(),
                r.value.map(|v| v.to_vec()),
            )
        })
        .collect();
    broker.close().expect("close");
    assert_eq!(out.len(), 5, "3 commits and 2 tombstones");
    out
}

/// Seeds for `offsets_log`: real records (commits, tombstones), then damaged copies (cut,
/// lengthened, wrong version, negative offset, oversized metadata length) and one structured
/// input.
fn offsets_log_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let real = real_offset_records();
    let input = |i: usize| bodies::offsets_log_input(&real[i].0, real[i].1.as_deref());
    let (key, value) = (&real[0].0, real[0].1.as_deref().expect("a commit"));
    let damaged_value = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = value.to_vec();
        f(&mut v);
        bodies::offsets_log_input(key, Some(&v))
    };
    let mut key_version_2 = key.clone();
    key_version_2[1] = 2;
    vec![
        ("commit-plain", input(0)),
        ("commit-metadata-utf8", input(1)),
        ("commit-long-group", input(2)),
        ("tombstone", input(3)),
        (
            "key-truncated",
            bodies::offsets_log_input(&key[..key.len() - 1], None),
        ),
        (
            "key-version-2",
            bodies::offsets_log_input(&key_version_2, None),
        ),
        (
            "value-truncated",
            damaged_value(&|v| v.truncate(v.len() - 1)),
        ),
        ("value-trailing-byte", damaged_value(&|v| v.push(0))),
        ("value-negative-offset", damaged_value(&|v| v[2] = 0x80)),
        (
            "value-metadata-too-long",
            damaged_value(&|v| v[10..12].copy_from_slice(&4097u16.to_be_bytes())),
        ),
        (
            "structured",
            [&[bodies::OFFSETS_LOG_STRUCTURED][..], &input(1)[1..]].concat(),
        ),
        ("empty", Vec::new()),
    ]
}

#[test]
fn offsets_log_seeds_run() {
    let seeds = offsets_log_seeds();
    for (_, data) in &seeds {
        bodies::offsets_log(data);
    }
    // The seeds mean what their names say: the real records decode, the damaged ones do not.
    for (name, data) in seeds {
        if data
            .first()
            .is_some_and(|f| f & bodies::OFFSETS_LOG_STRUCTURED != 0)
            || data.is_empty()
        {
            continue;
        }
        let key_len = usize::from(u16::from_be_bytes([data[1], data[2]]));
        let key = &data[3..3 + key_len];
        let value = (data[0] & bodies::OFFSETS_LOG_HAS_VALUE != 0).then(|| &data[3 + key_len..]);
        let decoded = embroker::__fuzz::decode_offset_commit(key, value);
        let real = name.starts_with("commit-") || name == "tombstone";
        assert_eq!(decoded.is_ok(), real, "seed {name}: {decoded:?}");
    }
}

/// The records a real broker wrote to `__transaction_state` for the transactional id `tx`, as
/// (key, value) pairs in log order, on a manual clock (so the seeds are the same bytes each
/// time): `init_transactions` (Empty), a transaction over two partitions of `orders` committed
/// (Ongoing, PrepareCommit, CompleteCommit), then one aborted (Ongoing, PrepareAbort,
/// CompleteAbort).
fn real_txn_records() -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    use std::time::{Duration, Instant};

    use embroker::{
        Acks, Broker, ManualClock, ProducerConfig, ProducerRecord, TopicConfig, TxnState,
    };

    let clock = ManualClock::new(1_700_000_000_000);
    let broker = Broker::builder()
        .clock(clock.clone())
        .open_temporary()
        .expect("temporary broker");
    broker
        .create_topic("orders", TopicConfig::default().partitions(2))
        .expect("create topic");
    let p = broker
        .producer(
            ProducerConfig::default()
                .acks(Acks::All)
                .transactional_id("tx"),
        )
        .expect("transactional producer");
    p.init_transactions().expect("init");
    clock.advance_ms(5);
    p.begin_transaction().expect("begin");
    for partition in [0, 1] {
        p.send(ProducerRecord::new("orders", "order").partition(partition))
            .expect("send")
            .wait()
            .expect("written");
    }
    clock.advance_ms(5);
    p.commit_transaction().expect("commit");
    clock.advance_ms(5);
    p.begin_transaction().expect("begin");
    p.send(ProducerRecord::new("orders", "cancelled").partition(0))
        .expect("send")
        .wait()
        .expect("written");
    clock.advance_ms(5);
    p.abort_transaction().expect("abort");
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker
        .describe_transaction("tx")
        .expect("describe")
        .map(|d| d.state)
        != Some(TxnState::CompleteAbort)
    {
        assert!(Instant::now() < deadline, "the abort did not complete");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(p);
    let state = broker
        .topic("__transaction_state")
        .expect("__transaction_state exists after init_transactions");
    let mut out = Vec::new();
    for partition in 0..state.partition_count() {
        let log = state.partition(partition).expect("a state partition");
        let records = log.read(0, 1 << 20).expect("read the state log");
        out.extend(records.iter().map(|r| {
            (
                r.key.expect("state records have keys").to_vec(),
                r.value.map(|v| v.to_vec()),
            )
        }));
    }
    broker.close().expect("close");
    out
}

/// Seeds for `txn_state_log`: a real record of each state embroker writes, the three states it
/// never writes (Ongoing, Dead, PrepareEpochFence) and a tombstone (Kafka's, when a transactional id
/// expires) through the encoder, version 1 values (tagged fields, and the non-canonical forms
/// the decoder accepts: an unknown tag, a tag at its default, an overlong varint), a commit
/// decision with embroker's data end offsets (and one of the wrong size), then damaged
/// copies (`bad-*`: cut, lengthened, wrong versions, unknown status, bad lengths, a tag of the
/// wrong width, a varint past 32 bits) and one structured input.
fn txn_state_log_seeds() -> Vec<(String, Vec<u8>)> {
    use embroker::__fuzz::{decode_txn_log_record, encode_txn_log_value};
    use embroker::TxnState;

    let real = real_txn_records();
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seen = Vec::new();
    for (key, value) in &real {
        let record = decode_txn_log_record(key, value.as_deref()).expect("a real record decodes");
        let state = record
            .value
            .as_ref()
            .expect("embroker writes no tombstone")
            .state;
        if !seen.contains(&state) {
            seen.push(state);
            seeds.push((
                format!("state-{}", state.name()),
                bodies::txn_state_log_input(key, value.as_deref()),
            ));
        }
    }
    assert_eq!(seen.len(), 5, "every state embroker writes: {seen:?}");
    let with_state = |want: TxnState| {
        real.iter()
            .find_map(|(k, v)| {
                let r = decode_txn_log_record(k, v.as_deref()).ok()?;
                let value = r.value?;
                (value.state == want).then(|| (k.clone(), value))
            })
            .expect("a real record of the state")
    };
    // `Ongoing` stays in memory (transaction version 2): its seed is the decision's record in
    // that state. The values below start from Kafka's version 0 defaults, as Kafka writes them.
    let (key, prepared) = with_state(TxnState::PrepareCommit);
    let (_, empty) = with_state(TxnState::Empty);
    let as_v0 = |mut v: embroker::__fuzz::TxnLogValue| {
        v.version = 0;
        v.previous_producer_id = -1;
        v.next_producer_id = -1;
        v.client_transaction_version = 0;
        v
    };
    let mut ongoing = as_v0(prepared);
    ongoing.state = TxnState::Ongoing;
    let empty = as_v0(empty);
    let value_seed = |v: &[u8]| bodies::txn_state_log_input(&key, Some(v));
    seeds.push((
        "state-Ongoing".into(),
        value_seed(&encode_txn_log_value(&ongoing)),
    ));

    let mut dead = empty.clone();
    dead.state = TxnState::Dead;
    let mut fence = ongoing.clone();
    fence.state = TxnState::PrepareEpochFence;
    seeds.push((
        "state-Dead".into(),
        value_seed(&encode_txn_log_value(&dead)),
    ));
    seeds.push((
        "state-PrepareEpochFence".into(),
        value_seed(&encode_txn_log_value(&fence)),
    ));
    seeds.push(("tombstone".into(), bodies::txn_state_log_input(&key, None)));

    // Version 1: the ongoing transaction with all three tags, an empty one without tags.
    let mut v1_tags = ongoing.clone();
    v1_tags.version = 1;
    v1_tags.previous_producer_id = 3;
    v1_tags.next_producer_id = 9;
    v1_tags.client_transaction_version = 2;
    let v1_tags_bytes = encode_txn_log_value(&v1_tags);
    let mut v1_empty = empty.clone();
    v1_empty.version = 1;
    let v1_empty_bytes = encode_txn_log_value(&v1_empty);
    assert_eq!(v1_empty_bytes[17], 0, "null partitions, as a compact array");
    assert_eq!(*v1_empty_bytes.last().expect("bytes"), 0, "no tags");
    // One tag (2, two bytes) at the end: count 1, tag 2, size 2, the i16.
    let mut v1_one_tag = v1_empty.clone();
    v1_one_tag.client_transaction_version = 2;
    let v1_one_tag_bytes = encode_txn_log_value(&v1_one_tag);
    let tag_section = v1_one_tag_bytes.len() - 5;
    assert_eq!(v1_one_tag_bytes[tag_section..tag_section + 3], [1, 2, 2]);
    let mut unknown_tag = v1_one_tag_bytes.clone();
    unknown_tag[tag_section] = 2;
    unknown_tag.extend_from_slice(&[5, 1, 0xff]);
    let mut tag_at_default = v1_empty_bytes.clone();
    *tag_at_default.last_mut().expect("bytes") = 1;
    tag_at_default.extend_from_slice(&[0, 8]);
    tag_at_default.extend_from_slice(&(-1i64).to_be_bytes());
    let mut overlong_varint = v1_empty_bytes.clone();
    overlong_varint.splice(17..18, [0x80, 0x00]);
    let mut tag_wrong_width = v1_one_tag_bytes.clone();
    tag_wrong_width[tag_section + 2] = 3;
    tag_wrong_width.push(0);
    let mut varint_too_long = v1_empty_bytes.clone();
    varint_too_long.splice(17..18, [0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    // Embroker's data end offsets (tag 100 of a topic entry, one i64 per partition id), on a
    // commit decision as `commit_transaction` writes it; and one of the wrong size.
    let mut v1_ends = v1_tags.clone();
    v1_ends.state = TxnState::PrepareCommit;
    v1_ends.previous_producer_id = -1;
    v1_ends.next_producer_id = -1;
    for topic in v1_ends.partitions.iter_mut().flatten() {
        topic.end_offsets = topic
            .partitions
            .iter()
            .map(|p| 1_000 + i64::from(*p))
            .collect();
    }
    let v1_ends_bytes = encode_txn_log_value(&v1_ends);
    // Status at 16, one topic (2), "orders" (7 + 6 bytes), two ids (3 + 8 bytes), then the
    // entry's tags: count 1, tag 100, size 16.
    let ends_tag = 17 + 1 + 7 + 1 + 8 + 1;
    assert_eq!(v1_ends_bytes[ends_tag - 1..ends_tag + 2], [1, 100, 16]);
    let mut ends_wrong_size = v1_ends_bytes.clone();
    ends_wrong_size[ends_tag + 1] -= 8;
    ends_wrong_size.drain(ends_tag + 2..ends_tag + 10);
    seeds.push(("v1-end-offsets".into(), value_seed(&v1_ends_bytes)));
    seeds.push((
        "bad-v1-end-offsets-wrong-size".into(),
        value_seed(&ends_wrong_size),
    ));
    seeds.push(("v1-tags".into(), value_seed(&v1_tags_bytes)));
    seeds.push(("v1-no-tags".into(), value_seed(&v1_empty_bytes)));
    seeds.push(("v1-unknown-tag".into(), value_seed(&unknown_tag)));
    seeds.push(("v1-tag-at-default".into(), value_seed(&tag_at_default)));
    seeds.push(("v1-overlong-varint".into(), value_seed(&overlong_varint)));
    seeds.push((
        "bad-v1-tag-wrong-width".into(),
        value_seed(&tag_wrong_width),
    ));
    seeds.push((
        "bad-v1-varint-too-long".into(),
        value_seed(&varint_too_long),
    ));

    // Damaged copies of the real ongoing record (version 0: version, producer id, epoch,
    // timeout, status at 16, the topic count at 17..21, the first topic's length at 21..23).
    let ongoing_bytes = encode_txn_log_value(&ongoing);
    let damaged_value = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = ongoing_bytes.clone();
        f(&mut v);
        value_seed(&v)
    };
    let mut key_version_1 = key.clone();
    key_version_1[1] = 1;
    let mut key_non_utf8 = key.clone();
    *key_non_utf8.last_mut().expect("a key") = 0xff;
    seeds.push((
        "bad-key-truncated".into(),
        bodies::txn_state_log_input(&key[..key.len() - 1], None),
    ));
    seeds.push((
        "bad-key-version-1".into(),
        bodies::txn_state_log_input(&key_version_1, None),
    ));
    seeds.push((
        "bad-key-non-utf8".into(),
        bodies::txn_state_log_input(&key_non_utf8, None),
    ));
    seeds.push((
        "bad-value-truncated".into(),
        damaged_value(&|v| v.truncate(v.len() - 1)),
    ));
    seeds.push((
        "bad-value-trailing-byte".into(),
        damaged_value(&|v| v.push(0)),
    ));
    seeds.push(("bad-value-version-2".into(), damaged_value(&|v| v[1] = 2)));
    seeds.push(("bad-value-status-8".into(), damaged_value(&|v| v[16] = 8)));
    seeds.push((
        "bad-value-topic-count-negative".into(),
        damaged_value(&|v| v[17..21].copy_from_slice(&(-2i32).to_be_bytes())),
    ));
    seeds.push((
        "bad-value-topic-count-huge".into(),
        damaged_value(&|v| v[17..21].copy_from_slice(&i32::MAX.to_be_bytes())),
    ));
    seeds.push((
        "bad-value-topic-length-negative".into(),
        damaged_value(&|v| v[21..23].copy_from_slice(&(-1i16).to_be_bytes())),
    ));
    seeds.push((
        "bad-value-topic-non-utf8".into(),
        damaged_value(&|v| v[23] = 0xff),
    ));
    seeds.push((
        "structured".into(),
        [
            &[bodies::TXN_STATE_LOG_STRUCTURED][..],
            &value_seed(&v1_tags_bytes)[1..],
        ]
        .concat(),
    ));
    seeds.push(("empty".into(), Vec::new()));
    seeds
}

#[test]
fn txn_state_log_seeds_run() {
    let seeds = txn_state_log_seeds();
    for (_, data) in &seeds {
        bodies::txn_state_log(data);
    }
    // The seeds mean what their names say: `bad-*` do not decode, the others do.
    for (name, data) in seeds {
        if data
            .first()
            .is_some_and(|f| f & bodies::TXN_STATE_LOG_STRUCTURED != 0)
            || data.is_empty()
        {
            continue;
        }
        let key_len = usize::from(u16::from_be_bytes([data[1], data[2]]));
        let key = &data[3..3 + key_len];
        let value = (data[0] & bodies::TXN_STATE_LOG_HAS_VALUE != 0).then(|| &data[3 + key_len..]);
        let decoded = embroker::__fuzz::decode_txn_log_record(key, value);
        assert_eq!(
            decoded.is_ok(),
            !name.starts_with("bad-"),
            "seed {name}: {decoded:?}"
        );
        if name.starts_with("v1-") {
            let canonical = bodies::flexible_value_is_canonical(value.expect("a value"));
            assert_eq!(
                canonical,
                Some(matches!(
                    name.as_str(),
                    "v1-tags" | "v1-no-tags" | "v1-end-offsets"
                )),
                "seed {name}"
            );
        }
    }
}

#[test]
fn decode_batch_seeds_run() {
    for (_, data) in decode_batch_seeds()
        .into_iter()
        .chain(decode_batch_regressions())
    {
        bodies::decode_batch(&data);
    }
}

/// The seeds mean what their names say: `valid-*` decode, the others do not, and none of them
/// is rejected for its CRC unless it is about the CRC (a fixed-up CRC reaches the check
/// behind it).
#[test]
fn decode_batch_seeds_are_what_they_say() {
    for (name, data) in decode_batch_seeds() {
        let decoded = codec::decode_batch(&data);
        let expect_ok = name.starts_with("valid-") || name == "two-batches";
        assert_eq!(decoded.is_ok(), expect_ok, "seed {name}: {decoded:?}");
        if let Err(e) = decoded {
            let about_crc = matches!(name, "bad-crc" | "flipped-record-byte");
            assert_eq!(
                e.to_string().contains("CRC mismatch"),
                about_crc,
                "seed {name}: {e}"
            );
        }
    }
    for (name, data) in decode_batch_regressions() {
        let e = codec::decode_batch(&data).expect_err(name);
        assert!(!e.to_string().contains("CRC"), "regression {name}: {e}");
    }
}

#[test]
fn write_seeds() {
    if std::env::var_os("EMBROKER_WRITE_SEEDS").is_none() {
        return;
    }
    let owned = |seeds: Vec<(&str, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        seeds.into_iter().map(|(n, d)| (n.to_string(), d)).collect()
    };
    for (target, seeds) in [
        ("decode_batch", owned(decode_batch_seeds())),
        ("open_partition_dir", owned(open_partition_dir_seeds())),
        ("config_properties", owned(config_properties_seeds())),
        ("offsets_log", owned(offsets_log_seeds())),
        ("txn_state_log", txn_state_log_seeds()),
    ] {
        let body = bodies::TARGETS
            .iter()
            .find(|(name, _)| *name == target)
            .map(|(_, body)| *body)
            .expect("a body per target");
        for (name, data) in seeds {
            body(&data);
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus")
                .join(target)
                .join(format!("seed-{name}"));
            std::fs::write(&path, &data).expect("writing a seed");
        }
    }
    for (name, data) in decode_batch_regressions() {
        bodies::decode_batch(&data);
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/decode_batch")
            .join(format!("regress-{name}"));
        std::fs::write(&path, &data).expect("writing a regression input");
    }
}

/// Writes the `server_request` seeds (`EMBROKER_WRITE_SEEDS=1 cargo test --features server
/// --test fuzz_corpus_replay write_server_request_seeds`): see `server_seeds`.
#[cfg(feature = "server")]
#[test]
fn write_server_request_seeds() {
    let seeds = server_seeds::seeds();
    for (_, data) in &seeds {
        bodies::server_request(data);
    }
    assert!(
        seeds.len() <= 60,
        "{} seeds: keep the corpus small",
        seeds.len()
    );
    if std::env::var_os("EMBROKER_WRITE_SEEDS").is_none() {
        return;
    }
    for (name, data) in seeds {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/server_request")
            .join(if name.starts_with("regress-") {
                name
            } else {
                format!("seed-{name}")
            });
        std::fs::write(&path, &data).expect("writing a seed");
    }
}

/// Seeds of the `server_request` target: real request frames (without the size prefix) of
/// every API the server advertises, encoded by `kafka-protocol` as a client encodes them.
/// The advertised table is read from the server's own ApiVersions answer, so APIs added
/// later get seeds when the seeds are written again.
#[cfg(feature = "server")]
mod server_seeds {
    use super::wire;
    use embroker::codec::{BatchBuilder, ProducerFields};
    use embroker::{Broker, Bytes};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, ListOffsetsRequest,
        MetadataRequest, ProduceRequest, RequestKind, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, StrBytes};

    fn topic() -> TopicName {
        TopicName(StrBytes::from_static_str("t"))
    }

    fn frame(key: ApiKey, version: i16, request: RequestKind) -> Vec<u8> {
        wire::request_body(key, version, 1, &request)
    }

    /// (key, min, max) as the server advertises them.
    fn advertised() -> Vec<(ApiKey, i16, i16)> {
        let broker = Broker::temporary().expect("a broker");
        let request = frame(
            ApiKey::ApiVersions,
            0,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        );
        let answer = embroker::__fuzz::server_answer(&broker, &request).expect("an answer");
        let mut body = Bytes::copy_from_slice(&answer[8..]);
        let r = ApiVersionsResponse::decode(&mut body, 0).expect("ApiVersions v0");
        r.api_keys
            .iter()
            .map(|k| {
                (
                    ApiKey::try_from(k.api_key).expect("a known key"),
                    k.min_version,
                    k.max_version,
                )
            })
            .collect()
    }

    fn batch(producer: Option<ProducerFields>) -> Bytes {
        let mut b = BatchBuilder::new();
        if let Some(p) = producer {
            b.set_producer(p);
        }
        b.push(1_700_000_000_000, Some(b"key"), Some(b"value"), &[])
            .expect("a record");
        b.push(1_700_000_000_001, None, Some(b"second"), &[])
            .expect("a record");
        Bytes::from(b.finish())
    }

    /// The realistic request of `key` (a topic `t` that exists, records to produce), or the
    /// default one for the APIs this module does not know.
    fn request(key: ApiKey, version: i16) -> Option<RequestKind> {
        Some(match key {
            ApiKey::Produce => RequestKind::Produce(
                ProduceRequest::default()
                    .with_acks(if version % 2 == 0 { -1 } else { 1 })
                    .with_timeout_ms(30_000)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(topic())
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(1)
                            .with_records(Some(batch((version >= 9).then_some(
                                ProducerFields {
                                    producer_id: 7,
                                    producer_epoch: 0,
                                    base_sequence: 0,
                                },
                            ))))])]),
            ),
            ApiKey::Fetch => RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(52_428_800)
                    .with_isolation_level(i8::from(version >= 11))
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(topic())
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(1)
                                .with_partition_max_bytes(1_048_576),
                            FetchPartition::default()
                                .with_partition(1)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(1_048_576),
                        ])]),
            ),
            ApiKey::ListOffsets => RequestKind::ListOffsets(
                ListOffsetsRequest::default()
                    .with_replica_id((-1).into())
                    .with_isolation_level(i8::from(version >= 2))
                    .with_topics(vec![ListOffsetsTopic::default()
                        .with_name(topic())
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(if version >= 7 { -3 } else { 1_001 }),
                            ListOffsetsPartition::default()
                                .with_partition_index(1)
                                .with_timestamp(-1),
                        ])]),
            ),
            ApiKey::Metadata => {
                RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic())),
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str("missing")))),
                ])))
            }
            other => wire::default_request(other)?,
        })
    }

    /// Versions worth a seed in `min..=max`.
    fn versions(key: ApiKey, min: i16, max: i16) -> Vec<i16> {
        // The five APIs of the first server at both ends; the rest (some thirty) at their
        // newest only, so the corpus stays small.
        let core = matches!(
            key,
            ApiKey::Metadata
                | ApiKey::Produce
                | ApiKey::Fetch
                | ApiKey::ListOffsets
                | ApiKey::ApiVersions
        );
        let mut v = if core { vec![min, max] } else { vec![max] };
        let extra: &[i16] = match key {
            ApiKey::Metadata => &[1, 4, 9],
            ApiKey::Produce => &[9],
            ApiKey::Fetch => &[11],
            ApiKey::ListOffsets => &[6],
            ApiKey::ApiVersions => &[3],
            _ => &[],
        };
        v.extend(extra.iter().copied().filter(|x| (min..=max).contains(x)));
        v.sort_unstable();
        v.dedup();
        v
    }

    fn header(key: i16, version: i16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&key.to_be_bytes());
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(&1i32.to_be_bytes());
        v.extend_from_slice(&1i16.to_be_bytes());
        v.push(b'c');
        v
    }

    pub(super) fn seeds() -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for (key, min, max) in advertised() {
            for version in versions(key, min, max) {
                let Some(request) = request(key, version) else {
                    continue;
                };
                out.push((
                    format!("{key:?}-v{version}").to_lowercase(),
                    frame(key, version, request),
                ));
            }
        }
        // ApiVersions of a version newer than the server knows (answered, in version 0).
        let mut newer = frame(
            ApiKey::ApiVersions,
            3,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        );
        newer[2..4].copy_from_slice(&99i16.to_be_bytes());
        out.push(("apiversions-v99".into(), newer));
        // Produce with acks=0 (no answer).
        if let Some(RequestKind::Produce(p)) = request(ApiKey::Produce, 9) {
            let acks0 = frame(ApiKey::Produce, 9, RequestKind::Produce(p.with_acks(0)));
            out.push(("produce-v9-acks0".into(), acks0));
        }
        // Counts larger than the request (kafka-protocol would size a Vec from them).
        let mut b = header(3, 1);
        b.extend_from_slice(&i32::MAX.to_be_bytes());
        out.push(("regress-metadata-v1-count-i32-max".into(), b));
        let mut b = header(3, 9);
        b.push(0);
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        out.push(("regress-metadata-v9-compact-count-u32-max".into(), b));
        out
    }
}

/// Runs one file through a body: `EMBROKER_FUZZ_FILE=path EMBROKER_FUZZ_TARGET=name cargo test
/// --test fuzz_corpus_replay one_file -- --nocapture` reproduces a fuzzer crash on stable
/// without libFuzzer (add `EMBROKER_FUZZ_DEBUG=1` to print the decoded input).
#[test]
fn one_file() {
    let (Some(file), Some(target)) = (
        std::env::var_os("EMBROKER_FUZZ_FILE"),
        std::env::var("EMBROKER_FUZZ_TARGET").ok(),
    ) else {
        return;
    };
    let data = std::fs::read(file).expect("EMBROKER_FUZZ_FILE is readable");
    #[cfg(feature = "server")]
    if target == "server_request" {
        bodies::server_request(&data);
        return;
    }
    let body = bodies::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .expect("EMBROKER_FUZZ_TARGET names a body");
    body(&data);
}

/// Regression, found by the `decode_batch` target (corpus file
/// `regress-last-offset-i64-max`): a batch with base offset i64::MAX (a field the CRC does not
/// cover) decoded, and every caller's `next_offset()` then overflowed (a panic with overflow
/// checks, i64::MIN without). `peek_header` now rejects a batch whose next offset does not exist.
#[test]
fn regression_batch_ending_at_i64_max_is_corrupt() {
    let mut b = BatchBuilder::new();
    b.push(1_700_000_000_000, Some(b"key"), Some(b"value"), &[]);
    let mut batch = b.finish();
    codec::set_base_offset(&mut batch, i64::MAX);
    let e = codec::decode_batch(&batch).expect_err("last offset i64::MAX has no next offset");
    assert!(
        matches!(e, codec::DecodeError::Corrupt { position: 23, .. }),
        "{e}"
    );
    codec::set_base_offset(&mut batch, i64::MAX - 1);
    let ok = codec::decode_batch(&batch).expect("last offset i64::MAX - 1 is fine");
    assert_eq!(ok.header.next_offset(), i64::MAX);
}

/// Regression, found by the `open_partition_dir` target (corpus file
/// `regress-recovery-keeps-batches-before-backwards-offset`): recovery stopped at a batch whose
/// offsets go backwards (its base offset is outside the CRC, so a flipped bit there still
/// decodes) by cutting the segment at the start of the read chunk instead of at that batch. The
/// good batches before it were truncated away while the log end still counted them, so reads
/// found nothing below the end and the next open moved the end backwards.
#[test]
fn regression_recovery_keeps_batches_before_one_whose_offsets_go_backwards() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let part = dir.path().join("t-0");
    std::fs::create_dir_all(dir.path().join("topics")).expect("mkdir");
    std::fs::create_dir_all(&part).expect("mkdir");
    std::fs::write(dir.path().join("topics/t"), "num.partitions=1\n").expect("topic file");
    let batch = |base: i64, value: &[u8]| {
        let mut b = BatchBuilder::new();
        b.push(1_700_000_000_000, Some(b"k"), Some(value), &[]);
        b.push(1_700_000_000_001, Some(b"k"), Some(value), &[]);
        let mut bytes = b.finish();
        codec::set_base_offset(&mut bytes, base);
        bytes
    };
    let mut log = batch(0, b"good");
    log.extend(batch(1, b"backwards")); // offsets 1..=2, but 0..=1 are taken
    std::fs::write(part.join("00000000000000000000.log"), &log).expect("segment");

    let broker = embroker::Broker::open(dir.path()).expect("open");
    let p = broker
        .topic("t")
        .and_then(|t| t.partition(0))
        .expect("partition");
    assert_eq!(
        p.log_end_offset(),
        2,
        "the good batch stays, the backwards one goes"
    );
    let read = p.read(0, 1 << 20).expect("read");
    let values: Vec<_> = read.iter().map(|r| r.value).collect();
    assert_eq!(values, [Some("good".into()), Some("good".into())]);
    broker.close().expect("close");

    let broker = embroker::Broker::open(dir.path()).expect("reopen");
    let p = broker
        .topic("t")
        .and_then(|t| t.partition(0))
        .expect("partition");
    assert_eq!(p.log_end_offset(), 2, "reopening keeps the end");
    broker.close().expect("close");
}
