//! The wire protocol server against librdkafka's own mock cluster (issue #18), the same client
//! on both: confluent-kafka, librdkafka's Python binding (tests/outside/clients/bench_confluent.py,
//! run with the Python of `EMBROKER_ORACLE_PYTHON`, the venv `.ci/run` makes; without it the
//! bench says it skips).
//!
//! 1. Throughput: 100,000 records of 100 bytes produced round-robin to 4 partitions, flushed,
//!    then read by a new consumer from the start; embroker served in-process
//!    (`Broker::serve`, a fresh broker in a scratch directory each round, not a temporary one,
//!    which fsyncs nothing) against the mock cluster
//!    (`test.mock.num.brokers=1`, a fresh one each round, in the client's process, keeping
//!    nothing on disk). acks=1 and acks=-1 separately (acks=-1 fsyncs on embroker, not on the
//!    mock). The script times itself, so Python's start-up never counts; consuming is timed
//!    from the first record received to the last (a new librdkafka consumer takes about half a
//!    second to its first record whatever the broker: part 2 measures that). The in-process API
//!    on the same records (embroker `Producer` and `Consumer`, no network) is the reference.
//!    Targets at acks=1: produce and consume ≥ 1x the mock.
//! 2. Start-up: from before `Broker::builder()...open_temporary()` and `serve` to the first
//!    record a new confluent-kafka consumer read (a new producer sent it; the topic is
//!    auto-created), against the same from the mock cluster's creation. Target: ≤ the mock's.
//!
//! Rounds are interleaved (embroker, mock, in-process; then the other way round), after
//! `EMBROKER_BENCH_WARMUP` untimed rounds; the table gives medians over
//! `EMBROKER_BENCH_RUNS` rounds (default 3) and the median of the per-round ratios.
//! `EMBROKER_BENCH_SCALE` multiplies the record count (the mock keeps about 43,000 such records
//! per partition, so the count is capped at 160,000). `EMBROKER_BENCH_PARTITION_FETCH_BYTES`
//! sets the server's `max_partition_fetch_bytes` (its default otherwise), to compare values; the
//! client keeps its default settings either way.
//!
//! `cargo bench --features server --bench server`
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(clippy::too_many_arguments)]
#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use embroker::{
    Acks, Broker, Bytes, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, ServerConfig,
    TopicConfig, TopicPartition,
};
use serde_json::Value;
use support::{runs, scaled, warmup, Report, Row};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/outside/clients/bench_confluent.py"
);
const PARTITIONS: i32 = 4;
const VALUE_BYTES: usize = 100;

/// The server's settings: the defaults, or with `EMBROKER_BENCH_PARTITION_FETCH_BYTES` as
/// `ServerConfig::max_partition_fetch_bytes` (to compare its values; the client's settings
/// stay its defaults either way).
fn server_config() -> ServerConfig {
    let config = ServerConfig::default();
    match std::env::var("EMBROKER_BENCH_PARTITION_FETCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(bytes) => config.max_partition_fetch_bytes(bytes),
        None => config,
    }
}

/// The broker a start-up round serves: a temporary one, the fake a test starts.
fn served_broker() -> Broker {
    Broker::builder()
        .auto_create_topics(true)
        .open_temporary()
        .expect("broker")
}

/// The broker a throughput round serves: in a scratch directory, not a temporary broker, so
/// acks=-1 fsyncs (a temporary broker fsyncs nothing, issue #20).
fn durable_broker(dir: &Path) -> Broker {
    Broker::builder()
        .auto_create_topics(true)
        .open(dir)
        .expect("broker")
}

