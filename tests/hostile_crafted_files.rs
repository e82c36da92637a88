//! Hostile environment: crafted file names and sizes in partition directories and in the data
//! directory, then `Broker::open`, reads, appends, close and reopen.
//!
//! Every case starts from the same closed data directory: topic `t` (one partition, 4 KiB
//! segments, so several segments) and topic `other`, both holding acknowledged records. The case
//! then adds, replaces or extends files, and the common check demands:
//! - `Broker::open` succeeds, never panics, and topic `other` works (append, read back);
//! - partition `t-0` either opens and behaves (every acknowledged record reads back with its
//!   value; an append is acknowledged at the log end and reads back; after close and reopen every
//!   acknowledged record is still there), or stays offline with an error that names the crafted
//!   file (and the rest of the broker works);
//! - files outside the data directory (a symlink's target) are never modified.
//!
//! Kafka's rules for comparison (`LogLoader`, `LocalLog`): only regular files are considered
//! (`file.isFile`, so a directory named like a segment is skipped); `.deleted` and `.cleaned`
//! files are deleted, `.swap` files completed; an index file without its log is deleted; the
//! offset is `name.substring(0, name.indexOf('.')).toLong`. Where embroker differs is written
//! down in the notes of this work (RELIABILITY.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use embroker::{Broker, Error, Record, TopicConfig};

const SEGMENT_BYTES: u32 = 4096;

/// The acknowledged records of `t-0`: (offset, value).
type Acked = Vec<(i64, String)>;

/// A closed data directory with `t` (several segments) and `other`, and what `t-0` acknowledged.
struct Fixture {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    acked: Acked,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_records(60)
    }

    fn with_records(n: usize) -> Fixture {
        Fixture::build(
            TopicConfig::default().segment_bytes(SEGMENT_BYTES),
            (0..n).map(|i| (format!("t{i}-{}", "x".repeat(100)), None)),
            |_| {},
        )
    }

    /// Topic `t` with `config` and `records` ((value, key) each) in `t-0`, topic `other` with
    /// one record; `before_close` runs last on the open broker.
    fn build(
        config: TopicConfig,
        records: impl IntoIterator<Item = (String, Option<String>)>,
        before_close: impl FnOnce(&Broker),
    ) -> Fixture {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        let broker = Broker::open(&dir).expect("open");
        broker.create_topic("t", config).expect("create t");
        broker
            .create_topic("other", TopicConfig::default())
            .expect("create other");
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        let mut acked = Vec::new();
        for (value, key) in records {
            let mut record = Record::new(value.clone());
            if let Some(key) = key {
                record = record.key(key);
            }
            let offset = p.append(&[record]).expect("append");
            acked.push((offset, value));
        }
        let o = broker.topic("other").unwrap().partition(0).unwrap();
        o.append(&[Record::new("other-0")]).expect("append other");
        before_close(&broker);
        broker.close().expect("close");
        Fixture {
            _temp: temp,
            dir,
            acked,
        }
    }

    fn part(&self) -> PathBuf {
        self.dir.join("t-0")
    }

    /// The segment files of `t-0` with `extension`, sorted by name.
    fn files(&self, extension: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.part())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == extension)
                    && p.file_stem().is_some_and(|s| s.len() == 20)
            })
            .collect();
        v.sort();
        v
    }

    fn log_end(&self) -> i64 {
        self.acked.last().map_or(0, |(o, _)| o + 1)
    }
}

fn seg(base: i64, extension: &str) -> String {
    format!("{base:020}.{extension}")
}

fn write_file(path: &Path, bytes: &[u8]) {
    let mut f = File::create(path).expect("create crafted file");
    f.write_all(bytes).expect("write crafted file");
}

fn sparse(path: &Path, len: u64) {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .expect("open crafted file");
    f.set_len(len).expect("set_len");
}

