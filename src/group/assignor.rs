//! The assignor contract: what a member sends in ([`Subscription`]), what comes out
//! ([`Assignment`]), and the [`Assignor`] trait every strategy implements.
//!
//! Invariants every assignor in this crate keeps (and the property tests check):
//! * Pure: the result depends only on the two maps passed in. No I/O, no clock, no randomness,
//!   no hash-map iteration order.
//! * Every member of `subscriptions` is a key of the result, possibly with an empty list.
//! * A partition is only ever given to a member subscribed to its topic, and at most once.
//! * Topics missing from `partitions_per_topic`, or with a count `<= 0`, are skipped.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::group::{CooperativeStickyAssignor, RangeAssignor, RoundRobinAssignor, StickyAssignor};
use crate::types::TopicPartition;

/// How members give up partitions during a rebalance (Kafka's
/// `ConsumerPartitionAssignor.RebalanceProtocol`).
///
/// Eager: every rebalance revokes everything first. Cooperative: only partitions that move are
/// revoked, and they reach their new owner in a follow-up rebalance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RebalanceProtocol {
    /// Stop the world: each member revokes all its partitions before rejoining.
    Eager,
    /// Incremental: members keep what they still own; moved partitions go through a
    /// revoke-then-assign handover across two rebalances.
    Cooperative,
}

impl RebalanceProtocol {
    /// Kafka's spelling: `"EAGER"` or `"COOPERATIVE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RebalanceProtocol::Eager => "EAGER",
            RebalanceProtocol::Cooperative => "COOPERATIVE",
        }
    }
}

/// One member's input to an assignment (Kafka's `ConsumerPartitionAssignor.Subscription`).
///
/// ```
/// use embroker::{Subscription, TopicPartition};
/// let s = Subscription::new(["orders", "payments"])
///     .owned_partitions([TopicPartition::new("orders", 0)])
///     .generation(7)
///     .group_instance_id("billing-1");
/// assert_eq!(s.topics, ["orders", "payments"]);
/// assert_eq!(s.generation, Some(7));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The topics the member subscribes to. Order and duplicates do not matter.
    pub topics: Vec<String>,
    /// The partitions the member owned before this rebalance. Only the sticky assignors read
    /// it; Kafka sends it as `ownedPartitions` (cooperative) or in the sticky user data (eager).
    pub owned_partitions: Vec<TopicPartition>,
    /// The group generation in which `owned_partitions` was assigned; `None` is Kafka's
    /// `DEFAULT_GENERATION` (-1). When two members claim one partition, the higher wins.
    pub generation: Option<i32>,
    /// The static member id (`group.instance.id`), if the member is static. Range and round
    /// robin order static members first, by this id, so their assignment survives restarts.
    pub group_instance_id: Option<String>,
}

impl Subscription {
    /// A subscription to these topics, owning nothing, no generation, dynamic membership.
    pub fn new<I, S>(topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Subscription {
            topics: topics.into_iter().map(Into::into).collect(),
            ..Subscription::default()
        }
    }

    /// Sets the partitions owned before this rebalance.
    #[must_use]
    pub fn owned_partitions(mut self, owned: impl IntoIterator<Item = TopicPartition>) -> Self {
        self.owned_partitions = owned.into_iter().collect();
        self
    }

    /// Sets the generation in which the owned partitions were assigned.
    #[must_use]
    pub fn generation(mut self, generation: i32) -> Self {
        self.generation = Some(generation);
        self
    }

    /// Makes the member static with this `group.instance.id`.
    #[must_use]
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// Whether the member subscribes to `topic`.
    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }
}

