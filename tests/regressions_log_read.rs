//! Regressions for issue #15's log-read defects, through the public API.
//!
//! - Defect 1: a consumer trailing a busy appender must never be handed a record at or past
//!   the published log end (the segment's size was published before the log end, so a poll
//!   under CPU contention returned the batch at the log end, and the next fetch was out of
//!   range). Spinning threads and threads waking every 20 µs (which preempt at arbitrary
//!   instants) compete with an appender per partition, one consumer and one raw reader; 3 s
//!   in CI, 30 s with `EMBROKER_LONG=1`. Before the fix it failed in 4 of 5 runs; the
//!   deterministic check is `log::partition_log::tests`.

// Setup helpers panic on failure: in a test that is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig, TopicPartition};

fn long_mode() -> bool {
    std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1")
}

/// Sets a flag on drop, so helper threads stop even when an assertion fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Partitions, each with its own appender: more appenders, more chances that one is preempted
/// between publishing a segment's size and the log end.
const PARTITIONS: i32 = 3;

#[test]
fn defect1_consumer_trailing_a_busy_appender_never_reads_past_the_log_end() {
    let run_for = Duration::from_secs(if long_mode() { 30 } else { 3 });
    let broker = Broker::temporary().unwrap();
    // Small segments, so rolls (a new segment published before its first batch) happen too.
    broker
        .create_topic(
            "t",
            TopicConfig::default()
                .partitions(PARTITIONS)
                .segment_bytes(256 * 1024),
        )
        .unwrap();
    let parts: Vec<_> = (0..PARTITIONS)
        .map(|i| broker.topic("t").unwrap().partition(i).unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_guard = StopOnDrop(stop.clone());
    let mut spinners = Vec::new();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    for _ in 0..2 * cores {
        let stop = stop.clone();
        spinners.push(std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_add(1));
                std::hint::spin_loop();
            }
        }));
    }
    // Threads that wake every few microseconds preempt whatever runs at arbitrary instants
    // (a woken thread that slept preempts a spinning one), far more often than the scheduler
    // tick: that is what lands an appender between its two stores.
    for _ in 0..2 * cores {
        let stop = stop.clone();
        spinners.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_micros(20));
            }
        }));
    }
    let appenders: Vec<_> = parts
        .iter()
        .map(|p| {
            let stop = stop.clone();
            let p = p.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    p.append(&[Record::new(format!("v{n}"))]).expect("append");
                    n += 1;
                }
                n
            })
        })
        .collect();
    // A raw reader of `Partition::read`: what it returns stays below the log end loaded after.
    let reader = {
        let stop = stop.clone();
        let p = parts[0].clone();
        std::thread::spawn(move || -> Result<u64, String> {
            let mut at = 0i64;
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let records = p.read(at, 4096).map_err(|e| format!("read at {at}: {e}"))?;
                let end = p.log_end_offset();
                if let Some(r) = records.iter().find(|r| r.offset >= end) {
                    return Err(format!(
                        "read at {at} returned offset {} >= log end {end}",
                        r.offset
                    ));
                }
                if records.next_offset() > end {
                    return Err(format!(
                        "read at {at} moved to {} past log end {end}",
                        records.next_offset()
                    ));
                }
                at = records.next_offset();
                reads += 1;
            }
            Ok(reads)
        })
    };
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|i| TopicPartition::new("t", i))
        .collect();
    let mut consumer = broker
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::None)
                .max_poll_records(50),
        )
        .unwrap();
    consumer.assign(&tps).unwrap();
    for tp in &tps {
        consumer.seek(tp, 0).unwrap();
    }
    let mut expected = vec![0i64; tps.len()];
    let mut polls = 0u64;
    let started = Instant::now();
    while started.elapsed() < run_for && !reader.is_finished() {
        let records = match consumer.poll(Duration::from_millis(5)) {
            Ok(r) => r,
            Err(e) => panic!(
                "poll {polls} after {:?} at positions {expected:?} failed: {e}",
                started.elapsed()
            ),
        };
        for (i, tp) in tps.iter().enumerate() {
            let end = parts[i].log_end_offset();
            for r in records.records(tp) {
                assert!(
                    r.offset < end,
                    "poll {polls} after {:?} returned {tp:?} offset {} at or past the log end {end} it could observe",
                    started.elapsed(),
                    r.offset
                );
                assert_eq!(
                    r.offset, expected[i],
                    "poll {polls}: offsets not contiguous"
                );
                expected[i] += 1;
            }
        }
        polls += 1;
    }
    stop.store(true, Ordering::Release);
    let appended: Vec<u64> = appenders.into_iter().map(|t| t.join().unwrap()).collect();
    let reads = reader
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("raw reader: {e}"));
    let spun = spinners.len();
    for t in spinners {
        t.join().unwrap();
    }
    println!(
        "appends {appended:?}, {polls} polls up to offsets {expected:?}, {reads} raw reads, {spun} competing threads"
    );
    assert!(
        expected.iter().all(|&e| e > 0),
        "the consumer read nothing in {run_for:?}"
    );
}

