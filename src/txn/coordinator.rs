//! The transaction coordinator of this broker: Kafka's `TransactionCoordinator` and
//! `TransactionStateManager` (`core/src/main/scala/kafka/coordinator/transaction/`), in one
//! process and synchronous: each call writes what it decides before it returns.
//!
//! Owns: every transactional id's [`TransactionMetadata`], its records in
//! `__transaction_state`, the order in which a transaction ends, and the transaction markers.
//!
//! Transactions end as in Kafka 4.0's transaction version 2 (KIP-890 part 2): every end bumps
//! the producer's epoch. One fsync per transaction: the decision.
//!
//! Invariants:
//! - A state change is written to `__transaction_state` before memory changes; a failed write
//!   leaves memory as it was (Kafka's `prepareTransitionTo` / `completeTransitionTo`).
//! - `Ongoing` lives in memory only (never written): the partitions know which of them hold
//!   an open transaction (their producer state), and recovery asks them.
//! - A transaction ends with ONE durable record, the decision (`PrepareCommit` or
//!   `PrepareAbort`), at the bumped epoch E+1 of the data's epoch E, listing the
//!   transaction's partitions; then the markers at E+1 and the `Complete*` record (which keeps
//!   the same producer id, epoch and partitions), neither fsynced. The producer continues at
//!   E+1 (a new producer id once the epoch is exhausted), every sequence from 0.
//! - A commit whose data is still being fsynced (`commit_with_data`) records in its decision
//!   where each partition's data ends; its fsync runs alongside the data's, and no marker is
//!   written (nor the call answered) before both are durable. So a durable decision may lack
//!   data only if the commit was never acknowledged, and no marker of it exists then.
//! - At open, a commit decision with recorded ends whose data some partition's log does not
//!   reach becomes a durable `PrepareAbort` at its epoch before anything else (the next rule
//!   then aborts its data everywhere).
//! - Before any durable record of an id supersedes its last decision, that decision's markers
//!   are durable (`unsynced_markers`): so the last durable decision record of an id names
//!   every partition where one of its markers may be missing.
//! - At open, for each partition with an open transaction of producer P at data epoch d: if
//!   P's last durable record is a decision at epoch e > d listing the partition, its marker
//!   is written at e (the decision was durable, the marker lost); anything else is aborted
//!   at d+1. A transaction of the epoch a decision handed out (d = e) began after that
//!   decision and never got one of its own.
//! - Every call from a producer checks its producer id and epoch ([`Error::ProducerFenced`])
//!   and the transaction's state ([`Error::InvalidTxnState`]).
//! - Lock order: the map of ids, then one id's entry; markers are written under the entry's
//!   lock (and may take a partition's writer lock and a group's lock, never the map's).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use super::metadata::{TransactionMetadata, TxnState};
use super::producer_ids::ProducerIds;
use super::state_log::{self, TxnLogValue, TxnTopicPartitions, TXN_PARTITIONS, TXN_TOPIC};
use crate::broker::BrokerInner;
use crate::codec::{ControlRecordType, EndTransactionMarker, ProducerFields};
use crate::config::{CleanupPolicy, TopicConfig};
use crate::error::{Error, Result};
use crate::log::PartitionLog;
use crate::types::{Record, TopicPartition};

/// Kafka's `transaction.max.timeout.ms` default (15 minutes).
pub(crate) const MAX_TIMEOUT_MS_DEFAULT: i64 = 900_000;
/// Kafka's transaction version embroker follows (`ClientTransactionVersion` in its records):
/// 2, every transaction end bumps the epoch (KIP-890 part 2).
const TRANSACTION_VERSION: i16 = 2;
/// The coordinator epoch markers carry: one coordinator, never moved.
const COORDINATOR_EPOCH: i32 = 0;
/// Bytes read per step when loading.
const LOAD_READ_BYTES: usize = 1 << 20;

type Entry = Arc<Mutex<Option<TransactionMetadata>>>;

/// The coordinator (see the module docs).
pub(crate) struct TxnCoordinator {
    ids: ProducerIds,
    entries: Mutex<BTreeMap<String, Entry>>,
    max_timeout_ms: i64,
    /// Why `__transaction_state` could not be loaded at open: every transactional call
    /// reports it, the rest of the broker works.
    load_error: Mutex<Option<Error>>,
}

/// A transaction as `Broker::describe_transaction` shows it (Kafka's
/// `kafka-transactions.sh describe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id it uses.
    pub producer_id: i64,
    /// The producer's current epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// The state, as Kafka names it (`Empty`, `Ongoing`, `PrepareCommit`, ...).
    pub state: TxnState,
    /// When the ongoing transaction began (ms), -1 without one.
    pub start_ms: i64,
    /// The partitions of the ongoing transaction.
    pub partitions: Vec<TopicPartition>,
}

impl TxnCoordinator {
    pub(crate) fn new(ids: ProducerIds, max_timeout_ms: i64) -> TxnCoordinator {
        TxnCoordinator {
            ids,
            entries: Mutex::new(BTreeMap::new()),
            max_timeout_ms,
            load_error: Mutex::new(None),
        }
    }

