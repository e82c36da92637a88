//! Producer benchmark.
//!
//! 1. Throughput at acks=1 (default linger.ms=0): 1,000,000 records of 100 bytes through one
//!    producer from one thread, against the same records appended directly with
//!    `Partition::append` in batches of 1,000 (the storage layer's own speed, no producer).
//!    Also with timestamps set by the caller: the producer otherwise reads the clock for every
//!    record (as Kafka's does), the direct path once per append.
//!    Two floor rows do only what any per-record send must (clock read, lock, encode, a future's
//!    reference, dropping the record), with no producer: the best ratio a send can reach here.
//!    Issue #20's rows: the same sends, then `flush` and the partition's fsync, against a raw
//!    `BufWriter` file of the same values with one final fsync (and the direct append, also
//!    ending with an fsync, against the same baseline).
//! 2. acks=all with 1, 4, 16 and 64 threads, each doing `send().wait()` in a loop for a fixed
//!    time: records/s, p50/p99 latency and fsyncs per record, next to this machine's fsync
//!    latency measured in the same run. Also 64 threads over 4 producers (4 senders syncing
//!    the one partition at once).
//!
//! `cargo bench --bench producer`; `EMBROKER_BENCH_SCALE=0.1` for a quick run.
#![allow(clippy::expect_used, clippy::unwrap_used)]

// The shared harness's `Report::measure` takes 8 arguments, which clippy flags; allowed here
// rather than edited in the shared file.
#[allow(clippy::too_many_arguments)]
#[path = "support/mod.rs"]
mod support;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use embroker::codec::BatchBuilder;
use embroker::{
    Acks, Broker, Bytes, Clock, ProducerConfig, ProducerRecord, Record, SystemClock, TopicConfig,
};
use support::{fsync_latency, fsync_latency_of, percentiles, scaled, Contender, Report, Row};

const VALUE_BYTES: usize = 100;
const DIRECT_BATCH: usize = 1_000;
/// Issue #20's baseline row (see `main`), with the buffer that wrote a raw file fastest here:
/// `dd ... conv=fsync` of 100 MiB took 0.27-0.38 s in 8 KiB writes, 0.16-0.19 s in 64 KiB,
/// 0.09-0.15 s in 256 KiB and 0.10-0.25 s in 1 MiB (docs/ARCHITECTURE.md, issue #20).
const RAW_DURABLE: &str = "baseline: raw BufWriter (256 KiB) file of the values, then fsync";
const RAW_BUFFER: usize = 256 << 10;
/// The same with `BufWriter::new`'s 8 KiB buffer, for reference.
const RAW_DURABLE_DEFAULT: &str = "raw BufWriter (8 KiB, std's default) file, then fsync";

fn broker() -> Broker {
    // On the file system of the baseline's `tempfile` directory, not `/dev/shm` where a
    // temporary broker goes by default: the rows compare the same disk.
    let broker = Broker::builder()
        .temporary_dir_in(std::env::temp_dir())
        .open_temporary()
        .expect("broker");
    broker
        .create_topic("bench", TopicConfig::default().partitions(1))
        .expect("topic");
    broker
}

