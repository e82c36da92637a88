//! Kafka's `RangeAssignor`: each topic is split on its own into contiguous ranges.
//!
//! For every topic with partitions, the members subscribed to it are put in Kafka's member
//! order (static members first by `group.instance.id`, then by member id). With `P` partitions
//! and `C` such members, `q = P / C` and `r = P % C`: member `i` gets the `q + (i < r)`
//! partitions starting at `q * i + min(i, r)`. Members past the first `P` get nothing for that
//! topic. Because the split restarts per topic, the first members get the extra partition of
//! every topic (the imbalance Kafka documents); within one topic counts differ by at most one.
//!
//! Kafka 3.5+ adds a rack-aware pass (KIP-881) that keeps these quotas; with no racks, which
//! is always the case in-process, the result is exactly the arithmetic above.

use std::collections::BTreeMap;

use crate::group::assignor::{empty_assignment, members_in_kafka_order};
use crate::group::{Assignment, Assignor, RebalanceProtocol, Subscription};
use crate::types::TopicPartition;

/// Kafka's range assignor (`"range"`, eager): per topic, contiguous ranges of partitions.
///
/// The example from Kafka's Javadoc: two members, two topics of three partitions each.
///
/// ```
/// use std::collections::BTreeMap;
/// use embroker::{Assignor, RangeAssignor, Subscription, TopicPartition};
///
/// let topics = BTreeMap::from([("t0".to_string(), 3), ("t1".to_string(), 3)]);
/// let members = BTreeMap::from([
///     ("C0".to_string(), Subscription::new(["t0", "t1"])),
///     ("C1".to_string(), Subscription::new(["t0", "t1"])),
/// ]);
/// let a = RangeAssignor.assign(&topics, &members);
/// let tp = TopicPartition::new;
/// assert_eq!(a["C0"], [tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]);
/// assert_eq!(a["C1"], [tp("t0", 2), tp("t1", 2)]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &str {
        "range"
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
        for (topic, &count) in partitions_per_topic {
            let subscribers: Vec<&str> = members
                .iter()
                .copied()
                .filter(|member| subscriptions[*member].subscribes_to(topic))
                .collect();
            assign_topic(topic, count, &subscribers, &mut assignment);
        }
        assignment
    }
}

