//! CreateTopics, DeleteTopics and CreatePartitions: topics by name, onto the broker's own
//! topic calls.
//!
//! One broker holds every replica: a replication factor of 1 (or -1, the broker's default,
//! which is 1) is accepted and any other is `INVALID_REPLICATION_FACTOR`; explicit
//! assignments must place each partition on this broker alone. `validate_only` checks
//! everything a creation would (name, collisions, existing topics, configs, counts) and
//! changes nothing. A name given twice in one request fails for every copy
//! (`INVALID_REQUEST`), as in Kafka.

use std::collections::{HashMap, HashSet};

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::configs::topic_entries;
use super::metadata::topic_id;
use crate::broker::names;
use crate::config::TopicConfig;
use crate::error::Error;
use crate::server::connection::RequestContext;
use crate::server::errors;

type Refusal = (ResponseError, String);

fn refusal(e: &Error) -> Refusal {
    (errors::kafka_error(e), e.to_string())
}

/// The names given more than once in one request (linear: requests may be large).
fn repeated<'a>(names: impl Iterator<Item = &'a TopicName>) -> HashSet<&'a TopicName> {
    let mut seen = HashSet::new();
    let mut twice = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            twice.insert(name);
        }
    }
    twice
}

/// The config a CreateTopics entry asks for, checked.
fn creatable_config(
    ctx: &RequestContext<'_>,
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<TopicConfig, Refusal> {
    let node = ctx.shared.config.node_id;
    let base = ctx.shared.broker.inner.default_topic_config().clone();
    let mut props: Vec<(String, String)> = Vec::with_capacity(topic.configs.len() + 1);
    for c in &topic.configs {
        let key = c.name.to_string();
        if key == "num.partitions" {
            return Err((
                ResponseError::InvalidConfig,
                "num.partitions is not a topic config: use the request's partition count".into(),
            ));
        }
        let Some(value) = c.value.as_ref() else {
            return Err((
                ResponseError::InvalidConfig,
                format!("a null value for {key} is not supported"),
            ));
        };
        props.push((key, value.to_string()));
    }
    let partitions = if topic.assignments.is_empty() {
        if !matches!(topic.replication_factor, 1 | -1) {
            return Err((
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {} is over the one broker there is",
                    topic.replication_factor
                ),
            ));
        }
        match topic.num_partitions {
            -1 => base.partitions,
            n if n >= 1 => n,
            n => {
                return Err((
                    ResponseError::InvalidPartitions,
                    format!("{n} partitions: must be at least 1"),
                ))
            }
        }
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "with assignments, the partition count and replication factor must be -1".into(),
            ));
        }
        let n = topic.assignments.len();
        let mut indexes: Vec<i32> = topic
            .assignments
            .iter()
            .map(|a| a.partition_index)
            .collect();
        indexes.sort_unstable();
        if indexes
            .iter()
            .enumerate()
            .any(|(i, &p)| usize::try_from(p).ok() != Some(i))
        {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                "assigned partitions must be 0 to n-1, each once".into(),
            ));
        }
        if topic
            .assignments
            .iter()
            .any(|a| a.broker_ids.as_slice() != [BrokerId(node)])
        {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!("every partition must be on broker {node} alone"),
            ));
        }
        i32::try_from(n).map_err(|_| {
            (
                ResponseError::InvalidPartitions,
                "too many partitions".to_string(),
            )
        })?
    };
    base.partitions(partitions)
        .with_properties(&props)
        .and_then(|c| c.validate().map(|()| c))
        .map_err(|e| refusal(&e))
}

