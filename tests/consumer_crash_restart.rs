//! Kill a consuming process, restart it, and check at-least-once delivery from the commits.
//!
//! Scenario: a child process (this test binary re-run on one test) consumes a topic as a
//! group member, committing after every poll and logging each record it was handed and each
//! completed commit to a progress file. The parent kills it (SIGKILL: no close, no final
//! commit), reopens the data directory and reads the group's committed offsets, then starts
//! the next child on the same directory, and at the end consumes the rest with the same group.
//!
//! Checked after every kill, per partition: the committed offset is never ahead of what the
//! child had been handed (a commit covers only records `poll` returned), and never behind the
//! last commit the child saw complete (a completed commit survives the process). Checked for
//! every run: the records handed are contiguous and start exactly at the offset committed
//! when the run started (so a restart skips nothing and replays only what follows the last
//! commit). At the end: every record was handed at least once.
//!
//! CI: one kill, after the child's sixth commit, with 2,000 records. `EMBROKER_LONG=1`: 1,000
//! kills on one directory, each after a random number of commits (0 to 6) and a random delay
//! (0 to 15 ms), so kills land while joining, polling, processing and committing; before each
//! run the parent appends 0 to 150 records per partition.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{seed, XorShift};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use embroker::{Broker, ConsumerConfig, Error, OffsetReset, Record, TopicConfig};

const DIR_ENV: &str = "EMBROKER_CRASH_CHILD_DIR";
const PROGRESS_ENV: &str = "EMBROKER_CRASH_CHILD_PROGRESS";
const GROUP: &str = "crashy";
const RECORDS: usize = 2_000;
const PARTITIONS: i32 = 2;
const LONG_KILLS: usize = 1_000;

