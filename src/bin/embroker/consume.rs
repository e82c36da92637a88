//! `embroker consume TOPIC`: print records, formatted like kcat's `-f`.
//!
//! Without `--group` the consumer assigns itself the partitions (all, or `--partition`); with
//! `--group` it subscribes as a group member (or assigns `--partition` under that group id)
//! and commits the offsets of the records it printed, and only those, so a `--max-messages`
//! stop never skips a record for the next run. It stops once it has reached the end of every
//! assigned partition.
//!
//! `--follow` does not hold the directory while it waits: the library locks a data directory
//! to one process, so a follower that kept it open would never see another process's
//! records. It reads in sessions instead (open, read to the end, commit, close, pause, again),
//! carrying its positions over, and other commands take the lock in between (they retry for
//! `--lock-timeout`).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use embroker::{
    Consumer, ConsumerConfig, ConsumerRecord, OffsetAndMetadata, OffsetReset, TopicPartition,
};

use serde_json::{json, Value};

use crate::output::{headers_json, opt_bytes_json, print_json};
use crate::{usage_error, CmdResult, Ctx};

/// How long a session waits for a group assignment before giving up.
const ASSIGNMENT_WAIT: Duration = Duration::from_secs(10);
/// How long one `poll` waits for records.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// With `--follow`, the pause between sessions, while the directory is not held.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// Arguments of `consume`.
#[derive(clap::Args)]
pub struct Args {
    /// The topic to read.
    topic: String,
    /// Start at the log start when there is no committed offset (default: the end).
    #[arg(long)]
    from_beginning: bool,
    /// Read as a member of this consumer group and commit what was printed.
    #[arg(long)]
    group: Option<String>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Start at this offset (negative: that many records before the end). Needs --partition
    /// when used with --group.
    #[arg(long, allow_hyphen_values = true)]
    offset: Option<i64>,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long)]
    follow: bool,
    /// Output format: %k key, %s value, %t topic, %p partition, %o offset, %T timestamp (ms),
    /// %h headers (k=v,...), %K/%S key/value length, %% a percent sign; escapes \n \t \r \\.
    #[arg(long, short = 'f', default_value = "%s\\n")]
    format: String,
}

/// One piece of a compiled `--format`.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Key,
    Value,
    Topic,
    Partition,
    Offset,
    Timestamp,
    Headers,
    KeyLen,
    ValueLen,
}

/// Compiles a kcat-style format string.
fn parse_format(f: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let piece = match chars.next() {
                    Some('k') => Piece::Key,
                    Some('s') => Piece::Value,
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('T') => Piece::Timestamp,
                    Some('h') => Piece::Headers,
                    Some('K') => Piece::KeyLen,
                    Some('S') => Piece::ValueLen,
                    Some('%') => {
                        text.push('%');
                        continue;
                    }
                    Some(other) => return Err(format!("unknown placeholder %{other}")),
                    None => return Err("format ends with a lone %".into()),
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(piece);
            }
            '\\' => match chars.next() {
                Some('n') => text.push('\n'),
                Some('t') => text.push('\t'),
                Some('r') => text.push('\r'),
                Some('\\') => text.push('\\'),
                Some(other) => {
                    text.push('\\');
                    text.push(other);
                }
                None => text.push('\\'),
            },
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn write_record(out: &mut impl Write, pieces: &[Piece], r: &ConsumerRecord) -> std::io::Result<()> {
    for p in pieces {
        match p {
            Piece::Text(t) => out.write_all(t.as_bytes())?,
            Piece::Key => out.write_all(r.key.as_deref().unwrap_or_default())?,
            Piece::Value => out.write_all(r.value.as_deref().unwrap_or_default())?,
            Piece::Topic => out.write_all(r.topic.as_bytes())?,
            Piece::Partition => write!(out, "{}", r.partition)?,
            Piece::Offset => write!(out, "{}", r.offset)?,
            Piece::Timestamp => write!(out, "{}", r.timestamp)?,
            Piece::Headers => {
                for (i, h) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    write!(out, "{}=", h.key)?;
                    if let Some(v) = &h.value {
                        out.write_all(v)?;
                    }
                }
            }
            Piece::KeyLen => write!(out, "{}", r.key.as_ref().map_or(-1, |k| k.len() as i64))?,
            Piece::ValueLen => {
                write!(out, "{}", r.value.as_ref().map_or(-1, |v| v.len() as i64))?;
            }
        }
    }
    Ok(())
}

