//! `embroker produce TOPIC`: one record per stdin line (`kafka-console-producer`), through a
//! `Producer`, so keys are partitioned as Kafka's Java client does. Lines are bytes split at
//! `\n` (a trailing `\r` is kept: the value is what the line holds). The count of records
//! stored is printed on stderr at the end, so stdout stays free for `--json`.
//!
//! With `--json-input` each line is instead a JSON object in the tool's convention
//! (output.rs): `key`, `value` (null: a tombstone), `headers`, `timestamp`, `partition`, all
//! optional; other fields are ignored, so `consume --json` output can be fed back in.

use std::collections::VecDeque;
use std::io::BufRead;

use embroker::codec::Compression;
use embroker::{Acks, ProducerConfig, ProducerRecord, SendFuture};

use embroker::Header;
use serde_json::{json, Value};

use crate::output::{bytes_from_json, print_json};
use crate::{CmdResult, Ctx};

/// Sends in flight before the oldest is waited for: bounds memory on a long stdin.
const IN_FLIGHT_MAX: usize = 10_000;

/// Arguments of `produce`.
#[derive(clap::Args)]
pub struct Args {
    /// The topic to append to.
    topic: String,
    /// Split each line at the first occurrence of this string into key and value; a line
    /// without it gets no key.
    #[arg(long, value_name = "SEP", conflicts_with = "json_input")]
    key_separator: Option<String>,
    /// Read each line as a JSON object: {"key", "value", "headers", "timestamp",
    /// "partition"}, every field optional. key and value: null, a string (its UTF-8 bytes) or
    /// {"base64": "..."}; a null or absent value is a tombstone. headers: [{"key": "...",
    /// "value": null | string | {"base64": ...}}]. timestamp: ms since the epoch. Other
    /// fields are ignored, so `consume --json` output can be fed back. Blank lines are
    /// skipped.
    #[arg(long)]
    json_input: bool,
    /// Send every record to this partition instead of using the partitioner (a
    /// --json-input line's own "partition" wins).
    #[arg(long)]
    partition: Option<i32>,
    /// When a record counts as stored: 0 (handed over), 1 (in the log), all (fsynced).
    #[arg(long, default_value = "1", value_parser = parse_acks)]
    acks: Acks,
    /// Compress batches with this codec (the producer's compression.type): none, gzip,
    /// snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression_type: Compression,
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse()
        .map_err(|e: embroker::codec::CompressionError| e.to_string())
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    match s {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        _ => Err(format!("expected 0, 1 or all, got {s:?}")),
    }
}

/// Splits `line` at the first `sep` into key and value.
fn split_key<'a>(line: &'a [u8], sep: &[u8]) -> (Option<&'a [u8]>, &'a [u8]) {
    if sep.is_empty() || line.len() < sep.len() {
        return (None, line);
    }
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (Some(&line[..i]), &line[i + sep.len()..]),
        None => (None, line),
    }
}

/// A record from one `--json-input` line.
fn record_from_json(topic: &str, line: &[u8]) -> Result<ProducerRecord, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(o) = v else {
        return Err(format!("expected a JSON object, got {v}"));
    };
    let null = Value::Null;
    let field = |name: &str| o.get(name).unwrap_or(&null);
    let bytes = |name: &str| bytes_from_json(field(name)).map_err(|e| format!("{name}: {e}"));
    let mut record = ProducerRecord::new(topic.to_owned(), Vec::new());
    record.value = bytes("value")?.map(Into::into);
    record.key = bytes("key")?.map(Into::into);
    record.timestamp = match field("timestamp") {
        Value::Null => None,
        t => Some(
            t.as_i64()
                .filter(|t| *t >= 0)
                .ok_or_else(|| format!("timestamp: expected ms since the epoch, got {t}"))?,
        ),
    };
    record.partition = match field("partition") {
        Value::Null => None,
        p => Some(
            p.as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| format!("partition: expected a partition number, got {p}"))?,
        ),
    };
    match field("headers") {
        Value::Null => {}
        Value::Array(hs) => {
            for h in hs {
                let key = match h.get("key") {
                    Some(Value::String(k)) => k.clone(),
                    _ => {
                        return Err(format!(
                            "headers: expected {{\"key\": \"...\", ...}}, got {h}"
                        ))
                    }
                };
                let value = bytes_from_json(h.get("value").unwrap_or(&null))
                    .map_err(|e| format!("header {key:?}: {e}"))?;
                record.headers.push(Header {
                    key,
                    value: value.map(Into::into),
                });
            }
        }
        other => return Err(format!("headers: expected a list, got {other}")),
    }
    Ok(record)
}

