//! acks=all survives a SIGKILL: every record whose send was acknowledged is in the log, with
//! its content, when the directory is reopened after the producing process was killed.
//!
//! The parent test re-runs this test binary as a child process (only the child test, selected
//! with `--exact`), pointing it at a directory through `EMBROKER_PRODUCER_KILL_DIR`. The child
//! produces with acks=all from several threads and prints one `ACK` line per acknowledged
//! record, flushing stdout each time. The parent kills the child with SIGKILL after a random
//! number of acks, reopens the directory and checks every acknowledged record.
//!
//! CI: 12 kills, each in a fresh directory. `EMBROKER_LONG=1`: 1,000 kills, ten per directory:
//! each child reopens the directory its predecessor was killed in (recovery, then more
//! appends), and after every kill every record acknowledged in that directory so far is
//! checked again, so an acknowledged record that a later crash or recovery lost or overwrote
//! (its offset handed to another record) fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{seed, XorShift};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use embroker::{Acks, Broker, Error, ProducerConfig, ProducerRecord, TopicConfig};

const DIR_VAR: &str = "EMBROKER_PRODUCER_KILL_DIR";
/// Which run of the parent the child is: makes values unique within a reused directory.
const RUN_VAR: &str = "EMBROKER_PRODUCER_KILL_RUN";
const CHILD_TEST: &str = "child_produces_with_acks_all_until_killed";
const TOPIC: &str = "acked";
const PARTITIONS: i32 = 3;
const CHILD_THREADS: usize = 4;
/// CI mode: kills, one directory each.
const ITERATIONS: usize = 12;
/// Long mode: kills, and kills per directory.
const LONG_KILLS: usize = 1_000;
const LONG_KILLS_PER_DIR: usize = 10;

/// The child side: does nothing unless started by the parent test with the directory set.
#[test]
fn child_produces_with_acks_all_until_killed() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let run = std::env::var(RUN_VAR).unwrap_or_default();
    let broker = Broker::open(&dir).unwrap();
    match broker.create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS)) {
        // A reused directory (long mode) has the topic from an earlier run.
        Ok(()) | Err(Error::TopicExists { .. }) => {}
        Err(e) => panic!("create topic: {e}"),
    }
    let producer = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..CHILD_THREADS {
            let producer = producer.clone();
            let run = &run;
            s.spawn(move || {
                // Bounded, so a child the parent forgets still ends.
                for i in 0..100_000 {
                    let value = format!("r{run}-t{t}-{i}");
                    let meta = producer
                        .send(
                            ProducerRecord::new(TOPIC, value.clone())
                                .key(format!("k{t}-{}", i % 7)),
                        )
                        .unwrap()
                        .wait()
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {} {} {value}", meta.partition, meta.offset).unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn acknowledged_records_survive_sigkill_of_the_producing_process() {
    let seed = seed();
    eprintln!("seed {seed}");
    common::with_seed(seed, || kill_runs(seed));
}

/// The body of `acknowledged_records_survive_sigkill_of_the_producing_process`.
fn kill_runs(seed: u64) {
    let long = std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1");
    let (kills, kills_per_dir) = if long {
        (LONG_KILLS, LONG_KILLS_PER_DIR)
    } else {
        (ITERATIONS, 1)
    };
    let mut rng = XorShift(seed);
    let started = Instant::now();
    let exe = std::env::current_exe().unwrap();
    let mut dir = tempfile::tempdir().unwrap();
    // (partition, offset) -> value of every record acknowledged in `dir`.
    let mut acked: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let (mut acked_total, mut checks) = (0usize, 0usize);
    for iteration in 0..kills {
        if iteration > 0 && iteration % kills_per_dir == 0 {
            dir = tempfile::tempdir().unwrap();
            acked.clear();
        }
        let kill_after = 1 + (rng.next() % 300) as usize;
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .env(RUN_VAR, iteration.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acks = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("ACK ") else {
                continue;
            };
            let mut parts = rest.splitn(3, ' ');
            let partition: i32 = parts.next().unwrap().parse().unwrap();
            let offset: i64 = parts.next().unwrap().parse().unwrap();
            let value = parts.next().unwrap().to_string();
            if let Some(earlier) = acked.insert((partition, offset), value.clone()) {
                panic!(
                    "iteration {iteration}: {partition}@{offset} acknowledged twice: \
                     {earlier} (earlier run) and {value}"
                );
            }
            acks += 1;
            if acks == kill_after {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        let status = child.wait().unwrap();
        if acks < kill_after {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("child ended after {acks} acks ({status}): {err}");
        }
        acked_total += acks;

        let broker = Broker::open(dir.path()).unwrap();
        let topic = broker.topic(TOPIC).unwrap();
        for ((partition, offset), value) in &acked {
            let p = topic.partition(*partition).unwrap();
            assert!(
                *offset < p.log_end_offset(),
                "iteration {iteration}: acked {value} at {partition}@{offset} is gone (log end {})",
                p.log_end_offset()
            );
            let record = p
                .read(*offset, 1)
                .unwrap()
                .iter()
                .find(|r| r.offset == *offset)
                .unwrap();
            assert_eq!(
                record.value.as_deref(),
                Some(value.as_bytes()),
                "iteration {iteration}: {partition}@{offset}"
            );
            checks += 1;
        }
        if !long || iteration % 100 == 99 {
            eprintln!(
                "iteration {iteration}: killed after {acks} acks, all {} acknowledged in this \
                 directory present",
                acked.len()
            );
        }
        broker.close().unwrap();
    }
    eprintln!(
        "producer kill test: {kills} kills ({kills_per_dir} per directory), {acked_total} \
         acknowledged records, {checks} record checks, 0 lost, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
