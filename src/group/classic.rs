//! Network members of a consumer group: Kafka's classic group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) as its `GroupCoordinator` runs it for clients over the wire.
//!
//! Owns: the network members of one group ([`Classic`], a field of the group's
//! `GroupInner`, under the same lock as the in-process members and the committed offsets),
//! their generation, leader, chosen protocol and the assignment bytes each was handed; the
//! answers posted to requests that wait for a rebalance; and the [`Reaper`] thread that
//! evicts members whose session timed out.
//!
//! Unlike in-process members, network members compute their assignment themselves: the
//! broker only relays. JoinGroup collects the members and their protocols (name and opaque
//! metadata), waits until every known member has rejoined (or the rebalance timeout), picks
//! the protocol every member supports by vote, and answers the leader with every member's
//! metadata; SyncGroup takes the leader's assignment and hands each member its bytes.
//!
//! # States (Kafka's `ClassicGroupState`)
//!
//! * `Empty`: no members.
//! * `PreparingRebalance`: waiting for every member to (re)join; answers wait.
//! * `CompletingRebalance`: the generation is out; waiting for the leader's SyncGroup.
//! * `Stable`: every member can have its assignment.
//!
//! # Invariants
//!
//! - A group has in-process members or network members, never both: a join of the other
//!   kind while the group has members is refused.
//! - Every waiting request holds a ticket; a ticket gets exactly one posted answer (the
//!   rebalance's result, or an error when its member was removed, fenced or the rebalance
//!   restarted) and the answer is removed when taken.
//! - A member is alive while it has a request waiting, or until `session.timeout.ms` after
//!   its last join, sync, heartbeat or commit; [`Classic::tick`] evicts the others and starts
//!   a rebalance. Time is read only through the broker's clock and passed in, so the state
//!   machine is deterministic under a `ManualClock`.
//! - Numbers from the network (timeouts, generations) are compared or added with saturation
//!   only: no request can make the state machine panic.

// Only the server (feature `server`) has network members; the group layer keeps the state
// machine in every build so that in-process code sees one kind of group state.
#![cfg_attr(not(feature = "server"), allow(dead_code))]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, MutexGuard};

use super::coordinator::{Group, GroupInner, GroupState};
use super::offset_store::{self, Appended, OffsetAndMetadata};
use crate::broker::BrokerInner;
use crate::error::Error;
use crate::types::TopicPartition;

/// Why a classic group request is refused: Kafka's error of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClassicError {
    UnknownMemberId,
    IllegalGeneration,
    RebalanceInProgress,
    FencedInstanceId,
    InconsistentGroupProtocol,
    MemberIdRequired,
    InvalidSessionTimeout,
    /// The server is stopping (or the group is being deleted) while the request waited.
    CoordinatorNotAvailable,
}

/// The broker's group settings (Kafka's `group.*` broker keys).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClassicLimits {
    pub(crate) min_session_timeout_ms: i64,
    pub(crate) max_session_timeout_ms: i64,
    pub(crate) initial_rebalance_delay_ms: i64,
}

/// A JoinGroup request.
#[derive(Clone, Debug)]
pub(crate) struct JoinParams {
    /// Empty for a member without an id yet.
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4 and later: a new member first gets `MEMBER_ID_REQUIRED` and its id.
    pub(crate) require_known_member_id: bool,
}