/// What became of `t-0`.
#[derive(Debug)]
enum Outcome {
    Online,
    Offline(#[allow(dead_code)] String),
}

/// Reads every acknowledged record of `p` back; returns a description of the first mismatch.
fn missing(p: &embroker::Partition, acked: &Acked) -> Option<String> {
    for (offset, value) in acked {
        let records = match p.read(*offset, 1) {
            Ok(r) => r,
            Err(e) => return Some(format!("read of acknowledged offset {offset}: {e}")),
        };
        match records.iter().find(|r| r.offset >= *offset) {
            Some(r) if r.offset == *offset && r.value.as_deref() == Some(value.as_bytes()) => {}
            Some(r) => {
                return Some(format!(
                    "acknowledged offset {offset} reads back as offset {} value {:?}",
                    r.offset,
                    r.value.as_deref().map(String::from_utf8_lossy)
                ))
            }
            None => return Some(format!("acknowledged offset {offset} is gone")),
        }
    }
    None
}

/// Opens the crafted directory and checks the rules in the module docs; `names` are the crafted
/// files an error may name. Returns what became of `t-0` at the first open.
fn check(case: &str, f: &Fixture, names: &[&str]) -> Outcome {
    let mut acked = f.acked.clone();
    let broker = Broker::open(&f.dir)
        .unwrap_or_else(|e| panic!("{case}: Broker::open failed instead of one partition: {e}"));
    other_works(case, &broker);
    let outcome = match broker.topic("t").and_then(|t| t.partition(0)) {
        Err(e) => {
            let text = e.to_string();
            assert!(
                names.iter().any(|n| text.contains(n)),
                "{case}: t-0 offline with an error that names none of {names:?}: {text}"
            );
            Outcome::Offline(text)
        }
        Ok(p) => {
            if let Some(m) = missing(&p, &acked) {
                panic!("{case}: after open: {m}");
            }
            let end = p.log_end_offset();
            assert!(
                end >= f.log_end(),
                "{case}: log end {end} below the {} acknowledged",
                f.log_end()
            );
            for i in 0..5 {
                let value = format!("after-{i}");
                match p.append(&[Record::new(value.clone())]) {
                    Ok(offset) => {
                        assert!(
                            offset >= end,
                            "{case}: append acknowledged at {offset} below the log end {end}"
                        );
                        acked.push((offset, value));
                    }
                    // Refusing an append is allowed (an offset that cannot be appended to);
                    // acknowledging one that is later lost is not.
                    Err(e) => {
                        eprintln!("{case}: append refused: {e}");
                        break;
                    }
                }
            }
            if let Some(m) = missing(&p, &acked) {
                panic!("{case}: after appends: {m}");
            }
            Outcome::Online
        }
    };
    broker
        .close()
        .unwrap_or_else(|e| panic!("{case}: close: {e}"));
    // Reopen: whatever was acknowledged is still there.
    let broker =
        Broker::open(&f.dir).unwrap_or_else(|e| panic!("{case}: second Broker::open failed: {e}"));
    other_works(case, &broker);
    match (&outcome, broker.topic("t").and_then(|t| t.partition(0))) {
        (Outcome::Online, Ok(p)) => {
            if let Some(m) = missing(&p, &acked) {
                panic!("{case}: after reopen: {m}");
            }
        }
        (Outcome::Online, Err(e)) => {
            panic!("{case}: t-0 took appends, then did not reopen: {e}")
        }
        (Outcome::Offline(_), Ok(p)) => {
            if let Some(m) = missing(&p, &f.acked) {
                panic!("{case}: offline, then reopened without its records: {m}");
            }
        }
        (Outcome::Offline(_), Err(_)) => {}
    }
    broker
        .close()
        .unwrap_or_else(|e| panic!("{case}: second close: {e}"));
    eprintln!("{case}: {outcome:?}");
    outcome
}

fn other_works(case: &str, broker: &Broker) {
    let o = broker
        .topic("other")
        .and_then(|t| t.partition(0))
        .unwrap_or_else(|e| panic!("{case}: topic `other` does not open: {e}"));
    let offset = o
        .append(&[Record::new("other-more")])
        .unwrap_or_else(|e| panic!("{case}: append to `other`: {e}"));
    let r = o
        .read(0, 1 << 20)
        .unwrap_or_else(|e| panic!("{case}: read `other`: {e}"));
    let values: Vec<_> = r.iter().map(|r| r.value.unwrap()).collect();
    assert_eq!(
        values.first().map(|v| &v[..]),
        Some(&b"other-0"[..]),
        "{case}"
    );
    assert!(offset >= 1, "{case}");
}

// Segment names ------------------------------------------------------------------------

#[test]
fn segment_named_i64_max_is_refused_or_harmless() {
    let f = Fixture::new();
    let name = seg(i64::MAX, "log");
    write_file(&f.part().join(&name), b"");
    check("i64::MAX .log", &f, &[&name]);
}

#[test]
fn segment_named_i64_max_minus_one_is_refused_or_harmless() {
    let f = Fixture::new();
    let name = seg(i64::MAX - 1, "log");
    write_file(&f.part().join(&name), b"");
    check("i64::MAX-1 .log", &f, &[&name]);
}

#[test]
fn segment_names_near_the_u32_relative_offset_limit() {
    for base in [
        i64::from(u32::MAX) - 1,
        i64::from(u32::MAX),
        i64::from(u32::MAX) + 1,
    ] {
        let f = Fixture::new();
        let name = seg(base, "log");
        write_file(&f.part().join(&name), b"");
        check(&format!("empty .log at {base}"), &f, &[&name]);
    }
}

/// A `.log` whose name is not 20 digits of an appendable offset is not a file embroker wrote:
/// the partition stays offline with an error naming it (Kafka fails to load such a log too),
/// rather than skipping a file that may hold data. Another extension is not a segment file.
#[test]
fn segment_names_that_are_not_20_digits_are_refused() {
    for name in [
        "0000000000000000100.log",   // 19 digits
        "000000000000000000100.log", // 21 digits
        "0000000000000000010a.log",
        "+0000000000000000100.log",
        "-0000000000000000100.log",
        "99999999999999999999.log", // 20 digits, above i64::MAX
        ".log",
    ] {
        let f = Fixture::new();
        write_file(&f.part().join(name), b"garbage");
        assert!(
            matches!(check(name, &f, &[name]), Outcome::Offline(_)),
            "{name}"
        );
    }
    let f = Fixture::new();
    let name = "00000000000000000100.LOG";
    write_file(&f.part().join(name), b"garbage");
    assert!(
        matches!(check(name, &f, &[name]), Outcome::Online),
        "{name}"
    );
}

// Missing partners, empty and odd-sized files --------------------------------------------

#[test]
fn log_without_index_files() {
    let f = Fixture::new();
    for p in f.files("index").iter().chain(f.files("timeindex").iter()) {
        std::fs::remove_file(p).unwrap();
    }
    assert!(matches!(
        check("logs without indexes", &f, &[]),
        Outcome::Online
    ));
}

#[test]
fn index_without_log_is_removed() {
    let f = Fixture::new();
    let base = f.log_end() + 1000;
    let index = f.part().join(seg(base, "index"));
    write_file(&index, &[0u8; 16]);
    write_file(&f.part().join(seg(base, "timeindex")), &[0u8; 24]);
    assert!(matches!(check("stray index", &f, &[]), Outcome::Online));
    assert!(!index.exists(), "stray index file left behind");
}

#[test]
fn empty_log_past_the_end() {
    let f = Fixture::new();
    let name = seg(f.log_end() + 7, "log");
    write_file(&f.part().join(&name), b"");
    assert!(matches!(check("empty .log", &f, &[&name]), Outcome::Online));
}

#[test]
fn active_segment_emptied_is_an_error_naming_it() {
    // Damage rather than a stray file: the recovery point says bytes were flushed there.
    let f = Fixture::new();
    let active = f.files("log").pop().unwrap();
    sparse(&active, 0);
    File::create(&active).unwrap();
    let name = active.file_name().unwrap().to_str().unwrap().to_string();
    check("active .log emptied", &f, &[&name]);
}

#[test]
fn active_log_padded_to_exactly_the_segment_size() {
    // Zeros after the last batch (a preallocated file, Kafka's `preallocate`).
    let f = Fixture::new();
    let active = f.files("log").pop().unwrap();
    sparse(&active, u64::from(SEGMENT_BYTES));
    assert!(matches!(
        check("active .log of segment.bytes", &f, &[]),
        Outcome::Online
    ));
}

#[test]
fn log_of_exactly_the_segment_size_past_the_end() {
    let f = Fixture::new();
    let name = seg(f.log_end(), "log");
    write_file(&f.part().join(&name), &vec![0u8; SEGMENT_BYTES as usize]);
    check("zeros .log of segment.bytes", &f, &[&name]);
}

#[test]
fn active_log_larger_than_segment_bytes_of_real_batches() {
    // Written with 64 KiB segments, reopened with segment.bytes 4 KiB: the active segment is
    // larger than a segment may be, and the next append must roll.
    let f = Fixture::build(
        TopicConfig::default().segment_bytes(64 * 1024),
        (0..200).map(|i| (format!("big{i}-{}", "y".repeat(100)), None)),
        |broker| {
            broker
                .alter_topic_config("t", &[("segment.bytes", SEGMENT_BYTES.to_string())])
                .unwrap();
        },
    );
    assert!(matches!(
        check("active .log > segment.bytes", &f, &[]),
        Outcome::Online
    ));
}

#[test]
fn log_larger_than_segment_bytes_of_zeros() {
    let f = Fixture::new();
    let active = f.files("log").pop().unwrap();
    sparse(&active, 3 * u64::from(SEGMENT_BYTES) + 5);
    assert!(matches!(
        check("active .log zero-padded past segment.bytes", &f, &[]),
        Outcome::Online
    ));
}

// Sparse files past u32 positions ------------------------------------------------------

const FOUR_GIB_PLUS: u64 = (1 << 32) + 4096;

#[test]
fn sparse_active_log_past_4_gib() {
    let f = Fixture::new();
    let active = f.files("log").pop().unwrap();
    sparse(&active, FOUR_GIB_PLUS);
    let name = active.file_name().unwrap().to_str().unwrap().to_string();
    check("sparse active .log > 4 GiB", &f, &[&name]);
}

#[test]
fn sparse_sealed_log_past_4_gib() {
    let f = Fixture::new();
    let logs = f.files("log");
    assert!(logs.len() >= 2, "fixture has sealed segments");
    let sealed = &logs[0];
    sparse(sealed, FOUR_GIB_PLUS);
    let name = sealed.file_name().unwrap().to_str().unwrap().to_string();
    check("sparse sealed .log > 4 GiB", &f, &[&name]);
}

#[test]
fn sparse_new_log_past_4_gib() {
    let f = Fixture::new();
    let name = seg(f.log_end(), "log");
    sparse(&f.part().join(&name), FOUR_GIB_PLUS);
    check("sparse new .log > 4 GiB", &f, &[&name]);
}

// Garbage indexes ------------------------------------------------------------------------

#[test]
fn garbage_index_files_of_odd_sizes() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    for size in [1usize, 7, 13, 8 * 5 + 3, 12 * 7 + 5, 4099] {
        let f = Fixture::new();
        for (i, p) in f
            .files("index")
            .iter()
            .chain(f.files("timeindex").iter())
            .enumerate()
        {
            let bytes: Vec<u8> = (0..size + i)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            write_file(p, &bytes);
        }
        assert!(matches!(
            check(&format!("garbage indexes of {size}+ bytes"), &f, &[]),
            Outcome::Online
        ));
    }
}

