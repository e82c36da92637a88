//! Power loss: everything that was not fsynced is lost, and the rest may be garbage.
//!
//! A SIGKILL keeps the OS page cache, so it cannot show a missing fsync. This test simulates
//! losing the page cache instead, using the durability contract rather than an fsync log
//! (the library exposes none): a child process appends with `acks=all` (half the runs through
//! the producer, `send(..)?.wait()`, half through `Partition::append` then `Partition::flush`)
//! and, after each acknowledgement, prints the name and length of every file in the partition
//! directories, then the acknowledged record. Everything the child reported at its last
//! acknowledgement is durable by contract; nothing else is.
//!
//! After a SIGKILL the parent builds the worst disk image that contract allows: every file is
//! damaged beyond its last reported length (at random: truncated to that length, the rest
//! zero-filled, the rest random bytes, or a torn write keeping a random prefix of the extra
//! bytes), and every file that did not exist at the last acknowledgement is removed (its
//! creation was not made durable). Index files are also removed now and then: their creation
//! is not followed by a directory fsync (FORMAT.md §11), so a power loss may drop them.
//! Then `Broker::open` must succeed and every acknowledged record must be at its offset with
//! its content. The runs share one directory, so each recovery is also built upon.
//!
//! Why it matters: this is the promise `acks=all` makes. A missing fsync of a rolled segment or
//! of the directory, or a recovery case that trusts bytes it should not, loses acknowledged
//! records only on a real power loss, which no ordinary test sees.
//!
//! The `recovery-point` file is replaced atomically, so the child also reports its content and
//! the parent restores that content: a flush between the last report and the kill may have
//! rewritten it to cover bytes fsynced after the report, which the parent then damages. The
//! restored image is the disk as a power loss right at the last acknowledgement leaves it.
//! (Found while writing the test: without the restore, open rightly fails with "log ends at
//! byte N but its recovery point says M bytes were flushed".) The child also has the
//! background checkpoint disabled (a 1-hour interval) so the image changes only by its own
//! operations.
//!
//! CI: 40 runs (about 2 s in debug); `EMBROKER_LONG=1`: 400. The seed is printed; `EMBROKER_SEED=<n>` replays a
//! parent's damage choices (the child's timing is not reproducible).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{seed, XorShift};

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use embroker::{Acks, Broker, ProducerConfig, ProducerRecord, Record, TopicConfig};

const CHILD_DIR: &str = "EMBROKER_POWER_LOSS_CHILD";
const CHILD_RUN: &str = "EMBROKER_POWER_LOSS_RUN";
const TEST_NAME: &str = "power_loss_keeps_every_acknowledged_record";
const TOPIC: &str = "power";
const PARTITIONS: i32 = 2;

fn long() -> bool {
    std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1")
}

fn value(run: u64, seq: u64, pad: u64) -> String {
    format!("run{run}-seq{seq}-{}", "p".repeat(pad as usize))
}

