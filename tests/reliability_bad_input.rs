//! Bad input at the API: every public entry point given hostile values.
//!
//! Topic names with path separators, NUL, `..`, 250 characters; partitions -1 and i32::MAX;
//! config values negative, huge, non-numeric, NaN, and unknown keys (topic, producer and
//! consumer configs); records over the size limit through `Partition::append` and the
//! producer; reads at negative offsets, past the end and at i64::MAX; `offset_for_timestamp(-1)`;
//! consumer seeks to negative offsets and to unassigned partitions, commits of negative
//! offsets and for topics or partitions that do not exist, an empty group id;
//! `create_partitions` to 0, -1 and i32::MAX.
//!
//! Each must give a clear error: the expected variant, with a message naming what was wrong
//! (the key, the name, the offset). Nothing may be written (the data directory listing, with
//! file lengths, is the same before and after the hostile calls), and nothing may panic.
//!
//! Why it matters: an embedded broker takes names and numbers from its application, often
//! from users; a topic name that escapes the data directory, or a config value that wraps
//! around into "retain nothing", is a data-loss bug reached through the front door.
//!
//! The checks are collected and reported together, so one run shows every mismatch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use embroker::{
    Acks, Broker, ConsumerConfig, Error, OffsetAndMetadata, ProducerConfig, ProducerRecord, Record,
    TopicConfig, TopicPartition,
};

/// Every file and directory under `dir` with its length (directories: 0), `.lock` excluded.
fn listing(dir: &Path) -> BTreeMap<String, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                out.insert(format!("{rel}/"), 0);
                walk(root, &e.path(), out);
            } else {
                out.insert(rel, meta.len());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Collects mismatches instead of stopping at the first.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
    count: usize,
}

impl Checks {
    /// `result` must be an error for which `variant` holds and whose message contains every
    /// string of `needles`. Runs under `catch_unwind`: a panic is a failure too.
    fn err<T: std::fmt::Debug>(
        &mut self,
        what: &str,
        call: impl FnOnce() -> embroker::Result<T>,
        variant: fn(&Error) -> bool,
        needles: &[&str],
    ) {
        self.count += 1;
        match catch_unwind(AssertUnwindSafe(call)) {
            Err(_) => self.failures.push(format!("{what}: panicked")),
            Ok(Ok(v)) => self
                .failures
                .push(format!("{what}: accepted (returned {v:?})")),
            Ok(Err(e)) => {
                let msg = e.to_string();
                if !variant(&e) {
                    self.failures
                        .push(format!("{what}: wrong variant {e:?} ({msg})"));
                }
                for n in needles {
                    if !msg.contains(n) {
                        self.failures
                            .push(format!("{what}: message {msg:?} does not name {n:?}"));
                    }
                }
            }
        }
    }
}

fn invalid_config(e: &Error) -> bool {
    matches!(e, Error::InvalidConfig { .. })
}
fn invalid_name(e: &Error) -> bool {
    matches!(e, Error::InvalidTopicName { .. })
}
fn invalid_argument(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument { .. })
}
fn out_of_range(e: &Error) -> bool {
    matches!(e, Error::OffsetOutOfRange { .. })
}

