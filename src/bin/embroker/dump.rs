//! `embroker dump PATH`: print a segment file, like `kafka-dump-log.sh`.
//!
//! Reads the file's bytes and decodes them with `embroker::codec` (sans-I/O), so it takes no
//! directory lock and never modifies anything. Handles `.log` (batches, optionally records),
//! `.index`, `.timeindex` and `recovery-point` (layouts in docs/FORMAT.md §4–8). The walk of a
//! `.log` is shared with `verify`.
//!
//! Exit 1 when the file shows damage, unless the file changed while it was read (its inode,
//! size or times moved: a live broker appending, rewriting an index, deleting or replacing
//! it): then the damage may be a write in progress, and dump says so on stderr and exits 0. A
//! path that is not there (deleted before dump opened it) is an error, exit 1.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use embroker::codec::{
    batch_records, decode_batch, decode_batch_crc_only, peek_header, BatchHeader,
    ControlRecordType, DecodeError, EndTransactionMarker, RecordView,
};
use embroker::TimestampType;

use serde_json::{json, Map, Value};

use crate::output::{headers_json, hex, opt_bytes_json, print_json, text_or_hex};
use crate::progress::{report, short_name, Progress};
use crate::{CmdResult, Ctx};

/// Bytes of one offset-index entry (FORMAT.md §6).
pub const INDEX_ENTRY_BYTES: usize = 8;
/// Bytes of one time-index entry (FORMAT.md §7).
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;
/// Bytes of the recovery-point file (FORMAT.md §8).
pub const RECOVERY_POINT_BYTES: usize = 42;

/// Arguments of `dump`.
#[derive(clap::Args)]
pub struct Args {
    /// A segment `.log`, `.index` or `.timeindex` file, or a `recovery-point` file.
    path: PathBuf,
    /// Also print every record of every batch (.log only).
    #[arg(long)]
    records: bool,
}

/// How one batch of a `.log` walk turned out.
pub enum BatchStatus {
    /// Header, CRC and records all check.
    Ok,
    /// The bytes are there but do not check; `position` is absolute in the file.
    Bad { position: u64, reason: String },
    /// The file ends inside the batch (a torn write).
    Torn { reason: String },
}

/// One batch found by [`walk_log`].
pub struct BatchInfo {
    /// Byte position of the batch in the file.
    pub position: u64,
    /// Its header, when the header itself decodes.
    pub header: Option<BatchHeader>,
    /// Whether it checks.
    pub status: BatchStatus,
}

/// Walks the batches of a `.log` image from byte 0. After a batch that does not check but
/// whose header gives a length that fits the file, the walk goes on past it; otherwise it
/// stops there (nothing later can be located). Calls `on_progress` with the number of bytes
/// walked so far before each batch and once at the end.
pub fn walk_log(bytes: &[u8], mut on_progress: impl FnMut(u64)) -> Vec<BatchInfo> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        on_progress(pos as u64);
        let rest = &bytes[pos..];
        let position = pos as u64;
        match decode_batch(rest) {
            Ok(b) => {
                out.push(BatchInfo {
                    position,
                    header: Some(b.header),
                    status: BatchStatus::Ok,
                });
                pos += b.header.total_bytes();
            }
            Err(DecodeError::Incomplete { needed, available }) => {
                out.push(BatchInfo {
                    position,
                    header: peek_header(rest).ok(),
                    status: BatchStatus::Torn {
                        reason: format!(
                            "file ends inside a batch: it needs {needed} bytes, {available} remain"
                        ),
                    },
                });
                break;
            }
            Err(DecodeError::Corrupt {
                position: at,
                reason,
            }) => {
                let header = peek_header(rest).ok();
                out.push(BatchInfo {
                    position,
                    header,
                    status: BatchStatus::Bad {
                        position: (pos + at) as u64,
                        reason,
                    },
                });
                match header {
                    Some(h) if h.total_bytes() <= rest.len() => pos += h.total_bytes(),
                    _ => break,
                }
            }
        }
    }
    on_progress(bytes.len() as u64);
    out
}