fn main() {
    let mut report = Report::default();
    let value = Bytes::from(vec![b'x'; VALUE_BYTES]);
    let n = scaled(1_000_000);
    let bytes = n * VALUE_BYTES as u64;

    // The acks=1 rows take their passes in turn (see `Report::measure_interleaved`).
    let mut acks1 = vec![Contender::new(
        "acks=1",
        "direct Partition::append, 1,000 per batch",
        None,
        n,
        bytes,
        || {
            let broker = broker();
            let batches: Vec<Vec<Record>> = (0..n as usize)
                .collect::<Vec<_>>()
                .chunks(DIRECT_BATCH)
                .map(|c| c.iter().map(|_| Record::new(value.clone())).collect())
                .collect();
            (broker, batches)
        },
        |(broker, batches)| {
            let p = broker.topic("bench").unwrap().partition(0).unwrap();
            for batch in &batches {
                p.append(batch).expect("append");
            }
            assert_eq!(p.log_end_offset() as u64, n);
            broker
        },
    )];

    acks1.push(send_row(
        "producer send (linger.ms=0), then flush",
        &value,
        n,
        None,
    ));
    // The same with each record's timestamp set by the caller: what a send costs without its
    // clock read (35 ns on the project's VM), which the direct path makes once per 1,000.
    acks1.push(send_row(
        "producer send, timestamps set by the caller",
        &value,
        n,
        Some(1_700_000_000_000),
    ));

    // What any per-record send costs before a producer does anything of its own: the floor
    // under the two rows above.
    acks1.push(send_floor_row(
        "floor: clock, lock, encode, future, drop (no producer)",
        &value,
        n,
        None,
    ));
    acks1.push(send_floor_row(
        "floor: lock, encode, future, drop (caller's timestamps)",
        &value,
        n,
        Some(1_700_000_000_000),
    ));

    acks1.push(Contender::new(
        "acks=1",
        "producer send_with_callback (linger.ms=0), then flush",
        Some("direct Partition::append, 1,000 per batch"),
        n,
        bytes,
        || producer_and_records(&value, n, None),
        |(broker, producer, records)| {
            let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
            for r in records {
                let acked = Arc::clone(&acked);
                producer
                    .send_with_callback(r, move |m| {
                        m.expect("stored");
                        acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    })
                    .expect("send");
            }
            producer.flush().expect("flush");
            assert_eq!(acked.load(std::sync::atomic::Ordering::Relaxed), n);
            (broker, producer)
        },
    ));
    // Issue #20's comparison: the same payload written durably. The baseline is the least a
    // program that keeps these records on disk does: their 100-byte values through a
    // `BufWriter` into one file, then one fsync (`RAW_DURABLE` says why its buffer is 256 KiB).
    // The producer rows end durably too: `flush` (every record stored), then `Partition::flush`
    // (the log fsynced with its indexes and recovery point), on a broker opened on a
    // directory, so that the fsync is a real one.
    acks1.push(raw_durable_row(RAW_DURABLE, RAW_BUFFER, &value, n));
    acks1.push(raw_durable_row(RAW_DURABLE_DEFAULT, 8 << 10, &value, n));
    acks1.push(durable_send_row(
        "producer send, then flush and Partition::flush (fsync)",
        &value,
        n,
        None,
    ));
    acks1.push(Contender::new(
        "acks=1",
        "direct Partition::append, 1,000 per batch, then Partition::flush (fsync)",
        Some(RAW_DURABLE),
        n,
        bytes,
        || {
            let (dir, broker) = durable_broker();
            let batches: Vec<Vec<Record>> = (0..n as usize)
                .collect::<Vec<_>>()
                .chunks(DIRECT_BATCH)
                .map(|c| c.iter().map(|_| Record::new(value.clone())).collect())
                .collect();
            (dir, broker, batches)
        },
        |(dir, broker, batches)| {
            let p = broker.topic("bench").unwrap().partition(0).unwrap();
            for batch in &batches {
                p.append(batch).expect("append");
            }
            p.flush().expect("fsync");
            assert_eq!(p.log_end_offset() as u64, n);
            // The broker closes before its directory is removed (tuple fields drop in order).
            (broker, dir)
        },
    ));
    report.measure_interleaved(acks1);
    // The producer against the direct append, both durable: what the producer adds.
    report.compare(
        "acks=1",
        "producer send, then flush and Partition::flush (fsync)",
        "direct Partition::append, 1,000 per batch, then Partition::flush (fsync)",
    );
    report.compare(
        "acks=1",
        "producer send, then flush and Partition::flush (fsync)",
        RAW_DURABLE_DEFAULT,
    );

    // send().await next to send().wait(), interleaved: every record sent, then every future
    // waited on (blocking) or awaited (async), in order.
    let na = scaled(200_000);
    let blocking = "send all, then wait() each";
    let mut awaited = vec![Contender::new(
        "async",
        blocking,
        None,
        na,
        na * VALUE_BYTES as u64,
        || producer_and_records(&value, na, None),
        |(broker, producer, records)| {
            let futures: Vec<_> = records
                .into_iter()
                .map(|r| producer.send(r).expect("send"))
                .collect();
            for f in futures {
                f.wait().expect("stored");
            }
            (broker, producer)
        },
    )];
    awaited.push(Contender::new(
        "async",
        "send all, then .await each, futures::executor",
        Some(blocking),
        na,
        na * VALUE_BYTES as u64,
        || producer_and_records(&value, na, None),
        |(broker, producer, records)| {
            let futures: Vec<_> = records
                .into_iter()
                .map(|r| producer.send(r).expect("send"))
                .collect();
            futures::executor::block_on(async {
                for f in futures {
                    f.await.expect("stored");
                }
            });
            (broker, producer)
        },
    ));
    awaited.push(Contender::new(
        "async",
        "send all, then .await each, tokio current-thread",
        Some(blocking),
        na,
        na * VALUE_BYTES as u64,
        || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            (rt, producer_and_records(&value, na, None))
        },
        |(rt, (broker, producer, records))| {
            let futures: Vec<_> = records
                .into_iter()
                .map(|r| producer.send(r).expect("send"))
                .collect();
            rt.block_on(async {
                for f in futures {
                    f.await.expect("stored");
                }
            });
            (rt, broker, producer)
        },
    ));
    report.measure_interleaved(awaited);

    // acks=all: fixed time per thread count; latency of every send().wait(). In a persistent
    // directory: a temporary broker fsyncs nothing (issue #20).
    let data_dir = tempfile::tempdir_in(std::env::temp_dir()).expect("data dir");
    let probe_dir = tempfile::tempdir_in(std::env::temp_dir()).expect("probe dir");
    let fsync = fsync_latency(probe_dir.path(), 200);
    report.note(
        "acks=all",
        "machine fsync latency (100-byte append + fdatasync), p50",
        format!("{:.3} ms", fsync.as_secs_f64() * 1e3),
    );
    // Rounds: each a loop of `run_for`, then the raw file's fsync measured right after, so
    // that each round's ratio compares the two under the same disk weather.
    let run_for = Duration::from_secs_f64(2.0 * scaled(1_000) as f64 / 1_000.0);
    // The last row shares the threads among 4 producers: 4 senders, whose fsyncs of the
    // one log may overlap (`PartitionLog::sync_to`).
    for (i, (threads, producers)) in [(1usize, 1usize), (4, 1), (16, 1), (64, 1), (64, 4)]
        .into_iter()
        .enumerate()
    {
        let label = if producers == 1 {
            format!("{threads} thread(s)")
        } else {
            format!("{threads} threads over {producers} producers")
        };
        if !support::selected(&format!("{label}, send().wait() loop")) {
            continue;
        }
        let broker = Broker::open(data_dir.path().join(format!("wait-{i}"))).expect("broker");
        broker
            .create_topic("bench", TopicConfig::default().partitions(1))
            .expect("topic");
        let partition = broker.topic("bench").unwrap().partition(0).unwrap();
        let all_producers: Vec<_> = (0..producers)
            .map(|_| {
                broker
                    .producer(ProducerConfig::default().acks(Acks::All))
                    .expect("producer")
            })
            .collect();
        let mut all_samples = Vec::new();
        let (mut records, mut fsyncs, mut switches) = (0u64, 0u64, 0u64);
        let mut elapsed_all = Duration::ZERO;
        let mut ratios = Vec::new();
        let mut probes = Vec::new();
        for _ in 0..support::runs() {
            let fsyncs_before = partition.fsync_count();
            let bytes_before = broker.describe_topic("bench").unwrap().partitions[0].size_bytes;
            let barrier = Barrier::new(threads + 1);
            let (elapsed, samples, round_switches) = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let producer = all_producers[t % producers].clone();
                        let value = value.clone();
                        let barrier = &barrier;
                        s.spawn(move || {
                            barrier.wait();
                            let switches = context_switches();
                            let start = Instant::now();
                            let mut samples = Vec::new();
                            while start.elapsed() < run_for {
                                let t = Instant::now();
                                producer
                                    .send(ProducerRecord::new("bench", value.clone()))
                                    .expect("send")
                                    .wait()
                                    .expect("stored");
                                samples.push(t.elapsed());
                            }
                            (samples, context_switches().saturating_sub(switches))
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                let mut samples = Vec::new();
                let mut switches = 0;
                for h in handles {
                    let (s, c) = h.join().expect("thread");
                    samples.extend(s);
                    switches += c;
                }
                (start.elapsed(), samples, switches)
            });
            let round_records = samples.len() as u64;
            let round_bytes =
                broker.describe_topic("bench").unwrap().partitions[0].size_bytes - bytes_before;
            // The bound: every thread's record durable once per fsync, each fsync covering
            // `threads` records' bytes, measured now on a raw file in the same directory.
            let record_bytes = round_bytes / round_records.max(1);
            let raw = fsync_latency_of(data_dir.path(), threads as u64 * record_bytes, 100);
            let bound = threads as f64 / raw.as_secs_f64();
            ratios.push(round_records as f64 / elapsed.as_secs_f64() / bound);
            probes.push(raw);
            records += round_records;
            fsyncs += partition.fsync_count() - fsyncs_before;
            switches += round_switches;
            elapsed_all += elapsed;
            all_samples.extend(samples);
        }
        let per_fsync = records as f64 / fsyncs.max(1) as f64;
        let p = percentiles(all_samples, &[50.0, 99.0]);
        report.push(Row {
            group: "acks=all".into(),
            name: format!("{label}, send().wait() loop"),
            records,
            bytes: records * VALUE_BYTES as u64,
            elapsed: elapsed_all,
            baseline: Some("1 thread(s), send().wait() loop".into()),
            note: String::new(),
            rounds: Vec::new(),
        });
        report.note(
            "acks=all",
            &format!("{label}: latency and fsyncs"),
            format!(
                "p50 {:.3} ms, p99 {:.3} ms; {fsyncs} fsyncs for {records} records ({per_fsync:.1} records per fsync); {:.2} context switches per record in the sending threads",
                p[0].as_secs_f64() * 1e3,
                p[1].as_secs_f64() * 1e3,
                switches as f64 / records.max(1) as f64
            ),
        );
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        report.note(
            "acks=all",
            &format!("{label}: vs threads / fsync latency"),
            format!(
                "per round: median {:.2}x, best {:.2}x (rounds {:?}) of {threads} / the p50 fsync of a raw file after writing {threads} records' bytes, measured after each round ({:?} ms); target >= 0.5x",
                sorted[sorted.len() / 2],
                sorted[sorted.len() - 1],
                ratios.iter().map(|r| (r * 100.0).round() / 100.0).collect::<Vec<_>>(),
                probes.iter().map(|d| (d.as_secs_f64() * 1e6).round() / 1e3).collect::<Vec<_>>()
            ),
        );
        for producer in all_producers {
            producer.close().expect("close");
        }
    }

    concurrent_fsyncs(&mut report, data_dir.path());
    pipelined_acks_all(&mut report, &value, data_dir.path());

    report.print("Producer");
}

