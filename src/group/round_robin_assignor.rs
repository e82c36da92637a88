//! Kafka's `RoundRobinAssignor`: all partitions dealt out to all members in turn.
//!
//! Members are put in Kafka's member order (static members first by `group.instance.id`, then
//! by member id) on one circular list. Partitions are dealt topic by topic, topics sorted by
//! name and partitions ascending; for each partition the cursor skips members not subscribed
//! to its topic, gives the partition to the member it stops at, and steps past it. The cursor
//! is not reset between topics. With identical subscriptions counts differ by at most one;
//! with differing ones the result can be badly skewed (the sticky assignor fixes that).

use std::collections::BTreeMap;

use crate::group::assignor::{empty_assignment, members_in_kafka_order};
use crate::group::{Assignment, Assignor, RebalanceProtocol, Subscription};
use crate::types::TopicPartition;

/// Kafka's round robin assignor (`"roundrobin"`, eager).
///
/// The example from Kafka's Javadoc: two members, two topics of three partitions each.
///
/// ```
/// use std::collections::BTreeMap;
/// use embroker::{Assignor, RoundRobinAssignor, Subscription, TopicPartition};
///
/// let topics = BTreeMap::from([("t0".to_string(), 3), ("t1".to_string(), 3)]);
/// let members = BTreeMap::from([
///     ("C0".to_string(), Subscription::new(["t0", "t1"])),
///     ("C1".to_string(), Subscription::new(["t0", "t1"])),
/// ]);
/// let a = RoundRobinAssignor.assign(&topics, &members);
/// let tp = TopicPartition::new;
/// assert_eq!(a["C0"], [tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
/// assert_eq!(a["C1"], [tp("t0", 1), tp("t1", 0), tp("t1", 2)]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &str {
        "roundrobin"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Assignment {
        let mut assignment = empty_assignment(subscriptions);
        let members = members_in_kafka_order(subscriptions);
        let mut cursor = 0;
        for (topic, &count) in partitions_per_topic {
            let subscribed = |m: &str| subscriptions[m].subscribes_to(topic);
            // Without a subscriber the skip loop below would never stop.
            if count <= 0 || !members.iter().any(|m| subscribed(m)) {
                continue;
            }
            for partition in 0..count {
                while !subscribed(members[cursor]) {
                    cursor = (cursor + 1) % members.len();
                }
                if let Some(list) = assignment.get_mut(members[cursor]) {
                    list.push(TopicPartition::new(topic.as_str(), partition));
                }
                cursor = (cursor + 1) % members.len();
            }
        }
        assignment
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::testkit::*;
    use proptest::prelude::*;

    fn assign(topics: &[(&str, i32)], members: &[(&str, Subscription)]) -> Assignment {
        RoundRobinAssignor.assign(&topic_map(topics), &member_map(members))
    }

    #[test]
    fn javadoc_example_mixed_subscriptions() {
        // C0: t0; C1: t0, t1; C2: t0, t1, t2; with 1, 2 and 3 partitions.
        let a = assign(
            &[("t0", 1), ("t1", 2), ("t2", 3)],
            &[
                ("C0", Subscription::new(["t0"])),
                ("C1", Subscription::new(["t0", "t1"])),
                ("C2", Subscription::new(["t0", "t1", "t2"])),
            ],
        );
        assert_eq!(a["C0"], [tp("t0", 0)]);
        assert_eq!(a["C1"], [tp("t1", 0)]);
        assert_eq!(
            a["C2"],
            [tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]
        );
    }

    #[test]
    fn sticky_javadoc_example_one_round_robin_part() {
        // Three members, four topics of two partitions (StickyAssignor's Javadoc), then C1 leaves.
        let all = ["t0", "t1", "t2", "t3"];
        let topics = [("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)];
        let a = assign(&topics, &same_subscription(&["C0", "C1", "C2"], &all));
        assert_eq!(a["C0"], [tp("t0", 0), tp("t1", 1), tp("t3", 0)]);
        assert_eq!(a["C1"], [tp("t0", 1), tp("t2", 0), tp("t3", 1)]);
        assert_eq!(a["C2"], [tp("t1", 0), tp("t2", 1)]);
        let a = assign(&topics, &same_subscription(&["C0", "C2"], &all));
        assert_eq!(
            a["C0"],
            [tp("t0", 0), tp("t1", 0), tp("t2", 0), tp("t3", 0)]
        );
        assert_eq!(
            a["C2"],
            [tp("t0", 1), tp("t1", 1), tp("t2", 1), tp("t3", 1)]
        );
    }

    // Ported from Kafka's RoundRobinAssignorTest (no-rack variants).

    #[test]
    fn one_consumer_no_topic() {
        let a = assign(
            &[],
            &[("consumer", Subscription::new(Vec::<String>::new()))],
        );
        assert!(a["consumer"].is_empty());
    }

    #[test]
    fn one_consumer_nonexistent_topic() {
        let a = assign(
            &[("topic", 0)],
            &[("consumer", Subscription::new(["topic"]))],
        );
        assert!(a["consumer"].is_empty());
    }

    #[test]
    fn only_assigns_partitions_from_subscribed_topics() {
        let a = assign(
            &[("topic", 3), ("other", 3)],
            &[("consumer", Subscription::new(["topic"]))],
        );
        assert_eq!(a["consumer"], tps("topic", &[0, 1, 2]));
    }

    #[test]
    fn two_consumers_one_topic_two_partitions() {
        let a = assign(
            &[("topic", 2)],
            &same_subscription(&["consumer1", "consumer2"], &["topic"]),
        );
        assert_eq!(a["consumer1"], tps("topic", &[0]));
        assert_eq!(a["consumer2"], tps("topic", &[1]));
    }

    #[test]
    fn multiple_consumers_mixed_topics() {
        let a = assign(
            &[("topic1", 3), ("topic2", 2)],
            &[
                ("consumer1", Subscription::new(["topic1"])),
                ("consumer2", Subscription::new(["topic1", "topic2"])),
                ("consumer3", Subscription::new(["topic1"])),
            ],
        );
        assert_eq!(a["consumer1"], tps("topic1", &[0]));
        assert_eq!(
            a["consumer2"],
            [tp("topic1", 1), tp("topic2", 0), tp("topic2", 1)]
        );
        assert_eq!(a["consumer3"], tps("topic1", &[2]));
    }

    #[test]
    fn two_dynamic_consumers_two_topics_six_partitions() {
        let a = assign(
            &[("topic1", 3), ("topic2", 3)],
            &same_subscription(&["consumer1", "consumer2"], &["topic1", "topic2"]),
        );
        assert_eq!(
            a["consumer1"],
            [tp("topic1", 0), tp("topic1", 2), tp("topic2", 1)]
        );
        assert_eq!(
            a["consumer2"],
            [tp("topic1", 1), tp("topic2", 0), tp("topic2", 2)]
        );
    }

    #[test]
    fn static_consumers_ordered_by_instance_id() {
        let both = ["topic1", "topic2"];
        let a = assign(
            &[("topic1", 3), ("topic2", 3)],
            &[
                (
                    "consumer-b",
                    Subscription::new(both).group_instance_id("instance1"),
                ),
                (
                    "consumer-a",
                    Subscription::new(both).group_instance_id("instance2"),
                ),
            ],
        );
        assert_eq!(
            a["consumer-b"],
            [tp("topic1", 0), tp("topic1", 2), tp("topic2", 1)]
        );
        assert_eq!(
            a["consumer-a"],
            [tp("topic1", 1), tp("topic2", 0), tp("topic2", 2)]
        );
    }

    #[test]
    fn static_member_assignment_persists_when_dynamic_member_is_replaced() {
        let both = ["topic1", "topic2"];
        let mut members: Vec<(&str, Subscription)> = [
            ("consumer1", "instance1"),
            ("consumer2", "instance2"),
            ("consumer3", "instance3"),
        ]
        .into_iter()
        .map(|(m, i)| (m, Subscription::new(both).group_instance_id(i)))
        .collect();
        members.push(("consumer4", Subscription::new(both)));
        let topics = [("topic1", 5), ("topic2", 5)];
        let first = assign(&topics, &members);
        members.pop();
        members.push(("consumer5", Subscription::new(both)));
        let second = assign(&topics, &members);
        for member in ["consumer1", "consumer2", "consumer3"] {
            assert_eq!(second[member], first[member]);
        }
        assert_eq!(second["consumer5"], first["consumer4"]);
    }

    proptest! {
        #[test]
        fn prop_valid((topics, members) in arb_group(false)) {
            let a = RoundRobinAssignor.assign(&topics, &members);
            assert_complete_and_valid(&topics, &members, &a);
        }

        #[test]
        fn prop_equal_subscriptions_balanced((topics, members) in arb_group(true)) {
            let a = RoundRobinAssignor.assign(&topics, &members);
            assert_complete_and_valid(&topics, &members, &a);
            assert_balanced_overall(&a);
        }
    }
}