#[test]
fn offset_index_of_whole_garbage_entries() {
    // A multiple of the entry size, so the garbage parses as entries: reads must not trust it.
    let f = Fixture::new();
    for p in f.files("index") {
        let entries: Vec<u8> = (0u32..4)
            .flat_map(|i| [(i * 3).to_be_bytes(), (i * 97 + 13).to_be_bytes()].concat())
            .collect();
        write_file(&p, &entries);
    }
    assert!(matches!(
        check("offset index of plausible garbage", &f, &[]),
        Outcome::Online
    ));
}

// Things that are not regular files --------------------------------------------------------

#[test]
fn directory_named_like_a_segment() {
    let f = Fixture::new();
    let name = seg(f.log_end() + 10, "log");
    std::fs::create_dir(f.part().join(&name)).unwrap();
    check("directory named .log", &f, &[&name]);
}

#[test]
fn directory_named_like_an_index() {
    let f = Fixture::new();
    let name = seg(f.log_end() + 10, "index");
    std::fs::create_dir(f.part().join(&name)).unwrap();
    check("directory named .index", &f, &[&name]);
}

#[test]
fn symlink_named_like_a_segment_leaves_its_target_alone() {
    let f = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("precious");
    let precious = b"precious bytes that are not a record batch".repeat(20);
    write_file(&target, &precious);
    let name = seg(f.log_end() + 10, "log");
    std::os::unix::fs::symlink(&target, f.part().join(&name)).unwrap();
    check("symlink named .log", &f, &[&name]);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        precious,
        "the file a symlink in the partition directory points to was modified"
    );
}

