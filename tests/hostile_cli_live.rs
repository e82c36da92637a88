//! Issue #15, defect 8: `embroker verify` must be exact on a closed directory and, beside a
//! live broker, must tell a file that changed under it from damage; `dump` must not fail on a
//! file the broker deletes or grows while it reads. The built binary is run as a user runs it
//! while a broker in this process appends, rolls small segments, deletes them by retention
//! and compacts.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{seed, XorShift};
use embroker::codec::peek_header;
use embroker::{Broker, CleanupPolicy, Record, TopicConfig};

const BIN: &str = env!("CARGO_BIN_EXE_embroker");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the embroker binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `.log` files of a partition directory, in offset order.
fn logs(partition_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// The last offset of the last batch in a `.log` file, if it has one.
fn last_offset_in(log: &Path) -> Option<i64> {
    let bytes = std::fs::read(log).unwrap();
    let (mut at, mut last) = (0usize, None);
    while let Ok(h) = peek_header(&bytes[at..]) {
        last = Some(h.last_offset());
        at += h.total_bytes();
        if at >= bytes.len() {
            break;
        }
    }
    last
}

/// The offset the last entry of a `.timeindex` names.
fn last_time_index_offset(timeindex: &Path, base: i64) -> Option<i64> {
    let bytes = std::fs::read(timeindex).ok()?;
    let e = bytes.chunks_exact(12).last()?;
    Some(base + i64::from(u32::from_be_bytes([e[8], e[9], e[10], e[11]])))
}

fn base_of(log: &Path) -> i64 {
    log.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

#[test]
fn verify_is_exact_on_a_closed_compacted_topic_whose_cleaner_emptied_a_segment_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let broker = Broker::builder().log_cleaner(false).open(&dir).unwrap();
    let cfg = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(600)
        .min_cleanable_dirty_ratio(0.0);
    broker.create_topic("c", cfg).unwrap();
    let p = broker.topic("c").unwrap().partition(0).unwrap();
    // One record per batch, every other one with a key written again and again: many
    // segments end with a batch a later one supersedes, and keep records before it.
    for round in 0..4 {
        for i in 0..60 {
            let key = if i % 2 == 0 {
                format!("u{round}-{i}")
            } else {
                "hot".to_string()
            };
            p.append(&[Record::new(format!("v{round}-{i}")).key(key)])
                .unwrap();
        }
        // The cleaner takes only what the recovery point covers.
        p.flush().unwrap();
        broker.run_log_cleaner().unwrap();
    }
    broker.close().unwrap();
    drop(broker);

    // The scenario: a sealed segment whose time index names an offset past its last batch
    // (the span end the cleaner emptied).
    let part = dir.join("c-0");
    let logs = logs(&part);
    let emptied_tail = logs[..logs.len() - 1].iter().any(|log| {
        let base = base_of(log);
        let named = last_time_index_offset(&log.with_extension("timeindex"), base);
        named.is_some_and(|n| last_offset_in(log).is_none_or(|last| n > last))
    });
    assert!(
        emptied_tail,
        "setup: no sealed segment's time index names an offset past its last batch"
    );

    let d = dir.to_str().unwrap();
    let o = run(&["verify", d]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "verify reported damage on a healthy closed directory: {}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stdout).contains("0 problem(s)"),
        "{}",
        text(&o.stdout)
    );

    // The library agrees the directory is healthy: it opens and reads every record.
    let broker = Broker::builder().log_cleaner(false).open(&dir).unwrap();
    let p = broker.topic("c").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), 240);
    // 120 keys written once and "hot": each key's latest value survives compaction.
    let view = common::latest(&common::read_all(&p, p.log_start_offset()));
    assert_eq!(view.len(), 121);
    broker.close().unwrap();
    drop(broker);

    // Real damage is still reported: a time index entry past the segment's span, and a
    // flipped byte in a sealed segment's log.
    let first = &logs[0];
    let next_base = base_of(&logs[1]);
    let ti = first.with_extension("timeindex");
    let span = u32::try_from(next_base - base_of(first)).unwrap();
    let mut entry = i64::MAX.to_be_bytes().to_vec();
    entry.extend_from_slice(&span.to_be_bytes());
    let mut bytes = std::fs::read(&ti).unwrap();
    bytes.extend_from_slice(&entry);
    std::fs::write(&ti, &bytes).unwrap();
    let o = run(&["verify", d]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains(&format!("problem: {}", ti.display())),
        "{}",
        text(&o.stdout)
    );

    let mut bytes = std::fs::read(first).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x40;
    std::fs::write(first, &bytes).unwrap();
    let o = run(&["verify", d]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains(&format!("problem: {} at byte", first.display())),
        "{}",
        text(&o.stdout)
    );
}