/// Writes `n` numbered records to a fresh topic `t` (one partition) in `dir`, and closes.
fn topic_with_records(dir: &std::path::Path, n: usize) {
    let broker = Broker::open(dir).unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    p.append(&common::numbered(0, n)).unwrap();
    broker.close().unwrap();
}

/// Defect 5: a crafted segment named for offset i64::MAX was accepted; the next append
/// overflowed the offset, and the next open cut the acknowledged records. Now the partition
/// stays offline with an error naming the file, and the rest of the broker works.
#[test]
fn defect5_segment_named_past_the_last_appendable_offset_is_an_error_naming_it() {
    for name in [
        "09223372036854775807.log",
        "99999999999999999999.log",
        "9223372036854775806.log",
        "0000000000000000000x.log",
        "-0000000000000000001.log",
        "00000000000000000001.x.log",
        "+0000000000000000001.index",
    ] {
        let dir = tempfile::tempdir().unwrap();
        topic_with_records(dir.path(), 3);
        let crafted = dir.path().join("t-0").join(name);
        std::fs::write(&crafted, b"").unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("other", TopicConfig::default())
            .unwrap();
        let other = broker.topic("other").unwrap().partition(0).unwrap();
        assert_eq!(other.append(&common::numbered(0, 1)).unwrap(), 0, "{name}");
        let err = match broker.topic("t").unwrap().partition(0) {
            Ok(p) => panic!(
                "{name}: partition opened (log end {}) instead of an error naming the file",
                p.log_end_offset()
            ),
            Err(e) => e,
        };
        assert!(
            matches!(err, embroker::Error::Corrupt { .. }) && err.to_string().contains(name),
            "{name}: {err}"
        );
        broker.close().unwrap();
        // Removing the crafted file brings every acknowledged record back.
        std::fs::remove_file(&crafted).unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        assert_eq!(
            common::values(&common::read_all(&p, 0)),
            ["v0", "v1", "v2"],
            "{name}"
        );
    }
}

/// Defect 5, the other half: a segment at the largest base that still leaves an offset opens;
/// an append that would pass i64::MAX is an error naming the partition, and nothing
/// acknowledged is lost at the next open.
#[test]
fn defect5_append_that_would_pass_the_largest_offset_is_refused_and_nothing_acked_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    topic_with_records(dir.path(), 3);
    let last_base = i64::MAX - 1;
    std::fs::write(
        dir.path().join("t-0").join(format!("{last_base:020}.log")),
        b"",
    )
    .unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), last_base);
    assert_eq!(p.append(&common::numbered(3, 1)).unwrap(), last_base);
    assert_eq!(p.log_end_offset(), i64::MAX);
    for n in [1, 2] {
        let err = p.append(&common::numbered(4, n)).unwrap_err();
        assert!(
            matches!(err, embroker::Error::InvalidRecord { .. })
                && err.to_string().contains("t-0")
                && err.to_string().contains(&i64::MAX.to_string()),
            "{err}"
        );
    }
    assert_eq!(p.log_end_offset(), i64::MAX);
    broker.close().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), i64::MAX);
    assert_eq!(
        common::values(&common::read_all(&p, 0)),
        ["v0", "v1", "v2", "v3"]
    );
    assert!(p.append(&common::numbered(5, 1)).is_err());
}