#[test]
fn dangling_symlink_named_like_a_segment() {
    let f = Fixture::new();
    let name = seg(f.log_end() + 10, "log");
    std::os::unix::fs::symlink("/nonexistent/embroker/x", f.part().join(&name)).unwrap();
    check("dangling symlink named .log", &f, &[&name]);
}

// Recovery point -----------------------------------------------------------------------

#[test]
fn recovery_point_of_zero_bytes() {
    let f = Fixture::new();
    write_file(&f.part().join("recovery-point"), b"");
    assert!(matches!(
        check("empty recovery-point", &f, &[]),
        Outcome::Online
    ));
}

/// Size of a "huge" crafted file: 64 GiB (sparse) where the kernel refuses to allocate that
/// much at once (`vm.overcommit_memory` 0 or 2), so that code reading it whole fails instead of
/// exhausting the machine's memory; 256 MiB elsewhere.
fn huge() -> u64 {
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if matches!(overcommit.trim(), "0" | "2") {
        64 << 30
    } else {
        256 << 20
    }
}

#[test]
fn recovery_point_huge() {
    // A damaged checkpoint must only cost a scan (before: read whole, "out of memory", and the
    // partition stayed offline).
    let f = Fixture::new();
    sparse(&f.part().join("recovery-point"), huge());
    assert!(matches!(
        check("huge recovery-point", &f, &[]),
        Outcome::Online
    ));
}

