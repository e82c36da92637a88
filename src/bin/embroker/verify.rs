//! `embroker verify DIR`: check every file of a data directory, read-only.
//!
//! Does not use `Broker::open` (which repairs: it truncates torn tails and removes strays) and
//! takes no lock. It walks the files as docs/FORMAT.md lays them out: topic files parse and
//! validate as topic configs; every partition directory a topic needs is there; every segment's
//! batches decode with a good CRC to the end of the file with offsets that never go back; index
//! entries are whole, increasing and point at batches that exist; the recovery point decodes
//! and lies on a batch boundary. Problems name the file and byte position; exit 1 if any.
//! Things open would quietly clean up (stray `.tmp` files, orphan directories, index files
//! without a log, a recovery point naming a segment retention deleted) are warnings and do not
//! fail the check.
//!
//! Beside a live broker, files change while they are read: segments are appended to, deleted by
//! retention, replaced by the cleaner. So each partition is checked between two listings of its
//! files' identities (inode, size, modification and change times), and a finding counts as
//! damage only when every file it rests on (its segment's three files; for the recovery point,
//! that file and the segment it names) was the same before and after, and a second check finds
//! it again (coarse file times can hide a rewrite in the same tick). A finding on a file that
//! changed, or that was gone when read, is checked again (up to [`ATTEMPTS`] times, backing
//! off); if the file keeps changing it is listed as "changed while verifying" (not checked),
//! which does not fail the check: exit 0 unless damage was found. On a closed directory
//! nothing changes, so every finding is confirmed and the result is exact.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use embroker::TopicConfig;

use crate::dump::{
    base_offset_of, be_i64, be_u32, decode_log_start, decode_recovery_point, walk_log, BatchStatus,
    Stamp, INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES,
};
use serde_json::{json, Value};

use crate::output::print_json;
use crate::progress::{self, short_name, Progress};
use crate::{CmdResult, Ctx};

/// Arguments of `verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The data directory (default: --dir).
    dir: Option<PathBuf>,
}

/// How many times a partition with findings on changing files is checked before those are
/// listed as changed while verifying.
pub const ATTEMPTS: u32 = 6;

/// One finding.
struct Finding {
    file: PathBuf,
    position: Option<u64>,
    reason: String,
    /// The files whose contents the finding rests on (besides `file`).
    rests_on: Vec<PathBuf>,
    /// The file was not there when read: it changed, whatever the listings say.
    vanished: bool,
}

impl Finding {
    /// What identifies the finding from one check to the next.
    fn key(&self) -> (PathBuf, Option<u64>, String) {
        (self.file.clone(), self.position, self.reason.clone())
    }
}

#[derive(Default)]
struct Report {
    problems: Vec<Finding>,
    warnings: Vec<Finding>,
    /// Findings on files that kept changing under the check: not damage, not checked.
    changed: Vec<Finding>,
    files: u64,
    /// The files the findings made now rest on (see [`Finding::rests_on`]).
    scope: Vec<PathBuf>,
    /// The progress display, if shown, and the segment bytes checked so far.
    progress: Option<Progress>,
    done: u64,
}

impl Report {
    fn finding(&self, file: &Path, position: Option<u64>, reason: String) -> Finding {
        Finding {
            file: file.to_path_buf(),
            position,
            reason,
            rests_on: self.scope.clone(),
            vanished: false,
        }
    }

    fn problem(&mut self, file: &Path, position: Option<u64>, reason: impl Into<String>) {
        let f = self.finding(file, position, reason.into());
        self.problems.push(f);
    }

    /// A problem that rests also on `log` (the segment a recovery point names).
    fn problem_on(
        &mut self,
        log: Option<PathBuf>,
        file: &Path,
        position: Option<u64>,
        reason: impl Into<String>,
    ) {
        let mut f = self.finding(file, position, reason.into());
        f.rests_on.extend(log);
        self.problems.push(f);
    }

    fn warning(&mut self, file: &Path, reason: impl Into<String>) {
        let f = self.finding(file, None, reason.into());
        self.warnings.push(f);
    }

