//! Disk full / I/O errors: writes start failing mid-append, and nothing acknowledged is lost.
//!
//! A child process runs under a file-size limit (`RLIMIT_FSIZE`, set with `ulimit -f` by the
//! `sh -c` that starts it, with SIGXFSZ ignored by `trap "" XFSZ` so the write fails with
//! `EFBIG` instead of killing the process; an ignored signal stays ignored across `exec`).
//! Segments are larger than the limit, so the active segment hits it: the write that crosses
//! it is short (part of a batch reaches the file) and fails. The child appends (acks=1
//! through `Partition::append`, acks=all through the producer, or append then
//! `Partition::flush`) until an append fails, and checks:
//! - the first failure is `Error::Io` naming the file it was writing (a `.log`), and the next
//!   append fails the same way (the log cut the partial batch off and is still writable);
//! - nothing panics, and every record acknowledged before the failure still reads back;
//! - then space returns (the child raises its soft limit to the hard one with `setrlimit`)
//!   and the broker carries on without a restart: 50 more appends succeed, at the offsets
//!   that follow, and read back.
//!
//! The parent then reopens the directory without the limit: open must succeed, every
//! acknowledged record (before and after the failure) must be there with its content, and
//! appends must work again.
//!
//! What stays fail-stop: a failed *fsync* (or a partial batch that cannot be cut off) marks
//! the partition log failed (`Error::LogFailed`) until the broker is reopened, as redb and
//! PostgreSQL do, because after a failed fsync the page cache can no longer be trusted.
//!
//! Why it matters: a full disk is the most common I/O error in production, and the one where
//! a broker that half-writes, swallows the error, or loses acknowledged data on restart does
//! the most damage.
//!
//! CI: 6 runs (3 append modes × 2 limits); `EMBROKER_LONG=1`: 60 runs with random limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use embroker::{Acks, Broker, ProducerConfig, ProducerRecord, Record, TopicConfig};

const CHILD_DIR: &str = "EMBROKER_DISK_FULL_CHILD";
const CHILD_MODE: &str = "EMBROKER_DISK_FULL_MODE";
const TEST_NAME: &str = "appends_fail_cleanly_when_the_disk_is_full";
const TOPIC: &str = "full";

fn value(i: u64) -> String {
    format!("value-{i}-{}", "d".repeat((i % 200) as usize))
}

/// The child: appends until an append fails; prints "ACK <offset> <i>" for each success and
/// "FIRST <error>", "LATER <error>", "READ <n>" and "CLOSE <result>" at the end.
fn child(dir: &str, mode: &str) -> ! {
    let mut out = std::io::stdout().lock();
    // The test harness has printed "test <name> ... " without a newline.
    writeln!(out).unwrap();
    let broker = Broker::open(dir).expect("child open");
    broker
        .create_topic(
            TOPIC,
            TopicConfig::default()
                .segment_bytes(64 * 1024 * 1024)
                .index_interval_bytes(512),
        )
        .expect("create");
    let p = broker.topic(TOPIC).unwrap().partition(0).unwrap();
    let producer = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    let mut acked: BTreeMap<i64, u64> = BTreeMap::new();
    let append = |i: u64| -> embroker::Result<i64> {
        match mode {
            "append" => p.append(&[Record::new(value(i)).key(format!("k{i}"))]),
            "flush" => {
                let o = p.append(&[Record::new(value(i)).key(format!("k{i}"))])?;
                p.flush()?;
                Ok(o)
            }
            _ => Ok(producer
                .send(ProducerRecord::new(TOPIC, value(i)).key(format!("k{i}")))?
                .wait()?
                .offset),
        }
    };
    let mut i = 0u64;
    let first = loop {
        match append(i) {
            Ok(offset) => {
                writeln!(out, "ACK {offset} {i}").unwrap();
                acked.insert(offset, i);
                i += 1;
            }
            Err(e) => break e,
        }
        assert!(i < 10_000_000, "the limit never hit");
    };
    writeln!(out, "FIRST {first:?} | {first}").unwrap();
    let later = append(i).expect_err("an append after the failure succeeded");
    writeln!(out, "LATER {later:?} | {later}").unwrap();
    // Space returns: the soft file-size limit goes up to the hard one (unlimited).
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::FSIZE).expect("getrlimit");
    rlimit::setrlimit(rlimit::Resource::FSIZE, hard, hard).expect("raising RLIMIT_FSIZE");
    let mut resumed = 0;
    for _ in 0..50 {
        let offset = append(i).expect("an append once space returned, without a restart");
        writeln!(out, "ACK {offset} {i}").unwrap();
        acked.insert(offset, i);
        i += 1;
        resumed += 1;
    }
    writeln!(out, "RESUMED {resumed}").unwrap();
    // Everything acknowledged still reads back, from this process.
    let mut read = 0;
    for (&offset, &i) in &acked {
        let r = p.read(offset, 1 << 16).expect("read after failure");
        let rec = r.iter().next().expect("a record");
        assert_eq!(rec.offset, offset);
        assert_eq!(rec.value.as_deref(), Some(value(i).as_bytes()));
        read += 1;
    }
    writeln!(out, "READ {read}").unwrap();
    drop(producer);
    writeln!(out, "CLOSE {:?}", broker.close().map_err(|e| e.to_string())).unwrap();
    out.flush().unwrap();
    std::process::exit(0);
}

