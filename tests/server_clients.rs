//! Real Kafka clients nobody here wrote against embroker's wire protocol server (issue #18).
//!
//! Each test serves a fresh temporary broker (`serve("127.0.0.1:0")`, topics auto-created), runs a
//! client and then checks, through embroker's in-process [`Consumer`], that every record the
//! client says it produced is there with the same key, value and headers (or, for an aborted
//! transaction, is not visible to a read_committed consumer).
//!
//! - **Python clients** (`tests/outside/clients/`: kafka-python and confluent-kafka, librdkafka's
//!   binding), run with the Python named by `EMBROKER_ORACLE_PYTHON` (the venv `.ci/run` makes
//!   from `tests/outside/requirements.txt`). Each script prints a JSON summary and writes the
//!   records it produced as JSON; every scenario has its own hard timeout inside the script
//!   and another here. Without the variable each test says it is skipped and passes.
//! - **kcat** (Debian's package, librdkafka): `-L`, `-P` with keys and headers, `-C -e`, `-G`.
//!   Skipped with a reason when `kcat` is not on the PATH.
//! - **A server killed mid-produce**: `embroker serve` (the CLI) with confluent-kafka producing
//!   at acks=-1; SIGKILL the server, restart it on the same directory: every acknowledged record
//!   is there, read by confluent-kafka through the restarted server and in-process after it.
//!
//! `cargo test --features cli,server --test server_clients -- --nocapture`
#![cfg(feature = "server")]
// Setup helpers panic on failure: in a test that is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use embroker::{
    Broker, ConsumerConfig, ConsumerRecord, IsolationLevel, OffsetReset, ProducerConfig,
    ProducerRecord, TopicConfig, TopicPartition,
};
use serde_json::Value;

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/outside/clients");

/// The venv's Python, or `None` (the test then says it is skipped).
fn oracle_python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("EMBROKER_ORACLE_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            println!("{test}: skipped: EMBROKER_ORACLE_PYTHON not set (.ci/run sets it)");
            None
        }
    }
}

/// `kcat`, or `None` when it is not installed (the test then says it is skipped).
fn kcat(test: &str) -> Option<PathBuf> {
    match Command::new("kcat").arg("-V").output() {
        Ok(out) if out.status.success() => Some(PathBuf::from("kcat")),
        _ => {
            println!("{test}: skipped: kcat is not installed (apt-get install kcat; .ci/run does)");
            None
        }
    }
}

/// Waits for `child` at most `limit`; kills it past that. Returns whether it exited in time.
fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `n` characters of `s` (client logs can be long).
fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// What a client script printed and the records it wrote.
struct Run {
    summary: Value,
    records: Vec<Value>,
}

/// Runs `script scenario` against `bootstrap`; panics with its output unless it succeeds.
fn run_client(python: &Path, script: &str, bootstrap: &str, scenario: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.json");
    let stdout = std::fs::File::create(dir.path().join("stdout")).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let script_path = format!("{CLIENTS}/{script}");
    let started = Instant::now();
    let mut child = Command::new(python)
        .arg(&script_path)
        .args(["--bootstrap", bootstrap, "--records"])
        .arg(&records)
        .args(extra)
        .arg(scenario)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} {script_path}: {e}", python.display()));
    // The script's own watchdog ends it first; this is the backstop.
    let status = wait_or_kill(&mut child, Duration::from_secs(300));
    let out = std::fs::read_to_string(dir.path().join("stdout")).unwrap_or_default();
    let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    let ok = status.is_some_and(|s| s.success());
    assert!(
        ok,
        "{script} {scenario} failed ({status:?} after {:.1}s)\n--- stdout\n{out}\n--- stderr (tail)\n{}",
        started.elapsed().as_secs_f64(),
        tail(&err, 12_000)
    );
    let summary: Value = serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{script} {scenario}: no JSON summary ({e}): {out}"));
    assert_eq!(summary["ok"], Value::Bool(true), "{summary}");
    let records: Vec<Value> = std::fs::read(&records)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_default();
    println!(
        "{script} {scenario}: ok in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        tail(&summary.to_string(), 1500)
    );
    Run { summary, records }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_or_null(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, |b| Value::String(hex(b)))
}

