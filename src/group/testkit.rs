//! Test-only helpers shared by the assignor tests: builders, invariant checks written
//! independently of the assignors, and proptest strategies for random groups.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::group::{Assignment, Subscription};
use crate::types::TopicPartition;

/// Topic names the generators pick from; subscriptions may name topics that do not exist.
const TOPIC_NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

pub(crate) type Topics = BTreeMap<String, i32>;
pub(crate) type Members = BTreeMap<String, Subscription>;

pub(crate) fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

pub(crate) fn tps(topic: &str, partitions: &[i32]) -> Vec<TopicPartition> {
    partitions.iter().map(|&p| tp(topic, p)).collect()
}

pub(crate) fn topic_map(topics: &[(&str, i32)]) -> Topics {
    topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

pub(crate) fn member_map(members: &[(&str, Subscription)]) -> Members {
    members
        .iter()
        .map(|(m, s)| (m.to_string(), s.clone()))
        .collect()
}

pub(crate) fn same_subscription<'a>(
    members: &[&'a str],
    topics: &[&str],
) -> Vec<(&'a str, Subscription)> {
    members
        .iter()
        .map(|m| (*m, Subscription::new(topics.iter().copied())))
        .collect()
}

/// The members with their `owned_partitions` replaced by `previous` (what a real member
/// reports after receiving `previous`), all in `generation`.
pub(crate) fn owning(members: &Members, previous: &Assignment, generation: i32) -> Members {
    members
        .iter()
        .map(|(m, s)| {
            let owned = previous.get(m).cloned().unwrap_or_default();
            let s = s.clone().owned_partitions(owned).generation(generation);
            (m.clone(), s)
        })
        .collect()
}

/// All partitions of topics that exist and that at least one member subscribes to.
pub(crate) fn assignable(topics: &Topics, members: &Members) -> BTreeSet<TopicPartition> {
    topics
        .iter()
        .filter(|(t, _)| members.values().any(|s| s.subscribes_to(t)))
        .flat_map(|(t, &n)| (0..n.max(0)).map(move |p| tp(t, p)))
        .collect()
}

/// Every member present, every assigned partition exists, is subscribed to by its member, and
/// is assigned once. Returns the set of assigned partitions.
pub(crate) fn assert_valid(
    topics: &Topics,
    members: &Members,
    a: &Assignment,
) -> BTreeSet<TopicPartition> {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        members.keys().collect::<Vec<_>>(),
        "members in result differ from the group"
    );
    let mut seen = BTreeSet::new();
    for (member, partitions) in a {
        for p in partitions {
            let count = topics.get(&p.topic).copied().unwrap_or(0);
            assert!(p.partition >= 0, "{member} got negative partition {p}");
            assert!(p.partition < count, "{member} got nonexistent {p}");
            assert!(
                members[member].subscribes_to(&p.topic),
                "{member} got {p} without subscribing"
            );
            assert!(seen.insert(p.clone()), "{p} assigned twice");
        }
    }
    seen
}

/// [`assert_valid`] and every assignable partition assigned.
pub(crate) fn assert_complete_and_valid(topics: &Topics, members: &Members, a: &Assignment) {
    let assigned = assert_valid(topics, members, a);
    assert_eq!(
        assigned,
        assignable(topics, members),
        "not every partition assigned"
    );
}

pub(crate) fn counts(a: &Assignment) -> Vec<usize> {
    a.values().map(Vec::len).collect()
}

/// Partition counts per member differ by at most one.
pub(crate) fn assert_balanced_overall(a: &Assignment) {
    let counts = counts(a);
    let max = counts.iter().max().copied().unwrap_or(0);
    let min = counts.iter().min().copied().unwrap_or(0);
    assert!(max - min <= 1, "unbalanced: {counts:?} in {a:?}");
}

/// For each topic, its subscribers' counts of that topic differ by at most one.
pub(crate) fn assert_balanced_per_topic(topics: &Topics, members: &Members, a: &Assignment) {
    for topic in topics.keys() {
        let per_member: Vec<usize> = members
            .iter()
            .filter(|(_, s)| s.subscribes_to(topic))
            .map(|(m, _)| a[m].iter().filter(|p| &p.topic == topic).count())
            .collect();
        let max = per_member.iter().max().copied().unwrap_or(0);
        let min = per_member.iter().min().copied().unwrap_or(0);
        assert!(max - min <= 1, "topic {topic} unbalanced: {per_member:?}");
    }
}