/// What identifies a file's contents without reading them: if any of these differ between
/// two looks, the file may have changed in between (a live broker appended to it, rewrote it
/// in place, or replaced it by a rename).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
    changed_ns: i64,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(m: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let (inode, changed_ns) = {
            use std::os::unix::fs::MetadataExt;
            (
                m.ino(),
                m.ctime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(m.ctime_nsec()),
            )
        };
        #[cfg(not(unix))]
        let (inode, changed_ns) = (0, 0);
        Stamp {
            inode,
            len: m.len(),
            modified: m.modified().ok(),
            changed_ns,
        }
    }

    /// The stamp of the file at `path`, `None` when it is not there.
    pub fn at(path: &Path) -> Option<Stamp> {
        std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
    }
}

/// The base offset a segment file's name encodes (`00000000000000000042.log` → 42).
pub fn base_offset_of(path: &Path) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    let (stem, _) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Big-endian integer at `at` (the caller has checked the length).
pub fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Big-endian `i64` at `at` (the caller has checked the length).
pub fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// A decoded `recovery-point` file.
pub struct RecoveryPoint {
    /// Log end offset at `position`.
    pub offset: i64,
    /// Base offset of the segment the point lies in.
    pub segment_base: i64,
    /// Durable bytes of that segment.
    pub position: u64,
    /// Largest timestamp before `position`.
    pub max_timestamp: i64,
}