/// The result of an assignment: member id to the partitions it is assigned.
///
/// Each list holds no duplicates. Range and round robin list partitions in ascending
/// (topic, partition) order; the sticky assignors list kept partitions first.
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// A partition assignment strategy (Kafka's `ConsumerPartitionAssignor`), as a pure function.
///
/// The group leader calls [`Assignor::assign`] once per rebalance with the partition counts of
/// every subscribed topic and every member's [`Subscription`].
///
/// A user-written assignor: every partition goes to the member with the smallest id that
/// subscribes to its topic.
///
/// ```
/// use std::collections::BTreeMap;
/// use embroker::{Assignment, Assignor, RebalanceProtocol, Subscription, TopicPartition};
///
/// #[derive(Debug)]
/// struct FirstTakesAll;
///
/// impl Assignor for FirstTakesAll {
///     fn name(&self) -> &str {
///         "first-takes-all"
///     }
///
///     fn protocol(&self) -> RebalanceProtocol {
///         RebalanceProtocol::Eager
///     }
///
///     fn assign(
///         &self,
///         partitions_per_topic: &BTreeMap<String, i32>,
///         subscriptions: &BTreeMap<String, Subscription>,
///     ) -> Assignment {
///         let mut result: Assignment =
///             subscriptions.keys().map(|member| (member.clone(), Vec::new())).collect();
///         for (topic, &count) in partitions_per_topic {
///             let first = subscriptions.iter().find(|(_, s)| s.subscribes_to(topic));
///             if let Some((member, _)) = first {
///                 let partitions = (0..count).map(|p| TopicPartition::new(topic.as_str(), p));
///                 result.entry(member.clone()).or_default().extend(partitions);
///             }
///         }
///         result
///     }
/// }
///
/// let topics = BTreeMap::from([("orders".to_string(), 2)]);
/// let members = BTreeMap::from([
///     ("a".to_string(), Subscription::new(["orders"])),
///     ("b".to_string(), Subscription::new(["orders"])),
/// ]);
/// let assignment = FirstTakesAll.assign(&topics, &members);
/// assert_eq!(assignment["a"].len(), 2);
/// assert!(assignment["b"].is_empty());
/// ```
pub trait Assignor: Send + Sync + std::fmt::Debug {
    /// The protocol name members advertise: `"range"`, `"roundrobin"`, `"sticky"`,
    /// `"cooperative-sticky"`, or a user-chosen name.
    fn name(&self) -> &str;

    /// How members hand over partitions when this assignor is in use.
    fn protocol(&self) -> RebalanceProtocol;

    /// Computes the assignment.
    ///
    /// `partitions_per_topic`: topic to partition count (topics with 0 or missing are skipped);
    /// `subscriptions`: member id to [`Subscription`]. Every member appears in the result,
    /// possibly with an empty list.
    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Assignment;
}

/// The built-in assignor for a `partition.assignment.strategy` entry: Kafka's protocol name
/// (`"range"`, `"roundrobin"`, `"sticky"`, `"cooperative-sticky"`) or its Java class name
/// (`"org.apache.kafka.clients.consumer.RangeAssignor"`, ...). `None` for anything else.
///
/// ```
/// let a = embroker::assignor_by_name("org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
/// assert_eq!(a.map(|a| a.name().to_string()).as_deref(), Some("cooperative-sticky"));
/// assert!(embroker::assignor_by_name("nope").is_none());
/// ```
pub fn assignor_by_name(name: &str) -> Option<Arc<dyn Assignor>> {
    const PACKAGE: &str = "org.apache.kafka.clients.consumer.";
    let short = match name.strip_prefix(PACKAGE) {
        Some("RangeAssignor") => "range",
        Some("RoundRobinAssignor") => "roundrobin",
        Some("StickyAssignor") => "sticky",
        Some("CooperativeStickyAssignor") => "cooperative-sticky",
        Some(_) => return None,
        None => name,
    };
    let assignor: Arc<dyn Assignor> = match short {
        "range" => Arc::new(RangeAssignor),
        "roundrobin" => Arc::new(RoundRobinAssignor),
        "sticky" => Arc::new(StickyAssignor),
        "cooperative-sticky" => Arc::new(CooperativeStickyAssignor),
        _ => return None,
    };
    Some(assignor)
}

/// The result every assignor starts from: each member with an empty list.
pub(crate) fn empty_assignment(subscriptions: &BTreeMap<String, Subscription>) -> Assignment {
    subscriptions
        .keys()
        .map(|member| (member.clone(), Vec::new()))
        .collect()
}

