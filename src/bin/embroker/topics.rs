//! `embroker topics`: list, create, describe, alter, delete, add-partitions. Thin wrappers over
//! the `Broker` topic admin calls; config keys are Kafka's topic keys (`retention.ms`, ...).

use std::io::Write;

use clap::Subcommand;
use embroker::TopicConfig;

use serde_json::{json, Value};

use crate::output::{metrics_json, print_json, Table};
use crate::{CmdResult, Ctx};

/// The `topics` subcommands.
#[derive(Subcommand)]
pub enum TopicsCmd {
    /// List topics with their partition counts.
    List,
    /// Create a topic.
    Create {
        /// The topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// A topic config entry, `key=value` (Kafka's keys, e.g. retention.ms=60000). Repeat.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// Show a topic's config and its partitions' offsets and sizes.
    Describe {
        /// The topic name.
        name: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// The topic name.
        name: String,
    },
    /// Change a topic's config entries.
    Alter {
        /// The topic name.
        name: String,
        /// A topic config entry to set, `key=value`. Repeat.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value, required = true)]
        configs: Vec<(String, String)>,
    },
    /// Grow a topic to N partitions in all (counts only grow).
    AddPartitions {
        /// The topic name.
        name: String,
        /// The new total number of partitions.
        count: i32,
    },
}

/// Parses `key=value` (split at the first `=`).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Runs a `topics` subcommand.
pub fn run(ctx: &Ctx, cmd: TopicsCmd) -> CmdResult {
    #[cfg(feature = "server")]
    if let Some(bootstrap) = &ctx.bootstrap {
        return match cmd {
            TopicsCmd::List => crate::remote::topics_list(bootstrap, ctx.json),
            TopicsCmd::Describe { name } => {
                crate::remote::topics_describe(bootstrap, &name, ctx.json)
            }
            _ => Err(
                "with --bootstrap, `topics` lists and describes; create, alter and delete \
                      through a Kafka admin client, or with --dir on a stopped broker"
                    .into(),
            ),
        };
    }
    let mut out = std::io::stdout().lock();
    match cmd {
        TopicsCmd::List => {
            let broker = ctx.open(false)?;
            let mut rows = Vec::new();
            for name in broker.topics() {
                // A broken topic (unreadable config file) is listed with its error.
                match broker.describe_topic(&name) {
                    Ok(d) => rows.push((name, Some(d.partitions.len()), None)),
                    Err(e) => rows.push((name, None, Some(e.to_string()))),
                }
            }
            if ctx.json {
                let items: Vec<Value> = rows
                    .iter()
                    .map(|(n, p, e)| json!({ "name": n, "partitions": p, "error": e }))
                    .collect();
                print_json(&mut out, &Value::Array(items))?;
            } else {
                let mut t = Table::new(&["TOPIC", "PARTITIONS", "ERROR"]);
                for (n, p, e) in rows {
                    t.row(vec![
                        n,
                        p.map_or("-".into(), |p| p.to_string()),
                        e.unwrap_or_default(),
                    ]);
                }
                t.print(&mut out)?;
            }
            broker.close()?;
        }
        TopicsCmd::Create {
            name,
            partitions,
            configs,
        } => {
            let mut props = vec![("num.partitions".to_string(), partitions.to_string())];
            props.extend(configs);
            let config = TopicConfig::from_properties(&props)?;
            let broker = ctx.open(true)?;
            broker.create_topic(&name, config)?;
            broker.close()?;
            if ctx.json {
                print_json(
                    &mut out,
                    &json!({ "created": name, "partitions": partitions }),
                )?;
            } else {
                writeln!(out, "created topic {name} with {partitions} partition(s)")?;
            }
        }
        TopicsCmd::Describe { name } => {
            let broker = ctx.open(false)?;
            let d = broker.describe_topic(&name)?;
            broker.close()?;
            let config = d.config.to_properties();
            if ctx.json {
                let cfg: serde_json::Map<String, Value> = config
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), Value::from(v.as_str())))
                    .collect();
                let parts: Vec<Value> = d
                    .partitions
                    .iter()
                    .map(|p| {
                        json!({
                            "partition": p.partition,
                            "log_start_offset": p.log_start_offset,
                            "log_end_offset": p.log_end_offset,
                            "last_stable_offset": p.last_stable_offset,
                            "open_transactions": p
                                .open_transactions
                                .iter()
                                .map(|t| json!({
                                    "producer_id": t.producer_id,
                                    "first_offset": t.first_offset,
                                }))
                                .collect::<Vec<_>>(),
                            "size_bytes": p.size_bytes,
                            "segments": p.segment_count,
                            "error": p.error,
                            "clean_bytes": p.clean_bytes,
                            "dirty_bytes": p.dirty_bytes,
                            "dirty_ratio": p.dirty_ratio(),
                            "last_clean_ms": p.last_clean_ms,
                            "cleaner_error": p.cleaner_error,
                        })
                    })
                    .collect();
                print_json(
                    &mut out,
                    &json!({
                        "name": d.name,
                        "config": cfg,
                        "partitions": parts,
                        "metrics": metrics_json(&d.metrics()),
                    }),
                )?;
            } else {
                writeln!(out, "Topic: {}", d.name)?;
                writeln!(out, "Config:")?;
                for (k, v) in &config {
                    writeln!(out, "  {k}={v}")?;
                }
                writeln!(out)?;
                // The cleaner's columns only mean something on a compacted topic.
                let compacted = d.config.cleanup_policy.compacts();
                let mut headers = vec![
                    "PARTITION",
                    "LOG-START-OFFSET",
                    "LOG-END-OFFSET",
                    "LAST-STABLE-OFFSET",
                    "SIZE-BYTES",
                    "SEGMENTS",
                ];
                if compacted {
                    headers.extend(["DIRTY-RATIO", "LAST-CLEAN-MS"]);
                }
                headers.push("ERROR");
                let mut t = Table::new(&headers);
                for p in &d.partitions {
                    let mut row = vec![
                        p.partition.to_string(),
                        p.log_start_offset.to_string(),
                        p.log_end_offset.to_string(),
                        p.last_stable_offset.to_string(),
                        p.size_bytes.to_string(),
                        p.segment_count.to_string(),
                    ];
                    if compacted {
                        row.push(format!("{:.2}", p.dirty_ratio()));
                        row.push(p.last_clean_ms.map_or("-".into(), |t| t.to_string()));
                    }
                    let error = match (&p.error, &p.cleaner_error) {
                        (Some(e), _) => e.clone(),
                        (None, Some(e)) => format!("log cleaner: {e}"),
                        (None, None) => String::new(),
                    };
                    row.push(error);
                    t.row(row);
                }
                t.print(&mut out)?;
                // Kafka's `--print-metrics` form: `group:name:{tags} : value`.
                writeln!(out)?;
                writeln!(out, "Metrics:")?;
                write!(out, "{}", d.metrics())?;
            }
        }
        TopicsCmd::Delete { name } => {
            let broker = ctx.open(false)?;
            broker.delete_topic(&name)?;
            broker.close()?;
            if ctx.json {
                print_json(&mut out, &json!({ "deleted": name }))?;
            } else {
                writeln!(out, "deleted topic {name}")?;
            }
        }
        TopicsCmd::Alter { name, configs } => {
            let broker = ctx.open(false)?;
            broker.alter_topic_config(&name, &configs)?;
            broker.close()?;
            if ctx.json {
                let set: serde_json::Map<String, Value> = configs
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect();
                print_json(&mut out, &json!({ "altered": name, "config": set }))?;
            } else {
                for (k, v) in &configs {
                    writeln!(out, "set {k}={v} on topic {name}")?;
                }
            }
        }
        TopicsCmd::AddPartitions { name, count } => {
            let broker = ctx.open(false)?;
            broker.create_partitions(&name, count)?;
            broker.close()?;
            if ctx.json {
                print_json(&mut out, &json!({ "topic": name, "partitions": count }))?;
            } else {
                writeln!(out, "topic {name} now has {count} partition(s)")?;
            }
        }
    }
    Ok(true)
}