/// A record read in-process, in the scripts' JSON shape.
fn record_json(r: &ConsumerRecord) -> Value {
    serde_json::json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "key": hex_or_null(r.key.as_deref()),
        "value": hex_or_null(r.value.as_deref()),
        "headers": r.headers.iter().map(|h| serde_json::json!([h.key, hex_or_null(h.value.as_deref())])).collect::<Vec<_>>(),
    })
}

/// Everything an in-process consumer assigned to `tp` from the start reads up to `end`.
fn read_partition(
    broker: &Broker,
    tp: &TopicPartition,
    end: i64,
    isolation: IsolationLevel,
) -> BTreeMap<i64, Value> {
    let mut config = ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest);
    config.isolation_level = isolation;
    let mut c = broker.consumer(config).unwrap();
    c.assign(std::slice::from_ref(tp)).unwrap();
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.position(tp).unwrap() < end {
        assert!(
            Instant::now() < deadline,
            "the in-process consumer stalled on {tp:?} at {} of {end}",
            c.position(tp).unwrap()
        );
        for r in c.poll(Duration::from_millis(100)).unwrap().iter() {
            out.insert(r.offset, record_json(&r));
        }
    }
    out
}

/// Checks that every record a client produced is visible in-process at its offset with the
/// same key, value and headers; records of aborted transactions (`"txn": "aborted"`) must be
/// invisible to a read_committed consumer. Returns how many records were checked.
fn check_visible(broker: &Broker, records: &[Value], what: &str) -> usize {
    let mut by_tp: BTreeMap<(String, i32), Vec<&Value>> = BTreeMap::new();
    for r in records {
        let topic = r["topic"].as_str().unwrap().to_string();
        let partition = r["partition"].as_i64().unwrap() as i32;
        by_tp.entry((topic, partition)).or_default().push(r);
    }
    let transactional = records.iter().any(|r| r.get("txn").is_some());
    let isolation = if transactional {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    for ((topic, partition), expected) in &by_tp {
        let tp = TopicPartition::new(topic.as_str(), *partition);
        let p = broker.topic(topic).unwrap().partition(*partition).unwrap();
        let end = if transactional {
            p.last_stable_offset()
        } else {
            p.log_end_offset()
        };
        let got = read_partition(broker, &tp, end, isolation);
        for r in expected {
            let offset = r["offset"].as_i64().unwrap();
            let aborted = r.get("txn").and_then(Value::as_str) == Some("aborted");
            match got.get(&offset) {
                None if aborted => {}
                Some(g) if aborted => {
                    panic!("{what}: aborted record {r} is visible read_committed as {g}")
                }
                None => panic!(
                    "{what}: {topic}-{partition} offset {offset} not visible in-process \
                     (log end {}, read {} records): {r}",
                    p.log_end_offset(),
                    got.len()
                ),
                Some(g) => {
                    for field in ["key", "value", "headers"] {
                        assert_eq!(
                            g[field], r[field],
                            "{what}: {topic}-{partition}@{offset}: {field} differs in-process"
                        );
                    }
                }
            }
        }
    }
    records.len()
}

/// A temporary broker, served on a free port, creating topics on first use as Kafka's broker
/// and `embroker serve` do (the library's own default is off).
macro_rules! served {
    ($broker:ident, $server:ident, $bootstrap:ident) => {
        let $broker = Broker::builder()
            .auto_create_topics(true)
            .open_temporary()
            .unwrap();
        let $server = $broker.serve("127.0.0.1:0").unwrap();
        let $bootstrap = $server.bootstrap();
    };
}

fn create(broker: &Broker, topic: &str, partitions: i32) {
    broker
        .create_topic(topic, TopicConfig::default().partitions(partitions))
        .unwrap();
}

/// The offsets `group` committed, by partition of `topic` (`None`: nothing committed).
fn committed(broker: &Broker, group: &str, topic: &str) -> Vec<(i32, Option<i64>, i64)> {
    let c = broker
        .consumer(ConsumerConfig::default().group_id(group))
        .unwrap();
    let t = broker.topic(topic).unwrap();
    (0..t.partition_count())
        .map(|p| {
            let tp = TopicPartition::new(topic, p);
            let end = t.partition(p).unwrap().log_end_offset();
            (p, c.committed(&tp).unwrap().map(|o| o.offset), end)
        })
        .collect()
}

fn records_checked(test: &str, n: usize) {
    println!("{test}: {n} records checked in-process");
    assert!(n > 0, "{test}: the client reported no records");
}

// ---- kafka-python ----

#[test]
fn kafka_python_codecs_keys_headers() {
    let Some(py) = oracle_python("kafka_python_codecs_keys_headers") else {
        return;
    };
    served!(broker, server, bootstrap);
    let run = run_client(&py, "kafka_python_client.py", &bootstrap, "codecs", &[]);
    let n = check_visible(&broker, &run.records, "kafka-python codecs");
    records_checked("kafka_python_codecs_keys_headers", n);
    drop(server);
}

#[test]
fn kafka_python_group_of_three() {
    let Some(py) = oracle_python("kafka_python_group_of_three") else {
        return;
    };
    served!(broker, server, bootstrap);
    create(&broker, "kp-group", 6);
    let run = run_client(&py, "kafka_python_client.py", &bootstrap, "group", &[]);
    let n = check_visible(&broker, &run.records, "kafka-python group");
    records_checked("kafka_python_group_of_three", n);
    for (p, offset, end) in committed(&broker, "kp-group", "kp-group") {
        assert_eq!(
            offset,
            Some(end),
            "kp-group partition {p}: committed offset"
        );
    }
    drop(server);
}

#[test]
fn kafka_python_admin() {
    let Some(py) = oracle_python("kafka_python_admin") else {
        return;
    };
    served!(broker, server, bootstrap);
    let run = run_client(&py, "kafka_python_client.py", &bootstrap, "admin", &[]);
    check_admin(&broker, &run.summary, 7_200_000);
    drop(server);
}

#[test]
fn kafka_python_member_killed_is_evicted() {
    let Some(py) = oracle_python("kafka_python_member_killed_is_evicted") else {
        return;
    };
    served!(broker, server, bootstrap);
    create(&broker, "kp-kill", 6);
    let run = run_client(
        &py,
        "kafka_python_client.py",
        &bootstrap,
        "kill_member",
        &[],
    );
    let n = check_visible(&broker, &run.records, "kafka-python kill_member");
    records_checked("kafka_python_member_killed_is_evicted", n);
    drop(server);
}

// ---- confluent-kafka (librdkafka) ----

#[test]
fn confluent_codecs_keys_headers() {
    let Some(py) = oracle_python("confluent_codecs_keys_headers") else {
        return;
    };
    served!(broker, server, bootstrap);
    let run = run_client(&py, "confluent_client.py", &bootstrap, "codecs", &[]);
    let n = check_visible(&broker, &run.records, "confluent codecs");
    records_checked("confluent_codecs_keys_headers", n);
    drop(server);
}

#[test]
fn confluent_group_of_three() {
    let Some(py) = oracle_python("confluent_group_of_three") else {
        return;
    };
    served!(broker, server, bootstrap);
    create(&broker, "cf-group", 6);
    let run = run_client(&py, "confluent_client.py", &bootstrap, "group", &[]);
    let n = check_visible(&broker, &run.records, "confluent group");
    records_checked("confluent_group_of_three", n);
    for (p, offset, end) in committed(&broker, "cf-group", "cf-group") {
        assert_eq!(
            offset,
            Some(end),
            "cf-group partition {p}: committed offset"
        );
    }
    drop(server);
}

#[test]
fn confluent_cooperative_sticky() {
    let Some(py) = oracle_python("confluent_cooperative_sticky") else {
        return;
    };
    served!(broker, server, bootstrap);
    create(&broker, "cf-coop", 6);
    let run = run_client(&py, "confluent_client.py", &bootstrap, "cooperative", &[]);
    let n = check_visible(&broker, &run.records, "confluent cooperative");
    records_checked("confluent_cooperative_sticky", n);
    drop(server);
}

#[test]
fn confluent_idempotent_and_transactional() {
    let Some(py) = oracle_python("confluent_idempotent_and_transactional") else {
        return;
    };
    served!(broker, server, bootstrap);
    for t in ["cf-txn", "cf-txn-idem", "cf-txn-out"] {
        create(&broker, t, 3);
    }
    let run = run_client(&py, "confluent_client.py", &bootstrap, "transactions", &[]);
    let aborted = run.records.iter().filter(|r| r["txn"] == "aborted").count();
    assert!(aborted > 0, "the script reported no aborted records");
    let n = check_visible(&broker, &run.records, "confluent transactions");
    records_checked("confluent_idempotent_and_transactional", n);
    drop(server);
}

#[test]
fn confluent_admin() {
    let Some(py) = oracle_python("confluent_admin") else {
        return;
    };
    served!(broker, server, bootstrap);
    let run = run_client(&py, "confluent_client.py", &bootstrap, "admin", &[]);
    check_admin(&broker, &run.summary, 3_600_000);
    drop(server);
}

#[test]
fn confluent_member_killed_is_evicted() {
    let Some(py) = oracle_python("confluent_member_killed_is_evicted") else {
        return;
    };
    served!(broker, server, bootstrap);
    create(&broker, "cf-kill", 6);
    let run = run_client(&py, "confluent_client.py", &bootstrap, "kill_member", &[]);
    let n = check_visible(&broker, &run.records, "confluent kill_member");
    records_checked("confluent_member_killed_is_evicted", n);
    drop(server);
}

/// What an admin scenario did, seen in-process: the kept topic has 5 partitions and the
/// altered retention, the deleted one is gone.
fn check_admin(broker: &Broker, summary: &Value, retention_ms: i64) {
    let kept = summary["kept"].as_str().unwrap();
    let deleted = summary["deleted"].as_str().unwrap();
    let topics = broker.topics();
    assert!(
        topics.iter().any(|t| t == kept),
        "{kept} missing: {topics:?}"
    );
    assert!(
        !topics.iter().any(|t| t == deleted),
        "{deleted} still there: {topics:?}"
    );
    let d = broker.describe_topic(kept).unwrap();
    assert_eq!(d.partitions.len(), 5, "{kept}: partitions in-process");
    assert_eq!(d.config.retention_ms, retention_ms, "{kept}: retention.ms");
}

// ---- kcat ----

fn run_kcat(kcat: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(kcat)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let mut out = String::new();
    let mut err = String::new();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut e = String::new();
        se.read_to_string(&mut e).unwrap();
        e
    });
    let status = {
        // kcat ends by itself (-e, or end of stdin); the limit is a backstop.
        let reader = std::thread::spawn(move || {
            let mut o = String::new();
            so.read_to_string(&mut o).unwrap();
            o
        });
        let status = wait_or_kill(&mut child, Duration::from_secs(60));
        out.push_str(&reader.join().unwrap());
        status
    };
    err.push_str(&t.join().unwrap());
    assert!(
        status.is_some_and(|s| s.success()),
        "kcat {args:?} failed ({status:?})\n--- stdout\n{out}\n--- stderr\n{}",
        tail(&err, 8000)
    );
    out
}