    fn check(&self) -> Result<()> {
        match self.load_error.lock().as_ref() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn entry(&self, transactional_id: &str) -> Entry {
        let mut entries = self.entries.lock();
        // Looked up first: the id is allocated only the first time (once per id, not per call).
        if let Some(entry) = entries.get(transactional_id) {
            return Arc::clone(entry);
        }
        Arc::clone(entries.entry(transactional_id.to_string()).or_default())
    }

    /// Kafka's `InitProducerId`. Without a transactional id: a fresh producer id, epoch 0.
    /// With one: the id's producer id with its epoch bumped (a new producer id once the epoch
    /// is exhausted), which fences any older producer; its open transaction is first
    /// completed (a durable decision) or aborted.
    pub(crate) fn init_producer_id(
        &self,
        broker: &BrokerInner,
        transactional_id: Option<&str>,
        timeout_ms: i64,
    ) -> Result<(i64, i16)> {
        let Some(tid) = transactional_id else {
            return Ok((self.ids.next_id()?, 0));
        };
        self.check()?;
        if tid.is_empty() || tid.len() > i16::MAX as usize {
            return Err(Error::argument(
                "transactional.id",
                "must be 1..=32767 bytes",
            ));
        }
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(Error::InvalidTransactionTimeout {
                transactional_id: tid.to_string(),
                timeout_ms,
                max_ms: self.max_timeout_ms,
            });
        }
        let entry = self.entry(tid);
        let mut slot = entry.lock();
        let now = broker.now_ms();
        let next = match slot.as_mut().filter(|m| m.state != TxnState::Dead) {
            None => TransactionMetadata {
                transactional_id: tid.to_string(),
                producer_id: self.ids.next_id()?,
                producer_epoch: 0,
                timeout_ms: timeout_ms as i32,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                txn_start_ms: -1,
                last_update_ms: now,
                next_producer_id: -1,
                last_producer: None,
                unsynced_markers: Vec::new(),
                client_transaction_version: TRANSACTION_VERSION,
                data_ends: BTreeMap::new(),
                data_unsure: false,
            },
            Some(m) => {
                match m.state {
                    TxnState::PrepareCommit | TxnState::PrepareAbort => {
                        self.complete(broker, m)?;
                    }
                    TxnState::Ongoing | TxnState::PrepareEpochFence => {
                        self.fence_and_abort(broker, m)?;
                    }
                    _ => {}
                }
                let mut next = m.clone();
                if m.producer_epoch >= i16::MAX - 1 {
                    // Kafka's `isProducerEpochExhausted`: a new producer id, epoch 0.
                    next.producer_id = self.ids.next_id()?;
                    next.producer_epoch = 0;
                } else {
                    next.producer_epoch = m.producer_epoch + 1;
                }
                next.transition(TxnState::Empty, "init producer id")?;
                next.next_producer_id = -1;
                next.last_producer = None;
                next.client_transaction_version = TRANSACTION_VERSION;
                next.timeout_ms = timeout_ms as i32;
                next.partitions.clear();
                next.txn_start_ms = -1;
                next.last_update_ms = now;
                next
            }
        };
        let mut next = next;
        persist_durable(broker, &mut next)?;
        let out = (next.producer_id, next.producer_epoch);
        *slot = Some(next);
        Ok(out)
    }

    /// Kafka's `AddPartitionsToTxn`: adds partitions to the producer's transaction (beginning
    /// it) before the producer appends to them. In memory only: the partitions themselves
    /// tell recovery where a transaction was left open (see the module docs).
    pub(crate) fn add_partitions(
        &self,
        broker: &BrokerInner,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        self.add_partitions_as(broker, tid, producer_id, epoch, partitions, false)
    }

    /// [`TxnCoordinator::add_partitions`]; `durable` for a client of transaction version 1,
    /// whose epoch does not change between transactions: its `Ongoing` record (with the
    /// partitions) is fsynced before the call returns, as Kafka's coordinator does for such
    /// clients, so that recovery never takes an earlier transaction's decision at the same
    /// epoch for this one's (see [`TxnCoordinator::load`]).
    pub(crate) fn add_partitions_as(
        &self,
        broker: &BrokerInner,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
        durable: bool,
    ) -> Result<()> {
        self.check()?;
        let entry = self.entry(tid);
        let mut slot = entry.lock();
        let m = checked(&mut slot, tid, producer_id, epoch, "add partitions")?;
        match m.state {
            TxnState::Ongoing if partitions.iter().all(|tp| m.partitions.contains(tp)) => {
                return Ok(())
            }
            TxnState::Ongoing
            | TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort => {}
            _ => return Err(m.invalid("add partitions")),
        }
        let now = broker.now_ms();
        let mut next = m.clone();
        if next.state != TxnState::Ongoing {
            next.txn_start_ms = now;
            // The partitions of the last transaction's decision (kept for its record).
            next.partitions.clear();
        }
        next.transition(TxnState::Ongoing, "add partitions")?;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        if durable {
            next.client_transaction_version = 0;
            persist_durable(broker, &mut next)?;
        }
        *m = next;
        Ok(())
    }

