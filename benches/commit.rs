//! What a durable `commit_sync` costs against a page-cache commit (`commit_async`, which is
//! what `commit_sync` did before it fsynced), in commits per second, interleaved round by
//! round so that both see the same machine state; how concurrent `commit_sync` callers
//! share fsyncs (group commit); and the durable commit as a future (`commit().await`), from one
//! consumer and from several consumers' tasks on one thread (their pending commits share the
//! syncer's fsyncs).
//!
//! `cargo bench --bench commit` (data in a persistent broker in a scratch directory, since a
//! temporary broker fsyncs nothing; `EMBROKER_COMMIT_DIR=DIR` to measure another disk). `EMBROKER_BENCH_RUNS` rounds (default 5), each row measured for
//! one second times `EMBROKER_BENCH_SCALE` (default 1; at least 20 ms) per round.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig, TopicPartition};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Commits from `threads` consumers (each its own group, one partition each) for `period`,
/// durable or not; returns commits per second over all threads.
fn run(broker: &Broker, threads: usize, durable: bool, period: Duration) -> embroker::Result<f64> {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let broker = broker.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || -> embroker::Result<u64> {
                let mut c = broker.consumer(
                    ConsumerConfig::default()
                        .group_id(format!("bench-{t}"))
                        .enable_auto_commit(false)
                        .auto_offset_reset(OffsetReset::Earliest),
                )?;
                c.subscribe(&[format!("t{t}").as_str()])?;
                let tp = TopicPartition::new(format!("t{t}"), 0);
                while c.assignment().is_empty() {
                    c.poll(Duration::from_millis(10))?;
                }
                let mut n = 0u64;
                barrier.wait();
                let end = Instant::now() + period;
                while Instant::now() < end {
                    // A new position each time, so that each commit writes a record.
                    c.seek(&tp, (n % 100) as i64)?;
                    if durable {
                        c.commit_sync()?;
                    } else {
                        c.commit_async(|_, r| {
                            if let Err(e) = r {
                                eprintln!("commit failed: {e}");
                            }
                        })?;
                    }
                    n += 1;
                }
                c.close()?;
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| embroker::Error::Closed {
            what: "bench thread",
        })??;
    }
    Ok(total as f64 / period.as_secs_f64())
}

/// A member of group `bench-{t}` reading `t{t}`, assigned, committing only when told.
fn member(broker: &Broker, t: usize) -> embroker::Result<embroker::Consumer> {
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .group_id(format!("bench-{t}"))
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest),
    )?;
    c.subscribe(&[format!("t{t}").as_str()])?;
    while c.assignment().is_empty() {
        c.poll(Duration::from_millis(10))?;
    }
    Ok(c)
}

/// As `run` with durable commits, but each as `commit().await`, all `consumers` as tasks of
/// one thread (`futures::executor`): their pending commits share the syncer's fsyncs.
fn run_futures(broker: &Broker, consumers: usize, period: Duration) -> embroker::Result<f64> {
    let members = (0..consumers)
        .map(|t| member(broker, t))
        .collect::<embroker::Result<Vec<_>>>()?;
    let end = Instant::now() + period;
    let tasks = members
        .into_iter()
        .enumerate()
        .map(|(t, mut c)| async move {
            let tp = TopicPartition::new(format!("t{t}"), 0);
            let mut n = 0u64;
            while Instant::now() < end {
                c.seek(&tp, (n % 100) as i64)?;
                c.commit().await?;
                n += 1;
            }
            c.close()?;
            Ok::<u64, embroker::Error>(n)
        });
    let counts = futures::executor::block_on(futures::future::join_all(tasks));
    let mut total = 0;
    for n in counts {
        total += n?;
    }
    Ok(total as f64 / period.as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> embroker::Result<()> {
    let rounds = env_or("EMBROKER_BENCH_RUNS", 5).max(1);
    let scale = std::env::var("EMBROKER_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    let period = Duration::from_secs_f64(scale.min(60.0)).max(Duration::from_millis(20));
    // A persistent directory either way: a temporary broker fsyncs nothing (issue #20).
    #[allow(clippy::expect_used)] // a bench
    let scratch = tempfile::tempdir().expect("scratch directory");
    let broker = match std::env::var_os("EMBROKER_COMMIT_DIR") {
        Some(dir) => Broker::open(dir)?,
        None => Broker::open(scratch.path())?,
    };
    println!("data directory: {}", broker.path().display());
    let threads = [1usize, 4];
    for t in 0..*threads.iter().max().unwrap_or(&1) {
        let name = format!("t{t}");
        if broker.topic(&name).is_err() {
            broker.create_topic(&name, TopicConfig::default())?;
        }
        let p = broker.topic(&name)?.partition(0)?;
        if p.log_end_offset() < 100 {
            let batch: Vec<Record> = (0..100).map(|i| Record::new(format!("{i}"))).collect();
            p.append(&batch)?;
        }
    }
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    for &t in &threads {
        for durable in [false, true] {
            let name = format!(
                "{} x{t}",
                if durable {
                    "commit_sync (fsync)"
                } else {
                    "commit_async (page cache)"
                }
            );
            rows.push((name, Vec::new()));
        }
    }
    for &t in &threads {
        rows.push((format!("commit().await x{t} (tasks, 1 thread)"), Vec::new()));
    }
    for round in 0..rounds {
        let mut i = 0;
        for &t in &threads {
            for durable in [false, true] {
                let rate = run(&broker, t, durable, period)?;
                rows[i].1.push(rate);
                i += 1;
                println!("round {round}: {} {rate:.0}/s", rows[i - 1].0);
            }
        }
        for &t in &threads {
            let rate = run_futures(&broker, t, period)?;
            rows[i].1.push(rate);
            i += 1;
            println!("round {round}: {} {rate:.0}/s", rows[i - 1].0);
        }
    }
    println!("\nmedian of {rounds} interleaved rounds, commits/s (all threads):");
    for (name, rates) in rows {
        println!("  {name:32} {:>10.0}", median(rates));
    }
    Ok(())
}
