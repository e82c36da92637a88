//! Consumer groups: the partition assignors (pure functions), the in-process group
//! coordinator (`coordinator`), the network members of Kafka's classic group protocol
//! (`classic`, used by the server), committed offsets and their `__consumer_offsets` record
//! format (`offset_store`), and group administration on the broker (`admin`). A group has
//! in-process members or network members, never both at once; its committed offsets are
//! shared by both kinds.
//!
//! Architecture invariant: `group` knows nothing of files. Committed offsets reach disk only
//! as records appended to the `__consumer_offsets` partition log, and come back by reading it.
//!
//! `group` owns the decision of which member consumes which partition. An assignor sees only
//! partition counts and members' [`Subscription`]s and returns an [`Assignment`]; it knows
//! nothing of logs, files, clocks or threads, so a coordinator can call it under a lock and a
//! test can call it a million times.
//!
//! Invariants (checked by the property tests in each assignor module):
//! * every member of the group is a key of the assignment, possibly with an empty list;
//! * each partition of a topic someone subscribes to goes to exactly one member that
//!   subscribes to it, except that the cooperative assignor withholds partitions still owned
//!   by another member until the follow-up rebalance;
//! * no partition of an unknown, empty or unsubscribed topic is ever assigned;
//! * the same input always gives the same output.

mod admin;
mod assignor;
mod classic;
mod coordinator;
mod group_metadata;
mod offset_store;
mod range_assignor;
mod round_robin_assignor;
mod sticky_assignor;
#[cfg(test)]
mod testkit;

pub use admin::{GroupDescription, GroupListing, MemberDescription, OffsetSpec, PartitionOffsets};
pub use assignor::{assignor_by_name, Assignment, Assignor, RebalanceProtocol, Subscription};
#[cfg(feature = "server")]
pub(crate) use classic::{
    ClassicError, ClassicLimits, CommitError, Committer, JoinParams, Reaper, SyncParams,
};
pub use coordinator::GroupState;
pub(crate) use coordinator::{
    is_cooperative, Group, GroupRegistry, JoinRequest, LeaveStatus, SyncOutcome,
};
pub use group_metadata::ConsumerGroupMetadata;
#[cfg(feature = "server")]
pub(crate) use offset_store::check_commit;
pub(crate) use offset_store::Appended;
pub use offset_store::OffsetAndMetadata;
pub(crate) use offset_store::{
    offsets_log as offsets_log_for, OFFSETS_TOPIC as OFFSETS_TOPIC_NAME,
};
// For `crate::__fuzz` only (see there).
pub use offset_store::{
    decode_offset_commit, encode_key as encode_offset_commit_key,
    encode_value as encode_offset_commit_value, CommitValue as OffsetCommitValue,
    OffsetCommitRecord,
};
pub use range_assignor::RangeAssignor;
pub use round_robin_assignor::RoundRobinAssignor;
pub use sticky_assignor::{CooperativeStickyAssignor, StickyAssignor};
