//! The bodies of embroker's fuzz targets, shared by the libFuzzer entry points in
//! `fuzz/fuzz_targets/` and by `tests/fuzz_corpus_replay.rs`, which runs every checked-in corpus
//! file through them as an ordinary test.
//!
//! Every body takes the raw fuzzer input (`&[u8]`) and decodes any structure from it itself
//! (with `arbitrary`), so a corpus file means the same thing to the fuzzer and to the test.
//! Bodies use only embroker's public API. They panic (assert) when an invariant breaks: that is
//! what the fuzzer reports as a crash and what fails the replay test.

// Each fuzz target uses one body; the replay test uses them all.
#![allow(dead_code)]
// Panicking on a broken invariant is the point of a fuzz body.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use embroker::__fuzz::{self, OffsetCommitRecord, TxnLogRecord, TxnLogValue, TxnTopicPartitions};
use embroker::codec::{self, Batch, BatchBuilder, DecodeError};
use embroker::{
    Broker, Bytes, ConsumerConfig, Error, Header, ManualClock, OffsetAndMetadata, Partition,
    ProducerConfig, StoredRecord, TopicConfig, TopicPartition, TxnState,
};

// ---------------------------------------------------------------------------------------------
// decode_batch
// ---------------------------------------------------------------------------------------------

/// Arbitrary bytes through `peek_header` and `decode_batch`. Neither may panic; they must agree
/// with each other; an accepted batch must iterate to exactly `record_count` records with
/// strictly increasing offset deltas within `last_offset_delta`, and re-encoding its records
/// with `BatchBuilder` must give a batch that decodes to the same records.
///
/// The input is checked as it is, then once more with the CRC-32C it would need (when its
/// header says where the batch ends and the stored CRC is not already right). The CRC covers
/// the attributes and every record, and a mutation there almost never keeps it, so without
/// the second pass the fuzzer would reach the checks behind the CRC only through the seeds.
pub fn decode_batch(data: &[u8]) {
    check_decode(data);
    if let Some(fixed) = with_crc_that_holds(data) {
        check_decode(&fixed);
    }
}

/// `data` with bytes 17..21 set to the CRC-32C of bytes 21 to the batch's end, or `None` when
/// the header gives no end inside `data` or the CRC already holds.
fn with_crc_that_holds(data: &[u8]) -> Option<Vec<u8>> {
    let length = i32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
    let end = usize::try_from(length)
        .ok()?
        .checked_add(codec::LENGTH_PREFIX_BYTES)?;
    if end < codec::HEADER_BYTES || end > data.len() {
        return None;
    }
    let crc = crc32c::crc32c(&data[21..end]).to_be_bytes();
    if data[17..21] == crc {
        return None;
    }
    let mut fixed = data.to_vec();
    fixed[17..21].copy_from_slice(&crc);
    Some(fixed)
}

fn check_decode(data: &[u8]) {
    let peeked = codec::peek_header(data);
    let decoded = codec::decode_batch(data);
    match (&peeked, &decoded) {
        (Err(p), Err(d)) => assert_eq!(p, d, "a bad header must fail both the same way"),
        (Err(p), Ok(_)) => panic!("decode_batch accepted a header peek_header rejects: {p}"),
        (Ok(_), _) => {}
    }
    match decoded {
        Ok(batch) => check_decoded_batch(data, &batch),
        Err(e) => check_decode_error(data, &e),
    }
}

fn check_decode_error(data: &[u8], e: &DecodeError) {
    // Display must not panic either (it ends up in error messages that name files).
    let _ = e.to_string();
    match *e {
        DecodeError::Incomplete { needed, available } => {
            assert_eq!(available, data.len(), "Incomplete reports the input length");
            assert!(
                needed > available,
                "Incomplete needs more than there is: {e}"
            );
        }
        DecodeError::Corrupt { position, .. } => {
            // Positions are relative to the input; a record cut at the batch end may point
            // just past the last byte, never further.
            assert!(
                position <= data.len(),
                "corrupt position past the input: {e}"
            );
        }
    }
}

/// One record of a decoded batch, owned, for comparisons.
#[derive(Debug, PartialEq, Eq)]
struct OwnedRecord {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn owned_records(batch: &Batch<'_>) -> Vec<OwnedRecord> {
    let h = &batch.header;
    let span = batch.bytes.as_ptr_range();
    let inside = |s: &[u8]| {
        let r = s.as_ptr_range();
        span.start <= r.start && r.end <= span.end
    };
    let mut out = Vec::new();
    let mut previous_delta: Option<i32> = None;
    for r in batch.records() {
        assert!(
            r.offset_delta >= 0,
            "negative offset delta {}",
            r.offset_delta
        );
        assert!(
            previous_delta.is_none_or(|p| r.offset_delta > p),
            "offset deltas must strictly increase"
        );
        assert!(
            r.offset_delta <= h.last_offset_delta,
            "offset delta {} past last_offset_delta {}",
            r.offset_delta,
            h.last_offset_delta
        );
        previous_delta = Some(r.offset_delta);
        let timestamp = h
            .base_timestamp
            .checked_add(r.timestamp_delta)
            .expect("decode_batch accepted a record timestamp that overflows");
        assert!(r.key.is_none_or(inside), "key outside the batch bytes");
        assert!(r.value.is_none_or(inside), "value outside the batch bytes");
        let headers: Vec<(String, Option<Vec<u8>>)> = r
            .headers
            .clone()
            .map(|(k, v)| {
                assert!(v.is_none_or(inside), "header value outside the batch bytes");
                (k.to_string(), v.map(<[u8]>::to_vec))
            })
            .collect();
        assert_eq!(headers.len(), r.headers.len(), "header count vs iterated");
        out.push(OwnedRecord {
            timestamp,
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
            headers,
        });
    }
    out
}

/// A compressed batch that decodes inflates to an uncompressed batch with the same header
/// (but its codec bits, length and CRC) and the records `batch_records` gives; that batch
/// passes every check of an uncompressed one, and compressing it again with the same codec
/// gives a batch that inflates back to it.
fn check_compressed_batch(batch: &Batch<'_>, count: usize) {
    let h = batch.header;
    assert_eq!(
        batch.records().count(),
        0,
        "records() of a compressed batch"
    );
    let records = codec::batch_records(batch).expect("decode_batch checked the records");
    assert_eq!(
        records.iter().count(),
        count,
        "decompressed records vs record_count"
    );
    let mut plain = Vec::new();
    codec::inflate_batch(batch, &mut plain).expect("a decoded batch inflates");
    let inflated = codec::decode_batch(&plain).expect("an inflated batch decodes");
    let ih = inflated.header;
    assert!(!ih.is_compressed());
    assert_eq!(ih.attributes, h.attributes & !0x07);
    assert_eq!(
        (
            ih.base_offset,
            ih.last_offset_delta,
            ih.base_timestamp,
            ih.max_timestamp
        ),
        (
            h.base_offset,
            h.last_offset_delta,
            h.base_timestamp,
            h.max_timestamp
        )
    );
    assert_eq!(
        (
            ih.producer_id,
            ih.producer_epoch,
            ih.base_sequence,
            ih.record_count
        ),
        (
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.record_count
        )
    );
    let same: Vec<_> = records.iter().collect();
    let again: Vec<_> = inflated.records().collect();
    assert_eq!(same, again, "batch_records vs the inflated batch's records");
    check_decoded_batch(&plain, &inflated);
    let codec = codec::Compression::from_id(h.compression_id()).expect("a decoded codec id");
    let mut recompressed = Vec::new();
    codec::compress_batch(
        &inflated,
        codec::CompressionCodec::new(codec),
        &mut recompressed,
    )
    .expect("an inflated batch compresses");
    let mut back = Vec::new();
    codec::inflate_batch(
        &codec::decode_batch(&recompressed).expect("a recompressed batch decodes"),
        &mut back,
    )
    .expect("a recompressed batch inflates");
    assert_eq!(back, plain, "compress then inflate changed the batch");
}

fn check_decoded_batch(data: &[u8], batch: &Batch<'_>) {
    let h = batch.header;
    assert_eq!(
        codec::peek_header(data),
        Ok(h),
        "peek_header and decode_batch disagree"
    );
    let total = h.total_bytes();
    assert_eq!(batch.bytes.len(), total, "batch bytes vs total_bytes");
    assert_eq!(
        batch.bytes,
        &data[..total],
        "batch bytes are the front of the input"
    );
    assert_eq!(h.magic, codec::MAGIC);
    assert!(h.base_offset >= 0, "negative base offset accepted");
    assert!(h.record_count >= 1, "empty batch accepted");
    assert!(
        h.last_offset() >= h.base_offset,
        "last offset before base offset"
    );
    // The log asks every batch for the offset after it; that must exist.
    assert!(
        h.last_offset().checked_add(1).is_some(),
        "decode_batch accepted a batch whose next offset overflows i64: last offset {}",
        h.last_offset()
    );
    let count = usize::try_from(h.record_count).expect("record_count checked positive");
    if h.is_compressed() {
        check_compressed_batch(batch, count);
        return;
    }
    assert_eq!(batch.records().size_hint(), (count, Some(count)));
    let records = owned_records(batch);
    assert_eq!(records.len(), count, "iterated records vs record_count");

    // The batch alone decodes the same; one byte short is a torn batch.
    let alone = codec::decode_batch(batch.bytes).expect("the batch's own bytes decode");
    assert_eq!(alone.header, h);
    assert!(
        matches!(
            codec::decode_batch(&batch.bytes[..total - 1]),
            Err(DecodeError::Incomplete { .. })
        ),
        "a batch cut by one byte must be Incomplete"
    );

    // Re-encode the records; the result must decode to the same records. (Skipped when the
    // builder refuses a record, e.g. a timestamp delta it cannot represent.)
    let mut builder = BatchBuilder::new();
    for r in &records {
        let headers: Vec<Header> = r
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k.clone(),
                value: v.clone().map(Bytes::from),
            })
            .collect();
        if builder
            .push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers)
            .is_none()
        {
            return;
        }
    }
    let mut rebuilt = builder.finish();
    codec::set_base_offset(&mut rebuilt, h.base_offset);
    let again = codec::decode_batch(&rebuilt).expect("BatchBuilder output must decode");
    assert_eq!(again.header.record_count, h.record_count);
    assert_eq!(owned_records(&again), records, "re-encoded records differ");
}