/// Splits one topic's partitions into ranges over `members`, already in Kafka order.
fn assign_topic(topic: &str, count: i32, members: &[&str], assignment: &mut Assignment) {
    let Ok(member_count) = i32::try_from(members.len()) else {
        return;
    };
    if count <= 0 || member_count == 0 {
        return;
    }
    let quotient = count / member_count;
    let remainder = count % member_count;
    for (index, member) in (0..member_count).zip(members) {
        let start = quotient * index + index.min(remainder);
        let length = quotient + i32::from(index < remainder);
        let partitions = (start..start + length).map(|p| TopicPartition::new(topic, p));
        if let Some(list) = assignment.get_mut(*member) {
            list.extend(partitions);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::testkit::*;
    use proptest::prelude::*;

    fn assign(topics: &[(&str, i32)], members: &[(&str, Subscription)]) -> Assignment {
        RangeAssignor.assign(&topic_map(topics), &member_map(members))
    }

    // Kafka's Javadoc table and the 4-partition groups of 2, 4 and 6 members.

    #[test]
    fn ten_partitions_three_members() {
        let a = assign(
            &[("t", 10)],
            &same_subscription(&["C0", "C1", "C2"], &["t"]),
        );
        assert_eq!(a["C0"], tps("t", &[0, 1, 2, 3]));
        assert_eq!(a["C1"], tps("t", &[4, 5, 6]));
        assert_eq!(a["C2"], tps("t", &[7, 8, 9]));
    }

    #[test]
    fn three_partitions_five_members_leaves_two_idle() {
        let members = ["C0", "C1", "C2", "C3", "C4"];
        let a = assign(&[("t", 3)], &same_subscription(&members, &["t"]));
        assert_eq!(a["C0"], tps("t", &[0]));
        assert_eq!(a["C1"], tps("t", &[1]));
        assert_eq!(a["C2"], tps("t", &[2]));
        assert!(a["C3"].is_empty());
        assert!(a["C4"].is_empty());
    }

    #[test]
    fn javadoc_two_topics_give_first_member_the_extra_of_each() {
        let a = assign(
            &[("t0", 3), ("t1", 3)],
            &same_subscription(&["C0", "C1"], &["t0", "t1"]),
        );
        assert_eq!(
            a["C0"],
            [tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]
        );
        assert_eq!(a["C1"], [tp("t0", 2), tp("t1", 2)]);
    }

    #[test]
    fn four_partitions_two_members() {
        let a = assign(&[("t", 4)], &same_subscription(&["C0", "C1"], &["t"]));
        assert_eq!(a["C0"], tps("t", &[0, 1]));
        assert_eq!(a["C1"], tps("t", &[2, 3]));
    }

    #[test]
    fn four_partitions_four_members() {
        let members = ["C0", "C1", "C2", "C3"];
        let a = assign(&[("t", 4)], &same_subscription(&members, &["t"]));
        for (i, member) in (0..).zip(members) {
            assert_eq!(a[member], tps("t", &[i]));
        }
    }

    #[test]
    fn four_partitions_six_members() {
        let members = ["C0", "C1", "C2", "C3", "C4", "C5"];
        let a = assign(&[("t", 4)], &same_subscription(&members, &["t"]));
        for (i, member) in (0..4).zip(members) {
            assert_eq!(a[member], tps("t", &[i]));
        }
        assert!(a["C4"].is_empty());
        assert!(a["C5"].is_empty());
    }

    // Ported from Kafka's RangeAssignorTest (no-rack variants).

    #[test]
    fn one_consumer_no_topic() {
        let a = assign(
            &[],
            &[("consumer1", Subscription::new(Vec::<String>::new()))],
        );
        assert_eq!(a.keys().collect::<Vec<_>>(), ["consumer1"]);
        assert!(a["consumer1"].is_empty());
    }

    #[test]
    fn one_consumer_nonexistent_topic() {
        let a = assign(&[], &[("consumer1", Subscription::new(["topic1"]))]);
        assert!(a["consumer1"].is_empty());
    }

    #[test]
    fn only_assigns_partitions_from_subscribed_topics() {
        let a = assign(
            &[("topic1", 3), ("other", 3)],
            &[("consumer1", Subscription::new(["topic1"]))],
        );
        assert_eq!(a["consumer1"], tps("topic1", &[0, 1, 2]));
    }

    #[test]
    fn one_consumer_multiple_topics() {
        let a = assign(
            &[("topic1", 1), ("topic2", 2)],
            &[("consumer1", Subscription::new(["topic1", "topic2"]))],
        );
        assert_eq!(
            a["consumer1"],
            [tp("topic1", 0), tp("topic2", 0), tp("topic2", 1)]
        );
    }

    #[test]
    fn two_consumers_one_topic_one_partition() {
        let a = assign(
            &[("topic1", 1)],
            &same_subscription(&["consumer1", "consumer2"], &["topic1"]),
        );
        assert_eq!(a["consumer1"], tps("topic1", &[0]));
        assert!(a["consumer2"].is_empty());
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
    fn static_members_are_ordered_by_instance_id_not_member_id() {
        // consumer-a sorts before consumer-b, but instance1 before instance2 decides.
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
            [
                tp("topic1", 0),
                tp("topic1", 1),
                tp("topic2", 0),
                tp("topic2", 1)
            ]
        );
        assert_eq!(a["consumer-a"], [tp("topic1", 2), tp("topic2", 2)]);
    }

    #[test]
    fn static_member_sorts_before_dynamic_member() {
        let both = ["topic1", "topic2"];
        let a = assign(
            &[("topic1", 3), ("topic2", 3)],
            &[
                (
                    "consumer-b",
                    Subscription::new(both).group_instance_id("instance1"),
                ),
                ("consumer-a", Subscription::new(both)),
            ],
        );
        assert_eq!(a["consumer-b"].len(), 4);
        assert_eq!(a["consumer-a"], [tp("topic1", 2), tp("topic2", 2)]);
    }

    #[test]
    fn static_member_assignment_persists_when_dynamic_member_is_replaced() {
        let both = ["topic1", "topic2"];
        let statics = [
            ("consumer1", "instance1"),
            ("consumer2", "instance2"),
            ("consumer3", "instance3"),
        ];
        let mut members: Vec<(&str, Subscription)> = statics
            .iter()
            .map(|(m, i)| (*m, Subscription::new(both).group_instance_id(*i)))
            .collect();
        members.push(("consumer4", Subscription::new(both)));
        let topics = [("topic1", 5), ("topic2", 4)];
        let first = assign(&topics, &members);
        assert_eq!(
            first["consumer1"],
            [tp("topic1", 0), tp("topic1", 1), tp("topic2", 0)]
        );
        assert_eq!(first["consumer2"], [tp("topic1", 2), tp("topic2", 1)]);
        assert_eq!(first["consumer3"], [tp("topic1", 3), tp("topic2", 2)]);
        assert_eq!(first["consumer4"], [tp("topic1", 4), tp("topic2", 3)]);

        members.pop();
        members.push(("consumer5", Subscription::new(both)));
        let second = assign(&topics, &members);
        for (member, _) in statics {
            assert_eq!(second[member], first[member]);
        }
        assert_eq!(second["consumer5"], first["consumer4"]);
    }

    proptest! {
        #[test]
        fn prop_valid_and_balanced_per_topic((topics, members) in arb_group(false)) {
            let a = RangeAssignor.assign(&topics, &members);
            assert_complete_and_valid(&topics, &members, &a);
            assert_balanced_per_topic(&topics, &members, &a);
        }

        #[test]
        fn prop_equal_subscriptions_balanced_per_topic((topics, members) in arb_group(true)) {
            let a = RangeAssignor.assign(&topics, &members);
            assert_complete_and_valid(&topics, &members, &a);
            assert_balanced_per_topic(&topics, &members, &a);
        }
    }
}
