//! The committed-offset APIs: OffsetCommit, OffsetFetch, OffsetDelete and TxnOffsetCommit.
//!
//! Committed offsets are the group layer's (`GroupInner.offsets`, persisted in
//! `__consumer_offsets`), shared with in-process consumers: a network consumer and an
//! in-process one of the same group see the same offsets. A commit is checked partition by
//! partition (the topic and partition must exist; Kafka never creates a topic on commit),
//! then against the group's membership as Kafka's coordinator does; the partitions that pass
//! are written together and made durable before the answer.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::groups::code as group_code;
use super::partition_log;
use crate::error::Error;
use crate::group::{CommitError, Committer, OffsetAndMetadata};
use crate::server::connection::RequestContext;
use crate::server::errors;
use crate::types::TopicPartition;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The error of one partition of a commit that cannot be written at all.
fn partition_error(e: &Error) -> i16 {
    match e {
        Error::InvalidArgument {
            name: "metadata", ..
        } => ResponseError::OffsetMetadataTooLarge.code(),
        Error::InvalidArgument {
            name: "group.id", ..
        } => ResponseError::InvalidGroupId.code(),
        other => errors::code(other),
    }
}

fn commit_error(e: &CommitError) -> i16 {
    match e {
        CommitError::Group(g) => group_code(*g),
        CommitError::Broker(b) => errors::code(b),
    }
}

/// Checks one partition of a commit: it exists, and its offset and metadata are valid.
fn check_partition(
    ctx: &RequestContext<'_>,
    group: &str,
    tp: &TopicPartition,
    om: &OffsetAndMetadata,
) -> Result<(), i16> {
    crate::group::check_commit(group, tp, om).map_err(|e| partition_error(&e))?;
    partition_log(&ctx.shared.broker.inner, &tp.topic, tp.partition)
        .map(|_| ())
        .map_err(|e| errors::code(&e))
}

/// Offsets a commit may write.
type Wanted = BTreeMap<TopicPartition, OffsetAndMetadata>;

/// Splits a commit's partitions into those that may be written and the error code of each
/// one that may not (the groups failed to load, a bad offset, or a partition that does not
/// exist), keyed by its place in the request. OffsetCommit and TxnOffsetCommit share it.
fn split_valid(
    ctx: &RequestContext<'_>,
    group_id: &str,
    entries: impl Iterator<Item = ((usize, usize), TopicPartition, OffsetAndMetadata)>,
) -> (Wanted, BTreeMap<(usize, usize), i16>) {
    let load = ctx
        .shared
        .broker
        .inner
        .groups()
        .check()
        .err()
        .map(|e| errors::code(&e));
    let mut valid = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for (at, tp, om) in entries {
        let checked = match load {
            Some(code) => Err(code),
            None => check_partition(ctx, group_id, &tp, &om),
        };
        match checked {
            Ok(()) => {
                valid.insert(tp, om);
            }
            Err(code) => {
                failed.insert(at, code);
            }
        }
    }
    (valid, failed)
}