    /// Kafka's transaction verification (KIP-890 part 1), for a wire client's transactional
    /// batch: it is written only while its producer (`producer_id` at `epoch`, of
    /// `transactional.id` `tid`) has an ongoing transaction that holds `tp`. Without it, a
    /// batch for a partition never added to a transaction would open a transaction no
    /// coordinator knows, and pin the partition's last stable offset below it for good.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn verify_partition(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        tp: &TopicPartition,
    ) -> Result<()> {
        self.check()?;
        // Looked up, never created: a client's unknown id must not grow the table.
        let entry = self.entries.lock().get(tid).cloned();
        let unknown = || Error::InvalidTxnState {
            transactional_id: tid.to_string(),
            state: "unknown (init_transactions was not called)".into(),
            operation: "produce",
        };
        let Some(entry) = entry else {
            return Err(unknown());
        };
        let mut slot = entry.lock();
        let m = checked(&mut slot, tid, producer_id, epoch, "produce")?;
        if m.state == TxnState::Ongoing && m.partitions.contains(tp) {
            Ok(())
        } else {
            Err(Error::InvalidTxnState {
                transactional_id: tid.to_string(),
                state: format!("{:?}, without partition {tp} in the transaction", m.state),
                operation: "produce",
            })
        }
    }

    /// Kafka's `AddOffsetsToTxn`: adds the `__consumer_offsets` partition of `group` to the
    /// transaction (creating the topic on first use); returns that partition.
    pub(crate) fn add_offsets(
        &self,
        broker: &BrokerInner,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> Result<TopicPartition> {
        self.add_offsets_as(broker, tid, producer_id, epoch, group, false)
    }

    /// [`TxnCoordinator::add_offsets`]; `durable` as in [`TxnCoordinator::add_partitions_as`].
    pub(crate) fn add_offsets_as(
        &self,
        broker: &BrokerInner,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        durable: bool,
    ) -> Result<TopicPartition> {
        let log = crate::group::offsets_log_for(broker, group)?;
        let tp = TopicPartition::new(log.topic(), log.partition());
        let tps = std::slice::from_ref(&tp);
        self.add_partitions_as(broker, tid, producer_id, epoch, tps, durable)?;
        Ok(tp)
    }

    /// Kafka's `EndTxn` (transaction version 2): commits or aborts the producer's
    /// transaction (see the module docs for the order) and returns the producer id and epoch
    /// the producer continues with (the epoch bumped). Repeating the call from the producer
    /// that ended the transaction, with its old epoch, succeeds when it ended the same way, as
    /// in Kafka (`lastProducerEpoch`).
    ///
    /// A client of transaction version 1 (every Kafka wire client: embroker's server
    /// advertises no `transaction.version` feature) keeps its epoch across transactions
    /// (`bump_epoch` false): the decision and markers are written at its epoch, and a repeat
    /// of a completed commit or abort succeeds, as Kafka's `endTransactionWithTV1` does.
    pub(crate) fn end_txn(
        &self,
        broker: &BrokerInner,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(i64, i16)> {
        self.end_txn_as(broker, tid, producer_id, epoch, commit, true)
    }

    /// [`TxnCoordinator::end_txn`] committing a transaction whose data is appended but not
    /// known durable: `data` holds each partition's log and the end offset of the
    /// transaction's data in it. The decision records those ends and is fsynced on this
    /// thread while the data's fsyncs run (the producer's sender is making them durable under
    /// `acks=all`; `sync_to` joins an fsync in progress); the markers are written only once
    /// both are durable, and the call returns only then. Recovery completes such a decision
    /// only if every partition's log reaches its end (see the module docs).
    pub(crate) fn commit_with_data(
        &self,
        broker: &BrokerInner,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        data: &[(Arc<PartitionLog>, i64)],
    ) -> Result<(i64, i16)> {
        self.end_txn_data(broker, tid, producer_id, epoch, true, true, Some(data))
    }

    /// [`TxnCoordinator::end_txn`] for a client of transaction version 2 (`bump_epoch`) or 1.
    pub(crate) fn end_txn_as(
        &self,
        broker: &BrokerInner,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        bump_epoch: bool,
    ) -> Result<(i64, i16)> {
        self.end_txn_data(broker, tid, producer_id, epoch, commit, bump_epoch, None)
    }

    #[allow(clippy::too_many_arguments)] // `end_txn_as` with the data of `commit_with_data`
    fn end_txn_data(
        &self,
        broker: &BrokerInner,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        bump_epoch: bool,
        data: Option<&[(Arc<PartitionLog>, i64)]>,
    ) -> Result<(i64, i16)> {
        self.check()?;
        let entry = self.entry(tid);
        let mut slot = entry.lock();
        let operation = if commit { "commit" } else { "abort" };
        let (prepare, complete) = if commit {
            (TxnState::PrepareCommit, TxnState::CompleteCommit)
        } else {
            (TxnState::PrepareAbort, TxnState::CompleteAbort)
        };
        if let Some(m) = slot.as_mut() {
            if m.last_producer == Some((producer_id, epoch))
                && (m.producer_id, m.producer_epoch) != (producer_id, epoch)
            {
                // A retry: the first call's decision was written and the epoch bumped.
                return match m.state {
                    s if s == prepare => {
                        self.complete(broker, m)?;
                        Ok((m.producer_id, m.producer_epoch))
                    }
                    s if s == complete => Ok((m.producer_id, m.producer_epoch)),
                    _ => Err(m.invalid(operation)),
                };
            }
        }
        let m = checked(&mut slot, tid, producer_id, epoch, operation)?;
        match m.state {
            TxnState::Ongoing => {
                let mut next = m.clone();
                next.transition(prepare, operation)?;
                if bump_epoch {
                    self.bump_epoch(&mut next)?;
                    next.client_transaction_version = TRANSACTION_VERSION;
                } else {
                    next.client_transaction_version = 0;
                }
                next.last_producer = Some((producer_id, epoch));
                next.last_update_ms = broker.now_ms();
                let data = data.filter(|_| commit && bump_epoch).unwrap_or(&[]);
                next.data_ends = data
                    .iter()
                    .map(|(log, end)| (TopicPartition::new(log.topic(), log.partition()), *end))
                    .collect();
                // The decision's fsync, alongside the data's (already running on the sender).
                persist_durable(broker, &mut next)?;
                if !data.is_empty() {
                    super::testing::decision_durable_before_data();
                }
                for (log, end) in data {
                    let deleted = || {
                        matches!(
                            broker.partition_log(log.topic(), log.partition()),
                            Err(Error::UnknownTopic { .. } | Error::UnknownPartition { .. })
                        )
                    };
                    // A partition deleted since is skipped, as its marker will be.
                    if let Err(e) =
                        log.sync_to(*end)
                            .or_else(|e| if deleted() { Ok(()) } else { Err(e) })
                    {
                        // The decision is durable, its data maybe not: completing it here
                        // could commit records a crash then loses. Recovery decides.
                        next.data_unsure = true;
                        *m = next;
                        return Err(e);
                    }
                }
                super::testing::decision_durable();
                *m = next;
                self.complete(broker, m)?;
                Ok((m.producer_id, m.producer_epoch))
            }
            s if s == prepare => {
                self.complete(broker, m)?;
                Ok((m.producer_id, m.producer_epoch))
            }
            s if s == complete && !bump_epoch => Ok((m.producer_id, m.producer_epoch)),
            _ => Err(m.invalid(operation)),
        }
    }

    /// The epoch bump of a decision: E+1, and once that exhausts the epoch (Kafka's
    /// `isProducerEpochExhausted`) a new producer id for after the markers.
    fn bump_epoch(&self, next: &mut TransactionMetadata) -> Result<()> {
        if next.producer_epoch >= i16::MAX - 1 {
            next.next_producer_id = self.ids.next_id()?;
        }
        next.producer_epoch = next.producer_epoch.saturating_add(1);
        Ok(())
    }

    /// Writes the markers of a prepared transaction, then its `Complete*` record.
    fn complete(&self, broker: &BrokerInner, m: &mut TransactionMetadata) -> Result<()> {
        if m.data_unsure {
            return Err(Error::IllegalState {
                reason: format!(
                    "the commit of transactional.id {:?} is durable but its data could not be \
                     fsynced: the broker completes or aborts it when it reopens",
                    m.transactional_id
                ),
            });
        }
        let (kind, complete) = completion(m)?;
        let ends = write_markers(broker, m, kind)?;
        m.unsynced_markers.extend(ends);
        record_complete(broker, m, complete)
    }

    /// Bumps the epoch of an open transaction's producer (fencing it) and aborts the
    /// transaction with the new epoch: Kafka's `prepareFenceProducerEpoch` then an abort.
    fn fence_and_abort(&self, broker: &BrokerInner, m: &mut TransactionMetadata) -> Result<()> {
        let mut next = m.clone();
        next.state = TxnState::Ongoing;
        next.transition(TxnState::PrepareEpochFence, "fence")?;
        next.producer_epoch = m.producer_epoch.saturating_add(1);
        next.transition(TxnState::PrepareAbort, "abort")?;
        next.client_transaction_version = TRANSACTION_VERSION;
        next.last_update_ms = broker.now_ms();
        persist_durable(broker, &mut next)?;
        *m = next;
        self.complete(broker, m)
    }

    /// Aborts every transaction open longer than its timeout, fencing its producer; retries
    /// the completion of any left prepared by an earlier failure. Run by the broker's tasks
    /// thread (Kafka's `abortTimedOutTransactions`).
    pub(crate) fn abort_expired(&self, broker: &BrokerInner, now: i64) {
        if self.check().is_err() {
            return;
        }
        let entries: Vec<Entry> = self.entries.lock().values().cloned().collect();
        for entry in entries {
            // An id busy in a call is skipped: the background thread never waits for a
            // producer's commit (and that call ends or re-checks the transaction itself).
            let Some(mut slot) = entry.try_lock() else {
                continue;
            };
            let Some(m) = slot.as_mut() else { continue };
            let result = match m.state {
                TxnState::Ongoing
                    if now.saturating_sub(m.txn_start_ms) > i64::from(m.timeout_ms) =>
                {
                    self.fence_and_abort(broker, m)
                }
                TxnState::PrepareCommit | TxnState::PrepareAbort => self.complete(broker, m),
                _ => Ok(()),
            };
            if let Err(e) = result {
                if !matches!(e, Error::Closed { .. }) {
                    log::warn!(
                        "transaction of transactional.id {:?} not aborted yet, will retry: {e}",
                        m.transactional_id
                    );
                }
            }
        }
    }

    /// Replays `__transaction_state`, then ends every transaction a partition reports open
    /// (see the module docs: the marker of a durable decision, an abort otherwise), then
    /// writes the `Complete*` record of every decision. Called once when the broker opens,
    /// after the groups loaded (markers on `__consumer_offsets` complete their pending
    /// offsets). A failure is kept and reported by every transactional call.
    pub(crate) fn load(&self, broker: &BrokerInner) {
        let result = self.try_load(broker).and_then(|mut loaded| {
            abort_incomplete_commits(broker, &mut loaded)?;
            let aborted = reconcile(broker, &loaded)?;
            for (tid, (epoch, partitions)) in aborted {
                if let Some(m) = loaded.get_mut(&tid) {
                    // Kafka's fence-and-abort, its markers already written: the id's epoch
                    // moves to the abort's, so no epoch handed out later is below a marker.
                    m.state = TxnState::PrepareAbort;
                    m.producer_epoch = m.producer_epoch.max(epoch);
                    m.partitions = partitions;
                    m.next_producer_id = -1;
                    m.client_transaction_version = TRANSACTION_VERSION;
                    m.last_update_ms = broker.now_ms();
                    persist_durable(broker, m)?;
                }
            }
            Ok(loaded)
        });
        match result {
            Ok(loaded) => {
                *self.entries.lock() = loaded
                    .into_iter()
                    .map(|(id, m)| (id, Arc::new(Mutex::new(Some(m)))))
                    .collect();
                for entry in self.entries.lock().values().cloned().collect::<Vec<_>>() {
                    let mut slot = entry.lock();
                    let Some(m) = slot.as_mut() else { continue };
                    let result = match m.state {
                        // The markers are in place (reconcile): record the completion.
                        TxnState::PrepareCommit | TxnState::PrepareAbort => {
                            self.complete_recovered(broker, m)
                        }
                        // Files of earlier versions hold `Ongoing` records. With data left
                        // open, reconcile made it `PrepareAbort` above; without, this fences
                        // the epoch (its ABORT markers find nothing open: harmless).
                        TxnState::Ongoing | TxnState::PrepareEpochFence => {
                            self.fence_and_abort(broker, m)
                        }
                        TxnState::CompleteCommit | TxnState::CompleteAbort
                            if m.next_producer_id >= 0 =>
                        {
                            // The epoch was exhausted: the new id continues.
                            m.producer_id = m.next_producer_id;
                            m.producer_epoch = 0;
                            m.next_producer_id = -1;
                            Ok(())
                        }
                        _ => Ok(()),
                    };
                    if let Err(e) = result {
                        log::warn!(
                            "transaction of transactional.id {:?} left {} at open, will retry: {e}",
                            m.transactional_id,
                            m.state
                        );
                    }
                }
            }
            Err(e) => *self.load_error.lock() = Some(e),
        }
    }

    /// Records the completion of a decision whose markers are in place: reconcile wrote and
    /// fsynced the missing ones, and the log made everything it found at open durable.
    fn complete_recovered(&self, broker: &BrokerInner, m: &mut TransactionMetadata) -> Result<()> {
        let (_, complete) = completion(m)?;
        record_complete(broker, m, complete)
    }

    fn try_load(&self, broker: &BrokerInner) -> Result<BTreeMap<String, TransactionMetadata>> {
        let mut out = BTreeMap::new();
        let count = match broker.partition_count(TXN_TOPIC) {
            Ok(n) => n,
            Err(Error::UnknownTopic { .. }) => return Ok(out),
            Err(e) => return Err(e),
        };
        for p in 0..count {
            let log = broker.partition_log(TXN_TOPIC, p)?;
            let mut at = log.log_start_offset();
            let end = log.log_end_offset();
            while at < end {
                let records = log.read(at, LOAD_READ_BYTES)?;
                if records.next_offset() <= at {
                    break;
                }
                for r in records.iter() {
                    let Some(key) = r.key.as_deref() else {
                        continue;
                    };
                    // A record that does not decode can only come from a newer version.
                    let Ok(rec) = state_log::decode(key, r.value.as_deref()) else {
                        continue;
                    };
                    match rec.value {
                        None => {
                            out.remove(&rec.transactional_id);
                        }
                        Some(v) => {
                            let m = from_value(rec.transactional_id.clone(), v);
                            out.insert(rec.transactional_id, m);
                        }
                    }
                }
                at = records.next_offset();
            }
        }
        Ok(out)
    }

    /// Every transactional id with its state, sorted by id.
    pub(crate) fn list(&self) -> Vec<TransactionDescription> {
        let entries: Vec<Entry> = self.entries.lock().values().cloned().collect();
        entries
            .iter()
            .filter_map(|e| e.lock().as_ref().map(describe))
            .collect()
    }

    /// One transactional id's state.
    pub(crate) fn describe(&self, tid: &str) -> Option<TransactionDescription> {
        let entry = self.entries.lock().get(tid).cloned()?;
        let slot = entry.lock();
        slot.as_ref().map(describe)
    }
}

fn describe(m: &TransactionMetadata) -> TransactionDescription {
    TransactionDescription {
        transactional_id: m.transactional_id.clone(),
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        timeout_ms: m.timeout_ms,
        state: m.state,
        start_ms: m.txn_start_ms,
        // A completed transaction's partitions stay in memory for its record only.
        partitions: if m.state.is_open() {
            m.partitions.iter().cloned().collect()
        } else {
            Vec::new()
        },
    }
}

/// The metadata of `slot` if the caller's producer id and epoch are current.
fn checked<'a>(
    slot: &'a mut Option<TransactionMetadata>,
    tid: &str,
    producer_id: i64,
    epoch: i16,
    operation: &'static str,
) -> Result<&'a mut TransactionMetadata> {
    let Some(m) = slot.as_mut() else {
        return Err(Error::InvalidTxnState {
            transactional_id: tid.to_string(),
            state: "unknown (init_transactions was not called)".into(),
            operation,
        });
    };
    if m.producer_id != producer_id || m.producer_epoch != epoch {
        return Err(Error::ProducerFenced {
            transactional_id: tid.to_string(),
            producer_id,
            epoch,
            current_epoch: m.producer_epoch,
        });
    }
    Ok(m)
}