/// `n` copies of `value` through a `BufWriter` of `capacity` bytes into a fresh file, then one
/// fsync: the least a program keeping these records on disk does.
fn raw_durable_row<'a>(name: &str, capacity: usize, value: &'a Bytes, n: u64) -> Contender<'a> {
    Contender::new(
        "acks=1",
        name,
        (name != RAW_DURABLE).then_some(RAW_DURABLE),
        n,
        n * VALUE_BYTES as u64,
        || tempfile::tempdir().expect("scratch"),
        move |dir| {
            let path = dir.path().join("raw.dat");
            let mut w = BufWriter::with_capacity(capacity, File::create(&path).expect("raw file"));
            for _ in 0..n {
                w.write_all(value).expect("write");
            }
            let file = w.into_inner().expect("flush");
            #[allow(clippy::disallowed_methods)] // the baseline's own file, not embroker's
            file.sync_all().expect("fsync");
            dir
        },
    )
}

/// A broker opened on a fresh directory (not temporary, so its fsyncs are real whatever a
/// temporary broker skips) with the one-partition topic "bench"; the directory goes with it.
fn durable_broker() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().expect("scratch");
    let broker = Broker::open(dir.path()).expect("broker");
    broker
        .create_topic("bench", TopicConfig::default().partitions(1))
        .expect("topic");
    (dir, broker)
}

