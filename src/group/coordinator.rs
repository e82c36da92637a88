//! The in-process group coordinator: membership, generations, rebalances and committed
//! offsets of every consumer group of one broker.
//!
//! Owns: which members a group has, the group's generation, the assignment each member was
//! given, and the group's committed-offset table. It persists commits only through
//! [`offset_store`](super::offset_store) (an append to the `__consumer_offsets` log); it
//! knows nothing of files.
//!
//! # State machine (Kafka's classic group, driven by members' `poll` calls)
//!
//! * `Empty`: no members (committed offsets may exist).
//! * `PreparingRebalance`: membership, subscriptions or partition counts changed. Every member
//!   must *rejoin*: an eager member first revokes everything it owns (its
//!   `on_partitions_revoked` runs), a cooperative member reports what it still owns. A member
//!   rejoins from inside its own `poll`; nothing waits for a member that is busy in user code.
//! * When every current member has rejoined (and any `group.initial.rebalance.delay.ms` of a
//!   formerly empty group has passed), the assignment is computed at once, under the group's
//!   lock, with the assignor chosen as Kafka does (the strategies every member supports; each
//!   member votes for its first such choice; most votes wins, ties go to the oldest member's
//!   order). The generation goes up by one and each member gets its assignment as a pending
//!   hand-over, picked up at its next `poll` (`CompletingRebalance` while some are pending,
//!   then `Stable`).
//!
//! Triggers: a member joining, leaving (`close`, `unsubscribe`, drop), changing its
//! subscription, being expelled, a cooperative member that revoked partitions (the follow-up
//! rebalance of the two-round handover), and a subscribed topic whose partition count
//! changed since the last assignment (checked whenever a member polls).
//!
//! # Invariant: one owner per partition
//!
//! A partition is handed out only by a computed assignment, and an assignment is computed only
//! once every member has rejoined: eager members have then revoked everything, and cooperative
//! members have reported what they still own, which the cooperative assignor withholds from
//! everyone else until the owner has revoked it and rejoined (the follow-up rebalance). So the
//! old owner's `on_partitions_revoked` always returns before the new owner's
//! `on_partitions_assigned` starts. The one exception is Kafka's too: a member that has not
//! polled for `max.poll.interval.ms` is expelled without revoking (it learns of it at its next
//! `poll`, as `on_partitions_lost`). A member inside `poll` is never expelled.
//!
//! Expiry is lazy: it is checked whenever any member of the group polls, and a member waiting
//! for a rebalance wakes up when the oldest silent member would expire.
//!
//! # Member ids
//!
//! `client.id` (or `consumer-<group>` when empty) + `-` + a broker-wide counter zero-padded to
//! ten digits: ids with the same prefix sort in join order, which makes Kafka's range
//! assignment of a group deterministic (Kafka uses a random UUID there).
//!
//! # Static members
//!
//! A join with the `group.instance.id` of a current member replaces it, as in Kafka: the old
//! member id leaves the group and is *fenced*; its consumer's next `poll`, commit or `close`
//! fails with [`Error::FencedInstanceId`] (after running `on_partitions_lost`), and then
//! releases the partitions it held. No rebalance completes while a fenced member may still
//! hold partitions (unless it has been silent for `max.poll.interval.ms`, as an expelled
//! member), so one owner per partition holds across the replacement too.
//!
//! # Commits
//!
//! A commit from a member is accepted when the member is still in the group and its generation
//! is the group's current one, whatever the group's state: while a rebalance is being prepared
//! no partition has moved, since moving one needs a new generation (Kafka's broker accepts
//! these too). A member whose generation the group has moved past in a rebalance it has not
//! picked up yet gets [`Error::RebalanceInProgress`] (retryable: `poll`, then commit again)
//! unless a committed partition is now assigned to another member, which is
//! [`Error::CommitFailed`], as is a commit from a member no longer in the group; a fenced
//! member gets [`Error::FencedInstanceId`]. A failed commit changes nothing.
//!
//! A leaving member (`close`, `unsubscribe`, drop) asks [`Group::begin_leave`] whether its
//! generation is still current: then it runs `on_partitions_revoked`, the group waits for it to
//! leave, and commits there work; otherwise (a rebalance completed that it has not picked up,
//! or it was expelled or fenced) it runs `on_partitions_lost`, as Kafka's `onLeavePrepare`
//! does while a rebalance is in progress. A commit from a consumer without membership (`assign` mode) is accepted only while
//! the group has no members, as in Kafka. A commit that names a topic that does not exist or a
//! partition the topic does not have fails as a whole and writes nothing (Kafka commits the
//! partitions it knows and answers `UNKNOWN_TOPIC_OR_PARTITION` for the others; one `Result`
//! cannot say that, so none is written). Offsets are appended to the log first and applied to
//! the table after, under the group's lock, so the table never holds what the log does not.
//! A durable commit (`commit_sync`, administrative writes) then fsyncs the offsets log up to
//! its batch with the log's group commit, outside the group's lock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::offset_store::{self, Appended, OffsetAndMetadata};
use crate::broker::BrokerInner;
use crate::config::AssignmentStrategy;
use crate::error::{Error, Result};
use crate::group::{assignor_by_name, RebalanceProtocol, Subscription};
use crate::types::TopicPartition;