/// Runs the script; its JSON result line.
fn script(python: &Path, args: &[&str]) -> Value {
    let out = Command::new(python)
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bench_confluent.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    assert!(
        out.status.success() && v["ok"] == Value::Bool(true),
        "bench_confluent.py {args:?} failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

fn secs(v: &Value, field: &str) -> Duration {
    Duration::from_secs_f64(v[field].as_f64().unwrap())
}

/// confluent-kafka's produce and consume times against a fresh embroker server.
fn embroker_round(python: &Path, n: u64, acks: &str) -> (Duration, Duration) {
    let scratch = tempfile::tempdir().expect("scratch directory");
    let broker = durable_broker(scratch.path());
    broker
        .create_topic("bench", TopicConfig::default().partitions(PARTITIONS))
        .expect("topic");
    let server = broker
        .serve_with("127.0.0.1:0", server_config())
        .expect("serve");
    let v = script(
        python,
        &[
            "throughput",
            "--bootstrap",
            &server.bootstrap(),
            "--count",
            &n.to_string(),
            "--acks",
            acks,
        ],
    );
    drop(server);
    (secs(&v, "produce_s"), secs(&v, "consume_s"))
}

fn mock_round(python: &Path, n: u64, acks: &str) -> (Duration, Duration) {
    let v = script(
        python,
        &[
            "throughput",
            "--bootstrap",
            "mock",
            "--count",
            &n.to_string(),
            "--acks",
            acks,
        ],
    );
    (secs(&v, "produce_s"), secs(&v, "consume_s"))
}

/// The in-process API on the same records: send all (round-robin over the partitions), flush;
/// then a consumer assigned to every partition reads them all.
fn in_process_round(n: u64, acks: Acks) -> (Duration, Duration) {
    let scratch = tempfile::tempdir().expect("scratch directory");
    let broker = Broker::open(scratch.path()).expect("broker");
    broker
        .create_topic("bench", TopicConfig::default().partitions(PARTITIONS))
        .expect("topic");
    let value = Bytes::from(vec![b'x'; VALUE_BYTES]);
    let producer = broker
        .producer(ProducerConfig::default().acks(acks))
        .expect("producer");
    let start = Instant::now();
    for i in 0..n {
        drop(
            producer
                .send(ProducerRecord::new("bench", value.clone()).partition((i % 4) as i32))
                .expect("send"),
        );
    }
    producer.flush().expect("flush");
    let produce = start.elapsed();
    let start = Instant::now();
    let mut c = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .expect("consumer");
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("bench", p))
        .collect();
    c.assign(&tps).expect("assign");
    let mut got = 0u64;
    while got < n {
        got += c.poll(Duration::from_secs(1)).expect("poll").count() as u64;
    }
    (produce, start.elapsed())
}

/// From before the broker opens to the line saying a client consumed its first record.
fn embroker_startup(python: &Path) -> Duration {
    let mut child = Command::new(python)
        .arg(SCRIPT)
        .arg("startup-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run bench_confluent.py");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let start = Instant::now();
    let broker = served_broker();
    let server = broker
        .serve_with("127.0.0.1:0", server_config())
        .expect("serve");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", server.bootstrap()).unwrap();
    stdin.flush().unwrap();
    let line = lines.next().unwrap().unwrap();
    let elapsed = start.elapsed();
    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    assert_eq!(v["ok"], Value::Bool(true), "startup-stdin: {line}");
    child.wait().unwrap();
    drop(server);
    elapsed
}

fn mock_startup(python: &Path) -> Duration {
    secs(&script(python, &["startup-mock"]), "first_record_s")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

/// A table row whose time is the median of `rounds` (compared round by round with its
/// baseline's rounds by `Report::print`).
fn row(group: &str, name: &str, baseline: Option<&str>, n: u64, rounds: Vec<Duration>) -> Row {
    Row {
        group: group.into(),
        name: name.into(),
        records: n,
        bytes: n * VALUE_BYTES as u64,
        elapsed: median(rounds.clone()),
        baseline: baseline.map(str::to_string),
        note: String::new(),
        rounds,
    }
}

fn main() {
    let Some(python) = std::env::var_os("EMBROKER_ORACLE_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
    else {
        println!(
            "server bench: skipped: EMBROKER_ORACLE_PYTHON not set (the venv of \
             tests/outside/requirements.txt, with confluent-kafka)"
        );
        return;
    };
    let n = scaled(100_000).clamp(PARTITIONS as u64, 160_000);
    let mut report = Report::default();
    for (acks, acks_api) in [("1", Acks::Leader), ("-1", Acks::All)] {
        let mut t: [Vec<Duration>; 6] = Default::default();
        for round in 0..warmup() + runs() {
            let mut order = [0, 1, 2];
            if round % 2 == 1 {
                order.reverse();
            }
            for contender in order {
                let (produce, consume) = match contender {
                    0 => embroker_round(&python, n, acks),
                    1 => mock_round(&python, n, acks),
                    _ => in_process_round(n, acks_api),
                };
                if round >= warmup() {
                    t[contender * 2].push(produce);
                    t[contender * 2 + 1].push(consume);
                }
            }
        }
        let [ep, ec, mp, mc, ip, ic] = t;
        let group = format!("acks={acks}");
        let mock_p = "confluent-kafka produce, mock cluster";
        let mock_c = "confluent-kafka consume, mock cluster";
        report.push(row(&group, mock_p, None, n, mp));
        report.push(row(
            &group,
            "confluent-kafka produce, embroker serve",
            Some(mock_p),
            n,
            ep,
        ));
        report.push(row(&group, mock_c, None, n, mc));
        report.push(row(
            &group,
            "confluent-kafka consume, embroker serve",
            Some(mock_c),
            n,
            ec,
        ));
        report.push(row(&group, "in-process Producer (reference)", None, n, ip));
        report.push(row(&group, "in-process Consumer (reference)", None, n, ic));
    }

    let mut embroker = Vec::new();
    let mut mock = Vec::new();
    for round in 0..warmup() + runs() {
        let (e, m) = if round % 2 == 0 {
            let e = embroker_startup(&python);
            (e, mock_startup(&python))
        } else {
            let m = mock_startup(&python);
            (embroker_startup(&python), m)
        };
        if round >= warmup() {
            embroker.push(e);
            mock.push(m);
        }
    }
    let ratios: Vec<f64> = embroker
        .iter()
        .zip(&mock)
        .map(|(e, m)| e.as_secs_f64() / m.as_secs_f64())
        .collect();
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let ratio = sorted[sorted.len() / 2];
    report.note(
        "startup",
        "mock cluster created -> first record consumed",
        format!("median {:.1} ms", median(mock.clone()).as_secs_f64() * 1e3),
    );
    report.note(
        "startup",
        "Broker open + serve -> first record consumed",
        format!(
            "median {:.1} ms, {:.2}x the mock's (per round: median of ratios {ratio:.2}x)",
            median(embroker.clone()).as_secs_f64() * 1e3,
            median(embroker.clone()).as_secs_f64() / median(mock.clone()).as_secs_f64()
        ),
    );
    report.print(&format!(
        "Kafka clients: embroker serve against librdkafka's mock cluster ({n} records of \
         {VALUE_BYTES} B, median of {} rounds; the time column is the median)",
        runs()
    ));
}
