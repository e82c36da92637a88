//! Kafka's sticky assignors: [`StickyAssignor`] (eager) and [`CooperativeStickyAssignor`]
//! (cooperative), after `AbstractStickyAssignor`.
//!
//! Both compute the same *target* assignment. Its guarantees, in priority order:
//! 1. **Balance.** When every member subscribes to the same (existing) topics, partition counts
//!    differ by at most one. Otherwise no member with two or more fewer partitions than
//!    another subscribes to the topic of any of that member's partitions.
//! 2. **Stickiness.** As many previous ownerships as balance allows are kept.
//!
//! # Previous ownership
//!
//! Comes from [`Subscription::owned_partitions`], tagged with [`Subscription::generation`]
//! (`None` counts as Kafka's `DEFAULT_GENERATION`, -1). A claim is dropped when the partition
//! no longer exists or the claimant no longer subscribes to its topic. When several members
//! claim one partition, the one with the highest generation owns it; if several share the
//! highest generation, nobody does (Kafka logs this as an error and invalidates the claims).
//!
//! # Algorithm
//!
//! *Equal subscriptions* (Kafka's `constrainedAssign`, followed step for step): with `P`
//! partitions and `C` members, every member ends with `min = P / C` or `max = ceil(P / C)`,
//! and exactly `P % C` of them with `max`. In member-id order, each member keeps its owned
//! partitions up to `max` while `max` slots remain, else up to `min` (the first ones it
//! listed, as Kafka does). The rest are dealt round robin, in (topic,
//! partition) order, to members below `min`, then one each to members at `min` until the
//! `max` slots are used. This breaks the fewest ownerships possible: a member owning more than
//! `min` gains exactly one kept partition from a `max` slot, so it does not matter which such
//! members get the slots, and members owning `min` or fewer keep everything.
//!
//! *Differing subscriptions* (simpler than Kafka's `generalAssign`): keep every valid previous
//! ownership; give each remaining partition, fewest-eligible-members first, to the eligible
//! member with the fewest partitions; then, while some member could take a partition from a
//! member holding two or more more, move one (preferring partitions the giver did not own
//! before, so no ownership is broken when avoidable). Each move lowers the sum of squared
//! counts by at least two, so the loop ends, and it ends exactly when guarantee 1 holds.
//! Stickiness here is a heuristic, as in Kafka: previous ownerships are only broken by those
//! moves, and an already balanced previous assignment is returned unchanged.
//!
//! # Cooperative two-step handover
//!
//! Under the cooperative protocol a member keeps consuming what it owns while the group
//! rebalances, so a partition must never be assigned to one member while another still owns
//! it. [`CooperativeStickyAssignor`] therefore removes from the target every partition that a
//! *different* member lists in its `owned_partitions` (any generation) and that the receiving
//! member does not list itself. In that round the old
//! owner sees the partition missing from its assignment and revokes it
//! (`onPartitionsRevoked`), then rejoins; in the follow-up rebalance nobody owns it any more
//! and the assignor hands it to its new owner. Kafka's `ConsumerCoordinator` rejects a
//! cooperative assignment that breaks this rule, which is why the check uses every raw claim
//! rather than only the winning one. A partition the member itself already lists is not new to it
//! and stays, even if a stale member lists it too (that one simply loses it). With equal subscriptions the follow-up round moves
//! nothing else: everything kept in round one is within its member's quota.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::group::assignor::{empty_assignment, partition_count};
use crate::group::{Assignment, Assignor, RebalanceProtocol, Subscription};
use crate::types::TopicPartition;

/// Kafka's `AbstractStickyAssignor.DEFAULT_GENERATION`: the generation of a claim without one.
const DEFAULT_GENERATION: i32 = -1;

/// Kafka's sticky assignor (`"sticky"`, eager): balanced, then as sticky as possible.
///
/// Previous ownership is read from [`Subscription::owned_partitions`]. Under the eager
/// protocol every member revokes everything before the rebalance, so the result is handed out
/// whole. The first example from Kafka's Javadoc:
///
/// ```
/// use std::collections::BTreeMap;
/// use embroker::{Assignor, StickyAssignor, Subscription};
///
/// let topics: BTreeMap<String, i32> =
///     ["t0", "t1", "t2", "t3"].iter().map(|t| (t.to_string(), 2)).collect();
/// let all = ["t0", "t1", "t2", "t3"];
/// let group = |ids: &[&str], owned: &BTreeMap<String, Vec<_>>| -> BTreeMap<String, Subscription> {
///     ids.iter()
///         .map(|id| {
///             let mine = owned.get(*id).cloned().unwrap_or_default();
///             (id.to_string(), Subscription::new(all).owned_partitions(mine).generation(1))
///         })
///         .collect()
/// };
/// let first = StickyAssignor.assign(&topics, &group(&["C0", "C1", "C2"], &BTreeMap::new()));
/// // C1 leaves: C0 and C2 keep everything they had and split C1's three partitions.
/// let second = StickyAssignor.assign(&topics, &group(&["C0", "C2"], &first));
/// for member in ["C0", "C2"] {
///     assert!(first[member].iter().all(|p| second[member].contains(p)));
///     assert_eq!(second[member].len(), 4);
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StickyAssignor;

