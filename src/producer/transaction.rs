//! The producer's side of idempotence and transactions: its producer id and epoch, and for a
//! transactional producer the client state machine of Kafka's `TransactionManager`
//! (`clients/src/main/java/org/apache/kafka/clients/producer/internals/TransactionManager.java`)
//! and the `Producer` methods that drive it.
//!
//! States and the calls legal in each (Kafka's):
//!
//! | state | legal |
//! |---|---|
//! | `Uninitialized` | `init_transactions` |
//! | `Ready` | `begin_transaction` |
//! | `InTransaction` | `send`, `send_offsets_to_transaction`, `commit_transaction`, `abort_transaction` |
//! | `AbortableError` (a send or an offsets commit of the transaction failed) | `abort_transaction` |
//! | `FatalError` (fenced by a newer epoch) | nothing: every call reports the fencing; close |
//!
//! Invariants:
//! - A partition is registered with the coordinator (`AddPartitionsToTxn`) by the sender
//!   thread, before the first batch of the transaction is appended to it; a batch whose
//!   registration failed is not appended.
//! - `commit_transaction` and `abort_transaction` flush first, so every record sent in the
//!   transaction is in its partition before the marker; a transaction with a failed send
//!   cannot commit. A commit waits only until the records are appended (the sender says so
//!   before it fsyncs them) and hands the coordinator where each partition's data ends, so
//!   the decision's fsync runs alongside the data's; it returns once both are durable and
//!   every record's future is complete.
//! - Each transaction that reached the coordinator ends with a new epoch (or, once the epoch
//!   is exhausted, a new producer id) that the producer takes before the next transaction
//!   (Kafka's transaction version 2): the next batch of every partition starts at sequence 0.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::broker::BrokerInner;
use crate::error::{Error, Result};
use crate::group::{ConsumerGroupMetadata, OffsetAndMetadata};
use crate::log::PartitionLog;
use crate::producer::Producer;
use crate::types::TopicPartition;

const UNINITIALIZED: u8 = 0;
const READY: u8 = 1;
const IN_TRANSACTION: u8 = 2;
const COMMITTING: u8 = 3;
const ABORTING: u8 = 4;
const ABORTABLE_ERROR: u8 = 5;
const FATAL_ERROR: u8 = 6;

fn state_name(state: u8) -> &'static str {
    match state {
        UNINITIALIZED => "Uninitialized (call init_transactions first)",
        READY => "Ready (no transaction begun)",
        IN_TRANSACTION => "InTransaction",
        COMMITTING => "CommittingTransaction",
        ABORTING => "AbortingTransaction",
        ABORTABLE_ERROR => "AbortableError (abort the transaction)",
        _ => "FatalError",
    }
}

/// The producer id and epoch of an idempotent producer, and a transactional producer's state.
pub(crate) struct Idempotence {
    /// `(producer id, epoch)`; `None` until `init_transactions` for a transactional producer.
    ids: Mutex<Option<(i64, i16)>>,
    pub(crate) txn: Option<TxnManager>,
}

/// A transactional producer's state (see the module docs).
pub(crate) struct TxnManager {
    id: String,
    timeout_ms: i64,
    /// Read by every `send` without a lock.
    state: AtomicU8,
    inner: Mutex<TxnInner>,
    /// The flush target a `commit_transaction` waits to see appended (0: none waits). Set and
    /// read under the producer's accumulator lock (see `Shared::flush_until_appended`).
    commit_waits: AtomicU64,
    /// The target the sender found appended: every batch below it complete or appended.
    appended: AtomicU64,
}

#[derive(Default)]
struct TxnInner {
    /// Partitions registered with the coordinator in the current transaction.
    partitions: BTreeSet<TopicPartition>,
    /// Why the current transaction must abort.
    abortable: Option<Error>,
    /// Why the producer can do nothing more.
    fatal: Option<Error>,
    /// Where the transaction's data ends in each partition it appended to (the highest end
    /// offset of its batches), for the commit decision.
    ends: Vec<(Arc<PartitionLog>, i64)>,
}

