//! `embroker groups`: list, describe (members and lag), reset-offsets, delete; the
//! `kafka-consumer-groups.sh` verbs over the `Broker` group admin calls.
//!
//! `--to-datetime` takes `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (UTC only), parsed here by hand so the
//! tool needs no date library.

use std::io::Write;

use clap::Subcommand;
use embroker::{OffsetSpec, TopicPartition};

use serde_json::{json, Value};

use crate::output::{metrics_json, print_json, Table};
use crate::{CmdResult, Ctx};

/// The `groups` subcommands.
#[derive(Subcommand)]
pub enum GroupsCmd {
    /// List groups that have members or committed offsets.
    List,
    /// Show a group's members, assignment, committed offsets, end offsets and lag.
    Describe {
        /// The group id.
        group: String,
    },
    /// Move a group's committed offsets (the group must have no members).
    ResetOffsets(ResetArgs),
    /// Delete a group and its committed offsets (the group must have no members).
    Delete {
        /// The group id.
        group: String,
    },
}

/// Arguments of `groups reset-offsets`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(
    ["to_earliest", "to_latest", "to_offset", "to_datetime"]
)))]
pub struct ResetArgs {
    /// The group id.
    group: String,
    /// The topic whose partitions to reset.
    #[arg(long)]
    topic: String,
    /// Only this partition (default: every partition of the topic).
    #[arg(long)]
    partition: Option<i32>,
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (clamped to the log's range).
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// To the first record at or after this UTC time, `YYYY-MM-DDTHH:MM:SS[.mmm]Z`.
    #[arg(long, value_name = "ISO", value_parser = parse_iso_datetime)]
    to_datetime: Option<i64>,
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian; Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.mmm]Z` into milliseconds since the Unix epoch.
pub fn parse_iso_datetime(s: &str) -> Result<i64, String> {
    let bad = || format!("expected YYYY-MM-DDTHH:MM:SS[.mmm]Z (UTC), got {s:?}");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return Err(bad());
    }
    if b[16] != b':' || b.last() != Some(&b'Z') {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let part = s.get(r).ok_or_else(bad)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let millis = match b.len() {
        20 => 0,
        24 if b[19] == b'.' => num(20..23)?,
        _ => return Err(bad()),
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return Err(bad());
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    Ok((((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis)
}

/// Runs a `groups` subcommand.
pub fn run(ctx: &Ctx, cmd: GroupsCmd) -> CmdResult {
    #[cfg(feature = "server")]
    if let Some(bootstrap) = &ctx.bootstrap {
        return match cmd {
            GroupsCmd::List => crate::remote::groups_list(bootstrap, ctx.json),
            GroupsCmd::Describe { group } => {
                crate::remote::groups_describe(bootstrap, &group, ctx.json)
            }
            _ => Err(
                "with --bootstrap, `groups` lists and describes; reset and delete \
                      with --dir on a stopped broker"
                    .into(),
            ),
        };
    }
    let mut out = std::io::stdout().lock();
    match cmd {
        GroupsCmd::List => {
            let broker = ctx.open(false)?;
            let groups = broker.list_groups()?;
            broker.close()?;
            if ctx.json {
                let items: Vec<Value> = groups
                    .iter()
                    .map(|g| json!({ "group": g.group_id, "state": g.state.as_str() }))
                    .collect();
                print_json(&mut out, &Value::Array(items))?;
            } else {
                let mut t = Table::new(&["GROUP", "STATE"]);
                for g in groups {
                    t.row(vec![g.group_id, g.state.as_str().to_string()]);
                }
                t.print(&mut out)?;
            }
        }
        GroupsCmd::Describe { group } => {
            let broker = ctx.open(false)?;
            let d = broker.describe_group(&group)?;
            broker.close()?;
            let owner = |tp: &TopicPartition| {
                d.members
                    .iter()
                    .find(|m| m.assignment.contains(tp))
                    .map(|m| m.member_id.clone())
            };
            if ctx.json {
                let members: Vec<Value> = d
                    .members
                    .iter()
                    .map(|m| {
                        let assigned: Vec<String> =
                            m.assignment.iter().map(ToString::to_string).collect();
                        json!({
                            "member_id": m.member_id,
                            "client_id": m.client_id,
                            "assignment": assigned,
                        })
                    })
                    .collect();
                let offsets: Vec<Value> = d
                    .offsets
                    .iter()
                    .map(|o| {
                        json!({
                            "topic": o.topic_partition.topic,
                            "partition": o.topic_partition.partition,
                            "committed": o.committed.as_ref().map(|c| c.offset),
                            "end_offset": o.end_offset,
                            "lag": o.lag,
                            "member_id": owner(&o.topic_partition),
                        })
                    })
                    .collect();
                print_json(
                    &mut out,
                    &json!({
                        "group": d.group_id,
                        "state": d.state.as_str(),
                        "generation": d.generation,
                        "protocol": d.protocol,
                        "members": members,
                        "offsets": offsets,
                        "metrics": metrics_json(&d.metrics()),
                    }),
                )?;
            } else {
                writeln!(
                    out,
                    "Group: {}  State: {}  Generation: {}  Protocol: {}",
                    d.group_id,
                    d.state.as_str(),
                    d.generation,
                    d.protocol.as_deref().unwrap_or("-")
                )?;
                writeln!(out)?;
                let mut t = Table::new(&[
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                ]);
                let dash = || "-".to_string();
                for o in &d.offsets {
                    t.row(vec![
                        o.topic_partition.topic.clone(),
                        o.topic_partition.partition.to_string(),
                        o.committed
                            .as_ref()
                            .map_or_else(dash, |c| c.offset.to_string()),
                        o.end_offset.to_string(),
                        o.lag.map_or_else(dash, |l| l.to_string()),
                        owner(&o.topic_partition).unwrap_or_else(dash),
                    ]);
                }
                t.print(&mut out)?;
                writeln!(out)?;
                writeln!(out, "Metrics:")?;
                write!(out, "{}", d.metrics())?;
                if !d.members.is_empty() {
                    writeln!(out)?;
                    let mut t = Table::new(&["MEMBER-ID", "CLIENT-ID", "ASSIGNMENT"]);
                    for m in &d.members {
                        let assigned: Vec<String> =
                            m.assignment.iter().map(ToString::to_string).collect();
                        t.row(vec![
                            m.member_id.clone(),
                            m.client_id.clone(),
                            assigned.join(","),
                        ]);
                    }
                    t.print(&mut out)?;
                }
            }
        }
        GroupsCmd::ResetOffsets(a) => {
            let to = if a.to_earliest {
                OffsetSpec::Earliest
            } else if a.to_latest {
                OffsetSpec::Latest
            } else if let Some(n) = a.to_offset {
                OffsetSpec::Offset(n)
            } else if let Some(ts) = a.to_datetime {
                OffsetSpec::Timestamp(ts)
            } else {
                unreachable!("clap requires one of the --to-* options")
            };
            let broker = ctx.open(false)?;
            let tps: Vec<TopicPartition> = match a.partition {
                Some(p) => vec![TopicPartition::new(a.topic.as_str(), p)],
                None => {
                    let n = broker.topic(&a.topic)?.partition_count();
                    (0..n)
                        .map(|p| TopicPartition::new(a.topic.as_str(), p))
                        .collect()
                }
            };
            let result = broker.reset_group_offsets(&a.group, &tps, to)?;
            broker.close()?;
            if ctx.json {
                let items: Vec<Value> = result
                    .iter()
                    .map(|(tp, o)| {
                        json!({ "topic": tp.topic, "partition": tp.partition, "new_offset": o })
                    })
                    .collect();
                print_json(&mut out, &json!({ "group": a.group, "offsets": items }))?;
            } else {
                let mut t = Table::new(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]);
                for (tp, o) in result {
                    t.row(vec![
                        a.group.clone(),
                        tp.topic,
                        tp.partition.to_string(),
                        o.to_string(),
                    ]);
                }
                t.print(&mut out)?;
            }
        }
        GroupsCmd::Delete { group } => {
            let broker = ctx.open(false)?;
            broker.delete_group(&group)?;
            broker.close()?;
            if ctx.json {
                print_json(&mut out, &json!({ "deleted": group }))?;
            } else {
                writeln!(out, "deleted group {group}")?;
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::parse_iso_datetime;

    #[test]
    fn parses_utc_datetimes() {
        assert_eq!(parse_iso_datetime("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_iso_datetime("2023-11-14T22:13:20.123Z"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_iso_datetime("2024-02-29T00:00:00Z"),
            Ok(1_709_164_800_000)
        );
        assert!(parse_iso_datetime("2023-02-29T00:00:00Z").is_err());
        assert!(parse_iso_datetime("2023-11-14 22:13:20Z").is_err());
        assert!(parse_iso_datetime("2023-11-14T22:13:20+01:00").is_err());
        assert!(parse_iso_datetime("2023-11-14T22:13:20.1Z").is_err());
    }
}