/// OffsetCommit.
pub(crate) fn offset_commit(
    ctx: &RequestContext<'_>,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let broker = &ctx.shared.broker.inner;
    let (valid, failed) = split_valid(
        ctx,
        &group_id,
        req.topics.iter().enumerate().flat_map(|(ti, topic)| {
            topic.partitions.iter().enumerate().map(move |(pi, p)| {
                let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                let om = OffsetAndMetadata::new(p.committed_offset)
                    .metadata(p.committed_metadata.as_deref().unwrap_or(""));
                ((ti, pi), tp, om)
            })
        }),
    );
    let group_error = if valid.is_empty() {
        0
    } else {
        let committer = Committer {
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
            generation: req.generation_id_or_member_epoch,
        };
        let group = broker.groups().get_or_create(&group_id);
        match group.classic_commit(broker, &committer, &valid) {
            Ok(Some(appended)) => match appended.sync() {
                Ok(()) => 0,
                Err(e) => errors::code(&e),
            },
            Ok(None) => 0,
            Err(e) => commit_error(&e),
        }
    };
    let topics = req
        .topics
        .into_iter()
        .enumerate()
        .map(|(ti, topic)| {
            let partitions = topic
                .partitions
                .iter()
                .enumerate()
                .map(|(pi, p)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(failed.get(&(ti, pi)).copied().unwrap_or(group_error))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One partition's committed offset as OffsetFetch answers it: (offset, metadata, error).
/// No commit: offset -1, empty metadata, no error. With `require_stable`, a partition with
/// transactional offsets waiting for their marker answers `UNSTABLE_OFFSET_COMMIT`.
fn fetch_one(
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    pending: &[TopicPartition],
    require_stable: bool,
    tp: &TopicPartition,
) -> (i64, String, i16) {
    if require_stable && pending.contains(tp) {
        return (
            -1,
            String::new(),
            ResponseError::UnstableOffsetCommit.code(),
        );
    }
    match offsets.get(tp) {
        Some(om) => (om.offset, om.metadata.clone(), 0),
        None => (-1, String::new(), 0),
    }
}

/// The committed offsets of `group_id` for `topics` (every committed partition for `None`),
/// by topic, or the group's error.
#[allow(clippy::type_complexity)]
fn fetch_group(
    ctx: &RequestContext<'_>,
    group_id: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Vec<(TopicName, Vec<(i32, (i64, String, i16))>)>, i16> {
    let registry = ctx.shared.broker.inner.groups();
    registry.check().map_err(|e| errors::code(&e))?;
    let (offsets, pending) = match registry.get(group_id) {
        Some(group) => {
            let g = group.inner.lock();
            let pending: Vec<TopicPartition> = g
                .pending_txn
                .values()
                .flat_map(|m| m.keys().cloned())
                .collect();
            (g.offsets.clone(), pending)
        }
        None => (BTreeMap::new(), Vec::new()),
    };
    let topics = match topics {
        Some(t) => t,
        None => {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for tp in offsets.keys() {
                by_topic
                    .entry(tp.topic.clone())
                    .or_default()
                    .push(tp.partition);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| (TopicName(s(t)), ps))
                .collect()
        }
    };
    Ok(topics
        .into_iter()
        .map(|(name, partitions)| {
            let answers = partitions
                .into_iter()
                .map(|p| {
                    let tp = TopicPartition::new(name.0.to_string(), p);
                    (p, fetch_one(&offsets, &pending, require_stable, &tp))
                })
                .collect();
            (name, answers)
        })
        .collect())
}

/// OffsetFetch: one group (versions 1 to 7) or a batch of groups (8 and later).
pub(crate) fn offset_fetch(
    ctx: &RequestContext<'_>,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let v = ctx.version();
    let require_stable = v >= 7 && req.require_stable;
    if v >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|group| {
                let topics = group.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                let out = OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
                match fetch_group(ctx, &group.group_id, topics, require_stable) {
                    Err(code) => out.with_error_code(code),
                    Ok(found) => out.with_topics(
                        found
                            .into_iter()
                            .map(|(name, ps)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(name)
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|(p, (offset, metadata, error))| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(-1)
                                                    .with_metadata(Some(s(metadata)))
                                                    .with_error_code(error)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    match fetch_group(ctx, &req.group_id, topics, require_stable) {
        Err(code) => {
            let mut r = OffsetFetchResponse::default();
            if v >= 2 {
                r.error_code = code;
            }
            r
        }
        Ok(found) => OffsetFetchResponse::default().with_topics(
            found
                .into_iter()
                .map(|(name, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, (offset, metadata, error))| {
                                    let mut out = OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_metadata(Some(s(metadata)))
                                        .with_error_code(error);
                                    if v >= 5 {
                                        out.committed_leader_epoch = -1;
                                    }
                                    out
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

/// OffsetDelete: removes committed offsets of partitions the group is not consuming
/// (`GROUP_SUBSCRIBED_TO_TOPIC` for a topic a member subscribes to).
pub(crate) fn offset_delete(
    ctx: &RequestContext<'_>,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let broker = &ctx.shared.broker.inner;
    let group_id = req.group_id.0.to_string();
    if let Err(e) = broker.groups().check() {
        return OffsetDeleteResponse::default().with_error_code(errors::code(&e));
    }
    let Some(group) = broker.groups().get(&group_id) else {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupIdNotFound.code());
    };
    let subscribed = group.subscribed_topics();
    let mut to_delete = Vec::new();
    for topic in &req.topics {
        if subscribed.contains(topic.name.0.as_str()) {
            continue;
        }
        for p in &topic.partitions {
            to_delete.push(TopicPartition::new(
                topic.name.0.to_string(),
                p.partition_index,
            ));
        }
    }
    let error = match group.delete_offsets(broker, &to_delete) {
        Ok(()) => 0,
        Err(e) => errors::code(&e),
    };
    if error != 0 {
        return OffsetDeleteResponse::default().with_error_code(error);
    }
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let code = if subscribed.contains(topic.name.0.as_str()) {
                ResponseError::GroupSubscribedToTopic.code()
            } else {
                0
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

/// TxnOffsetCommit: offsets written in a producer's transaction, pending until its marker.
pub(crate) fn txn_offset_commit(
    ctx: &RequestContext<'_>,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let broker = &ctx.shared.broker.inner;
    let (valid, failed) = split_valid(
        ctx,
        &group_id,
        req.topics.iter().enumerate().flat_map(|(ti, topic)| {
            topic.partitions.iter().enumerate().map(move |(pi, p)| {
                let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                let om = OffsetAndMetadata::new(p.committed_offset)
                    .metadata(p.committed_metadata.as_deref().unwrap_or(""));
                ((ti, pi), tp, om)
            })
        }),
    );
    let group_error = if valid.is_empty() {
        0
    } else {
        let committer = Committer {
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
            generation: req.generation_id,
        };
        let group = broker.groups().get_or_create(&group_id);
        match group.classic_txn_commit(
            broker,
            req.producer_id.0,
            req.producer_epoch,
            &committer,
            &valid,
        ) {
            Ok(()) => 0,
            Err(e) => commit_error(&e),
        }
    };
    let topics = req
        .topics
        .into_iter()
        .enumerate()
        .map(|(ti, topic)| {
            let partitions = topic
                .partitions
                .iter()
                .enumerate()
                .map(|(pi, p)| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(failed.get(&(ti, pi)).copied().unwrap_or(group_error))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
