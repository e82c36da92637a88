//! Metadata: the one broker, and every topic's partitions led by it.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::names::is_internal;
use crate::broker::{PartitionSlot, TopicState};
use crate::error::Error;
use crate::server::connection::RequestContext;
use crate::server::errors;

/// A topic's id in Metadata: derived from its name (FNV-1a, 128 bits), so it is the same on
/// every connection and after a restart, and never the nil id (which means "no id").
pub(crate) fn topic_id(name: &str) -> uuid::Uuid {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for b in name.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    uuid::Uuid::from_u128(h.max(1))
}

/// The Metadata response for one topic that exists.
pub(crate) fn describe(node: i32, name: &str, state: &Arc<TopicState>) -> MetadataResponseTopic {
    let partitions = state
        .partitions
        .read()
        .iter()
        .enumerate()
        .map(|(index, slot)| {
            let error = match slot {
                PartitionSlot::Online(_) => 0,
                PartitionSlot::Offline(_) => ResponseError::KafkaStorageError.code(),
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(i32::try_from(index).unwrap_or(i32::MAX))
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_topic_id(topic_id(name))
        .with_is_internal(is_internal(name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}

fn failed(name: &str, e: &Error) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_error_code(errors::code(e))
        .with_is_internal(is_internal(name))
        .with_topic_authorized_operations(i32::MIN)
}

/// Metadata: the broker, and the topics asked for (all of them for a null list, or an empty
/// one in version 0). A missing topic is created when both the client allows it (version 4
/// and later say so; earlier versions always allow) and the broker's
/// `auto.create.topics.enable` is on, as Kafka does.
pub(crate) fn metadata(ctx: &RequestContext<'_>, req: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.shared.broker.inner;
    let node = ctx.shared.config.node_id;
    let (host, port) = ctx.advertised();
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.version() == 0,
    };
    let allow_create = ctx.version() < 4 || req.allow_auto_topic_creation;
    let mut topics = Vec::new();
    if all {
        for (name, broken) in broker.all_topic_names() {
            match (broken, broker.existing_topic(&name)) {
                (Some(e), _) => topics.push(failed(&name, &e)),
                (None, Some(state)) => topics.push(describe(node, &name, &state)),
                (None, None) => {} // deleted since the listing
            }
        }
    } else {
        for t in req.topics.iter().flatten() {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                // A lookup by topic id alone (version 10 and later).
                topics.push(
                    MetadataResponseTopic::default()
                        .with_topic_id(t.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                );
                continue;
            };
            let found = match broker.existing_topic(&name) {
                Some(state) => Ok(state),
                None if allow_create && broker.auto_create_topics() && !is_internal(&name) => {
                    broker.auto_create(&name)
                }
                None => match crate::broker::names::validate(&name) {
                    Err(e) => Err(e),
                    Ok(()) => Err(Error::UnknownTopic {
                        topic: name.clone(),
                    }),
                },
            };
            match found {
                Ok(state) => topics.push(describe(node, &name, &state)),
                Err(e) => topics.push(failed(&name, &e)),
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(node))
            .with_host(StrBytes::from_string(host))
            .with_port(port)])
        .with_cluster_id(Some(StrBytes::from_string(ctx.shared.cluster_id.clone())))
        .with_controller_id(BrokerId(node))
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}