/// Produces `n` keyed records with a header in-process; returns them as JSON.
fn produce_in_process(broker: &Broker, topic: &str, n: usize) -> Vec<Value> {
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let out = (0..n)
        .map(|i| {
            let meta = producer
                .send(
                    ProducerRecord::new(topic.to_string(), format!("value-{i}"))
                        .key(format!("key-{i}"))
                        .header("origin", "embroker"),
                )
                .unwrap()
                .wait()
                .unwrap();
            (meta.partition, meta.offset, i)
        })
        .collect::<Vec<_>>();
    producer.flush().unwrap();
    out.into_iter()
        .map(|(p, o, i)| {
            serde_json::json!({"partition": p, "offset": o, "key": format!("key-{i}"),
                               "value": format!("value-{i}")})
        })
        .collect()
}

#[test]
fn kcat_metadata() {
    let Some(kcat) = kcat("kcat_metadata") else {
        return;
    };
    served!(broker, server, bootstrap);
    create(&broker, "kcat-md", 4);
    let out = run_kcat(&kcat, &["-b", &bootstrap, "-L", "-J"], None);
    let md: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("kcat -L -J: {e}: {out}"));
    let brokers = md["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{md}");
    // kcat names a broker "host:port" (librdkafka's "host:port/id" in some versions).
    let name = brokers[0]["name"].as_str().unwrap();
    assert!(
        name == bootstrap || name.starts_with(&format!("{bootstrap}/")),
        "{md}"
    );
    let topic = md["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "kcat-md")
        .unwrap_or_else(|| panic!("kcat -L lacks kcat-md: {md}"));
    assert_eq!(topic["partitions"].as_array().unwrap().len(), 4, "{topic}");
    println!("kcat_metadata: {}", tail(&md.to_string(), 600));
    drop(server);
}

