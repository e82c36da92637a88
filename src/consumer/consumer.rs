//! [`Consumer`]: Kafka's `KafkaConsumer` over an in-process broker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fetcher::{end_offset, Fetcher, LazySeek, PartitionState};
use super::listener::{RebalanceListener, WakeupHandle};
use super::records::ConsumerRecords;
use crate::broker::{Broker, BrokerInner, OffsetAndTimestamp};
use crate::config::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::error::{Error, Result};
use crate::group::{
    is_cooperative, Appended, Group, JoinRequest, LeaveStatus, OffsetAndMetadata, SyncOutcome,
};
use crate::metrics::{self as m, nanos, Metrics, Sampled, Window};
use crate::notify::Notifier;
use crate::types::TopicPartition;

/// Most group steps (join, pick up, rejoin) one wake-up of `poll` takes; a bound, never
/// reached in practice (a step either finishes the rebalance or waits for others).
const GROUP_STEPS_MAX: usize = 64;

/// A commit callback, run on the consumer's thread during a later `poll`, `commit_sync` or
/// `close`.
type CommitCallback =
    Box<dyn FnOnce(&BTreeMap<TopicPartition, OffsetAndMetadata>, Result<()>) + Send>;

enum Mode {
    None,
    Assigned,
    Subscribed(Vec<String>),
}

struct Membership {
    group: Arc<Group>,
    member_id: String,
    generation: i32,
    /// The previous assignment (fed to sticky assignors after an eager revoke).
    previous: Vec<TopicPartition>,
}

#[derive(Clone, Copy)]
enum Callback {
    Revoked,
    Assigned,
    Lost,
}

/// Reads records from topics: by explicit partitions ([`Consumer::assign`]) or as a member of
/// a consumer group ([`Consumer::subscribe`]). Kafka's `KafkaConsumer`, with the same method
/// names and semantics.
///
/// A consumer is `Send` and used by one thread at a time; only [`WakeupHandle`] may be used
/// from other threads. `poll` returns as soon as records are available (woken by the append)
/// or after its timeout with nothing. Offsets are committed automatically inside `poll` every
/// `auto.commit.interval.ms` and on `close` when `enable.auto.commit` is on and a `group.id` is
/// set (at-least-once: what was returned is committed at a later poll); committed offsets are
/// the next offset to read and survive a restart of the process. [`Consumer::commit_sync`] and
/// [`Consumer::commit_offsets_sync`] also survive a power loss (they fsync); auto-commit and
/// [`Consumer::commit_async`] survive a crash of the process, not of the machine.
///
/// Dropping a consumer closes it (commits, runs revoke callbacks, leaves its group), ignoring
/// errors; call [`Consumer::close`] to see them.
///
/// ```
/// use std::time::Duration;
/// use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig};
///
/// let broker = Broker::temporary()?;
/// broker.create_topic("orders", TopicConfig::default().partitions(2))?;
/// let p0 = broker.topic("orders")?.partition(0)?;
/// p0.append(&[Record::new("first").key("k1"), Record::new("second")])?;
///
/// let mut consumer = broker.consumer(
///     ConsumerConfig::default().group_id("billing").auto_offset_reset(OffsetReset::Earliest),
/// )?;
/// consumer.subscribe(&["orders"])?;
/// let records = consumer.poll(Duration::from_secs(1))?;
/// let values: Vec<_> = records.iter().map(|r| r.value.clone().unwrap()).collect();
/// assert_eq!(values, ["first", "second"]);
/// consumer.commit_sync()?;
/// let tp = embroker::TopicPartition::new("orders", 0);
/// assert_eq!(consumer.committed(&tp)?.map(|c| c.offset), Some(2));
/// consumer.close()?;
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct Consumer {
    broker: Broker,
    config: ConsumerConfig,
    cooperative: bool,
    mode: Mode,
    fetcher: Fetcher,
    member: Option<Membership>,
    listener: Option<Box<dyn RebalanceListener>>,
    wakeup: Arc<AtomicBool>,
    next_auto_commit_ms: i64,
    completed_commits: Vec<(
        CommitCallback,
        BTreeMap<TopicPartition, OffsetAndMetadata>,
        Result<()>,
    )>,
    in_callback: bool,
    closed: bool,
    /// Set once another consumer replaced this one by its `group.instance.id`: fatal, every
    /// later `poll` and commit returns it.
    fenced: Option<Error>,
    /// Counted once per poll pass or commit (see `crate::metrics`).
    metrics: ConsumerMetrics,
}