fn to_value(m: &TransactionMetadata) -> TxnLogValue {
    // Kafka writes null partitions for Empty, a (possibly empty) list otherwise.
    // Only a commit decision carries its data's end offsets (an abort needs none, and
    // `Complete*` follows the data's fsync); 0 for a partition without data of its own.
    let with_ends = m.state == TxnState::PrepareCommit && !m.data_ends.is_empty();
    let partitions = (m.state != TxnState::Empty).then(|| {
        let mut by_topic: BTreeMap<&str, (Vec<i32>, Vec<i64>)> = BTreeMap::new();
        for tp in &m.partitions {
            let (ids, ends) = by_topic.entry(&tp.topic).or_default();
            ids.push(tp.partition);
            if with_ends {
                ends.push(m.data_ends.get(tp).copied().unwrap_or(0));
            }
        }
        by_topic
            .into_iter()
            .map(|(topic, (partitions, end_offsets))| TxnTopicPartitions {
                topic: topic.to_string(),
                partitions,
                end_offsets,
            })
            .collect()
    });
    TxnLogValue {
        // Version 1 (flexible) carries ClientTransactionVersion, and NextProducerId once an
        // epoch is exhausted: see FORMAT.md §21.
        version: if m.client_transaction_version >= TRANSACTION_VERSION || m.next_producer_id >= 0 {
            1
        } else {
            state_log::VALUE_VERSION
        },
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        timeout_ms: m.timeout_ms,
        state: m.state,
        partitions,
        last_update_ms: m.last_update_ms,
        start_ms: m.txn_start_ms,
        previous_producer_id: -1,
        next_producer_id: m.next_producer_id,
        client_transaction_version: m.client_transaction_version,
    }
}