#[test]
fn index_files_huge() {
    // Indexes are hints: a huge one is rebuilt, not read whole.
    for ext in ["index", "timeindex"] {
        let f = Fixture::new();
        for p in f.files(ext) {
            sparse(&p, huge());
        }
        assert!(matches!(
            check(&format!("huge .{ext} files"), &f, &[]),
            Outcome::Online
        ));
    }
}

#[test]
fn recovery_point_of_garbage() {
    let f = Fixture::new();
    write_file(&f.part().join("recovery-point"), &[0xff; 42]);
    assert!(matches!(
        check("garbage recovery-point", &f, &[]),
        Outcome::Online
    ));
}

// The data directory's recovery points ------------------------------------------------------

fn recovery_points(f: &Fixture) -> PathBuf {
    f.dir.join("recovery-points")
}

#[test]
fn recovery_points_of_zero_bytes_garbage_or_huge() {
    for (case, bytes) in [
        ("empty recovery-points", Vec::new()),
        ("garbage recovery-points", vec![0xff; 300]),
        ("foreign magic", b"EBRP\x00\x01not ours".to_vec()),
    ] {
        let f = Fixture::new();
        write_file(&recovery_points(&f), &bytes);
        assert!(matches!(check(case, &f, &[]), Outcome::Online), "{case}");
    }
    let f = Fixture::new();
    sparse(&recovery_points(&f), huge());
    assert!(matches!(
        check("huge recovery-points", &f, &[]),
        Outcome::Online
    ));
}