/// The state of a consumer group, as Kafka's `ConsumerGroupState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to rejoin.
    PreparingRebalance,
    /// Assignment computed; some members have not picked theirs up yet.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group was deleted.
    Dead,
}

impl GroupState {
    /// Kafka's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Every group of one broker.
#[derive(Default)]
pub(crate) struct GroupRegistry {
    groups: Mutex<BTreeMap<String, Arc<Group>>>,
    next_member: AtomicU64,
    /// Why committed offsets could not be loaded at open (a damaged `__consumer_offsets`):
    /// groups are then unavailable, and every group operation reports this, while the rest of
    /// the broker works.
    load_error: Mutex<Option<Error>>,
    /// Wakes the network members' session reaper (see `classic`).
    pub(crate) classic_timer: super::classic::Timer,
}

impl GroupRegistry {
    /// Rebuilds committed offsets from `__consumer_offsets`; called once when the broker opens.
    /// A failure does not fail the open: it is kept and reported by [`GroupRegistry::check`].
    pub(crate) fn load(&self, broker: &BrokerInner) {
        if let Err(e) = self.try_load(broker) {
            *self.load_error.lock() = Some(e);
        }
    }

    /// Fails with the load error when committed offsets could not be loaded at open.
    pub(crate) fn check(&self) -> Result<()> {
        match self.load_error.lock().as_ref() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn try_load(&self, broker: &BrokerInner) -> Result<()> {
        let (table, mut pending) = offset_store::load(broker)?;
        let mut groups = self.groups.lock();
        for (id, offsets) in table {
            let group = Group::new(&id);
            group.inner.lock().offsets = offsets;
            groups.insert(id, Arc::new(group));
        }
        for (id, by_producer) in std::mem::take(&mut pending) {
            let group = groups
                .entry(id.clone())
                .or_insert_with(|| Arc::new(Group::new(&id)));
            group.inner.lock().pending_txn = by_producer;
        }
        Ok(())
    }

    /// Completes producer `producer_id`'s pending transactional offsets in every group: the
    /// transaction coordinator wrote its marker to `__consumer_offsets`.
    pub(crate) fn complete_txn(&self, producer_id: i64, commit: bool) {
        for group in self.all() {
            group.complete_txn(producer_id, commit);
        }
    }

    pub(crate) fn get_or_create(&self, id: &str) -> Arc<Group> {
        self.groups
            .lock()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Group::new(id)))
            .clone()
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Group>> {
        self.groups.lock().get(id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Group>> {
        self.groups.lock().values().cloned().collect()
    }

    /// Removes the group if it is still `group` (a new one may have been created since).
    pub(crate) fn remove(&self, group: &Arc<Group>) {
        let mut groups = self.groups.lock();
        if groups.get(&group.id).is_some_and(|g| Arc::ptr_eq(g, group)) {
            groups.remove(&group.id);
        }
    }

    pub(crate) fn next_member_number(&self) -> u64 {
        self.next_member.fetch_add(1, Ordering::Relaxed)
    }
}

/// One group: its id and its state behind one lock.
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) inner: Mutex<GroupInner>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Empty,
    PreparingRebalance,
    Stable,
    Dead,
}

pub(crate) struct GroupInner {
    phase: Phase,
    pub(crate) generation: i32,
    /// The assignor of the last completed rebalance.
    pub(crate) protocol: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    pub(crate) offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    /// Offsets written in a transaction whose marker has not come yet, by producer id
    /// (Kafka's `pendingTransactionalOffsetCommits`): not committed until a COMMIT marker.
    pub(crate) pending_txn: BTreeMap<i64, BTreeMap<TopicPartition, OffsetAndMetadata>>,
    /// Partition counts the last assignment was computed with.
    partition_counts: BTreeMap<String, i32>,
    /// No rebalance completes before this (clock ms): `group.initial.rebalance.delay.ms`.
    not_before_ms: i64,
    /// Members replaced by a newer member with the same `group.instance.id`, by member id,
    /// until their consumer has learnt of it.
    fenced: BTreeMap<String, Fenced>,
    /// The group's network members (Kafka's classic protocol over the wire). A group has
    /// in-process members or network members, never both at once.
    pub(crate) classic: super::classic::Classic,
}

/// A member fenced by a newer one with the same `group.instance.id` (Kafka's static member
/// replacement). Its consumer learns of it at its next `poll`, commit or `close`, runs
/// `on_partitions_lost` and then releases the entry.
struct Fenced {
    instance_id: String,
    /// Its consumer may still hold partitions: no rebalance completes until it releases them,
    /// or until it has been silent for `max.poll.interval.ms` (as an expelled member).
    holds: bool,
    in_poll: bool,
    last_poll_ms: i64,
    max_poll_interval_ms: i64,
}

/// A member as the coordinator sees it.
pub(crate) struct Member {
    pub(crate) client_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) topics: Vec<String>,
    strategies: Vec<AssignmentStrategy>,
    max_poll_interval_ms: i64,
    last_poll_ms: i64,
    in_poll: bool,
    /// Set when the member rejoined the current rebalance: what it reports owning, and the
    /// generation those partitions come from.
    joined: Option<(Vec<TopicPartition>, i32)>,
    /// The member's partitions in the latest generation.
    pub(crate) assignment: Vec<TopicPartition>,
    /// An assignment not yet picked up: (generation, partitions).
    pending: Option<(i32, Vec<TopicPartition>)>,
}

