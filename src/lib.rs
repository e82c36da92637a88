//! embroker: Apache Kafka's semantics in-process.
//!
//! (Crate docs are filled in with the tour once the public API lands.)

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod config;
mod error;
mod group;
mod types;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::{CleanupPolicy, TopicConfig};
pub use error::{Error, Result};
pub use group::{
    assignor_by_name, Assignment, Assignor, CooperativeStickyAssignor, RangeAssignor,
    RebalanceProtocol, RoundRobinAssignor, StickyAssignor, Subscription,
};
pub use types::{Bytes, Header, Record, StoredRecord, TimestampType, TopicPartition};