#[test]
fn recovery_points_with_a_flipped_byte_anywhere() {
    let f = Fixture::new();
    let good = std::fs::read(recovery_points(&f)).unwrap();
    // Magic, version, count, the first entry's name length, name, id, offset, position and
    // flags, and the CRC.
    let positions: Vec<usize> = [0, 5, 9, 11, 13, 18, 26, 42, 58, 59]
        .into_iter()
        .filter(|&i| i < good.len() - 4)
        .chain([good.len() - 1])
        .collect();
    for i in positions {
        let f = Fixture::new();
        let mut bad = std::fs::read(recovery_points(&f)).unwrap();
        bad[i] ^= 0x40;
        write_file(&recovery_points(&f), &bad);
        assert!(
            matches!(
                check(&format!("recovery-points byte {i} flipped"), &f, &[]),
                Outcome::Online
            ),
            "byte {i}"
        );
    }
}

#[test]
fn recovery_points_of_another_data_directory() {
    // Well formed, naming `t-0` and `other-0`, but written for topics of other ids: ignored.
    let donor = Fixture::with_records(200);
    let f = Fixture::new();
    std::fs::copy(recovery_points(&donor), recovery_points(&f)).unwrap();
    assert!(matches!(
        check("another directory's recovery-points", &f, &[]),
        Outcome::Online
    ));
}

#[test]
fn recovery_points_claiming_bytes_that_are_not_there() {
    // A well-formed entry with `t`'s own id that claims more flushed bytes than the active
    // segment has: damage in what the point says was flushed, as a per-partition
    // `recovery-point` saying so is (the partition stays offline naming the segment).
    let f = Fixture::new();
    let topic = std::fs::read_to_string(f.dir.join("topics").join("t")).unwrap();
    let id = topic
        .lines()
        .find_map(|l| l.strip_prefix("# topic id: "))
        .map(|hex| u64::from_str_radix(hex, 16).unwrap())
        .expect("topic id line");
    let last = f.files("log").pop().unwrap();
    let base: i64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut b = Vec::new();
    b.extend_from_slice(b"EBRD");
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&3u16.to_be_bytes());
    b.extend_from_slice(b"t-0");
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&(f.log_end() + 1000).to_be_bytes());
    b.extend_from_slice(&base.to_be_bytes());
    b.extend_from_slice(&(1u64 << 40).to_be_bytes());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.push(1);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    write_file(&recovery_points(&f), &b);
    let name = seg(base, "log");
    check(
        "recovery-points past the end",
        &f,
        &[&name, "recovery-points"],
    );
}

// Leftovers of interrupted work ------------------------------------------------------------

#[test]
fn stray_tmp_cleaned_and_deleted_files() {
    let f = Fixture::new();
    let first = f.files("log")[0].clone();
    let base = first.file_name().unwrap().to_str().unwrap()[..20].to_string();
    let strays = [
        format!("{base}.log.tmp"),
        "recovery-point.tmp".to_string(),
        format!("{base}.log.cleaned"),
        format!("{base}.index.cleaned"),
        format!("{base}.log.deleted"),
        format!("{base}.index.deleted"),
        format!("{base}.log.swap"),
        "cleaner-swap.tmp".to_string(),
    ];
    for s in &strays {
        write_file(&f.part().join(s), b"leftover garbage");
    }
    assert!(matches!(check("stray leftovers", &f, &[]), Outcome::Online));
    let left: Vec<&String> = strays
        .iter()
        .filter(|s| f.part().join(s).exists())
        .collect();
    eprintln!("stray leftovers still present after open: {left:?}");
}