/// Decodes a `recovery-point` file with the checks the library makes (FORMAT.md §8).
pub fn decode_recovery_point(b: &[u8]) -> Result<RecoveryPoint, String> {
    if b.len() != RECOVERY_POINT_BYTES {
        return Err(format!(
            "{} bytes, expected {RECOVERY_POINT_BYTES}",
            b.len()
        ));
    }
    if &b[0..4] != b"EBRP" {
        return Err("bad magic, expected EBRP".into());
    }
    let version = u16::from_be_bytes([b[4], b[5]]);
    if version == 1 {
        return Err(
            "version 1, written by embroker's format 1, which this version does not read".into(),
        );
    }
    if version != 2 {
        return Err(format!("unknown version {version}"));
    }
    let stored = be_u32(b, 38);
    let actual = crc32fast::hash(&b[..38]);
    if stored != actual {
        return Err(format!(
            "CRC mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    let rp = RecoveryPoint {
        offset: be_i64(b, 6),
        segment_base: be_i64(b, 14),
        position: u64::from_be_bytes(be_i64(b, 22).to_be_bytes()),
        max_timestamp: be_i64(b, 30),
    };
    if rp.segment_base < 0 || rp.offset < rp.segment_base {
        return Err("offset or segment base out of range".into());
    }
    Ok(rp)
}

/// The size of a `log-start-offset` file (FORMAT.md §22).
const LOG_START_BYTES: usize = 18;

/// Decodes a `log-start-offset` file with the checks the library makes (FORMAT.md §22).
pub fn decode_log_start(b: &[u8]) -> Result<i64, String> {
    if b.len() != LOG_START_BYTES {
        return Err(format!("{} bytes, expected {LOG_START_BYTES}", b.len()));
    }
    if &b[0..4] != b"EBLS" {
        return Err("bad magic, expected EBLS".into());
    }
    let version = u16::from_be_bytes([b[4], b[5]]);
    if version != 1 {
        return Err(format!("unknown version {version}"));
    }
    let stored = be_u32(b, 14);
    let actual = crc32fast::hash(&b[..14]);
    if stored != actual {
        return Err(format!(
            "CRC mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    let offset = be_i64(b, 6);
    if offset < 0 {
        return Err(format!("negative log start offset {offset}"));
    }
    Ok(offset)
}

/// Kafka's name for a batch's compression codec (`compression.type`), or its id when Kafka
/// defines none.
fn compression_name(h: &BatchHeader) -> String {
    match h.compression_id() {
        0 => "none".to_string(),
        1 => "gzip".to_string(),
        2 => "snappy".to_string(),
        3 => "lz4".to_string(),
        4 => "zstd".to_string(),
        id => id.to_string(),
    }
}

/// Every field of a batch header, for `--json`: the fields a user bridges to other tools
/// with (the outside oracle, tests/outside/kafka_python_oracle.py, compares each with
/// kafka-python's reading of the same bytes).
fn header_json(h: &BatchHeader, fields: &mut Map<String, Value>) {
    let header = json!({
        "base_offset": h.base_offset,
        "last_offset": h.last_offset(),
        "count": h.record_count,
        "base_timestamp": h.base_timestamp,
        "max_timestamp": h.max_timestamp,
        "size": h.total_bytes(),
        "batch_length": h.batch_length,
        "partition_leader_epoch": h.partition_leader_epoch,
        "magic": h.magic,
        "crc32c": h.crc,
        "attributes": h.attributes,
        "compression": compression_name(h),
        "timestamp_type": h.timestamp_type().as_str(),
        "transactional": h.is_transactional(),
        "control": h.is_control(),
        "delete_horizon": h.delete_horizon(),
        "last_offset_delta": h.last_offset_delta,
        "producer_id": h.producer_id,
        "producer_epoch": h.producer_epoch,
        "base_sequence": h.base_sequence,
    });
    if let Value::Object(header) = header {
        fields.extend(header);
    }
}

/// One record as `dump --records` shows it (owned: a compressed batch's records live in a
/// buffer of their own).
struct DumpedRecord {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Header values are nullable in Kafka's format; kept so, to be shown exactly.
    headers: Vec<(String, Option<Vec<u8>>)>,
    /// A control batch's record: its type, and the marker when it is a transaction marker.
    control: Option<(ControlRecordType, Option<EndTransactionMarker>)>,
}

impl DumpedRecord {
    fn of(h: &BatchHeader, r: &RecordView<'_>) -> Self {
        let timestamp = match h.timestamp_type() {
            TimestampType::LogAppendTime => h.max_timestamp,
            TimestampType::CreateTime => h.base_timestamp + r.timestamp_delta,
        };
        let control = match (h.is_control(), r.key) {
            (true, Some(key)) => ControlRecordType::parse_key(key)
                .ok()
                .map(|kind| (kind, EndTransactionMarker::parse(key, r.value).ok())),
            _ => None,
        };
        DumpedRecord {
            offset: h.base_offset + i64::from(r.offset_delta),
            timestamp,
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
            headers: r
                .headers
                .clone()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
            control,
        }
    }

    /// The headers for people: `key=value`, the value as text, 0x-hex or null.
    fn shown_headers(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(k, v)| format!("{k}={}", text_or_hex(v.as_deref())))
            .collect()
    }

    /// Keys, values and headers twice: in the tool's JSON convention (`key`: a string, a
    /// `{"base64": ...}` object or null; `headers`: `[{"key", "value"}]`), and as hex
    /// (`key_hex`: lower-case hex or null), which the outside oracle
    /// (tests/outside/kafka_python_oracle.py) reads.
    fn json(&self) -> Value {
        let hex_or_null = |b: Option<&[u8]>| b.map_or(Value::Null, |b| Value::String(hex(b)));
        let exact: Vec<Value> = self
            .headers
            .iter()
            .map(|(k, v)| json!({ "key": k, "value_hex": hex_or_null(v.as_deref()) }))
            .collect();
        let mut record = json!({
            "offset": self.offset,
            "timestamp": self.timestamp,
            "key": opt_bytes_json(self.key.as_deref()),
            "value": opt_bytes_json(self.value.as_deref()),
            "headers": headers_json(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref()))),
            "key_hex": hex_or_null(self.key.as_deref()),
            "value_hex": hex_or_null(self.value.as_deref()),
            "headers_hex": exact,
        });
        if let Some((kind, marker)) = self.control {
            let mut control = json!({ "type": control_name(kind), "type_id": kind.id() });
            if let Some(m) = marker {
                control["coordinator_epoch"] = json!(m.coordinator_epoch);
            }
            record["control"] = control;
        }
        record
    }

    fn text(&self, out: &mut impl Write) -> std::io::Result<()> {
        write!(
            out,
            "  | offset: {} timestamp: {} key: {} value: {}",
            self.offset,
            self.timestamp,
            text_or_hex(self.key.as_deref()),
            text_or_hex(self.value.as_deref())
        )?;
        if !self.headers.is_empty() {
            write!(out, " headers: {}", self.shown_headers().join(","))?;
        }
        match self.control {
            Some((kind, Some(m))) => write!(
                out,
                " endTxnMarker: {} coordinatorEpoch: {}",
                control_name(kind),
                m.coordinator_epoch
            )?,
            Some((kind, None)) => write!(out, " controlType: {}", control_name(kind))?,
            None => {}
        }
        writeln!(out)
    }
}

/// Kafka's name for a control record type (as `kafka-dump-log.sh` prints it).
fn control_name(kind: ControlRecordType) -> String {
    match kind {
        ControlRecordType::Commit => "COMMIT".to_string(),
        ControlRecordType::Abort => "ABORT".to_string(),
        ControlRecordType::Other(id) => format!("UNKNOWN({id})"),
    }
}

fn dump_log(
    ctx: &Ctx,
    bytes: &[u8],
    with_records: bool,
    progress: &mut Option<Progress>,
    detail: &str,
    out: &mut impl Write,
) -> CmdResult {
    // The walk (decode and CRC) is most of the work; with --records, decoding the records
    // again to print them is as much, so then each is half of the display.
    let total = bytes.len() as u64;
    let walk_share = if with_records { 2 } else { 1 };
    let batches = walk_log(bytes, |done| report(progress, done / walk_share, detail));
    let mut ok = true;
    let mut json_batches = Vec::new();
    if !ctx.json {
        writeln!(
            out,
            "Size: {} bytes, {} batch(es)",
            bytes.len(),
            batches.len()
        )?;
    }
    for b in &batches {
        if with_records {
            report(progress, total / 2 + b.position / 2, detail);
        }
        let (crc, problem) = match &b.status {
            BatchStatus::Ok => ("ok", None),
            BatchStatus::Bad { position, reason } => {
                ok = false;
                ("bad", Some(format!("at byte {position}: {reason}")))
            }
            BatchStatus::Torn { reason } => {
                ok = false;
                ("torn", Some(reason.clone()))
            }
        };
        let mut records = Vec::new();
        if with_records {
            if let (BatchStatus::Ok, Some(h)) = (&b.status, b.header) {
                let start = b.position as usize;
                // The walk checked the batch, decompressing it if compressed; this decodes it
                // again to list its records.
                if let Ok(batch) = decode_batch_crc_only(&bytes[start..]) {
                    if let Ok(decoded) = batch_records(&batch) {
                        records.extend(decoded.iter().map(|r| DumpedRecord::of(&h, &r)));
                    }
                }
            }
        }
        if ctx.json {
            let mut fields = Map::new();
            fields.insert("position".into(), json!(b.position));
            fields.insert("crc".into(), json!(crc));
            if let Some(h) = &b.header {
                header_json(h, &mut fields);
            }
            if let Some(p) = problem {
                fields.insert("problem".into(), json!(p));
            }
            if with_records {
                let recs: Vec<Value> = records.iter().map(DumpedRecord::json).collect();
                fields.insert("records".into(), Value::Array(recs));
            }
            json_batches.push(Value::Object(fields));
            continue;
        }
        match &b.header {
            Some(h) => {
                write!(
                    out,
                    "position: {} baseOffset: {} lastOffset: {} count: {} baseTimestamp: {} \
                     maxTimestamp: {} size: {} crc: {crc} crc32c: {:#010x} magic: {} \
                     attributes: {} compresscodec: {} timestampType: {} isTransactional: {} \
                     isControl: {} producerId: {} producerEpoch: {} baseSequence: {} \
                     partitionLeaderEpoch: {}",
                    b.position,
                    h.base_offset,
                    h.last_offset(),
                    h.record_count,
                    h.base_timestamp,
                    h.max_timestamp,
                    h.total_bytes(),
                    h.crc,
                    h.magic,
                    h.attributes,
                    compression_name(h),
                    h.timestamp_type().as_str(),
                    h.is_transactional(),
                    h.is_control(),
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                    h.partition_leader_epoch,
                )?;
                if let Some(horizon) = h.delete_horizon() {
                    write!(out, " deleteHorizonMs: {horizon}")?;
                }
                writeln!(out)?;
            }
            None => writeln!(
                out,
                "position: {} header: unreadable crc: {crc}",
                b.position
            )?,
        }
        if let Some(p) = &problem {
            writeln!(out, "  problem: {p}")?;
        }
        for r in &records {
            r.text(out)?;
        }
    }
    if ctx.json {
        print_json(
            out,
            &json!({ "size": bytes.len(), "batches": json_batches }),
        )?;
    }
    Ok(ok)
}

fn dump_index(ctx: &Ctx, bytes: &[u8], base: i64, time: bool, out: &mut impl Write) -> CmdResult {
    let width = if time {
        TIME_INDEX_ENTRY_BYTES
    } else {
        INDEX_ENTRY_BYTES
    };
    let mut items = Vec::new();
    for (i, e) in bytes.chunks_exact(width).enumerate() {
        let (fields, text) = if time {
            let ts = be_i64(e, 0);
            let rel = be_u32(e, 8);
            let offset = base + i64::from(rel);
            (
                json!({ "timestamp": ts, "offset": offset }),
                format!("timestamp: {ts} offset: {offset} (relative {rel})"),
            )
        } else {
            let rel = be_u32(e, 0);
            let pos = be_u32(e, 4);
            let offset = base + i64::from(rel);
            (
                json!({ "offset": offset, "position": pos }),
                format!("offset: {offset} (relative {rel}) position: {pos}"),
            )
        };
        if ctx.json {
            items.push(fields);
        } else {
            writeln!(out, "entry {i} at byte {}: {text}", i * width)?;
        }
    }
    let tail = bytes.len() % width;
    if ctx.json {
        print_json(out, &json!({ "entries": items, "trailing_bytes": tail }))?;
    } else if tail != 0 {
        writeln!(
            out,
            "problem: {tail} trailing byte(s) at byte {}: not a whole {width}-byte entry",
            bytes.len() - tail
        )?;
    }
    Ok(tail == 0)
}

/// Runs `dump`.
pub fn run(ctx: &Ctx, args: &Args) -> CmdResult {
    let path = &args.path;
    let before = Stamp::at(path);
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let base = base_offset_of(path).unwrap_or(0);
    let ok = if name.ends_with(".log") {
        // Not while stdout is the same terminal: the printed batches would tear the line.
        let mut progress = Progress::stderr("dump", ctx.json, || bytes.len() as u64)
            .filter(|_| !std::io::stdout().is_terminal());
        let ok = dump_log(
            ctx,
            &bytes,
            args.records,
            &mut progress,
            &short_name(path),
            &mut out,
        )?;
        drop(progress);
        ok
    } else if name.ends_with(".timeindex") {
        dump_index(ctx, &bytes, base, true, &mut out)?
    } else if name.ends_with(".index") {
        dump_index(ctx, &bytes, base, false, &mut out)?
    } else if name == "recovery-point" {
        let rp = decode_recovery_point(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        if ctx.json {
            print_json(
                &mut out,
                &json!({
                    "offset": rp.offset,
                    "segment_base": rp.segment_base,
                    "position": rp.position,
                    "max_timestamp": rp.max_timestamp,
                }),
            )?;
        } else {
            writeln!(
                out,
                "offset: {} segmentBase: {} position: {} maxTimestamp: {}",
                rp.offset, rp.segment_base, rp.position, rp.max_timestamp
            )?;
        }
        true
    } else if name == "log-start-offset" {
        let offset = decode_log_start(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        if ctx.json {
            print_json(&mut out, &json!({ "log_start_offset": offset }))?;
        } else {
            writeln!(out, "logStartOffset: {offset}")?;
        }
        true
    } else {
        return Err(format!(
            "{}: not a .log, .index, .timeindex, recovery-point or log-start-offset file",
            path.display()
        )
        .into());
    };
    out.flush()?;
    if !ok && Stamp::at(path) != before {
        // Beside a live broker: a batch being appended, an index being rewritten, a file
        // deleted or replaced while it was read. Not damage; a second dump shows.
        eprintln!(
            "embroker: {} changed while it was read (a broker is writing it): the torn or bad \
             part above may be a write in progress, not damage; dump it again to check",
            path.display()
        );
        return Ok(true);
    }
    Ok(ok)
}