/// [`send_row`] on a [`durable_broker`], ending with the partition's fsync, against the raw
/// durable baseline.
fn durable_send_row<'a>(
    name: &str,
    value: &'a Bytes,
    n: u64,
    timestamp: Option<i64>,
) -> Contender<'a> {
    Contender::new(
        "acks=1",
        name,
        Some(RAW_DURABLE),
        n,
        n * VALUE_BYTES as u64,
        move || {
            let (dir, broker) = durable_broker();
            let producer = broker
                .producer(ProducerConfig::default())
                .expect("producer");
            (dir, broker, producer, records(value, n, timestamp))
        },
        move |(dir, broker, producer, records)| {
            for r in records {
                drop(producer.send(r).expect("send"));
            }
            producer.flush().expect("flush");
            let p = broker.topic("bench").unwrap().partition(0).unwrap();
            p.flush().expect("fsync");
            assert_eq!(p.log_end_offset() as u64, n);
            (producer, broker, dir)
        },
    )
}

/// `n` sends of `value` from one thread (each future dropped), then a flush, against the
/// direct append row; records carry `timestamp` if given.
fn send_row<'a>(name: &str, value: &'a Bytes, n: u64, timestamp: Option<i64>) -> Contender<'a> {
    Contender::new(
        "acks=1",
        name,
        Some("direct Partition::append, 1,000 per batch"),
        n,
        n * VALUE_BYTES as u64,
        move || producer_and_records(value, n, timestamp),
        move |(broker, producer, records)| {
            for r in records {
                drop(producer.send(r).expect("send"));
            }
            producer.flush().expect("flush");
            let p = broker.topic("bench").unwrap().partition(0).unwrap();
            assert_eq!(p.log_end_offset() as u64, n);
            (broker, producer)
        },
    )
}

