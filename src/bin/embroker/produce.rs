//! `embroker produce TOPIC`: one record per stdin line (`kafka-console-producer`), through a
//! `Producer`, so keys are partitioned as Kafka's Java client does. Lines are bytes split at
//! `\n` (a trailing `\r` is kept: the value is what the line holds). The count of records
//! stored is printed on stderr at the end, so stdout stays free for `--json`.

use std::collections::VecDeque;
use std::io::{BufRead, Write};

use embroker::codec::Compression;
use embroker::{Acks, ProducerConfig, ProducerRecord, SendFuture};

use crate::output::{json_obj, json_str};
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
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send every record to this partition instead of using the partitioner.
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
    let sep = args.key_separator.as_deref().map(str::as_bytes);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let (key, value) = match sep {
            Some(sep) => split_key(&line, sep),
            None => (None, &line[..]),
        };
        let mut record = ProducerRecord::new(args.topic.clone(), value.to_vec());
        if let Some(key) = key {
            record = record.key(key.to_vec());
        }
        if let Some(p) = args.partition {
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
        writeln!(
            out,
            "{}",
            json_obj(&[
                ("topic", json_str(&args.topic)),
                ("records", stored.to_string())
            ])
        )?;
    }
    match first_error {
        Some(e) => Err(format!("some records were not stored: {e}").into()),
        None => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::split_key;

    #[test]
    fn splits_at_first_separator() {
        assert_eq!(split_key(b"k:v:w", b":"), (Some(&b"k"[..]), &b"v:w"[..]));
        assert_eq!(split_key(b"novalue", b":"), (None, &b"novalue"[..]));
        assert_eq!(split_key(b"a::b", b"::"), (Some(&b"a"[..]), &b"b"[..]));
    }
}