fn config() -> ConsumerConfig {
    ConsumerConfig::default()
        .group_id(GROUP)
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
        // Logged before the commit, so the parent knows of every record a commit covers.
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

/// What one child logged: the (partition, offset) of every record handed to it in order, the
/// positions of its last completed commit, and how many commits it completed.
struct Progress {
    handed: Vec<(i32, i64)>,
    last_commit: BTreeMap<i32, i64>,
    commits: usize,
}

fn read_progress(path: &Path) -> Progress {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Only whole lines: the kill may tear the last one.
    let text = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut progress = Progress {
        handed: Vec::new(),
        last_commit: BTreeMap::new(),
        commits: 0,
    };
    for line in text.lines() {
        let mut words = line.split(' ');
        match words.next() {
            Some("P") => {
                let p = words.next().and_then(|w| w.parse().ok());
                let o = words.next().and_then(|w| w.parse().ok());
                if let (Some(p), Some(o)) = (p, o) {
                    progress.handed.push((p, o));
                }
            }
            Some("C") => {
                progress.commits += 1;
                for w in words {
                    if let Some((p, o)) = w.split_once(':') {
                        progress
                            .last_commit
                            .insert(p.parse().unwrap(), o.parse().unwrap());
                    }
                }
            }
            _ => {}
        }
    }
    progress
}

/// The group's committed offset per partition (empty before the first commit).
fn committed(broker: &Broker) -> BTreeMap<i32, i64> {
    match broker.describe_group(GROUP) {
        Ok(d) => d
            .offsets
            .iter()
            .filter_map(|p| {
                let om = p.committed.as_ref()?;
                Some((p.topic_partition.partition, om.offset))
            })
            .collect(),
        Err(Error::UnknownGroup { .. }) => BTreeMap::new(),
        Err(e) => panic!("describe_group: {e}"),
    }
}

/// Checks that `handed` holds, per partition, contiguous offsets starting at `from` (the
/// committed offset, 0 without one); returns the offset after the last one handed.
fn check_contiguous(
    run: usize,
    handed: &[(i32, i64)],
    from: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, i64> {
    let mut next: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| (p, from.get(&p).copied().unwrap_or(0)))
        .collect();
    for (p, o) in handed {
        let want = next.get_mut(p).unwrap();
        assert_eq!(
            *o,
            *want,
            "run {run}: partition {p} handed offset {o}, expected {want} (the committed offset \
             at the start of the run was {:?})",
            from.get(p)
        );
        *want += 1;
    }
    next
}

fn append(broker: &Broker, per_partition: &[usize], next_value: &mut usize) {
    let topic = broker.topic("t").unwrap();
    for (p, n) in per_partition.iter().enumerate() {
        let records: Vec<Record> = (0..*n)
            .map(|i| Record::new(format!("{}", *next_value + i)))
            .collect();
        if !records.is_empty() {
            topic.partition(p as i32).unwrap().append(&records).unwrap();
        }
        *next_value += n;
    }
}

#[test]
fn killed_consumer_restarts_from_its_last_commit_at_least_once() {
    let seed = seed();
    eprintln!("seed {seed}");
    common::with_seed(seed, || kill_and_restart(seed));
}

/// The body of `killed_consumer_restarts_from_its_last_commit_at_least_once`.
fn kill_and_restart(seed: u64) {
    let long = std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1");
    let kills = if long { LONG_KILLS } else { 1 };
    let mut rng = XorShift(seed);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let progress = dir.path().join("progress.txt");
    let mut next_value = 0;
    {
        let broker = Broker::open(&data).unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(PARTITIONS))
            .unwrap();
        let half = RECORDS / PARTITIONS as usize;
        append(&broker, &[half, half], &mut next_value);
        broker.close().unwrap();
    }
    // How many times each (partition, offset) was handed out, over every run.
    let mut times_handed: BTreeMap<(i32, i64), u32> = BTreeMap::new();
    let mut commits_seen = 0;
    let mut committed_before = BTreeMap::new();
    for run in 0..kills {
        let (commits_before_kill, delay_ms) = if long {
            (rng.next() % 7, rng.next() % 16)
        } else {
            (6, 0)
        };
        let _ = std::fs::remove_file(&progress);
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
        while read_progress(&progress).commits < commits_before_kill as usize {
            assert!(
                Instant::now() < deadline,
                "run {run}: child made no progress"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let run_progress = read_progress(&progress);
        if !long {
            assert!(
                run_progress.handed.len() < RECORDS,
                "the child was killed mid-stream"
            );
        }
        commits_seen += run_progress.commits;
        let handed_end = check_contiguous(run, &run_progress.handed, &committed_before);
        for tp in &run_progress.handed {
            *times_handed.entry(*tp).or_default() += 1;
        }

        let broker = Broker::open(&data).unwrap();
        let committed_after = committed(&broker);
        for (p, offset) in &committed_after {
            let handed = handed_end[p];
            assert!(
                *offset <= handed,
                "run {run}: partition {p} committed {offset}, but the child had been handed \
                 only up to {handed}"
            );
        }
        for (p, logged) in &run_progress.last_commit {
            let offset = committed_after.get(p).copied().unwrap_or(0);
            assert!(
                offset >= *logged,
                "run {run}: partition {p} committed {offset}, behind the commit of {logged} \
                 the child saw complete"
            );
        }
        if long {
            let per_partition: Vec<usize> = (0..PARTITIONS)
                .map(|_| (rng.next() % 151) as usize)
                .collect();
            append(&broker, &per_partition, &mut next_value);
        }
        broker.close().unwrap();
        committed_before = committed_after;
        if long && run % 100 == 99 {
            eprintln!(
                "run {run}: {} records handed so far, committed {committed_before:?}",
                times_handed.values().sum::<u32>()
            );
        }
    }

    // The final restart: the same group consumes the rest.
    let broker = Broker::open(&data).unwrap();
    let mut c = broker.consumer(config()).unwrap();
    c.subscribe(&["t"]).unwrap();
    let mut last_run = Vec::new();
    let mut quiet = 0;
    while quiet < 3 {
        let r = c.poll(Duration::from_millis(50)).unwrap();
        if r.is_empty() {
            quiet += 1;
        }
        last_run.extend(r.iter().map(|r| (r.partition, r.offset)));
    }
    check_contiguous(kills, &last_run, &committed_before);
    for tp in &last_run {
        *times_handed.entry(*tp).or_default() += 1;
    }
    let topic = broker.topic("t").unwrap();
    let mut total = 0;
    for p in 0..PARTITIONS {
        let end = topic.partition(p).unwrap().log_end_offset();
        for o in 0..end {
            assert!(
                times_handed.contains_key(&(p, o)),
                "record {p}/{o} was never delivered"
            );
        }
        total += end;
    }
    assert_eq!(
        times_handed.len() as i64,
        total,
        "nothing past the log ends"
    );
    c.close().unwrap();
    broker.close().unwrap();
    let handed: u32 = times_handed.values().sum();
    eprintln!(
        "consumer kill test: {kills} kills, {commits_seen} commits logged, {total} records, \
         {handed} records handed and checked ({} redelivered after a kill), every record \
         delivered at least once, committed offsets never ahead, {:.1} s",
        handed as i64 - total,
        started.elapsed().as_secs_f64()
    );
}