/// Prints "F <partition> <file> <len>" for every file of every partition directory.
fn print_image(out: &mut impl Write, dir: &Path) {
    for p in 0..PARTITIONS {
        let pdir = dir.join(format!("{TOPIC}-{p}"));
        let Ok(entries) = std::fs::read_dir(&pdir) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            // A file removed between the listing and the stat (a stray .tmp) is skipped.
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_file() {
                let name = e.file_name().to_string_lossy().into_owned();
                writeln!(out, "F {p} {name} {}", meta.len()).unwrap();
                if name == "recovery-point" {
                    // Replaced atomically, so its content (not only its length) is part of
                    // the image: a later flush may rewrite it before the next report.
                    let bytes = std::fs::read(e.path()).unwrap_or_default();
                    writeln!(out, "R {p} {}", hex(&bytes)).unwrap();
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The child: appends one record at a time with acks=all, and after each acknowledgement
/// prints the file image then "ACK <partition> <offset> <seq> <pad>".
fn child(dir: &str, run: u64) -> ! {
    let broker = Broker::builder()
        .checkpoint_interval(Duration::from_secs(3600))
        .open(dir)
        .expect("child open");
    if broker.topic(TOPIC).is_err() {
        broker
            .create_topic(
                TOPIC,
                TopicConfig::default()
                    .partitions(PARTITIONS)
                    .segment_bytes(4 * 1024)
                    .index_interval_bytes(256),
            )
            .expect("create");
    }
    let producer = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .expect("producer");
    let use_producer = run.is_multiple_of(2);
    let mut rng = XorShift(seed() ^ (run << 32) | 1);
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    let dir = Path::new(dir);
    for seq in 0..1_000_000u64 {
        let partition = rng.below(PARTITIONS as u64) as i32;
        let pad = rng.below(400);
        let v = value(run, seq, pad);
        let offset = if use_producer {
            producer
                .send(
                    ProducerRecord::new(TOPIC, v)
                        .partition(partition)
                        .key(format!("k{seq}")),
                )
                .expect("send")
                .wait()
                .expect("acks=all")
                .offset
        } else {
            let p = broker.topic(TOPIC).unwrap().partition(partition).unwrap();
            let offset = p
                .append(&[Record::new(v).key(format!("k{seq}"))])
                .expect("append");
            p.flush().expect("flush");
            offset
        };
        print_image(&mut out, dir);
        writeln!(out, "ACK {partition} {offset} {seq} {pad} .").unwrap();
        out.flush().unwrap();
    }
    std::process::exit(0);
}

/// What the parent does to the bytes past a file's durable length.
fn damage_file(path: &Path, durable: u64, rng: &mut XorShift, log: &mut Vec<String>) {
    let mut bytes = std::fs::read(path).unwrap();
    let len = bytes.len() as u64;
    if len <= durable {
        return;
    }
    let extra = (len - durable) as usize;
    let d = durable as usize;
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    match rng.below(4) {
        0 => {
            bytes.truncate(d);
            log.push(format!("{name}: {len} -> truncated to {durable}"));
        }
        1 => {
            bytes[d..].fill(0);
            log.push(format!("{name}: {len}, zeroed from {durable}"));
        }
        2 => {
            for b in &mut bytes[d..] {
                *b = rng.next() as u8;
            }
            log.push(format!("{name}: {len}, random bytes from {durable}"));
        }
        _ => {
            let keep = rng.below(extra as u64) as usize;
            bytes.truncate(d + keep);
            log.push(format!(
                "{name}: {len} -> torn at {} (kept {keep} of {extra} extra bytes)",
                d + keep
            ));
        }
    }
    std::fs::write(path, &bytes).unwrap();
}

/// Applies the power loss to the directory: `image` is (partition, file) -> durable length.
fn power_loss(dir: &Path, image: &Image, rng: &mut XorShift) -> Vec<String> {
    let mut log = Vec::new();
    for p in 0..PARTITIONS {
        let pdir = dir.join(format!("{TOPIC}-{p}"));
        let Ok(entries) = std::fs::read_dir(&pdir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let path = pdir.join(&name);
            match image.get(&(p, name.clone())) {
                None => {
                    log.push(format!("{TOPIC}-{p}/{name}: not durable, removed"));
                    std::fs::remove_file(&path).unwrap();
                }
                Some(_)
                    if (name.ends_with(".index") || name.ends_with(".timeindex"))
                        && rng.below(8) == 0 =>
                {
                    log.push(format!("{TOPIC}-{p}/{name}: index entry lost, removed"));
                    std::fs::remove_file(&path).unwrap();
                }
                Some((_, Some(content))) => {
                    if std::fs::read(&path).unwrap() != *content {
                        log.push(format!(
                            "{TOPIC}-{p}/{name}: rewritten after the last report, restored"
                        ));
                        std::fs::write(&path, content).unwrap();
                    }
                }
                Some(&(durable, None)) => {
                    let mut l = Vec::new();
                    damage_file(&path, durable, rng, &mut l);
                    log.extend(l.into_iter().map(|s| format!("{TOPIC}-{p}/{s}")));
                }
            }
        }
    }
    log
}

/// (partition, file) -> (durable length, content for files replaced atomically).
type Image = HashMap<(i32, String), (u64, Option<Vec<u8>>)>;

/// The image of every file of the partition directories.
fn durable_listing(dir: &Path) -> Image {
    let mut image = HashMap::new();
    for p in 0..PARTITIONS {
        let Ok(entries) = std::fs::read_dir(dir.join(format!("{TOPIC}-{p}"))) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let content = (name == "recovery-point").then(|| std::fs::read(e.path()).unwrap());
            let len = e
                .metadata()
                .unwrap_or_else(|err| panic!("{TOPIC}-{p}/{name} after close: {err}"))
                .len();
            image.insert((p, name), (len, content));
        }
    }
    image
}

fn listing(dir: &Path) -> String {
    let mut s = String::new();
    for p in 0..PARTITIONS {
        let pdir = dir.join(format!("{TOPIC}-{p}"));
        let Ok(entries) = std::fs::read_dir(&pdir) else {
            continue;
        };
        let mut v: Vec<(String, u64)> = entries
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        for (n, l) in v {
            s.push_str(&format!("  {TOPIC}-{p}/{n} {l}\n"));
        }
    }
    s
}

#[test]
fn power_loss_keeps_every_acknowledged_record() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let run = std::env::var(CHILD_RUN)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        child(&dir, run);
    }
    let seed = seed();
    eprintln!("power loss: seed {seed} (EMBROKER_SEED={seed} replays the damage choices)");
    common::with_seed(seed, || power_loss_runs(seed));
}

/// The parent of `power_loss_keeps_every_acknowledged_record`.
fn power_loss_runs(seed: u64) {
    let runs: u64 = if long() { 400 } else { 40 };
    let mut rng = XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let mut damaged_files = 0usize;
    let started = Instant::now();
    for run in 0..runs {
        // The parent closed the broker cleanly before this run, so all of it is durable. (Taken
        // before the child starts: the child writes as soon as it runs.)
        let mut image = durable_listing(dir.path());
        let context = format!("seed {seed} run {run}");
        let (mut child, mut lines) =
            common::spawn_ready_child(TEST_NAME, dir.path(), &context, |c| {
                c.env(CHILD_DIR, dir.path())
                    .env(CHILD_RUN, run.to_string())
                    // The child's choices follow the seed too (its timing does not).
                    .env("EMBROKER_SEED", seed.to_string());
            });
        let kill_at = Instant::now() + Duration::from_millis(1 + rng.below(60));
        let mut pending = Image::new();
        let mut new_acks = Vec::new();
        let mut handle = |line: &str| {
            if let Some(f) = line.strip_prefix("F ") {
                let parts: Vec<&str> = f.split(' ').collect();
                if parts.len() == 3 {
                    pending.insert(
                        (parts[0].parse().unwrap(), parts[1].to_string()),
                        (parts[2].parse().unwrap(), None),
                    );
                }
            } else if let Some(r) = line.strip_prefix("R ") {
                if let Some((p, h)) = r.split_once(' ') {
                    let key = (p.parse().unwrap(), "recovery-point".to_string());
                    if let Some(entry) = pending.get_mut(&key) {
                        entry.1 = Some(unhex(h));
                    }
                }
            } else if let Some(a) = line.strip_prefix("ACK ") {
                // The trailing "." proves the line is whole.
                let f: Vec<u64> = a
                    .strip_suffix(" .")
                    .map(|a| a.split(' ').map(|x| x.parse().unwrap()).collect())
                    .unwrap_or_default();
                if f.len() == 4 {
                    image = std::mem::take(&mut pending);
                    new_acks.push((f[0] as i32, f[1] as i64, value(run, f[2], f[3])));
                }
            }
        };
        while Instant::now() < kill_at {
            match lines.next() {
                Some(Ok(line)) => handle(&line),
                _ => break,
            }
        }
        child.kill().unwrap();
        // A partial last line (cut by the kill) fails to parse and is ignored.
        for line in lines.map_while(Result::ok) {
            handle(&line);
        }
        child.wait().unwrap();
        for (p, o, v) in new_acks {
            acked.insert((p, o), v);
        }
        let before = listing(dir.path());
        let log = power_loss(dir.path(), &image, &mut rng);
        damaged_files += log.len();
        let describe = || {
            format!(
                "seed {seed} run {run}\ndirectory at the kill:\n{before}damage:\n  {}\ndirectory after damage:\n{}",
                log.join("\n  "),
                listing(dir.path())
            )
        };
        let broker =
            Broker::open(dir.path()).unwrap_or_else(|e| panic!("open failed: {e}\n{}", describe()));
        let topic = broker
            .topic(TOPIC)
            .unwrap_or_else(|e| panic!("topic missing: {e}\n{}", describe()));
        for p in 0..PARTITIONS {
            let part = topic
                .partition(p)
                .unwrap_or_else(|e| panic!("partition {p} offline: {e}\n{}", describe()));
            let mut seen: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
            let mut at = part.log_start_offset();
            while at < part.log_end_offset() {
                let records = part
                    .read(at, 1 << 16)
                    .unwrap_or_else(|e| panic!("read {p}@{at}: {e}\n{}", describe()));
                if records.is_empty() {
                    break;
                }
                for r in records.iter() {
                    seen.insert(r.offset, r.value.as_deref().unwrap_or(b"").to_vec());
                }
                at = records.next_offset();
            }
            for ((_, offset), want) in acked.range((p, 0)..=(p, i64::MAX)) {
                let got = seen.get(offset).unwrap_or_else(|| {
                    panic!(
                        "acknowledged record {TOPIC}-{p}@{offset} lost (log {}..{})\n{}",
                        part.log_start_offset(),
                        part.log_end_offset(),
                        describe()
                    )
                });
                assert_eq!(
                    got.as_slice(),
                    want.as_bytes(),
                    "{TOPIC}-{p}@{offset} content\n{}",
                    describe()
                );
            }
        }
        broker.close().unwrap();
    }
    eprintln!(
        "power loss: {runs} runs (kills), {} acknowledged records checked, {damaged_files} files damaged or removed, 0 lost, {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(!acked.is_empty(), "the child never acknowledged anything");
}