/// The least a `send` of each record must do, as the producer does it but with no producer
/// around it: read the broker's clock for the record's timestamp (unless the caller set it),
/// lock the partition's open batch, encode the record into it, take a reference to the batch's
/// result for the record's future and drop it, and drop the caller's record. No partitioner,
/// topic lookup, size limits, buffer accounting or sender thread: full batches are dropped, not
/// written. Against the direct row, this is the best ratio any per-record send can reach.
fn send_floor_row<'a>(
    name: &str,
    value: &'a Bytes,
    n: u64,
    timestamp: Option<i64>,
) -> Contender<'a> {
    let batch_size = ProducerConfig::default().batch_size as usize;
    Contender::new(
        "acks=1",
        name,
        Some("direct Partition::append, 1,000 per batch"),
        n,
        n * VALUE_BYTES as u64,
        move || records(value, n, timestamp),
        move |records| {
            let open = parking_lot::Mutex::new(BatchBuilder::with_capacity(batch_size));
            let result = Arc::new(parking_lot::Mutex::new(None::<i64>));
            let mut encoded = 0usize;
            for r in records {
                // Called directly, as the producer calls the broker's default clock.
                let ts = r.timestamp.unwrap_or_else(|| SystemClock.now_ms());
                let future = {
                    let mut batch = open.lock();
                    batch
                        .push(ts, r.key.as_deref(), r.value.as_deref(), &r.headers)
                        .expect("fits");
                    if batch.size_bytes() >= batch_size {
                        encoded += batch.size_bytes();
                        *batch = BatchBuilder::with_capacity(batch_size);
                    }
                    Arc::clone(&result)
                };
                drop(future);
            }
            let last = open.lock().size_bytes();
            encoded + last
        },
    )
}

/// `n` records of `value` for "bench" (with `timestamp` if given).
fn records(value: &Bytes, n: u64, timestamp: Option<i64>) -> Vec<ProducerRecord> {
    (0..n)
        .map(|_| {
            let r = ProducerRecord::new("bench", value.clone());
            match timestamp {
                Some(ts) => r.timestamp(ts),
                None => r,
            }
        })
        .collect()
}

/// A fresh broker, a default producer on it, and `n` records of `value` for "bench" (with
/// `timestamp` if given).
fn producer_and_records(
    value: &Bytes,
    n: u64,
    timestamp: Option<i64>,
) -> (Broker, embroker::Producer, Vec<ProducerRecord>) {
    let broker = broker();
    let producer = broker
        .producer(ProducerConfig::default())
        .expect("producer");
    (broker, producer, records(value, n, timestamp))
}