/// A JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JoinResponse {
    pub(crate) error: Option<ClassicError>,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    /// The leader's answer only: (member id, instance id, metadata of the chosen protocol).
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResponse {
    fn error(e: ClassicError, member_id: &str) -> JoinResponse {
        JoinResponse {
            error: Some(e),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup request.
#[derive(Clone, Debug)]
pub(crate) struct SyncParams {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    /// The leader's assignment: (member id, bytes).
    pub(crate) assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer: the member's assignment bytes, the group's protocol type and name.
pub(crate) type SyncResponse = Result<(Bytes, Option<String>, Option<String>), ClassicError>;

/// Who commits offsets over the wire (OffsetCommit, TxnOffsetCommit).
#[derive(Clone, Debug)]
pub(crate) struct Committer {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) generation: i32,
}

/// Why a network commit was refused.
#[derive(Debug)]
pub(crate) enum CommitError {
    Group(ClassicError),
    Broker(Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

/// A network member.
#[derive(Clone, Debug)]
pub(crate) struct ClassicMember {
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) instance_id: Option<String>,
    session_timeout_ms: i64,
    rebalance_timeout_ms: i64,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    /// The bytes the leader assigned it in the current generation.
    pub(crate) assignment: Bytes,
    last_seen_ms: i64,
    join_ticket: Option<u64>,
    sync_ticket: Option<u64>,
}

/// An answer posted to a waiting request.
#[derive(Debug)]
enum Posted {
    Join(JoinResponse),
    Sync(SyncResponse),
}

/// The network members of one group and their rebalance (see the module docs).
#[derive(Debug)]
pub(crate) struct Classic {
    phase: Phase,
    pub(crate) generation: i32,
    protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    leader: Option<String>,
    pub(crate) members: BTreeMap<String, ClassicMember>,
    /// Member ids handed out with `MEMBER_ID_REQUIRED`, until they join (or expire, ms).
    pending: BTreeMap<String, i64>,
    /// When the current rebalance started (clock ms).
    rebalance_start_ms: i64,
    /// The initial rebalance delay of a formerly empty group: no join completes before it.
    delay_until_ms: Option<i64>,
    /// The latest the initial delay can be extended to.
    delay_cap_ms: i64,
    results: BTreeMap<u64, Posted>,
    next_ticket: u64,
    /// An answer was posted since the flag was last taken: waiters must be woken.
    posted: bool,
}

impl Default for Classic {
    fn default() -> Classic {
        Classic {
            phase: Phase::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_start_ms: 0,
            delay_until_ms: None,
            delay_cap_ms: 0,
            results: BTreeMap::new(),
            next_ticket: 0,
            posted: false,
        }
    }
}

/// (state, generation, members, handed-out ids): see [`Classic::shape`].
type Shape = (Phase, i32, usize, usize);

/// What a request does next: answered now, or wait for the ticket's answer.
#[derive(Debug)]
enum Start<T> {
    Done(T),
    Wait(u64),
}

impl Classic {
    /// Whether the group has network members (or ids handed out to members about to join).
    pub(crate) fn has_members(&self) -> bool {
        !self.members.is_empty() || !self.pending.is_empty()
    }

    /// What the reaper's deadlines depend on, but for members' own session deadlines.
    fn shape(&self) -> Shape {
        (
            self.phase,
            self.generation,
            self.members.len(),
            self.pending.len(),
        )
    }

    /// The state as Kafka names it.
    pub(crate) fn state(&self) -> GroupState {
        match self.phase {
            Phase::Empty => GroupState::Empty,
            Phase::PreparingRebalance => GroupState::PreparingRebalance,
            Phase::CompletingRebalance => GroupState::CompletingRebalance,
            Phase::Stable => GroupState::Stable,
        }
    }

    /// The protocol type of the members (`consumer` for Kafka's consumers), if any.
    pub(crate) fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The metadata a member sent for the group's chosen protocol.
    pub(crate) fn member_metadata(&self, m: &ClassicMember) -> Bytes {
        self.protocol
            .as_ref()
            .and_then(|p| m.protocols.iter().find(|(n, _)| n == p))
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }

    /// Takes the "an answer was posted" flag.
    fn take_posted(&mut self) -> bool {
        std::mem::take(&mut self.posted)
    }

    fn ticket(&mut self) -> u64 {
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.next_ticket
    }

    fn post(&mut self, ticket: u64, answer: Posted) {
        self.results.insert(ticket, answer);
        self.posted = true;
    }

    /// Forgets a ticket whose request stopped waiting (the server is stopping).
    fn abandon(&mut self, ticket: u64) {
        self.results.remove(&ticket);
        for m in self.members.values_mut() {
            if m.join_ticket == Some(ticket) {
                m.join_ticket = None;
            }
            if m.sync_ticket == Some(ticket) {
                m.sync_ticket = None;
            }
        }
    }

    fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Whether a member with these protocols fits the group (Kafka's `supportsProtocols`).
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// The member id a static `instance_id` maps to.
    fn static_member(&self, instance_id: &str) -> Option<String> {
        self.members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance_id))
            .map(|(id, _)| id.clone())
    }

    /// Kafka's `validateMember`: a static member's instance id must map to this member id.
    fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ClassicError> {
        if let Some(instance) = instance_id {
            match self.static_member(instance) {
                Some(id) if id == member_id => return Ok(()),
                Some(_) => return Err(ClassicError::FencedInstanceId),
                None => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ClassicError::UnknownMemberId)
        }
    }

    /// JoinGroup, up to the wait. `in_process` is the number of in-process members.
    fn join(
        &mut self,
        p: JoinParams,
        limits: &ClassicLimits,
        now: i64,
        in_process: usize,
        new_id: &mut dyn FnMut(&str) -> String,
    ) -> Start<JoinResponse> {
        let fail = |e, id: &str| Start::Done(JoinResponse::error(e, id));
        if in_process > 0 {
            return fail(ClassicError::InconsistentGroupProtocol, &p.member_id);
        }
        let session = i64::from(p.session_timeout_ms);
        if session < limits.min_session_timeout_ms || session > limits.max_session_timeout_ms {
            return fail(ClassicError::InvalidSessionTimeout, &p.member_id);
        }
        if !self.supports(&p.protocol_type, &p.protocols) {
            return fail(ClassicError::InconsistentGroupProtocol, &p.member_id);
        }
        if p.member_id.is_empty() {
            let id = new_id(&p.client_id);
            if let Some(instance) = p.instance_id.clone() {
                if let Some(old) = self.static_member(&instance) {
                    return self.replace_static(&old, id, p, now);
                }
            } else if p.require_known_member_id {
                self.pending.insert(id.clone(), now.saturating_add(session));
                return fail(ClassicError::MemberIdRequired, &id);
            }
            return self.add_member(id, p, limits, now);
        }
        if self.pending.remove(&p.member_id).is_some() {
            let id = p.member_id.clone();
            return self.add_member(id, p, limits, now);
        }
        if let Err(e) = self.validate_member(&p.member_id, p.instance_id.as_deref()) {
            return fail(e, &p.member_id);
        }
        let id = p.member_id.clone();
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        let Some(m) = self.members.get_mut(&id) else {
            return fail(ClassicError::UnknownMemberId, &id);
        };
        let same = m.protocols == p.protocols && m.protocol_type == p.protocol_type;
        m.last_seen_ms = now;
        m.session_timeout_ms = session;
        m.rebalance_timeout_ms = i64::from(p.rebalance_timeout_ms).max(0);
        m.client_id = p.client_id;
        m.client_host = p.client_host;
        m.protocol_type = p.protocol_type;
        m.protocols = p.protocols;
        match self.phase {
            Phase::CompletingRebalance if same => Start::Done(self.current_join(&id)),
            Phase::Stable if same && !is_leader => Start::Done(self.current_join(&id)),
            Phase::PreparingRebalance => self.await_join(&id, now),
            _ => {
                self.prepare_rebalance(limits, now);
                self.await_join(&id, now)
            }
        }
    }

    /// The answer of the current generation for `id` (a rejoin that changes nothing).
    fn current_join(&self, id: &str) -> JoinResponse {
        let is_leader = self.leader.as_deref() == Some(id);
        JoinResponse {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: id.to_string(),
            members: if is_leader {
                self.member_list()
            } else {
                Vec::new()
            },
        }
    }

    fn member_list(&self) -> Vec<(String, Option<String>, Bytes)> {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.instance_id.clone(), self.member_metadata(m)))
            .collect()
    }

    fn add_member(
        &mut self,
        id: String,
        p: JoinParams,
        limits: &ClassicLimits,
        now: i64,
    ) -> Start<JoinResponse> {
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        self.members.insert(
            id.clone(),
            ClassicMember {
                client_id: p.client_id,
                client_host: p.client_host,
                instance_id: p.instance_id,
                session_timeout_ms: i64::from(p.session_timeout_ms),
                rebalance_timeout_ms: i64::from(p.rebalance_timeout_ms).max(0),
                protocol_type: p.protocol_type,
                protocols: p.protocols,
                assignment: Bytes::new(),
                last_seen_ms: now,
                join_ticket: None,
                sync_ticket: None,
            },
        );
        if self.phase == Phase::PreparingRebalance {
            // Kafka's InitialDelayedJoin: each new member extends the delay, up to the cap.
            if let Some(until) = self.delay_until_ms.as_mut() {
                *until = now
                    .saturating_add(limits.initial_rebalance_delay_ms)
                    .min(self.delay_cap_ms)
                    .max(*until);
            }
        } else {
            self.prepare_rebalance(limits, now);
        }
        self.await_join(&id, now)
    }

    /// A new join with the `group.instance.id` of member `old` replaces it: the old id is
    /// fenced (its waiting requests are answered `FENCED_INSTANCE_ID`). In a stable group
    /// the new id takes the old one's assignment without a rebalance, unless it was the
    /// leader or its protocols changed (Kafka's `updateStaticMemberAndRebalance`).
    fn replace_static(
        &mut self,
        old: &str,
        id: String,
        p: JoinParams,
        now: i64,
    ) -> Start<JoinResponse> {
        let Some(mut m) = self.members.remove(old) else {
            return Start::Done(JoinResponse::error(ClassicError::UnknownMemberId, &id));
        };
        if let Some(t) = m.join_ticket.take() {
            let answer = JoinResponse::error(ClassicError::FencedInstanceId, old);
            self.post(t, Posted::Join(answer));
        }
        if let Some(t) = m.sync_ticket.take() {
            self.post(t, Posted::Sync(Err(ClassicError::FencedInstanceId)));
        }
        let same = m.protocols == p.protocols && m.protocol_type == p.protocol_type;
        let was_leader = self.leader.as_deref() == Some(old);
        if was_leader {
            self.leader = Some(id.clone());
        }
        m.client_id = p.client_id;
        m.client_host = p.client_host;
        m.session_timeout_ms = i64::from(p.session_timeout_ms);
        m.rebalance_timeout_ms = i64::from(p.rebalance_timeout_ms).max(0);
        m.protocol_type = p.protocol_type;
        m.protocols = p.protocols;
        m.last_seen_ms = now;
        self.members.insert(id.clone(), m);
        let limits = ClassicLimits {
            min_session_timeout_ms: 0,
            max_session_timeout_ms: i64::MAX,
            initial_rebalance_delay_ms: 0,
        };
        match self.phase {
            Phase::Stable if same && !was_leader => Start::Done(self.current_join(&id)),
            Phase::PreparingRebalance => self.await_join(&id, now),
            _ => {
                self.prepare_rebalance(&limits, now);
                self.await_join(&id, now)
            }
        }
    }

    /// Parks member `id`'s join until the rebalance completes.
    fn await_join(&mut self, id: &str, now: i64) -> Start<JoinResponse> {
        let ticket = self.ticket();
        let old = match self.members.get_mut(id) {
            Some(m) => m.join_ticket.replace(ticket),
            None => return Start::Done(JoinResponse::error(ClassicError::UnknownMemberId, id)),
        };
        if let Some(old) = old {
            // A second join of the same member: the first is answered, as Kafka does.
            self.post(
                old,
                Posted::Join(JoinResponse::error(ClassicError::RebalanceInProgress, id)),
            );
        }
        self.try_complete(now);
        Start::Wait(ticket)
    }

    /// Starts a rebalance (Kafka's `prepareRebalance`).
    fn prepare_rebalance(&mut self, limits: &ClassicLimits, now: i64) {
        if self.phase == Phase::CompletingRebalance {
            // Members waiting for the leader's assignment learn the generation is over.
            let waiting: Vec<u64> = self
                .members
                .values_mut()
                .filter_map(|m| m.sync_ticket.take())
                .collect();
            for t in waiting {
                self.post(t, Posted::Sync(Err(ClassicError::RebalanceInProgress)));
            }
        }
        if self.phase == Phase::Empty && limits.initial_rebalance_delay_ms > 0 {
            self.delay_until_ms = Some(now.saturating_add(limits.initial_rebalance_delay_ms));
            self.delay_cap_ms = now.saturating_add(
                self.max_rebalance_timeout()
                    .max(limits.initial_rebalance_delay_ms),
            );
        } else {
            self.delay_until_ms = None;
        }
        self.phase = Phase::PreparingRebalance;
        self.rebalance_start_ms = now;
    }

    /// Completes the join phase when it can: every member has rejoined (and no id handed out
    /// is still to join) after the initial delay, or the rebalance timeout is over (members
    /// that did not rejoin are removed). Completes the sync phase at its timeout the same way.
    fn try_complete(&mut self, now: i64) {
        match self.phase {
            Phase::PreparingRebalance => {
                if self.members.is_empty() {
                    // Everyone left: nothing to wait for, the group is empty again.
                    self.complete_join(now);
                    return;
                }
                if self.delay_until_ms.is_some_and(|d| now < d) {
                    return;
                }
                let all = self.pending.is_empty()
                    && self.members.values().all(|m| m.join_ticket.is_some());
                let deadline = self
                    .rebalance_start_ms
                    .saturating_add(self.max_rebalance_timeout());
                if !all && now < deadline {
                    return;
                }
                if !all {
                    let late: Vec<String> = self
                        .members
                        .iter()
                        .filter(|(_, m)| m.join_ticket.is_none())
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in late {
                        self.remove_member(&id);
                    }
                    self.pending.clear();
                }
                self.complete_join(now);
            }
            Phase::CompletingRebalance => {
                let deadline = self
                    .rebalance_start_ms
                    .saturating_add(self.max_rebalance_timeout());
                if now < deadline {
                    return;
                }
                // Kafka removes the members that never sent SyncGroup, then rebalances.
                let late: Vec<String> = self
                    .members
                    .iter()
                    .filter(|(_, m)| m.sync_ticket.is_none())
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in late {
                    self.remove_member(&id);
                }
                let limits = ClassicLimits {
                    min_session_timeout_ms: 0,
                    max_session_timeout_ms: i64::MAX,
                    initial_rebalance_delay_ms: 0,
                };
                self.prepare_rebalance(&limits, now);
                self.try_complete(now);
            }
            Phase::Empty | Phase::Stable => {}
        }
    }

    /// Kafka's protocol selection: the protocols every member supports; each member votes
    /// for its first such; most votes wins, ties to the first candidate in the first
    /// member's order.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == *n))
            })
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(n, _)| candidates.iter().position(|c| *c == n))
            {
                if let Some(v) = votes.get_mut(i) {
                    *v += 1;
                }
            }
        }
        let best = votes.iter().copied().max()?;
        let i = votes.iter().position(|&v| v == best)?;
        candidates.get(i).map(|s| (*s).clone())
    }

    /// A new generation: answers every waiting join (the leader with every member's
    /// metadata).
    fn complete_join(&mut self, now: i64) {
        self.generation = self.generation.saturating_add(1);
        self.delay_until_ms = None;
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.protocol = None;
            self.protocol_type = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.phase = Phase::CompletingRebalance;
        self.rebalance_start_ms = now;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let answer = self.current_join(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.assignment = Bytes::new();
                m.last_seen_ms = now;
                if let Some(t) = m.join_ticket.take() {
                    self.post(t, Posted::Join(answer));
                }
            }
        }
    }

    /// Removes a member; its waiting requests are answered `UNKNOWN_MEMBER_ID`.
    fn remove_member(&mut self, id: &str) -> bool {
        let Some(m) = self.members.remove(id) else {
            return false;
        };
        if let Some(t) = m.join_ticket {
            self.post(
                t,
                Posted::Join(JoinResponse::error(ClassicError::UnknownMemberId, id)),
            );
        }
        if let Some(t) = m.sync_ticket {
            self.post(t, Posted::Sync(Err(ClassicError::UnknownMemberId)));
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        true
    }

    /// After members were removed: a stable or completing group rebalances; a preparing one
    /// may now complete.
    fn members_changed(&mut self, now: i64) {
        let limits = ClassicLimits {
            min_session_timeout_ms: 0,
            max_session_timeout_ms: i64::MAX,
            initial_rebalance_delay_ms: 0,
        };
        match self.phase {
            Phase::Stable | Phase::CompletingRebalance => self.prepare_rebalance(&limits, now),
            Phase::PreparingRebalance => {}
            Phase::Empty => return,
        }
        self.try_complete(now);
    }

    /// SyncGroup, up to the wait.
    fn sync(&mut self, p: SyncParams, now: i64) -> Start<SyncResponse> {
        if self.phase == Phase::Empty {
            return Start::Done(Err(ClassicError::UnknownMemberId));
        }
        if let Err(e) = self.validate_member(&p.member_id, p.instance_id.as_deref()) {
            return Start::Done(Err(e));
        }
        if p.generation != self.generation {
            return Start::Done(Err(ClassicError::IllegalGeneration));
        }
        let type_differs = p
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_differs = p
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol.as_ref());
        if type_differs || name_differs {
            return Start::Done(Err(ClassicError::InconsistentGroupProtocol));
        }
        let is_leader = self.leader.as_deref() == Some(p.member_id.as_str());
        match self.phase {
            Phase::Empty | Phase::PreparingRebalance => {
                Start::Done(Err(ClassicError::RebalanceInProgress))
            }
            Phase::Stable => {
                let Some(m) = self.members.get_mut(&p.member_id) else {
                    return Start::Done(Err(ClassicError::UnknownMemberId));
                };
                m.last_seen_ms = now;
                let bytes = m.assignment.clone();
                Start::Done(Ok((
                    bytes,
                    self.protocol_type.clone(),
                    self.protocol.clone(),
                )))
            }
            Phase::CompletingRebalance => {
                let ticket = self.ticket();
                let Some(m) = self.members.get_mut(&p.member_id) else {
                    return Start::Done(Err(ClassicError::UnknownMemberId));
                };
                m.last_seen_ms = now;
                if let Some(old) = m.sync_ticket.replace(ticket) {
                    self.post(old, Posted::Sync(Err(ClassicError::RebalanceInProgress)));
                }
                if is_leader {
                    let mut given: BTreeMap<String, Bytes> = p.assignments.into_iter().collect();
                    let answer_type = self.protocol_type.clone();
                    let answer_name = self.protocol.clone();
                    let mut answers = Vec::new();
                    for (id, m) in self.members.iter_mut() {
                        m.assignment = given.remove(id).unwrap_or_default();
                        if let Some(t) = m.sync_ticket.take() {
                            answers.push((t, m.assignment.clone()));
                        }
                    }
                    for (t, bytes) in answers {
                        self.post(
                            t,
                            Posted::Sync(Ok((bytes, answer_type.clone(), answer_name.clone()))),
                        );
                    }
                    self.phase = Phase::Stable;
                }
                Start::Wait(ticket)
            }
        }
    }

    /// Heartbeat (Kafka's `handleHeartbeat`).
    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> Result<(), ClassicError> {
        if self.phase == Phase::Empty {
            return Err(ClassicError::UnknownMemberId);
        }
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(ClassicError::IllegalGeneration);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen_ms = now;
        }
        if self.phase == Phase::PreparingRebalance {
            return Err(ClassicError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup of one member (an instance id, when given, names it; an empty member id
    /// then matches whatever id the instance has).
    pub(crate) fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: i64,
    ) -> Result<(), ClassicError> {
        let id = match instance_id {
            Some(instance) => match self.static_member(instance) {
                None => return Err(ClassicError::UnknownMemberId),
                Some(id) if !member_id.is_empty() && id != member_id => {
                    return Err(ClassicError::FencedInstanceId)
                }
                Some(id) => id,
            },
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            self.try_complete(now);
            return Ok(());
        }
        if !self.remove_member(&id) {
            return Err(ClassicError::UnknownMemberId);
        }
        self.members_changed(now);
        Ok(())
    }

    /// Whether a network member (or a simple committer) may commit now (Kafka's
    /// `doCommitOffsets` checks); refreshes the member's session on success.
    pub(crate) fn check_commit(
        &mut self,
        c: &Committer,
        in_process: usize,
        now: i64,
    ) -> Result<(), ClassicError> {
        if let Some(instance) = c.instance_id.as_deref() {
            if self
                .static_member(instance)
                .is_some_and(|id| id != c.member_id)
            {
                return Err(ClassicError::FencedInstanceId);
            }
        }
        if c.generation < 0 && in_process == 0 && self.members.is_empty() {
            return Ok(()); // a simple commit: no group management
        }
        if self.phase == Phase::CompletingRebalance {
            return Err(ClassicError::RebalanceInProgress);
        }
        let Some(m) = self.members.get_mut(&c.member_id) else {
            return Err(ClassicError::UnknownMemberId);
        };
        if c.generation != self.generation {
            return Err(ClassicError::IllegalGeneration);
        }
        m.last_seen_ms = now;
        Ok(())
    }

    /// Kafka's `doTxnCommitOffsets` checks: a member is checked only when named.
    pub(crate) fn check_txn_commit(&self, c: &Committer) -> Result<(), ClassicError> {
        if let Some(instance) = c.instance_id.as_deref() {
            if self
                .static_member(instance)
                .is_some_and(|id| id != c.member_id)
            {
                return Err(ClassicError::FencedInstanceId);
            }
        }
        if !c.member_id.is_empty() && !self.members.contains_key(&c.member_id) {
            return Err(ClassicError::UnknownMemberId);
        }
        if c.generation >= 0 && c.generation != self.generation {
            return Err(ClassicError::IllegalGeneration);
        }
        Ok(())
    }

    /// Evicts members whose session expired and ids handed out that were never used,
    /// completes what can complete, and returns when to look again (clock ms), if ever.
    pub(crate) fn tick(&mut self, now: i64) -> Option<i64> {
        self.pending.retain(|_, expiry| *expiry > now);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.join_ticket.is_none()
                    && m.sync_ticket.is_none()
                    && now >= m.last_seen_ms.saturating_add(m.session_timeout_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                self.remove_member(id);
            }
            self.members_changed(now);
        }
        self.try_complete(now);
        self.next_deadline()
    }

    /// The next moment something times out.
    fn next_deadline(&self) -> Option<i64> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_ticket.is_none() && m.sync_ticket.is_none())
            .map(|m| m.last_seen_ms.saturating_add(m.session_timeout_ms));
        let pending = self.pending.values().copied();
        let phase = match self.phase {
            Phase::PreparingRebalance | Phase::CompletingRebalance => {
                let timeout = self
                    .rebalance_start_ms
                    .saturating_add(self.max_rebalance_timeout());
                Some(match self.delay_until_ms {
                    Some(d) if self.phase == Phase::PreparingRebalance => d.min(timeout),
                    _ => timeout,
                })
            }
            Phase::Empty | Phase::Stable => None,
        };
        sessions.chain(pending).chain(phase).min()
    }
}

