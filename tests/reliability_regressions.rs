//! Regression tests for bugs the reliability suite found, one per bug, each saying where it
//! came from. They replay the exact damage deterministically, so they run in every build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use embroker::{Broker, ConsumerConfig, Error, Record, TopicConfig};

/// Byte positions of the batches in a `.log` file (batch length is the `i32` at byte 8).
fn batch_positions(log: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 12 <= log.len() {
        out.push(pos);
        let len = i32::from_be_bytes(log[pos + 8..pos + 12].try_into().unwrap());
        pos += 12 + len as usize;
    }
    out
}

/// Ten one-record batches at offsets 0..10 in one segment, cleanly closed (so the whole
/// segment lies below the recovery point and open reads none of it), then the bits `mask` of
/// the last byte of batch `batch`'s `base_offset` flipped.
fn ten_batches_with_flipped_base(dir: &Path, batch: usize, mask: u8) -> Broker {
    let broker = Broker::open(dir).unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..10 {
        p.append(&[Record::new(format!("v{i}"))]).unwrap();
    }
    broker.close().unwrap();
    let path = dir.join("t-0").join("00000000000000000000.log");
    let mut log = std::fs::read(&path).unwrap();
    let at = batch_positions(&log)[batch];
    log[at + 7] ^= mask;
    std::fs::write(&path, &log).unwrap();
    Broker::open(dir).unwrap()
}

/// What one read returned: (offset, value) pairs, or the error.
type ReadResult = Result<Vec<(i64, String)>, Error>;

/// Reads every offset one at a time; returns (offset asked, what the read returned).
fn read_each(broker: &Broker) -> Vec<(i64, ReadResult)> {
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    (0..p.log_end_offset())
        .map(|at| {
            let r = p.read(at, 1 << 16).map(|records| {
                records
                    .iter()
                    .map(|r| {
                        let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                        (r.offset, v)
                    })
                    .collect()
            });
            (at, r)
        })
        .collect()
}

fn check_no_wrong_offsets(broker: &Broker, damaged: usize) {
    let mut errors = 0;
    for (at, result) in read_each(broker) {
        match result {
            Ok(records) => {
                for (offset, value) in records {
                    assert_eq!(value, format!("v{offset}"), "read from {at}");
                }
            }
            Err(Error::Corrupt {
                path,
                position,
                reason,
            }) => {
                assert!(path.ends_with("t-0/00000000000000000000.log"), "{path:?}");
                assert!(reason.contains("out of order"), "{reason}");
                assert!(position > 0, "{position}");
                errors += 1;
            }
            Err(e) => panic!("read from {at}: unexpected {e}"),
        }
    }
    assert!(errors > 0, "the damaged batch {damaged} was never reported");
}

/// Found by `reliability_corruption` (a bit flip at byte 7 of a batch in a trusted segment):
/// `base_offset` is outside the batch CRC and a trusted segment is not scanned at open, so a
/// read returned the batch's record at offset 3 instead of 2 (a record "never written" at that
/// offset). Fixed in `Segment::read`: a batch is returned only if its offsets follow the
/// previous batch's and end before the next batch's and the segment's end.
#[test]
fn base_offset_flipped_up_is_reported_not_returned_at_the_wrong_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = ten_batches_with_flipped_base(dir.path(), 2, 1); // 2 -> 3
    check_no_wrong_offsets(&broker, 2);
}

/// The same damage downwards: batch 3 claims offset 2. Before the fix a read from 2 skipped
/// the damaged batch's record or returned it at offset 2.
#[test]
fn base_offset_flipped_down_is_reported_not_returned_at_the_wrong_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = ten_batches_with_flipped_base(dir.path(), 3, 1); // 3 -> 2
    check_no_wrong_offsets(&broker, 3);
}

/// The last batch of the segment flipped upwards: only the segment's end bounds it.
#[test]
fn base_offset_of_the_last_batch_flipped_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let broker = ten_batches_with_flipped_base(dir.path(), 9, 2); // 9 -> 11
    check_no_wrong_offsets(&broker, 9);
}

/// Found by `reliability_bad_input`: `subscribe(&[""])` was accepted (and joined the group
/// for a topic no name can match). Kafka's `KafkaConsumer.subscribe` rejects null or blank
/// topics with `IllegalArgumentException`; we answer `Error::InvalidArgument`.
#[test]
fn subscribe_to_an_empty_topic_name_is_rejected() {
    let broker = Broker::temporary().unwrap();
    let mut c = broker
        .consumer(ConsumerConfig::default().group_id("g"))
        .unwrap();
    for topics in [&[""][..], &["  "][..], &["ok", ""][..]] {
        let e = c.subscribe(topics).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { name: "topics", .. }),
            "{topics:?}: {e:?}"
        );
        assert!(e.to_string().contains("empty"), "{e}");
    }
    assert!(c.subscription().is_empty());
    c.close().unwrap();
}

