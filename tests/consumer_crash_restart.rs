//! Kill a consuming process after some commits, restart, and check at-least-once delivery.
//!
//! Scenario: a child process (this test binary re-run on one test) consumes a topic as a
//! group member, committing after every poll and logging each processed record and each
//! completed commit to a progress file. The parent kills it (SIGKILL: no close, no final
//! commit), reopens the data directory and consumes the rest with the same group. Every record
//! must have been processed at least once, and records processed twice must all lie at or
//! after the last commit the child completed: committed offsets survive the process through
//! `__consumer_offsets` and nothing before them is replayed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig};

const DIR_ENV: &str = "EMBROKER_CRASH_CHILD_DIR";
const PROGRESS_ENV: &str = "EMBROKER_CRASH_CHILD_PROGRESS";
const RECORDS: usize = 2_000;
const PARTITIONS: i32 = 2;

fn config() -> ConsumerConfig {
    ConsumerConfig::default()
        .group_id("crashy")
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .max_poll_records(50)
}

/// The child's body; does nothing unless started by the parent test with its env vars.
#[test]
fn crash_child_consumer() {
    let (Ok(dir), Ok(progress)) = (std::env::var(DIR_ENV), std::env::var(PROGRESS_ENV)) else {
        return;
    };
    let broker = Broker::open(&dir).unwrap();
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(progress)
        .unwrap();
    let mut c = broker.consumer(config()).unwrap();
    c.subscribe(&["t"]).unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let records = c.poll(Duration::from_millis(50)).unwrap();
        let mut line = String::new();
        for r in &records {
            line.push_str(&format!("P {} {}\n", r.partition, r.offset));
        }
        out.write_all(line.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        c.commit_sync().unwrap();
        let mut line = String::from("C");
        for tp in c.assignment() {
            line.push_str(&format!(" {}:{}", tp.partition, c.position(&tp).unwrap()));
        }
        line.push('\n');
        out.write_all(line.as_bytes()).unwrap();
    }
}

fn read_progress(path: &Path) -> (Vec<(i32, i64)>, BTreeMap<i32, i64>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Only whole lines: the kill may tear the last one.
    let text = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut processed = Vec::new();
    let mut last_commit = BTreeMap::new();
    let mut commits = 0;
    for line in text.lines() {
        let mut words = line.split(' ');
        match words.next() {
            Some("P") => {
                let p = words.next().and_then(|w| w.parse().ok());
                let o = words.next().and_then(|w| w.parse().ok());
                if let (Some(p), Some(o)) = (p, o) {
                    processed.push((p, o));
                }
            }
            Some("C") => {
                commits += 1;
                for w in words {
                    if let Some((p, o)) = w.split_once(':') {
                        last_commit.insert(p.parse().unwrap(), o.parse().unwrap());
                    }
                }
            }
            _ => {}
        }
    }
    (processed, last_commit, commits)
}

#[test]
fn killed_consumer_restarts_from_its_last_commit_at_least_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let progress = dir.path().join("progress.txt");
    {
        let broker = Broker::open(&data).unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(PARTITIONS))
            .unwrap();
        let topic = broker.topic("t").unwrap();
        for i in 0..RECORDS {
            let p = topic.partition(i as i32 % PARTITIONS).unwrap();
            p.append(&[Record::new(format!("{i}"))]).unwrap();
        }
        broker.close().unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_consumer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, &data)
        .env(PROGRESS_ENV, &progress)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_progress(&progress).2 < 6 {
        assert!(Instant::now() < deadline, "child made no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (first_run, last_commit, _) = read_progress(&progress);
    assert!(first_run.len() < RECORDS, "the child was killed mid-stream");

    let broker = Broker::open(&data).unwrap();
    let mut c = broker.consumer(config()).unwrap();
    c.subscribe(&["t"]).unwrap();
    let mut second_run = Vec::new();
    let mut quiet = 0;
    while quiet < 3 {
        let r = c.poll(Duration::from_millis(50)).unwrap();
        if r.is_empty() {
            quiet += 1;
        }
        second_run.extend(r.iter().map(|r| (r.partition, r.offset)));
    }
    let all: BTreeSet<(i32, i64)> = (0..RECORDS)
        .map(|i| (i as i32 % PARTITIONS, (i as i32 / PARTITIONS) as i64))
        .collect();
    let first: BTreeSet<_> = first_run.iter().copied().collect();
    let second: BTreeSet<_> = second_run.iter().copied().collect();
    assert_eq!(
        second.len(),
        second_run.len(),
        "no duplicates within one run"
    );
    let union: BTreeSet<_> = first.union(&second).copied().collect();
    assert_eq!(union, all, "every record delivered at least once");
    for (p, o) in first.intersection(&second) {
        let committed = last_commit.get(p).copied().unwrap_or(0);
        assert!(
            *o >= committed,
            "record {p}/{o} replayed although the child had committed {committed}"
        );
    }
}
