//! acks=all survives a SIGKILL: every record whose send was acknowledged is in the log, with
//! its content, when the directory is reopened after the producing process was killed.
//!
//! The parent test re-runs this test binary as a child process (only the child test, selected
//! with `--exact`), pointing it at a fresh directory through `EMBROKER_PRODUCER_KILL_DIR`. The
//! child produces with acks=all from several threads and prints one `ACK` line per
//! acknowledged record, flushing stdout each time. The parent kills the child with SIGKILL
//! after a random number of acks, reopens the directory and checks every acknowledged record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use embroker::{Acks, Broker, ProducerConfig, ProducerRecord, TopicConfig};

const DIR_VAR: &str = "EMBROKER_PRODUCER_KILL_DIR";
const CHILD_TEST: &str = "child_produces_with_acks_all_until_killed";
const TOPIC: &str = "acked";
const PARTITIONS: i32 = 3;
const CHILD_THREADS: usize = 4;
const ITERATIONS: usize = 12;

/// The child side: does nothing unless started by the parent test with the directory set.
#[test]
fn child_produces_with_acks_all_until_killed() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let broker = Broker::open(&dir).unwrap();
    broker
        .create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS))
        .unwrap();
    let producer = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..CHILD_THREADS {
            let producer = producer.clone();
            s.spawn(move || {
                // Bounded, so a child the parent forgets still ends.
                for i in 0..100_000 {
                    let value = format!("t{t}-{i}");
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

/// A small xorshift generator: the kill points vary from run to run without a dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn acknowledged_records_survive_sigkill_of_the_producing_process() {
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let exe = std::env::current_exe().unwrap();
    for iteration in 0..ITERATIONS {
        let dir = tempfile::tempdir().unwrap();
        let kill_after = 1 + (next_random(&mut seed) % 300) as usize;
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acked: Vec<(i32, i64, String)> = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("ACK ") else {
                continue;
            };
            let mut parts = rest.splitn(3, ' ');
            let partition: i32 = parts.next().unwrap().parse().unwrap();
            let offset: i64 = parts.next().unwrap().parse().unwrap();
            let value = parts.next().unwrap().to_string();
            acked.push((partition, offset, value));
            if acked.len() == kill_after {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        let status = child.wait().unwrap();
        if acked.len() < kill_after {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("child ended after {} acks ({status}): {err}", acked.len());
        }

        let broker = Broker::open(dir.path()).unwrap();
        let topic = broker.topic(TOPIC).unwrap();
        for (partition, offset, value) in &acked {
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
        }
        eprintln!(
            "iteration {iteration}: killed after {} acks, all present",
            acked.len()
        );
        broker.close().unwrap();
    }
}