/// A damaged `__consumer_offsets` used to fail `Broker::open` as a whole (found by
/// `reliability_corruption`). Now the broker opens, topics work, and group operations report
/// the damage, naming the file.
#[test]
fn damaged_offsets_log_takes_down_groups_only() {
    use std::collections::BTreeMap;

    use embroker::{OffsetAndMetadata, TopicPartition};

    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("data", TopicConfig::default()).unwrap();
        let p = broker.topic("data").unwrap().partition(0).unwrap();
        p.append(&[Record::new("x")]).unwrap();
        let mut c = broker
            .consumer(
                ConsumerConfig::default()
                    .group_id("g")
                    .enable_auto_commit(false),
            )
            .unwrap();
        c.assign(&[TopicPartition::new("data", 0)]).unwrap();
        for i in 0..20 {
            let offsets =
                BTreeMap::from([(TopicPartition::new("data", 0), OffsetAndMetadata::new(i))]);
            c.commit_offsets_sync(&offsets).unwrap();
        }
        c.close().unwrap();
        broker.close().unwrap();
    }
    let log = dir
        .path()
        .join("__consumer_offsets-0/00000000000000000000.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&log, &bytes).unwrap();

    let broker = Broker::open(dir.path()).expect("a damaged offsets log must not fail the open");
    let p = broker.topic("data").unwrap().partition(0).unwrap();
    assert_eq!(p.read(0, 1024).unwrap().len(), 1);
    p.append(&[Record::new("y")]).unwrap();
    let e = broker
        .consumer(ConsumerConfig::default().group_id("g"))
        .unwrap_err();
    assert!(e.to_string().contains("__consumer_offsets-0"), "{e}");
    assert!(broker.list_groups().is_err());
    // A consumer without a group needs no committed offsets.
    broker.consumer(ConsumerConfig::default()).unwrap();
}

/// Found by `reliability_bad_input`: a commit for a topic that does not exist (even one whose
/// name is illegal, `../x`) or for a partition past the topic's count was accepted and written
/// to `__consumer_offsets`, where it stayed for good. Kafka answers
/// `UNKNOWN_TOPIC_OR_PARTITION`; we fail the whole commit (also its valid partitions) and write
/// nothing, and the group's offsets after a reopen are the last good commit.
#[test]
fn commits_for_unknown_topics_or_partitions_are_rejected() {
    use std::collections::BTreeMap;

    use embroker::{OffsetAndMetadata, TopicPartition};

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let mut c = broker
        .consumer(
            ConsumerConfig::default()
                .group_id("g")
                .enable_auto_commit(false),
        )
        .unwrap();
    let t0 = TopicPartition::new("t", 0);
    c.assign(std::slice::from_ref(&t0)).unwrap();
    let commit = |c: &mut embroker::Consumer, pairs: &[(TopicPartition, i64)]| {
        let offsets = pairs
            .iter()
            .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o)))
            .collect::<BTreeMap<_, _>>();
        c.commit_offsets_sync(&offsets)
    };
    commit(&mut c, &[(t0.clone(), 1)]).unwrap();
    let offsets_log = dir
        .path()
        .join("__consumer_offsets-0/00000000000000000000.log");
    let len = std::fs::metadata(&offsets_log).unwrap().len();

    let e = commit(&mut c, &[(TopicPartition::new("nope", 0), 5)]).unwrap_err();
    assert!(
        matches!(&e, Error::UnknownTopic { topic } if topic == "nope"),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"nope\""), "{e}");
    let e = commit(&mut c, &[(TopicPartition::new("../x", 0), 5)]).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::UnknownTopic { .. } | Error::InvalidTopicName { .. }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("../x"), "{e}");
    let e = commit(&mut c, &[(TopicPartition::new("t", 2), 5)]).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::UnknownPartition { topic, partition: 2, partitions: 2 } if topic == "t"
        ),
        "{e:?}"
    );
    // One unknown partition fails the whole commit: t-0 keeps its offset.
    let e = commit(&mut c, &[(t0.clone(), 7), (TopicPartition::new("t", 9), 5)]).unwrap_err();
    assert!(matches!(e, Error::UnknownPartition { .. }), "{e:?}");
    assert_eq!(c.committed(&t0).unwrap().unwrap().offset, 1);
    assert_eq!(
        std::fs::metadata(&offsets_log).unwrap().len(),
        len,
        "a rejected commit wrote to {}",
        offsets_log.display()
    );
    // The partitions that exist still commit.
    commit(&mut c, &[(t0.clone(), 2), (TopicPartition::new("t", 1), 3)]).unwrap();
    assert!(
        std::fs::metadata(&offsets_log).unwrap().len() > len,
        "a good commit grows the log (so the length check above can see a write)"
    );
    c.close().unwrap();
    broker.close().unwrap();

    let broker = Broker::open(dir.path()).unwrap();
    let offsets = broker.describe_group("g").unwrap().offsets;
    let committed: Vec<(String, i32, i64)> = offsets
        .iter()
        .filter_map(|p| {
            let tp = &p.topic_partition;
            p.committed
                .as_ref()
                .map(|om| (tp.topic.clone(), tp.partition, om.offset))
        })
        .collect();
    assert_eq!(
        committed,
        [("t".to_string(), 0, 2), ("t".to_string(), 1, 3)]
    );
    broker.close().unwrap();
}