#[test]
fn kcat_produce_with_keys_and_headers() {
    let Some(kcat) = kcat("kcat_produce_with_keys_and_headers") else {
        return;
    };
    served!(broker, server, bootstrap);
    create(&broker, "kcat-in", 1);
    let input: String = (0..50).map(|i| format!("k{i}:v{i}\n")).collect();
    run_kcat(
        &kcat,
        &[
            "-b",
            &bootstrap,
            "-P",
            "-t",
            "kcat-in",
            "-p",
            "0",
            "-K",
            ":",
            "-H",
            "source=kcat",
            "-H",
            "n=1",
            "-X",
            "acks=all",
        ],
        Some(&input),
    );
    let tp = TopicPartition::new("kcat-in", 0);
    let end = broker
        .topic("kcat-in")
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    assert_eq!(end, 50, "kcat -P: log end offset");
    let got = read_partition(&broker, &tp, end, IsolationLevel::ReadUncommitted);
    for (i, (offset, r)) in got.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(r["key"], hex(format!("k{i}").as_bytes()), "{r}");
        assert_eq!(r["value"], hex(format!("v{i}").as_bytes()), "{r}");
        assert_eq!(
            r["headers"],
            serde_json::json!([["source", hex(b"kcat")], ["n", hex(b"1")]]),
            "{r}"
        );
    }
    println!("kcat_produce_with_keys_and_headers: 50 records checked in-process");
    drop(server);
}