/// What a consumer asks for when it joins.
pub(crate) struct JoinRequest {
    pub(crate) client_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) topics: Vec<String>,
    pub(crate) strategies: Vec<AssignmentStrategy>,
    pub(crate) max_poll_interval_ms: u32,
    pub(crate) initial_delay_ms: u32,
}

/// What a member must do next, as seen at the start of (each wake-up of) its `poll`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SyncOutcome {
    /// The member is no longer in the group (expelled, or the group deleted): its partitions
    /// are lost and it must join again as a new member.
    Unknown,
    /// Take this assignment for this generation.
    Assignment {
        generation: i32,
        partitions: Vec<TopicPartition>,
    },
    /// A rebalance is in progress and the member has not rejoined it yet.
    Rejoin,
    /// Rejoined; waiting for other members. Wake at this clock time (ms) at the latest, when
    /// a silent member would expire or the initial delay ends.
    Waiting { wake_at_ms: Option<i64> },
    /// Nothing to do.
    Stable,
    /// Another member joined with this member's `group.instance.id` and replaced it.
    Fenced {
        /// The shared `group.instance.id`.
        instance_id: String,
    },
}

/// Whether a leaving member's generation is still the group's, decided under the group's
/// lock by [`Group::begin_leave`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LeaveStatus {
    /// The member's generation is current and no rebalance completes before it leaves: its
    /// partitions have no other owner, a revoke hands them over and commits there work.
    Current,
    /// The group has completed a rebalance the member has not picked up (or the member is
    /// gone, or fenced): its partitions are lost, as Kafka's `onLeavePrepare` decides while a
    /// rebalance is in progress.
    Lost,
}

/// Whether a member with these strategies rebalances cooperatively: only when every strategy
/// it lists is cooperative (Kafka's rule for the consumer's protocol).
pub(crate) fn is_cooperative(strategies: &[AssignmentStrategy]) -> bool {
    !strategies.is_empty()
        && strategies.iter().all(|s| {
            assignor_by_name(s.as_str()).map(|a| a.protocol())
                == Some(RebalanceProtocol::Cooperative)
        })
}

