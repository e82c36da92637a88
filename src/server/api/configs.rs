//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs: topic configs through Kafka's
//! keys ([`TopicConfig`]'s), and a read-only view of the broker's own settings.
//!
//! A topic's config is one [`TopicConfig`] (the broker stores no per-key provenance), so a
//! key's source is derived: a value other than the broker's default for topics is the
//! topic's own (`DYNAMIC_TOPIC_CONFIG`); one equal to it is the broker's
//! (`STATIC_BROKER_CONFIG` when the broker's default differs from Kafka's, `DEFAULT_CONFIG`
//! otherwise). Deleting a key (AlterConfigs leaving it out, IncrementalAlterConfigs DELETE)
//! sets it back to the broker's default. Broker resources can be described, never altered
//! (`INVALID_REQUEST` per resource, the others unaffected).

use std::collections::HashSet;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_request, incremental_alter_configs_response,
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::config::TopicConfig;
use crate::error::Error;
use crate::server::connection::RequestContext;
use crate::server::errors;

/// Kafka's `ConfigResource.Type`.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
/// Kafka's `ConfigResource.Type.BROKER`.
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigSource` codes (`DescribeConfigsResponse.ConfigSource`).
pub(crate) const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
pub(crate) const SOURCE_DEFAULT: i8 = 5;

/// Kafka's `ConfigType` codes (DescribeConfigs version 3 and later).
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;
const TYPE_BOOLEAN: i8 = 1;

/// The topic keys that are lists (APPEND and SUBTRACT apply to them only).
const LIST_KEYS: &[&str] = &["cleanup.policy"];

/// One config entry as DescribeConfigs and CreateTopics show it.
pub(crate) struct Entry {
    pub(crate) name: &'static str,
    pub(crate) value: String,
    pub(crate) source: i8,
    pub(crate) read_only: bool,
    /// The synonyms, most specific first: (name, value, source).
    pub(crate) synonyms: Vec<(&'static str, String, i8)>,
}

/// The broker key Kafka uses for a topic key's default (`LogConfig`'s synonyms).
fn broker_synonym(topic_key: &str) -> Option<&'static str> {
    Some(match topic_key {
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        "retention.ms" => "log.retention.ms",
        "retention.bytes" => "log.retention.bytes",
        "cleanup.policy" => "log.cleanup.policy",
        "max.message.bytes" => "message.max.bytes",
        "index.interval.bytes" => "log.index.interval.bytes",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "message.timestamp.type" => "log.message.timestamp.type",
        "message.timestamp.before.max.ms" => "log.message.timestamp.before.max.ms",
        "message.timestamp.after.max.ms" => "log.message.timestamp.after.max.ms",
        "compression.type" => "compression.type",
        "compression.gzip.level" => "compression.gzip.level",
        "compression.lz4.level" => "compression.lz4.level",
        "compression.zstd.level" => "compression.zstd.level",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "min.compaction.lag.ms" => "log.cleaner.min.compaction.lag.ms",
        "max.compaction.lag.ms" => "log.cleaner.max.compaction.lag.ms",
        _ => return None,
    })
}

fn config_type(key: &str) -> i8 {
    match key {
        "cleanup.policy" => TYPE_LIST,
        "message.timestamp.type" | "compression.type" => TYPE_STRING,
        "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
        "segment.bytes"
        | "max.message.bytes"
        | "index.interval.bytes"
        | "compression.gzip.level"
        | "compression.lz4.level"
        | "compression.zstd.level"
        | "node.id"
        | "num.partitions"
        | "socket.request.max.bytes"
        | "max.connections"
        | "fetch.max.bytes" => TYPE_INT,
        "auto.create.topics.enable" => TYPE_BOOLEAN,
        "advertised.host.name" | "cluster.id" | "log.dirs" => TYPE_STRING,
        _ => TYPE_LONG,
    }
}

/// Every topic key of `config` with its value and source, against the broker's default for
/// topics. `num.partitions` is not a topic config in Kafka and is left out.
pub(crate) fn topic_entries(config: &TopicConfig, broker_default: &TopicConfig) -> Vec<Entry> {
    let kafka = TopicConfig::default().to_properties();
    let broker = broker_default.to_properties();
    config
        .to_properties()
        .into_iter()
        .zip(broker)
        .zip(kafka)
        .filter(|(((k, _), _), _)| *k != "num.partitions")
        .map(|(((key, value), (_, broker_value)), (_, kafka_value))| {
            let mut synonyms = Vec::new();
            let topic_set = value != broker_value;
            if topic_set {
                synonyms.push((key, value.clone(), SOURCE_TOPIC));
            }
            let broker_key = broker_synonym(key).unwrap_or(key);
            if broker_value != kafka_value {
                synonyms.push((broker_key, broker_value.clone(), SOURCE_STATIC_BROKER));
            }
            synonyms.push((broker_key, kafka_value.clone(), SOURCE_DEFAULT));
            let source = synonyms.first().map_or(SOURCE_DEFAULT, |s| s.2);
            Entry {
                name: key,
                value,
                source,
                read_only: false,
                synonyms,
            }
        })
        .collect()
}

/// The broker's settings a client may ask about (all read-only here).
fn broker_entries(ctx: &RequestContext<'_>) -> Vec<Entry> {
    let inner = &ctx.shared.broker.inner;
    let config = &ctx.shared.config;
    let default = inner.default_topic_config();
    let mut out: Vec<(&'static str, String)> = vec![
        ("node.id", config.node_id.to_string()),
        ("broker.id", config.node_id.to_string()),
        ("num.partitions", default.partitions.to_string()),
        ("default.replication.factor", "1".into()),
        ("min.insync.replicas", "1".into()),
        (
            "auto.create.topics.enable",
            inner.auto_create_topics().to_string(),
        ),
        (
            "transaction.max.timeout.ms",
            inner.transaction_max_timeout_ms().to_string(),
        ),
        ("offsets.topic.replication.factor", "1".into()),
        ("transaction.state.log.replication.factor", "1".into()),
        ("transaction.state.log.min.isr", "1".into()),
        (
            "socket.request.max.bytes",
            config.max_request_bytes.to_string(),
        ),
        ("max.connections", config.max_connections.to_string()),
        (
            "connections.max.idle.ms",
            config.connections_max_idle.as_millis().to_string(),
        ),
        ("log.dirs", ctx.shared.broker.path().display().to_string()),
        ("delete.topic.enable", "true".into()),
    ];
    for (key, value) in default.to_properties() {
        if let Some(broker_key) = broker_synonym(key) {
            out.push((broker_key, value));
        }
    }
    out.into_iter()
        .map(|(name, value)| Entry {
            name,
            synonyms: vec![(name, value.clone(), SOURCE_STATIC_BROKER)],
            value,
            source: SOURCE_STATIC_BROKER,
            read_only: true,
        })
        .collect()
}

fn describe_entry(
    ctx: &RequestContext<'_>,
    e: Entry,
    synonyms: bool,
) -> DescribeConfigsResourceResult {
    let mut out = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(e.name))
        .with_value(Some(StrBytes::from_string(e.value)))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_is_sensitive(false);
    if synonyms {
        out.synonyms = e
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_source(source)
            })
            .collect();
    }
    if ctx.version() >= 3 {
        out.config_type = config_type(e.name);
    }
    out
}

/// Whether `name` is this broker as a broker resource: its node id, or "" (the default
/// config of every broker).
fn is_this_broker(ctx: &RequestContext<'_>, name: &str) -> bool {
    name.is_empty() || name.parse::<i32>().ok() == Some(ctx.shared.config.node_id)
}

/// DescribeConfigs: every key of each topic or broker resource asked for (only the keys
/// named when the request names some: a null or empty list means all, as in Kafka),
/// synonyms when asked. An unknown topic is
/// `UNKNOWN_TOPIC_OR_PARTITION`; other resource types are `INVALID_REQUEST`.
pub(crate) fn describe_configs(
    ctx: &RequestContext<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = &ctx.shared.broker.inner;
    let synonyms = req.include_synonyms;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match broker.existing_topic(&name) {
                    Some(state) => {
                        let config = state.config.read().clone();
                        Ok(topic_entries(&config, broker.default_topic_config()))
                    }
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic {name} does not exist"),
                    )),
                },
                RESOURCE_BROKER if is_this_broker(ctx, &name) => Ok(broker_entries(ctx)),
                RESOURCE_BROKER => Err((
                    ResponseError::InvalidRequest,
                    format!("this is broker {}, not {name}", ctx.shared.config.node_id),
                )),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("resource type {other} is not described here"),
                )),
            };
            let out = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match entries {
                Ok(entries) => {
                    let keys = r.configuration_keys;
                    out.with_configs(
                        entries
                            .into_iter()
                            .filter(|e| {
                                keys.as_ref().is_none_or(|ks| {
                                    ks.is_empty() || ks.iter().any(|k| &**k == e.name)
                                })
                            })
                            .map(|e| describe_entry(ctx, e, synonyms))
                            .collect(),
                    )
                }
                Err((code, message)) => out
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// A config change refused: its Kafka error and message.
type Refusal = (ResponseError, String);

fn refusal(e: &Error) -> Refusal {
    (errors::kafka_error(e), e.to_string())
}

/// Applies `changes` ((key, `Some(value)` to set, `None` to delete)) to a topic, or checks
/// them only when `validate_only`. Deleting a key sets the broker's default back.
fn alter_topic(
    ctx: &RequestContext<'_>,
    topic: &str,
    changes: &[(String, Option<String>)],
    validate_only: bool,
) -> Result<(), Refusal> {
    let broker = &ctx.shared.broker;
    let inner = &broker.inner;
    let Some(state) = inner.existing_topic(topic) else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("topic {topic} does not exist"),
        ));
    };
    let default = inner.default_topic_config().to_properties();
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(changes.len());
    for (key, value) in changes {
        if key == "num.partitions"
            || !TopicConfig::KEYS.contains(&key.as_str())
                && !TopicConfig::IGNORED_KEYS.iter().any(|(k, _)| k == key)
        {
            return Err((
                ResponseError::InvalidConfig,
                format!("unknown topic config {key}"),
            ));
        }
        let value = match value {
            Some(v) => v.clone(),
            None => match default.iter().find(|(k, _)| k == key) {
                Some((_, v)) => v.clone(),
                // An ignored key has nothing to delete.
                None => continue,
            },
        };
        pairs.push((key.clone(), value));
    }
    if validate_only {
        let current = state.config.read().clone();
        (*current)
            .clone()
            .with_properties(&pairs)
            .map(|_| ())
            .map_err(|e| refusal(&e))
    } else {
        broker
            .alter_topic_config(topic, &pairs)
            .map_err(|e| refusal(&e))
    }
}

/// AlterConfigs (the legacy, whole-config form): the topic's config becomes the broker's
/// default with exactly the given keys set, as Kafka replaces a topic's whole config.
pub(crate) fn alter_configs(
    ctx: &RequestContext<'_>,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let validate_only = req.validate_only;
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let result = match r.resource_type {
                RESOURCE_TOPIC => {
                    let given: Vec<(String, Option<String>)> = r
                        .configs
                        .iter()
                        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                        .collect();
                    if given.iter().any(|(_, v)| v.is_none()) {
                        Err((
                            ResponseError::InvalidRequest,
                            "a null value is not a config".to_string(),
                        ))
                    } else {
                        // Every key left out goes back to the broker's default.
                        let mut changes = given.clone();
                        for key in TopicConfig::KEYS {
                            if *key != "num.partitions" && !given.iter().any(|(k, _)| k == key) {
                                changes.push(((*key).to_string(), None));
                            }
                        }
                        alter_topic(ctx, &name, &changes, validate_only)
                    }
                }
                other => Err(not_alterable(other)),
            };
            let out = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match result {
                Ok(()) => out,
                Err((code, message)) => out
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// The refusal of AlterConfigs and IncrementalAlterConfigs for a resource that is not a topic.
fn not_alterable(resource_type: i8) -> Refusal {
    let what = if resource_type == RESOURCE_BROKER {
        "broker configs cannot be altered here".to_string()
    } else {
        format!("resource type {resource_type} cannot be altered here")
    };
    (ResponseError::InvalidRequest, what)
}

/// Kafka's `AlterConfigOp.OpType`.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The most items a list key's value may have after APPEND (Kafka's list keys here have
/// two possible items; the bound keeps a hostile request's work linear).
const LIST_ITEMS_MAX: usize = 16;

/// The (key, value or `None` to delete) changes of one resource's IncrementalAlterConfigs
/// operations over the topic's `current` properties. A key named twice is
/// `INVALID_REQUEST`, as in Kafka.
fn incremental_changes(
    current: Option<&[(&'static str, String)]>,
    configs: &[incremental_alter_configs_request::AlterableConfig],
) -> Result<Vec<(String, Option<String>)>, Refusal> {
    let invalid = |message: String| Err((ResponseError::InvalidRequest, message));
    let mut seen = HashSet::new();
    let mut changes = Vec::with_capacity(configs.len());
    for c in configs {
        let key = c.name.to_string();
        if !seen.insert(key.clone()) {
            return invalid(format!("{key} is named more than once"));
        }
        let value = c.value.as_ref().map(|v| v.to_string());
        match c.config_operation {
            OP_SET => match value {
                Some(v) => changes.push((key, Some(v))),
                None => return invalid(format!("SET of {key} without a value")),
            },
            OP_DELETE => changes.push((key, None)),
            op @ (OP_APPEND | OP_SUBTRACT) => {
                if !LIST_KEYS.contains(&key.as_str()) {
                    return invalid(format!(
                        "{key} is not a list: APPEND and SUBTRACT do not apply"
                    ));
                }
                let so_far = current
                    .and_then(|props| props.iter().find(|(k, _)| *k == key))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let mut items: Vec<String> = so_far
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for v in value.iter().flat_map(|v| v.split(',')) {
                    let v = v.trim().to_string();
                    if v.is_empty() {
                        continue;
                    }
                    if op == OP_APPEND {
                        if !items.contains(&v) {
                            if items.len() >= LIST_ITEMS_MAX {
                                return Err((
                                    ResponseError::InvalidConfig,
                                    format!("{key}: too many items"),
                                ));
                            }
                            items.push(v);
                        }
                    } else {
                        items.retain(|i| *i != v);
                    }
                }
                // An empty list is no policy: the key goes back to its default.
                let value = (!items.is_empty()).then(|| items.join(","));
                changes.push((key, value));
            }
            other => return invalid(format!("unknown config operation {other}")),
        }
    }
    Ok(changes)
}

/// IncrementalAlterConfigs: SET and DELETE on any topic key; APPEND and SUBTRACT on list
/// keys (`cleanup.policy`), `INVALID_REQUEST` on others. All of a resource's changes apply
/// together or not at all.
pub(crate) fn incremental_alter_configs(
    ctx: &RequestContext<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let validate_only = req.validate_only;
    let inner = &ctx.shared.broker.inner;
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let result = match r.resource_type {
                RESOURCE_TOPIC => {
                    let current = inner
                        .existing_topic(&name)
                        .map(|s| s.config.read().to_properties());
                    incremental_changes(current.as_deref(), &r.configs)
                        .and_then(|changes| alter_topic(ctx, &name, &changes, validate_only))
                }
                other => Err(not_alterable(other)),
            };
            let out = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match result {
                Ok(()) => out,
                Err((code, message)) => out
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use incremental_alter_configs_request::AlterableConfig;

    fn op(key: &str, op: i8, value: Option<&str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(key.to_string()))
            .with_config_operation(op)
            .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
    }

    #[test]
    fn incremental_operations_on_lists_and_others() {
        let current = TopicConfig::default().to_properties();
        let current = Some(current.as_slice());
        let changes = incremental_changes(
            current,
            &[
                op("cleanup.policy", OP_APPEND, Some("compact, delete")),
                op("retention.ms", OP_SET, Some("5")),
                op("segment.ms", OP_DELETE, None),
            ],
        )
        .unwrap();
        assert_eq!(
            changes,
            [
                (
                    "cleanup.policy".to_string(),
                    Some("delete,compact".to_string())
                ),
                ("retention.ms".to_string(), Some("5".to_string())),
                ("segment.ms".to_string(), None),
            ]
        );
        // Subtracting the last item leaves no list: the default comes back.
        let changes = incremental_changes(
            current,
            &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
        )
        .unwrap();
        assert_eq!(changes, [("cleanup.policy".to_string(), None)]);
        for bad in [
            vec![op("retention.ms", OP_APPEND, Some("1"))],
            vec![op("retention.ms", OP_SET, None)],
            vec![op("retention.ms", 9, Some("1"))],
            vec![
                op("retention.ms", OP_SET, Some("1")),
                op("retention.ms", OP_DELETE, None),
            ],
        ] {
            let (code, _) = incremental_changes(current, &bad).unwrap_err();
            assert_eq!(code, ResponseError::InvalidRequest);
        }
        let many: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
        let (code, _) = incremental_changes(
            current,
            &[op("cleanup.policy", OP_APPEND, Some(&many.join(",")))],
        )
        .unwrap_err();
        assert_eq!(code, ResponseError::InvalidConfig);
    }

    #[test]
    fn sources_follow_the_broker_default() {
        let broker_default = TopicConfig::default().retention_ms(1000);
        let config = broker_default.clone().segment_ms(77);
        let entries = topic_entries(&config, &broker_default);
        let get = |k: &str| entries.iter().find(|e| e.name == k).unwrap();
        assert_eq!(get("segment.ms").source, SOURCE_TOPIC);
        assert_eq!(get("retention.ms").source, SOURCE_STATIC_BROKER);
        assert_eq!(get("retention.ms").synonyms.len(), 2);
        assert_eq!(get("cleanup.policy").source, SOURCE_DEFAULT);
        assert!(entries.iter().all(|e| e.name != "num.partitions"));
    }
}