/// Runs `produce`.
pub fn run(ctx: &Ctx, args: &Args) -> CmdResult {
    let broker = ctx.open(false)?;
    // Fail early, before reading stdin, if the topic does not exist.
    broker.topic(&args.topic)?;
    let producer = broker.producer(
        ProducerConfig::default()
            .acks(args.acks)
            .compression_type(args.compression_type),
    )?;
    let mut pending: VecDeque<SendFuture> = VecDeque::new();
    let mut stored: u64 = 0;
    let mut first_error = None;
    let mut wait_one = |f: SendFuture, stored: &mut u64| match f.wait() {
        Ok(_) => *stored += 1,
        Err(e) => {
            if first_error.is_none() {
                first_error = Some(e);
            }
        }
    };

    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    let mut line_no: u64 = 0;
    // A --json-input line that does not parse: stop reading there, keep what was sent.
    let mut bad_line = None;
    let sep = args.key_separator.as_deref().map(str::as_bytes);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        line_no += 1;
        let mut record = if args.json_input {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match record_from_json(&args.topic, &line) {
                Ok(r) => r,
                Err(e) => {
                    bad_line = Some(format!("line {line_no}: {e}"));
                    break;
                }
            }
        } else {
            let (key, value) = match sep {
                Some(sep) => split_key(&line, sep),
                None => (None, &line[..]),
            };
            let mut record = ProducerRecord::new(args.topic.clone(), value.to_vec());
            if let Some(key) = key {
                record = record.key(key.to_vec());
            }
            record
        };
        // A --json-input line's own partition wins over --partition.
        if let (Some(p), None) = (args.partition, record.partition) {
            record = record.partition(p);
        }
        pending.push_back(producer.send(record)?);
        if pending.len() >= IN_FLIGHT_MAX {
            if let Some(f) = pending.pop_front() {
                wait_one(f, &mut stored);
            }
        }
    }
    producer.flush()?;
    for f in pending.drain(..) {
        wait_one(f, &mut stored);
    }
    producer.close()?;
    broker.close()?;
    eprintln!("produced {stored} record(s) to {}", args.topic);
    if ctx.json {
        let mut out = std::io::stdout().lock();
        print_json(&mut out, &json!({ "topic": args.topic, "records": stored }))?;
    }
    if let Some(e) = bad_line {
        return Err(format!("{e}; stopped there, the lines before it were sent").into());
    }
    match first_error {
        Some(e) => Err(format!("some records were not stored: {e}").into()),
        None => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::{record_from_json, split_key};

    #[test]
    fn json_lines_become_records() {
        let r = record_from_json(
            "t",
            br#"{"key": {"base64": "AP8="}, "value": null, "timestamp": 7, "partition": 1,
                "headers": [{"key": "a", "value": "x"}, {"key": "b", "value": null}],
                "offset": 99}"#,
        )
        .unwrap();
        assert_eq!(r.key.as_deref(), Some(&[0, 0xff][..]));
        assert_eq!(r.value, None);
        assert_eq!((r.timestamp, r.partition), (Some(7), Some(1)));
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.headers[0].value.as_deref(), Some(&b"x"[..]));
        assert_eq!(r.headers[1].value, None);
        let plain = record_from_json("t", br#"{"value": "v"}"#).unwrap();
        assert_eq!((plain.key, plain.value.as_deref()), (None, Some(&b"v"[..])));
        for bad in [
            &b"[1]"[..],
            b"{\"value\": 5}",
            b"{\"timestamp\": -1}",
            b"{\"partition\": \"x\"}",
            b"{\"headers\": [{\"value\": \"x\"}]}",
            b"{\"headers\": {}}",
            b"not json",
        ] {
            assert!(
                record_from_json("t", bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn splits_at_first_separator() {
        assert_eq!(split_key(b"k:v:w", b":"), (Some(&b"k"[..]), &b"v:w"[..]));
        assert_eq!(split_key(b"novalue", b":"), (None, &b"novalue"[..]));
        assert_eq!(split_key(b"a::b", b"::"), (Some(&b"a"[..]), &b"b"[..]));
    }
}
