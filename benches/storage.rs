//! Storage benchmark: appends and reads through the `Partition` handle, side by side in one run
//! with a baseline that writes (and reads back) the same payload bytes through a `BufWriter`
//! (`BufReader`) on a plain file.
//!
//! `cargo bench --bench storage`. Workloads: 1,000,000 records of 100 bytes and 100,000 of
//! 1 KiB (scaled by `EMBROKER_BENCH_SCALE`). Also: how long `Broker::temporary()` takes, and
//! how long reopening a 1 GiB log after a clean close takes.
//!
//! The rows compared with each other take their passes in turn (`Report::measure_interleaved`):
//! the appends with the `BufWriter` baseline, the reads with the `BufReader` baseline and the
//! two CRC floors, so that a slow spell of this shared machine falls on a row and its baseline
//! alike. Each row keeps its best pass.

#[path = "support/mod.rs"]
mod support;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::time::{Duration, Instant};

use embroker::codec::BatchBuilder;
use embroker::{Broker, Record, TopicConfig};
use support::{percentiles, scaled, Contender, Report};

/// Records per `append` call: what a producer batch of this size would carry.
const BATCH_RECORDS: usize = 1000;

fn payloads(n: u64, size: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut v = vec![b'a' + (i % 26) as u8; size];
            v[..8].copy_from_slice(&i.to_be_bytes());
            Record::new(v).timestamp(1_700_000_000_000)
        })
        .collect()
}

fn fresh_partition() -> (Broker, embroker::Partition) {
    // On the file system of the baseline's `tempfile` directory, not `/dev/shm` where a
    // temporary broker goes by default: the rows compare the same disk.
    let broker = Broker::builder()
        .temporary_dir_in(std::env::temp_dir())
        .open_temporary()
        .expect("broker");
    broker
        .create_topic("bench", TopicConfig::default())
        .expect("topic");
    let p = broker
        .topic("bench")
        .expect("topic")
        .partition(0)
        .expect("partition");
    (broker, p)
}

/// `records` encoded as a Kafka client sends them: batches of [`BATCH_RECORDS`], one per call.
fn client_batches(records: &[Record]) -> Vec<Vec<u8>> {
    records
        .chunks(BATCH_RECORDS)
        .map(|chunk| {
            let mut b = BatchBuilder::new();
            for r in chunk {
                b.push(
                    r.timestamp.unwrap_or(0),
                    r.key.as_deref(),
                    r.value.as_deref(),
                    &r.headers,
                )
                .expect("record fits a batch");
            }
            b.finish()
        })
        .collect()
}

fn baseline_write(dir: &std::path::Path, records: &[Record]) -> File {
    let path = dir.join("baseline.dat");
    let mut w = BufWriter::new(File::create(&path).expect("baseline file"));
    for r in records {
        w.write_all(r.value.as_deref().expect("value"))
            .expect("write");
    }
    w.into_inner().expect("flush")
}