fn record_json(r: &ConsumerRecord) -> Value {
    json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": opt_bytes_json(r.key.as_deref()),
        "value": opt_bytes_json(r.value.as_deref()),
        "headers": headers_json(r.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref()))),
    })
}

/// What carries over from one session (one open of the directory) to the next.
#[derive(Default)]
struct Progress {
    /// Records printed so far.
    printed: u64,
    /// Without a group: the next offset to read of every partition seen.
    positions: BTreeMap<TopicPartition, i64>,
    /// Sessions run so far.
    sessions: u32,
}

impl Progress {
    fn done(&self, args: &Args) -> bool {
        args.max_messages.is_some_and(|m| self.printed >= m)
    }
}

/// Positions an assigning consumer: where the last session stopped, else where the options
/// say (first session), else at the start (a partition added since the first session).
fn position_assigned(
    consumer: &mut Consumer,
    args: &Args,
    progress: &Progress,
    tps: &[TopicPartition],
) -> Result<(), embroker::Error> {
    let ends = consumer.end_offsets(tps)?;
    let starts = consumer.beginning_offsets(tps)?;
    for tp in tps {
        if let Some(&next) = progress.positions.get(tp) {
            consumer.seek(tp, next)?;
        } else if progress.sessions > 0 {
            consumer.seek(tp, starts[tp])?;
        } else if let Some(offset) = args.offset {
            let target = if offset < 0 {
                (ends[tp] + offset).max(starts[tp])
            } else {
                offset
            };
            consumer.seek(tp, target)?;
        } else if args.group.is_none() {
            // No committed offsets to start from: the start or the end, as asked.
            let target = if args.from_beginning {
                starts[tp]
            } else {
                ends[tp]
            };
            consumer.seek(tp, target)?;
        }
    }
    Ok(())
}

/// One session: open the directory, read to the end of every assigned partition (or to
/// `--max-messages`), commit, close. Holding the lock only this long is what lets a producer
/// in another process append while `--follow` waits.
fn session(
    ctx: &Ctx,
    args: &Args,
    pieces: &[Piece],
    out: &mut impl Write,
    progress: &mut Progress,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let broker = ctx.open(false)?;
    let partition_count = broker.topic(&args.topic)?.partition_count();
    let reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    let mut config = ConsumerConfig::default()
        .enable_auto_commit(false)
        .auto_offset_reset(reset);
    if let Some(g) = &args.group {
        config = config.group_id(g.clone());
    }
    let mut consumer = broker.consumer(config)?;
    if args.group.is_some() && args.partition.is_none() {
        consumer.subscribe(&[args.topic.as_str()])?;
    } else {
        let tps: Vec<TopicPartition> = match args.partition {
            Some(p) => vec![TopicPartition::new(args.topic.as_str(), p)],
            None => (0..partition_count)
                .map(|p| TopicPartition::new(args.topic.as_str(), p))
                .collect(),
        };
        consumer.assign(&tps)?;
        position_assigned(&mut consumer, args, progress, &tps)?;
    }

    let mut printed: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
    let started = Instant::now();
    'outer: while !progress.done(args) {
        let records = consumer.poll(POLL_TIMEOUT)?;
        for r in records.iter() {
            if progress.done(args) {
                break;
            }
            if ctx.json {
                print_json(out, &record_json(&r))?;
            } else {
                write_record(out, pieces, &r)?;
            }
            progress.printed += 1;
            printed.insert(r.topic_partition(), OffsetAndMetadata::new(r.offset + 1));
        }
        out.flush()?;
        let assignment = consumer.assignment();
        if assignment.is_empty() {
            if started.elapsed() > ASSIGNMENT_WAIT {
                return Err("no partitions were assigned to this consumer".into());
            }
            continue;
        }
        let ends = consumer.end_offsets(&assignment)?;
        for tp in &assignment {
            if consumer.position(tp)? < ends[tp] {
                continue 'outer;
            }
        }
        break;
    }

    if progress.done(args) {
        // Stopped inside a poll: positions may be past records not printed; keep only what
        // was printed.
        if args.group.is_some() && !printed.is_empty() {
            consumer.commit_offsets_sync(&printed)?;
        }
        for (tp, o) in printed {
            progress.positions.insert(tp, o.offset);
        }
    } else {
        // Everything polled was printed: the positions are the truth (also for partitions
        // that had nothing, so a record appended before the next session is not skipped).
        if args.group.is_some() {
            consumer.commit_sync()?;
        }
        for tp in consumer.assignment() {
            let next = consumer.position(&tp)?;
            progress.positions.insert(tp, next);
        }
    }
    progress.sessions += 1;
    consumer.close()?;
    broker.close()?;
    Ok(())
}