fn from_value(transactional_id: String, v: TxnLogValue) -> TransactionMetadata {
    let mut partitions = BTreeSet::new();
    let mut data_ends = BTreeMap::new();
    for t in v.partitions.unwrap_or_default() {
        for (i, p) in t.partitions.iter().enumerate() {
            let tp = TopicPartition::new(t.topic.clone(), *p);
            if let Some(end) = t.end_offsets.get(i) {
                data_ends.insert(tp.clone(), *end);
            }
            partitions.insert(tp);
        }
    }
    TransactionMetadata {
        transactional_id,
        producer_id: v.producer_id,
        producer_epoch: v.producer_epoch,
        timeout_ms: v.timeout_ms,
        state: v.state,
        partitions,
        txn_start_ms: v.start_ms,
        last_update_ms: v.last_update_ms,
        next_producer_id: v.next_producer_id,
        last_producer: None,
        unsynced_markers: Vec::new(),
        client_transaction_version: v.client_transaction_version,
        data_ends,
        data_unsure: false,
    }
}

/// The `__transaction_state` log of `tid`, creating the topic on first use.
fn state_log_for(broker: &BrokerInner, tid: &str) -> Result<Arc<PartitionLog>> {
    let partition = state_log::partition_for(tid);
    match broker.partition_log(TXN_TOPIC, partition) {
        Err(Error::UnknownTopic { .. }) => {
            let config = TopicConfig::default()
                .partitions(TXN_PARTITIONS)
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(state_log::TXN_SEGMENT_BYTES);
            match broker.create_topic(TXN_TOPIC, config, true) {
                Ok(()) | Err(Error::TopicExists { .. }) => {}
                Err(e) => return Err(e),
            }
            broker.partition_log(TXN_TOPIC, partition)
        }
        other => other,
    }
}

/// Appends `m`'s record to `__transaction_state`; with `durable`, fsyncs it too.
fn persist(broker: &BrokerInner, m: &TransactionMetadata, durable: bool) -> Result<()> {
    let log = state_log_for(broker, &m.transactional_id)?;
    let record = Record::new(state_log::encode_value(&to_value(m)))
        .key(state_log::encode_key(&m.transactional_id));
    let info = log.append_records(&[record])?;
    if durable {
        log.sync_to(info.last_offset.saturating_add(1))?;
    }
    Ok(())
}