impl Group {
    fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            inner: Mutex::new(GroupInner {
                phase: Phase::Empty,
                generation: 0,
                protocol: None,
                members: BTreeMap::new(),
                offsets: BTreeMap::new(),
                pending_txn: BTreeMap::new(),
                partition_counts: BTreeMap::new(),
                not_before_ms: i64::MIN,
                fenced: BTreeMap::new(),
                classic: super::classic::Classic::default(),
            }),
        }
    }

    /// Adds a member (already counted as rejoined, owning nothing) and starts a rebalance.
    pub(crate) fn join(
        &self,
        broker: &BrokerInner,
        request: JoinRequest,
        number: u64,
        now: i64,
    ) -> Result<String> {
        let mut g = self.inner.lock();
        if g.classic.has_members() {
            return Err(Error::IllegalState {
                reason: format!(
                    "group {:?} has members connected over Kafka's protocol; an in-process \
                     consumer cannot join it until they leave",
                    self.id
                ),
            });
        }
        if g.phase == Phase::Dead {
            g.phase = Phase::Empty;
        }
        if let Some(other) = g.members.values().next() {
            let common = request
                .strategies
                .iter()
                .any(|s| g.members.values().all(|m| m.strategies.contains(s)));
            if !common {
                return Err(Error::config(
                    "partition.assignment.strategy",
                    request
                        .strategies
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    format!(
                        "no assignor in common with the members of group {:?} (one uses {:?})",
                        self.id,
                        other
                            .strategies
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                    ),
                ));
            }
        }
        let prefix = if request.client_id.is_empty() {
            format!("consumer-{}", self.id)
        } else {
            request.client_id.clone()
        };
        let member_id = format!("{prefix}-{number:010}");
        if let Some(instance) = &request.instance_id {
            // Kafka replaces a static member by a new join with its group.instance.id; the
            // old member id is fenced. It may still hold partitions, which nobody else gets
            // until it has released them (see `try_complete`).
            let old: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| m.instance_id.as_ref() == Some(instance))
                .map(|(id, _)| id.clone())
                .collect();
            for id in old {
                if let Some(m) = g.members.remove(&id) {
                    let fenced = Fenced {
                        instance_id: instance.clone(),
                        holds: !m.assignment.is_empty() || m.pending.is_some(),
                        in_poll: m.in_poll,
                        last_poll_ms: m.last_poll_ms,
                        max_poll_interval_ms: m.max_poll_interval_ms,
                    };
                    g.fenced.insert(id, fenced);
                }
            }
        }
        if g.phase == Phase::Empty && request.initial_delay_ms > 0 {
            g.not_before_ms = now.saturating_add(i64::from(request.initial_delay_ms));
        }
        g.members.insert(
            member_id.clone(),
            Member {
                client_id: request.client_id,
                instance_id: request.instance_id,
                topics: request.topics,
                strategies: request.strategies,
                max_poll_interval_ms: i64::from(request.max_poll_interval_ms),
                last_poll_ms: now,
                in_poll: true,
                joined: Some((Vec::new(), -1)),
                assignment: Vec::new(),
                pending: None,
            },
        );
        g.start_rebalance(broker);
        if let Some(m) = g.members.get_mut(&member_id) {
            // A new member owns nothing: it has rejoined by joining.
            m.joined = Some((Vec::new(), -1));
        }
        g.try_complete(broker, now);
        Ok(member_id)
    }

    /// Called at the start of a member's `poll` (and at each of its wake-ups): marks it alive
    /// and in `poll`, expels silent members, notices partition-count changes, completes a
    /// rebalance that can complete, and says what the member must do.
    pub(crate) fn sync(&self, broker: &BrokerInner, member_id: &str, now: i64) -> SyncOutcome {
        let mut g = self.inner.lock();
        match g.members.get_mut(member_id) {
            None => {
                return match g.fenced.get_mut(member_id) {
                    Some(f) => {
                        f.in_poll = true;
                        f.last_poll_ms = now;
                        SyncOutcome::Fenced {
                            instance_id: f.instance_id.clone(),
                        }
                    }
                    None => SyncOutcome::Unknown,
                };
            }
            Some(m) => {
                m.in_poll = true;
                m.last_poll_ms = now;
            }
        }
        g.expire(broker, now);
        if g.phase == Phase::Stable && g.partition_counts_changed(broker) {
            g.start_rebalance(broker);
        }
        g.try_complete(broker, now);
        let phase = g.phase;
        let next_wake = g.next_wake(now);
        let Some(m) = g.members.get_mut(member_id) else {
            return SyncOutcome::Unknown;
        };
        if let Some((generation, partitions)) = m.pending.take() {
            return SyncOutcome::Assignment {
                generation,
                partitions,
            };
        }
        if phase == Phase::PreparingRebalance {
            if m.joined.is_none() {
                SyncOutcome::Rejoin
            } else {
                SyncOutcome::Waiting {
                    wake_at_ms: next_wake,
                }
            }
        } else {
            SyncOutcome::Stable
        }
    }

    /// The member rejoins the current rebalance reporting `owned` (from `generation`).
    /// Returns false when the member is unknown.
    pub(crate) fn rejoin(
        &self,
        broker: &BrokerInner,
        member_id: &str,
        owned: Vec<TopicPartition>,
        generation: i32,
        now: i64,
    ) -> bool {
        let mut g = self.inner.lock();
        let Some(m) = g.members.get_mut(member_id) else {
            return false;
        };
        m.joined = Some((owned, generation));
        m.last_poll_ms = now;
        g.try_complete(broker, now);
        true
    }

    /// Starts a rebalance (a cooperative member revoked partitions, or a subscription changed).
    pub(crate) fn request_rebalance(&self, broker: &BrokerInner, now: i64) {
        let mut g = self.inner.lock();
        if g.phase != Phase::PreparingRebalance {
            g.start_rebalance(broker);
        }
        g.try_complete(broker, now);
    }

    /// Changes a member's subscription and starts a rebalance if it differs.
    pub(crate) fn update_topics(
        &self,
        broker: &BrokerInner,
        member_id: &str,
        topics: Vec<String>,
        now: i64,
    ) {
        let mut g = self.inner.lock();
        let Some(m) = g.members.get_mut(member_id) else {
            return;
        };
        if m.topics != topics {
            m.topics = topics;
            g.start_rebalance(broker);
            g.try_complete(broker, now);
        }
    }

    /// The member left `poll` at `now`.
    pub(crate) fn poll_done(&self, member_id: &str, now: i64) {
        let mut g = self.inner.lock();
        if let Some(m) = g.members.get_mut(member_id) {
            m.in_poll = false;
            m.last_poll_ms = now;
        } else if let Some(f) = g.fenced.get_mut(member_id) {
            f.in_poll = false;
            f.last_poll_ms = now;
        }
    }

    /// A member is about to leave (close, unsubscribe, drop) and run its listener: says
    /// whether its generation is still the group's. When it is, the member counts as not
    /// rejoined and as inside `poll` until [`Group::leave`], so no rebalance completes and no
    /// expiry takes its partitions while its `on_partitions_revoked` runs: commits there are
    /// accepted and hand over exactly.
    pub(crate) fn begin_leave(&self, member_id: &str, generation: i32, now: i64) -> LeaveStatus {
        let mut g = self.inner.lock();
        let current = g.generation;
        match g.members.get_mut(member_id) {
            Some(m) if generation == current => {
                m.joined = None;
                m.in_poll = true;
                m.last_poll_ms = now;
                LeaveStatus::Current
            }
            _ => LeaveStatus::Lost,
        }
    }

    /// The member leaves the group (close, unsubscribe, drop), or a fenced member's consumer
    /// releases what it held.
    pub(crate) fn leave(&self, broker: &BrokerInner, member_id: &str, now: i64) {
        let mut g = self.inner.lock();
        if g.members.remove(member_id).is_some() {
            g.start_rebalance(broker);
            g.try_complete(broker, now);
        } else if g.fenced.remove(member_id).is_some() {
            g.try_complete(broker, now);
            // Members waiting for the release look again.
            broker.notifier().notify();
        }
    }

    /// `append_commit`, then the fsync when `durable` (what `Consumer::commit_sync` does).
    #[cfg(test)]
    pub(crate) fn commit(
        &self,
        broker: &BrokerInner,
        member: Option<(&str, i32)>,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        durable: bool,
    ) -> Result<()> {
        match self.append_commit(broker, member, offsets)? {
            Some(a) if durable => a.sync(),
            _ => Ok(()),
        }
    }

    /// Commits offsets for a member (`Some((id, generation))`) or a consumer without
    /// membership (`None`), up to the fsync: checked, appended to the page cache and visible
    /// to `committed`. The caller makes it durable, outside the group's lock so that
    /// concurrent commits share fsyncs (`Appended::sync`, or the broker's syncer for an async
    /// commit). `None` when there was nothing to append.
    pub(crate) fn append_commit(
        &self,
        broker: &BrokerInner,
        member: Option<(&str, i32)>,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<Option<Appended>> {
        for (tp, om) in offsets {
            offset_store::check_commit(&self.id, tp, om)?;
            check_partition_exists(broker, tp)?;
        }
        let mut g = self.inner.lock();
        self.check_member(&g, member, offsets)?;
        if offsets.is_empty() {
            return Ok(None);
        }
        let commits: Vec<(TopicPartition, Option<OffsetAndMetadata>)> = offsets
            .iter()
            .map(|(tp, om)| (tp.clone(), Some(om.clone())))
            .collect();
        let appended = offset_store::append_commits(broker, &self.id, &commits)?;
        if g.phase == Phase::Dead {
            g.phase = Phase::Empty;
        }
        for (tp, om) in offsets {
            g.offsets.insert(tp.clone(), om.clone());
        }
        drop(g);
        Ok(appended)
    }

    /// Checks that `member` (`Some((id, generation))`) may commit `offsets` now, or that a
    /// consumer without membership (`None`) may (the group has no members).
    fn check_member(
        &self,
        g: &GroupInner,
        member: Option<(&str, i32)>,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        let fail = |member_id: &str, generation: i32, current: i32| Error::CommitFailed {
            group: self.id.clone(),
            member_id: member_id.to_string(),
            generation,
            current_generation: current,
        };
        match member {
            Some((id, generation)) => {
                if let Some(f) = g.fenced.get(id) {
                    return Err(Error::FencedInstanceId {
                        group: self.id.clone(),
                        instance_id: f.instance_id.clone(),
                    });
                }
                if !g.members.contains_key(id) {
                    return Err(fail(id, generation, g.generation));
                }
                if generation != g.generation {
                    // The group completed a rebalance this member has not picked up yet
                    // (Kafka's CompletingRebalance). Partitions it still owns have no other
                    // owner (the cooperative assignor withholds them): retryable after a
                    // poll. A partition now assigned to another member was reassigned.
                    let reassigned = offsets.keys().any(|tp| {
                        g.members
                            .iter()
                            .any(|(other, m)| other != id && m.assignment.contains(tp))
                    });
                    if reassigned {
                        return Err(fail(id, generation, g.generation));
                    }
                    return Err(Error::RebalanceInProgress {
                        group: self.id.clone(),
                        member_id: id.to_string(),
                        generation,
                        current_generation: g.generation,
                    });
                }
            }
            None => {
                if !g.members.is_empty() || g.classic.has_members() {
                    return Err(fail("", -1, g.generation));
                }
            }
        }
        Ok(())
    }

    /// Writes offsets as part of producer `producer_id`'s transaction (Kafka's
    /// `TxnOffsetCommit`, KIP-447: the member and generation are checked as for a commit):
    /// appended to `__consumer_offsets` as a transactional batch and kept pending, not
    /// committed, until the transaction's marker ([`GroupRegistry::complete_txn`]).
    pub(crate) fn txn_commit(
        &self,
        broker: &BrokerInner,
        producer_id: i64,
        producer_epoch: i16,
        member: Option<(&str, i32)>,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        for (tp, om) in offsets {
            offset_store::check_commit(&self.id, tp, om)?;
            check_partition_exists(broker, tp)?;
        }
        let mut g = self.inner.lock();
        // Kafka checks the member only when the request names one (KIP-447): a consumer
        // without group management sends no member id and generation -1.
        if member.is_some() {
            self.check_member(&g, member, offsets)?;
        }
        if offsets.is_empty() {
            return Ok(());
        }
        offset_store::append_txn_commits(broker, &self.id, producer_id, producer_epoch, offsets)?;
        let pending = g.pending_txn.entry(producer_id).or_default();
        for (tp, om) in offsets {
            pending.insert(tp.clone(), om.clone());
        }
        Ok(())
    }

    /// Completes producer `producer_id`'s pending transactional offsets: committed
    /// (`commit`) or discarded (Kafka's `completePendingTxnOffsetCommit`).
    pub(crate) fn complete_txn(&self, producer_id: i64, commit: bool) {
        let mut g = self.inner.lock();
        let Some(pending) = g.pending_txn.remove(&producer_id) else {
            return;
        };
        if commit {
            if g.phase == Phase::Dead {
                g.phase = Phase::Empty;
            }
            g.offsets.extend(pending);
        }
    }

    /// The committed offset of a partition.
    pub(crate) fn committed(&self, tp: &TopicPartition) -> Option<OffsetAndMetadata> {
        self.inner.lock().offsets.get(tp).cloned()
    }

    /// Writes offsets (or tombstones, `None`) as an administrator, while the group has no
    /// members.
    pub(crate) fn admin_write(
        &self,
        broker: &BrokerInner,
        changes: &[(TopicPartition, Option<OffsetAndMetadata>)],
        delete_group: bool,
    ) -> Result<()> {
        let mut g = self.inner.lock();
        if !g.members.is_empty() || !g.classic.members.is_empty() {
            return Err(Error::GroupNotEmpty {
                group: self.id.clone(),
                members: g.members.len().max(g.classic.members.len()),
            });
        }
        for (tp, om) in changes {
            if let Some(om) = om {
                offset_store::check_commit(&self.id, tp, om)?;
            }
        }
        let appended = offset_store::append_commits(broker, &self.id, changes)?;
        for (tp, om) in changes {
            match om {
                Some(om) => {
                    g.offsets.insert(tp.clone(), om.clone());
                }
                None => {
                    g.offsets.remove(tp);
                }
            }
        }
        if delete_group {
            g.phase = Phase::Dead;
        }
        drop(g);
        // Administrative writes are rare: always durable.
        appended.map_or(Ok(()), |a| a.sync())
    }

    /// The group's state as Kafka names it.
    pub(crate) fn state(g: &GroupInner) -> GroupState {
        if g.classic.has_members() && g.phase != Phase::Dead {
            return g.classic.state();
        }
        match g.phase {
            Phase::Dead => GroupState::Dead,
            Phase::Empty => GroupState::Empty,
            Phase::PreparingRebalance => GroupState::PreparingRebalance,
            Phase::Stable if g.members.values().any(|m| m.pending.is_some()) => {
                GroupState::CompletingRebalance
            }
            Phase::Stable => GroupState::Stable,
        }
    }
}