impl Idempotence {
    /// The state of a new producer: an idempotent one gets its producer id now; a
    /// transactional one at `init_transactions`.
    pub(crate) fn new(
        broker: &BrokerInner,
        transactional_id: Option<&str>,
        timeout_ms: i64,
    ) -> Result<Idempotence> {
        let (ids, txn) = match transactional_id {
            None => (
                Some(broker.txns().init_producer_id(broker, None, timeout_ms)?),
                None,
            ),
            Some(id) => (
                None,
                Some(TxnManager {
                    id: id.to_string(),
                    timeout_ms,
                    state: AtomicU8::new(UNINITIALIZED),
                    inner: Mutex::new(TxnInner::default()),
                    commit_waits: AtomicU64::new(0),
                    appended: AtomicU64::new(0),
                }),
            ),
        };
        Ok(Idempotence {
            ids: Mutex::new(ids),
            txn,
        })
    }

    /// The producer id and epoch to stamp now.
    pub(crate) fn current(&self) -> Option<(i64, i16)> {
        *self.ids.lock()
    }

    /// Registers the partitions of `logs` not yet in the transaction with the coordinator;
    /// `Ok` also for a producer without transactions. Called by the sender thread before it
    /// appends a round's batches.
    pub(crate) fn register<'a>(
        &self,
        broker: &BrokerInner,
        logs: impl Iterator<Item = &'a Arc<PartitionLog>>,
    ) -> Result<()> {
        let Some(txn) = &self.txn else { return Ok(()) };
        let Some((producer_id, epoch)) = self.current() else {
            return Err(txn.invalid(UNINITIALIZED, "send"));
        };
        let mut inner = txn.inner.lock();
        if let Some(e) = &inner.fatal {
            return Err(e.clone());
        }
        let state = txn.state.load(Ordering::Acquire);
        if !matches!(state, IN_TRANSACTION | COMMITTING | ABORTING) {
            return Err(match &inner.abortable {
                // Records sent before an earlier batch of the transaction failed.
                Some(e) if state == ABORTABLE_ERROR => Error::TransactionAborted {
                    transactional_id: txn.id.clone(),
                    reason: format!("an earlier send of the transaction failed: {e}"),
                },
                _ => txn.invalid(state, "send"),
            });
        }
        let mut new: Vec<TopicPartition> = Vec::new();
        for log in logs {
            let tp = TopicPartition::new(log.topic(), log.partition());
            if !inner.partitions.contains(&tp) && !new.contains(&tp) {
                new.push(tp);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        match broker
            .txns()
            .add_partitions(broker, &txn.id, producer_id, epoch, &new)
        {
            Ok(()) => {
                inner.partitions.extend(new);
                Ok(())
            }
            Err(e) => {
                txn.fail(&mut inner, e.clone());
                Err(e)
            }
        }
    }

    /// Called by the sender thread once a round's batches are appended, before their fsync:
    /// keeps the end offset of the transaction's data in each partition of `ends`, and notes
    /// a failed append (the transaction must abort). Returns the flush target a commit waits
    /// to see appended, 0 when none waits.
    pub(crate) fn round_appended(
        &self,
        ends: &[(Arc<PartitionLog>, i64)],
        failed: Option<&Error>,
    ) -> u64 {
        let Some(txn) = &self.txn else { return 0 };
        let mut inner = txn.inner.lock();
        for (log, end) in ends {
            match inner.ends.iter_mut().find(|(l, _)| Arc::ptr_eq(l, log)) {
                Some((_, e)) => *e = (*e).max(*end),
                None => inner.ends.push((Arc::clone(log), *end)),
            }
        }
        if let Some(e) = failed {
            txn.fail(&mut inner, e.clone());
        }
        drop(inner);
        txn.commit_waits.load(Ordering::Acquire)
    }

    /// The sender found every batch below `target` appended (called under the accumulator
    /// lock): tells the commit waiting for `target`, if it still does.
    pub(crate) fn set_appended(&self, target: u64) {
        if let Some(txn) = &self.txn {
            if txn.commit_waits.load(Ordering::Acquire) == target {
                txn.appended.store(target, Ordering::Release);
            }
        }
    }

    /// A commit waits to see `target` appended (0: it stopped waiting). Called under the
    /// accumulator lock.
    pub(crate) fn wait_appended(&self, target: u64) {
        if let Some(txn) = &self.txn {
            txn.appended.store(0, Ordering::Release);
            txn.commit_waits.store(target, Ordering::Release);
        }
    }

    /// True once the sender found every batch below `target` appended.
    pub(crate) fn is_appended(&self, target: u64) -> bool {
        self.txn
            .as_ref()
            .is_some_and(|txn| target != 0 && txn.appended.load(Ordering::Acquire) == target)
    }

    /// Notes that a batch of the transaction failed: the transaction must abort.
    pub(crate) fn batch_failed(&self, e: &Error) {
        if let Some(txn) = &self.txn {
            let mut inner = txn.inner.lock();
            txn.fail(&mut inner, e.clone());
        }
    }
}

impl TxnManager {
    fn invalid(&self, state: u8, operation: &'static str) -> Error {
        Error::InvalidTxnState {
            transactional_id: self.id.clone(),
            state: state_name(state).to_string(),
            operation,
        }
    }

    /// Records a failure: fencing is fatal, anything else aborts the transaction.
    fn fail(&self, inner: &mut TxnInner, e: Error) {
        if is_fencing(&e) {
            inner.fatal = Some(e);
            self.state.store(FATAL_ERROR, Ordering::Release);
        } else if inner.fatal.is_none() {
            if inner.abortable.is_none() {
                inner.abortable = Some(e);
            }
            if self.state.load(Ordering::Acquire) == IN_TRANSACTION {
                self.state.store(ABORTABLE_ERROR, Ordering::Release);
            }
        }
    }

    /// Checks a `send`: legal in a transaction only. On the hot path: one atomic load.
    #[inline]
    pub(crate) fn check_send(&self) -> Result<()> {
        let state = self.state.load(Ordering::Acquire);
        if state == IN_TRANSACTION {
            return Ok(());
        }
        Err(self.state_error(state, "send"))
    }

    /// The error for `operation` in `state`: the fatal or abortable cause when there is one.
    fn state_error(&self, state: u8, operation: &'static str) -> Error {
        let inner = self.inner.lock();
        match (&inner.fatal, &inner.abortable) {
            (Some(e), _) => e.clone(),
            (None, Some(e)) if state == ABORTABLE_ERROR => Error::TransactionAborted {
                transactional_id: self.id.clone(),
                reason: format!("cannot {operation}: an earlier operation failed: {e}"),
            },
            _ => self.invalid(state, operation),
        }
    }

    /// Moves from one of `from` to `to`, or fails naming `operation`.
    fn enter(&self, from: &[u8], to: u8, operation: &'static str) -> Result<u8> {
        let state = self.state.load(Ordering::Acquire);
        if !from.contains(&state) {
            return Err(self.state_error(state, operation));
        }
        self.state.store(to, Ordering::Release);
        Ok(state)
    }
}

impl Producer {
    fn txn_parts(&self) -> Result<(&Idempotence, &TxnManager)> {
        let shared = self.shared();
        match shared.idempotence.as_ref() {
            Some(idem) => match &idem.txn {
                Some(txn) => Ok((idem, txn)),
                None => Err(not_transactional()),
            },
            None => Err(not_transactional()),
        }
    }

    /// Registers the producer's `transactional.id` with the transaction coordinator (Kafka's
    /// `initTransactions`): bumps the id's epoch, which fences any older producer with the same
    /// id, after its pending transaction is completed (if its commit was decided) or aborted.
    /// Call once, before any other transactional method.
    ///
    /// Errors: [`Error::InvalidTxnState`] when called twice or the producer is not
    /// transactional; [`Error::InvalidTransactionTimeout`] when `transaction.timeout.ms` is above
    /// the broker's `transaction.max.timeout.ms`.
    ///
    /// ```
    /// use embroker::{Acks, Broker, Error, ProducerConfig, ProducerRecord, TopicConfig};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("invoices", TopicConfig::default())?;
    /// let config = ProducerConfig::default().acks(Acks::All).transactional_id("billing-1");
    /// let producer = broker.producer(config.clone())?;
    /// producer.init_transactions()?;
    /// producer.begin_transaction()?;
    /// producer.send(ProducerRecord::new("invoices", "invoice 1"))?;
    /// producer.commit_transaction()?;
    ///
    /// // A second producer with the same transactional.id fences the first: its next
    /// // transaction fails at its first send, and for good.
    /// let newer = broker.producer(config)?;
    /// newer.init_transactions()?;
    /// producer.begin_transaction()?;
    /// let sent = producer.send(ProducerRecord::new("invoices", "invoice 2"))?;
    /// assert!(matches!(sent.wait(), Err(Error::ProducerFenced { .. })));
    /// assert!(matches!(producer.commit_transaction(), Err(Error::ProducerFenced { .. })));
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn init_transactions(&self) -> Result<()> {
        let (idem, txn) = self.txn_parts()?;
        txn.enter(&[UNINITIALIZED], UNINITIALIZED, "init_transactions")?;
        let inner = &self.shared().broker.inner;
        let ids = inner
            .txns()
            .init_producer_id(inner, Some(&txn.id), txn.timeout_ms)?;
        *idem.ids.lock() = Some(ids);
        txn.state.store(READY, Ordering::Release);
        Ok(())
    }

    /// Begins a transaction (Kafka's `beginTransaction`): every record sent until
    /// [`Producer::commit_transaction`] or [`Producer::abort_transaction`] belongs to it.
    /// Legal after `init_transactions` or the end of the previous transaction.
    pub fn begin_transaction(&self) -> Result<()> {
        let (_, txn) = self.txn_parts()?;
        // Checked before anything is cleared: a second begin must leave the transaction be
        // (and a fenced producer's state is FatalError, whose error this returns).
        txn.enter(&[READY], IN_TRANSACTION, "begin_transaction")?;
        let mut inner = txn.inner.lock();
        inner.partitions.clear();
        inner.ends.clear();
        inner.abortable = None;
        Ok(())
    }

    /// Commits `offsets` of the consumer group `group` as part of the current transaction
    /// (Kafka's `sendOffsetsToTransaction`): they become the group's committed offsets if and
    /// only if the transaction commits. `group` comes from
    /// [`Consumer::group_metadata`](crate::Consumer::group_metadata): a consumer that is no
    /// longer a member of that generation is refused ([`Error::CommitFailed`], KIP-447), and
    /// the transaction must then abort.
    pub fn send_offsets_to_transaction(
        &self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let (idem, txn) = self.txn_parts()?;
        let state = txn.state.load(Ordering::Acquire);
        if state != IN_TRANSACTION {
            return Err(txn.state_error(state, "send_offsets_to_transaction"));
        }
        let Some((producer_id, epoch)) = idem.current() else {
            return Err(txn.invalid(UNINITIALIZED, "send_offsets_to_transaction"));
        };
        let inner = &self.shared().broker.inner;
        let result = (|| {
            inner.groups().check()?;
            let offsets_partition =
                inner
                    .txns()
                    .add_offsets(inner, &txn.id, producer_id, epoch, &group.group_id)?;
            // The transaction is open at the coordinator now, records sent or not: the
            // commit or abort must reach it.
            txn.inner.lock().partitions.insert(offsets_partition);
            let g = inner.groups().get_or_create(&group.group_id);
            g.txn_commit(inner, producer_id, epoch, group.member(), offsets)
        })();
        if let Err(e) = &result {
            // Argument errors change nothing; anything else leaves the transaction unsure.
            if !matches!(e, Error::InvalidArgument { .. }) {
                txn.fail(&mut txn.inner.lock(), e.clone());
            }
        }
        result
    }

    /// Flushes, then commits the current transaction (Kafka's `commitTransaction`): its
    /// records become visible to `read_committed` consumers and its offsets committed.
    ///
    /// Errors: [`Error::TransactionAborted`] when a send of the transaction failed (abort it
    /// then); [`Error::ProducerFenced`] when a newer producer took the `transactional.id` or
    /// the transaction timed out (fatal: close the producer); [`Error::InvalidTxnState`]
    /// without a transaction.
    pub fn commit_transaction(&self) -> Result<()> {
        self.end_transaction(true)
    }

    /// Aborts the current transaction (Kafka's `abortTransaction`): records still in the
    /// producer's buffer are dropped, their futures and callbacks failing with
    /// [`Error::TransactionAborted`] (callbacks run on this thread); records already written
    /// stay in the log, but `read_committed` consumers never see them; offsets sent to the
    /// transaction are discarded. Waits for the writes in progress first. Legal in a
    /// transaction, also after one of its operations failed.
    pub fn abort_transaction(&self) -> Result<()> {
        self.end_transaction(false)
    }

    fn end_transaction(&self, commit: bool) -> Result<()> {
        let (idem, txn) = self.txn_parts()?;
        let (operation, from, to): (_, &[u8], _) = if commit {
            ("commit_transaction", &[IN_TRANSACTION], COMMITTING)
        } else {
            (
                "abort_transaction",
                &[IN_TRANSACTION, ABORTABLE_ERROR],
                ABORTING,
            )
        };
        let previous = txn.enter(from, to, operation)?;
        let restore = |e: Error| {
            let mut inner = txn.inner.lock();
            if inner.fatal.is_none() {
                txn.state.store(previous, Ordering::Release);
            }
            txn.fail(&mut inner, e.clone());
            e
        };
        if !commit && !self.shared().on_sender_thread() {
            // Kafka's abort fails the records not sent yet instead of writing them.
            self.shared().abort_undrained(&Error::TransactionAborted {
                transactional_id: txn.id.clone(),
                reason: "abort_transaction was called before the record was written".into(),
            });
        }
        // A commit waits only until its batches are appended: its decision's fsync then runs
        // while the sender fsyncs them (`complete` false); see `TxnCoordinator::
        // commit_with_data`. An abort waits for them to complete.
        let flushed = if commit {
            self.shared().flush_until_appended()
        } else {
            self.flush().map(|()| true)
        };
        let complete = match flushed {
            Ok(complete) => complete,
            Err(e) => {
                // Called from a send callback: nothing happened.
                txn.state.store(previous, Ordering::Release);
                return Err(e);
            }
        };
        let mut inner = txn.inner.lock();
        if let Some(e) = &inner.fatal {
            return Err(e.clone());
        }
        if commit {
            if let Some(e) = &inner.abortable {
                let e = Error::TransactionAborted {
                    transactional_id: txn.id.clone(),
                    reason: format!("a send of the transaction failed: {e}"),
                };
                txn.state.store(ABORTABLE_ERROR, Ordering::Release);
                return Err(e);
            }
        }
        let registered = !inner.partitions.is_empty();
        let ends = std::mem::take(&mut inner.ends);
        drop(inner);
        if registered {
            let Some((producer_id, epoch)) = idem.current() else {
                return Err(restore(txn.invalid(UNINITIALIZED, operation)));
            };
            let broker = &self.shared().broker.inner;
            let coordinator = broker.txns();
            let next = if complete {
                coordinator.end_txn(broker, &txn.id, producer_id, epoch, commit)
            } else {
                coordinator.commit_with_data(broker, &txn.id, producer_id, epoch, &ends)
            }
            .map_err(restore)?;
            // Transaction version 2: every end bumps the epoch; the sender's sequences start
            // again at 0 for every partition when it sees the new epoch (`Sequences::fields`).
            *idem.ids.lock() = Some(next);
        }
        if !complete {
            // The data is durable; the sender completes its futures and callbacks next.
            self.flush()?;
        }
        let mut inner = txn.inner.lock();
        inner.partitions.clear();
        inner.abortable = None;
        txn.state.store(READY, Ordering::Release);
        Ok(())
    }
}

/// True for the errors that mean a newer epoch of this producer exists: fatal for a
/// transactional producer (Kafka's `ProducerFencedException`). The coordinator reports
/// [`Error::ProducerFenced`]; a partition log that checks epochs reports its own kind for a
/// batch of an older epoch, which belongs here too.
fn is_fencing(e: &Error) -> bool {
    // A partition that saw a newer epoch of this producer id refuses the old one: another
    // instance with the same transactional.id took over (Kafka maps both to fatal errors).
    matches!(
        e,
        Error::ProducerFenced { .. } | Error::InvalidProducerEpoch { .. }
    )
}

fn not_transactional() -> Error {
    Error::InvalidTxnState {
        transactional_id: String::new(),
        state: "not transactional (no transactional.id)".into(),
        operation: "use transactions",
    }
}
