//! Compaction benchmark: how fast the log cleaner cleans a log (MB of log per second), side by
//! side in one run with reading the same log through the storage layer (`Partition::read` and
//! iterating every record), which is the floor a pass that reads everything twice works from.
//!
//! `cargo bench --bench compaction`. Workloads (scaled by `EMBROKER_BENCH_SCALE`):
//! 1,000,000 records of 100 bytes over 10,000 keys (99% removed), and 100,000 records of
//! 1 KiB over 50,000 keys (half removed). Segments are 8 MiB so a pass merges and swaps many.

#[path = "support/mod.rs"]
mod support;

use embroker::{Broker, CleanupPolicy, Partition, Record, TopicConfig};
use support::{scaled, Report};

/// Bytes of records per `append`: about 100 KB, 1,000 records of 100 B.
const BATCH_BYTES: u64 = 100_000;

fn filled(n: u64, size: usize, keys: u64) -> (Broker, Partition, u64) {
    let broker = Broker::builder()
        .log_cleaner(false)
        .open_temporary()
        .expect("broker");
    let config = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        // Scaled with the workload, so a smoke run at 1% still has sealed segments to clean.
        .segment_bytes((scaled(8 << 20) as u32).max(16 * 1024));
    broker.create_topic("bench", config).expect("topic");
    let p = broker
        .topic("bench")
        .expect("topic")
        .partition(0)
        .expect("partition");
    let per_batch = (BATCH_BYTES / size as u64).max(1);
    let mut i = 0u64;
    while i < n {
        let batch: Vec<Record> = (i..(i + per_batch).min(n))
            .map(|j| {
                let mut v = vec![b'a' + (j % 26) as u8; size];
                v[..8].copy_from_slice(&j.to_be_bytes());
                // Spread updates over the keys the way a hash of a busy key space would.
                let key = j.wrapping_mul(0x9E37_79B9_7F4A_7C15) % keys;
                Record::new(v).key(format!("key-{key:08}"))
            })
            .collect();
        p.append(&batch).expect("append");
        i += per_batch;
    }
    broker.flush().expect("flush");
    let bytes = broker.describe_topic("bench").expect("describe").partitions[0].size_bytes;
    (broker, p, bytes)
}

fn workload(report: &mut Report, group: &str, n: u64, size: usize, keys: u64) {
    let (_broker, p, log_bytes) = filled(n, size, keys);
    report.measure(
        group,
        "read the log (Partition::read + iter)",
        None,
        n,
        log_bytes,
        || (),
        |()| {
            let (mut at, mut seen) = (0i64, 0u64);
            while at < p.log_end_offset() {
                let rs = p.read(at, 1 << 20).expect("read");
                for r in &rs {
                    seen += r.value.as_ref().map_or(0, |v| v.len()) as u64;
                }
                at = rs.next_offset();
            }
            seen
        },
    );
    let mut removed = 0;
    report.measure(
        group,
        "clean the log (Broker::run_log_cleaner)",
        Some("read the log (Partition::read + iter)"),
        n,
        log_bytes,
        || filled(n, size, keys),
        |(broker, _p, _bytes)| {
            let r = broker.run_log_cleaner().expect("clean");
            assert_eq!(r.partitions_cleaned, 1);
            removed = r.records_removed;
            r
        },
    );
    report.note(
        group,
        "log size / records removed by the pass",
        format!("{:.1} MB / {removed} of {n}", log_bytes as f64 / 1e6),
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut report = Report::default();
    eprintln!("compaction benchmark (best of {} runs)", support::runs());
    workload(&mut report, "100 B", scaled(1_000_000), 100, scaled(10_000));
    workload(&mut report, "1 KiB", scaled(100_000), 1024, scaled(50_000));
    report.print("Compaction: cleaning throughput next to reading the same log");
}