/// The consumer's counters (see `crate::metrics`); the consumer has one user at a time, so
/// these are plain fields.
#[derive(Debug)]
struct ConsumerMetrics {
    /// `metrics.sample.window.ms` and `metrics.num.samples`.
    window: Window,
    /// Records returned by `poll`.
    records: u64,
    /// The same, windowed (one measure per pass that returned records).
    records_window: Sampled,
    /// The fetcher's `bytes_handed_out` as last recorded in `bytes_window`.
    bytes_seen: u64,
    /// Bytes handed out, windowed (one measure per pass).
    bytes_window: Sampled,
    /// Passes of `poll` over the assigned partitions.
    fetches: u64,
    /// Nanoseconds of each such pass.
    fetch_nanos: Sampled,
    /// The largest lag over the assigned partitions, one measure per pass.
    lag: Sampled,
    /// Commits that wrote offsets.
    commits: u64,
    /// Nanoseconds of each such commit.
    commit_nanos: Sampled,
    /// Assignments received from the group.
    rebalances: u64,
    /// The same, windowed.
    rebalance_window: Sampled,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("client_id", &self.config.client_id)
            .field("group_id", &self.config.group_id)
            .field(
                "member_id",
                &self.member.as_ref().map(|m| m.member_id.as_str()),
            )
            .field("assignment", &self.fetcher.assigned())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A consumer with this config (checked here; errors name the key).
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        if self.is_closed() {
            return Err(Error::Closed { what: "broker" });
        }
        if config.group_id.is_some() {
            // Committed offsets that failed to load at open must not be silently replaced.
            self.inner.groups().check()?;
        }
        let now = self.inner.clock().now_ms();
        let window = Window::new(config.metrics_sample_window_ms, config.metrics_num_samples);
        let read_committed = config.isolation_level == IsolationLevel::ReadCommitted;
        Ok(Consumer {
            broker: self.clone(),
            cooperative: is_cooperative(&config.partition_assignment_strategy),
            next_auto_commit_ms: now.saturating_add(i64::from(config.auto_commit_interval_ms)),
            config,
            mode: Mode::None,
            fetcher: Fetcher::new(read_committed),
            member: None,
            listener: None,
            wakeup: Arc::new(AtomicBool::new(false)),
            completed_commits: Vec::new(),
            in_callback: false,
            closed: false,
            fenced: None,
            metrics: ConsumerMetrics {
                window,
                records: 0,
                records_window: Sampled::default(),
                bytes_seen: 0,
                bytes_window: Sampled::default(),
                fetches: 0,
                fetch_nanos: Sampled::default(),
                lag: Sampled::default(),
                commits: 0,
                commit_nanos: Sampled::default(),
                rebalances: 0,
                rebalance_window: Sampled::default(),
            },
        })
    }
}

/// The outcome of one look for records (`Consumer::poll_step`).
pub(super) enum PollStep {
    Ready(ConsumerRecords),
    Idle { seen: u64, wake_at_ms: Option<i64> },
}

impl Consumer {
    fn now(&self) -> i64 {
        self.broker.inner.clock().now_ms()
    }