#[test]
fn hostile_values_are_rejected_with_clear_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .create_topic(
            "t",
            TopicConfig::default().partitions(2).max_message_bytes(1000),
        )
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    p.append(&[Record::new("a"), Record::new("b")]).unwrap();
    let mut grouped = broker
        .consumer(
            ConsumerConfig::default()
                .group_id("g")
                .enable_auto_commit(false),
        )
        .unwrap();
    grouped.assign(&[TopicPartition::new("t", 0)]).unwrap();
    // A commit creates `__consumer_offsets`: do one now so the listing below includes it.
    grouped
        .commit_offsets_sync(&BTreeMap::from([(
            TopicPartition::new("t", 0),
            OffsetAndMetadata::new(1),
        )]))
        .unwrap();
    // An idempotent producer's id is reserved in `producer-ids` when it is created: create it
    // now so the listing below includes that file.
    let producer = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    broker.flush().unwrap();
    let before = listing(dir.path());
    let mut c = Checks::default();

    // Topic names.
    let long = "x".repeat(250);
    for (name, needle) in [
        ("../escape", "only ASCII"),
        ("a/b", "only ASCII"),
        ("a\\b", "only ASCII"),
        ("nul\0", "only ASCII"),
        ("..", "'..'"),
        (".", "'.'"),
        ("", "empty"),
        (long.as_str(), "249"),
    ] {
        c.err(
            &format!("create_topic({name:?})"),
            || broker.create_topic(name, TopicConfig::default()),
            invalid_name,
            &[needle],
        );
        c.err(
            &format!("topic({name:?})"),
            || broker.topic(name).map(|_| ()),
            |e| {
                matches!(
                    e,
                    Error::InvalidTopicName { .. } | Error::UnknownTopic { .. }
                )
            },
            &[],
        );
        c.err(
            &format!("delete_topic({name:?})"),
            || broker.delete_topic(name),
            |e| {
                matches!(
                    e,
                    Error::InvalidTopicName { .. } | Error::UnknownTopic { .. }
                )
            },
            &[],
        );
    }
    c.err(
        "create_topic(\"t\") again",
        || broker.create_topic("t", TopicConfig::default()),
        |e| matches!(e, Error::TopicExists { .. }),
        &["\"t\""],
    );

    // Partition numbers.
    for n in [-1, 2, i32::MAX, i32::MIN] {
        c.err(
            &format!("partition({n})"),
            || broker.topic("t").unwrap().partition(n).map(|_| ()),
            |e| matches!(e, Error::UnknownPartition { .. }),
            &[&n.to_string()],
        );
    }

    // Topic config values, typed and as Kafka properties.
    for (key, value) in [
        ("retention.ms", "-2"),
        ("retention.ms", "abc"),
        ("retention.ms", "99999999999999999999999"),
        ("segment.bytes", "0"),
        ("segment.bytes", "-1"),
        ("segment.bytes", "4294967296"),
        ("num.partitions", "0"),
        ("num.partitions", "-1"),
        ("num.partitions", "2147483647"),
        ("max.message.bytes", "-5"),
        ("flush.messages", "0"),
        ("min.cleanable.dirty.ratio", "NaN"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.cleanable.dirty.ratio", "-0.1"),
        ("cleanup.policy", "shred"),
        ("message.timestamp.type", "Whenever"),
        ("no.such.key", "1"),
    ] {
        c.err(
            &format!("TopicConfig {key}={value}"),
            || TopicConfig::from_properties(&[(key, value)]),
            invalid_config,
            &[key],
        );
        c.err(
            &format!("alter_topic_config {key}={value}"),
            || broker.alter_topic_config("t", &[(key, value)]),
            invalid_config,
            &[key],
        );
    }
    for (what, config, key) in [
        (
            "partitions(0)",
            TopicConfig::default().partitions(0),
            "num.partitions",
        ),
        (
            "partitions(-1)",
            TopicConfig::default().partitions(-1),
            "num.partitions",
        ),
        (
            "retention_ms(-7)",
            TopicConfig::default().retention_ms(-7),
            "retention.ms",
        ),
        (
            "segment_bytes(1)",
            TopicConfig::default().segment_bytes(1),
            "segment.bytes",
        ),
        (
            "min_cleanable_dirty_ratio(NaN)",
            TopicConfig::default().min_cleanable_dirty_ratio(f64::NAN),
            "min.cleanable.dirty.ratio",
        ),
        (
            "flush_ms(-1)",
            TopicConfig::default().flush_ms(-1),
            "flush.ms",
        ),
    ] {
        c.err(
            &format!("create_topic with {what}"),
            || broker.create_topic("fresh", config.clone()),
            invalid_config,
            &[key],
        );
    }

    // Producer and consumer configs.
    for (key, value) in [
        ("acks", "2"),
        ("acks", "everyone"),
        ("linger.ms", "-1"),
        ("batch.size", "-1"),
        ("batch.size", "abc"),
        ("buffer.memory", "99999999999999999999999"),
        ("max.request.size", "-1"),
        ("no.such.key", "1"),
    ] {
        c.err(
            &format!("ProducerConfig {key}={value}"),
            || ProducerConfig::from_properties(&[(key, value)]),
            invalid_config,
            &[key],
        );
    }
    for (key, value) in [
        ("max.poll.records", "0"),
        ("max.poll.records", "-1"),
        ("session.timeout.ms", "abc"),
        ("auto.offset.reset", "sometimes"),
        ("fetch.max.bytes", "99999999999999999999"),
        ("partition.assignment.strategy", "telepathy"),
        ("group.instance.id", "has space"),
        ("no.such.key", "1"),
    ] {
        c.err(
            &format!("ConsumerConfig {key}={value}"),
            || ConsumerConfig::from_properties(&[(key, value)]),
            invalid_config,
            &[key],
        );
    }
    c.err(
        "consumer with group id \"\"",
        || {
            broker
                .consumer(ConsumerConfig::default().group_id(""))
                .map(|_| ())
        },
        |e| {
            matches!(
                e,
                Error::InvalidConfig { .. } | Error::InvalidArgument { .. }
            )
        },
        &["group"],
    );

    // Records over the size limit (max.message.bytes = 1000 on `t`).
    let big = vec![7u8; 5000];
    c.err(
        "append of a 5000-byte record",
        || p.append(&[Record::new(big.clone())]),
        |e| matches!(e, Error::RecordTooLarge { .. }),
        &["max.message.bytes", "t-0"],
    );
    c.err(
        "append of no records",
        || p.append(&[]),
        invalid_argument,
        &["records"],
    );
    c.err(
        "producer send of a 5000-byte record",
        || {
            producer
                .send(ProducerRecord::new("t", big.clone()).partition(0))
                .and_then(|f| f.wait())
        },
        |e| matches!(e, Error::RecordTooLarge { .. }),
        &["5", "max.message.bytes"],
    );
    c.err(
        "producer send of a 2 MB record (over max.request.size)",
        || {
            producer
                .send(ProducerRecord::new("t", vec![0u8; 2 << 20]))
                .and_then(|f| f.wait())
        },
        |e| matches!(e, Error::RecordTooLarge { .. }),
        &["max.request.size"],
    );
    c.err(
        "producer send to partition -1",
        || {
            producer
                .send(ProducerRecord::new("t", "v").partition(-1))
                .and_then(|f| f.wait())
        },
        |e| {
            matches!(
                e,
                Error::UnknownPartition { .. } | Error::InvalidArgument { .. }
            )
        },
        &["-1"],
    );
    c.err(
        "producer send to partition i32::MAX",
        || {
            producer
                .send(ProducerRecord::new("t", "v").partition(i32::MAX))
                .and_then(|f| f.wait())
        },
        |e| matches!(e, Error::UnknownPartition { .. }),
        &["2147483647"],
    );
    c.err(
        "producer send to topic \"../x\"",
        || {
            producer
                .send(ProducerRecord::new("../x", "v"))
                .and_then(|f| f.wait())
        },
        |e| {
            matches!(
                e,
                Error::InvalidTopicName { .. } | Error::UnknownTopic { .. }
            )
        },
        &["../x"],
    );

    // Reads.
    for at in [-1, -100, i64::MIN, 3, 1000, i64::MAX] {
        c.err(
            &format!("read({at})"),
            || p.read(at, 1 << 16).map(|r| r.len()),
            out_of_range,
            &[&at.to_string(), "t-0"],
        );
    }
    c.err(
        "offset_for_timestamp(-1)",
        || p.offset_for_timestamp(-1),
        invalid_argument,
        &["-1"],
    );
    c.err(
        "offset_for_timestamp(i64::MIN)",
        || p.offset_for_timestamp(i64::MIN),
        invalid_argument,
        &["negative"],
    );

    // Consumer: seeks, commits.
    let tp0 = TopicPartition::new("t", 0);
    let tp1 = TopicPartition::new("t", 1);
    c.err(
        "seek(t-0, -1)",
        || grouped.seek(&tp0, -1),
        invalid_argument,
        &["-1"],
    );
    c.err(
        "seek(t-0, i64::MIN)",
        || grouped.seek(&tp0, i64::MIN),
        invalid_argument,
        &["negative"],
    );
    c.err(
        "seek to unassigned t-1",
        || grouped.seek(&tp1, 0),
        |e| matches!(e, Error::IllegalState { .. }),
        &["t-1"],
    );
    c.err(
        "position of unassigned t-1",
        || grouped.position(&tp1),
        |e| matches!(e, Error::IllegalState { .. }),
        &["t-1"],
    );
    c.err(
        "commit offset -1",
        || {
            grouped
                .commit_offsets_sync(&BTreeMap::from([(tp0.clone(), OffsetAndMetadata::new(-1))]))
        },
        |e| {
            matches!(
                e,
                Error::InvalidArgument { .. } | Error::OffsetOutOfRange { .. }
            )
        },
        &["-1"],
    );
    c.err(
        "commit offset for partition -1",
        || {
            grouped.commit_offsets_sync(&BTreeMap::from([(
                TopicPartition::new("t", -1),
                OffsetAndMetadata::new(1),
            )]))
        },
        |e| {
            matches!(
                e,
                Error::UnknownPartition { .. } | Error::InvalidArgument { .. }
            )
        },
        &["-1"],
    );
    // Commits for partitions that do not exist: Kafka answers UNKNOWN_TOPIC_OR_PARTITION. A
    // commit naming one such partition writes nothing, not even its valid partitions.
    let commit_one = |grouped: &mut embroker::Consumer, tp: TopicPartition| {
        grouped.commit_offsets_sync(&BTreeMap::from([(tp, OffsetAndMetadata::new(1))]))
    };
    c.err(
        "commit for an unknown topic",
        || commit_one(&mut grouped, TopicPartition::new("nope", 0)),
        |e| matches!(e, Error::UnknownTopic { .. }),
        &["\"nope\""],
    );
    c.err(
        "commit for an illegal topic name",
        || commit_one(&mut grouped, TopicPartition::new("../x", 0)),
        |e| {
            matches!(
                e,
                Error::UnknownTopic { .. } | Error::InvalidTopicName { .. }
            )
        },
        &["../x"],
    );
    c.err(
        "commit for partition 2 of a 2-partition topic",
        || commit_one(&mut grouped, TopicPartition::new("t", 2)),
        |e| matches!(e, Error::UnknownPartition { .. }),
        &["\"t\"", "partition 2"],
    );
    c.err(
        "commit for partition i32::MAX",
        || commit_one(&mut grouped, TopicPartition::new("t", i32::MAX)),
        |e| matches!(e, Error::UnknownPartition { .. }),
        &["2147483647"],
    );
    c.err(
        "commit for a known and an unknown partition",
        || {
            grouped.commit_offsets_sync(&BTreeMap::from([
                (tp0.clone(), OffsetAndMetadata::new(2)),
                (TopicPartition::new("nope", 0), OffsetAndMetadata::new(1)),
            ]))
        },
        |e| matches!(e, Error::UnknownTopic { .. }),
        &["\"nope\""],
    );
    c.count += 1;
    match grouped.committed(&tp0) {
        Ok(Some(om)) if om.offset == 1 => {}
        other => c.failures.push(format!(
            "t-0's commit after a failed mixed commit: {other:?}, want offset 1"
        )),
    }
    let mut plain = broker.consumer(ConsumerConfig::default()).unwrap();
    c.err(
        "assign of partition i32::MAX",
        || plain.assign(&[TopicPartition::new("t", i32::MAX)]),
        |e| matches!(e, Error::UnknownPartition { .. }),
        &["2147483647"],
    );
    let mut member = broker
        .consumer(ConsumerConfig::default().group_id("g2"))
        .unwrap();
    // Kafka's `subscribe` checks only for empty names: a name no topic can have is accepted
    // and simply matches nothing. So here: accepted, polls return nothing, nothing written.
    c.count += 1;
    match member
        .subscribe(&["a/b"])
        .and_then(|()| member.poll(std::time::Duration::from_millis(50)))
    {
        Ok(records) if records.is_empty() => {}
        other => c
            .failures
            .push(format!("subscribe to \"a/b\" then poll: {other:?}")),
    }
    c.err(
        "subscribe to \"\"",
        || member.subscribe(&[""]),
        |e| {
            matches!(
                e,
                Error::InvalidTopicName { .. } | Error::InvalidArgument { .. }
            )
        },
        &["empty"],
    );
    c.err(
        "commit without a group id",
        || plain.commit_sync(),
        |e| matches!(e, Error::IllegalState { .. }),
        &["group.id"],
    );

    // create_partitions.
    for n in [0, -1, 1, 2, i32::MAX] {
        c.err(
            &format!("create_partitions(t, {n})"),
            || broker.create_partitions("t", n),
            |e| {
                matches!(
                    e,
                    Error::InvalidPartitionCount { .. } | Error::InvalidConfig { .. }
                )
            },
            &[&n.to_string()],
        );
    }
    c.err(
        "create_partitions of unknown topic",
        || broker.create_partitions("nope", 3),
        |e| matches!(e, Error::UnknownTopic { .. }),
        &["nope"],
    );

    drop(producer);
    let _ = plain.close();
    let _ = member.close();
    broker.flush().unwrap();
    let after = listing(dir.path());
    if before != after {
        c.failures.push(format!(
            "the data directory changed:\nbefore {before:#?}\nafter {after:#?}"
        ));
    }
    let _ = grouped.close();
    // Still usable afterwards.
    assert_eq!(p.append(&[Record::new("c")]).unwrap(), 2);
    broker.close().unwrap();
    eprintln!(
        "bad input: {} hostile calls, {} mismatches",
        c.count,
        c.failures.len()
    );
    assert!(
        c.failures.is_empty(),
        "{} of {} checks failed:\n{}",
        c.failures.len(),
        c.count,
        c.failures.join("\n")
    );
}