fn is_timestamp_argument(e: &embroker::Error) -> bool {
    matches!(
        e,
        embroker::Error::InvalidArgument {
            name: "timestamp",
            ..
        }
    )
}

/// Defect 7, at the API: a negative timestamp (i64::MIN was the log's own "no timestamp")
/// is refused naming the value and the partition, by `Partition::append` and `Producer::send`;
/// a batch mixing i64::MIN and i64::MAX is that error, not `RecordTooLarge`. `None` and the
/// whole non-negative range are accepted.
#[test]
fn defect7_negative_timestamps_are_refused_at_the_api_naming_the_value() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let mixed = [
        Record::new("a").timestamp(i64::MAX),
        Record::new("b").timestamp(i64::MIN),
    ];
    let e = p.append(&mixed).unwrap_err();
    assert!(
        is_timestamp_argument(&e) && e.to_string().contains(&i64::MIN.to_string()),
        "{e}"
    );
    for ts in [i64::MIN, -2, -1] {
        let e = p.append(&[Record::new("v").timestamp(ts)]).unwrap_err();
        assert!(
            is_timestamp_argument(&e)
                && e.to_string().contains(&ts.to_string())
                && e.to_string().contains("t-0"),
            "{ts}: {e}"
        );
    }
    assert_eq!(p.log_end_offset(), 0, "a refused append wrote nothing");
    let extremes = [
        Record::new("a").timestamp(0),
        Record::new("b").timestamp(i64::MAX),
        Record::new("c"),
    ];
    assert_eq!(p.append(&extremes).unwrap(), 0);
    let stamps: Vec<i64> = common::read_all(&p, 0)
        .iter()
        .map(|r| r.timestamp)
        .collect();
    assert_eq!(&stamps[..2], [0, i64::MAX]);
    assert!(stamps[2] > 0);

    let producer = broker
        .producer(embroker::ProducerConfig::default())
        .unwrap();
    let e = producer
        .send(embroker::ProducerRecord::new("t", "v").timestamp(i64::MIN))
        .unwrap_err();
    assert!(
        is_timestamp_argument(&e)
            && e.to_string().contains(&i64::MIN.to_string())
            && e.to_string().contains("\"t\""),
        "{e}"
    );
}

/// Defect 7, on disk: a segment whose stored timestamps are no time at all (i64::MIN, written
/// by an older version or damage) pinned time-based retention for the whole partition. Now
/// such a segment ages by its file's last-modified time (Kafka's fallback), and the expired
/// segments before and after it go.
#[test]
fn defect7_garbage_timestamps_on_disk_do_not_stop_time_retention() {
    let dir = tempfile::tempdir().unwrap();
    let day = 24 * 3600 * 1000;
    let start = 1_000 * day;
    let clock = embroker::ManualClock::new(start);
    {
        let broker = Broker::builder()
            .clock(clock.clone())
            .open(dir.path())
            .unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        broker.close().unwrap();
    }
    // Segment 0: one ordinary batch. Segment 1: a batch stamped i64::MIN. Segment 2: ordinary.
    let part = dir.path().join("t-0");
    std::fs::remove_file(part.join(format!("{:020}.log", 0))).ok();
    for (at, ts) in (0i64..).zip([start, i64::MIN, start]) {
        let mut b = embroker::codec::BatchBuilder::new();
        b.push(ts, None, Some(format!("v{at}").as_bytes()), &[])
            .unwrap();
        let mut batch = b.finish();
        embroker::codec::set_base_offset(&mut batch, at);
        let path = part.join(format!("{at:020}.log"));
        std::fs::write(&path, &batch).unwrap();
        // Written long ago, as far as the file system knows.
        let old = std::time::UNIX_EPOCH + Duration::from_millis((start - 10 * day) as u64);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let broker = Broker::builder()
        .clock(clock.clone())
        .open(dir.path())
        .unwrap();
    broker
        .alter_topic_config("t", &[("retention.ms", day.to_string())])
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), 3);
    assert_eq!(
        broker.describe_topic("t").unwrap().partitions[0].segment_count,
        3
    );
    clock.advance_ms(2 * day);
    let deleted = broker.enforce_retention().unwrap();
    assert_eq!(
        deleted, 3,
        "expired segments deleted (a segment stamped i64::MIN among them)"
    );
    assert_eq!(p.log_start_offset(), 3);
    assert_eq!(p.log_end_offset(), 3);
    // The log goes on.
    assert_eq!(p.append(&[Record::new("next")]).unwrap(), 3);
}