/// kcat's `-J` envelope: (partition, offset, key, payload).
fn kcat_records(out: &str) -> BTreeSet<(i64, i64, String, String)> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("kcat -J: {e}: {l}"));
            (
                v["partition"].as_i64().unwrap(),
                v["offset"].as_i64().unwrap(),
                v["key"].as_str().unwrap_or_default().to_string(),
                v["payload"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn expected_set(records: &[Value]) -> BTreeSet<(i64, i64, String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
                r["key"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn kcat_consume_to_end() {
    let Some(kcat) = kcat("kcat_consume_to_end") else {
        return;
    };
    served!(broker, server, bootstrap);
    create(&broker, "kcat-out", 3);
    let produced = produce_in_process(&broker, "kcat-out", 60);
    let out = run_kcat(
        &kcat,
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            "kcat-out",
            "-o",
            "beginning",
            "-e",
            "-J",
        ],
        None,
    );
    let got = kcat_records(&out);
    assert_eq!(
        got,
        expected_set(&produced),
        "kcat -C -e read something else"
    );
    // Headers come through too.
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["headers"],
        serde_json::json!(["origin", "embroker"]),
        "{first}"
    );
    println!("kcat_consume_to_end: {} records", got.len());
    drop(server);
}

#[test]
fn kcat_group_consume() {
    let Some(kcat) = kcat("kcat_group_consume") else {
        return;
    };
    served!(broker, server, bootstrap);
    create(&broker, "kcat-group", 3);
    let produced = produce_in_process(&broker, "kcat-group", 60);
    let out = run_kcat(
        &kcat,
        &[
            "-b",
            &bootstrap,
            "-G",
            "kcat-grp",
            "-o",
            "beginning",
            "-e",
            "-J",
            "-X",
            "session.timeout.ms=6000",
            "kcat-group",
        ],
        None,
    );
    let got = kcat_records(&out);
    assert_eq!(got, expected_set(&produced), "kcat -G read something else");
    let commits = committed(&broker, "kcat-grp", "kcat-group");
    for (p, offset, end) in &commits {
        assert_eq!(
            *offset,
            Some(*end),
            "kcat-grp partition {p}: committed offset"
        );
    }
    println!(
        "kcat_group_consume: {} records, commits {commits:?}",
        got.len()
    );
    drop(server);
}

// ---- a server killed mid-produce ----

/// `embroker --dir DIR serve --listen 127.0.0.1:0`, and the address from its first line.
#[cfg(feature = "cli")]
fn start_cli_server(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_embroker"))
        .arg("--dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("embroker serving on ")
        .unwrap_or_else(|| panic!("embroker serve printed {line:?}"))
        .to_string();
    (child, addr)
}

#[cfg(feature = "cli")]
#[test]
fn server_killed_mid_produce_loses_nothing_acknowledged() {
    let test = "server_killed_mid_produce_loses_nothing_acknowledged";
    let Some(py) = oracle_python(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut server, bootstrap) = start_cli_server(dir.path());
    let mut producer = Command::new(&py)
        .arg(format!("{CLIENTS}/confluent_client.py"))
        .args([
            "--bootstrap",
            &bootstrap,
            "--topic",
            "acked",
            "--timeout",
            "120",
        ])
        .arg("acked_produce")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = producer.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let mut acked = Vec::new();
    let mut other = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    // Kill the server once the producer is well under way.
    while acked.len() < 3000 {
        assert!(
            Instant::now() < deadline,
            "only {} acks in 90 s; other lines: {other:?}",
            acked.len()
        );
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(v) if v.get("acked").is_some() => acked.push(v["acked"].clone()),
            Ok(v) => other.push(v),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!(
                "the producer ended early ({e}); acks {}, other: {other:?}",
                acked.len()
            ),
        }
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let killed_at = acked.len();
    // Acks already on their way to the client arrive; nothing new can be acknowledged.
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(v) if v.get("acked").is_some() => acked.push(v["acked"].clone()),
            Ok(v) => other.push(v),
            Err(_) => {}
        }
    }
    let _ = producer.kill();
    let _ = producer.wait();
    drop(rx);
    let _ = reader.join();
    println!(
        "{test}: {} records acknowledged ({killed_at} when the server was killed), then {other:?}",
        acked.len()
    );

    // Restarted on the same directory: confluent-kafka reads every acknowledged record.
    let (mut server, bootstrap) = start_cli_server(dir.path());
    let dump = run_client(
        &py,
        "confluent_client.py",
        &bootstrap,
        "dump",
        &["--topic", "acked"],
    );
    let by_pos: BTreeMap<(i64, i64), &Value> = dump
        .records
        .iter()
        .map(|r| {
            (
                (
                    r["partition"].as_i64().unwrap(),
                    r["offset"].as_i64().unwrap(),
                ),
                r,
            )
        })
        .collect();
    for a in &acked {
        let pos = (
            a["partition"].as_i64().unwrap(),
            a["offset"].as_i64().unwrap(),
        );
        let got = by_pos
            .get(&pos)
            .unwrap_or_else(|| panic!("acknowledged {a} lost after the restart"));
        assert_eq!((&got["key"], &got["value"]), (&a["key"], &a["value"]));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    // And in-process on the directory.
    let broker = Broker::open(dir.path()).unwrap();
    let n = check_visible(&broker, &acked, "acked after the server kill");
    println!(
        "{test}: all {n} acknowledged records there after the restart (client and in-process)"
    );
}