/// The marker and `Complete*` state of a prepared transaction.
fn completion(m: &TransactionMetadata) -> Result<(ControlRecordType, TxnState)> {
    match m.state {
        TxnState::PrepareCommit => Ok((ControlRecordType::Commit, TxnState::CompleteCommit)),
        TxnState::PrepareAbort => Ok((ControlRecordType::Abort, TxnState::CompleteAbort)),
        _ => Err(m.invalid("complete")),
    }
}

/// Writes the `Complete*` record of a decision whose markers are written, then moves the
/// producer to its next id once its epoch is exhausted.
fn record_complete(
    broker: &BrokerInner,
    m: &mut TransactionMetadata,
    complete: TxnState,
) -> Result<()> {
    let mut next = m.clone();
    next.transition(complete, "complete")?;
    next.last_update_ms = broker.now_ms();
    // Written after the markers, so after the data was durable: nothing to check at recovery.
    next.data_ends.clear();
    // Not fsynced, and it may become durable before the markers (another id's fsync of the
    // same partition of `__transaction_state`): it keeps the decision's producer id, epoch
    // and partitions, so recovery re-writes the markers from it as from `Prepare*`.
    persist(broker, &next, false)?;
    if next.next_producer_id >= 0 {
        // The epoch is exhausted: the producer continues with the new id.
        next.producer_id = next.next_producer_id;
        next.producer_epoch = 0;
        next.next_producer_id = -1;
    }
    *m = next;
    Ok(())
}