    /// Counts `len` more segment bytes as checked, `path` the file just checked.
    fn advance(&mut self, path: &Path, len: usize) {
        self.done += len as u64;
        if self.progress.is_some() {
            progress::report(&mut self.progress, self.done, &short_name(path));
        }
    }

    fn read(&mut self, path: &Path) -> Option<Vec<u8>> {
        self.files += 1;
        match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) => {
                let mut f = self.finding(path, None, format!("cannot read: {e}"));
                // Listed, then gone: deleted by retention or the cleaner.
                f.vanished = e.kind() == std::io::ErrorKind::NotFound;
                self.problems.push(f);
                None
            }
        }
    }
}

/// The stamps of the files in `dir`.
fn stamps(dir: &Path) -> HashMap<PathBuf, Stamp> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| Some((e.path(), Stamp::of(&e.metadata().ok()?))))
        .collect()
}

/// Whether every file `f` rests on looked the same before and after the check.
fn settled(f: &Finding, before: &HashMap<PathBuf, Stamp>, after: &HashMap<PathBuf, Stamp>) -> bool {
    !f.vanished
        && std::iter::once(&f.file)
            .chain(&f.rests_on)
            .all(|p| before.get(p) == after.get(p))
}

/// Checks a partition directory until its findings are confirmed on files that did not
/// change, or [`ATTEMPTS`] checks have been made (see the module doc).
fn check_partition_settled(report: &mut Report, dir: &Path) {
    let mut previous: HashSet<(PathBuf, Option<u64>, String)> = HashSet::new();
    for attempt in 1..=ATTEMPTS {
        let before = stamps(dir);
        let mut part = Report {
            progress: report.progress.take(),
            done: report.done,
            ..Report::default()
        };
        check_partition(&mut part, dir);
        let after = stamps(dir);
        report.progress = part.progress.take();
        report.done = part.done;
        let (settled_problems, mut changed): (Vec<Finding>, Vec<Finding>) = part
            .problems
            .into_iter()
            .partition(|f| settled(f, &before, &after));
        let (confirmed, unconfirmed): (Vec<Finding>, Vec<Finding>) = settled_problems
            .into_iter()
            .partition(|f| previous.contains(&f.key()));
        let (warnings, changed_warnings): (Vec<Finding>, Vec<Finding>) = part
            .warnings
            .into_iter()
            .partition(|f| settled(f, &before, &after));
        let done = changed.is_empty() && unconfirmed.is_empty();
        if done || attempt == ATTEMPTS {
            report.files += part.files;
            report.problems.extend(confirmed);
            report.warnings.extend(warnings);
            changed.extend(unconfirmed);
            changed.extend(changed_warnings);
            report.changed.extend(changed);
            return;
        }
        previous = confirmed
            .iter()
            .chain(&unconfirmed)
            .map(Finding::key)
            .collect();
        std::thread::sleep(Duration::from_millis(5 << attempt));
    }
}

/// Parses and validates a topic file; returns its partition count.
fn check_topic_file(report: &mut Report, path: &Path) -> Option<i32> {
    let bytes = report.read(path)?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        report.problem(path, Some(0), "not valid UTF-8");
        return None;
    };
    let mut props = Vec::new();
    let mut pos = 0u64;
    for line in text.split('\n') {
        let t = line.trim();
        if !t.is_empty() && !t.starts_with('#') {
            match t.split_once('=') {
                Some((k, v)) => props.push((k.trim().to_string(), v.trim().to_string())),
                None => {
                    report.problem(path, Some(pos), format!("line is not key=value: {t:?}"));
                    return None;
                }
            }
        }
        pos += line.len() as u64 + 1;
    }
    if !props.iter().any(|(k, _)| k == "num.partitions") {
        report.problem(path, Some(0), "no num.partitions");
        return None;
    }
    match TopicConfig::from_properties(&props) {
        Ok(c) => Some(c.partitions),
        Err(e) => {
            report.problem(path, Some(0), format!("invalid topic config: {e}"));
            None
        }
    }
}

/// The files of one segment.
#[derive(Default)]
struct SegmentFiles {
    log: Option<PathBuf>,
    index: Option<PathBuf>,
    timeindex: Option<PathBuf>,
}