/// Partitions the address-space test opens and reads.
const AS_PARTITIONS: i32 = 200;
/// The address-space limit the child runs under (the issue's `ulimit -v 4G`).
const AS_LIMIT_BYTES: u64 = 4 << 30;
const AS_CHILD_ENV: &str = "EMBROKER_AS_CHILD";

/// The child of the address-space test: under `RLIMIT_AS` = 4 GiB, create 200 partitions with
/// the default 64 MiB segments, append to each and read each back. Each read active segment
/// used to map a whole `segment.bytes`, so reads failed after ~59 partitions.
fn address_space_child(dir: &str) {
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::AS, AS_LIMIT_BYTES, AS_LIMIT_BYTES) {
        println!("SKIP setrlimit(RLIMIT_AS): {e}");
        return;
    }
    let broker = Broker::open(dir).expect("open");
    broker
        .create_topic("t", TopicConfig::default().partitions(AS_PARTITIONS))
        .expect("create");
    let topic = broker.topic("t").expect("topic");
    let parts: Vec<_> = (0..AS_PARTITIONS)
        .map(|i| topic.partition(i).expect("partition"))
        .collect();
    for (i, p) in parts.iter().enumerate() {
        p.append(&common::numbered(i, 3)).expect("append");
        let records = p
            .read(0, 1 << 20)
            .unwrap_or_else(|e| panic!("read of partition {i} of {AS_PARTITIONS}: {e}"));
        assert_eq!(records.iter().count(), 3, "partition {i}");
    }
    // Reading again while the active segments grow.
    for round in 0..3 {
        for (i, p) in parts.iter().enumerate() {
            p.append(&common::numbered(round, 100)).expect("append");
            let at = p.log_end_offset() - 1;
            let records = p
                .read(at, 1 << 20)
                .unwrap_or_else(|e| panic!("read {round} of partition {i}: {e}"));
            assert_eq!(records.iter().count(), 1, "partition {i}");
        }
    }
    println!("OK {AS_PARTITIONS} partitions read under RLIMIT_AS={AS_LIMIT_BYTES}");
}

/// Address space: reading 200 partitions with default 64 MiB segments works under a 4 GiB
/// address-space limit (in a child process, which sets the limit on itself).
#[test]
fn address_space_reads_of_many_partitions_fit_under_rlimit_as() {
    let name = "address_space_reads_of_many_partitions_fit_under_rlimit_as";
    if let Ok(dir) = std::env::var(AS_CHILD_ENV) {
        address_space_child(&dir);
        return;
    }
    // tmpfs when there is one: 200 partition directories are fsynced at creation.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(AS_CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(line) = stdout.lines().find(|l| l.starts_with("SKIP")) {
        println!("skipped: {line}");
        return;
    }
    assert!(
        out.status.success() && stdout.contains("OK "),
        "child under RLIMIT_AS failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    if let Some(line) = stdout.lines().find(|l| l.starts_with("OK ")) {
        println!("child: {line}");
    }
}