/// Makes the last decision's markers durable, then appends and fsyncs `m`'s record, which
/// supersedes that decision in recovery (see the module docs). The markers' fsyncs cost
/// nothing when the producer's own writes to those partitions were synced since (the usual
/// case: the next transaction writes the same partitions).
fn persist_durable(broker: &BrokerInner, m: &mut TransactionMetadata) -> Result<()> {
    for (tp, end) in &m.unsynced_markers {
        match broker.partition_log(&tp.topic, tp.partition) {
            // Clamped: a topic deleted and created again since has a shorter log, and
            // `sync_to` waits for its end offset to be durable.
            Ok(log) => log.sync_to((*end).min(log.log_end_offset()))?,
            Err(Error::UnknownTopic { .. } | Error::UnknownPartition { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    m.unsynced_markers.clear();
    persist(broker, m, true)
}

/// Appends one `kind` marker of `producer_id` at `epoch` to `log`; returns the end offset.
fn append_marker(
    log: &PartitionLog,
    producer_id: i64,
    epoch: i16,
    kind: ControlRecordType,
    now: i64,
) -> Result<i64> {
    let marker = EndTransactionMarker {
        kind,
        coordinator_epoch: COORDINATOR_EPOCH,
    };
    let producer = ProducerFields {
        producer_id,
        producer_epoch: epoch,
        base_sequence: -1,
    };
    let mut batch = marker
        .encode_batch(producer, now)
        .ok_or_else(|| Error::IllegalState {
            reason: "transaction marker could not be encoded".into(),
        })?;
    let info = log.append_batch(&mut batch)?;
    Ok(info.last_offset.saturating_add(1))
}

/// Appends a `kind` marker at `m`'s (bumped) epoch to every partition of `m`'s transaction,
/// without fsync; then completes the pending transactional offset commits of `m`'s producer.
/// Returns each marker's partition and end offset. A partition whose topic was deleted is
/// skipped, as Kafka skips it.
fn write_markers(
    broker: &BrokerInner,
    m: &TransactionMetadata,
    kind: ControlRecordType,
) -> Result<Vec<(TopicPartition, i64)>> {
    let now = broker.now_ms().max(0);
    let mut ends = Vec::with_capacity(m.partitions.len());
    let mut offsets = false;
    for tp in &m.partitions {
        let log = match broker.partition_log(&tp.topic, tp.partition) {
            Ok(log) => log,
            Err(Error::UnknownTopic { .. } | Error::UnknownPartition { .. }) => continue,
            Err(e) => return Err(e),
        };
        let end = append_marker(&log, m.producer_id, m.producer_epoch, kind, now)?;
        ends.push((tp.clone(), end));
        offsets |= tp.topic == crate::group::OFFSETS_TOPIC_NAME;
    }
    if offsets {
        broker
            .groups()
            .complete_txn(m.producer_id, kind == ControlRecordType::Commit);
    }
    Ok(ends)
}

/// Turns every commit decision whose data did not all reach the disk (a partition's log ends
/// before the end offset the decision recorded for it) into an abort at the decision's epoch,
/// durable before any marker: the commit was never acknowledged (`commit_transaction` returns
/// only once the data and the decision are durable), and completing it would commit a
/// transaction with records missing. A partition whose topic is gone counts as complete (its
/// markers are skipped anyway).
fn abort_incomplete_commits(
    broker: &BrokerInner,
    loaded: &mut BTreeMap<String, TransactionMetadata>,
) -> Result<()> {
    for m in loaded.values_mut() {
        if m.state != TxnState::PrepareCommit || m.data_ends.is_empty() {
            continue;
        }
        let mut missing = None;
        for (tp, end) in &m.data_ends {
            match broker.partition_log(&tp.topic, tp.partition) {
                Ok(log) if log.log_end_offset() < *end => {
                    missing = Some((tp.clone(), log.log_end_offset(), *end));
                    break;
                }
                Ok(_) | Err(Error::UnknownTopic { .. } | Error::UnknownPartition { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let Some((tp, log_end, end)) = missing else {
            continue;
        };
        log::warn!(
            "ABORT of the commit of transactional.id {:?} (producer {}, epoch {}) at open: \
             {tp} ends at {log_end}, its data of the transaction at {end} (lost in the crash \
             before it was durable; the commit had not been acknowledged)",
            m.transactional_id,
            m.producer_id,
            m.producer_epoch
        );
        m.state = TxnState::PrepareAbort;
        m.data_ends.clear();
        m.last_update_ms = broker.now_ms();
        persist_durable(broker, m)?;
    }
    Ok(())
}

/// Ends every transaction a partition reports open, from the records replayed from
/// `__transaction_state` (the rule is in the module docs), and fsyncs those markers.
///
/// Every online partition is asked, but each answers from the producer state it loaded at
/// open (a lock and a map lookup, no I/O): 10,000 partitions cost milliseconds. A partition
/// with no open transaction costs nothing more.
///
/// Returns, per transactional id whose data was aborted without a decision, the epoch of
/// those markers and their partitions.
fn reconcile(
    broker: &BrokerInner,
    loaded: &BTreeMap<String, TransactionMetadata>,
) -> Result<BTreeMap<String, (i16, BTreeSet<TopicPartition>)>> {
    let mut aborted: BTreeMap<String, (i16, BTreeSet<TopicPartition>)> = BTreeMap::new();
    let by_pid: HashMap<i64, &TransactionMetadata> =
        loaded.values().map(|m| (m.producer_id, m)).collect();
    let now = broker.now_ms().max(0);
    for log in broker.all_logs() {
        let open = log.ongoing_transactions();
        if open.is_empty() {
            continue;
        }
        let states = log.producer_states();
        let tp = TopicPartition::new(log.topic(), log.partition());
        let mut end = None;
        for (producer_id, _first_offset) in open {
            let Some(data_epoch) = states
                .iter()
                .find(|s| s.producer_id == producer_id)
                .map(|s| s.epoch)
            else {
                continue;
            };
            let decided = by_pid.get(&producer_id).and_then(|m| {
                let commit = match m.state {
                    TxnState::PrepareCommit | TxnState::CompleteCommit => true,
                    TxnState::PrepareAbort | TxnState::CompleteAbort => false,
                    _ => return None,
                };
                // Version 2: the decision's epoch is above its data's. Records of earlier
                // versions (0) decided at the data's own epoch, their `Ongoing` fsynced first.
                let covers = m.producer_epoch > data_epoch
                    || (m.client_transaction_version < TRANSACTION_VERSION
                        && m.producer_epoch == data_epoch);
                (covers && m.partitions.contains(&tp)).then_some((commit, m.producer_epoch))
            });
            // No durable decision covers this data: abort it, at an epoch above the data's so
            // a producer still at that epoch could not write on (Kafka's fence-and-abort).
            let (commit, epoch) = decided.unwrap_or((false, data_epoch.saturating_add(1)));
            let kind = if commit {
                ControlRecordType::Commit
            } else {
                ControlRecordType::Abort
            };
            log::info!(
                "{} of {}-{}: open transaction of producer {producer_id} (epoch {data_epoch}) \
                 {} at open",
                if commit { "COMMIT" } else { "ABORT" },
                tp.topic,
                tp.partition,
                if decided.is_some() {
                    "completed from its durable decision"
                } else {
                    "aborted: no durable decision"
                }
            );
            end = Some(append_marker(&log, producer_id, epoch, kind, now)?);
            if let (None, Some(m)) = (decided, by_pid.get(&producer_id)) {
                let entry = aborted
                    .entry(m.transactional_id.clone())
                    .or_insert((epoch, BTreeSet::new()));
                entry.0 = entry.0.max(epoch);
                entry.1.insert(tp.clone());
            }
            if tp.topic == crate::group::OFFSETS_TOPIC_NAME {
                broker.groups().complete_txn(producer_id, commit);
            }
        }
        if let Some(end) = end {
            log.sync_to(end)?;
        }
    }
    Ok(aborted)
}

impl crate::Broker {
    /// Every transactional id the broker knows, with its producer, state and partitions
    /// (Kafka's `kafka-transactions.sh list`, with `describe`'s detail), sorted by id.
    ///
    /// ```
    /// use embroker::{Acks, Broker, ProducerConfig};
    /// let broker = Broker::temporary()?;
    /// assert!(broker.list_transactions()?.is_empty());
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn list_transactions(&self) -> Result<Vec<TransactionDescription>> {
        self.inner.txns().check()?;
        Ok(self.inner.txns().list())
    }

    /// One transactional id's producer, state and partitions (Kafka's
    /// `kafka-transactions.sh describe`); `None` if the broker does not know it.
    pub fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<Option<TransactionDescription>> {
        self.inner.txns().check()?;
        Ok(self.inner.txns().describe(transactional_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Broker, TopicConfig};

    fn setup() -> Broker {
        let broker = Broker::temporary().unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        broker
    }

    #[test]
    fn an_exhausted_epoch_gets_a_new_producer_id() {
        let broker = setup();
        let inner = &broker.inner;
        let c = inner.txns();
        let (pid, epoch) = c.init_producer_id(inner, Some("x"), 1000).unwrap();
        assert_eq!(epoch, 0);
        c.entry("x").lock().as_mut().unwrap().producer_epoch = i16::MAX - 1;
        let (next_pid, next_epoch) = c.init_producer_id(inner, Some("x"), 1000).unwrap();
        assert_ne!(next_pid, pid);
        assert_eq!(next_epoch, 0);
    }

    #[test]
    fn calls_check_producer_and_state_and_ends_repeat_as_kafka() {
        let broker = setup();
        let inner = &broker.inner;
        let c = inner.txns();
        let tp = [TopicPartition::new("t", 0)];
        // Unknown id.
        assert!(matches!(
            c.add_partitions(inner, "x", 0, 0, &tp),
            Err(Error::InvalidTxnState { .. })
        ));
        let (pid, epoch) = c.init_producer_id(inner, Some("x"), 1000).unwrap();
        // Nothing to end yet.
        assert!(matches!(
            c.end_txn(inner, "x", pid, epoch, true),
            Err(Error::InvalidTxnState { .. })
        ));
        // A wrong epoch or producer id is fenced.
        assert!(matches!(
            c.add_partitions(inner, "x", pid, epoch + 1, &tp),
            Err(Error::ProducerFenced { .. })
        ));
        assert!(matches!(
            c.add_partitions(inner, "x", pid + 1, epoch, &tp),
            Err(Error::ProducerFenced { .. })
        ));
        c.add_partitions(inner, "x", pid, epoch, &tp).unwrap();
        c.end_txn(inner, "x", pid, epoch, true).unwrap();
        // A retried commit succeeds; an abort of a committed transaction does not.
        c.end_txn(inner, "x", pid, epoch, true).unwrap();
        assert!(matches!(
            c.end_txn(inner, "x", pid, epoch, false),
            Err(Error::InvalidTxnState { .. })
        ));
        let d = c.describe("x").unwrap();
        assert_eq!(d.state, TxnState::CompleteCommit);
        // One marker written, not two.
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        assert_eq!(p.log_end_offset(), 1);
        // A timeout of zero or above the maximum is refused.
        for timeout in [0, MAX_TIMEOUT_MS_DEFAULT + 1] {
            assert!(matches!(
                c.init_producer_id(inner, Some("y"), timeout),
                Err(Error::InvalidTransactionTimeout { .. })
            ));
        }
    }

    #[test]
    fn timeouts_abort_only_expired_transactions() {
        let broker = setup();
        let inner = &broker.inner;
        let c = inner.txns();
        let tp = [TopicPartition::new("t", 0)];
        // A timeout the broker's own check (on the real clock) does not reach in this test.
        let (pid, epoch) = c.init_producer_id(inner, Some("slow"), 600_000).unwrap();
        c.add_partitions(inner, "slow", pid, epoch, &tp).unwrap();
        let started = c.describe("slow").unwrap().start_ms;
        c.abort_expired(inner, started + 600_000);
        assert_eq!(c.describe("slow").unwrap().state, TxnState::Ongoing);
        c.abort_expired(inner, started + 600_001);
        let d = c.describe("slow").unwrap();
        assert_eq!(d.state, TxnState::CompleteAbort);
        assert_eq!(d.producer_epoch, epoch + 1);
        assert!(matches!(
            c.end_txn(inner, "slow", pid, epoch, true),
            Err(Error::ProducerFenced { .. })
        ));
    }

    /// The headers (producer id, epoch, control) of every batch of `topic`-0.
    fn headers(broker: &Broker, topic: &str) -> Vec<(i64, i16, bool)> {
        let p = broker.topic(topic).unwrap().partition(0).unwrap();
        let mut out = Vec::new();
        let mut at = 0;
        // A read stops at the end of a segment: read on until the log end.
        while at < p.log_end_offset() {
            let records = p.read(at, 1 << 20).unwrap();
            for b in records.batches() {
                out.push((
                    b.header.producer_id,
                    b.header.producer_epoch,
                    b.header.is_control(),
                ));
                at = b.header.base_offset + i64::from(b.header.last_offset_delta) + 1;
            }
        }
        out
    }

    #[test]
    fn an_exhausted_epoch_at_an_end_continues_with_a_new_producer_id() {
        let broker = setup();
        let inner = &broker.inner;
        let c = inner.txns();
        let tp = [TopicPartition::new("t", 0)];
        let (pid, _) = c.init_producer_id(inner, Some("x"), 1000).unwrap();
        let last = i16::MAX - 1;
        c.entry("x").lock().as_mut().unwrap().producer_epoch = last;
        c.add_partitions(inner, "x", pid, last, &tp).unwrap();
        let (next_pid, next_epoch) = c.end_txn(inner, "x", pid, last, true).unwrap();
        assert_ne!(next_pid, pid);
        assert_eq!(next_epoch, 0);
        // The marker carries the old producer id at the last epoch.
        assert_eq!(headers(&broker, "t"), [(pid, i16::MAX, true)]);
        // A retry from the old producer is answered with the new one.
        assert_eq!(
            c.end_txn(inner, "x", pid, last, true).unwrap(),
            (next_pid, 0)
        );
        // The new producer id works.
        c.add_partitions(inner, "x", next_pid, 0, &tp).unwrap();
        assert_eq!(
            c.end_txn(inner, "x", next_pid, 0, false).unwrap(),
            (next_pid, 1)
        );
    }

    #[test]
    fn open_aborts_transactions_no_durable_decision_covers() {
        let dir = tempfile::tempdir().unwrap();
        let stranger = 777_777;
        {
            let broker = Broker::open(dir.path()).unwrap();
            broker.create_topic("t", TopicConfig::default()).unwrap();
            let log = broker.inner.partition_log("t", 0).unwrap();
            // A producer id the coordinator never handed out (its records lost, say).
            let mut b = crate::codec::BatchBuilder::new();
            b.set_producer(ProducerFields {
                producer_id: stranger,
                producer_epoch: 3,
                base_sequence: 0,
            });
            b.set_transactional(true);
            b.push(1_000, None, Some(b"v"), &[]).unwrap();
            let mut batch = b.finish();
            log.append_batch(&mut batch).unwrap();
            assert_eq!(log.ongoing_transactions(), vec![(stranger, 0)]);
            broker.close().unwrap();
        }
        let broker = Broker::open(dir.path()).unwrap();
        let log = broker.inner.partition_log("t", 0).unwrap();
        assert!(log.ongoing_transactions().is_empty());
        assert_eq!(
            headers(&broker, "t"),
            [(stranger, 3, false), (stranger, 4, true)],
            "aborted at the data's epoch + 1"
        );
        // A reopen finds nothing more to do.
        drop(log);
        broker.close().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        assert_eq!(headers(&broker, "t").len(), 2);
    }

    /// The one fsync of a transaction is its decision, and a decision is never superseded
    /// by a durable record of its id before its markers are durable: T1 writes markers to
    /// t-0 and t-1; T2 touches t-0 only; once T2's decision returned, T1's marker in t-1 is
    /// durable (recovery could no longer re-write it from T1's decision).
    #[test]
    fn a_decision_is_superseded_only_once_its_markers_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        let inner = &broker.inner;
        let c = inner.txns();
        let both = [TopicPartition::new("t", 0), TopicPartition::new("t", 1)];
        let (pid, epoch) = c.init_producer_id(inner, Some("x"), 60_000).unwrap();
        c.add_partitions(inner, "x", pid, epoch, &both).unwrap();
        let (pid, epoch) = c.end_txn(inner, "x", pid, epoch, true).unwrap();
        let second = inner.partition_log("t", 1).unwrap();
        let marker_end = second.log_end_offset();
        assert_eq!(marker_end, 1);
        assert_eq!(
            c.entry("x").lock().as_ref().unwrap().unsynced_markers.len(),
            2,
            "the markers were not fsynced by the commit"
        );
        c.add_partitions(inner, "x", pid, epoch, &both[..1])
            .unwrap();
        c.end_txn(inner, "x", pid, epoch, false).unwrap();
        assert!(second.durable_offset() >= marker_end);
        // Only T2's marker waits now.
        let m = c
            .entry("x")
            .lock()
            .as_ref()
            .unwrap()
            .unsynced_markers
            .clone();
        assert_eq!(m, [(TopicPartition::new("t", 0), 2)]);
    }
}