#[test]
fn stray_cleaner_manifest_of_garbage() {
    let f = Fixture::new();
    write_file(&f.part().join("cleaner-swap"), b"not a manifest");
    check("garbage cleaner-swap", &f, &["cleaner-swap"]);
}

// The data directory -----------------------------------------------------------------------

#[test]
fn unknown_partition_directories() {
    let f = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("keep");
    write_file(&precious, b"keep me");
    for name in ["t-99", "t--1", "t-abc", "t-", "-0", "t-0-0", "a b-0"] {
        let d = f.dir.join(name);
        std::fs::create_dir(&d).unwrap();
        write_file(&d.join(seg(0, "log")), b"not ours");
    }
    // A symlink named like a partition of no topic, pointing outside the data directory.
    std::os::unix::fs::symlink(outside.path(), f.dir.join("ghost-0")).unwrap();
    assert!(matches!(
        check("unknown partition directories", &f, &[]),
        Outcome::Online
    ));
    assert!(
        precious.exists(),
        "a directory outside the data directory was emptied"
    );
    let left: Vec<&str> = [
        "t-99", "t--1", "t-abc", "t-", "-0", "t-0-0", "a b-0", "ghost-0",
    ]
    .into_iter()
    .filter(|n| f.dir.join(n).symlink_metadata().is_ok())
    .collect();
    eprintln!("unknown partition directories left after open: {left:?}");
}

#[test]
fn file_where_a_partition_directory_belongs() {
    let f = Fixture::new();
    std::fs::remove_dir_all(f.part()).unwrap();
    write_file(&f.part(), b"a file, not a directory");
    check("file named t-0", &f, &["t-0"]);
}

#[test]
fn topic_file_with_an_illegal_name() {
    let f = Fixture::new();
    let topics = f.dir.join("topics");
    let config = std::fs::read(topics.join("t")).unwrap();
    for name in ["bad name", "with:colon", "x".repeat(250).as_str(), "x*y"] {
        write_file(&topics.join(name), &config);
    }
    std::fs::create_dir(f.dir.join("bad name-0")).unwrap();
    assert!(matches!(
        check("topic files with illegal names", &f, &[]),
        Outcome::Online
    ));
    let broker = Broker::open(&f.dir).unwrap();
    let topics = broker.topics();
    assert!(
        topics.iter().all(|t| t == "t" || t == "other"),
        "topics after open: {topics:?}"
    );
    broker.close().unwrap();
}

#[test]
fn topic_file_of_garbage_keeps_the_rest_working() {
    let f = Fixture::new();
    write_file(
        &f.dir.join("topics").join("junk"),
        &[0xff, 0xfe, 0x00, 0x01],
    );
    check("garbage topic file", &f, &[]);
    let broker = Broker::open(&f.dir).unwrap();
    match broker.topic("junk") {
        Err(Error::Corrupt { path, .. }) => assert!(path.ends_with("junk"), "{path:?}"),
        other => panic!("topic `junk`: {other:?}"),
    }
    broker.close().unwrap();
}