/// This thread's context switches so far, voluntary and not (Linux's
/// `/proc/thread-self/status`; 0 elsewhere).
fn context_switches() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// acks=all from one thread as Kafka clients send: `send_with_callback` for every record (many
/// in flight), then `flush`; against a raw file written with the same bytes and fsynced
/// (`fdatasync`) after as many records as the producer's fsyncs covered on average in that
/// round (a `BufWriter`, flushed and fsynced per group). Rounds interleaved; the per-round
/// ratio is the raw file's time over the producer's.
fn pipelined_acks_all(report: &mut Report, value: &Bytes, dir: &std::path::Path) {
    const NAME: &str = "1 thread, send_with_callback pipelined, then flush";
    if !support::selected(NAME) {
        return;
    }
    let n = scaled(200_000);
    let mut producer_times = Vec::new();
    let mut acks1_times = Vec::new();
    let mut raw_times = Vec::new();
    let mut per_fsync_all = Vec::new();
    for round in 0..support::warmup() + support::runs() {
        // The same sends at acks=1 (no fsync): what the fsyncs add to the producer's own cost.
        let acks1 = {
            let broker_dir = dir.join(format!("pipelined-acks1-{round}"));
            let broker = Broker::open(&broker_dir).expect("broker");
            broker
                .create_topic("bench", TopicConfig::default().partitions(1))
                .expect("topic");
            let producer = broker
                .producer(ProducerConfig::default().acks(Acks::Leader))
                .expect("producer");
            let records: Vec<ProducerRecord> = (0..n)
                .map(|_| ProducerRecord::new("bench", value.clone()))
                .collect();
            let start = Instant::now();
            for r in records {
                producer
                    .send_with_callback(r, move |m| {
                        m.expect("stored");
                    })
                    .expect("send");
            }
            producer.flush().expect("flush");
            let elapsed = start.elapsed();
            producer.close().expect("close");
            drop(broker);
            let _ = std::fs::remove_dir_all(&broker_dir);
            elapsed
        };
        let broker_dir = dir.join(format!("pipelined-{round}"));
        let broker = Broker::open(&broker_dir).expect("broker");
        broker
            .create_topic("bench", TopicConfig::default().partitions(1))
            .expect("topic");
        let partition = broker.topic("bench").unwrap().partition(0).unwrap();
        let producer = broker
            .producer(ProducerConfig::default().acks(Acks::All))
            .expect("producer");
        let records: Vec<ProducerRecord> = (0..n)
            .map(|_| ProducerRecord::new("bench", value.clone()))
            .collect();
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let fsyncs_before = partition.fsync_count();
        let start = Instant::now();
        for r in records {
            let acked = Arc::clone(&acked);
            producer
                .send_with_callback(r, move |m| {
                    m.expect("stored");
                    acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .expect("send");
        }
        producer.flush().expect("flush");
        let elapsed = start.elapsed();
        assert_eq!(acked.load(std::sync::atomic::Ordering::Relaxed), n);
        let fsyncs = (partition.fsync_count() - fsyncs_before).max(1);
        let log_bytes = broker.describe_topic("bench").unwrap().partitions[0].size_bytes;
        producer.close().expect("close");
        drop(broker);
        let _ = std::fs::remove_dir_all(&broker_dir);
        // The raw file: the same bytes, fsynced after the same number of records.
        let per_fsync = (n / fsyncs).max(1);
        let record_bytes = (log_bytes / n).max(1) as usize;
        let raw = raw_grouped_fsyncs(dir, n, per_fsync, record_bytes);
        if round >= support::warmup() {
            producer_times.push(elapsed);
            acks1_times.push(acks1);
            raw_times.push(raw);
            per_fsync_all.push(n as f64 / fsyncs as f64);
        }
    }
    // Each round's acks=all time over the same round's acks=1 time: what waiting for the
    // fsyncs adds to the same sends, paired so that the machine's load between rounds cancels.
    let mut paired: Vec<f64> = producer_times
        .iter()
        .zip(&acks1_times)
        .map(|(all, one)| all.as_secs_f64() / one.as_secs_f64().max(1e-9))
        .collect();
    paired.sort_by(f64::total_cmp);
    let best = producer_times
        .iter()
        .min()
        .copied()
        .unwrap_or(Duration::MAX);
    let raw_best = raw_times.iter().min().copied().unwrap_or(Duration::MAX);
    report.push(Row {
        group: "acks=all".into(),
        name: "raw file, same bytes, fdatasync per group of records".into(),
        records: n,
        bytes: n * VALUE_BYTES as u64,
        elapsed: raw_best,
        baseline: None,
        note: String::new(),
        rounds: raw_times,
    });
    report.push(Row {
        group: "acks=all".into(),
        name: NAME.into(),
        records: n,
        bytes: n * VALUE_BYTES as u64,
        elapsed: best,
        baseline: Some("raw file, same bytes, fdatasync per group of records".into()),
        note: String::new(),
        rounds: producer_times,
    });
    report.push(Row {
        group: "acks=all".into(),
        name: "the same sends at acks=1 (no fsync), then flush".into(),
        records: n,
        bytes: n * VALUE_BYTES as u64,
        elapsed: acks1_times.iter().min().copied().unwrap_or(Duration::MAX),
        baseline: Some("raw file, same bytes, fdatasync per group of records".into()),
        note: String::new(),
        rounds: acks1_times,
    });
    report.note(
        "acks=all",
        "pipelined: acks=all time over acks=1 time, same round",
        format!(
            "median {:.2}x (rounds: {:?})",
            paired[paired.len() / 2],
            paired
                .iter()
                .map(|r| (r * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        ),
    );
    per_fsync_all.sort_by(f64::total_cmp);
    report.note(
        "acks=all",
        "pipelined: records per fsync (the raw file's group)",
        format!(
            "median {:.0} (rounds: {:?}); target >= 0.8x of the raw file",
            per_fsync_all[per_fsync_all.len() / 2],
            per_fsync_all
                .iter()
                .map(|r| r.round() as u64)
                .collect::<Vec<_>>()
        ),
    );
}

/// Whether fsyncs of one file overlap on this file system: `fdatasync`s per second of a raw
/// file from 1 thread and from 4 at once, each thread appending 100 bytes (under a lock, as
/// a log appends) and then fsyncing, for a fixed time. If 4 threads get about 4 times the
/// fsyncs of one, a second fsync issued while one runs completes beside it rather than after
/// it: what overlapping `acks=all` fsyncs could gain (docs/ARCHITECTURE.md, issue #20).
#[allow(clippy::disallowed_methods)] // raw fsyncs are the measure
fn concurrent_fsyncs(report: &mut Report, dir: &std::path::Path) {
    const NAME: &str = "raw file: fdatasyncs/s from 1 and 4 threads at once (64 thread rows)";
    if !support::selected(NAME) {
        return;
    }
    use std::io::Write;
    let run_for = Duration::from_secs_f64(0.5 * scaled(1_000) as f64 / 1_000.0);
    let mut notes = Vec::new();
    for threads in [1usize, 4, 1, 4] {
        let path = dir.join("raw-concurrent-fsyncs");
        let file = std::sync::Mutex::new(File::create(&path).expect("file"));
        let count = std::sync::atomic::AtomicU64::new(0);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let record = [b'x'; VALUE_BYTES];
                    while start.elapsed() < run_for {
                        let f = {
                            let mut f = file.lock().unwrap();
                            f.write_all(&record).unwrap();
                            f.try_clone().unwrap()
                        };
                        f.sync_data().unwrap();
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        let per_sec = count.into_inner() as f64 / start.elapsed().as_secs_f64();
        notes.push(format!("{threads} thread(s) {per_sec:.0}/s"));
        let _ = std::fs::remove_file(&path);
    }
    report.note("acks=all", NAME, notes.join(", "));
}

/// Writes `n` records of `record_bytes` to a fresh file through a `BufWriter`, flushing and
/// fsyncing (`fdatasync`) after every `per_fsync` records and at the end.
#[allow(clippy::disallowed_methods)] // a raw fsync is the baseline
fn raw_grouped_fsyncs(
    dir: &std::path::Path,
    n: u64,
    per_fsync: u64,
    record_bytes: usize,
) -> Duration {
    use std::io::Write;
    let path = dir.join("raw-grouped");
    let record = vec![b'x'; record_bytes];
    let start = Instant::now();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    for i in 1..=n {
        w.write_all(&record).unwrap();
        if i % per_fsync == 0 || i == n {
            w.flush().unwrap();
            w.get_ref().sync_data().unwrap();
        }
    }
    let elapsed = start.elapsed();
    drop(w);
    let _ = std::fs::remove_file(&path);
    elapsed
}
