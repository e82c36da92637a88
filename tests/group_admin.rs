//! Group administration on the broker: list, describe with lag, delete, reset offsets; both
//! refused while the group has members.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use embroker::{
    Broker, ConsumerConfig, Error, GroupState, OffsetAndMetadata, OffsetReset, OffsetSpec, Record,
    TopicConfig, TopicPartition,
};

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn setup() -> Broker {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    for p in 0..2 {
        let part = broker.topic("t").unwrap().partition(p).unwrap();
        for i in 0..10 {
            part.append(&[Record::new("x").timestamp(1_000 * (i + 1))])
                .unwrap();
        }
    }
    broker
}

fn config(group: &str) -> ConsumerConfig {
    ConsumerConfig::default()
        .group_id(group)
        .client_id("svc")
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .max_poll_records(3)
}

#[test]
fn list_and_describe_with_lag() {
    let broker = setup();
    assert!(broker.list_groups().unwrap().is_empty());
    assert!(matches!(
        broker.describe_group("g"),
        Err(Error::UnknownGroup { .. })
    ));
    let mut c = broker.consumer(config("g")).unwrap();
    c.subscribe(&["t"]).unwrap();
    let r = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(r.count(), 3);
    c.commit_sync().unwrap();
    let listing = broker.list_groups().unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].group_id, "g");
    assert_eq!(listing[0].state, GroupState::Stable);
    let d = broker.describe_group("g").unwrap();
    assert_eq!(d.generation, 1);
    assert_eq!(d.protocol.as_deref(), Some("range"));
    assert_eq!(d.members.len(), 1);
    assert!(d.members[0].member_id.starts_with("svc-"));
    assert_eq!(d.members[0].assignment, [tp(0), tp(1)]);
    let lags: Vec<(i32, Option<i64>, i64, Option<i64>)> = d
        .offsets
        .iter()
        .map(|o| {
            (
                o.topic_partition.partition,
                o.committed.as_ref().map(|c| c.offset),
                o.end_offset,
                o.lag,
            )
        })
        .collect();
    // One poll returned 3 records from partition 0; partition 1's position was resolved
    // (to 0) and committed too.
    assert_eq!(
        lags,
        [(0, Some(3), 10, Some(7)), (1, Some(0), 10, Some(10))]
    );
    c.close().unwrap();
    assert_eq!(broker.describe_group("g").unwrap().state, GroupState::Empty);
}

#[test]
fn delete_and_reset_need_an_empty_group() {
    let broker = setup();
    let mut c = broker.consumer(config("g")).unwrap();
    c.subscribe(&["t"]).unwrap();
    c.poll(Duration::from_secs(1)).unwrap();
    c.commit_sync().unwrap();
    assert!(matches!(
        broker.delete_group("g"),
        Err(Error::GroupNotEmpty { members: 1, .. })
    ));
    assert!(matches!(
        broker.reset_group_offsets("g", &[], OffsetSpec::Earliest),
        Err(Error::GroupNotEmpty { .. })
    ));
    c.close().unwrap();
    let all = [tp(0), tp(1)];
    let r = broker
        .reset_group_offsets("g", &all, OffsetSpec::Latest)
        .unwrap();
    assert_eq!(r, BTreeMap::from([(tp(0), 10), (tp(1), 10)]));
    let r = broker
        .reset_group_offsets("g", &all, OffsetSpec::Timestamp(4_500))
        .unwrap();
    assert_eq!(r[&tp(0)], 4);
    let r = broker
        .reset_group_offsets("g", &all, OffsetSpec::Timestamp(99_000))
        .unwrap();
    assert_eq!(r[&tp(0)], 10);
    let r = broker
        .reset_group_offsets("g", &[tp(1)], OffsetSpec::Offset(7))
        .unwrap();
    assert_eq!(r[&tp(1)], 7);
    let r = broker
        .reset_group_offsets("g", &[tp(1)], OffsetSpec::Offset(500))
        .unwrap();
    assert_eq!(r[&tp(1)], 10, "clamped to the log end");
    // Empty list: every partition the group has committed.
    let r = broker
        .reset_group_offsets("g", &[], OffsetSpec::Earliest)
        .unwrap();
    assert_eq!(r, BTreeMap::from([(tp(0), 0), (tp(1), 0)]));
    // A restarted member starts at the reset offsets.
    let mut c = broker.consumer(config("g")).unwrap();
    c.assign(&[tp(1)]).unwrap();
    assert_eq!(c.position(&tp(1)).unwrap(), 0);
    assert_eq!(
        c.committed(&tp(1)).unwrap(),
        Some(OffsetAndMetadata::new(0))
    );
    drop(c);
    broker.delete_group("g").unwrap();
    assert!(broker.list_groups().unwrap().is_empty());
    assert!(matches!(
        broker.delete_group("g"),
        Err(Error::UnknownGroup { .. })
    ));
}