impl Assignor for StickyAssignor {
    fn name(&self) -> &str {
        "sticky"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Assignment {
        sticky_target(partitions_per_topic, subscriptions)
    }
}

/// Kafka's cooperative sticky assignor (`"cooperative-sticky"`, cooperative).
///
/// The sticky target minus every partition still owned by a different member; those reach
/// their new owner in the follow-up rebalance (see the module docs).
///
/// ```
/// use std::collections::BTreeMap;
/// use embroker::{Assignor, CooperativeStickyAssignor, Subscription, TopicPartition};
///
/// let topics = BTreeMap::from([("t".to_string(), 2)]);
/// let owned = [TopicPartition::new("t", 0), TopicPartition::new("t", 1)];
/// let mut members = BTreeMap::from([
///     ("a".to_string(), Subscription::new(["t"]).owned_partitions(owned).generation(1)),
///     ("b".to_string(), Subscription::new(["t"])),
/// ]);
/// // b joins: a keeps t-0 and must revoke t-1, which nobody gets this round.
/// let round1 = CooperativeStickyAssignor.assign(&topics, &members);
/// assert_eq!(round1["a"], [TopicPartition::new("t", 0)]);
/// assert!(round1["b"].is_empty());
/// // a revoked t-1 and rejoined: the follow-up round hands t-1 to b.
/// for (id, sub) in members.iter_mut() {
///     sub.owned_partitions = round1[id].clone();
///     sub.generation = Some(2);
/// }
/// let round2 = CooperativeStickyAssignor.assign(&topics, &members);
/// assert_eq!(round2["b"], [TopicPartition::new("t", 1)]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CooperativeStickyAssignor;

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &str {
        "cooperative-sticky"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Assignment {
        let target = sticky_target(partitions_per_topic, subscriptions);
        withhold_partitions_owned_by_others(target, subscriptions)
    }
}

/// Member id to the existing topics it subscribes to.
type Subscribed<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;

/// Member id to the partitions it validly owned, in the order it listed them.
type Owned<'a> = BTreeMap<&'a str, Vec<TopicPartition>>;

/// The balanced, sticky assignment both assignors start from.
fn sticky_target(
    partitions_per_topic: &BTreeMap<String, i32>,
    subscriptions: &BTreeMap<String, Subscription>,
) -> Assignment {
    let subscribed = existing_subscribed_topics(partitions_per_topic, subscriptions);
    let owned = previous_owners(partitions_per_topic, subscriptions, &subscribed);
    let members: Vec<&str> = subscriptions.keys().map(String::as_str).collect();
    let mut assignment = empty_assignment(subscriptions);
    let distinct: BTreeSet<&BTreeSet<&str>> = subscribed.values().collect();
    if distinct.len() <= 1 {
        let topics = distinct.into_iter().next().cloned().unwrap_or_default();
        let partitions = sorted_partitions(partitions_per_topic, &topics);
        assign_constrained(&partitions, &members, &owned, &mut assignment);
        debug_assert!(is_within_one(&assignment));
    } else {
        assign_general(
            partitions_per_topic,
            &members,
            &subscribed,
            &owned,
            &mut assignment,
        );
    }
    assignment
}

fn existing_subscribed_topics<'a>(
    partitions_per_topic: &BTreeMap<String, i32>,
    subscriptions: &'a BTreeMap<String, Subscription>,
) -> Subscribed<'a> {
    subscriptions
        .iter()
        .map(|(member, subscription)| {
            let topics = subscription
                .topics
                .iter()
                .map(String::as_str)
                .filter(|topic| partition_count(partitions_per_topic, topic) > 0)
                .collect();
            (member.as_str(), topics)
        })
        .collect()
}

/// Every partition of `topics`, in (topic, partition) order.
fn sorted_partitions(
    partitions_per_topic: &BTreeMap<String, i32>,
    topics: &BTreeSet<&str>,
) -> Vec<TopicPartition> {
    topics
        .iter()
        .flat_map(|topic| {
            let count = partition_count(partitions_per_topic, topic);
            (0..count).map(move |p| TopicPartition::new(*topic, p))
        })
        .collect()
}

/// Resolves who owned each partition before this rebalance (see "Previous ownership" in the
/// module docs).
fn previous_owners<'a>(
    partitions_per_topic: &BTreeMap<String, i32>,
    subscriptions: &'a BTreeMap<String, Subscription>,
    subscribed: &Subscribed<'a>,
) -> Owned<'a> {
    // Partition to (highest generation claiming it, the claimant if it is the only one there).
    let mut claims: BTreeMap<&TopicPartition, (i32, Option<&str>)> = BTreeMap::new();
    for (member, subscription) in subscriptions {
        let generation = subscription.generation.unwrap_or(DEFAULT_GENERATION);
        let topics = &subscribed[member.as_str()];
        let mine: BTreeSet<&TopicPartition> = subscription.owned_partitions.iter().collect();
        for tp in mine {
            let exists = tp.partition < partition_count(partitions_per_topic, &tp.topic);
            if tp.partition < 0 || !exists || !topics.contains(tp.topic.as_str()) {
                continue;
            }
            match claims.get_mut(tp) {
                None => {
                    claims.insert(tp, (generation, Some(member.as_str())));
                }
                Some(claim) if generation > claim.0 => *claim = (generation, Some(member.as_str())),
                Some(claim) if generation == claim.0 => claim.1 = None,
                Some(_) => {}
            }
        }
    }
    resolve_claims(subscriptions, claims)
}

/// Each member's winning claims, in the order the member listed them: when a member must give
/// some up it keeps the first ones, as Kafka's `constrainedAssign` does.
fn resolve_claims<'a>(
    subscriptions: &'a BTreeMap<String, Subscription>,
    claims: BTreeMap<&TopicPartition, (i32, Option<&str>)>,
) -> Owned<'a> {
    subscriptions
        .iter()
        .map(|(member, subscription)| {
            let won = |tp: &&TopicPartition| {
                claims.get(*tp).and_then(|claim| claim.1) == Some(member.as_str())
            };
            let mut seen = BTreeSet::new();
            let mine = subscription
                .owned_partitions
                .iter()
                .filter(won)
                .filter(|tp| seen.insert(*tp))
                .cloned()
                .collect();
            (member.as_str(), mine)
        })
        .collect()
}

/// Equal subscriptions: Kafka's `constrainedAssign` (see "Algorithm" in the module docs).
fn assign_constrained(
    partitions: &[TopicPartition],
    members: &[&str],
    owned: &Owned<'_>,
    assignment: &mut Assignment,
) {
    if members.is_empty() {
        return;
    }
    let min_quota = partitions.len() / members.len();
    let max_quota = partitions.len().div_ceil(members.len());
    let max_slots = partitions.len() % members.len();
    let mut used_max_slots = 0;
    let mut under_min = Vec::new();
    let mut exactly_min = VecDeque::new();
    let mut kept = BTreeSet::new();
    for &member in members {
        let mine = owned.get(member).map(Vec::as_slice).unwrap_or_default();
        let keep = if mine.len() < min_quota {
            under_min.push(member);
            mine.len()
        } else if mine.len() >= max_quota && used_max_slots < max_slots {
            used_max_slots += 1;
            if used_max_slots == max_slots {
                exactly_min.clear();
            }
            max_quota
        } else {
            if used_max_slots < max_slots {
                exactly_min.push_back(member);
            }
            min_quota
        };
        kept.extend(&mine[..keep]);
        give(assignment, member, mine[..keep].iter().cloned());
    }
    let unassigned = partitions.iter().filter(|p| !kept.contains(p));
    let queues = Unfilled {
        under_min,
        exactly_min,
    };
    deal_round_robin(unassigned, min_quota, queues, members, assignment);
}

