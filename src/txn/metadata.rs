//! A transactional id's state as the coordinator keeps it: Kafka's `TransactionMetadata` and
//! `TransactionState` (`transaction-coordinator/.../TransactionState.java`,
//! `core/.../coordinator/transaction/TransactionMetadata.scala`).
//!
//! Invariant: a state changes only along Kafka's valid transitions
//! ([`TxnState::can_follow`]); [`TransactionMetadata::transition`] refuses any other with
//! [`Error::InvalidTxnState`] and leaves the metadata as it was.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// Kafka's `TransactionState`, with its ids as written in `__transaction_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    /// No transaction in progress (a producer was initialized, or nothing began yet).
    Empty,
    /// A transaction in progress: partitions were added to it.
    Ongoing,
    /// The commit was decided and is durable; markers are being written.
    PrepareCommit,
    /// The abort was decided and is durable; markers are being written.
    PrepareAbort,
    /// The last transaction committed; every marker is written.
    CompleteCommit,
    /// The last transaction aborted; every marker is written.
    CompleteAbort,
    /// The transactional id expired and was removed.
    Dead,
    /// The producer is being fenced (its epoch bumped) before its transaction is aborted;
    /// never written to the log (Kafka writes `PrepareAbort` for it).
    PrepareEpochFence,
}

impl TxnState {
    /// Every state, for tests and tools.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// Kafka's id of the state (`TransactionState.id`), the byte `__transaction_state` stores.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state Kafka numbers `id`.
    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Kafka's name of the state (`kafka-transactions.sh describe` prints it).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The states Kafka allows before this one (`TransactionState.validPreviousStates`).
    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// True when Kafka allows a transition from `previous` to this state.
    pub fn can_follow(self, previous: TxnState) -> bool {
        self.valid_previous().contains(&previous)
    }

    /// A transaction is open: its partitions may hold records without a marker.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            TxnState::Ongoing
                | TxnState::PrepareCommit
                | TxnState::PrepareAbort
                | TxnState::PrepareEpochFence
        )
    }
}

impl std::fmt::Display for TxnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The coordinator's record of one transactional id (what `__transaction_state` stores).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TransactionMetadata {
    pub(crate) transactional_id: String,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) state: TxnState,
    /// Partitions of the ongoing (or completing) transaction.
    pub(crate) partitions: BTreeSet<TopicPartition>,
    /// When the transaction began (ms), -1 without one.
    pub(crate) txn_start_ms: i64,
    pub(crate) last_update_ms: i64,
    /// The producer id that continues after this decision when its epoch was exhausted
    /// (Kafka's `NextProducerId`), -1 otherwise. Set only while a `Prepare*` state waits for
    /// its `Complete*`; both records carry it.
    pub(crate) next_producer_id: i64,
    /// The producer id and epoch the last `end_txn` ended, so a retry from that producer
    /// (whose epoch was bumped since) is answered, as Kafka's `lastProducerEpoch`. In memory
    /// only.
    pub(crate) last_producer: Option<(i64, i16)>,
    /// Markers of the last ended transaction not known durable yet: (partition, end offset).
    /// Synced before the next durable record of this id supersedes the decision that
    /// recovery would re-write them from. In memory only.
    pub(crate) unsynced_markers: Vec<(TopicPartition, i64)>,
    /// Kafka's `ClientTransactionVersion` of the last record: 2 (what embroker writes now)
    /// when a decision's epoch is the bump of its data's epoch, 0 for records of earlier
    /// embroker versions, whose decisions and markers carry the data's own epoch.
    pub(crate) client_transaction_version: i16,
    /// For a `PrepareCommit` written with them: where each partition's data of the
    /// transaction ends (its end offset then). Recovery completes the commit only if every
    /// partition's log reaches its end, and aborts it otherwise (the data's fsync ran
    /// alongside the decision's, see the coordinator). Written in the record (FORMAT.md §21).
    pub(crate) data_ends: BTreeMap<TopicPartition, i64>,
    /// The decision is durable but making its data durable failed: the commit must not be
    /// completed in this process (recovery decides from the data that is on disk). In memory
    /// only.
    pub(crate) data_unsure: bool,
}

impl TransactionMetadata {
    /// Moves to `to` if Kafka allows it from the current state; otherwise an
    /// [`Error::InvalidTxnState`] naming `operation`, and nothing changes.
    pub(crate) fn transition(&mut self, to: TxnState, operation: &'static str) -> Result<()> {
        if !to.can_follow(self.state) {
            return Err(self.invalid(operation));
        }
        self.state = to;
        Ok(())
    }

    /// The error for `operation` in the current state.
    pub(crate) fn invalid(&self, operation: &'static str) -> Error {
        Error::InvalidTxnState {
            transactional_id: self.transactional_id.clone(),
            state: self.state.name().to_string(),
            operation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(state: TxnState) -> TransactionMetadata {
        TransactionMetadata {
            transactional_id: "t".into(),
            producer_id: 1,
            producer_epoch: 0,
            timeout_ms: 60_000,
            state,
            partitions: BTreeSet::new(),
            txn_start_ms: -1,
            last_update_ms: 0,
            next_producer_id: -1,
            last_producer: None,
            unsynced_markers: Vec::new(),
            client_transaction_version: 2,
            data_ends: BTreeMap::new(),
            data_unsure: false,
        }
    }

    #[test]
    fn ids_round_trip_and_match_kafka() {
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_id(s.id()), Some(s));
        }
        assert_eq!(TxnState::PrepareCommit.id(), 2);
        assert_eq!(TxnState::PrepareEpochFence.id(), 7);
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::from_id(-1), None);
    }

    #[test]
    fn a_commit_goes_through_prepare() {
        let mut m = meta(TxnState::Empty);
        m.transition(TxnState::Ongoing, "add partitions").unwrap();
        assert!(m.transition(TxnState::CompleteCommit, "commit").is_err());
        m.transition(TxnState::PrepareCommit, "commit").unwrap();
        m.transition(TxnState::CompleteCommit, "commit").unwrap();
        m.transition(TxnState::Empty, "init").unwrap();
    }

    proptest! {
        /// Any sequence of requested states: each accepted one is a valid transition, each
        /// refused one leaves the state unchanged and names the state it was in.
        #[test]
        fn no_invalid_transition_is_accepted(steps in prop::collection::vec(0usize..8, 0..40)) {
            let mut m = meta(TxnState::Empty);
            for i in steps {
                let to = TxnState::ALL[i];
                let before = m.state;
                match m.transition(to, "test") {
                    Ok(()) => {
                        prop_assert!(to.can_follow(before));
                        prop_assert_eq!(m.state, to);
                    }
                    Err(Error::InvalidTxnState { state, .. }) => {
                        prop_assert!(!to.can_follow(before));
                        prop_assert_eq!(m.state, before);
                        prop_assert_eq!(state, before.name());
                    }
                    Err(e) => prop_assert!(false, "unexpected {}", e),
                }
            }
        }
    }

    #[test]
    fn completes_need_their_prepare() {
        for from in TxnState::ALL {
            assert_eq!(
                TxnState::CompleteCommit.can_follow(from),
                from == TxnState::PrepareCommit
            );
            assert_eq!(
                TxnState::CompleteAbort.can_follow(from),
                from == TxnState::PrepareAbort
            );
        }
    }
}