/// Fails unless `tp` names a partition of an existing topic: [`Error::UnknownTopic`] (or
/// [`Error::InvalidTopicName`] for a name no topic can have) and [`Error::UnknownPartition`].
///
/// Kafka answers such a commit with `UNKNOWN_TOPIC_OR_PARTITION`; without this check the offset
/// was written to `__consumer_offsets` and kept for ever, for a partition nothing can read.
/// With `auto_create_topics` on, the lookup creates a missing topic, as every other lookup of
/// a topic by name does here (Kafka's offset commit never creates one).
fn check_partition_exists(broker: &BrokerInner, tp: &TopicPartition) -> Result<()> {
    let partitions = broker.partition_count(&tp.topic)?;
    if tp.partition >= partitions {
        return Err(Error::UnknownPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            partitions,
        });
    }
    Ok(())
}

impl GroupInner {
    /// A deleted group written to again (a join or a commit) exists again.
    pub(super) fn revive(&mut self) {
        if self.phase == Phase::Dead {
            self.phase = Phase::Empty;
        }
    }

    fn start_rebalance(&mut self, broker: &BrokerInner) {
        self.phase = if self.members.is_empty() {
            Phase::Empty
        } else {
            Phase::PreparingRebalance
        };
        for m in self.members.values_mut() {
            m.joined = None;
        }
        // Wake members waiting in `poll` so they rejoin.
        broker.notifier().notify();
    }