/// Members that can still take partitions in the constrained deal, in Kafka's order.
struct Unfilled<'m> {
    /// Below `min_quota`, served round robin.
    under_min: Vec<&'m str>,
    /// At `min_quota` and allowed one more, served first come first served.
    exactly_min: VecDeque<&'m str>,
}

/// Deals partitions round robin to members under `min_quota` (dropping each as it reaches
/// it, onto the back of `exactly_min`), then one each to members in `exactly_min`.
fn deal_round_robin<'p>(
    unassigned: impl Iterator<Item = &'p TopicPartition>,
    min_quota: usize,
    unfilled: Unfilled<'_>,
    members: &[&str],
    assignment: &mut Assignment,
) {
    let Unfilled {
        mut under_min,
        mut exactly_min,
    } = unfilled;
    let mut cursor = 0;
    for tp in unassigned {
        if under_min.is_empty() {
            // The quotas add up to exactly the partition count, so the queue cannot run dry;
            // if it did, the least loaded member still keeps the result complete.
            debug_assert!(!exactly_min.is_empty(), "no member left for {tp}");
            let fallback = || members.iter().copied().min_by_key(|m| load(assignment, m));
            if let Some(member) = exactly_min.pop_front().or_else(fallback) {
                give(assignment, member, [tp.clone()]);
            }
            continue;
        }
        if cursor >= under_min.len() {
            cursor = 0;
        }
        let member = under_min[cursor];
        give(assignment, member, [tp.clone()]);
        if assignment.get(member).map_or(0, Vec::len) == min_quota {
            under_min.remove(cursor);
            exactly_min.push_back(member);
        } else {
            cursor += 1;
        }
    }
}

/// Differing subscriptions (see "Algorithm" in the module docs).
fn assign_general(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &[&str],
    subscribed: &Subscribed<'_>,
    owned: &Owned<'_>,
    assignment: &mut Assignment,
) {
    for (member, mine) in owned {
        give(assignment, member, mine.iter().cloned());
    }
    let all_topics: BTreeSet<&str> = subscribed.values().flatten().copied().collect();
    let eligible = |topic: &str| -> Vec<&str> {
        let subscribes = |m: &&str| subscribed[*m].contains(topic);
        members.iter().copied().filter(subscribes).collect()
    };
    let taken: BTreeSet<&TopicPartition> = owned.values().flatten().collect();
    let mut unassigned: Vec<(usize, TopicPartition)> =
        sorted_partitions(partitions_per_topic, &all_topics)
            .into_iter()
            .filter(|p| !taken.contains(p))
            .map(|p| (eligible(&p.topic).len(), p))
            .collect();
    // Partitions few members can take go first, while those members still have room.
    unassigned.sort();
    for (_, tp) in unassigned {
        let candidates = eligible(&tp.topic);
        let least_loaded = candidates.iter().min_by_key(|m| load(assignment, m));
        if let Some(member) = least_loaded {
            give(assignment, member, [tp]);
        }
    }
    let previous_owner: BTreeMap<&TopicPartition, &str> = owned
        .iter()
        .flat_map(|(member, mine)| mine.iter().map(move |tp| (tp, *member)))
        .collect();
    while let Some((from, to, index)) = find_move(members, subscribed, &previous_owner, assignment)
    {
        let tp = assignment.get_mut(from).map(|list| list.remove(index));
        give(assignment, to, tp);
    }
}

/// A move towards balance: a partition of the most loaded possible giver that a member with at
/// least two fewer partitions can take, preferring one the giver did not own before.
fn find_move<'m>(
    members: &[&'m str],
    subscribed: &Subscribed<'_>,
    previous_owner: &BTreeMap<&TopicPartition, &str>,
    assignment: &Assignment,
) -> Option<(&'m str, &'m str, usize)> {
    let mut givers = members.to_vec();
    givers.sort_by_key(|m| Reverse(load(assignment, m)));
    let mut takers = members.to_vec();
    takers.sort_by_key(|m| load(assignment, m));
    for giver in givers {
        let held = assignment.get(giver).map(Vec::as_slice).unwrap_or_default();
        for &taker in takers
            .iter()
            .take_while(|t| load(assignment, t) + 2 <= held.len())
        {
            let takeable = |tp: &TopicPartition| subscribed[taker].contains(tp.topic.as_str());
            let was_givers = |tp: &TopicPartition| previous_owner.get(tp) == Some(&giver);
            let index = held
                .iter()
                .position(|tp| takeable(tp) && !was_givers(tp))
                .or_else(|| held.iter().position(takeable));
            if let Some(index) = index {
                return Some((giver, taker, index));
            }
        }
    }
    None
}

/// Removes from each member's target every partition it did not own and another member still
/// claims to own.
fn withhold_partitions_owned_by_others(
    mut target: Assignment,
    subscriptions: &BTreeMap<String, Subscription>,
) -> Assignment {
    let mut claimants: BTreeMap<&TopicPartition, BTreeSet<&str>> = BTreeMap::new();
    for (member, subscription) in subscriptions {
        for tp in &subscription.owned_partitions {
            claimants.entry(tp).or_default().insert(member.as_str());
        }
    }
    for (member, partitions) in &mut target {
        let may_take = |tp: &TopicPartition| {
            claimants.get(tp).is_none_or(|owners| {
                owners.contains(member.as_str()) || owners.iter().all(|owner| owner == member)
            })
        };
        partitions.retain(|tp| may_take(tp));
    }
    target
}

fn load(assignment: &Assignment, member: &str) -> usize {
    assignment.get(member).map_or(0, Vec::len)
}

fn give(
    assignment: &mut Assignment,
    member: &str,
    partitions: impl IntoIterator<Item = TopicPartition>,
) {
    if let Some(list) = assignment.get_mut(member) {
        list.extend(partitions);
    }
}