fn workload(report: &mut Report, group: &str, n: u64, size: usize) {
    let records = payloads(n, size);
    let bytes = n * size as u64;
    let scratch = tempfile::tempdir().expect("scratch");

    // Appends.
    let append_batch_name = format!("Partition::append, {BATCH_RECORDS} records/call");
    let append_client_name = format!(
        "Partition::append_batches (a client's encoded batches, the server's Produce path), \
         {BATCH_RECORDS} records/batch"
    );
    let single = (n / 10).max(1);
    report.measure_interleaved(vec![
        Contender::new(
            group,
            "baseline: BufWriter write",
            None,
            n,
            bytes,
            || (),
            |()| baseline_write(scratch.path(), &records),
        ),
        Contender::new(
            group,
            &append_batch_name,
            Some("baseline: BufWriter write"),
            n,
            bytes,
            fresh_partition,
            |(broker, p)| {
                for chunk in records.chunks(BATCH_RECORDS) {
                    p.append(chunk).expect("append");
                }
                broker
            },
        ),
        // What the server's Produce handler does with a client's request: its batches, already
        // encoded (as a Kafka client sends them), checked and appended as they are.
        Contender::new(
            group,
            &append_client_name,
            Some("baseline: BufWriter write"),
            n,
            bytes,
            || {
                let (broker, p) = fresh_partition();
                (broker, p, client_batches(&records))
            },
            |(broker, p, batches)| {
                for batch in &batches {
                    p.append_batches(batch).expect("append_batches");
                }
                broker
            },
        ),
        Contender::new(
            group,
            "Partition::append, 1 record/call (10% sample)",
            Some("baseline: BufWriter write"),
            single,
            single * size as u64,
            fresh_partition,
            |(broker, p)| {
                for r in &records[..single as usize] {
                    p.append(std::slice::from_ref(r)).expect("append");
                }
                broker
            },
        ),
    ]);

    // Reads, of data just written (page cache, as for a consumer keeping up).
    baseline_write(scratch.path(), &records);
    let (_broker, p) = fresh_partition();
    for chunk in records.chunks(BATCH_RECORDS) {
        p.append(chunk).expect("append");
    }
    // The floor under any read that verifies checksums: a CRC over the same log bytes, with no
    // decoding and no copy. Batches carry a CRC-32C (format 2; `crc32c`); format 1 carried a
    // CRC-32 (`crc32fast`), kept as the earlier floor.
    let mut log_bytes: Vec<u8> = Vec::new();
    let mut at = 0;
    while at < p.log_end_offset() {
        let rs = p.read(at, 1 << 20).expect("read");
        for b in rs.batches() {
            log_bytes.extend_from_slice(b.bytes);
        }
        at = rs.next_offset();
    }
    let read_all = |views: bool| {
        let (mut at, mut seen, mut total) = (0i64, 0u64, 0usize);
        let end = p.log_end_offset();
        while at < end {
            let rs = p.read(at, 1 << 20).expect("read");
            if views {
                for r in rs.views() {
                    total += r.value.map_or(0, <[u8]>::len);
                    seen += 1;
                }
            } else {
                for r in &rs {
                    total += r.value.as_ref().map_or(0, |v| v.len());
                    seen += 1;
                }
            }
            at = rs.next_offset();
        }
        assert_eq!(seen, n);
        total
    };
    report.measure_interleaved(vec![
        Contender::new(
            group,
            "baseline: BufReader read",
            None,
            n,
            bytes,
            || (),
            |()| {
                let mut r = BufReader::with_capacity(
                    1 << 20,
                    File::open(scratch.path().join("baseline.dat")).expect("open"),
                );
                let mut buf = vec![0u8; 1 << 20];
                let mut total = 0usize;
                loop {
                    let got = r.read(&mut buf).expect("read");
                    if got == 0 {
                        break total;
                    }
                    total += got;
                }
            },
        ),
        Contender::new(
            group,
            "floor: crc-fast (CRC-32C, what reads check) over the log bytes",
            Some("baseline: BufReader read"),
            n,
            bytes,
            || (),
            |()| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &log_bytes),
        ),
        Contender::new(
            group,
            "floor: crc32c crate (CRC-32C) over the log bytes",
            Some("baseline: BufReader read"),
            n,
            bytes,
            || (),
            |()| crc32c::crc32c(&log_bytes),
        ),
        Contender::new(
            group,
            "floor: crc32fast (CRC-32) over the log bytes",
            Some("baseline: BufReader read"),
            n,
            bytes,
            || (),
            |()| crc32fast::hash(&log_bytes),
        ),
        Contender::new(
            group,
            "Partition::read 1 MiB + Records::views()",
            Some("baseline: BufReader read"),
            n,
            bytes,
            || (),
            |()| read_all(true),
        ),
        Contender::new(
            group,
            "Partition::read 1 MiB + iter() (owned Bytes)",
            Some("baseline: BufReader read"),
            n,
            bytes,
            || (),
            |()| read_all(false),
        ),
    ]);
}

fn open_times(report: &mut Report) {
    let mut samples = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let b = Broker::temporary().expect("temporary");
        samples.push(start.elapsed());
        drop(b);
    }
    let p = percentiles(samples, &[50.0, 99.0]);
    report.note(
        "open",
        "Broker::temporary() (200 opens)",
        format!("p50 {:?}, p99 {:?}", p[0], p[1]),
    );

    let gib = scaled(1 << 30);
    let dir = tempfile::tempdir().expect("dir");
    {
        let broker = Broker::open(dir.path()).expect("open");
        broker
            .create_topic("big", TopicConfig::default())
            .expect("topic");
        let p = broker.topic("big").expect("topic").partition(0).expect("p");
        let batch = payloads(1000, 1024);
        let mut written = 0u64;
        while written < gib {
            p.append(&batch).expect("append");
            written += 1000 * 1024;
        }
        broker.close().expect("close");
    }
    let mut samples: Vec<Duration> = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let broker = Broker::open(dir.path()).expect("reopen");
        samples.push(start.elapsed());
        broker.close().expect("close");
    }
    let p = percentiles(samples, &[50.0]);
    report.note(
        "open",
        &format!("reopen {} MiB log after clean close (5 runs)", gib >> 20),
        format!("median {:?}", p[0]),
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with no arguments other than `--bench` absent;
    // only run the workload under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut report = Report::default();
    eprintln!("storage benchmark (best of {} runs)", support::runs());
    workload(&mut report, "100 B", scaled(1_000_000), 100);
    workload(&mut report, "1 KiB", scaled(100_000), 1024);
    open_times(&mut report);
    report.print("Storage: Partition append/read vs a BufWriter/BufReader file baseline");
}