/// A broker in this process appending to a deleting topic (size retention on small segments)
/// and a compacted one (cleaner every few milliseconds), checkpointing often, until `stop`.
fn live_broker(dir: &Path, stop: Arc<AtomicBool>, appended: Arc<AtomicU64>) -> Broker {
    let broker = Broker::builder()
        .retention_check_interval(Duration::from_millis(5))
        .checkpoint_interval(Duration::from_millis(5))
        .cleaner_backoff(Duration::from_millis(5))
        .open(dir)
        .unwrap();
    broker
        .create_topic(
            "d",
            TopicConfig::default()
                .partitions(2)
                .segment_bytes(1024)
                .retention_bytes(4096),
        )
        .unwrap();
    broker
        .create_topic(
            "c",
            TopicConfig::default()
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(1024)
                .min_cleanable_dirty_ratio(0.0),
        )
        .unwrap();
    // A topic written once: damage put there while the others change must still be found.
    broker
        .create_topic("cold", TopicConfig::default().segment_bytes(1024))
        .unwrap();
    let cold = broker.topic("cold").unwrap().partition(0).unwrap();
    for i in 0..60 {
        cold.append(&[Record::new(format!("cold-{i}-{}", "x".repeat(40)))])
            .unwrap();
    }
    cold.flush().unwrap();
    for (topic, partition) in [("d", 0), ("d", 1), ("c", 0)] {
        let p = broker.topic(topic).unwrap().partition(partition).unwrap();
        let (stop, appended) = (stop.clone(), appended.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let records: Vec<Record> = (0..1 + i % 3)
                    .map(|j| {
                        Record::new(vec![b'v'; 40 + (i % 50) as usize])
                            .key(format!("k{}", (i + j) % 7))
                    })
                    .collect();
                if p.append(&records).is_err() {
                    return;
                }
                if i.is_multiple_of(16) {
                    let _ = p.flush();
                }
                appended.fetch_add(1, Ordering::Relaxed);
                i += 1;
                if i.is_multiple_of(8) {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
    }
    broker
}

#[test]
fn verify_and_dump_beside_a_live_broker_never_report_damage() {
    let seed = seed();
    common::with_seed(seed, || verify_and_dump_beside(seed));
}

/// The body of `verify_and_dump_beside_a_live_broker_never_report_damage`.
fn verify_and_dump_beside(seed: u64) {
    let long = std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1");
    let budget = Duration::from_secs(if long { 60 } else { 4 });
    let mut rng = XorShift(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let broker = live_broker(&dir, stop.clone(), appended.clone());
    let d = dir.to_str().unwrap().to_string();
    let started = Instant::now();
    let (mut verifies, mut verifies_changed, mut dumps, mut dumps_vanished) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    while started.elapsed() < budget || verifies < 3 {
        let o = run(&["verify", &d]);
        verifies += 1;
        let out = text(&o.stdout);
        verifies_changed += u32::from(out.contains("changed while verifying"));
        if o.status.code() != Some(0) || !out.contains(" 0 problem(s)") {
            failures.push(format!(
                "verify run {verifies} exit {:?}: {out}{}",
                o.status.code(),
                text(&o.stderr)
            ));
        }
        // dump a few files listed just now: some are deleted or grow before dump reads them.
        for part in ["d-0", "d-1", "c-0"] {
            let Ok(entries) = std::fs::read_dir(dir.join(part)) else {
                continue;
            };
            let files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            let dumpable: Vec<&PathBuf> = files
                .iter()
                .filter(|p| {
                    let n = p.file_name().unwrap().to_string_lossy();
                    n.ends_with(".log") || n.ends_with("index") || n == "recovery-point"
                })
                .collect();
            if dumpable.is_empty() {
                continue;
            }
            for _ in 0..2 {
                let file = dumpable[rng.below(dumpable.len() as u64) as usize];
                let o = run(&["dump", "--records", file.to_str().unwrap()]);
                dumps += 1;
                let err = text(&o.stderr);
                match o.status.code() {
                    Some(0) => {}
                    // Deleted between the listing and dump's open: said so, not damage.
                    Some(1) if err.contains("No such file") => dumps_vanished += 1,
                    code => failures.push(format!(
                        "dump {} exit {code:?}: {}{err}",
                        file.display(),
                        text(&o.stdout)
                            .lines()
                            .filter(|l| l.contains("torn") || l.contains("bad"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    )),
                }
            }
        }
        if !failures.is_empty() && !long {
            break;
        }
    }
    // Damage in a sealed segment of the cold topic, beside the live ones: reported, and
    // nothing else is.
    let cold_log = logs(&dir.join("cold-0"))[0].clone();
    let good = std::fs::read(&cold_log).unwrap();
    let mut bad = good.clone();
    bad[good.len() - 3] ^= 0x40;
    std::fs::write(&cold_log, &bad).unwrap();
    let o = run(&["verify", &d]);
    std::fs::write(&cold_log, &good).unwrap();
    let out = text(&o.stdout);
    let problems: Vec<&str> = out.lines().filter(|l| l.starts_with("problem: ")).collect();
    if o.status.code() != Some(1)
        || problems.is_empty()
        || problems
            .iter()
            .any(|l| !l.contains(cold_log.to_str().unwrap()))
    {
        failures.push(format!(
            "verify beside a live broker with damage in {}: exit {:?}: {out}",
            cold_log.display(),
            o.status.code()
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let appends = appended.load(Ordering::Relaxed);
    broker.close().unwrap();
    drop(broker);
    eprintln!(
        "seed {seed}: {verifies} verify runs ({verifies_changed} saw files change), {dumps} dumps \
         ({dumps_vanished} of vanished files), {appends} appends"
    );
    assert!(
        failures.is_empty(),
        "{} of {verifies} verify runs / {dumps} dumps failed beside a live broker; first: {}",
        failures.len(),
        failures[0]
    );
    assert!(appends > 100, "the broker appended only {appends} batches");
    // Once closed, the directory verifies exactly.
    let o = run(&["verify", &d]);
    assert_eq!(o.status.code(), Some(0), "after close: {}", text(&o.stdout));
}