fn run_once(mode: &str, limit_blocks: u64, run: u64) -> (usize, String) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -S -f {limit_blocks}; exec \"$0\" \"$@\""
        ))
        .arg(&exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_MODE, mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let ctx = format!("run {run}, mode {mode}, ulimit -f {limit_blocks}");
    assert!(
        output.status.success(),
        "{ctx}: child failed ({:?}):\n{stderr}\n{}",
        output.status,
        stdout.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    let line = |prefix: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{ctx}: no {prefix:?} line:\n{stderr}"))
            .to_string()
    };
    let first = line("FIRST ");
    let later = line("LATER ");
    let read = line("READ ");
    // The first failure is an I/O error naming the segment it was writing.
    assert!(
        first.starts_with("Io {") && first.contains(".log") && first.contains("writing"),
        "{ctx}: first failure: {first}"
    );
    assert!(
        later.starts_with("Io {") && later.contains(".log"),
        "{ctx}: later failure (the log must stay writable): {later}"
    );
    assert_eq!(line("RESUMED "), "50", "{ctx}: appends once space returned");
    let acked = common::acked_lines(&stdout);
    assert!(!acked.is_empty(), "{ctx}: nothing was acknowledged");
    assert_eq!(read, acked.len().to_string(), "{ctx}: child reads");

    // Reopen without the limit: everything acknowledged is there, appends work again.
    let broker = Broker::open(dir.path()).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    let p = broker.topic(TOPIC).unwrap().partition(0).unwrap();
    common::assert_acked_read_back(&p, &acked, value, &ctx);
    let end = p.log_end_offset();
    let next = p.append(&[Record::new("after")]).unwrap();
    assert_eq!(next, end, "{ctx}: append after reopen");
    p.flush().unwrap();
    broker.close().unwrap();
    (acked.len(), first)
}

#[test]
fn appends_fail_cleanly_when_the_disk_is_full() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(&dir, &std::env::var(CHILD_MODE).unwrap());
    }
    let long = std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1");
    let modes = ["append", "producer", "flush"];
    let mut plan = Vec::new();
    // Only the long mode's plan is random; the seed is in every failure message either way.
    let seed = common::seed();
    if long {
        let mut x = seed;
        eprintln!("disk full: seed {x}");
        for run in 0..60 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            plan.push((modes[run % 3], 8 + x % 400));
        }
    } else {
        for limit in [16, 100] {
            for mode in modes {
                plan.push((mode, limit));
            }
        }
    }
    let started = std::time::Instant::now();
    let mut records = 0;
    for (run, (mode, limit)) in plan.iter().enumerate() {
        let (n, first) = common::with_seed(seed, || run_once(mode, *limit, run as u64));
        records += n;
        if run == 0 {
            eprintln!("disk full: first failure looks like: {first}");
        }
    }
    eprintln!(
        "disk full: {} runs, {records} acknowledged records checked after reopen, 0 lost, {:?}",
        plan.len(),
        started.elapsed()
    );
}