/// What the walk of a `.log` learned, for checking its indexes.
struct LogFacts {
    len: u64,
    /// Batch start position → base offset, for good batches.
    batch_starts: HashMap<u64, i64>,
    /// Last offset of the last good batch, if any.
    last_offset: Option<i64>,
    /// Offset after the last good batch (the segment base when empty).
    next_offset: i64,
}

fn check_log(report: &mut Report, path: &Path, base: i64) -> Option<LogFacts> {
    let bytes = report.read(path)?;
    let mut facts = LogFacts {
        len: bytes.len() as u64,
        batch_starts: HashMap::new(),
        last_offset: None,
        next_offset: base,
    };
    let (start, detail, bar) = (report.done, short_name(path), &mut report.progress);
    let batches = walk_log(&bytes, |pos| progress::report(bar, start + pos, &detail));
    report.advance(path, bytes.len());
    for b in batches {
        match (&b.status, b.header) {
            (BatchStatus::Ok, Some(h)) => {
                if h.base_offset < facts.next_offset {
                    report.problem(
                        path,
                        Some(b.position),
                        format!(
                            "offsets go backwards: batch base offset {} but the previous \
                             batch (or the segment base) reaches {}",
                            h.base_offset, facts.next_offset
                        ),
                    );
                }
                if h.last_offset() - base > i64::from(u32::MAX) {
                    report.problem(
                        path,
                        Some(b.position),
                        format!(
                            "offset {} too far past the segment base {base}",
                            h.last_offset()
                        ),
                    );
                }
                facts.batch_starts.insert(b.position, h.base_offset);
                facts.last_offset = Some(h.last_offset());
                facts.next_offset = facts.next_offset.max(h.next_offset());
            }
            (BatchStatus::Bad { position, reason }, _) => {
                report.problem(path, Some(*position), format!("bad batch: {reason}"));
            }
            (BatchStatus::Torn { reason }, _) => {
                report.problem(path, Some(b.position), format!("torn batch: {reason}"));
            }
            (BatchStatus::Ok, None) => unreachable!("a good batch has a header"),
        }
    }
    Some(facts)
}

fn check_index(report: &mut Report, path: &Path, base: i64, span_end: i64, log: &LogFacts) {
    let Some(bytes) = report.read(path) else {
        return;
    };
    report.advance(path, bytes.len());
    let tail = bytes.len() % INDEX_ENTRY_BYTES;
    if tail != 0 {
        let at = (bytes.len() - tail) as u64;
        report.problem(path, Some(at), "trailing bytes: not a whole 8-byte entry");
    }
    let mut prev: Option<(u32, u32)> = None;
    for (i, e) in bytes.chunks_exact(INDEX_ENTRY_BYTES).enumerate() {
        let at = Some((i * INDEX_ENTRY_BYTES) as u64);
        let (rel, pos) = (be_u32(e, 0), be_u32(e, 4));
        let offset = base + i64::from(rel);
        if let Some((pr, pp)) = prev {
            if rel <= pr || pos <= pp {
                report.problem(path, at, "entries are not strictly increasing");
            }
        }
        prev = Some((rel, pos));
        if offset >= span_end {
            report.problem(
                path,
                at,
                format!("offset {offset} is past the segment's end {span_end}"),
            );
        }
        match log.batch_starts.get(&u64::from(pos)) {
            Some(&b) if b == offset => {}
            Some(&b) => report.problem(
                path,
                at,
                format!(
                    "entry says offset {offset} at position {pos}, the batch there starts at {b}"
                ),
            ),
            None if u64::from(pos) >= log.len => report.problem(
                path,
                at,
                format!(
                    "position {pos} is past the end of the log ({} bytes)",
                    log.len
                ),
            ),
            None => report.problem(
                path,
                at,
                format!("position {pos} is not the start of a good batch"),
            ),
        }
    }
}

