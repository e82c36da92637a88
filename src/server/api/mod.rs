//! One module per family of Kafka APIs, each a translation of requests onto the broker's own
//! calls and of their results and errors into Kafka's responses.

pub(crate) mod cluster;
pub(crate) mod configs;
pub(crate) mod fetch;
pub(crate) mod groups;
pub(crate) mod list_offsets;
pub(crate) mod metadata;
pub(crate) mod offsets;
pub(crate) mod produce;
pub(crate) mod records;
pub(crate) mod sasl;
pub(crate) mod topics;
pub(crate) mod txn;

use std::sync::Arc;

use crate::broker::{BrokerInner, PartitionSlot};
use crate::error::{Error, Result};
use crate::log::PartitionLog;

/// The log of a partition that exists, never auto-creating its topic (Kafka creates topics
/// only through Metadata and CreateTopics, never on a produce or fetch).
pub(crate) fn partition_log(
    broker: &BrokerInner,
    topic: &str,
    partition: i32,
) -> Result<Arc<PartitionLog>> {
    let Some(state) = broker.existing_topic(topic) else {
        return Err(Error::UnknownTopic {
            topic: topic.to_string(),
        });
    };
    let partitions = state.partitions.read();
    match usize::try_from(partition)
        .ok()
        .and_then(|p| partitions.get(p))
    {
        Some(PartitionSlot::Online(log)) => Ok(log.clone()),
        Some(PartitionSlot::Offline(e)) => Err(e.clone()),
        None => Err(Error::UnknownPartition {
            topic: topic.to_string(),
            partition,
            partitions: i32::try_from(partitions.len()).unwrap_or(i32::MAX),
        }),
    }
}