#[test]
fn topics_with_names_of_leftover_files_survive_reopen() {
    // Legal Kafka topic names that end like the files open treats as leftovers.
    for name in [
        "x.tmp",
        "x.cleaned",
        "x.deleted",
        "recovery-point",
        "cleaner-swap",
    ] {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        let broker = Broker::open(&dir).unwrap();
        broker
            .create_topic(name, TopicConfig::default())
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        let p = broker.topic(name).unwrap().partition(0).unwrap();
        p.append(&[Record::new("acknowledged")]).unwrap();
        // The topic whose temporary file would bear this name, created and altered after it.
        if let Some(stem) = name.strip_suffix(".tmp") {
            broker.create_topic(stem, TopicConfig::default()).unwrap();
            broker
                .alter_topic_config(stem, &[("retention.ms", "1000000")])
                .unwrap();
        }
        broker.close().unwrap();
        let broker = Broker::open(&dir).unwrap();
        let p = broker
            .topic(name)
            .and_then(|t| t.partition(0))
            .unwrap_or_else(|e| panic!("topic {name:?} after reopen: {e}"));
        let values: Vec<_> = p
            .read(0, 1 << 20)
            .unwrap()
            .iter()
            .map(|r| r.value)
            .collect();
        assert_eq!(values.len(), 1, "topic {name:?} lost its record");
        broker.close().unwrap();
    }
}

#[test]
fn topic_file_huge() {
    // A topic file far larger than any config: one broken topic, never a failed open.
    let f = Fixture::new();
    sparse(&f.dir.join("topics").join("huge"), huge());
    check("huge topic file", &f, &[]);
    let broker = Broker::open(&f.dir).unwrap();
    match broker.topic("huge") {
        Err(Error::Corrupt { path, .. }) => assert!(path.ends_with("huge"), "{path:?}"),
        other => panic!("topic `huge`: {other:?}"),
    }
    broker.close().unwrap();
}

#[test]
fn directory_in_the_topics_directory() {
    let f = Fixture::new();
    std::fs::create_dir(f.dir.join("topics").join("adir")).unwrap();
    check("directory in topics/", &f, &[]);
    let broker = Broker::open(&f.dir).unwrap();
    let e = broker
        .topic("adir")
        .expect_err("a directory is not a topic config");
    assert!(e.to_string().contains("adir"), "{e}");
    broker.close().unwrap();
}

#[test]
fn cleaner_files_huge_on_a_compacted_topic() {
    // The cleaner checkpoint only saves work (a huge one costs a pass); a huge swap manifest is
    // damage that cannot be guessed around (partition offline, naming it).
    for (file, must_stay_online) in [("cleaner-checkpoint", true), ("cleaner-swap", false)] {
        let f = Fixture::build(
            TopicConfig::default()
                .segment_bytes(SEGMENT_BYTES)
                .cleanup_policy(embroker::CleanupPolicy::Compact),
            (0..60).map(|i| (format!("c{i}-{}", "z".repeat(100)), Some(format!("k{i}")))),
            |_| {},
        );
        sparse(&f.part().join(file), huge());
        let outcome = check(&format!("huge {file}"), &f, &[file]);
        if must_stay_online {
            assert!(
                matches!(outcome, Outcome::Online),
                "huge {file}: {outcome:?}"
            );
        }
    }
}

#[test]
fn empty_log_below_the_log_start() {
    // Retention deleted the first segments; a crafted empty `.log` at offset 0 is below the
    // log start. Kafka keeps the start in a checkpoint; embroker takes the first segment's base.
    let mut f = Fixture::new();
    let broker = Broker::open(&f.dir).unwrap();
    broker
        .alter_topic_config("t", &[("retention.bytes", "4096")])
        .unwrap();
    broker.enforce_retention().unwrap();
    let start = broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .log_start_offset();
    assert!(start > 0, "retention deleted nothing");
    broker.close().unwrap();
    f.acked.retain(|(o, _)| *o >= start);
    let name = seg(0, "log");
    write_file(&f.part().join(&name), b"");
    check("empty .log below the log start", &f, &[&name]);
    let broker = Broker::open(&f.dir).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    eprintln!(
        "empty .log below the log start {start}: log start now {}",
        p.log_start_offset()
    );
    broker.close().unwrap();
}
