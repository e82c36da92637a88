//! Partition-count benchmark (issue #20): what create, open and close cost for one topic of
//! many partitions, next to the same bytes in a 1-partition topic measured in the same run.
//!
//! `cargo bench --bench partitions -- --partitions N` (or `EMBROKER_BENCH_PARTITIONS=N`;
//! default 10,000), scaled by `EMBROKER_BENCH_SCALE` (0.01 in CI: 100 partitions). The topic
//! holds 110 records of 100 B per partition (110 MB for 10,000 partitions, as the issue's
//! 1,000-partition figures held 110 MB), appended in batches of up to 100.
//! `EMBROKER_BENCH_RECOVERY_THREADS` sets `BrokerBuilder::recovery_threads` (default: the
//! broker's). Rows, each against the 1-partition topic holding the same bytes:
//!
//! - create: `create_topic` on an open broker;
//! - close after writes: `Broker::close` after appending to every partition;
//! - clean open: `Broker::open` of a directory closed cleanly;
//! - open after SIGKILL: `Broker::open` of a directory whose writer, a child process (this
//!   binary re-run), was killed with SIGKILL after its appends, before any flush: the open
//!   scans every byte. The 1-partition open is (nearly) all scanning, so the difference is
//!   what the partition count costs beyond scanning the unflushed bytes.
//!
//! Then the file descriptors (`/proc/self/fd`) of a broker holding N partitions of 10 segments
//! each, after a clean open and after reading every record (skipped when
//! `EMBROKER_BENCH_ONLY` names other rows: it is the longest setup of a run).
//!
//! Rows compared with each other take their passes in turn (`Report::measure_interleaved`).

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use embroker::{Broker, Record, TopicConfig};
use support::{scaled, Contender, Report};

const TOPIC: &str = "bench";
const RECORD_BYTES: usize = 100;
const BATCH_RECORDS: usize = 100;
/// Records per partition of the full-size workload (110 MB over 10,000 partitions).
const RECORDS_PER_PARTITION: u64 = 110;
/// Set in the child that writes and is killed: the data directory.
const CHILD_ENV: &str = "EMBROKER_BENCH_PARTITIONS_CHILD";

