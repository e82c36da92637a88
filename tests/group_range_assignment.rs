//! Kafka's range assignment through real group membership: one topic of 4 partitions, groups
//! of 2, 4 and 6 members. Member ids sort in join order (`client.id-NNNNNNNNNN`), so the
//! members, joining one after another, get exactly the ranges of Kafka's `RangeAssignor`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::settle;
use embroker::{Broker, Consumer, ConsumerConfig, TopicConfig, TopicPartition};

fn group_of(broker: &Broker, group: &str, n: usize) -> Vec<Consumer> {
    let mut consumers = Vec::new();
    for _ in 0..n {
        let mut c = broker
            .consumer(ConsumerConfig::default().group_id(group).client_id("app"))
            .unwrap();
        c.subscribe(&["orders"]).unwrap();
        // Joining happens in poll: one after the other, so ids sort in this order.
        c.poll(Duration::ZERO).unwrap();
        consumers.push(c);
    }
    settle(&mut consumers, broker, group);
    consumers
}

fn parts(ps: &[i32]) -> Vec<TopicPartition> {
    ps.iter()
        .map(|&p| TopicPartition::new("orders", p))
        .collect()
}

#[test]
fn four_partitions_range_over_2_4_and_6_members() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("orders", TopicConfig::default().partitions(4))
        .unwrap();
    let cases: [(&str, usize, Vec<Vec<i32>>); 3] = [
        ("two", 2, vec![vec![0, 1], vec![2, 3]]),
        ("four", 4, vec![vec![0], vec![1], vec![2], vec![3]]),
        (
            "six",
            6,
            vec![vec![0], vec![1], vec![2], vec![3], vec![], vec![]],
        ),
    ];
    for (group, n, expected) in cases {
        let consumers = group_of(&broker, group, n);
        let d = broker.describe_group(group).unwrap();
        assert_eq!(d.protocol.as_deref(), Some("range"));
        let ids: Vec<&str> = consumers.iter().map(|c| c.member_id().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "member ids sort in join order");
        for (c, want) in consumers.iter().zip(&expected) {
            assert_eq!(c.assignment(), parts(want), "group {group}");
        }
        for c in consumers {
            c.close().unwrap();
        }
    }
}