/// Each entry must name an offset inside the segment's span (below `span_end`, the next
/// segment's base): the cleaner ends a cleaned segment's time index with the span's last
/// offset even when the batch there was removed (FORMAT.md §7).
fn check_time_index(report: &mut Report, path: &Path, base: i64, span_end: i64) {
    let Some(bytes) = report.read(path) else {
        return;
    };
    report.advance(path, bytes.len());
    let tail = bytes.len() % TIME_INDEX_ENTRY_BYTES;
    if tail != 0 {
        let at = (bytes.len() - tail) as u64;
        report.problem(path, Some(at), "trailing bytes: not a whole 12-byte entry");
    }
    let mut prev: Option<(i64, u32)> = None;
    for (i, e) in bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES).enumerate() {
        let at = Some((i * TIME_INDEX_ENTRY_BYTES) as u64);
        let (ts, rel) = (be_i64(e, 0), be_u32(e, 8));
        if let Some((pt, pr)) = prev {
            if ts <= pt {
                report.problem(path, at, "timestamps are not strictly increasing");
            }
            if rel < pr {
                report.problem(path, at, "offsets go backwards");
            }
        }
        prev = Some((ts, rel));
        let offset = base + i64::from(rel);
        if offset >= span_end {
            report.problem(
                path,
                at,
                format!("offset {offset} is past the segment's end {span_end}"),
            );
        }
    }
}

/// Whether a file in `topics/` is a temporary file that open removes: `NAME~` (how topic files
/// are written now; `~` cannot occur in a topic name), or an older version's `NAME.tmp` whose
/// first line names topic `NAME`. Topic `NAME.tmp` is legal in Kafka, and its own file names
/// `NAME.tmp`.
fn is_topic_tmp_file(path: &Path, name: &str) -> bool {
    if name.ends_with('~') {
        return true;
    }
    let Some(stem) = name.strip_suffix(".tmp") else {
        return false;
    };
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut first = String::new();
    use std::io::{BufRead, Read};
    if std::io::BufReader::new(file.take(4096))
        .read_line(&mut first)
        .is_err()
    {
        return false;
    }
    first
        .trim_end()
        .strip_prefix("# embroker topic config, format 1: topic ")
        .is_some_and(|written_for| written_for == stem)
}

/// Why a file named like a segment file (`.log`, `.index`, `.timeindex`) is one `Broker::open`
/// refuses: a name that is not 20 digits of a base offset that leaves room to append (at most
/// 09223372036854775806), or an entry that is not a regular file (a symlink or a directory).
fn unusable_segment_file(entry: &std::fs::DirEntry, name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    if !matches!(ext, "log" | "index" | "timeindex") {
        return None;
    }
    let base = (stem.len() == 20 && stem.bytes().all(|c| c.is_ascii_digit()))
        .then(|| stem.parse::<i64>().ok())
        .flatten();
    match base {
        None => {
            return Some(
                "named like a segment file but not 20 digits of a base offset (open refuses \
                 the partition)"
                    .to_string(),
            )
        }
        Some(i64::MAX) => {
            return Some(
                "a segment at base offset 9223372036854775807 leaves no offset to append (open \
                 refuses the partition)"
                    .to_string(),
            )
        }
        Some(_) => {}
    }
    match entry.file_type() {
        Ok(t) if t.is_file() => None,
        Ok(_) => Some(
            "named like a segment file but not a regular file: a symlink or a directory (open \
             refuses the partition)"
                .to_string(),
        ),
        Err(_) => None,
    }
}