    /// Expels members that have not polled for `max.poll.interval.ms` (members inside `poll`
    /// are alive).
    fn expire(&mut self, broker: &BrokerInner, now: i64) {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                !m.in_poll && now.saturating_sub(m.last_poll_ms) > m.max_poll_interval_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        for f in self.fenced.values_mut() {
            if f.holds && !f.in_poll && now.saturating_sub(f.last_poll_ms) > f.max_poll_interval_ms
            {
                // As an expelled member: its partitions are taken without a revoke. The entry
                // stays so that its consumer still learns it was fenced.
                f.holds = false;
            }
        }
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            self.members.remove(id);
        }
        self.start_rebalance(broker);
    }

    /// When a waiting member should look again: the end of the initial delay, or the moment
    /// the first silent member that has not rejoined would expire.
    fn next_wake(&self, now: i64) -> Option<i64> {
        let delay = (self.not_before_ms > now).then_some(self.not_before_ms);
        let expiry = self
            .members
            .values()
            .filter(|m| !m.in_poll && m.joined.is_none())
            .map(|m| m.last_poll_ms.saturating_add(m.max_poll_interval_ms))
            .chain(
                self.fenced
                    .values()
                    .filter(|f| f.holds && !f.in_poll)
                    .map(|f| f.last_poll_ms.saturating_add(f.max_poll_interval_ms)),
            )
            .map(|at| at.saturating_add(1))
            .min();
        match (delay, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.topics.iter().cloned())
            .collect()
    }

    fn current_counts(&self, broker: &BrokerInner) -> BTreeMap<String, i32> {
        self.subscribed_topics()
            .into_iter()
            .map(|t| {
                let n = broker.partition_count(&t).unwrap_or(0);
                (t, n)
            })
            .collect()
    }

    fn partition_counts_changed(&self, broker: &BrokerInner) -> bool {
        self.current_counts(broker) != self.partition_counts
    }

    /// Kafka's protocol selection: candidates are the strategies every member supports (in the
    /// oldest member's order); each member votes for its first candidate; most votes wins.
    fn select_protocol(&self) -> Option<AssignmentStrategy> {
        let first = self.members.values().next()?;
        let candidates: Vec<AssignmentStrategy> = first
            .strategies
            .iter()
            .copied()
            .filter(|s| self.members.values().all(|m| m.strategies.contains(s)))
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .strategies
                .iter()
                .find_map(|s| candidates.iter().position(|c| c == s))
            {
                votes[i] += 1;
            }
        }
        let best = votes.iter().copied().max()?;
        let i = votes.iter().position(|&v| v == best)?;
        candidates.get(i).copied()
    }

    /// Computes the assignment if every member has rejoined and the initial delay is over.
    fn try_complete(&mut self, broker: &BrokerInner, now: i64) {
        if self.phase != Phase::PreparingRebalance {
            return;
        }
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            return;
        }
        if now < self.not_before_ms || self.members.values().any(|m| m.joined.is_none()) {
            return;
        }
        // A fenced member's consumer may still hold partitions: one owner at a time.
        if self.fenced.values().any(|f| f.holds) {
            return;
        }
        let Some(strategy) = self.select_protocol() else {
            return;
        };
        let Some(assignor) = assignor_by_name(strategy.as_str()) else {
            return;
        };
        let cooperative = assignor.protocol() == RebalanceProtocol::Cooperative;
        let counts = self.current_counts(broker);
        let subscriptions: BTreeMap<String, Subscription> = self
            .members
            .iter()
            .map(|(id, m)| {
                let (owned, generation) = m.joined.clone().unwrap_or((Vec::new(), -1));
                // An eager member revoked everything: under a cooperative assignor it owns
                // nothing; under an eager one its previous assignment feeds stickiness.
                let claims = if cooperative && !is_cooperative(&m.strategies) {
                    Vec::new()
                } else {
                    owned
                };
                let mut s = Subscription::new(m.topics.iter().cloned())
                    .owned_partitions(claims)
                    .generation(generation);
                if let Some(instance) = &m.instance_id {
                    s = s.group_instance_id(instance.clone());
                }
                (id.clone(), s)
            })
            .collect();
        let assignment = assignor.assign(&counts, &subscriptions);
        self.generation += 1;
        for (id, m) in self.members.iter_mut() {
            let mine = assignment.get(id).cloned().unwrap_or_default();
            m.assignment = mine.clone();
            m.pending = Some((self.generation, mine));
            m.joined = None;
        }
        self.protocol = Some(assignor.name().to_string());
        self.partition_counts = counts;
        self.phase = Phase::Stable;
        broker.notifier().notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Broker, TopicConfig};

    fn request(instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            client_id: "c".to_string(),
            instance_id: instance.map(str::to_string),
            topics: vec!["t".to_string()],
            strategies: vec![AssignmentStrategy::Range],
            max_poll_interval_ms: 300_000,
            initial_delay_ms: 0,
        }
    }

    fn setup() -> (Broker, Arc<Group>) {
        let broker = Broker::temporary().unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        let group = broker.inner.groups().get_or_create("g");
        (broker, group)
    }

    fn take(group: &Group, broker: &Broker, id: &str) -> (i32, Vec<TopicPartition>) {
        match group.sync(&broker.inner, id, 0) {
            SyncOutcome::Assignment {
                generation,
                partitions,
            } => (generation, partitions),
            other => panic!("expected an assignment, got {other:?}"),
        }
    }

    fn one(tp: TopicPartition) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        BTreeMap::from([(tp, OffsetAndMetadata::new(1))])
    }

    #[test]
    fn stale_generation_commit_is_retryable_unless_the_partition_moved() {
        let (broker, group) = setup();
        let b = &broker.inner;
        let a = group.join(b, request(None), 1, 0).unwrap();
        let (gen1, owned) = take(&group, &broker, &a);
        assert_eq!(owned.len(), 2);
        let c = group.join(b, request(None), 2, 0).unwrap();
        // a's generation is still current while the rebalance waits for it.
        assert_eq!(group.sync(b, &a, 0), SyncOutcome::Rejoin);
        let t0 = TopicPartition::new("t", 0);
        let t1 = TopicPartition::new("t", 1);
        group
            .commit(b, Some((&a, gen1)), &one(t0.clone()), true)
            .unwrap();
        assert!(group.rejoin(b, &a, Vec::new(), gen1, 0));
        // Completed: range gives t-0 to a, t-1 to c; a has not picked up generation 2.
        let (_, mine) = take(&group, &broker, &c);
        assert_eq!(mine, vec![t1.clone()]);
        assert!(matches!(
            group.commit(b, Some((&a, gen1)), &one(t0), true),
            Err(Error::RebalanceInProgress { .. })
        ));
        assert!(matches!(
            group.commit(b, Some((&a, gen1)), &one(t1), true),
            Err(Error::CommitFailed { .. })
        ));
        assert_eq!(group.begin_leave(&a, gen1, 0), LeaveStatus::Lost);
        let (gen2, _) = take(&group, &broker, &a);
        assert_eq!(group.begin_leave(&a, gen2, 0), LeaveStatus::Current);
    }

    #[test]
    fn a_durable_commit_fsyncs_the_offsets_log() {
        // A persistent broker: a temporary one fsyncs nothing.
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        let group = broker.inner.groups().get_or_create("g");
        let b = &broker.inner;
        let tp = TopicPartition::new("t", 0);
        group.commit(b, None, &one(tp.clone()), false).unwrap();
        let log = offset_store::offsets_log(b, "g").unwrap();
        let before = log.fsync_count();
        group.commit(b, None, &one(tp), true).unwrap();
        assert!(log.fsync_count() > before);
    }

    #[test]
    fn a_second_static_member_fences_the_first_and_waits_for_its_release() {
        let (broker, group) = setup();
        let b = &broker.inner;
        let old = group.join(b, request(Some("i")), 1, 0).unwrap();
        let (gen1, owned) = take(&group, &broker, &old);
        assert_eq!(owned.len(), 2);
        let new = group.join(b, request(Some("i")), 2, 0).unwrap();
        assert_eq!(group.inner.lock().members.len(), 1);
        // The newcomer gets nothing while the old consumer may still hold its partitions.
        assert!(matches!(
            group.sync(b, &new, 0),
            SyncOutcome::Waiting { .. }
        ));
        assert!(matches!(
            group.commit(b, Some((&old, gen1)), &BTreeMap::new(), true),
            Err(Error::FencedInstanceId { .. })
        ));
        assert_eq!(
            group.sync(b, &old, 0),
            SyncOutcome::Fenced {
                instance_id: "i".to_string()
            }
        );
        group.leave(b, &old, 0);
        let (_, mine) = take(&group, &broker, &new);
        assert_eq!(mine.len(), 2);
    }
}