fn is_within_one(assignment: &Assignment) -> bool {
    let loads = assignment.values().map(Vec::len);
    let max = loads.clone().max().unwrap_or(0);
    let min = loads.min().unwrap_or(0);
    max - min <= 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::testkit::*;
    use proptest::prelude::*;

    const GENERATION: i32 = 1;

    fn sticky(topics: &Topics, members: &Members) -> Assignment {
        StickyAssignor.assign(topics, members)
    }

    fn cooperative(topics: &Topics, members: &Members) -> Assignment {
        CooperativeStickyAssignor.assign(topics, members)
    }

    fn owning_parts(topics: &[&str], owned: Vec<TopicPartition>, generation: i32) -> Subscription {
        Subscription::new(topics.iter().copied())
            .owned_partitions(owned)
            .generation(generation)
    }

    fn as_set(partitions: &[TopicPartition]) -> BTreeSet<TopicPartition> {
        partitions.iter().cloned().collect()
    }

    /// Both assignors agree whenever nothing has to change owner.
    fn both(topics: &Topics, members: &Members) -> Assignment {
        let a = sticky(topics, members);
        assert_eq!(cooperative(topics, members), a, "cooperative differs");
        assert_complete_and_valid(topics, members, &a);
        assert_balance_criterion(members, &a);
        a
    }

    // The two examples in Kafka's StickyAssignor Javadoc.

    #[test]
    fn javadoc_example_1_fresh_assignment_equals_round_robin() {
        let all = ["t0", "t1", "t2", "t3"];
        let topics = topic_map(&[("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)]);
        let members = member_map(&same_subscription(&["C0", "C1", "C2"], &all));
        let a = both(&topics, &members);
        assert_eq!(a["C0"], [tp("t0", 0), tp("t1", 1), tp("t3", 0)]);
        assert_eq!(a["C1"], [tp("t0", 1), tp("t2", 0), tp("t3", 1)]);
        assert_eq!(a["C2"], [tp("t1", 0), tp("t2", 1)]);
    }

    #[test]
    fn javadoc_example_1_member_leaving_keeps_every_previous_ownership() {
        let all = ["t0", "t1", "t2", "t3"];
        let topics = topic_map(&[("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)]);
        let c0 = vec![tp("t0", 0), tp("t1", 1), tp("t3", 0)];
        let c2 = vec![tp("t1", 0), tp("t2", 1)];
        let members = member_map(&[
            ("C0", owning_parts(&all, c0.clone(), GENERATION)),
            ("C2", owning_parts(&all, c2.clone(), GENERATION)),
        ]);
        let a = sticky(&topics, &members);
        assert_complete_and_valid(&topics, &members, &a);
        assert!(as_set(&a["C0"]).is_superset(&as_set(&c0)));
        assert!(as_set(&a["C2"]).is_superset(&as_set(&c2)));
        assert_eq!(counts(&a), [4, 4]);
        // Kafka's Javadoc shows the older algorithm's choice of which new partitions go where;
        // Kafka's current constrainedAssign (which we follow) deals them round robin:
        assert_eq!(
            a["C0"],
            [tp("t0", 0), tp("t1", 1), tp("t3", 0), tp("t0", 1)]
        );
        assert_eq!(
            a["C2"],
            [tp("t1", 0), tp("t2", 1), tp("t2", 0), tp("t3", 1)]
        );
    }

    #[test]
    fn javadoc_example_2_unequal_subscriptions() {
        let topics = topic_map(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let members = member_map(&[
            ("C0", Subscription::new(["t0"])),
            ("C1", Subscription::new(["t0", "t1"])),
            ("C2", Subscription::new(["t0", "t1", "t2"])),
        ]);
        let a = both(&topics, &members);
        assert_eq!(a["C0"], [tp("t0", 0)]);
        assert_eq!(a["C1"], [tp("t1", 0), tp("t1", 1)]);
        assert_eq!(a["C2"], [tp("t2", 0), tp("t2", 1), tp("t2", 2)]);

        // C0 leaves: all five other ownerships are preserved.
        let members = member_map(&[
            (
                "C1",
                owning_parts(&["t0", "t1"], a["C1"].clone(), GENERATION),
            ),
            (
                "C2",
                owning_parts(&["t0", "t1", "t2"], a["C2"].clone(), GENERATION),
            ),
        ]);
        let a = both(&topics, &members);
        assert_eq!(a["C1"], [tp("t1", 0), tp("t1", 1), tp("t0", 0)]);
        assert_eq!(a["C2"], [tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
    }

    // Ported from Kafka's AbstractStickyAssignorTest (no-rack variants), run against both
    // assignors where the cooperative one must agree.

    #[test]
    fn one_consumer_no_topic() {
        let members = member_map(&[("consumer", Subscription::new(Vec::<String>::new()))]);
        let a = both(&topic_map(&[]), &members);
        assert!(a["consumer"].is_empty());
    }

    #[test]
    fn one_consumer_nonexistent_topic() {
        let members = member_map(&[("consumer", Subscription::new(["topic"]))]);
        let a = both(&topic_map(&[("topic", 0)]), &members);
        assert!(a["consumer"].is_empty());
    }

    #[test]
    fn one_consumer_one_topic() {
        let members = member_map(&[("consumer", Subscription::new(["topic"]))]);
        let a = both(&topic_map(&[("topic", 3)]), &members);
        assert_eq!(a["consumer"], tps("topic", &[0, 1, 2]));
    }

    #[test]
    fn only_assigns_partitions_from_subscribed_topics() {
        let owned = vec![
            tp("topic", 0),
            tp("topic", 1),
            tp("other", 0),
            tp("other", 1),
        ];
        let members = member_map(&[("consumer", owning_parts(&["topic"], owned, GENERATION))]);
        let a = both(&topic_map(&[("topic", 2)]), &members);
        assert_eq!(a["consumer"], tps("topic", &[0, 1]));
    }

    #[test]
    fn one_consumer_multiple_topics() {
        let members = member_map(&[("consumer", Subscription::new(["topic1", "topic2"]))]);
        let a = both(&topic_map(&[("topic1", 1), ("topic2", 2)]), &members);
        assert_eq!(
            a["consumer"],
            [tp("topic1", 0), tp("topic2", 0), tp("topic2", 1)]
        );
    }

    #[test]
    fn two_consumers_one_topic_one_partition() {
        let members = member_map(&same_subscription(&["consumer1", "consumer2"], &["topic"]));
        let a = both(&topic_map(&[("topic", 1)]), &members);
        assert_eq!(counts(&a), [1, 0]);
    }

    #[test]
    fn two_consumers_one_topic_two_partitions() {
        let members = member_map(&same_subscription(&["consumer1", "consumer2"], &["topic"]));
        let a = both(&topic_map(&[("topic", 2)]), &members);
        assert_eq!(a["consumer1"], tps("topic", &[0]));
        assert_eq!(a["consumer2"], tps("topic", &[1]));
    }

    #[test]
    fn multiple_consumers_mixed_topic_subscriptions() {
        let topics = topic_map(&[("topic1", 3), ("topic2", 2)]);
        let members = member_map(&[
            ("consumer1", Subscription::new(["topic1"])),
            ("consumer2", Subscription::new(["topic1", "topic2"])),
            ("consumer3", Subscription::new(["topic1"])),
        ]);
        let a = both(&topics, &members);
        assert_eq!(a["consumer1"], tps("topic1", &[0, 2]));
        assert_eq!(a["consumer2"], tps("topic2", &[0, 1]));
        assert_eq!(a["consumer3"], tps("topic1", &[1]));
    }

    #[test]
    fn two_consumers_two_topics_six_partitions() {
        let topics = topic_map(&[("topic1", 3), ("topic2", 3)]);
        let members = member_map(&same_subscription(
            &["consumer1", "consumer2"],
            &["topic1", "topic2"],
        ));
        let a = both(&topics, &members);
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
    fn consumer_owning_min_quota_expected_max_quota() {
        let both_topics = ["topic1", "topic2"];
        let topics = topic_map(&[("topic1", 2), ("topic2", 3)]);
        let members = member_map(&[
            (
                "consumer1",
                owning_parts(
                    &both_topics,
                    vec![tp("topic1", 0), tp("topic2", 1)],
                    GENERATION,
                ),
            ),
            (
                "consumer2",
                owning_parts(
                    &both_topics,
                    vec![tp("topic1", 1), tp("topic2", 2)],
                    GENERATION,
                ),
            ),
        ]);
        let a = both(&topics, &members);
        assert_eq!(
            a["consumer1"],
            [tp("topic1", 0), tp("topic2", 1), tp("topic2", 0)]
        );
        assert_eq!(a["consumer2"], [tp("topic1", 1), tp("topic2", 2)]);
    }

    #[test]
    fn max_quota_consumers_more_than_max_slots() {
        let both_topics = ["topic1", "topic2"];
        let topics = topic_map(&[("topic1", 2), ("topic2", 2)]);
        let members = member_map(&[
            (
                "consumer1",
                owning_parts(
                    &both_topics,
                    vec![tp("topic1", 0), tp("topic2", 0)],
                    GENERATION,
                ),
            ),
            (
                "consumer2",
                owning_parts(
                    &both_topics,
                    vec![tp("topic1", 1), tp("topic2", 1)],
                    GENERATION,
                ),
            ),
            ("consumer3", owning_parts(&both_topics, vec![], GENERATION)),
        ]);
        let a = sticky(&topics, &members);
        assert_complete_and_valid(&topics, &members, &a);
        // Exactly one partition changes owner. Kafka picks which of the two tied members keeps
        // two by HashMap order (consumer2 there); we pick by member id, so consumer1 keeps two.
        assert_eq!(a["consumer1"], [tp("topic1", 0), tp("topic2", 0)]);
        assert_eq!(a["consumer2"], [tp("topic1", 1)]);
        assert_eq!(a["consumer3"], [tp("topic2", 1)]);
        let c = cooperative(&topics, &members);
        assert!(c["consumer3"].is_empty(), "topic2-1 must be revoked first");
    }

    #[test]
    fn all_consumers_are_under_min_quota() {
        let both_topics = ["topic1", "topic2"];
        let topics = topic_map(&[("topic1", 2), ("topic2", 3)]);
        let members = member_map(&[
            (
                "consumer1",
                owning_parts(&both_topics, vec![tp("topic1", 0)], GENERATION),
            ),
            (
                "consumer2",
                owning_parts(&both_topics, vec![tp("topic1", 1)], GENERATION),
            ),
            ("consumer3", owning_parts(&both_topics, vec![], GENERATION)),
        ]);
        let a = both(&topics, &members);
        assert_eq!(a["consumer1"], [tp("topic1", 0), tp("topic2", 1)]);
        assert_eq!(a["consumer2"], [tp("topic1", 1), tp("topic2", 2)]);
        assert_eq!(a["consumer3"], [tp("topic2", 0)]);
    }

    #[test]
    fn add_remove_consumer_one_topic() {
        let topics = topic_map(&[("topic", 3)]);
        let members = member_map(&[("consumer1", Subscription::new(["topic"]))]);
        let a = both(&topics, &members);
        assert_eq!(a["consumer1"], tps("topic", &[0, 1, 2]));

        let members = member_map(&[
            (
                "consumer1",
                owning_parts(&["topic"], a["consumer1"].clone(), GENERATION),
            ),
            ("consumer2", owning_parts(&["topic"], vec![], GENERATION)),
        ]);
        let a = sticky(&topics, &members);
        assert_eq!(a["consumer1"], tps("topic", &[0, 1]));
        assert_eq!(a["consumer2"], tps("topic", &[2]));

        let members = member_map(&[(
            "consumer2",
            owning_parts(&["topic"], a["consumer2"].clone(), GENERATION),
        )]);
        let a = both(&topics, &members);
        assert_eq!(as_set(&a["consumer2"]), as_set(&tps("topic", &[0, 1, 2])));
    }

    #[test]
    fn cooperative_add_consumer_one_topic_takes_two_rounds() {
        let topics = topic_map(&[("topic", 3)]);
        let owned = tps("topic", &[0, 1, 2]);
        let members = member_map(&[
            ("consumer1", owning_parts(&["topic"], owned, GENERATION)),
            ("consumer2", owning_parts(&["topic"], vec![], GENERATION)),
        ]);
        let round1 = cooperative(&topics, &members);
        assert_eq!(round1["consumer1"], tps("topic", &[0, 1]));
        assert!(round1["consumer2"].is_empty());

        let round2 = cooperative(&topics, &owning(&members, &round1, GENERATION + 1));
        assert_eq!(round2["consumer1"], tps("topic", &[0, 1]));
        assert_eq!(round2["consumer2"], tps("topic", &[2]));
    }

    #[test]
    fn add_remove_two_consumers_two_topics() {
        let all = ["topic1", "topic2"];
        let topics = topic_map(&[("topic1", 3), ("topic2", 4)]);
        let members = member_map(&same_subscription(&["consumer1", "consumer2"], &all));
        let a = both(&topics, &members);
        assert_eq!(
            a["consumer1"],
            [
                tp("topic1", 0),
                tp("topic1", 2),
                tp("topic2", 1),
                tp("topic2", 3)
            ]
        );
        assert_eq!(
            a["consumer2"],
            [tp("topic1", 1), tp("topic2", 0), tp("topic2", 2)]
        );

        // Two consumers join.
        let members = member_map(&[
            (
                "consumer1",
                owning_parts(&all, a["consumer1"].clone(), GENERATION),
            ),
            (
                "consumer2",
                owning_parts(&all, a["consumer2"].clone(), GENERATION),
            ),
            ("consumer3", owning_parts(&all, vec![], GENERATION)),
            ("consumer4", owning_parts(&all, vec![], GENERATION)),
        ]);
        let a = sticky(&topics, &members);
        assert_complete_and_valid(&topics, &members, &a);
        assert_eq!(a["consumer1"], [tp("topic1", 0), tp("topic1", 2)]);
        assert_eq!(a["consumer2"], [tp("topic1", 1), tp("topic2", 0)]);
        assert_eq!(a["consumer3"], [tp("topic2", 1), tp("topic2", 3)]);
        assert_eq!(a["consumer4"], [tp("topic2", 2)]);

        // Both originals leave.
        let members = member_map(&[
            (
                "consumer3",
                owning_parts(&all, a["consumer3"].clone(), GENERATION),
            ),
            (
                "consumer4",
                owning_parts(&all, a["consumer4"].clone(), GENERATION),
            ),
        ]);
        let a = both(&topics, &members);
        assert_eq!(
            a["consumer3"],
            [
                tp("topic2", 1),
                tp("topic2", 3),
                tp("topic1", 0),
                tp("topic2", 0)
            ]
        );
        assert_eq!(
            a["consumer4"],
            [tp("topic2", 2), tp("topic1", 1), tp("topic1", 2)]
        );
    }

    #[test]
    fn poor_round_robin_assignment_scenario() {
        let topics = topic_map(&[
            ("topic1", 2),
            ("topic2", 1),
            ("topic3", 2),
            ("topic4", 1),
            ("topic5", 2),
        ]);
        let all = ["topic1", "topic2", "topic3", "topic4", "topic5"];
        let odd = ["topic1", "topic3", "topic5"];
        let members = member_map(&[
            ("consumer1", Subscription::new(all)),
            ("consumer2", Subscription::new(odd)),
            ("consumer3", Subscription::new(odd)),
            ("consumer4", Subscription::new(all)),
        ]);
        let a = both(&topics, &members);
        assert_balanced_overall(&a);
    }

    #[test]
    fn add_remove_topic_two_consumers() {
        let topics = topic_map(&[("topic", 3)]);
        let members = member_map(&same_subscription(&["consumer1", "consumer2"], &["topic"]));
        let first = both(&topics, &members);

        let topics = topic_map(&[("topic", 3), ("topic2", 3)]);
        let members = owning(
            &member_map(&same_subscription(
                &["consumer1", "consumer2"],
                &["topic", "topic2"],
            )),
            &first,
            GENERATION,
        );
        let second = both(&topics, &members);
        assert_eq!(counts(&second), [3, 3]);
        for member in ["consumer1", "consumer2"] {
            assert!(as_set(&second[member]).is_superset(&as_set(&first[member])));
        }

        let topics = topic_map(&[("topic2", 3)]);
        let members = owning(
            &member_map(&same_subscription(&["consumer1", "consumer2"], &["topic2"])),
            &second,
            GENERATION,
        );
        let third = both(&topics, &members);
        for member in ["consumer1", "consumer2"] {
            assert!(as_set(&second[member]).is_superset(&as_set(&third[member])));
        }
    }

    /// Topic `i` has `i` partitions and consumer `i` subscribes to topics `1..=i`.
    fn staircase(n: i32) -> (Topics, Members) {
        let names: Vec<String> = (1..=n).map(|i| format!("topic{i:02}")).collect();
        let topics = names.iter().cloned().zip(1..=n).collect();
        let members = (1..=n)
            .map(|i| {
                let own = names.iter().take(usize::try_from(i).unwrap_or(0)).cloned();
                (format!("consumer{i:02}"), Subscription::new(own))
            })
            .collect();
        (topics, members)
    }

    #[test]
    fn reassignment_after_one_consumer_leaves() {
        let (topics, members) = staircase(19);
        let a = both(&topics, &members);
        let mut members = owning(&members, &a, GENERATION);
        members.remove("consumer10");
        let b = sticky(&topics, &members);
        assert_complete_and_valid(&topics, &members, &b);
        assert_balance_criterion(&members, &b);
    }

    #[test]
    fn same_subscriptions_consumer_leaves() {
        let topics: Topics = (1..15).map(|i| (format!("topic{i:02}"), i)).collect();
        let names: Vec<&str> = topics.keys().map(String::as_str).collect();
        let ids: Vec<String> = (1..9).map(|i| format!("consumer{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let members = member_map(&same_subscription(&ids, &names));
        let a = both(&topics, &members);
        assert_balanced_overall(&a);
        let mut members = owning(&members, &a, GENERATION);
        members.remove("consumer5");
        let b = sticky(&topics, &members);
        assert_complete_and_valid(&topics, &members, &b);
        assert_balanced_overall(&b);
        assert_eq!(moved(&a, &b), 0, "only the leaver's partitions may move");
    }

    #[test]
    fn partition_claimed_twice_in_same_generation_is_invalidated() {
        let topics = topic_map(&[("topic", 3)]);
        let members = member_map(&[
            (
                "consumer1",
                owning_parts(&["topic"], tps("topic", &[0, 1]), GENERATION),
            ),
            (
                "consumer2",
                owning_parts(&["topic"], tps("topic", &[0, 2]), GENERATION),
            ),
            ("consumer3", owning_parts(&["topic"], vec![], GENERATION)),
        ]);
        let a = sticky(&topics, &members);
        assert_eq!(a["consumer1"], tps("topic", &[1]));
        assert_eq!(a["consumer2"], tps("topic", &[2]));
        assert_eq!(a["consumer3"], tps("topic", &[0]));
        // Both claimants must let topic-0 go before consumer3 may have it.
        let c = cooperative(&topics, &members);
        assert_eq!(c["consumer1"], tps("topic", &[1]));
        assert_eq!(c["consumer2"], tps("topic", &[2]));
        assert!(c["consumer3"].is_empty());
    }

    #[test]
    fn partitions_go_to_the_highest_generation_claimant() {
        let all = ["topic", "topic2", "topic3"];
        let topics = topic_map(&[("topic", 3), ("topic2", 3), ("topic3", 3)]);
        let current = 10;
        let column = |p: i32| vec![tp("topic", p), tp("topic2", p), tp("topic3", p)];
        let members = member_map(&[
            ("consumer1", owning_parts(&all, column(0), current)),
            ("consumer2", owning_parts(&all, column(1), current - 1)),
            (
                "consumer3",
                owning_parts(
                    &all,
                    vec![tp("topic2", 1), tp("topic3", 0), tp("topic3", 2)],
                    current - 2,
                ),
            ),
        ]);
        let a = sticky(&topics, &members);
        assert_complete_and_valid(&topics, &members, &a);
        assert_eq!(as_set(&a["consumer1"]), as_set(&column(0)));
        assert_eq!(as_set(&a["consumer2"]), as_set(&column(1)));
        assert_eq!(as_set(&a["consumer3"]), as_set(&column(2)));
    }

    #[test]
    fn no_reassignment_on_current_members() {
        let all = ["topic", "topic2", "topic3", "topic1"];
        let topics = topic_map(&[("topic", 3), ("topic1", 3), ("topic2", 3), ("topic3", 3)]);
        let current = 10;
        let mut fresh = Subscription::new(all);
        fresh.generation = None;
        let members = member_map(&[
            ("consumer1", fresh),
            (
                "consumer2",
                owning_parts(
                    &all,
                    vec![tp("topic", 0), tp("topic2", 0), tp("topic1", 0)],
                    current - 1,
                ),
            ),
            (
                "consumer3",
                owning_parts(
                    &all,
                    vec![tp("topic3", 2), tp("topic2", 2), tp("topic1", 1)],
                    current - 2,
                ),
            ),
            (
                "consumer4",
                owning_parts(
                    &all,
                    vec![tp("topic3", 1), tp("topic", 1), tp("topic", 2)],
                    current - 3,
                ),
            ),
        ]);
        let a = both(&topics, &members);
        assert_eq!(
            as_set(&a["consumer1"]),
            as_set(&[tp("topic1", 2), tp("topic2", 1), tp("topic3", 0)])
        );
    }

    #[test]
    fn owned_partitions_invalidated_for_stale_generation() {
        let all = ["topic", "topic2"];
        let topics = topic_map(&[("topic", 3), ("topic2", 3)]);
        let current = 10;
        let members = member_map(&[
            (
                "consumer1",
                owning_parts(
                    &all,
                    vec![tp("topic", 0), tp("topic2", 1), tp("topic", 1)],
                    current,
                ),
            ),
            (
                "consumer2",
                owning_parts(
                    &all,
                    vec![tp("topic", 0), tp("topic2", 1), tp("topic2", 2)],
                    current - 2,
                ),
            ),
        ]);
        let a = sticky(&topics, &members);
        assert_eq!(
            as_set(&a["consumer1"]),
            as_set(&[tp("topic", 0), tp("topic2", 1), tp("topic", 1)])
        );
        assert_eq!(
            as_set(&a["consumer2"]),
            as_set(&[tp("topic", 2), tp("topic2", 2), tp("topic2", 0)])
        );
        // consumer2 still claims two of consumer1's partitions, but consumer1 keeps them, so
        // the cooperative result is the same.
        assert_eq!(cooperative(&topics, &members), a);
    }

    #[test]
    fn cooperative_withholds_even_from_a_stale_claimant() {
        // consumer2 (stale) still lists topic-1; the target gives topic-1 to consumer3, so it
        // is withheld until consumer2 has revoked it.
        let topics = topic_map(&[("topic", 3)]);
        let members = member_map(&[
            (
                "consumer1",
                owning_parts(&["topic"], tps("topic", &[0, 1]), 5),
            ),
            (
                "consumer2",
                owning_parts(&["topic"], tps("topic", &[1, 2]), 4),
            ),
            ("consumer3", owning_parts(&["topic"], vec![], 5)),
        ]);
        let target = sticky(&topics, &members);
        let c = cooperative(&topics, &members);
        assert!(!c["consumer3"].contains(&tp("topic", 1)));
        for (member, partitions) in &c {
            for p in partitions {
                assert!(target[member].contains(p));
                let added = !members[member].owned_partitions.contains(p);
                for (other, s) in &members {
                    assert!(!added || other == member || !s.owned_partitions.contains(p));
                }
            }
        }
    }

    #[test]
    fn duplicate_owned_entries_and_bad_partitions_are_ignored() {
        let topics = topic_map(&[("topic", 2)]);
        let owned = vec![
            tp("topic", 1),
            tp("topic", 1),
            tp("topic", 7),
            tp("topic", -1),
        ];
        let members = member_map(&[
            ("a", owning_parts(&["topic"], owned, GENERATION)),
            ("b", owning_parts(&["topic"], vec![], GENERATION)),
        ]);
        let a = both(&topics, &members);
        assert_eq!(a["a"], tps("topic", &[1]));
        assert_eq!(a["b"], tps("topic", &[0]));
    }

    // Properties.

    /// Members whose owned partitions are random, overlapping, in random generations.
    fn arb_group_with_conflicts() -> impl Strategy<Value = (Topics, Members)> {
        let claims = prop::collection::vec((prop::collection::vec(0usize..64, 0..12), 0..3i32), 8);
        (arb_group(false), claims).prop_map(|((topics, members), claims)| {
            let all: Vec<TopicPartition> = assignable(&topics, &members).into_iter().collect();
            let members = members
                .into_iter()
                .zip(claims)
                .map(|((id, s), (picks, generation))| {
                    let owned = picks.iter().filter_map(|i| all.get(*i).cloned());
                    (id, s.owned_partitions(owned).generation(generation))
                })
                .collect();
            (topics, members)
        })
    }

    /// How many partitions each member lists as owned (conflict-free input only).
    fn owned_counts(members: &Members) -> Vec<usize> {
        members.values().map(|s| s.owned_partitions.len()).collect()
    }

    fn previous(members: &Members) -> Assignment {
        members
            .iter()
            .map(|(m, s)| (m.clone(), s.owned_partitions.clone()))
            .collect()
    }

    proptest! {
        #[test]
        fn prop_sticky_valid_and_balanced((topics, members) in arb_group_with_conflicts()) {
            let a = sticky(&topics, &members);
            assert_complete_and_valid(&topics, &members, &a);
            assert_balance_criterion(&members, &a);
            prop_assert_eq!(sticky(&topics, &members), a, "not deterministic");
        }

        #[test]
        fn prop_sticky_equal_subscriptions_within_one_and_fewest_moves(
            (topics, members) in arb_group_with_owners(true)
        ) {
            let a = sticky(&topics, &members);
            assert_complete_and_valid(&topics, &members, &a);
            assert_balanced_overall(&a);
            let total = assignable(&topics, &members).len();
            let fewest = fewest_moves(&owned_counts(&members), total);
            prop_assert_eq!(moved(&previous(&members), &a), fewest);
        }

        #[test]
        fn prop_sticky_balanced_previous_assignment_is_kept((topics, members) in arb_group(false)) {
            let a = sticky(&topics, &members);
            let again = sticky(&topics, &owning(&members, &a, GENERATION));
            prop_assert_eq!(again, a);
        }

        #[test]
        fn prop_sticky_joining_member_takes_only_its_share(
            (topics, members) in arb_group(true)
        ) {
            let before = sticky(&topics, &members);
            let mut members = owning(&members, &before, GENERATION);
            let joiner = members.values().next().map(|s| Subscription::new(s.topics.clone()));
            members.insert("new-member".to_string(), joiner.unwrap_or_default());
            let after = sticky(&topics, &members);
            assert_complete_and_valid(&topics, &members, &after);
            assert_balanced_overall(&after);
            let fewest = fewest_moves(&owned_counts(&members), assignable(&topics, &members).len());
            prop_assert_eq!(moved(&before, &after), fewest);
            prop_assert_eq!(moved(&before, &after), after["new-member"].len());
        }

        #[test]
        fn prop_sticky_leaving_member_moves_only_its_partitions(
            (topics, members) in arb_group(true),
            leaver in any::<prop::sample::Index>(),
        ) {
            let before = sticky(&topics, &members);
            let mut members = owning(&members, &before, GENERATION);
            let gone = leaver.get(&members.keys().cloned().collect::<Vec<_>>()).clone();
            members.remove(&gone);
            let after = sticky(&topics, &members);
            assert_complete_and_valid(&topics, &members, &after);
            assert_balanced_overall(&after);
            prop_assert_eq!(moved(&before, &after), 0);
        }

        #[test]
        fn prop_sticky_unequal_join_and_leave_stay_valid(
            (topics, members) in arb_group(false),
            leaver in any::<prop::sample::Index>(),
        ) {
            let before = sticky(&topics, &members);
            let mut members = owning(&members, &before, GENERATION);
            let gone = leaver.get(&members.keys().cloned().collect::<Vec<_>>()).clone();
            let removed = members.remove(&gone).unwrap_or_default();
            let after = sticky(&topics, &members);
            assert_complete_and_valid(&topics, &members, &after);
            assert_balance_criterion(&members, &after);
            members.insert("new-member".to_string(), Subscription::new(removed.topics));
            let after = sticky(&topics, &owning(&members, &after, GENERATION));
            assert_complete_and_valid(&topics, &members, &after);
            assert_balance_criterion(&members, &after);
        }

        #[test]
        fn prop_cooperative_never_assigns_a_partition_another_member_owns(
            (topics, members) in arb_group_with_conflicts()
        ) {
            let c = cooperative(&topics, &members);
            let target = sticky(&topics, &members);
            assert_valid(&topics, &members, &c);
            let claimed_by_other = |member: &String, p: &TopicPartition| {
                members.iter().any(|(o, s)| o != member && s.owned_partitions.contains(p))
            };
            for (member, partitions) in &c {
                let own = &members[member].owned_partitions;
                for p in partitions {
                    prop_assert!(target[member].contains(p));
                    let added = !own.contains(p);
                    prop_assert!(!(added && claimed_by_other(member, p)), "{} added to {} while owned", p, member);
                }
                // Only partitions new to the member and claimed by someone else are held back.
                for p in target[member].iter().filter(|p| !partitions.contains(p)) {
                    prop_assert!(!own.contains(p) && claimed_by_other(member, p), "{} withheld from {}", p, member);
                }
            }
        }

        #[test]
        fn prop_cooperative_follow_up_round_completes_balanced(
            (topics, members) in arb_group_with_owners(true)
        ) {
            let round1 = cooperative(&topics, &members);
            let members2 = owning(&members, &round1, GENERATION + 1);
            let round2 = cooperative(&topics, &members2);
            assert_complete_and_valid(&topics, &members2, &round2);
            assert_balanced_overall(&round2);
            prop_assert_eq!(moved(&round1, &round2), 0, "follow-up round revoked again");
            prop_assert_eq!(&round2, &sticky(&topics, &members2));
        }

        #[test]
        fn prop_cooperative_unequal_subscriptions_converge(
            (topics, members) in arb_group_with_owners(false)
        ) {
            let mut members = members;
            let mut rounds = 0;
            let mut result = cooperative(&topics, &members);
            while result != sticky(&topics, &members) {
                rounds += 1;
                prop_assert!(rounds <= 4, "no convergence after {} rounds", rounds);
                members = owning(&members, &result, GENERATION + rounds);
                result = cooperative(&topics, &members);
            }
            assert_complete_and_valid(&topics, &members, &result);
            assert_balance_criterion(&members, &result);
        }
    }
}