fn check_partition(report: &mut Report, dir: &Path) {
    let mut segments: BTreeMap<i64, SegmentFiles> = BTreeMap::new();
    let mut recovery_point = None;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            report.problem(dir, None, format!("cannot list: {e}"));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            report.warning(&path, "stray temporary file (open removes it)");
        } else if name == "recovery-point" {
            recovery_point = Some(path);
        } else if name == "log-start-offset" {
            // Open ignores a damaged one: DeleteRecords' deletions come back, nothing is lost.
            if let Some(bytes) = report.read(&path) {
                if let Err(e) = decode_log_start(&bytes) {
                    report.warning(
                        &path,
                        format!("{e}: open ignores it (records DeleteRecords removed reappear)"),
                    );
                }
            }
        } else if let Some(reason) = unusable_segment_file(&entry, &name) {
            // Open refuses the partition over it (an error naming the file), so it is damage.
            report.problem(&path, None, reason);
        } else if let Some(base) = base_offset_of(&path) {
            // Only a segment's own files make a segment: a producer `.snapshot` or a
            // `.txnindex` is named by an offset too, and a snapshot may outlive the segment it
            // was taken at (the cleaner merges segments), so counting it as a segment base
            // would cut the span of the segment that covers its offset.
            let slot = match name.split_once('.').map(|(_, ext)| ext) {
                Some("log") => |seg: &mut SegmentFiles, p| seg.log = Some(p),
                Some("index") => |seg: &mut SegmentFiles, p| seg.index = Some(p),
                Some("timeindex") => |seg: &mut SegmentFiles, p| seg.timeindex = Some(p),
                _ => continue,
            };
            slot(segments.entry(base).or_default(), path);
        }
    }
    // The span of a segment ends at the next segment's base: one with a `.log` (an index
    // without its log is removed by open).
    let bases: Vec<i64> = segments
        .iter()
        .filter(|(_, files)| files.log.is_some())
        .map(|(&base, _)| base)
        .collect();
    let mut facts_by_base: HashMap<i64, LogFacts> = HashMap::new();
    let mut prev_next: Option<i64> = None;
    let mut prev_log: Option<PathBuf> = None;
    for (&base, files) in &segments {
        report.scope = [&files.log, &files.index, &files.timeindex]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let Some(log_path) = &files.log else {
            for p in [&files.index, &files.timeindex].into_iter().flatten() {
                report.warning(p, "index file without its .log (open removes it)");
            }
            continue;
        };
        if let Some(prev) = prev_next {
            if base < prev {
                report.scope.extend(prev_log.clone());
                report.problem(
                    log_path,
                    Some(0),
                    format!(
                        "segment base {base} is below the previous segment's next offset {prev}"
                    ),
                );
            }
        }
        prev_log = Some(log_path.clone());
        let Some(facts) = check_log(report, log_path, base) else {
            continue;
        };
        let span_end = bases
            .iter()
            .copied()
            .find(|&b| b > base)
            .unwrap_or(facts.next_offset)
            .max(facts.next_offset);
        if let Some(p) = &files.index {
            check_index(report, p, base, span_end, &facts);
        }
        if let Some(p) = &files.timeindex {
            check_time_index(report, p, base, span_end);
        }
        prev_next = Some(facts.next_offset);
        facts_by_base.insert(base, facts);
    }
    if let Some(path) = recovery_point {
        report.scope = Vec::new();
        let Some(bytes) = report.read(&path) else {
            return;
        };
        match decode_recovery_point(&bytes) {
            Err(e) => report.problem(&path, Some(0), format!("bad recovery point: {e}")),
            Ok(rp) => match facts_by_base.get(&rp.segment_base) {
                // Open ignores a checkpoint naming a segment retention has since deleted.
                None => {
                    if let Some(files) = segments.get(&rp.segment_base) {
                        report.scope.extend(files.log.clone());
                    }
                    report.warning(
                        &path,
                        format!(
                            "names segment {} which is not there (open ignores it)",
                            rp.segment_base
                        ),
                    );
                }
                Some(f) if rp.position > f.len => report.problem_on(
                    segments.get(&rp.segment_base).and_then(|s| s.log.clone()),
                    &path,
                    Some(22),
                    format!(
                        "says {} bytes of segment {} are durable but its log has {}",
                        rp.position, rp.segment_base, f.len
                    ),
                ),
                Some(f) if rp.position != f.len && !f.batch_starts.contains_key(&rp.position) => {
                    report.problem_on(
                        segments.get(&rp.segment_base).and_then(|s| s.log.clone()),
                        &path,
                        Some(22),
                        format!("position {} is not a batch boundary", rp.position),
                    );
                }
                Some(_) => {}
            },
        }
    }
}

/// Splits a partition directory name `<topic>-<partition>` at the last `-`.
fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    let (t, p) = name.rsplit_once('-')?;
    let p: i32 = p.parse().ok()?;
    (!t.is_empty() && p >= 0).then_some((t, p))
}

