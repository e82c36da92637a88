//! A child process that keeps the log cleaner busy is killed with SIGKILL at random moments,
//! over and over on one directory. After every kill the directory must open, hold no leftover
//! of an interrupted swap, and show the same latest value per key as before: a cleaning pass
//! cut at any point (while mapping, writing `.cleaned` files, committing the manifest or
//! renaming) leaves the old segments or the new ones, never a mix and never a loss.
//!
//! The child only appends records that leave the view unchanged (each key's current value, or
//! a tombstone for a key that has none), so any difference after a kill is the cleaner's.
//! The test re-runs its own binary as the child (`EMBROKER_COMPACTION_CHILD` names the
//! directory). `EMBROKER_LONG=1` raises the kills from 30 to 1,000.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{seed, XorShift};

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use embroker::{Broker, CleanupPolicy, Partition, Record, TopicConfig};

const TEST: &str = "sigkill_during_cleaning_keeps_the_latest_value_of_every_key";
const KEYS: u64 = 300;

type View = BTreeMap<Vec<u8>, Vec<u8>>;

fn view(p: &Partition) -> View {
    common::latest(&common::read_all(p, p.log_start_offset()))
        .into_iter()
        .map(|(k, (_, v))| (k, v))
        .collect()
}

fn key(k: u64) -> String {
    format!("key-{k:03}")
}

/// The child: append view-preserving records, flush, run the cleaner; forever.
fn child(dir: &str) -> ! {
    // Throttled so that most of the child's time, and so most kills, fall inside a pass.
    let broker = Broker::builder()
        .log_cleaner(false)
        .cleaner_io_max_bytes_per_second(2_000_000.0)
        .open(dir)
        .expect("child open");
    let p = broker.topic("c").unwrap().partition(0).unwrap();
    let current = view(&p);
    let mut rng = XorShift(seed());
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    loop {
        let batch: Vec<Record> = (0..50)
            .map(|_| {
                let k = key(rng.next() % KEYS);
                match current.get(k.as_bytes()) {
                    Some(v) => Record::new(v.clone()).key(k),
                    None => Record::tombstone(k),
                }
            })
            .collect();
        p.append(&batch).expect("append");
        broker.flush().expect("flush");
        writeln!(out, "CLEAN").unwrap();
        out.flush().unwrap();
        let report = broker.run_log_cleaner().expect("clean");
        assert!(report.partitions_failed.is_empty(), "{report:?}");
        writeln!(out, "DONE {}", report.segments_replaced).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_during_cleaning_keeps_the_latest_value_of_every_key() {
    if let Ok(dir) = std::env::var("EMBROKER_COMPACTION_CHILD") {
        child(&dir);
    }
    let seed = seed();
    eprintln!("seed {seed}");
    common::with_seed(seed, || kill_cleaning(seed));
}

/// The parent of `sigkill_during_cleaning_keeps_the_latest_value_of_every_key`.
fn kill_cleaning(seed: u64) {
    let long = std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1");
    let kills = if long { 1_000 } else { 30 };
    let dir = tempfile::tempdir().unwrap();
    let mut rng = XorShift(seed);
    let expected = {
        let broker = Broker::builder()
            .log_cleaner(false)
            .open(dir.path())
            .unwrap();
        let config = TopicConfig::default()
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(4096)
            .index_interval_bytes(512)
            .min_cleanable_dirty_ratio(0.1)
            .delete_retention_ms(0);
        broker.create_topic("c", config).unwrap();
        let p = broker.topic("c").unwrap().partition(0).unwrap();
        for i in 0..20_000u64 {
            let k = key(rng.next() % KEYS);
            let r = if rng.next().is_multiple_of(10) {
                Record::tombstone(k)
            } else {
                Record::new(format!("value-{i}-{}", "v".repeat((i % 30) as usize))).key(k)
            };
            p.append(&[r]).unwrap();
        }
        let v = view(&p);
        // Start from a compacted log, so the child's passes are short and many commit.
        broker.flush().unwrap();
        broker.run_log_cleaner().unwrap();
        broker.close().unwrap();
        v
    };
    let (mut in_pass, mut passes, mut replaced) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for run in 0..kills {
        let (mut child, lines) =
            common::spawn_ready_child(TEST, dir.path(), &format!("run {run}"), |c| {
                // Each child's choices follow the seed (its timing does not).
                c.env("EMBROKER_COMPACTION_CHILD", dir.path())
                    .env("EMBROKER_SEED", (seed ^ (run << 32)).to_string());
            });
        // The child prints only between steps; read on another thread so the kill lands on
        // time even in the middle of a long pass.
        let reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
        std::thread::sleep(Duration::from_millis(rng.next() % 250));
        child.kill().unwrap();
        child.wait().unwrap();
        let printed = reader.join().unwrap();
        for line in &printed {
            if let Some(n) = line.strip_prefix("DONE ") {
                passes += 1;
                replaced += n.parse::<u64>().unwrap();
            }
        }
        // What the child printed last tells where it was.
        let last = printed.last().cloned().unwrap_or_default();
        if last == "CLEAN" {
            in_pass += 1;
        }

        let broker = Broker::builder()
            .log_cleaner(false)
            .open(dir.path())
            .unwrap_or_else(|e| panic!("run {run}: open failed: {e}"));
        let p = broker.topic("c").unwrap().partition(0).unwrap();
        assert_eq!(view(&p), expected, "run {run}: latest values changed");
        let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("c-0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".cleaned") || n == "cleaner-swap")
            .collect();
        assert!(leftovers.is_empty(), "run {run}: {leftovers:?}");
        broker.close().unwrap();
    }
    eprintln!(
        "{kills} kills ({in_pass} inside a cleaner pass), {passes} passes finished, \
         {replaced} segments replaced, {} keys checked after each kill, 0 differences, {:?}",
        expected.len(),
        started.elapsed()
    );
}