// ---------------------------------------------------------------------------------------------
// open_partition_dir
// ---------------------------------------------------------------------------------------------

/// Most segments in one image: enough for sealed, checkpointed and active segments.
const SEGMENTS_MAX: usize = 3;
/// Most valid batches per segment, records per batch, headers per record.
const BATCHES_MAX: usize = 8;
const RECORDS_MAX: usize = 4;
const HEADERS_MAX: usize = 2;
/// Reading offset by offset costs a read per offset; above this span only the offsets around
/// records are read.
const OFFSET_BY_OFFSET_SPAN_MAX: i64 = 512;

#[derive(Arbitrary, Debug)]
pub enum KeyChoice {
    /// One of `TopicConfig::KEYS`, by index.
    Known(u8),
    Other(String),
}

impl KeyChoice {
    fn text(&self, keys: &[&str]) -> String {
        match self {
            KeyChoice::Known(i) => keys[usize::from(*i) % keys.len()].to_string(),
            KeyChoice::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum TopicFile {
    /// `num.partitions=1` alone.
    Minimal,
    /// `num.partitions=1` then `key=value` lines.
    WithPairs(Vec<(KeyChoice, String)>),
    /// Raw bytes, optionally after a `num.partitions=1` line.
    Raw {
        partitions_line: bool,
        bytes: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
pub enum SegmentBase {
    /// The offset after the previous segment's valid batches (what a roll does).
    AfterPrevious,
    At(u16),
}

#[derive(Arbitrary, Debug)]
pub struct RecordSpec {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

#[derive(Arbitrary, Debug)]
pub struct BatchSpec {
    /// Offsets skipped before this batch (compaction leaves such gaps).
    pub gap: u8,
    pub log_append_time: bool,
    pub records: Vec<RecordSpec>,
}

#[derive(Arbitrary, Debug)]
pub enum Damage {
    None,
    /// XOR `mask` into the byte at `at` (modulo the valid bytes).
    Flip {
        at: u16,
        mask: u8,
    },
    /// Cut this many bytes off the valid bytes (a torn write).
    Truncate(u16),
}

#[derive(Arbitrary, Debug)]
pub enum IndexFile {
    Missing,
    Raw(Vec<u8>),
    /// Entries `(relative offset, position)`, written as the format says.
    Entries(Vec<(u32, u32)>),
    /// What the log would write: an entry for every `n`-th batch boundary.
    Exact(u8),
}

#[derive(Arbitrary, Debug)]
pub enum TimeIndexFile {
    Missing,
    Raw(Vec<u8>),
    /// Entries `(timestamp, relative offset)`.
    Entries(Vec<(i64, u32)>),
    /// What the log would write: the running maximum timestamp after every batch.
    Exact,
}

#[derive(Arbitrary, Debug)]
pub struct SegmentSpec {
    pub base: SegmentBase,
    pub batches: Vec<BatchSpec>,
    pub damage: Damage,
    /// Bytes after the valid batches: torn appends, garbage.
    pub tail: Vec<u8>,
    pub index: IndexFile,
    pub time_index: TimeIndexFile,
}

#[derive(Arbitrary, Debug)]
pub enum RecoveryPointFile {
    Missing,
    Raw(Vec<u8>),
    /// A well-formed checkpoint (CRC right) with arbitrary fields.
    Fields {
        offset: i64,
        segment_base: i64,
        position: u64,
        max_timestamp: i64,
    },
    /// What a flush would write: after the first `batches` valid batches of segment `segment`.
    AtBatch {
        segment: u8,
        batches: u8,
    },
}

#[derive(Arbitrary, Debug)]
pub struct DirImage {
    pub topic_file: TopicFile,
    pub segments: Vec<SegmentSpec>,
    pub recovery_point: RecoveryPointFile,
    pub read_bytes_max: u16,
    pub timestamps: Vec<i64>,
}

/// A segment as written: its base, valid batches (position, header facts) and files.
struct BuiltSegment {
    base: i64,
    /// Per valid batch: position, base offset, last offset, running max timestamp after it.
    batches: Vec<(u64, i64, i64, i64)>,
    /// Per valid batch: its end position and its records' (offset, key, value).
    contents: Vec<(u64, Vec<Expected>)>,
    /// Bytes of the valid batches that damage left alone (all of them when undamaged).
    intact_len: u64,
    /// Bytes follow the valid batches: recovery may cut there.
    has_tail: bool,
    /// Offset after the valid batches.
    next_offset: i64,
    /// Bytes of the valid batches.
    valid_len: u64,
    log: Vec<u8>,
    damaged: bool,
    index: Vec<u8>,
    index_honest: bool,
    time_index: Option<Vec<u8>>,
    time_index_honest: bool,
}

fn topic_file_bytes(spec: &TopicFile) -> Option<Vec<u8>> {
    let mut text = Vec::new();
    let expected_mentions = match spec {
        TopicFile::Minimal => {
            text.extend_from_slice(b"num.partitions=1\n");
            1
        }
        TopicFile::WithPairs(pairs) => {
            text.extend_from_slice(b"num.partitions=1\n");
            for (k, v) in pairs {
                text.extend_from_slice(k.text(TopicConfig::KEYS).as_bytes());
                text.push(b'=');
                text.extend_from_slice(v.as_bytes());
                text.push(b'\n');
            }
            1
        }
        TopicFile::Raw {
            partitions_line,
            bytes,
        } => {
            if *partitions_line {
                text.extend_from_slice(b"num.partitions=1\n");
            }
            text.extend_from_slice(bytes);
            usize::from(*partitions_line)
        }
    };
    // More partitions only repeat the same work (up to 10 000 times): keep it to one.
    let mentions = text.windows(10).filter(|w| w == b"partitions").count();
    (mentions == expected_mentions).then_some(text)
}

fn build_segment(spec: &SegmentSpec, base: i64) -> BuiltSegment {
    let mut log = Vec::new();
    let mut batches = Vec::new();
    let mut contents = Vec::new();
    let mut offset = base;
    let mut max_ts = i64::MIN;
    for b in spec.batches.iter().take(BATCHES_MAX) {
        let mut builder = BatchBuilder::new();
        for r in b.records.iter().take(RECORDS_MAX) {
            let headers: Vec<Header> = r
                .headers
                .iter()
                .take(HEADERS_MAX)
                .map(|(k, v)| Header::new(k.clone(), Bytes::from(v.clone())))
                .collect();
            // A record the builder refuses (timestamp delta too large) is left out.
            let _ = builder.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
        }
        if builder.is_empty() {
            continue;
        }
        let mut batch = builder.finish();
        offset += i64::from(b.gap);
        codec::set_base_offset(&mut batch, offset);
        if b.log_append_time {
            // The append time is the largest record timestamp: any value will do.
            let h = codec::peek_header(&batch).expect("built batch");
            codec::set_log_append_time(&mut batch, h.max_timestamp);
        }
        let decoded = codec::decode_batch(&batch).expect("BatchBuilder output decodes");
        let h = decoded.header;
        let expected: Vec<Expected> = decoded
            .records()
            .map(|r| {
                (
                    h.base_offset + i64::from(r.offset_delta),
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                )
            })
            .collect();
        contents.push(((log.len() + batch.len()) as u64, expected));
        max_ts = max_ts.max(h.max_timestamp);
        batches.push((log.len() as u64, h.base_offset, h.last_offset(), max_ts));
        log.extend_from_slice(&batch);
        offset = h.last_offset() + 1;
    }
    let valid_len = log.len() as u64;
    let mut intact_len = valid_len;
    let damaged = match spec.damage {
        Damage::None => false,
        Damage::Flip { at, mask } => {
            if !log.is_empty() && mask != 0 {
                let at = usize::from(at) % log.len();
                log[at] ^= mask;
                intact_len = at as u64;
                true
            } else {
                false
            }
        }
        Damage::Truncate(n) => {
            let n = usize::from(n).min(log.len());
            log.truncate(log.len() - n);
            intact_len = log.len() as u64;
            n > 0
        }
    };
    log.extend_from_slice(&spec.tail);

    let (index, index_honest) = match &spec.index {
        IndexFile::Missing => (None, true),
        IndexFile::Raw(bytes) => (Some(bytes.clone()), false),
        IndexFile::Entries(entries) => {
            let mut out = Vec::new();
            for (rel, pos) in entries {
                out.extend_from_slice(&rel.to_be_bytes());
                out.extend_from_slice(&pos.to_be_bytes());
            }
            (Some(out), false)
        }
        IndexFile::Exact(every) => {
            let every = usize::from(*every) + 1;
            let mut out = Vec::new();
            for (i, (pos, first, _, _)) in batches.iter().enumerate() {
                if i > 0 && i % every == 0 {
                    let rel = u32::try_from(first - base).expect("u16 bases, few batches");
                    let pos = u32::try_from(*pos).expect("small segment");
                    out.extend_from_slice(&rel.to_be_bytes());
                    out.extend_from_slice(&pos.to_be_bytes());
                }
            }
            (Some(out), true)
        }
    };
    let (time_index, time_index_honest) = match &spec.time_index {
        TimeIndexFile::Missing => (None, true),
        TimeIndexFile::Raw(bytes) => (Some(bytes.clone()), false),
        TimeIndexFile::Entries(entries) => {
            let mut out = Vec::new();
            for (ts, rel) in entries {
                out.extend_from_slice(&ts.to_be_bytes());
                out.extend_from_slice(&rel.to_be_bytes());
            }
            (Some(out), false)
        }
        TimeIndexFile::Exact => {
            let mut out = Vec::new();
            let mut last = i64::MIN;
            for (_, _, last_offset, max_ts) in &batches {
                if *max_ts > last {
                    last = *max_ts;
                    let rel = u32::try_from(last_offset - base).expect("u16 bases, few batches");
                    out.extend_from_slice(&max_ts.to_be_bytes());
                    out.extend_from_slice(&rel.to_be_bytes());
                }
            }
            (Some(out), true)
        }
    };
    BuiltSegment {
        base,
        batches,
        contents,
        intact_len,
        has_tail: !spec.tail.is_empty(),
        next_offset: offset,
        valid_len,
        log,
        damaged,
        // A missing index file is written as missing, not as an empty one.
        index: index.unwrap_or_default(),
        index_honest,
        time_index,
        time_index_honest,
    }
}

/// A record a valid batch holds: offset, key, value.
type Expected = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// The 42-byte recovery point file, as `src/log/checkpoint.rs` documents it.
fn recovery_point_bytes(offset: i64, segment_base: i64, position: u64, max_ts: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(42);
    b.extend_from_slice(b"EBRP");
    b.extend_from_slice(&2u16.to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(&segment_base.to_be_bytes());
    b.extend_from_slice(&position.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

fn segment_file(dir: &Path, base: i64, extension: &str) -> std::path::PathBuf {
    dir.join(format!("{base:020}.{extension}"))
}

/// `EMBROKER_FUZZ_DEBUG=1` prints what a structured input decodes to (to read a crash input).
fn debug_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("EMBROKER_FUZZ_DEBUG").is_some())
}

/// Builds a data directory (topic `t`, one partition) from arbitrary bytes, opens a broker on
/// it, and reads the partition end to end. Nothing may panic. Every read must return only
/// batches that decode (CRC and framing), records in strictly increasing offset order within
/// `[from, log end)`. When the image tells no lies in what a recovery point makes the log trust
/// (no checkpoint at all, or one a flush would have written over honest index files and
/// undamaged sealed data), reads must also agree with each other: a read from any offset
/// returns a prefix of the records at or after it; a closed and reopened broker shows the same
/// log; `offset_for_timestamp` finds the earliest record at or after the timestamp.
pub fn open_partition_dir(data: &[u8]) {
    let Ok(image) = DirImage::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    if debug_enabled() {
        eprintln!("{image:#?}");
    }
    let Some(topic_file) = topic_file_bytes(&image.topic_file) else {
        return;
    };
    // tmpfs when there is one: the broker fsyncs on open, and on a disk that is most of an
    // execution's time. Nothing here needs durability.
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temporary directory");
    let dir = tmp.path();
    let part = dir.join("t-0");
    std::fs::create_dir_all(dir.join("topics")).expect("mkdir topics");
    std::fs::create_dir_all(&part).expect("mkdir t-0");
    std::fs::write(dir.join("topics").join("t"), &topic_file).expect("write topic file");

    let mut built: Vec<BuiltSegment> = Vec::new();
    let mut names_overlap = false;
    for spec in image.segments.iter().take(SEGMENTS_MAX) {
        let previous_next = built.last().map_or(0, |s| s.next_offset);
        let base = match spec.base {
            SegmentBase::AfterPrevious => previous_next,
            SegmentBase::At(b) => i64::from(b),
        };
        if built.iter().any(|s| s.base == base) {
            continue; // same file name: keep the first
        }
        names_overlap |= base < previous_next;
        let seg = build_segment(spec, base);
        std::fs::write(segment_file(&part, base, "log"), &seg.log).expect("write log");
        if !matches!(spec.index, IndexFile::Missing) {
            std::fs::write(segment_file(&part, base, "index"), &seg.index).expect("write index");
        }
        if let Some(t) = &seg.time_index {
            std::fs::write(segment_file(&part, base, "timeindex"), t).expect("write timeindex");
        }
        built.push(seg);
    }
    // Files are listed sorted by base offset; so is the log.
    built.sort_by_key(|s| s.base);
    names_overlap |= built.windows(2).any(|w| w[1].base < w[0].next_offset);

    let honest = match &image.recovery_point {
        RecoveryPointFile::Missing => true,
        RecoveryPointFile::Raw(bytes) => {
            std::fs::write(part.join("recovery-point"), bytes).expect("write recovery point");
            // Random bytes are a valid checkpoint only if the fuzzer forged the CRC.
            bytes.len() != 42
        }
        RecoveryPointFile::Fields {
            offset,
            segment_base,
            position,
            max_timestamp,
        } => {
            let b = recovery_point_bytes(*offset, *segment_base, *position, *max_timestamp);
            std::fs::write(part.join("recovery-point"), b).expect("write recovery point");
            false
        }
        RecoveryPointFile::AtBatch { segment, batches } => {
            if built.is_empty() {
                true
            } else {
                let s = usize::from(*segment) % built.len();
                let seg = &built[s];
                let k = usize::from(*batches) % (seg.batches.len() + 1);
                let (position, offset, max_ts) = if k == 0 {
                    (0, seg.base, i64::MIN)
                } else if k == seg.batches.len() {
                    let (_, _, _, max_ts) = seg.batches[k - 1];
                    (seg.valid_len, seg.next_offset, max_ts)
                } else {
                    let (_, _, last, max_ts) = seg.batches[k - 1];
                    (seg.batches[k].0, last + 1, max_ts)
                };
                let b = recovery_point_bytes(offset, seg.base, position, max_ts);
                std::fs::write(part.join("recovery-point"), b).expect("write recovery point");
                // The log trusts the files of the checkpointed segment and every one before it,
                // and the whole log of every segment before it (tail bytes included).
                !names_overlap
                    && built[..=s]
                        .iter()
                        .all(|t| !t.damaged && t.index_honest && t.time_index_honest)
                    && built[..s].iter().all(|t| !t.has_tail)
            }
        }
    };

    // Open scans segments without a checkpoint but leaves their index files as they were; the
    // next open trusts those files for sealed segments. So the reopen is held to the model only
    // when every index file was honest too.
    let honest_reopen = honest && built.iter().all(|s| s.index_honest && s.time_index_honest);

    // No data loss: recovery may cut a segment at its first damaged batch or at its tail (and
    // drop the segments after it), but every batch before the damage must be read back.
    let mut kept: Vec<Expected> = Vec::new();
    for seg in &built {
        for (end, records) in &seg.contents {
            if *end <= seg.intact_len {
                kept.extend(records.iter().cloned());
            }
        }
        // A cut segment takes every later one with it (as Kafka's recovery does).
        if seg.intact_len < seg.valid_len || seg.has_tail {
            break;
        }
    }

    if debug_enabled() {
        for seg in &built {
            eprintln!(
                "segment {}: valid {} bytes, intact {} bytes, batch ends {:?}",
                seg.base,
                seg.valid_len,
                seg.intact_len,
                seg.contents.iter().map(|c| c.0).collect::<Vec<_>>()
            );
        }
        eprintln!("records that must survive: {}", kept.len());
    }
    let read_bytes_max = usize::from(image.read_bytes_max);
    let first = open_and_read(dir, read_bytes_max, &image.timestamps, honest);
    if honest && !names_overlap {
        // With only `num.partitions=1` in the topic file, nothing may keep it from opening.
        assert!(
            first.is_some() || !matches!(image.topic_file, TopicFile::Minimal),
            "an honest directory image did not open"
        );
    }
    if let (true, false, Some(seen)) = (honest, names_overlap, &first) {
        if seen.complete {
            for want in &kept {
                assert!(
                    seen.records.iter().any(|r| {
                        (r.offset, r.key.as_deref(), r.value.as_deref())
                            == (want.0, want.1.as_deref(), want.2.as_deref())
                    }),
                    "recovery lost the intact record at offset {} (log [{}, {}), {} records read)",
                    want.0,
                    seen.log_start,
                    seen.log_end,
                    seen.records.len()
                );
            }
        }
    }
    if debug_enabled() {
        eprintln!(
            "honest={honest} honest_reopen={honest_reopen} opened={}",
            first.as_ref().map_or("no".to_string(), |s| format!(
                "[{}, {}) {} records, complete={}",
                s.log_start,
                s.log_end,
                s.records.len(),
                s.complete
            ))
        );
    }
    if let Some(first) = first {
        let second = open_and_read(dir, read_bytes_max, &image.timestamps, honest_reopen);
        if honest_reopen {
            let second = second.expect("the directory opened the first time; it must again");
            assert_eq!(
                (first.log_start, first.log_end),
                (second.log_start, second.log_end),
                "reopening after a clean close changed the log's offsets"
            );
            if first.complete && second.complete {
                assert_eq!(
                    first.records, second.records,
                    "reopening changed the records"
                );
            }
        }
    }
}

/// What one open saw of partition `t-0`.
struct Seen {
    log_start: i64,
    log_end: i64,
    records: Vec<StoredRecord>,
    /// The walk from start to end read everything without an error.
    complete: bool,
}

/// Opens the broker, checks `describe_topic` and the partition, closes. `None` when the
/// broker or the partition did not open.
fn open_and_read(
    dir: &Path,
    read_bytes_max: usize,
    timestamps: &[i64],
    honest: bool,
) -> Option<Seen> {
    // A fixed clock: the same input must do the same thing every run.
    let broker = match Broker::builder()
        .clock(ManualClock::new(1_700_000_000_000))
        .open(dir)
    {
        Ok(b) => b,
        Err(e) => {
            let _ = e.to_string();
            return None;
        }
    };
    let described = broker.describe_topic("t");
    let partition = broker.topic("t").and_then(|t| t.partition(0));
    let seen = match partition {
        Ok(p) => {
            let seen = check_partition(&p, read_bytes_max, timestamps, honest);
            let d = described.expect("the partition opened, so its topic describes");
            assert_eq!(d.partitions.len(), 1, "num.partitions=1");
            let pd = &d.partitions[0];
            assert!(
                pd.error.is_none(),
                "online partition described with an error"
            );
            assert_eq!(pd.log_start_offset, seen.log_start);
            assert_eq!(pd.log_end_offset, seen.log_end);
            Some(seen)
        }
        Err(e) => {
            if debug_enabled() {
                eprintln!("partition did not open: {e}; described: {described:?}");
            }
            if let Ok(d) = described {
                let _ = format!("{d:?}");
            }
            None
        }
    };
    if let Err(e) = broker.close() {
        let _ = e.to_string();
    }
    seen
}

/// Checks one read: whole batches that decode (always: reads CRC-check every batch). When
/// `strict` (nothing trusted was damaged), also offsets in order within `[from, end)`: the
/// CRC does not cover a batch's base offset, so damage to a flushed batch's offset field is not
/// caught at read (see fuzz/README.md, "Findings").
fn check_read(records: &embroker::Records, from: i64, end: i64, strict: bool) -> Vec<StoredRecord> {
    let mut next = from;
    for batch in records.batches() {
        let again = codec::decode_batch(batch.bytes);
        assert!(
            again.is_ok(),
            "a read returned a batch that does not decode: {again:?}"
        );
        if strict {
            assert!(
                batch.header.last_offset() >= next,
                "a read returned a batch wholly before the read offset or the previous batch"
            );
        }
        // Saturating: embroker itself computes next_offset (Records::new); a panic there is
        // its finding, not this check's.
        next = batch.header.last_offset().saturating_add(1);
    }
    if !records.is_empty() {
        assert_eq!(
            records.next_offset(),
            next,
            "next_offset is the end of the last batch"
        );
    }
    let list: Vec<StoredRecord> = records.iter().collect();
    if strict {
        let mut previous = from - 1;
        for r in &list {
            assert!(
                r.offset > previous,
                "offsets must strictly increase from the read offset"
            );
            assert!(
                r.offset < end,
                "record offset {} at or past the log end {end}",
                r.offset
            );
            previous = r.offset;
        }
    }
    list
}

fn check_partition(p: &Partition, read_bytes_max: usize, timestamps: &[i64], honest: bool) -> Seen {
    let start = p.log_start_offset();
    let end = p.log_end_offset();
    assert!(0 <= start && start <= end, "log start {start}, end {end}");
    // (A recovery point with fuzzed fields can put the end at i64::MAX: nothing is past it.)
    for outside in [Some(start - 1), end.checked_add(1)].into_iter().flatten() {
        let r = p.read(outside, read_bytes_max);
        assert!(
            matches!(r, Err(Error::OffsetOutOfRange { .. })),
            "read at {outside} outside [{start}, {end}] gave {r:?}"
        );
    }
    assert!(
        p.read(end, read_bytes_max).is_ok_and(|r| r.is_empty()),
        "read at the end"
    );

    // Walk from start to end, batch by batch.
    let mut records: Vec<StoredRecord> = Vec::new();
    let mut at = start;
    let mut complete = true;
    while at < end {
        match p.read(at, read_bytes_max) {
            Ok(rs) => {
                if rs.is_empty() {
                    break; // a gap up to the end: nothing more to read
                }
                let list = check_read(&rs, at, end, honest);
                if rs.next_offset() <= at {
                    // Only damaged trusted data can send a read backwards (see check_read).
                    assert!(!honest, "a non-empty read must move forward");
                    complete = false;
                    break;
                }
                if let (Some(last), Some(first)) = (records.last(), list.first()) {
                    assert!(
                        !honest || first.offset > last.offset,
                        "the walk went backwards"
                    );
                }
                records.extend(list);
                at = rs.next_offset();
            }
            Err(e) => {
                let _ = e.to_string();
                complete = false;
                break;
            }
        }
    }

    if honest && complete {
        // Every offset when the span is small; otherwise the ones where reads can go wrong:
        // each record's offset and the one after it (gaps), and both ends.
        let offsets: Vec<i64> = if end - start <= OFFSET_BY_OFFSET_SPAN_MAX {
            (start..end).collect()
        } else {
            let mut o: Vec<i64> = records
                .iter()
                .flat_map(|r| [r.offset, r.offset + 1])
                .chain([start, end - 1])
                .filter(|o| (start..end).contains(o))
                .collect();
            o.sort_unstable();
            o.dedup();
            o
        };
        for from in offsets {
            let rs = p
                .read(from, read_bytes_max)
                .expect("the walk read everything");
            let got = check_read(&rs, from, end, true);
            let want: Vec<&StoredRecord> = records.iter().filter(|r| r.offset >= from).collect();
            assert!(
                got.len() <= want.len(),
                "read at {from} returned extra records"
            );
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(&g, w, "read at {from} disagrees with the walk");
            }
            assert!(
                !want.is_empty() || got.is_empty(),
                "read at {from} found records the walk did not"
            );
        }
    }

    for &ts in timestamps.iter().take(4) {
        match p.offset_for_timestamp(ts) {
            Ok(found) => {
                if honest && complete && ts >= 0 {
                    let want = records
                        .iter()
                        .find(|r| r.timestamp >= ts)
                        .map(|r| (r.offset, r.timestamp));
                    assert_eq!(
                        found.map(|o| (o.offset, o.timestamp)),
                        want,
                        "offset_for_timestamp({ts})"
                    );
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    Seen {
        log_start: start,
        log_end: end,
        records,
        complete,
    }
}

// ---------------------------------------------------------------------------------------------
// config_properties
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
pub enum ConfigKey {
    /// A key one of the three configs knows, by index over all their keys.
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
pub enum ConfigValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Arbitrary, Debug)]
pub struct ConfigInput {
    pub pairs: Vec<(ConfigKey, ConfigValue)>,
}

fn all_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    keys.extend(TopicConfig::KEYS);
    keys.extend(ProducerConfig::KEYS);
    keys.extend(ProducerConfig::IGNORED_KEYS.iter().map(|(k, _)| *k));
    keys.extend(ConsumerConfig::KEYS);
    keys.extend(ConsumerConfig::IGNORED_KEYS.iter().map(|(k, _)| *k));
    keys
}

/// Arbitrary `key=value` pairs through the three configs' `from_properties`, as a list and one
/// pair at a time. Nothing may panic; an error must name a key (for one pair: that key); an
/// accepted config must validate, and `to_properties` must write every key in `KEYS` order and
/// parse back to an equal config.
pub fn config_properties(data: &[u8]) {
    let Ok(input) = ConfigInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let keys = all_keys();
    let pairs: Vec<(String, String)> = input
        .pairs
        .iter()
        .map(|(k, v)| {
            let key = match k {
                ConfigKey::Known(i) => keys[usize::from(*i) % keys.len()].to_string(),
                ConfigKey::Other(s) => s.clone(),
            };
            let value = match v {
                ConfigValue::Text(s) => s.clone(),
                ConfigValue::Int(i) => i.to_string(),
                ConfigValue::Float(f) => f.to_string(),
                ConfigValue::Bool(b) => b.to_string(),
            };
            (key, value)
        })
        .collect();

    match TopicConfig::from_properties(&pairs) {
        Ok(c) => {
            c.validate().expect("an accepted topic config validates");
            let props = c.to_properties();
            let written: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
            assert_eq!(written, TopicConfig::KEYS, "topic keys in KEYS order");
            let back = TopicConfig::from_properties(&props).expect("topic config round trip");
            assert_eq!(back, c, "topic config round trip");
        }
        Err(e) => check_config_error(&e, &pairs),
    }
    match ProducerConfig::from_properties(&pairs) {
        Ok(c) => {
            c.validate().expect("an accepted producer config validates");
            let props = c.to_properties();
            let written: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
            assert_eq!(written, ProducerConfig::KEYS, "producer keys in KEYS order");
            let back = ProducerConfig::from_properties(&props).expect("producer config round trip");
            assert_eq!(back.to_properties(), props, "producer config round trip");
            assert_eq!(back, c, "producer config round trip");
        }
        Err(e) => check_config_error(&e, &pairs),
    }
    match ConsumerConfig::from_properties(&pairs) {
        Ok(c) => {
            c.validate().expect("an accepted consumer config validates");
            let props = c.to_properties();
            let written: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
            assert!(
                written.iter().all(|k| ConsumerConfig::KEYS.contains(k)),
                "consumer keys are known keys"
            );
            let order: Vec<usize> = written
                .iter()
                .map(|k| ConsumerConfig::KEYS.iter().position(|x| x == k).unwrap())
                .collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "consumer keys in KEYS order"
            );
            let back = ConsumerConfig::from_properties(&props).expect("consumer config round trip");
            assert_eq!(back, c, "consumer config round trip");
        }
        Err(e) => check_config_error(&e, &pairs),
    }
    check_single_pairs(&pairs);
}

/// One pair alone through each config: an error must name exactly that key. (Also lets one
/// input reach many keys' error paths, where the whole list stops at its first error; that
/// keeps the minimized corpus small.)
fn check_single_pairs(pairs: &[(String, String)]) {
    for pair in pairs {
        let one = std::slice::from_ref(pair);
        let errors = [
            TopicConfig::from_properties(one).err(),
            ProducerConfig::from_properties(one).err(),
            ConsumerConfig::from_properties(one).err(),
        ];
        for e in errors.into_iter().flatten() {
            let _ = e.to_string();
            match &e {
                Error::InvalidConfig { key, .. } => {
                    assert_eq!(key, &pair.0, "a one-pair config error names another key");
                }
                Error::Unsupported { .. } => {}
                other => panic!("config parsing failed with an unexpected error kind: {other}"),
            }
        }
    }
}

fn check_config_error(e: &Error, pairs: &[(String, String)]) {
    let _ = e.to_string();
    match e {
        Error::InvalidConfig { key, .. } => {
            // A parse error names the key as given; a validation error names a known key.
            let given = pairs.iter().any(|(k, _)| k == key);
            assert!(
                given || all_keys().contains(&key.as_str()),
                "config error names key {key:?}, which is neither given nor known"
            );
        }
        Error::Unsupported { .. } => {}
        other => panic!("config parsing failed with an unexpected error kind: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// offsets_log
// ---------------------------------------------------------------------------------------------

/// Bit 7 of an `offsets_log` input's first byte: the rest is a structured [`CommitSpec`].
pub const OFFSETS_LOG_STRUCTURED: u8 = 0x80;
/// Bit 0 of a raw `offsets_log` input's first byte: the record has a value (else a tombstone).
pub const OFFSETS_LOG_HAS_VALUE: u8 = 0x01;

/// A commit record built in bounds, for the encoder/decoder round trip. Out-of-bounds fields
/// are brought into bounds (cut strings, cleared sign bits) rather than rejected, so that every
/// input exercises the encoders.
#[derive(Arbitrary, Debug)]
pub struct CommitSpec {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
    pub commit_timestamp: i64,
    pub tombstone: bool,
}

/// Lays out a raw `offsets_log` input: flags byte, key length (u16, big-endian), key, value.
pub fn offsets_log_input(key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    let flags = if value.is_some() {
        OFFSETS_LOG_HAS_VALUE
    } else {
        0
    };
    let key_len = u16::try_from(key.len()).expect("a seed key fits a u16 length");
    let mut out = vec![flags];
    out.extend_from_slice(&key_len.to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value.unwrap_or_default());
    out
}

/// `__consumer_offsets` records through the decoder (`embroker::__fuzz`).
///
/// A raw input (first byte's bit 7 clear) is a flags byte (bit 0: the record has a value), a
/// big-endian `u16` key length (cut to what is there), the key, and the value (the rest). The
/// decoder must never panic. A record it accepts must lie in the format's bounds (group
/// 1..=32767 bytes, topic 1..=249, partition and offset >= 0, metadata <= 4096 bytes),
/// re-encode to exactly the input's key and value bytes, and stop decoding when a byte is cut
/// off or added to either. A rejection must be `Error::Corrupt` naming `__consumer_offsets`,
/// saying whether the key or the value is bad, at a position inside that part; and the key is
/// judged alone (a record is rejected for its key exactly when the key alone is).
///
/// A structured input (bit 7 set) is a [`CommitSpec`], brought into bounds, encoded with the
/// library's encoders, and must decode back to itself (then the raw checks run on its bytes).
pub fn offsets_log(data: &[u8]) {
    let (flags, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    if flags & OFFSETS_LOG_STRUCTURED != 0 {
        if let Ok(spec) = CommitSpec::arbitrary_take_rest(Unstructured::new(rest)) {
            check_commit_round_trip(&spec);
        }
        return;
    }
    let (key, value) = split_raw(rest);
    let value = (flags & OFFSETS_LOG_HAS_VALUE != 0).then_some(value);
    if debug_enabled() {
        eprintln!("offsets_log: key {key:02x?} value {value:02x?}");
    }
    check_offset_record(key, value);
}

fn split_raw(rest: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = rest.split_first_chunk::<2>() else {
        return (rest, &[]);
    };
    let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    rest.split_at(len)
}

/// The checks on one raw record; returns what the decoder made of it.
fn check_offset_record(key: &[u8], value: Option<&[u8]>) -> Option<OffsetCommitRecord> {
    let decoded = __fuzz::decode_offset_commit(key, value);
    let key_alone = __fuzz::decode_offset_commit(key, None);
    match (&decoded, &key_alone) {
        (Ok(_), Err(e)) => panic!("a record was accepted although its key alone is not: {e}"),
        (Err(full), Err(alone)) => assert_eq!(
            full.to_string(),
            alone.to_string(),
            "a bad key must be reported as such, value or not"
        ),
        _ => {}
    }
    match decoded {
        Ok(record) => {
            check_accepted_record(key, value, &record);
            Some(record)
        }
        Err(e) => {
            check_offset_error(key, value, &e);
            None
        }
    }
}

fn check_accepted_record(key: &[u8], value: Option<&[u8]>, record: &OffsetCommitRecord) {
    assert!(
        (1..=32767).contains(&record.group.len()),
        "group of {} bytes",
        record.group.len()
    );
    let tp = &record.topic_partition;
    assert!(
        (1..=249).contains(&tp.topic.len()),
        "topic of {} bytes",
        tp.topic.len()
    );
    assert!(tp.partition >= 0, "partition {}", tp.partition);
    assert_eq!(
        __fuzz::encode_offset_commit_key(&record.group, tp),
        key,
        "an accepted key re-encodes to itself"
    );
    assert_eq!(record.value.is_some(), value.is_some(), "tombstone or not");
    if let (Some(v), Some(bytes)) = (&record.value, value) {
        assert!(v.offset >= 0, "offset {}", v.offset);
        assert!(
            v.metadata.len() <= 4096,
            "metadata of {} bytes",
            v.metadata.len()
        );
        let om = OffsetAndMetadata::new(v.offset).metadata(v.metadata.clone());
        assert_eq!(
            __fuzz::encode_offset_commit_value(&om, v.commit_timestamp),
            bytes,
            "an accepted value re-encodes to itself"
        );
        // One byte less or more is never a record: the format has no optional tail.
        let cut = &bytes[..bytes.len() - 1];
        assert!(
            __fuzz::decode_offset_commit(key, Some(cut)).is_err(),
            "value cut by a byte"
        );
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(
            __fuzz::decode_offset_commit(key, Some(&longer)).is_err(),
            "value plus a byte"
        );
    }
    let cut = &key[..key.len() - 1];
    assert!(
        __fuzz::decode_offset_commit(cut, None).is_err(),
        "key cut by a byte"
    );
    let mut longer = key.to_vec();
    longer.push(0);
    assert!(
        __fuzz::decode_offset_commit(&longer, None).is_err(),
        "key plus a byte"
    );
}

fn check_offset_error(key: &[u8], value: Option<&[u8]>, e: &Error) {
    let message = e.to_string();
    let Error::Corrupt {
        path,
        position,
        reason,
    } = e
    else {
        panic!("the decoder failed with something other than Corrupt: {message}");
    };
    assert_eq!(path, Path::new("__consumer_offsets"), "{message}");
    assert!(message.contains("__consumer_offsets"), "{message}");
    let part_len = if reason.starts_with("offset-commit key") {
        key.len()
    } else if reason.starts_with("offset-commit value") {
        value.map_or(0, <[u8]>::len)
    } else {
        panic!("the error does not say whether the key or the value is bad: {message}");
    };
    assert!(
        *position <= part_len as u64,
        "error position {position} outside a part of {part_len} bytes: {message}"
    );
}

/// Cuts `s` to at most `max` bytes at a char boundary; an empty result becomes `fill`.
fn bounded(s: &str, max: usize, fill: &str) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end == 0 {
        fill.to_string()
    } else {
        s[..end].to_string()
    }
}

fn check_commit_round_trip(spec: &CommitSpec) {
    let group = bounded(&spec.group, 32767, "g");
    let tp = TopicPartition::new(bounded(&spec.topic, 249, "t"), spec.partition & i32::MAX);
    let om =
        OffsetAndMetadata::new(spec.offset & i64::MAX).metadata(bounded(&spec.metadata, 4096, ""));
    let key = __fuzz::encode_offset_commit_key(&group, &tp);
    let value =
        (!spec.tombstone).then(|| __fuzz::encode_offset_commit_value(&om, spec.commit_timestamp));
    let record = check_offset_record(&key, value.as_deref())
        .unwrap_or_else(|| panic!("an in-bounds commit did not decode: {spec:?}"));
    assert_eq!(record.group, group);
    assert_eq!(record.topic_partition, tp);
    match (&record.value, spec.tombstone) {
        (None, true) => {}
        (Some(v), false) => {
            assert_eq!(v.offset, om.offset);
            assert_eq!(v.metadata, om.metadata);
            assert_eq!(v.commit_timestamp, spec.commit_timestamp);
        }
        (v, tombstone) => panic!("decoded value {v:?} for tombstone={tombstone}"),
    }
}

// ---------------------------------------------------------------------------------------------
// txn_state_log
// ---------------------------------------------------------------------------------------------

/// Bit 7 of a `txn_state_log` input's first byte: the rest is a structured [`TxnSpec`].
pub const TXN_STATE_LOG_STRUCTURED: u8 = 0x80;
/// Bit 0 of a raw `txn_state_log` input's first byte: the record has a value (else a
/// tombstone).
pub const TXN_STATE_LOG_HAS_VALUE: u8 = 0x01;
/// Longest string the format holds (an `i16` length).
const TXN_STRING_BYTES_MAX: usize = i16::MAX as usize;

/// A `__transaction_state` record built in bounds, for the encoder/decoder round trip.
/// Out-of-bounds fields are brought into bounds (cut strings, the state picked modulo the
/// states, version 1 tags only in version 1) rather than rejected.
#[derive(Arbitrary, Debug)]
pub struct TxnSpec {
    pub transactional_id: String,
    pub tombstone: bool,
    pub flexible: bool,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: u8,
    pub partitions: Option<Vec<(String, Vec<i32>)>>,
    pub last_update_ms: i64,
    pub start_ms: i64,
    pub previous_producer_id: i64,
    pub next_producer_id: i64,
    pub client_transaction_version: i16,
    /// Embroker's data end offsets (version 1 only): handed out to the topics in order, one per
    /// partition id, to each topic while enough are left.
    pub end_offsets: Vec<i64>,
}

/// Lays out a raw `txn_state_log` input: flags byte, key length (u16, big-endian), key, value
/// (the `offsets_log` framing).
pub fn txn_state_log_input(key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    offsets_log_input(key, value)
}

/// `__transaction_state` records through the decoder (`embroker::__fuzz`).
///
/// A raw input (first byte's bit 7 clear) is a flags byte (bit 0: the record has a value), a
/// big-endian `u16` key length (cut to what is there), the key, and the value (the rest). The
/// decoder must never panic. A record it accepts must lie in the format's bounds (strings of at
/// most 32767 bytes, a known state, version 0 or 1, version 1 tags at their defaults in
/// version 0), re-encode to a record that decodes to the same value, and stop decoding when a
/// byte is cut off or added to its key or value. The key and a version 0 value re-encode to
/// exactly the input bytes; a version 1 value does when it is written as Kafka writes one
/// (shortest varints, no tags but the known ones, each once, in increasing order, not at its
/// default; in a topic entry only embroker's tag 100 of end offsets, 8 bytes per partition id),
/// which [`flexible_value_is_canonical`] tells apart independently of the decoder. A
/// rejection must be `Error::Corrupt` naming `__transaction_state`, saying whether the key or
/// the value is bad, at a position inside that part; and the key is judged alone.
///
/// A structured input (bit 7 set) is a [`TxnSpec`], brought into bounds, encoded with the
/// library's encoders, and must decode back to itself (then the raw checks run on its bytes).
pub fn txn_state_log(data: &[u8]) {
    let (flags, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    if flags & TXN_STATE_LOG_STRUCTURED != 0 {
        if let Ok(spec) = TxnSpec::arbitrary_take_rest(Unstructured::new(rest)) {
            check_txn_round_trip(&spec);
        }
        return;
    }
    let (key, value) = split_raw(rest);
    let value = (flags & TXN_STATE_LOG_HAS_VALUE != 0).then_some(value);
    if debug_enabled() {
        eprintln!("txn_state_log: key {key:02x?} value {value:02x?}");
    }
    check_txn_record(key, value);
}

/// The checks on one raw record; returns what the decoder made of it.
fn check_txn_record(key: &[u8], value: Option<&[u8]>) -> Option<TxnLogRecord> {
    let decoded = __fuzz::decode_txn_log_record(key, value);
    let key_alone = __fuzz::decode_txn_log_record(key, None);
    match (&decoded, &key_alone) {
        (Ok(_), Err(e)) => panic!("a record was accepted although its key alone is not: {e}"),
        (Err(full), Err(alone)) => assert_eq!(
            full.to_string(),
            alone.to_string(),
            "a bad key must be reported as such, value or not"
        ),
        _ => {}
    }
    match decoded {
        Ok(record) => {
            check_accepted_txn_record(key, value, &record);
            Some(record)
        }
        Err(e) => {
            check_txn_error(key, value, &e);
            None
        }
    }
}

fn check_accepted_txn_record(key: &[u8], value: Option<&[u8]>, record: &TxnLogRecord) {
    assert!(
        record.transactional_id.len() <= TXN_STRING_BYTES_MAX,
        "transactional id of {} bytes",
        record.transactional_id.len()
    );
    assert_eq!(
        __fuzz::encode_txn_log_key(&record.transactional_id),
        key,
        "an accepted key re-encodes to itself"
    );
    assert_eq!(record.value.is_some(), value.is_some(), "tombstone or not");
    if let (Some(v), Some(bytes)) = (&record.value, value) {
        check_accepted_txn_value(v, bytes);
        let cut = &bytes[..bytes.len() - 1];
        assert!(
            __fuzz::decode_txn_log_record(key, Some(cut)).is_err(),
            "value cut by a byte"
        );
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(
            __fuzz::decode_txn_log_record(key, Some(&longer)).is_err(),
            "value plus a byte"
        );
    }
    let cut = &key[..key.len() - 1];
    assert!(
        __fuzz::decode_txn_log_record(cut, None).is_err(),
        "key cut by a byte"
    );
    let mut longer = key.to_vec();
    longer.push(0);
    assert!(
        __fuzz::decode_txn_log_record(&longer, None).is_err(),
        "key plus a byte"
    );
}

fn check_accepted_txn_value(v: &TxnLogValue, bytes: &[u8]) {
    assert!((0..=1).contains(&v.version), "value version {}", v.version);
    assert_eq!(TxnState::from_id(v.state.id()), Some(v.state));
    for t in v.partitions.iter().flatten() {
        assert!(
            t.topic.len() <= TXN_STRING_BYTES_MAX,
            "topic of {} bytes",
            t.topic.len()
        );
    }
    if v.version == 0 {
        assert_eq!(
            (
                v.previous_producer_id,
                v.next_producer_id,
                v.client_transaction_version
            ),
            (-1, -1, 0),
            "version 0 has no tagged fields"
        );
    }
    // Whatever decodes re-encodes (in its own version) to a value that decodes to the same, and
    // that re-encoding is Kafka's canonical one: encoding it again changes nothing.
    let again = __fuzz::encode_txn_log_value(v);
    let back = __fuzz::decode_txn_log_record(&__fuzz::encode_txn_log_key("t"), Some(&again))
        .expect("a re-encoded value decodes")
        .value
        .expect("a value");
    assert_eq!(&back, v, "re-encoding changed the value");
    assert_eq!(
        __fuzz::encode_txn_log_value(&back),
        again,
        "re-encoding is not a fixed point"
    );
    assert!(
        again.len() <= bytes.len(),
        "the re-encoding ({} bytes) is longer than the input ({} bytes)",
        again.len(),
        bytes.len()
    );
    // Byte for byte: always in version 0 (fixed widths, nothing optional); in version 1 when
    // the input is written as Kafka writes it.
    if v.version == 0 {
        assert_eq!(
            again, bytes,
            "an accepted version 0 value re-encodes to itself"
        );
    } else {
        let canonical = flexible_value_is_canonical(bytes)
            .expect("a decoded version 1 value has the version 1 layout");
        assert_eq!(
            again == bytes,
            canonical,
            "a version 1 value re-encodes to itself exactly when it is canonical \
             (canonical: {canonical})"
        );
    }
}

/// Reads an unsigned varint at `*at`, returning it and whether it is written in the fewest
/// bytes; `None` when it runs off the end or past five bytes.
fn read_uvarint(bytes: &[u8], at: &mut usize) -> Option<(u64, bool)> {
    let mut v: u64 = 0;
    for i in 0..5 {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i == 0 || b != 0));
        }
    }
    None
}

/// Whether a version 1 value is laid out as Kafka (and embroker's encoder) would write it:
/// every varint in the fewest bytes, after a partition entry no tag but embroker's tag 100
/// (end offsets: 8 bytes per partition id, at least one id), and after the value only
/// tags 0, 1, 2, each at most once, in increasing order, with their exact widths (8, 8, 2
/// bytes) and not at their defaults (-1, -1, 0). A walk of the layout independent of the
/// decoder; `None` when the bytes do not have the layout at all.
pub fn flexible_value_is_canonical(bytes: &[u8]) -> Option<bool> {
    if bytes.get(..2)? != [0, 1] {
        return None;
    }
    let mut at = 17; // version, producer id, epoch, timeout, status
    let mut canonical = true;
    let varint = |at: &mut usize, canonical: &mut bool| {
        let (v, shortest) = read_uvarint(bytes, at)?;
        *canonical &= shortest;
        Some(v)
    };
    let skip = |at: &mut usize, n: u64| {
        *at = at.checked_add(usize::try_from(n).ok()?)?;
        (*at <= bytes.len()).then_some(())
    };
    let topics = varint(&mut at, &mut canonical)?;
    for _ in 0..topics.saturating_sub(1) {
        let topic = varint(&mut at, &mut canonical)?;
        skip(&mut at, topic.checked_sub(1)?)?;
        let ids = varint(&mut at, &mut canonical)?;
        let ids = ids.checked_sub(1)?;
        skip(&mut at, ids.checked_mul(4)?)?;
        let tags = varint(&mut at, &mut canonical)?;
        // At most embroker's end offsets (tag 100), one i64 per partition id.
        canonical &= tags <= 1;
        for _ in 0..tags {
            let tag = varint(&mut at, &mut canonical)?;
            let size = varint(&mut at, &mut canonical)?;
            canonical &= tag == 100 && ids > 0 && Some(size) == ids.checked_mul(8);
            skip(&mut at, size)?;
        }
    }
    skip(&mut at, 16)?; // last update, start
    let tags = varint(&mut at, &mut canonical)?;
    let mut previous: Option<u64> = None;
    for _ in 0..tags {
        let tag = varint(&mut at, &mut canonical)?;
        let size = varint(&mut at, &mut canonical)?;
        let start = at;
        skip(&mut at, size)?;
        let field = &bytes[start..at];
        let default = match (tag, field.len()) {
            (0 | 1, 8) => field == (-1i64).to_be_bytes(),
            (2, 2) => field == 0i16.to_be_bytes(),
            _ => true,
        };
        canonical &= tag <= 2 && !default && previous.is_none_or(|p| tag > p);
        previous = Some(tag);
    }
    (at == bytes.len()).then_some(canonical)
}

fn check_txn_error(key: &[u8], value: Option<&[u8]>, e: &Error) {
    let message = e.to_string();
    let Error::Corrupt {
        path,
        position,
        reason,
    } = e
    else {
        panic!("the decoder failed with something other than Corrupt: {message}");
    };
    assert_eq!(path, Path::new("__transaction_state"), "{message}");
    assert!(message.contains("__transaction_state"), "{message}");
    let part_len = if reason.starts_with("transaction log key") {
        key.len()
    } else if reason.starts_with("transaction log value") {
        value.map_or(0, <[u8]>::len)
    } else {
        panic!("the error does not say whether the key or the value is bad: {message}");
    };
    assert!(
        *position <= part_len as u64,
        "error position {position} outside a part of {part_len} bytes: {message}"
    );
}

fn check_txn_round_trip(spec: &TxnSpec) {
    let id = bounded(&spec.transactional_id, TXN_STRING_BYTES_MAX, "");
    let version = i16::from(spec.flexible);
    let (previous, next, ctv) = if spec.flexible {
        (
            spec.previous_producer_id,
            spec.next_producer_id,
            spec.client_transaction_version,
        )
    } else {
        (-1, -1, 0)
    };
    let value = TxnLogValue {
        version,
        producer_id: spec.producer_id,
        producer_epoch: spec.producer_epoch,
        timeout_ms: spec.timeout_ms,
        state: TxnState::ALL[usize::from(spec.state) % TxnState::ALL.len()],
        partitions: spec.partitions.as_ref().map(|topics| {
            let mut ends = spec.end_offsets.iter().copied();
            let mut out = Vec::with_capacity(topics.len());
            for (topic, partitions) in topics {
                let mut end_offsets: Vec<i64> = Vec::new();
                if spec.flexible {
                    end_offsets = ends.by_ref().take(partitions.len()).collect();
                    if end_offsets.len() != partitions.len() {
                        end_offsets.clear();
                    }
                }
                out.push(TxnTopicPartitions {
                    topic: bounded(topic, TXN_STRING_BYTES_MAX, ""),
                    partitions: partitions.clone(),
                    end_offsets,
                });
            }
            out
        }),
        last_update_ms: spec.last_update_ms,
        start_ms: spec.start_ms,
        previous_producer_id: previous,
        next_producer_id: next,
        client_transaction_version: ctv,
    };
    let key = __fuzz::encode_txn_log_key(&id);
    let bytes = (!spec.tombstone).then(|| __fuzz::encode_txn_log_value(&value));
    if let Some(b) = &bytes {
        if spec.flexible {
            assert_eq!(
                flexible_value_is_canonical(b),
                Some(true),
                "the encoder wrote a non-canonical version 1 value"
            );
        }
    }
    let record = check_txn_record(&key, bytes.as_deref())
        .unwrap_or_else(|| panic!("an in-bounds transaction record did not decode: {spec:?}"));
    assert_eq!(record.transactional_id, id);
    match (&record.value, spec.tombstone) {
        (None, true) => {}
        (Some(v), false) => assert_eq!(v, &value),
        (v, tombstone) => panic!("decoded value {v:?} for tombstone={tombstone}"),
    }
}

/// A fuzz body: raw input in, panic on a broken invariant.
pub type Body = fn(&[u8]);

/// Which bodies exist, by target name (the replay test runs `fuzz/corpus/<name>/` through each).
pub const TARGETS: &[(&str, Body)] = &[
    ("decode_batch", decode_batch),
    ("open_partition_dir", open_partition_dir),
    ("config_properties", config_properties),
    ("offsets_log", offsets_log),
    ("txn_state_log", txn_state_log),
];

// ---------------------------------------------------------------------------------------------
// server_request (feature `server`)
// ---------------------------------------------------------------------------------------------

/// The broker every `server_request` input is answered against: topic `t` with two partitions
/// (a few batches in partition 0), no auto-creation (inputs would otherwise create topics
/// without bound). Replaced by a fresh one every `SERVER_BROKER_INPUTS` inputs, so what
/// produce requests append stays small.
#[cfg(feature = "server")]
static SERVER_BROKER: std::sync::Mutex<Option<(Broker, u32)>> = std::sync::Mutex::new(None);

#[cfg(feature = "server")]
const SERVER_BROKER_INPUTS: u32 = 5_000;

#[cfg(feature = "server")]
fn server_broker() -> Broker {
    let mut slot = SERVER_BROKER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((broker, used)) = slot.as_mut() {
        if *used < SERVER_BROKER_INPUTS {
            *used += 1;
            return broker.clone();
        }
    }
    let broker = Broker::builder()
        .auto_create_topics(false)
        .open_temporary()
        .expect("a temporary broker");
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .expect("topic t");
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..3i64 {
        let mut b = BatchBuilder::new();
        b.push(1_000 + i, Some(b"k"), Some(b"v"), &[]).unwrap();
        p.append_batches(&b.finish()).unwrap();
    }
    *slot = Some((broker.clone(), 1));
    broker
}

/// One Kafka request frame, without its 4-byte size prefix (api key, version, correlation id,
/// client id, ... as a client sends them), answered through `embroker::__fuzz::server_answer`
/// as a server connection answers it. Never a panic (nor, under libFuzzer, an allocation over
/// its limit: `kafka-protocol` sizes arrays from the count in the request, see
/// `src/server/decode_guard.rs`). An answer is one size-prefixed frame whose size is right,
/// whose correlation id is the request's, and which decodes, with `kafka-protocol`'s client
/// decoder, as the response to that API at that version (ApiVersions of a version the server
/// does not know: at version 0); a frame too short for a header is never answered.
#[cfg(feature = "server")]
pub fn server_request(data: &[u8]) {
    use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
    use kafka_protocol::protocol::Decodable;

    let broker = server_broker();
    let answer = __fuzz::server_answer(&broker, data);
    let Some(answer) = answer else { return };
    assert!(
        data.len() >= 8,
        "a {}-byte request was answered",
        data.len()
    );
    assert!(answer.len() >= 8, "a {}-byte answer", answer.len());
    let size = i32::from_be_bytes(answer[..4].try_into().unwrap());
    assert_eq!(size as usize, answer.len() - 4, "the size prefix");
    let key = ApiKey::try_from(i16::from_be_bytes([data[0], data[1]]))
        .expect("an answer to an unknown API key");
    let mut version = i16::from_be_bytes([data[2], data[3]]);
    let mut frame = embroker::Bytes::copy_from_slice(&answer[4..]);
    if key == ApiKey::ApiVersions && version > ApiKey::ApiVersions.valid_versions().max {
        // Answered with UNSUPPORTED_VERSION in version 0.
        version = 0;
    }
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .unwrap_or_else(|e| panic!("{key:?} v{version}: the response header: {e}"));
    assert_eq!(
        header.correlation_id,
        i32::from_be_bytes(data[4..8].try_into().unwrap()),
        "the correlation id"
    );
    ResponseKind::decode(key, &mut frame, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version}: the response: {e:#}"));
    assert!(
        frame.is_empty(),
        "{key:?} v{version}: bytes after the response"
    );
}