/// The total size of the segment files (`.log`, `.index`, `.timeindex`) of the partition
/// directories of `dir`: the 100% of the progress display.
fn segment_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n != "topics" && parse_partition_dir(n).is_some())
        })
        .filter_map(|p| std::fs::read_dir(p).ok())
        .flat_map(|files| files.flatten())
        .filter(|f| base_offset_of(&f.path()).is_some())
        .filter_map(|f| f.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn verify(dir: &Path, progress: Option<Progress>) -> Report {
    let mut report = Report {
        progress,
        ..Report::default()
    };
    let mut topics: BTreeMap<String, Option<i32>> = BTreeMap::new();
    let topics_dir = dir.join("topics");
    match std::fs::read_dir(&topics_dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                let Some(name) = name else { continue };
                if is_topic_tmp_file(&path, &name) {
                    report.warning(&path, "stray temporary file (open removes it)");
                    continue;
                }
                let count = check_topic_file(&mut report, &path);
                topics.insert(name, count);
            }
        }
        Err(e) => report.problem(&topics_dir, None, format!("cannot list: {e}")),
    }
    let mut seen: BTreeMap<(String, i32), PathBuf> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for path in dirs {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(name) = name else { continue };
            if name == "topics" {
                continue;
            }
            let Some((topic, p)) = parse_partition_dir(&name) else {
                continue;
            };
            match topics.get(topic) {
                Some(Some(count)) if p < *count => {
                    check_partition_settled(&mut report, &path);
                    seen.insert((topic.to_string(), p), path);
                }
                // A broken topic's directories are kept by open; check them anyway.
                Some(None) => check_partition_settled(&mut report, &path),
                _ => report.warning(&path, "orphan partition directory (open removes it)"),
            }
        }
    }
    for (topic, count) in &topics {
        for p in 0..count.unwrap_or(0) {
            if !seen.contains_key(&(topic.clone(), p)) {
                let missing = dir.join(format!("{topic}-{p}"));
                let mut f = report.finding(&missing, None, "partition directory is missing".into());
                // A topic created or deleted while verifying: its directory appeared since the
                // listing, or its topic file is gone.
                f.vanished = missing.is_dir() || !topics_dir.join(topic).exists();
                report.problems.push(f);
            }
        }
    }
    // A topic file listed and then gone was deleted, not damaged.
    let (vanished, problems) = std::mem::take(&mut report.problems)
        .into_iter()
        .partition(|f| f.vanished);
    report.problems = problems;
    report.changed.extend::<Vec<Finding>>(vanished);
    report
}

fn finding_line(f: &Finding) -> String {
    match f.position {
        Some(p) => format!("{} at byte {p}: {}", f.file.display(), f.reason),
        None => format!("{}: {}", f.file.display(), f.reason),
    }
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "file": f.file.display().to_string(),
        "position": f.position,
        "reason": f.reason,
    })
}

/// Runs `verify`.
pub fn run(ctx: &Ctx, args: &Args) -> CmdResult {
    let dir = args.dir.as_deref().unwrap_or_else(|| ctx.dir());
    if !dir.is_dir() {
        return Err(format!("no data directory at {}", dir.display()).into());
    }
    let progress = Progress::stderr("verify", ctx.json, || segment_bytes(dir));
    let mut report = verify(dir, progress);
    // Clear the line before the findings are printed.
    report.progress = None;
    let mut out = std::io::stdout().lock();
    if ctx.json {
        let list = |fs: &[Finding]| fs.iter().map(finding_json).collect::<Vec<_>>();
        print_json(
            &mut out,
            &json!({
                "files": report.files,
                "problems": list(&report.problems),
                "warnings": list(&report.warnings),
                "changed_while_verifying": list(&report.changed),
            }),
        )?;
    } else {
        for w in &report.warnings {
            writeln!(out, "warning: {}", finding_line(w))?;
        }
        for c in &report.changed {
            writeln!(out, "changed while verifying: {}", finding_line(c))?;
        }
        for p in &report.problems {
            writeln!(out, "problem: {}", finding_line(p))?;
        }
        // Files a live broker kept changing were not checked: said, but not a failure.
        let changed = if report.changed.is_empty() {
            String::new()
        } else {
            format!(
                ", {} finding(s) on files that changed while verifying (not checked)",
                report.changed.len()
            )
        };
        writeln!(
            out,
            "checked {} file(s): {} problem(s), {} warning(s){changed}",
            report.files,
            report.problems.len(),
            report.warnings.len()
        )?;
    }
    Ok(report.problems.is_empty())
}