fn partitions_arg() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args
        .iter()
        .position(|a| a == "--partitions")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    let n = from_args
        .or_else(|| {
            std::env::var("EMBROKER_BENCH_PARTITIONS")
                .ok()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(10_000);
    scaled(n).max(2)
}

fn builder() -> embroker::BrokerBuilder {
    let mut b = Broker::builder();
    // No checkpoint during a round: the killed child must leave every byte unflushed.
    b.checkpoint_interval(Duration::from_secs(3600));
    if let Some(t) = std::env::var("EMBROKER_BENCH_RECOVERY_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        b.recovery_threads(t);
    }
    b
}

fn record(i: u64) -> Record {
    let mut v = vec![b'a' + (i % 26) as u8; RECORD_BYTES];
    v[..8].copy_from_slice(&i.to_be_bytes());
    Record::new(v).timestamp(1_700_000_000_000)
}

/// Appends `total` records spread evenly over the topic's `partitions` partitions.
fn write_all(broker: &Broker, partitions: u64, total: u64) {
    write_batches(broker, partitions, total, BATCH_RECORDS);
}

/// Appends `total` records spread evenly over the partitions, `batch` records per append.
fn write_batches(broker: &Broker, partitions: u64, total: u64, batch: usize) {
    let topic = broker.topic(TOPIC).expect("topic");
    let per = total / partitions;
    for p in 0..partitions {
        let handle = topic.partition(p as i32).expect("partition");
        let mut i = 0;
        while i < per {
            let n = (per - i).min(batch as u64);
            let records: Vec<Record> = (i..i + n).map(record).collect();
            handle.append(&records).expect("append");
            i += n;
        }
    }
}

fn create(dir: &Path, partitions: u64) -> Broker {
    let broker = builder().open(dir).expect("open");
    broker
        .create_topic(TOPIC, TopicConfig::default().partitions(partitions as i32))
        .expect("create");
    broker
}

/// The child: create, write, say DONE, then wait to be killed.
fn child(dir: &str) -> ! {
    let partitions: u64 = std::env::var("EMBROKER_BENCH_CHILD_PARTITIONS")
        .expect("partitions")
        .parse()
        .expect("number");
    let total: u64 = std::env::var("EMBROKER_BENCH_CHILD_RECORDS")
        .expect("records")
        .parse()
        .expect("number");
    let broker = create(Path::new(dir), partitions);
    write_all(&broker, partitions, total);
    let mut out = std::io::stdout().lock();
    writeln!(out, "DONE").expect("stdout");
    out.flush().expect("flush");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A directory a killed child left: `total` records in `partitions` partitions, unflushed.
fn killed_dir(partitions: u64, total: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new(std::env::current_exe().expect("bench binary"))
        .env(CHILD_ENV, dir.path())
        .env("EMBROKER_BENCH_CHILD_PARTITIONS", partitions.to_string())
        .env("EMBROKER_BENCH_CHILD_RECORDS", total.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = c.stdout.take().expect("stdout");
    let done = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "DONE");
    c.kill().expect("kill");
    c.wait().expect("wait");
    assert!(done, "the child died before writing everything");
    dir
}

/// A directory closed cleanly after `total` records were written to `partitions` partitions.
fn closed_dir(partitions: u64, total: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = create(dir.path(), partitions);
    write_all(&broker, partitions, total);
    broker.close().expect("close");
    dir
}

/// Resident memory of this process, bytes (0 where `/proc` is missing).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// File descriptors with `partitions` partitions of 10 segments each.
fn fd_count(report: &mut Report, partitions: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let segment = 1024;
    {
        let broker = builder().open(dir.path()).expect("open");
        broker
            .create_topic(
                TOPIC,
                TopicConfig::default()
                    .partitions(partitions as i32)
                    .segment_bytes(segment),
            )
            .expect("create");
        // Ten 1 KiB segments: one batch of 6 records (about 800 B) per segment.
        write_batches(&broker, partitions, partitions * 10 * 6, 6);
        broker.close().expect("close");
    }
    let before = open_fds();
    let rss_before = rss_bytes();
    let t0 = Instant::now();
    let broker = builder().open(dir.path()).expect("reopen");
    let opened = t0.elapsed();
    let after_open = open_fds() - before;
    let rss_open = rss_bytes().saturating_sub(rss_before);
    let topic = broker.topic(TOPIC).expect("topic");
    let mut records = 0u64;
    for p in 0..partitions as i32 {
        let handle = topic.partition(p).expect("partition");
        let mut at = handle.log_start_offset();
        while at < handle.log_end_offset() {
            let r = handle.read(at, 1 << 20).expect("read");
            records += r.iter().count() as u64;
            at = r.next_offset();
        }
    }
    let described: usize = broker
        .describe_topic(TOPIC)
        .expect("describe")
        .partitions
        .iter()
        .map(|p| p.segment_count)
        .sum();
    let after_read = open_fds() - before;
    report.note(
        "memory",
        &format!("{partitions} idle partitions of 10 segments"),
        format!(
            "resident memory grew {:.1} MB at open: {} bytes per idle partition",
            rss_open as f64 / 1e6,
            rss_open / partitions
        ),
    );
    report.note(
        "fds",
        &format!("{partitions} partitions, {described} segments"),
        format!(
            "{after_open} fds after a clean open ({:.0} ms), {after_read} after reading all \
             {records} records; target <= 1,100 at 10,000 partitions of 10 segments",
            opened.as_secs_f64() * 1e3
        ),
    );
}

/// The median of a row's passes.
fn median(report: &Report, group: &str, name: &str) -> Option<Duration> {
    let row = report.row(group, name)?;
    let mut t = row.rounds.clone();
    t.sort_unstable();
    t.get(t.len() / 2).copied()
}

/// A note with the N-partition row's median and best next to the 1-partition row's and the
/// target (`target` applies to `N-partition minus 1-partition` when `beyond` is set).
fn verdict(report: &mut Report, group: &str, rows: [&str; 2], target: Duration, beyond: bool) {
    let (Some(many), Some(one)) = (
        median(report, group, rows[0]),
        median(report, group, rows[1]),
    ) else {
        return;
    };
    let best = report
        .row(group, rows[0])
        .map_or(Duration::ZERO, |r| r.elapsed);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let figure = if beyond {
        many.saturating_sub(one)
    } else {
        many
    };
    let what = if beyond {
        format!(
            "median {:.1} ms - {:.1} ms scanning (the 1-partition open) = {:.1} ms beyond scanning",
            ms(many),
            ms(one),
            ms(figure)
        )
    } else {
        format!(
            "median {:.1} ms (best {:.1} ms), 1 partition {:.1} ms ({:.0}x)",
            ms(many),
            ms(best),
            ms(one),
            many.as_secs_f64() / one.as_secs_f64().max(1e-9)
        )
    };
    let partitions = partitions_arg();
    let met = match (partitions == 10_000, figure <= target) {
        (true, true) => "met".to_string(),
        (true, false) => "NOT met".to_string(),
        // A scaled-down run says nothing about the target: shown, not judged.
        (false, _) => format!("not judged, this run has {partitions} partitions"),
    };
    report.note(
        group,
        "vs target",
        format!(
            "{what}; target <= {:.0} ms at 10,000 partitions: {met}",
            ms(target)
        ),
    );
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    // `cargo test --benches` runs bench binaries without `--bench`: only run under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = partitions_arg();
    let total = n * RECORDS_PER_PARTITION;
    let bytes = total * RECORD_BYTES as u64;
    eprintln!(
        "partitions benchmark: {n} partitions vs 1, {total} records of {RECORD_BYTES} B \
         ({:.1} MB); load average {}",
        bytes as f64 / 1e6,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut report = Report::default();
    let name = |what: &str, parts: u64| format!("{what}, {parts} partition(s)");

    // create
    let mut rows = Vec::new();
    for parts in [n, 1] {
        rows.push(Contender::new(
            "create",
            &name("create_topic", parts),
            (parts == n).then(|| name("create_topic", 1)).as_deref(),
            parts,
            0,
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let broker = builder().open(dir.path()).expect("open");
                (dir, broker)
            },
            move |(dir, broker)| {
                broker
                    .create_topic(TOPIC, TopicConfig::default().partitions(parts as i32))
                    .expect("create");
                (dir, broker)
            },
        ));
    }
    report.measure_interleaved(rows);
    let create_rows = [name("create_topic", n), name("create_topic", 1)];
    verdict(
        &mut report,
        "create",
        [&create_rows[0], &create_rows[1]],
        Duration::from_secs(2),
        false,
    );

    // close after writes
    let mut rows = Vec::new();
    for parts in [n, 1] {
        rows.push(Contender::new(
            "close",
            &name("close after writes", parts),
            (parts == n)
                .then(|| name("close after writes", 1))
                .as_deref(),
            total,
            bytes,
            move || {
                let dir = tempfile::tempdir().expect("tempdir");
                let broker = create(dir.path(), parts);
                write_all(&broker, parts, total);
                (dir, broker)
            },
            |(dir, broker)| {
                broker.close().expect("close");
                dir
            },
        ));
    }
    report.measure_interleaved(rows);
    let close_rows = [name("close after writes", n), name("close after writes", 1)];
    verdict(
        &mut report,
        "close",
        [&close_rows[0], &close_rows[1]],
        Duration::from_secs(1),
        false,
    );

    // clean open
    let mut rows = Vec::new();
    for parts in [n, 1] {
        rows.push(Contender::new(
            "open",
            &name("clean open", parts),
            (parts == n).then(|| name("clean open", 1)).as_deref(),
            total,
            bytes,
            move || closed_dir(parts, total),
            |dir| {
                let broker = builder().open(dir.path()).expect("open");
                (broker, dir)
            },
        ));
    }
    report.measure_interleaved(rows);
    let open_rows = [name("clean open", n), name("clean open", 1)];
    verdict(
        &mut report,
        "open",
        [&open_rows[0], &open_rows[1]],
        Duration::from_millis(500),
        false,
    );

    // open after SIGKILL
    let mut rows = Vec::new();
    for parts in [n, 1] {
        rows.push(Contender::new(
            "kill",
            &name("open after SIGKILL", parts),
            (parts == n)
                .then(|| name("open after SIGKILL", 1))
                .as_deref(),
            total,
            bytes,
            move || killed_dir(parts, total),
            |dir| {
                let broker = builder().open(dir.path()).expect("open");
                (broker, dir)
            },
        ));
    }
    report.measure_interleaved(rows);
    let kill_rows = [name("open after SIGKILL", n), name("open after SIGKILL", 1)];
    verdict(
        &mut report,
        "kill",
        [&kill_rows[0], &kill_rows[1]],
        Duration::from_secs(2),
        true,
    );

    // Its setup (N partitions of 10 segments written and closed) is the longest part of a run.
    if support::selected("fds and memory") {
        fd_count(&mut report, n);
    }
    report.note(
        "targets",
        "at 10,000 partitions",
        "create <= 2 s; clean open <= 0.5 s; close after writes <= 1 s; open after SIGKILL \
         beyond scanning (N-partition open minus 1-partition open) <= 2 s; fds <= 1,100"
            .into(),
    );
    report.print(&format!(
        "Partitions: {n} partitions vs 1 partition holding the same {:.1} MB",
        bytes as f64 / 1e6
    ));
}