    fn check_usable(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed { what: "consumer" });
        }
        Ok(())
    }

    fn group_id(&self) -> Result<&str> {
        self.config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::IllegalState {
                reason: "this needs a group.id (the consumer has none)".to_string(),
            })
    }

    fn group(&self) -> Result<Arc<Group>> {
        let id = self.group_id()?;
        Ok(self.broker.inner.groups().get_or_create(id))
    }

    // ---- partition model -------------------------------------------------------------

    /// Takes these partitions, with no group membership (Kafka's `assign`). Replaces a
    /// previous `assign`; keeps the positions of partitions that stay. An empty list
    /// unassigns. [`Error::IllegalState`] while subscribed.
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_usable()?;
        if let Mode::Subscribed(_) = self.mode {
            return Err(Error::IllegalState {
                reason: "assign while subscribed; call unsubscribe first".to_string(),
            });
        }
        let mut states = Vec::new();
        for tp in partitions {
            if !self.fetcher.contains(tp) {
                let log = self.broker.inner.partition_log(&tp.topic, tp.partition)?;
                states.push(PartitionState::new(tp.clone(), log));
            }
        }
        let dropped: Vec<TopicPartition> = self
            .fetcher
            .assigned()
            .into_iter()
            .filter(|tp| !partitions.contains(tp))
            .collect();
        self.fetcher.remove(&dropped);
        self.fetcher.add(states);
        self.mode = if partitions.is_empty() {
            Mode::None
        } else {
            Mode::Assigned
        };
        Ok(())
    }

    /// The partitions currently assigned (by `assign` or by the group), sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.fetcher.assigned()
    }

    /// The subscribed topics (empty unless subscribed).
    pub fn subscription(&self) -> Vec<String> {
        match &self.mode {
            Mode::Subscribed(t) => t.clone(),
            _ => Vec::new(),
        }
    }

    fn state_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState> {
        self.fetcher.get_mut(tp).ok_or_else(|| Error::IllegalState {
            reason: format!("partition {tp} is not assigned to this consumer"),
        })
    }

    fn targets(&self, partitions: &[TopicPartition]) -> Result<Vec<TopicPartition>> {
        if partitions.is_empty() {
            return Ok(self.fetcher.assigned());
        }
        for tp in partitions {
            if !self.fetcher.contains(tp) {
                return Err(Error::IllegalState {
                    reason: format!("partition {tp} is not assigned to this consumer"),
                });
            }
        }
        Ok(partitions.to_vec())
    }

    /// Sets the next offset `poll` reads from `tp` (checked at the next fetch: out of range
    /// applies `auto.offset.reset`). [`Error::IllegalState`] if `tp` is not assigned.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        self.check_usable()?;
        if offset < 0 {
            return Err(Error::argument("offset", format!("{offset} is negative")));
        }
        self.state_mut(tp)?.seek(offset);
        Ok(())
    }

    /// Moves to the first offset of these partitions (all assigned ones when empty), lazily:
    /// resolved at the next `poll` or `position`, as in Kafka.
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_lazy(partitions, LazySeek::Beginning)
    }

    /// Moves to the end of these partitions (all assigned ones when empty), lazily.
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_lazy(partitions, LazySeek::End)
    }

    fn seek_lazy(&mut self, partitions: &[TopicPartition], to: LazySeek) -> Result<()> {
        self.check_usable()?;
        for tp in self.targets(partitions)? {
            self.state_mut(&tp)?.seek_lazy(to);
        }
        Ok(())
    }

    /// The offset of the next record `poll` returns from `tp` (resolving a lazy seek, the
    /// committed offset or `auto.offset.reset` first). [`Error::IllegalState`] if not assigned.
    pub fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.check_usable()?;
        if !self.fetcher.contains(tp) {
            return Err(Error::IllegalState {
                reason: format!("partition {tp} is not assigned to this consumer"),
            });
        }
        self.resolve_positions(Some(tp))?;
        self.fetcher
            .get(tp)
            .and_then(|p| p.position)
            .ok_or_else(|| Error::NoOffsetForPartition {
                partitions: vec![tp.to_string()],
            })
    }

    /// Stops returning records of these partitions (they stay assigned, no rebalance).
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, true)
    }

    /// Resumes paused partitions.
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, false)
    }

    fn set_paused(&mut self, partitions: &[TopicPartition], paused: bool) -> Result<()> {
        self.check_usable()?;
        for tp in partitions {
            self.state_mut(tp)?.paused = paused;
        }
        Ok(())
    }

    /// The paused partitions, sorted.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.fetcher
            .iter()
            .filter(|p| p.paused)
            .map(|p| p.tp.clone())
            .collect()
    }

    /// Resolves positions of partitions without one: lazy seek, then committed offset, then
    /// `auto.offset.reset`.
    fn resolve_positions(&mut self, only: Option<&TopicPartition>) -> Result<()> {
        let group = match &self.config.group_id {
            Some(id) => self.broker.inner.groups().get(id),
            None => None,
        };
        let reset = self.config.auto_offset_reset;
        let read_committed = self.fetcher.read_committed;
        let mut missing = Vec::new();
        for p in self.fetcher.iter_mut() {
            if p.position.is_some() || only.is_some_and(|tp| tp != &p.tp) {
                continue;
            }
            let committed = match p.lazy_seek {
                Some(_) => None,
                None => group.as_ref().and_then(|g| g.committed(&p.tp)),
            };
            let position = match (p.lazy_seek.take(), committed) {
                (Some(LazySeek::Beginning), _) => p.log.log_start_offset(),
                (Some(LazySeek::End), _) => end_offset(&p.log, read_committed),
                (None, Some(c)) => c.offset,
                (None, None) => match reset {
                    OffsetReset::Earliest => p.log.log_start_offset(),
                    OffsetReset::Latest => end_offset(&p.log, read_committed),
                    OffsetReset::None => {
                        missing.push(p.tp.to_string());
                        continue;
                    }
                },
            };
            p.seek(position);
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::NoOffsetForPartition {
                partitions: missing,
            })
        }
    }

    // ---- group model -----------------------------------------------------------------

    /// Joins the consumer's group for these topics at the next `poll` (Kafka's `subscribe`).
    /// Changing the topics of a subscribed consumer rebalances the group; an empty list
    /// unsubscribes. Needs a `group.id`; [`Error::IllegalState`] while partitions are assigned
    /// with `assign`.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        self.check_usable()?;
        if let Mode::Assigned = self.mode {
            return Err(Error::IllegalState {
                reason: "subscribe while partitions are assigned; call unsubscribe first"
                    .to_string(),
            });
        }
        if topics.is_empty() {
            return self.unsubscribe();
        }
        // As Kafka's `KafkaConsumer.subscribe`: an empty (or blank) name can never match.
        if topics.iter().any(|t| t.trim().is_empty()) {
            return Err(Error::argument(
                "topics",
                "a topic to subscribe to must not be empty",
            ));
        }
        if self.config.group_id.is_none() {
            return Err(Error::config(
                "group.id",
                "",
                "subscribe needs a group.id (use assign without one)",
            ));
        }
        let mut list: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        list.sort();
        list.dedup();
        if let Some(m) = &self.member {
            m.group
                .update_topics(&self.broker.inner, &m.member_id, list.clone(), self.now());
        }
        self.mode = Mode::Subscribed(list);
        Ok(())
    }

    /// [`Consumer::subscribe`] with a listener called when partitions move.
    pub fn subscribe_with_listener(
        &mut self,
        topics: &[&str],
        listener: impl RebalanceListener + 'static,
    ) -> Result<()> {
        self.subscribe(topics)?;
        self.listener = Some(Box::new(listener));
        Ok(())
    }

    /// Leaves the group (running `on_partitions_revoked` for what it owns) or drops the
    /// `assign`ed partitions. Kafka does not auto-commit here; commit first if needed.
    pub fn unsubscribe(&mut self) -> Result<()> {
        self.check_usable()?;
        let result = self.leave_group();
        self.fetcher.clear();
        self.mode = Mode::None;
        result
    }

    fn leave_group(&mut self) -> Result<()> {
        let mut first_error = None;
        if let Some(m) = &self.member {
            let (group, id, generation) = (m.group.clone(), m.member_id.clone(), m.generation);
            let owned = self.fetcher.assigned();
            // Kafka's onLeavePrepare: revoke while the generation is valid (the group then
            // waits for this leave, so commits in the callback work); otherwise the
            // partitions are lost.
            match group.begin_leave(&id, generation, self.now()) {
                LeaveStatus::Current => self.invoke(Callback::Revoked, &owned, &mut first_error),
                LeaveStatus::Lost if !owned.is_empty() => {
                    self.invoke(Callback::Lost, &owned, &mut first_error)
                }
                LeaveStatus::Lost => {}
            }
            self.fetcher.clear();
            group.leave(&self.broker.inner, &id, self.now());
            self.member = None;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Fails with the fencing error once this consumer was replaced by its
    /// `group.instance.id`; the first time, runs `on_partitions_lost` for what it holds and
    /// releases it to the group.
    fn check_fenced(&mut self) -> Result<()> {
        let Some(e) = self.fenced.clone() else {
            return Ok(());
        };
        if self.member.is_some() && !self.in_callback {
            let mut ignored = None;
            let owned = self.fetcher.assigned();
            if !owned.is_empty() {
                self.invoke(Callback::Lost, &owned, &mut ignored);
            }
            self.fetcher.clear();
            if let Some(m) = self.member.take() {
                m.group.leave(&self.broker.inner, &m.member_id, self.now());
            }
        }
        Err(e)
    }

    fn invoke(&mut self, which: Callback, partitions: &[TopicPartition], err: &mut Option<Error>) {
        let Some(mut listener) = self.listener.take() else {
            return;
        };
        self.in_callback = true;
        let (name, result) = match which {
            Callback::Revoked => (
                "on_partitions_revoked",
                listener.on_partitions_revoked(self, partitions),
            ),
            Callback::Assigned => (
                "on_partitions_assigned",
                listener.on_partitions_assigned(self, partitions),
            ),
            Callback::Lost => (
                "on_partitions_lost",
                listener.on_partitions_lost(self, partitions),
            ),
        };
        self.in_callback = false;
        self.listener = Some(listener);
        if let Err(e) = result {
            err.get_or_insert(Error::Callback {
                callback: name,
                reason: e.to_string(),
            });
        }
    }

    /// Runs the group protocol until this member is stable or must wait for others. Returns
    /// when to look again (clock ms), if waiting.
    fn group_step(&mut self, topics: &[String], err: &mut Option<Error>) -> Result<Option<i64>> {
        for _ in 0..GROUP_STEPS_MAX {
            let now = self.now();
            let Some(m) = &self.member else {
                self.join_group(topics, err)?;
                continue;
            };
            let (group, member_id) = (m.group.clone(), m.member_id.clone());
            match group.sync(&self.broker.inner, &member_id, now) {
                SyncOutcome::Unknown => {
                    let owned = self.fetcher.assigned();
                    if !owned.is_empty() {
                        self.invoke(Callback::Lost, &owned, err);
                    }
                    self.fetcher.clear();
                    self.member = None;
                }
                SyncOutcome::Assignment {
                    generation,
                    partitions,
                } => self.take_assignment(generation, partitions, err)?,
                SyncOutcome::Rejoin => self.rejoin(topics, err),
                SyncOutcome::Waiting { wake_at_ms } => return Ok(wake_at_ms),
                SyncOutcome::Stable => return Ok(None),
                SyncOutcome::Fenced { instance_id } => {
                    self.fenced = Some(Error::FencedInstanceId {
                        group: group.id.clone(),
                        instance_id,
                    });
                    self.check_fenced()?;
                }
            }
        }
        Ok(None)
    }

    fn join_group(&mut self, topics: &[String], err: &mut Option<Error>) -> Result<()> {
        if !self.cooperative {
            // Eager: the rebalance starts with a revoke of everything owned, even nothing.
            self.invoke(Callback::Revoked, &[], err);
        }
        let group = self.group()?;
        let number = self.broker.inner.groups().next_member_number();
        let request = JoinRequest {
            client_id: self.config.client_id.clone(),
            instance_id: self.config.group_instance_id.clone(),
            topics: topics.to_vec(),
            strategies: self.config.partition_assignment_strategy.clone(),
            max_poll_interval_ms: self.config.max_poll_interval_ms,
            initial_delay_ms: self.config.group_initial_rebalance_delay_ms,
        };
        let member_id = group.join(&self.broker.inner, request, number, self.now())?;
        self.member = Some(Membership {
            group,
            member_id,
            generation: -1,
            previous: Vec::new(),
        });
        Ok(())
    }

    fn rejoin(&mut self, topics: &[String], err: &mut Option<Error>) {
        if self.config.auto_commit_enabled() {
            // Kafka's onJoinPrepare: commit what was consumed before anything moves.
            let _ = self.commit_positions(false);
        }
        let owned = self.fetcher.assigned();
        let reported = if self.cooperative {
            let gone: Vec<TopicPartition> = owned
                .iter()
                .filter(|tp| !topics.contains(&tp.topic))
                .cloned()
                .collect();
            if !gone.is_empty() {
                self.invoke(Callback::Revoked, &gone, err);
                self.fetcher.remove(&gone);
            }
            self.fetcher.assigned()
        } else {
            self.invoke(Callback::Revoked, &owned, err);
            self.fetcher.clear();
            if let Some(m) = &mut self.member {
                m.previous = owned.clone();
            }
            owned
        };
        if let Some(m) = &self.member {
            let (group, id, generation) = (m.group.clone(), m.member_id.clone(), m.generation);
            group.rejoin(&self.broker.inner, &id, reported, generation, self.now());
        }
    }

    fn take_assignment(
        &mut self,
        generation: i32,
        partitions: Vec<TopicPartition>,
        err: &mut Option<Error>,
    ) -> Result<()> {
        let owned = self.fetcher.assigned();
        let revoked: Vec<TopicPartition> = owned
            .iter()
            .filter(|tp| !partitions.contains(tp))
            .cloned()
            .collect();
        let added: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| !owned.contains(tp))
            .cloned()
            .collect();
        if let Some(m) = &mut self.member {
            m.generation = generation;
            self.metrics.rebalances += 1;
            let (w, now) = (self.metrics.window, self.now());
            self.metrics.rebalance_window.record(w, 1.0, now);
        }
        if !revoked.is_empty() {
            self.invoke(Callback::Revoked, &revoked, err);
            self.fetcher.remove(&revoked);
        }
        let mut states = Vec::new();
        for tp in &added {
            match self.broker.inner.partition_log(&tp.topic, tp.partition) {
                Ok(log) => states.push(PartitionState::new(tp.clone(), log)),
                Err(e) => {
                    err.get_or_insert(e);
                }
            }
        }
        self.fetcher.add(states);
        self.invoke(Callback::Assigned, &added, err);
        if !revoked.is_empty() {
            // Cooperative: the revoked partitions reach their new owner in a follow-up round.
            if let Some(m) = &self.member {
                m.group.request_rebalance(&self.broker.inner, self.now());
            }
        }
        Ok(())
    }

    // ---- poll ------------------------------------------------------------------------

    /// Returns records as soon as any are available, or nothing once `timeout` passes; at most
    /// `max.poll.records`, spread over the partitions (each poll starts at the next partition).
    /// In the group model it also joins the group and takes part in rebalances (listener
    /// callbacks run here), and auto-commits when due.
    ///
    /// Errors: [`Error::IllegalState`] with neither `assign` nor `subscribe`;
    /// [`Error::Wakeup`] after [`WakeupHandle::wakeup`]; [`Error::NoOffsetForPartition`] /
    /// [`Error::OffsetOutOfRange`] under `auto.offset.reset=none`; [`Error::Callback`] when a
    /// listener failed (the rebalance still completed); [`Error::FencedInstanceId`] once
    /// another consumer joined with this one's `group.instance.id` (after
    /// `on_partitions_lost`; fatal, every later `poll` and commit fails so too).
    pub fn poll(&mut self, timeout: Duration) -> Result<ConsumerRecords> {
        let topics = self.poll_begin()?;
        let result = self.poll_loop(timeout, topics.as_deref());
        self.poll_end();
        result
    }

    /// The checks at the start of `poll` (and of an async receive), and the topics of the
    /// subscription (`None`: assigned partitions).
    pub(super) fn poll_begin(&mut self) -> Result<Option<Vec<String>>> {
        self.check_usable()?;
        if self.in_callback {
            return Err(Error::IllegalState {
                reason: "poll from inside a rebalance callback".to_string(),
            });
        }
        self.check_fenced()?;
        self.run_commit_callbacks();
        match &self.mode {
            Mode::None => Err(Error::IllegalState {
                reason: "poll with neither assign nor subscribe".to_string(),
            }),
            Mode::Assigned => Ok(None),
            Mode::Subscribed(t) => Ok(Some(t.clone())),
        }
    }

    /// The member left `poll` (or its async receive completed or was dropped).
    pub(super) fn poll_end(&mut self) {
        if let Some(m) = &self.member {
            m.group.poll_done(&m.member_id, self.now());
        }
    }

    /// The broker this consumer reads from.
    pub(super) fn broker_inner(&self) -> &Arc<BrokerInner> {
        &self.broker.inner
    }

    /// The broker's notifier: appends, group changes and wake-ups bump it.
    pub(super) fn notifier(&self) -> &Arc<Notifier> {
        self.broker.inner.notifier()
    }

    /// One look for records, as `poll` makes on each wake-up: the group protocol, auto-commit,
    /// position resets, then a fetch. `Idle` carries the notifier's event count read before
    /// looking (wait past it) and when the group protocol wants to look again (clock ms).
    pub(super) fn poll_step(&mut self, topics: Option<&[String]>) -> Result<PollStep> {
        if self.wakeup.swap(false, Ordering::SeqCst) {
            return Err(Error::Wakeup);
        }
        if self.broker.is_closed() {
            return Err(Error::Closed { what: "broker" });
        }
        let seen = self.notifier().events();
        let mut err = None;
        let wake_at_ms = match topics {
            Some(topics) => self.group_step(topics, &mut err)?,
            None => None,
        };
        if let Some(e) = err.take() {
            return Err(e);
        }
        self.maybe_auto_commit();
        self.resolve_positions(None)?;
        let fetch = Instant::now();
        let parts = self.fetcher.collect(
            self.config.max_poll_records as usize,
            self.config.max_partition_fetch_bytes.max(1) as usize,
            self.config.auto_offset_reset,
        )?;
        let fetch_nanos = nanos(fetch.elapsed());
        // One load of each assigned partition's end offset a pass, not a record.
        let read_committed = self.fetcher.read_committed;
        let lag = self
            .fetcher
            .iter()
            .filter_map(|p| Some(end_offset(&p.log, read_committed) - p.position?))
            .max();
        let (w, now) = (self.metrics.window, self.now());
        let bytes = self.fetcher.bytes_handed_out;
        let c = &mut self.metrics;
        c.fetches += 1;
        c.fetch_nanos.record(w, fetch_nanos as f64, now);
        if let Some(lag) = lag {
            c.lag.record(w, lag as f64, now);
        }
        let new_bytes = bytes.saturating_sub(c.bytes_seen);
        if new_bytes > 0 {
            c.bytes_window.record(w, new_bytes as f64, now);
            c.bytes_seen = bytes;
        }
        if !parts.is_empty() {
            let records = ConsumerRecords::new(parts);
            let count = records.count() as u64;
            c.records += count;
            c.records_window.record(w, count as f64, now);
            return Ok(PollStep::Ready(records));
        }
        Ok(PollStep::Idle { seen, wake_at_ms })
    }

    fn poll_loop(
        &mut self,
        timeout: Duration,
        topics: Option<&[String]>,
    ) -> Result<ConsumerRecords> {
        let deadline = Instant::now().checked_add(timeout);
        let notifier = self.notifier().clone();
        loop {
            let (seen, wake_at_ms) = match self.poll_step(topics)? {
                PollStep::Ready(records) => return Ok(records),
                PollStep::Idle { seen, wake_at_ms } => (seen, wake_at_ms),
            };
            let now = Instant::now();
            let mut wait_until = match deadline {
                Some(d) if now >= d => return Ok(ConsumerRecords::default()),
                Some(d) => d,
                None => now + Duration::from_secs(3600),
            };
            if let Some(at) = wake_at_ms {
                let delta = u64::try_from(at.saturating_sub(self.now())).unwrap_or(0);
                if let Some(wake) = now.checked_add(Duration::from_millis(delta)) {
                    wait_until = wait_until.min(wake);
                }
            }
            notifier.wait_past(seen, Some(wait_until));
        }
    }

    // ---- offsets ---------------------------------------------------------------------

    fn maybe_auto_commit(&mut self) {
        if !self.config.auto_commit_enabled() {
            return;
        }
        let now = self.now();
        if now < self.next_auto_commit_ms {
            return;
        }
        self.next_auto_commit_ms =
            now.saturating_add(i64::from(self.config.auto_commit_interval_ms));
        // Kafka logs auto-commit failures rather than throwing them.
        let _ = self.commit_positions(false);
    }

    pub(super) fn positions(&self) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.fetcher
            .iter()
            .filter_map(|p| {
                p.position
                    .map(|o| (p.tp.clone(), OffsetAndMetadata::new(o)))
            })
            .collect()
    }

    /// `durable`: fsynced before returning (`commit_sync`); otherwise in the page cache
    /// (auto-commit, `commit_async`).
    fn commit_positions(&mut self, durable: bool) -> Result<()> {
        let offsets = self.positions();
        if offsets.is_empty() {
            return Ok(());
        }
        self.commit_map(&offsets, durable)
    }

    fn commit_map(
        &mut self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        durable: bool,
    ) -> Result<()> {
        self.commit_map_then(offsets, |appended| match appended {
            Some(a) if durable => a.sync(),
            _ => Ok(()),
        })
    }

    /// Commits `offsets` to the page cache, then `then` decides what to do about
    /// durability with where they were appended (`None` when there was nothing to append).
    /// Counted in the commit metrics (with `then`'s time).
    pub(super) fn commit_map_then<T>(
        &mut self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        then: impl FnOnce(Option<Appended>) -> Result<T>,
    ) -> Result<T> {
        if let Some(e) = &self.fenced {
            return Err(e.clone());
        }
        let group = self.group()?;
        let member = self
            .member
            .as_ref()
            .map(|m| (m.member_id.as_str(), m.generation));
        let start = Instant::now();
        let result = group
            .append_commit(&self.broker.inner, member, offsets)
            .and_then(then);
        let (w, now) = (self.metrics.window, self.now());
        self.metrics.commits += 1;
        let commit_nanos = nanos(start.elapsed());
        self.metrics
            .commit_nanos
            .record(w, commit_nanos as f64, now);
        if let Err(e @ Error::FencedInstanceId { .. }) = &result {
            // Fatal for this consumer; the next poll or close runs on_partitions_lost.
            self.fenced = Some(e.clone());
        }
        result
    }

    /// Commits the positions of every assigned partition (what `poll` has returned so far).
    ///
    /// Durable: returns once the commit is fsynced to `__consumer_offsets`, so it survives a
    /// crash of the process and a power loss (Kafka's commit is as durable as its `acks=all`
    /// replication; fsync is the one-machine equivalent). Concurrent `commit_sync` calls of
    /// any consumers of the broker share fsyncs (group commit). [`Consumer::commit_async`]
    /// and auto-commit skip the fsync.
    ///
    /// Errors for a group member: [`Error::RebalanceInProgress`] (retryable) when the group
    /// completed a rebalance this member has not picked up yet and the partitions have no
    /// other owner: `poll`, then commit again what is still assigned; [`Error::CommitFailed`]
    /// when the member left the group (expelled) or a partition was reassigned;
    /// [`Error::FencedInstanceId`] when another consumer took this one's `group.instance.id`
    /// (fatal: close the consumer).
    pub fn commit_sync(&mut self) -> Result<()> {
        self.check_can_commit()?;
        self.run_commit_callbacks();
        self.commit_positions(true)
    }

    /// Commits these offsets (each the next offset to read, with optional metadata). Durable
    /// and failing as [`Consumer::commit_sync`].
    pub fn commit_offsets_sync(
        &mut self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        self.check_can_commit()?;
        self.run_commit_callbacks();
        self.commit_map(offsets, true)
    }

    /// Commits the positions of every assigned partition; `callback` gets the offsets and the
    /// outcome on this thread during a later `poll`, `commit_sync` or `close` (as in Kafka).
    ///
    /// Not fsynced: the commit is in the page cache when the callback runs, so it survives a
    /// crash of the process but may roll back after a power loss or an OS crash, until a
    /// later [`Consumer::commit_sync`] (or a `flush.ms`/checkpoint of the offsets log) syncs
    /// it. Auto-commit (`enable.auto.commit`, including the one in `close`) is the same.
    pub fn commit_async(
        &mut self,
        callback: impl FnOnce(&BTreeMap<TopicPartition, OffsetAndMetadata>, Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.check_can_commit()?;
        let offsets = self.positions();
        self.commit_map_async(offsets, Box::new(callback));
        Ok(())
    }

    /// Commits these offsets without the fsync of [`Consumer::commit_offsets_sync`] (Kafka's
    /// `commitAsync(offsets, callback)`); `callback` gets the offsets and the outcome as with
    /// [`Consumer::commit_async`], and the same durability note applies.
    pub fn commit_offsets_async(
        &mut self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        callback: impl FnOnce(&BTreeMap<TopicPartition, OffsetAndMetadata>, Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.check_can_commit()?;
        self.commit_map_async(offsets.clone(), Box::new(callback));
        Ok(())
    }

    /// What every commit checks first: the consumer is open, has a `group.id` and is not
    /// fenced.
    pub(super) fn check_can_commit(&self) -> Result<()> {
        self.check_usable()?;
        self.group_id()?;
        if let Some(e) = &self.fenced {
            return Err(e.clone());
        }
        Ok(())
    }

    /// Commits `offsets` without the fsync (nothing to write when empty) and queues
    /// `callback` with the outcome for the next `poll`, `commit_sync` or `close`.
    fn commit_map_async(
        &mut self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
        callback: CommitCallback,
    ) {
        let result = if offsets.is_empty() {
            Ok(())
        } else {
            self.commit_map(&offsets, false)
        };
        self.completed_commits.push((callback, offsets, result));
    }

    pub(super) fn run_commit_callbacks(&mut self) {
        for (callback, offsets, result) in std::mem::take(&mut self.completed_commits) {
            callback(&offsets, result);
        }
    }

    /// The group's committed offset for `tp` (`None` if nothing is committed). Needs a
    /// `group.id`.
    pub fn committed(&self, tp: &TopicPartition) -> Result<Option<OffsetAndMetadata>> {
        self.check_usable()?;
        let id = self.group_id()?;
        Ok(self
            .broker
            .inner
            .groups()
            .get(id)
            .and_then(|g| g.committed(tp)))
    }

    /// End offsets: the log end (the offset the next record will get), or under
    /// `read_committed` the last stable offset, as Kafka's `endOffsets` follows the isolation
    /// level. Does not move positions.
    pub fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        partitions
            .iter()
            .map(|tp| {
                let log = self.broker.inner.partition_log(&tp.topic, tp.partition)?;
                Ok((tp.clone(), end_offset(&log, self.fetcher.read_committed)))
            })
            .collect()
    }

    /// Log start offsets; does not move positions.
    pub fn beginning_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        partitions
            .iter()
            .map(|tp| {
                let log = self.broker.inner.partition_log(&tp.topic, tp.partition)?;
                Ok((tp.clone(), log.log_start_offset()))
            })
            .collect()
    }

    /// For each partition, the earliest offset whose timestamp is at least the given one
    /// (`None` if every record is older). Partitions need not be assigned; negative
    /// timestamps are [`Error::InvalidArgument`].
    pub fn offsets_for_times(
        &self,
        timestamps: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        timestamps
            .iter()
            .map(|(tp, &ts)| {
                if ts < 0 {
                    return Err(Error::argument(
                        "timestamp",
                        format!("{ts} for {tp} is negative"),
                    ));
                }
                let log = self.broker.inner.partition_log(&tp.topic, tp.partition)?;
                let found = log
                    .offset_for_timestamp(ts)?
                    .map(|(offset, timestamp)| OffsetAndTimestamp { offset, timestamp });
                Ok((tp.clone(), found))
            })
            .collect()
    }

    /// A handle that interrupts this consumer's blocked `poll` from another thread.
    pub fn wakeup_handle(&self) -> WakeupHandle {
        WakeupHandle {
            flag: self.wakeup.clone(),
            notifier: self.broker.inner.notifier().clone(),
        }
    }

    /// A snapshot of the consumer's metrics: Kafka's `consumer-fetch-manager-metrics`
    /// (`records-consumed-rate`, `bytes-consumed-total`, `records-lag-max`,
    /// `fetch-latency-avg`, ...) and `consumer-coordinator-metrics` (`commit-latency-avg`,
    /// `commit-rate`, `assigned-partitions`, `rebalance-total`, ...), tagged with the
    /// `client-id`. The [`metrics` module docs](crate::metrics) list every metric, its Kafka
    /// meaning and how embroker measures it (rates, averages and maxes over the last
    /// `metrics.num.samples` windows of `metrics.sample.window.ms`, as Kafka's). Nothing is
    /// counted per record: `poll` counts once per pass over its partitions.
    ///
    /// ```
    /// use std::time::Duration;
    /// use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig, TopicPartition};
    ///
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("orders", TopicConfig::default())?;
    /// let p0 = broker.topic("orders")?.partition(0)?;
    /// p0.append(&[Record::new("a"), Record::new("b"), Record::new("c")])?;
    ///
    /// let config = ConsumerConfig::default()
    ///     .group_id("billing")
    ///     .auto_offset_reset(OffsetReset::Earliest)
    ///     .max_poll_records(2);
    /// let mut consumer = broker.consumer(config)?;
    /// consumer.assign(&[TopicPartition::new("orders", 0)])?;
    /// let records = consumer.poll(Duration::from_secs(1))?;
    /// assert_eq!(records.count(), 2);
    /// consumer.commit_sync()?;
    ///
    /// let metrics = consumer.metrics();
    /// assert_eq!(metrics.get("records-consumed-total"), Some(2.0));
    /// assert_eq!(metrics.get("records-lag-max"), Some(1.0)); // end 3, position 2
    /// assert_eq!(metrics.get("commit-total"), Some(1.0));
    /// assert_eq!(metrics.get("assigned-partitions"), Some(1.0));
    /// consumer.close()?;
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        let c = &self.metrics;
        let (w, now) = (c.window, self.now());
        let tags = m::tags(&[("client-id", &self.config.client_id)]);
        let bytes = self.fetcher.bytes_handed_out;
        let mut out = Metrics::default();
        let fetch = "consumer-fetch-manager-metrics";
        out.push(fetch, "records-consumed-total", &tags, c.records as f64);
        let records_rate = c.records_window.rate(w, now);
        out.push(fetch, "records-consumed-rate", &tags, records_rate);
        out.push(fetch, "bytes-consumed-total", &tags, bytes as f64);
        let bytes_rate = c.bytes_window.rate(w, now);
        out.push(fetch, "bytes-consumed-rate", &tags, bytes_rate);
        out.push(fetch, "fetch-total", &tags, c.fetches as f64);
        let fetch_rate = c.fetch_nanos.count_rate(w, now);
        out.push(fetch, "fetch-rate", &tags, fetch_rate);
        let fetch_avg = m::or_zero(c.fetch_nanos.avg(w, now).map(m::ms));
        out.push(fetch, "fetch-latency-avg", &tags, fetch_avg);
        let fetch_max = m::or_zero(c.fetch_nanos.max(w, now).map(m::ms));
        out.push(fetch, "fetch-latency-max", &tags, fetch_max);
        let lag = m::or_zero(c.lag.max(w, now));
        out.push(fetch, "records-lag-max", &tags, lag);
        let coord = "consumer-coordinator-metrics";
        out.push(coord, "commit-total", &tags, c.commits as f64);
        let commit_rate = c.commit_nanos.count_rate(w, now);
        out.push(coord, "commit-rate", &tags, commit_rate);
        let commit_avg = m::or_zero(c.commit_nanos.avg(w, now).map(m::ms));
        out.push(coord, "commit-latency-avg", &tags, commit_avg);
        let commit_max = m::or_zero(c.commit_nanos.max(w, now).map(m::ms));
        out.push(coord, "commit-latency-max", &tags, commit_max);
        let assigned = self.fetcher.iter().count() as f64;
        out.push(coord, "assigned-partitions", &tags, assigned);
        out.push(coord, "rebalance-total", &tags, c.rebalances as f64);
        let per_hour = c.rebalance_window.count_rate(w, now) * 3600.0;
        out.push(coord, "rebalance-rate-per-hour", &tags, per_hour);
        out
    }

    /// This consumer's member id in its group, once joined.
    pub fn member_id(&self) -> Option<&str> {
        self.member.as_ref().map(|m| m.member_id.as_str())
    }

    /// The generation of this member's current assignment (-1 before the first).
    pub fn generation(&self) -> i32 {
        self.member.as_ref().map_or(-1, |m| m.generation)
    }

    /// This consumer's group, generation, member id and `group.instance.id`, for
    /// [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction)
    /// (Kafka's `groupMetadata()`). Fails with [`Error::IllegalState`] when the consumer
    /// has no `group.id`.
    pub fn group_metadata(&self) -> Result<crate::ConsumerGroupMetadata> {
        let group_id = self.group_id()?.to_string();
        Ok(crate::ConsumerGroupMetadata {
            group_id,
            generation_id: self.generation(),
            member_id: self.member_id().unwrap_or_default().to_string(),
            group_instance_id: self.config.group_instance_id.clone(),
        })
    }

    /// Commits positions (with auto-commit on), runs `on_partitions_revoked`, leaves the group
    /// and runs pending commit callbacks. Later calls fail with [`Error::Closed`].
    ///
    /// The listener gets `on_partitions_revoked` while this member's generation is the group's
    /// (commits there are accepted), `on_partitions_lost` once the group completed a rebalance
    /// this member has not picked up, or it was expelled or fenced (Kafka's `onLeavePrepare`).
    ///
    /// As in Kafka, a failed auto-commit here (say [`Error::CommitFailed`] because a rebalance
    /// moved the partitions first) is logged, not returned: the records it would have
    /// committed are delivered again to their next owner, which at-least-once allows. Commit
    /// with [`Consumer::commit_sync`] before closing to see that error.
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let mut first_error = None;
        if self.config.auto_commit_enabled() && !self.broker.is_closed() {
            // Kafka's ConsumerCoordinator.maybeAutoCommitOffsetsSync logs and swallows this
            // too: closing must still leave the group.
            if let Err(e) = self.commit_positions(false) {
                log::warn!("auto-commit on close failed: {e}");
            }
        }
        if let Err(e) = self.leave_group() {
            first_error.get_or_insert(e);
        }
        self.run_commit_callbacks();
        self.fetcher.clear();
        self.mode = Mode::None;
        self.closed = true;
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Best effort, as `close`; errors cannot be reported from drop.
        let _ = self.close_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Consumer>();
        assert_send::<WakeupHandle>();
    }
}
