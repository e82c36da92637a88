//! Transactions: producer ids, the transaction coordinator and its internal topic
//! `__transaction_state` (Kafka's KIP-98, with KIP-360's epoch bumps and KIP-447's group
//! metadata checks).
//!
//! Owns: producer id allocation and its file (`producer_ids`), the `__transaction_state`
//! record codec (`state_log`), each transactional id's state machine (`metadata`), and the
//! coordinator that moves it and writes the transaction markers (`coordinator`).
//!
//! Architecture invariants:
//! - `txn` knows nothing of segment files: its state reaches disk as records appended to the
//!   `__transaction_state` partition logs, and markers as control batches appended to the data
//!   partitions, both through `PartitionLog::append_*` as Kafka's coordinator writes them
//!   (`appendAsLeader`). What a marker does to a partition (its last stable offset, its
//!   aborted-transaction index) is the log's business.
//! - A transaction's commit or abort decision, and a commit's data, are durable before any of
//!   its markers is written (see `coordinator`).
//! - Only the producer id file is written directly, with `io::write_atomic`.

mod coordinator;
mod metadata;
mod producer_ids;
mod state_log;
pub mod testing;

pub use coordinator::TransactionDescription;
pub(crate) use coordinator::{TxnCoordinator, MAX_TIMEOUT_MS_DEFAULT};
pub use metadata::TxnState;
pub(crate) use producer_ids::ProducerIds;
// For `crate::__fuzz` and tools: the record codec.
pub use state_log::{
    decode as decode_txn_log_record, encode_key as encode_txn_log_key,
    encode_value as encode_txn_log_value, TxnLogRecord, TxnLogValue, TxnTopicPartitions,
};