/// Kafka's general balance rule (`verifyValidityAndBalance`): a member with two or more fewer
/// partitions than another subscribes to none of that member's topics.
pub(crate) fn assert_balance_criterion(members: &Members, a: &Assignment) {
    for (poor, poor_partitions) in a {
        for (rich, rich_partitions) in a {
            if poor_partitions.len() + 2 > rich_partitions.len() {
                continue;
            }
            for p in rich_partitions {
                assert!(
                    !members[poor].subscribes_to(&p.topic),
                    "{poor} ({}) could take {p} from {rich} ({}): {a:?}",
                    poor_partitions.len(),
                    rich_partitions.len()
                );
            }
        }
    }
}

/// How many (member, partition) ownerships in `previous` were lost by a member still present.
pub(crate) fn moved(previous: &Assignment, next: &Assignment) -> usize {
    previous
        .iter()
        .filter_map(|(m, before)| next.get(m).map(|after| (before, after)))
        .map(|(before, after)| before.iter().filter(|p| !after.contains(p)).count())
        .sum()
}

/// The fewest ownerships any balanced assignment must break when every member subscribes to
/// everything and members currently own `owned` partitions each (no conflicts), out of
/// `total` partitions. Derivation: every member ends with `min` or `min + 1`, exactly
/// `total % n` of them with `min + 1`; a member owning more than its final count loses the
/// difference, so the `min + 1` slots are best spent on members owning more than `min`.
pub(crate) fn fewest_moves(owned: &[usize], total: usize) -> usize {
    let n = owned.len();
    if n == 0 {
        return 0;
    }
    let min = total / n;
    let extra_slots = total % n;
    let over: Vec<usize> = owned.iter().copied().filter(|&o| o > min).collect();
    if extra_slots == 0 {
        return over.iter().map(|o| o - min).sum();
    }
    let shed_to_max: usize = over.iter().map(|o| o - (min + 1)).sum();
    shed_to_max + over.len().saturating_sub(extra_slots)
}

/// A random group: 0..5 topics of 0..16 partitions, 1..8 members with random ids, each
/// subscribing to a non-empty random subset of topic names (possibly naming topics that do
/// not exist), or all to the same subset when `equal`. Some members are static.
pub(crate) fn arb_group(equal: bool) -> impl Strategy<Value = (Topics, Members)> {
    let names: Vec<String> = TOPIC_NAMES.iter().map(|t| t.to_string()).collect();
    let topic = prop::sample::select(names.clone());
    let topics = prop::collection::btree_map(topic, 0..16i32, 0..5);
    let subset = prop::sample::subsequence(names, 1..=TOPIC_NAMES.len());
    let member = (subset.clone(), prop::option::weighted(0.2, "[a-c]{1,2}"));
    let ids = prop::collection::btree_set("[a-z0-9]{1,4}", 1..8);
    let per_member = prop::collection::vec(member, 8);
    (topics, ids, subset, per_member).prop_map(move |(topics, ids, shared, per_member)| {
        let members = ids
            .into_iter()
            .zip(per_member)
            .map(|(id, (own, instance))| {
                let chosen = if equal { shared.clone() } else { own };
                let mut s = Subscription::new(chosen);
                s.group_instance_id = instance;
                (id, s)
            })
            .collect();
        (topics, members)
    })
}

/// A random group plus random previous ownership: each assignable partition owned by one
/// random member or by nobody, never claimed twice.
pub(crate) fn arb_group_with_owners(equal: bool) -> impl Strategy<Value = (Topics, Members)> {
    (arb_group(equal), prop::collection::vec(0usize..10, 80)).prop_map(
        |((topics, members), picks)| {
            let ids: Vec<String> = members.keys().cloned().collect();
            let mut owned: Assignment = ids.iter().map(|m| (m.clone(), Vec::new())).collect();
            for (p, pick) in assignable(&topics, &members)
                .into_iter()
                .zip(picks.into_iter().cycle())
            {
                let owner = ids
                    .get(pick)
                    .filter(|m| members[*m].subscribes_to(&p.topic));
                if let Some(list) = owner.and_then(|m| owned.get_mut(m)) {
                    list.push(p);
                }
            }
            (topics.clone(), owning(&members, &owned, 1))
        },
    )
}