/// A topic's usable partition count: missing or non-positive counts mean "skip the topic".
pub(crate) fn partition_count(partitions_per_topic: &BTreeMap<String, i32>, topic: &str) -> i32 {
    partitions_per_topic.get(topic).copied().unwrap_or(0).max(0)
}

/// Members in Kafka's `AbstractPartitionAssignor.MemberInfo` order: static members first, by
/// `group.instance.id`, then dynamic members by member id.
///
/// Rust compares strings by UTF-8 bytes and Java by UTF-16 code units; the two orders agree
/// except between supplementary characters and U+E000..U+FFFF, which member ids do not use.
pub(crate) fn members_in_kafka_order(subscriptions: &BTreeMap<String, Subscription>) -> Vec<&str> {
    let mut members: Vec<(&str, &Subscription)> = subscriptions
        .iter()
        .map(|(member, subscription)| (member.as_str(), subscription))
        .collect();
    members.sort_by(|(a_id, a), (b_id, b)| {
        let a_key = (a.group_instance_id.is_none(), &a.group_instance_id, a_id);
        let b_key = (b.group_instance_id.is_none(), &b.group_instance_id, b_id);
        a_key.cmp(&b_key)
    });
    members.into_iter().map(|(member, _)| member).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignor_by_name_accepts_kafka_names_and_class_names() {
        let cases = [
            ("range", "range", RebalanceProtocol::Eager),
            ("roundrobin", "roundrobin", RebalanceProtocol::Eager),
            ("sticky", "sticky", RebalanceProtocol::Eager),
            (
                "cooperative-sticky",
                "cooperative-sticky",
                RebalanceProtocol::Cooperative,
            ),
            (
                "org.apache.kafka.clients.consumer.RangeAssignor",
                "range",
                RebalanceProtocol::Eager,
            ),
            (
                "org.apache.kafka.clients.consumer.RoundRobinAssignor",
                "roundrobin",
                RebalanceProtocol::Eager,
            ),
            (
                "org.apache.kafka.clients.consumer.StickyAssignor",
                "sticky",
                RebalanceProtocol::Eager,
            ),
            (
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
                "cooperative-sticky",
                RebalanceProtocol::Cooperative,
            ),
        ];
        for (input, name, protocol) in cases {
            let assignor = assignor_by_name(input);
            assert!(assignor.is_some(), "{input} not recognised");
            if let Some(assignor) = assignor {
                assert_eq!(assignor.name(), name);
                assert_eq!(assignor.protocol(), protocol);
            }
        }
    }

    #[test]
    fn assignor_by_name_rejects_unknown_names() {
        for input in [
            "",
            "Range",
            "RangeAssignor",
            "org.apache.kafka.clients.consumer.",
            "org.apache.kafka.clients.consumer.range",
            "org.apache.kafka.clients.consumer.UniformAssignor",
        ] {
            assert!(assignor_by_name(input).is_none(), "{input} accepted");
        }
    }

    #[test]
    fn members_order_puts_static_members_first_by_instance_id() {
        let subscriptions = BTreeMap::from([
            ("a".to_string(), Subscription::new(["t"])),
            (
                "b".to_string(),
                Subscription::new(["t"]).group_instance_id("z"),
            ),
            (
                "c".to_string(),
                Subscription::new(["t"]).group_instance_id("y"),
            ),
            ("0".to_string(), Subscription::new(["t"])),
        ]);
        assert_eq!(members_in_kafka_order(&subscriptions), ["c", "b", "0", "a"]);
    }

    #[test]
    fn partition_count_skips_missing_and_negative() {
        let topics = BTreeMap::from([("a".to_string(), 3), ("b".to_string(), -2)]);
        assert_eq!(partition_count(&topics, "a"), 3);
        assert_eq!(partition_count(&topics, "b"), 0);
        assert_eq!(partition_count(&topics, "c"), 0);
    }

    #[test]
    fn rebalance_protocol_names_match_kafka() {
        assert_eq!(RebalanceProtocol::Eager.as_str(), "EAGER");
        assert_eq!(RebalanceProtocol::Cooperative.as_str(), "COOPERATIVE");
    }
}