impl GroupInner {
    /// The number of in-process members (the other kind, for [`Classic`]).
    fn in_process_members(&self) -> usize {
        self.members.len()
    }
}

/// A member id for a new network member: its `client.id`, a broker-wide counter (join order)
/// and random bits, so an id from before a restart is not handed out again (Kafka uses a
/// random UUID).
fn new_member_id(broker: &BrokerInner, client_id: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let number = broker.groups().next_member_number();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(number);
    format!("{client_id}-{number:010}-{:016x}", h.finish())
}

/// How often a waiting JoinGroup or SyncGroup asks its `stop` again, in ms.
const STOP_CHECK_MS: u64 = 1000;

impl Group {
    /// Wakes whoever must look at the group again: waiting requests when answers were
    /// posted, and the reaper when the group's shape (state, generation, members) changed
    /// since `before` (a heartbeat only moves its member's deadline later: no wake-up).
    fn classic_changed(broker: &BrokerInner, g: &mut GroupInner, before: Shape) {
        if g.classic.take_posted() {
            broker.notifier().notify();
        }
        if g.classic.shape() != before {
            broker.groups().classic_timer.poke();
        }
    }

    /// Waits for the answer to `ticket`; `None` when `stop` says to give up (the server
    /// stopping, or the client gone: the ticket is abandoned, the member stays until its
    /// timeouts remove it, as in Kafka).
    fn classic_wait<'a>(
        &'a self,
        broker: &BrokerInner,
        mut g: MutexGuard<'a, GroupInner>,
        ticket: u64,
        stop: &dyn Fn() -> bool,
    ) -> Option<Posted> {
        loop {
            if let Some(answer) = g.classic.results.remove(&ticket) {
                return Some(answer);
            }
            if stop() {
                g.classic.abandon(ticket);
                return None;
            }
            let now = broker.now_ms();
            let before = g.classic.shape();
            let next = g.classic.tick(now);
            Self::classic_changed(broker, &mut g, before);
            if let Some(answer) = g.classic.results.remove(&ticket) {
                return Some(answer);
            }
            let seen = broker.notifier().events();
            drop(g);
            // At least once a second, to ask `stop` again (the server stopping, or the
            // client gone mid-wait, which nothing else would wake this for).
            let ms = next.map_or(STOP_CHECK_MS, |at| {
                u64::try_from(at.saturating_sub(now).clamp(1, STOP_CHECK_MS as i64)).unwrap_or(1)
            });
            let deadline = Some(Instant::now() + Duration::from_millis(ms));
            broker.notifier().wait_past(seen, deadline);
            g = self.inner.lock();
        }
    }

    /// JoinGroup from a network member: blocks until the rebalance completes (or the member
    /// is removed, or `stop`).
    pub(crate) fn classic_join(
        &self,
        broker: &BrokerInner,
        limits: &ClassicLimits,
        params: JoinParams,
        stop: &dyn Fn() -> bool,
    ) -> JoinResponse {
        let member_id = params.member_id.clone();
        let now = broker.now_ms();
        let mut g = self.inner.lock();
        g.revive();
        let before = g.classic.shape();
        let in_process = g.in_process_members();
        let mut ids = |client: &str| new_member_id(broker, client);
        let start = g.classic.join(params, limits, now, in_process, &mut ids);
        Self::classic_changed(broker, &mut g, before);
        match start {
            Start::Done(r) => r,
            Start::Wait(ticket) => match self.classic_wait(broker, g, ticket, stop) {
                Some(Posted::Join(r)) => r,
                _ => JoinResponse::error(ClassicError::CoordinatorNotAvailable, &member_id),
            },
        }
    }

    /// SyncGroup from a network member: a follower blocks until the leader's assignment.
    pub(crate) fn classic_sync(
        &self,
        broker: &BrokerInner,
        params: SyncParams,
        stop: &dyn Fn() -> bool,
    ) -> SyncResponse {
        let now = broker.now_ms();
        let mut g = self.inner.lock();
        let before = g.classic.shape();
        let start = g.classic.sync(params, now);
        Self::classic_changed(broker, &mut g, before);
        match start {
            Start::Done(r) => r,
            Start::Wait(ticket) => match self.classic_wait(broker, g, ticket, stop) {
                Some(Posted::Sync(r)) => r,
                _ => Err(ClassicError::CoordinatorNotAvailable),
            },
        }
    }

    /// Heartbeat from a network member.
    pub(crate) fn classic_heartbeat(
        &self,
        broker: &BrokerInner,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ClassicError> {
        let now = broker.now_ms();
        let mut g = self.inner.lock();
        let before = g.classic.shape();
        g.classic.tick(now);
        let r = g.classic.heartbeat(member_id, instance_id, generation, now);
        Self::classic_changed(broker, &mut g, before);
        r
    }

    /// LeaveGroup of network members: one answer per (member id, instance id).
    pub(crate) fn classic_leave(
        &self,
        broker: &BrokerInner,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), ClassicError>> {
        let now = broker.now_ms();
        let mut g = self.inner.lock();
        let before = g.classic.shape();
        let out = members
            .iter()
            .map(|(id, instance)| g.classic.leave(id, instance.as_deref(), now))
            .collect();
        Self::classic_changed(broker, &mut g, before);
        out
    }

    /// OffsetCommit over the wire: checked against the network membership (Kafka's rules),
    /// appended to `__consumer_offsets`, then applied to the group's committed offsets. The
    /// caller has checked each partition exists; it makes the append durable.
    pub(crate) fn classic_commit(
        &self,
        broker: &BrokerInner,
        committer: &Committer,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<Option<Appended>, CommitError> {
        let now = broker.now_ms();
        let mut g = self.inner.lock();
        let in_process = g.in_process_members();
        g.classic
            .check_commit(committer, in_process, now)
            .map_err(CommitError::Group)?;
        if offsets.is_empty() {
            return Ok(None);
        }
        let commits: Vec<(TopicPartition, Option<OffsetAndMetadata>)> = offsets
            .iter()
            .map(|(tp, om)| (tp.clone(), Some(om.clone())))
            .collect();
        let appended = offset_store::append_commits(broker, &self.id, &commits)
            .map_err(CommitError::Broker)?;
        g.revive();
        for (tp, om) in offsets {
            g.offsets.insert(tp.clone(), om.clone());
        }
        Ok(appended)
    }

    /// TxnOffsetCommit over the wire: the member is checked when the request names one
    /// (KIP-447), against the network members, or, for a group of in-process members, by
    /// [`Group::txn_commit`]'s own check.
    pub(crate) fn classic_txn_commit(
        &self,
        broker: &BrokerInner,
        producer_id: i64,
        producer_epoch: i16,
        committer: &Committer,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<(), CommitError> {
        let member = (!committer.member_id.is_empty() || committer.generation >= 0)
            .then_some((committer.member_id.as_str(), committer.generation));
        let member = {
            let g = self.inner.lock();
            if g.in_process_members() > 0 {
                // In-process members: `txn_commit` checks the member itself.
                member
            } else {
                g.classic
                    .check_txn_commit(committer)
                    .map_err(CommitError::Group)?;
                None
            }
        };
        self.txn_commit(broker, producer_id, producer_epoch, member, offsets)
            .map_err(|e| match e {
                Error::CommitFailed { .. } => CommitError::Group(ClassicError::IllegalGeneration),
                Error::RebalanceInProgress { .. } => {
                    CommitError::Group(ClassicError::RebalanceInProgress)
                }
                Error::FencedInstanceId { .. } => {
                    CommitError::Group(ClassicError::FencedInstanceId)
                }
                other => CommitError::Broker(other),
            })
    }
}

impl Group {
    /// The topics the group's members subscribe to (in-process members' subscriptions, or
    /// the topics in network members' consumer metadata).
    pub(crate) fn subscribed_topics(&self) -> std::collections::BTreeSet<String> {
        let g = self.inner.lock();
        let mut topics: std::collections::BTreeSet<String> = g
            .members
            .values()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        for m in g.classic.members.values() {
            topics.extend(decode_subscription(&g.classic.member_metadata(m)));
        }
        topics
    }

    /// Deletes the committed offsets of `partitions` (tombstones in `__consumer_offsets`,
    /// durable), whatever the group's members (Kafka's OffsetDelete; the caller leaves out
    /// the topics members subscribe to). Partitions without a commit are skipped.
    pub(crate) fn delete_offsets(
        &self,
        broker: &BrokerInner,
        partitions: &[TopicPartition],
    ) -> crate::error::Result<()> {
        let mut g = self.inner.lock();
        let tombstones: Vec<(TopicPartition, Option<OffsetAndMetadata>)> = partitions
            .iter()
            .filter(|tp| g.offsets.contains_key(tp))
            .map(|tp| (tp.clone(), None))
            .collect();
        let appended = offset_store::append_commits(broker, &self.id, &tombstones)?;
        for (tp, _) in &tombstones {
            g.offsets.remove(tp);
        }
        drop(g);
        appended.map_or(Ok(()), |a| a.sync())
    }
}

/// Wakes the [`Reaper`]s when a group's deadlines may have moved earlier.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    pokes: Mutex<u64>,
    cv: Condvar,
}

impl Timer {
    /// Something changed: reapers look again.
    pub(crate) fn poke(&self) {
        let mut p = self.pokes.lock();
        *p = p.wrapping_add(1);
        self.cv.notify_all();
    }

    fn seen(&self) -> u64 {
        *self.pokes.lock()
    }

    /// Waits until poked after `seen`, or `deadline`.
    fn wait(&self, seen: u64, deadline: Option<Instant>) {
        let mut p = self.pokes.lock();
        while *p == seen {
            match deadline {
                Some(d) => {
                    if self.cv.wait_until(&mut p, d).timed_out() {
                        return;
                    }
                }
                None => self.cv.wait(&mut p),
            }
        }
    }
}

/// The thread that evicts network members whose session timed out and ends rebalances at
/// their timeout. It sleeps until the earliest deadline of any group, or until a group
/// changes ([`Timer::poke`]); it never polls. Stopped (and joined) on drop.
pub(crate) struct Reaper {
    stop: Arc<AtomicBool>,
    broker: Arc<BrokerInner>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Starts the reaper of `broker`'s groups; `None` (with a log line) if no thread could be
    /// started, in which case waiting requests still time rebalances out themselves.
    pub(crate) fn start(broker: Arc<BrokerInner>) -> Option<Reaper> {
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (broker.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("embroker-group-reaper".into())
            .spawn(move || reap(&b, &s));
        match thread {
            Ok(t) => Some(Reaper {
                stop,
                broker,
                thread: Some(t),
            }),
            Err(e) => {
                log::warn!("embroker: no group session reaper thread: {e}");
                None
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.broker.groups().classic_timer.poke();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reap(broker: &BrokerInner, stop: &AtomicBool) {
    let timer = &broker.groups().classic_timer;
    loop {
        let seen = timer.seen();
        if stop.load(Ordering::Acquire) {
            return;
        }
        let now = broker.now_ms();
        let mut next: Option<i64> = None;
        for group in broker.groups().all() {
            let mut g = group.inner.lock();
            if !g.classic.has_members() {
                continue;
            }
            let at = g.classic.tick(now);
            if g.classic.take_posted() {
                broker.notifier().notify();
            }
            next = match (next, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let deadline = next.map(|at| {
            let ms = u64::try_from(at.saturating_sub(now).clamp(1, 60_000)).unwrap_or(1);
            Instant::now() + Duration::from_millis(ms)
        });
        timer.wait(seen, deadline);
    }
}

/// The partitions in a `ConsumerProtocolAssignment` (the bytes a consumer leader hands a
/// member); empty when the bytes are not one.
#[cfg(feature = "server")]
pub(crate) fn decode_assignment(bytes: &[u8]) -> Vec<TopicPartition> {
    use kafka_protocol::messages::ConsumerProtocolAssignment;
    use kafka_protocol::protocol::Decodable;
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).clamp(0, 3);
    let _ = bytes::Buf::get_i16(&mut buf);
    match ConsumerProtocolAssignment::decode(&mut buf, version) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|&p| TopicPartition::new(t.topic.0.to_string(), p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Without the server there are no network members.
#[cfg(not(feature = "server"))]
pub(crate) fn decode_assignment(_bytes: &[u8]) -> Vec<TopicPartition> {
    Vec::new()
}

/// The topics in a `ConsumerProtocolSubscription` (a consumer's JoinGroup metadata).
#[cfg(feature = "server")]
pub(crate) fn decode_subscription(bytes: &[u8]) -> Vec<String> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).clamp(0, 3);
    let _ = bytes::Buf::get_i16(&mut buf);
    match ConsumerProtocolSubscription::decode(&mut buf, version) {
        Ok(s) => s.topics.iter().map(|t| t.to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Without the server there are no network members.
#[cfg(not(feature = "server"))]
pub(crate) fn decode_subscription(_bytes: &[u8]) -> Vec<String> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(delay: i64) -> ClassicLimits {
        ClassicLimits {
            min_session_timeout_ms: 10,
            max_session_timeout_ms: 100_000,
            initial_rebalance_delay_ms: delay,
        }
    }

    fn params(member: &str, instance: Option<&str>, session: i32) -> JoinParams {
        JoinParams {
            member_id: member.to_string(),
            instance_id: instance.map(str::to_string),
            client_id: "c".to_string(),
            client_host: "/127.0.0.1".to_string(),
            session_timeout_ms: session,
            rebalance_timeout_ms: 1_000,
            protocol_type: "consumer".to_string(),
            protocols: vec![("range".to_string(), Bytes::from_static(b"meta"))],
            require_known_member_id: true,
        }
    }

    /// A group and a member-id counter.
    struct G {
        c: Classic,
        next: u32,
        limits: ClassicLimits,
    }

    impl G {
        fn new(delay: i64) -> G {
            G {
                c: Classic::default(),
                next: 0,
                limits: limits(delay),
            }
        }

        fn join(&mut self, p: JoinParams, now: i64) -> Start<JoinResponse> {
            let mut next = self.next;
            let start = self.c.join(p, &self.limits, now, 0, &mut |_: &str| {
                next += 1;
                format!("m{next}")
            });
            self.next = next;
            start
        }

        /// A new member's two joins; the ticket of the second.
        fn join_new(&mut self, instance: Option<&str>, session: i32, now: i64) -> (String, u64) {
            let id = match self.join(params("", instance, session), now) {
                Start::Done(r) if r.error == Some(ClassicError::MemberIdRequired) => r.member_id,
                Start::Wait(t) if instance.is_some() => {
                    let id = match self.c.results.get(&t) {
                        Some(Posted::Join(r)) => r.member_id.clone(),
                        _ => self
                            .c
                            .members
                            .iter()
                            .find(|(_, m)| m.join_ticket == Some(t))
                            .map(|(id, _)| id.clone())
                            .unwrap(),
                    };
                    return (id, t);
                }
                other => panic!("{other:?}"),
            };
            match self.join(params(&id, instance, session), now) {
                Start::Wait(t) => (id, t),
                other => panic!("{other:?}"),
            }
        }

        fn rejoin(&mut self, id: &str, now: i64) -> u64 {
            match self.join(params(id, None, 10_000), now) {
                Start::Wait(t) => t,
                other => panic!("{other:?}"),
            }
        }

        fn joined(&mut self, ticket: u64) -> JoinResponse {
            match self.c.results.remove(&ticket) {
                Some(Posted::Join(r)) => r,
                other => panic!("no join answer for {ticket}: {other:?}"),
            }
        }

        fn synced(&mut self, ticket: u64) -> SyncResponse {
            match self.c.results.remove(&ticket) {
                Some(Posted::Sync(r)) => r,
                other => panic!("no sync answer for {ticket}: {other:?}"),
            }
        }

        fn sync(
            &mut self,
            id: &str,
            generation: i32,
            assignments: Vec<(&str, &'static [u8])>,
            now: i64,
        ) -> Start<SyncResponse> {
            self.c.sync(
                SyncParams {
                    member_id: id.to_string(),
                    instance_id: None,
                    generation,
                    protocol_type: Some("consumer".to_string()),
                    protocol_name: Some("range".to_string()),
                    assignments: assignments
                        .into_iter()
                        .map(|(m, b)| (m.to_string(), Bytes::from_static(b)))
                        .collect(),
                },
                now,
            )
        }

        /// Two members `a` (leader) and `b` in a stable generation.
        fn stable_pair(&mut self, session_b: i32) -> (String, String, i32) {
            let (a, ta) = self.join_new(None, 10_000, 0);
            let ja = self.joined(ta);
            let Start::Wait(t) = self.sync(&a, ja.generation, vec![(&a, b"A")], 0) else {
                panic!()
            };
            self.synced(t).unwrap();
            let (b, tb) = self.join_new(None, session_b, 0);
            let ta = self.rejoin(&a, 0);
            let (ja, jb) = (self.joined(ta), self.joined(tb));
            assert_eq!(ja.generation, 2);
            assert_eq!(ja.leader, a);
            assert_eq!(ja.members.len(), 2);
            assert!(jb.members.is_empty());
            let Start::Wait(tb) = self.sync(&b, 2, vec![], 0) else {
                panic!()
            };
            let Start::Wait(ta) = self.sync(&a, 2, vec![(&a, b"A"), (&b, b"B")], 0) else {
                panic!()
            };
            assert_eq!(self.synced(ta).unwrap().0, Bytes::from_static(b"A"));
            assert_eq!(self.synced(tb).unwrap().0, Bytes::from_static(b"B"));
            assert_eq!(self.c.state(), GroupState::Stable);
            (a, b, 2)
        }
    }

    #[test]
    fn a_new_member_gets_its_id_first_and_a_lone_member_completes_at_once() {
        let mut g = G::new(0);
        let Start::Done(r) = g.join(params("", None, 10_000), 0) else {
            panic!()
        };
        assert_eq!(r.error, Some(ClassicError::MemberIdRequired));
        assert!(g.c.has_members(), "a handed-out id counts until it expires");
        let Start::Wait(t) = g.join(params(&r.member_id, None, 10_000), 0) else {
            panic!()
        };
        let j = g.joined(t);
        assert_eq!((j.generation, j.leader.as_str()), (1, r.member_id.as_str()));
        assert_eq!(j.protocol_name.as_deref(), Some("range"));
        assert_eq!(j.members.len(), 1);
        assert_eq!(g.c.state(), GroupState::CompletingRebalance);
    }

    #[test]
    fn a_second_member_rebalances_and_the_leader_assigns_both() {
        let mut g = G::new(0);
        let (a, _, generation) = g.stable_pair(10_000);
        assert_eq!(g.c.heartbeat(&a, None, generation, 1), Ok(()));
        assert_eq!(
            g.c.heartbeat(&a, None, 1, 1),
            Err(ClassicError::IllegalGeneration)
        );
        assert_eq!(
            g.c.heartbeat("x", None, generation, 1),
            Err(ClassicError::UnknownMemberId)
        );
    }

    #[test]
    fn a_silent_member_is_evicted_at_its_session_timeout() {
        let mut g = G::new(0);
        let (a, b, generation) = g.stable_pair(500);
        assert_eq!(g.c.tick(400), Some(500));
        assert_eq!(g.c.heartbeat(&a, None, generation, 400), Ok(()));
        assert!(g.c.members.contains_key(&b));
        g.c.tick(500);
        assert!(!g.c.members.contains_key(&b));
        assert_eq!(
            g.c.heartbeat(&a, None, generation, 501),
            Err(ClassicError::RebalanceInProgress)
        );
        let t = g.rejoin(&a, 502);
        let j = g.joined(t);
        assert_eq!((j.generation, j.members.len()), (generation + 1, 1));
    }

    #[test]
    fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
        let mut g = G::new(0);
        let (a, b, generation) = g.stable_pair(100_000);
        let (_c, tc) = g.join_new(None, 100_000, 10);
        let ta = g.rejoin(&a, 20);
        g.c.tick(500);
        assert!(g.c.results.is_empty(), "b has until the rebalance timeout");
        g.c.tick(1_010);
        assert!(!g.c.members.contains_key(&b));
        let (ja, jc) = (g.joined(ta), g.joined(tc));
        assert_eq!(ja.generation, generation + 1);
        assert_eq!(ja.members.len() + jc.members.len(), 2);
    }

    #[test]
    fn the_initial_delay_holds_the_first_rebalance() {
        let mut g = G::new(100);
        let (_a, ta) = g.join_new(None, 10_000, 0);
        assert_eq!(g.c.tick(50), Some(100));
        let (_b, tb) = g.join_new(None, 10_000, 60);
        g.c.tick(100);
        assert!(g.c.results.is_empty(), "a new member extended the delay");
        g.c.tick(160);
        assert_eq!(g.joined(ta).generation, 1);
        assert_eq!(g.joined(tb).generation, 1);
    }

    #[test]
    fn a_static_member_replaced_under_a_new_id_fences_the_old_without_a_rebalance() {
        let mut g = G::new(0);
        let (a, ta) = g.join_new(Some("ia"), 10_000, 0);
        let ja = g.joined(ta);
        let Start::Wait(t) = g.sync(&a, ja.generation, vec![], 0) else {
            panic!()
        };
        g.synced(t).unwrap();
        let (b, tb) = g.join_new(Some("ib"), 10_000, 0);
        let ta = g.rejoin(&a, 0);
        let (ja, _) = (g.joined(ta), g.joined(tb));
        let Start::Wait(tb) = g.sync(&b, ja.generation, vec![], 0) else {
            panic!()
        };
        let Start::Wait(ta) = g.sync(&a, ja.generation, vec![(&a, b"A"), (&b, b"B")], 0) else {
            panic!()
        };
        g.synced(ta).unwrap();
        g.synced(tb).unwrap();
        // b restarts: the same instance id, no member id.
        let Start::Done(r) = g.join(params("", Some("ib"), 10_000), 5) else {
            panic!()
        };
        assert_eq!(r.error, None);
        assert_eq!(r.generation, ja.generation);
        assert_ne!(r.member_id, b);
        assert_eq!(g.c.state(), GroupState::Stable);
        assert_eq!(
            g.c.heartbeat(&b, Some("ib"), ja.generation, 6),
            Err(ClassicError::FencedInstanceId)
        );
        let Start::Done(Ok((bytes, _, _))) = g.sync(&r.member_id, ja.generation, vec![], 6) else {
            panic!()
        };
        assert_eq!(bytes, Bytes::from_static(b"B"));
    }

    #[test]
    fn commits_follow_kafkas_checks() {
        let mut g = G::new(0);
        let simple = Committer {
            member_id: String::new(),
            instance_id: None,
            generation: -1,
        };
        assert_eq!(g.c.check_commit(&simple, 0, 0), Ok(()));
        assert_eq!(
            g.c.check_commit(&simple, 1, 0),
            Err(ClassicError::UnknownMemberId),
            "in-process members"
        );
        let (a, b, generation) = g.stable_pair(10_000);
        let member = |id: &str, generation| Committer {
            member_id: id.to_string(),
            instance_id: None,
            generation,
        };
        assert_eq!(g.c.check_commit(&member(&a, generation), 0, 1), Ok(()));
        assert_eq!(
            g.c.check_commit(&member(&a, generation - 1), 0, 1),
            Err(ClassicError::IllegalGeneration)
        );
        assert_eq!(
            g.c.check_commit(&simple, 0, 1),
            Err(ClassicError::UnknownMemberId)
        );
        assert_eq!(g.c.check_txn_commit(&simple), Ok(()));
        assert_eq!(g.c.leave(&b, None, 2), Ok(()));
        assert_eq!(g.c.leave(&b, None, 2), Err(ClassicError::UnknownMemberId));
        // Preparing: a commit of the current generation is still accepted (nothing moved).
        assert_eq!(g.c.check_commit(&member(&a, generation), 0, 3), Ok(()));
        let t = g.rejoin(&a, 4);
        g.joined(t);
        assert_eq!(
            g.c.check_commit(&member(&a, generation + 1), 0, 5),
            Err(ClassicError::RebalanceInProgress)
        );
    }

    #[test]
    fn the_last_member_leaving_empties_the_group() {
        let mut g = G::new(0);
        let (a, ta) = g.join_new(None, 10_000, 0);
        let j = g.joined(ta);
        let Start::Wait(ts) = g.sync(&a, j.generation, vec![(&a, b"A")], 0) else {
            panic!()
        };
        g.synced(ts).unwrap();
        assert_eq!(g.c.leave(&a, None, 1), Ok(()));
        assert_eq!(g.c.state(), GroupState::Empty);
        assert!(!g.c.has_members());
        assert_eq!(g.c.generation, 2);
        assert_eq!(g.c.tick(2), None);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Join(u8),
        Sync(u8),
        Heartbeat(u8),
        Leave(u8),
        Tick(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4).prop_map(Op::Join),
            (0u8..4).prop_map(Op::Sync),
            (0u8..4).prop_map(Op::Heartbeat),
            (0u8..4).prop_map(Op::Leave),
            (0u16..2_000).prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// Any sequence of requests and ticks keeps the state machine's invariants: a
        /// member's ticket is answered at most once, answered tickets belong to no member,
        /// the generation never goes down, and the group is Empty exactly without members.
        #[test]
        fn any_sequence_keeps_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
            let mut g = G::new(50);
            let mut ids: Vec<Option<String>> = vec![None; 4];
            let mut now = 0i64;
            let mut generation = 0;
            let mut answered = std::collections::BTreeSet::new();
            for op in ops {
                match op {
                    Op::Join(i) => {
                        let id = ids[usize::from(i)].clone().unwrap_or_default();
                        let mut p = params(&id, None, 300);
                        p.rebalance_timeout_ms = 400;
                        if let Start::Done(r) = g.join(p, now) {
                            if r.error == Some(ClassicError::MemberIdRequired) {
                                ids[usize::from(i)] = Some(r.member_id);
                            }
                        }
                    }
                    Op::Sync(i) => {
                        if let Some(id) = ids[usize::from(i)].clone() {
                            let all: Vec<(String, Bytes)> = g.c.members.keys()
                                .map(|m| (m.clone(), Bytes::from_static(b"x"))).collect();
                            let _ = g.c.sync(SyncParams {
                                member_id: id,
                                instance_id: None,
                                generation: g.c.generation,
                                protocol_type: None,
                                protocol_name: None,
                                assignments: all,
                            }, now);
                        }
                    }
                    Op::Heartbeat(i) => {
                        if let Some(id) = ids[usize::from(i)].clone() {
                            let _ = g.c.heartbeat(&id, None, g.c.generation, now);
                        }
                    }
                    Op::Leave(i) => {
                        if let Some(id) = ids[usize::from(i)].take() {
                            let _ = g.c.leave(&id, None, now);
                        }
                    }
                    Op::Tick(dt) => {
                        now += i64::from(dt);
                        g.c.tick(now);
                    }
                }
                let posted: Vec<u64> = g.c.results.keys().copied().collect();
                for t in posted {
                    prop_assert!(answered.insert(t), "ticket {} answered twice", t);
                    for m in g.c.members.values() {
                        prop_assert!(m.join_ticket != Some(t) && m.sync_ticket != Some(t));
                    }
                    g.c.results.remove(&t);
                }
                prop_assert!(g.c.generation >= generation);
                generation = g.c.generation;
                prop_assert_eq!(g.c.members.is_empty(), g.c.state() == GroupState::Empty);
            }
        }
    }
}