/// Runs `consume`.
pub fn run(ctx: &Ctx, args: &Args) -> CmdResult {
    let pieces = parse_format(&args.format).unwrap_or_else(|e| usage_error(&e));
    if args.group.is_some() && args.offset.is_some() && args.partition.is_none() {
        usage_error("--offset needs --partition when used with --group");
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    #[cfg(feature = "server")]
    if let Some(bootstrap) = &ctx.bootstrap {
        return consume_remote(ctx, args, bootstrap, &pieces, &mut out);
    }
    let mut progress = Progress::default();
    loop {
        session(ctx, args, &pieces, &mut out, &mut progress)?;
        if !args.follow || progress.done(args) {
            break;
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
    eprintln!("consumed {} record(s)", progress.printed);
    Ok(true)
}

/// `consume --bootstrap`: the records through Fetch, printed as from a directory.
#[cfg(feature = "server")]
fn consume_remote(
    ctx: &Ctx,
    args: &Args,
    bootstrap: &str,
    pieces: &[Piece],
    out: &mut impl Write,
) -> CmdResult {
    if args.group.is_some() {
        usage_error("--group with --bootstrap: join the group with a Kafka client instead");
    }
    // ConsumerRecord's topic is a `&'static str`: one name for the whole run.
    let topic: &'static str = Box::leak(args.topic.clone().into_boxed_str());
    let mut printed = 0u64;
    crate::remote::consume(
        bootstrap,
        topic,
        args.partition,
        args.from_beginning,
        args.offset,
        args.follow,
        |f| {
            if args.max_messages.is_some_and(|m| printed >= m) {
                return Ok(false);
            }
            if ctx.json {
                print_json(out, &f.json(topic))?;
            } else {
                let r = ConsumerRecord {
                    topic,
                    partition: f.partition,
                    offset: f.offset,
                    timestamp: f.timestamp,
                    timestamp_type: embroker::TimestampType::CreateTime,
                    key: f.key.clone().map(Into::into),
                    value: f.value.clone().map(Into::into),
                    headers: f
                        .headers
                        .iter()
                        .map(|(k, v)| match v {
                            Some(v) => embroker::Header::new(k.clone(), v.clone()),
                            None => embroker::Header::null(k.clone()),
                        })
                        .collect(),
                };
                write_record(out, pieces, &r)?;
            }
            printed += 1;
            out.flush()?;
            Ok(args.max_messages.is_none_or(|m| printed < m))
        },
    )?;
    eprintln!("consumed {printed} record(s)");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::{parse_format, Piece};

    #[test]
    fn format_compiles_placeholders_and_escapes() {
        let p = parse_format("%k=%s\\t%p:%o %%\\n").unwrap();
        assert_eq!(
            p,
            vec![
                Piece::Key,
                Piece::Text("=".into()),
                Piece::Value,
                Piece::Text("\t".into()),
                Piece::Partition,
                Piece::Text(":".into()),
                Piece::Offset,
                Piece::Text(" %\n".into()),
            ]
        );
        assert!(parse_format("%z").is_err());
    }
}