/// CreateTopics (versions 2 to 7): each topic created with the broker's default config and
/// the keys it names; versions 5 and later answer with the topic's partition count,
/// replication factor and configs, version 7 with its id.
pub(crate) fn create_topics(
    ctx: &RequestContext<'_>,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let broker = &ctx.shared.broker;
    let inner = &broker.inner;
    let version = ctx.version();
    let twice = repeated(req.topics.iter().map(|t| &t.name));
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let result = if twice.contains(&topic.name) {
                Err((
                    ResponseError::InvalidRequest,
                    format!("topic {name} is named more than once"),
                ))
            } else {
                creatable_config(ctx, topic).and_then(|config| {
                    let checked = names::validate(&name).and_then(|()| {
                        if names::is_internal(&name) {
                            Err(Error::InvalidTopicName {
                                name: name.clone(),
                                reason: "names starting with '__' are reserved for internal topics",
                            })
                        } else if inner.existing_topic(&name).is_some() {
                            Err(Error::TopicExists {
                                topic: name.clone(),
                            })
                        } else if req.validate_only
                            && broker.topics().iter().any(|t| names::collides(t, &name))
                        {
                            // What creating it would say (a real creation checks itself).
                            Err(Error::InvalidTopicName {
                                name: name.clone(),
                                reason: "collides with an existing topic that differs only \
                                         in '.' versus '_'",
                            })
                        } else {
                            Ok(())
                        }
                    });
                    let done = match checked {
                        Ok(()) if req.validate_only => Ok(()),
                        Ok(()) => broker.create_topic(&name, config.clone()),
                        Err(e) => Err(e),
                    };
                    done.map(|()| config).map_err(|e| refusal(&e))
                })
            };
            let mut out = CreatableTopicResult::default().with_name(topic.name.clone());
            match result {
                Ok(config) => {
                    if version >= 5 {
                        out.num_partitions = config.partitions;
                        out.replication_factor = 1;
                        out.configs = Some(
                            topic_entries(&config, inner.default_topic_config())
                                .into_iter()
                                .map(|e| {
                                    CreatableTopicConfigs::default()
                                        .with_name(StrBytes::from_static_str(e.name))
                                        .with_value(Some(StrBytes::from_string(e.value)))
                                        .with_read_only(e.read_only)
                                        .with_config_source(e.source)
                                })
                                .collect(),
                        );
                    }
                    if version >= 7 {
                        out.topic_id = topic_id(&name);
                    }
                }
                Err((code, message)) => {
                    out.error_code = code.code();
                    out.error_message = Some(StrBytes::from_string(message));
                    if version >= 5 {
                        out.num_partitions = -1;
                        out.replication_factor = -1;
                    }
                }
            }
            out
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// DeleteTopics (versions 1 to 6) by name, or in version 6 by the topic id Metadata and
/// CreateTopics report (`metadata::topic_id`); an id no topic has is `UNKNOWN_TOPIC_ID`.
pub(crate) fn delete_topics(
    ctx: &RequestContext<'_>,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let broker = &ctx.shared.broker;
    let version = ctx.version();
    let names: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    // Topic ids to names, built on the first deletion by id.
    let mut by_id: Option<HashMap<uuid::Uuid, String>> = None;
    let responses = names
        .into_iter()
        .map(|(name, id)| {
            let mut out = DeletableTopicResult::default();
            if version >= 6 {
                out.topic_id = id;
            }
            // By id alone (version 6): the topic whose derived id it is, if any.
            let name = name.or_else(|| {
                let ids = by_id.get_or_insert_with(|| {
                    broker
                        .topics()
                        .into_iter()
                        .map(|t| (topic_id(&t), t))
                        .collect::<HashMap<_, _>>()
                });
                ids.get(&id)
                    .map(|t| TopicName(StrBytes::from_string(t.clone())))
            });
            let Some(name) = name else {
                out.error_code = ResponseError::UnknownTopicId.code();
                return out;
            };
            let topic = name.0.to_string();
            if version >= 6 && !id.is_nil() && id != topic_id(&topic) {
                out.error_code = ResponseError::UnknownTopicId.code();
            } else if let Err(e) = broker.delete_topic(&topic) {
                out.error_code = errors::code(&e);
                if version >= 5 {
                    out.error_message = Some(StrBytes::from_string(e.to_string()));
                }
            } else if version >= 6 {
                out.topic_id = topic_id(&topic);
            }
            out.name = Some(name);
            out
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// CreatePartitions: raises each topic's partition count (`INVALID_PARTITIONS` for a count
/// that does not grow); explicit assignments must place each new partition on this broker.
pub(crate) fn create_partitions(
    ctx: &RequestContext<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let broker = &ctx.shared.broker;
    let node = ctx.shared.config.node_id;
    let twice = repeated(req.topics.iter().map(|t| &t.name));
    let results = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result: Result<(), Refusal> = if twice.contains(&t.name) {
                Err((
                    ResponseError::InvalidRequest,
                    format!("topic {name} is named more than once"),
                ))
            } else if t
                .assignments
                .iter()
                .flatten()
                .any(|a| a.broker_ids.as_slice() != [BrokerId(node)])
            {
                Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!("every partition must be on broker {node} alone"),
                ))
            } else {
                match broker.inner.existing_topic(&name) {
                    // The coordinators place groups and transactional ids by the partition
                    // count of their topics: it never changes.
                    Some(_) if names::is_internal(&name) => Err((
                        ResponseError::InvalidRequest,
                        format!("the partitions of internal topic {name} cannot change"),
                    )),
                    None => Err(refusal(&Error::UnknownTopic {
                        topic: name.clone(),
                    })),
                    Some(state) => {
                        let current =
                            i32::try_from(state.partitions.read().len()).unwrap_or(i32::MAX);
                        let added = usize::try_from(t.count.saturating_sub(current)).ok();
                        if t.assignments
                            .as_ref()
                            .is_some_and(|a| !a.is_empty() && Some(a.len()) != added)
                        {
                            Err((
                                ResponseError::InvalidReplicaAssignment,
                                "one assignment per new partition".to_string(),
                            ))
                        } else if req.validate_only {
                            if t.count <= current {
                                Err(refusal(&Error::InvalidPartitionCount {
                                    topic: name.clone(),
                                    current,
                                    requested: t.count,
                                }))
                            } else {
                                (*state.config.read().clone())
                                    .clone()
                                    .partitions(t.count)
                                    .validate()
                                    .map_err(|e| refusal(&e))
                            }
                        } else {
                            broker
                                .create_partitions(&name, t.count)
                                .map_err(|e| refusal(&e))
                        }
                    }
                }
            };
            let out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match result {
                Ok(()) => out,
                Err((code, message)) => out
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
