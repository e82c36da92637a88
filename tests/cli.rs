//! The `embroker` command-line tool, driven as a user drives it: the built binary run with
//! `std::process::Command`, input through a pipe, output and exit codes checked.
#![cfg(feature = "cli")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use embroker::Broker;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_embroker");

/// Runs the tool with `args` and `stdin`, returning its output.
fn run_with_input(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the embroker binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin)
        .expect("stdin accepts the input");
    child.wait_with_output().expect("the binary runs")
}

fn run(args: &[&str]) -> Output {
    run_with_input(args, b"")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and asserts success, returning stdout.
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?} failed: stdout {} stderr {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Parses one `--json` document (the whole of stdout: one line).
fn parse(out: &str) -> Value {
    assert_eq!(out.lines().count(), 1, "one JSON document per line: {out}");
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Parses JSON lines (`consume --json`).
fn parse_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs with `--json` (after `--dir DIR` when given) and parses stdout.
fn ok_json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    parse(&ok(&all))
}

fn dir_arg(dir: &Path) -> String {
    dir.to_str().unwrap().to_string()
}

/// A data directory with topic `t` (2 partitions) holding four keyed records.
fn data_dir_with_records() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let d = dir_arg(&tmp.path().join("data"));
    ok(&["--dir", &d, "topics", "create", "t", "--partitions", "2"]);
    let o = run_with_input(
        &[
            "--dir",
            &d,
            "produce",
            "t",
            "--key-separator",
            ":",
            "--partition",
            "0",
        ],
        b"k1:v1\nk2:v2\nk3:v:3\nnokey\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("produced 4 record(s)"),
        "{}",
        stderr(&o)
    );
    (tmp, d)
}

fn segment_log(dir: &str) -> PathBuf {
    Path::new(dir).join("t-0").join("00000000000000000000.log")
}

#[test]
fn help_of_every_subcommand_exits_0() {
    let commands: &[&[&str]] = &[
        &[],
        &["topics"],
        &["topics", "list"],
        &["topics", "create"],
        &["topics", "describe"],
        &["topics", "delete"],
        &["topics", "alter"],
        &["topics", "add-partitions"],
        &["produce"],
        &["consume"],
        &["groups"],
        &["groups", "list"],
        &["groups", "describe"],
        &["groups", "reset-offsets"],
        &["groups", "delete"],
        &["transactions"],
        &["transactions", "list"],
        &["transactions", "describe"],
        &["dump"],
        &["verify"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage"), "{args:?}: {}", stdout(&o));
    }
}

#[test]
fn usage_error_exits_2() {
    let o = run(&["topics", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["groups", "reset-offsets", "g", "--topic", "t"]);
    assert_eq!(o.status.code(), Some(2), "a --to-* option is required");
    let o = run(&["topics", "list"]);
    assert_eq!(o.status.code(), Some(2), "--dir is required");
    assert!(stderr(&o).contains("--dir"), "{}", stderr(&o));
}

#[test]
fn topics_create_list_describe_alter_delete_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let d = dir_arg(&tmp.path().join("data"));
    let out = ok(&[
        "--dir",
        &d,
        "topics",
        "create",
        "orders",
        "--partitions",
        "3",
        "--config",
        "retention.ms=60000",
    ]);
    assert!(out.contains("created topic orders"), "{out}");
    let list = ok(&["--dir", &d, "topics", "list"]);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["orders", "3"]),
        "{list}"
    );
    assert_eq!(
        ok_json(&["--dir", &d, "topics", "list"]),
        json!([{"name": "orders", "partitions": 3, "error": null}])
    );
    let desc = ok_json(&["--dir", &d, "topics", "describe", "orders"]);
    assert_eq!(desc["name"], "orders");
    assert_eq!(desc["config"]["retention.ms"], "60000");
    assert_eq!(desc["config"]["cleanup.policy"], "delete");
    let parts = desc["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["partition"], i);
        assert_eq!(p["log_start_offset"], 0);
        assert_eq!(p["log_end_offset"], 0);
        assert_eq!(p["error"], Value::Null);
        assert_eq!(p["last_clean_ms"], Value::Null);
        assert_eq!(p["dirty_ratio"], 0.0);
    }
    // The kafka.log gauges of each partition: 4 metrics a partition.
    let metrics = desc["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 12, "{desc}");
    assert_eq!(
        metrics[1],
        json!({"group": "kafka.log", "name": "log-end-offset",
               "tags": {"partition": "0", "topic": "orders"}, "value": 0.0})
    );

    let desc = ok(&["--dir", &d, "topics", "describe", "orders"]);
    assert!(desc.contains("retention.ms=60000"), "{desc}");
    assert!(
        desc.contains("kafka.log:num-log-segments:{partition=2, topic=orders} : 1"),
        "{desc}"
    );
    assert_eq!(
        desc.lines()
            .filter(|l| l.starts_with(['0', '1', '2']))
            .count(),
        3,
        "{desc}"
    );

    ok(&[
        "--dir",
        &d,
        "topics",
        "alter",
        "orders",
        "--config",
        "retention.ms=5000",
    ]);
    let desc = ok(&["--dir", &d, "topics", "describe", "orders"]);
    assert!(desc.contains("retention.ms=5000"), "{desc}");

    assert_eq!(
        ok_json(&[
            "--dir",
            &d,
            "topics",
            "alter",
            "orders",
            "--config",
            "retention.ms=7000"
        ]),
        json!({"altered": "orders", "config": {"retention.ms": "7000"}})
    );
    assert_eq!(
        ok_json(&["--dir", &d, "topics", "add-partitions", "orders", "5"]),
        json!({"topic": "orders", "partitions": 5})
    );
    assert_eq!(
        ok_json(&["--dir", &d, "topics", "list"])[0]["partitions"],
        5
    );
    assert_eq!(
        ok_json(&[
            "--dir",
            &d,
            "topics",
            "create",
            "other",
            "--partitions",
            "2"
        ]),
        json!({"created": "other", "partitions": 2})
    );
    assert_eq!(
        ok_json(&["--dir", &d, "topics", "delete", "other"]),
        json!({"deleted": "other"})
    );

    // A bad config value is a failed operation (1) naming the key.
    let o = run(&[
        "--dir",
        &d,
        "topics",
        "alter",
        "orders",
        "--config",
        "retention.ms=soon",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("embroker: "), "{}", stderr(&o));
    assert!(stderr(&o).contains("retention.ms"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    ok(&["--dir", &d, "topics", "delete", "orders"]);
    assert_eq!(ok_json(&["--dir", &d, "topics", "list"]), json!([]));
    let o = run(&["--dir", &d, "topics", "describe", "orders"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn produce_consume_round_trip_with_keys_and_format() {
    let (_tmp, d) = data_dir_with_records();
    let out = ok(&[
        "--dir",
        &d,
        "consume",
        "t",
        "--from-beginning",
        "--format",
        "%k|%s|%p|%o\\n",
    ]);
    assert_eq!(out, "k1|v1|0|0\nk2|v2|0|1\nk3|v:3|0|2\n|nokey|0|3\n");

    // The default format is the value and a newline; --max-messages stops early.
    let out = ok(&[
        "--dir",
        &d,
        "consume",
        "t",
        "--from-beginning",
        "--max-messages",
        "2",
    ]);
    assert_eq!(out, "v1\nv2\n");

    // --offset on a partition; JSON lines for scripts.
    let out = ok(&[
        "--dir",
        &d,
        "--json",
        "consume",
        "t",
        "--partition",
        "0",
        "--offset",
        "3",
    ]);
    let r = parse(&out);
    let ts = r["timestamp"].as_i64().expect("a timestamp");
    assert_eq!(
        r,
        json!({"topic": "t", "partition": 0, "offset": 3, "timestamp": ts,
               "key": null, "value": "nokey", "headers": []})
    );

    // Without --from-beginning a consumer starts at the end: nothing to print.
    assert_eq!(ok(&["--dir", &d, "consume", "t"]), "");
}

#[test]
fn transactions_list_and_describe() {
    let tmp = tempfile::tempdir().unwrap();
    let d = dir_arg(tmp.path());
    {
        let broker = Broker::open(tmp.path()).unwrap();
        broker
            .create_topic("t", embroker::TopicConfig::default())
            .unwrap();
        let p = broker
            .producer(
                embroker::ProducerConfig::default()
                    .acks(embroker::Acks::All)
                    .transactional_id("tx-1"),
            )
            .unwrap();
        p.init_transactions().unwrap();
        p.begin_transaction().unwrap();
        p.send(embroker::ProducerRecord::new("t", "v"))
            .unwrap()
            .wait()
            .unwrap();
        p.commit_transaction().unwrap();
        p.close().unwrap();
        broker.close().unwrap();
    }
    let list = ok(&["--dir", &d, "transactions", "list"]);
    assert!(
        list.contains("tx-1") && list.contains("CompleteCommit"),
        "{list}"
    );
    let json = ok_json(&["--dir", &d, "transactions", "describe", "tx-1"]);
    assert_eq!(json["state"], "CompleteCommit");
    // Transaction version 2: each end bumps the epoch (KIP-890).
    assert_eq!(json["producer_epoch"], 1);
    let o = run(&["--dir", &d, "transactions", "describe", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
}

#[test]
fn groups_describe_and_reset_after_consume_with_group() {
    let (_tmp, d) = data_dir_with_records();
    let out = ok(&[
        "--dir",
        &d,
        "consume",
        "t",
        "--group",
        "billing",
        "--from-beginning",
        "--max-messages",
        "3",
    ]);
    assert_eq!(out.lines().count(), 3);

    let list = ok(&["--dir", &d, "groups", "list"]);
    assert!(list.contains("billing"), "{list}");
    let list = ok_json(&["--dir", &d, "groups", "list"]);
    assert_eq!(list[0]["group"], "billing");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    let desc = ok(&["--dir", &d, "groups", "describe", "billing"]);
    let row: Vec<&str> = desc
        .lines()
        .find(|l| l.starts_with("t "))
        .unwrap_or_else(|| panic!("no row for t: {desc}"))
        .split_whitespace()
        .collect();
    // TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID
    assert_eq!(row, ["t", "0", "3", "4", "1", "-"], "{desc}");

    // The group's metrics: its lag (end 4, committed 3) in Kafka's print-metrics form.
    assert!(
        desc.contains("consumer-group-metrics:records-lag-max:{group=billing} : 1"),
        "{desc}"
    );
    let json_desc = ok_json(&["--dir", &d, "groups", "describe", "billing"]);
    let lag_max = json_desc["metrics"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == "records-lag-max"))
        .unwrap_or_else(|| panic!("no records-lag-max: {json_desc}"));
    assert_eq!(lag_max["group"], "consumer-group-metrics");
    assert_eq!(lag_max["tags"], json!({"group": "billing"}));
    assert_eq!(lag_max["value"], 1.0);

    // The next run of the group starts where the last one committed.
    assert_eq!(
        ok(&["--dir", &d, "consume", "t", "--group", "billing"]),
        "nokey\n"
    );

    let out = ok(&[
        "--dir",
        &d,
        "groups",
        "reset-offsets",
        "billing",
        "--topic",
        "t",
        "--partition",
        "0",
        "--to-offset",
        "1",
    ]);
    assert!(out.contains("billing  t      0          1"), "{out}");
    let desc = ok_json(&["--dir", &d, "groups", "describe", "billing"]);
    assert_eq!(desc["group"], "billing");
    assert_eq!(desc["members"], json!([]));
    assert_eq!(
        desc["offsets"][0],
        json!({"topic": "t", "partition": 0, "committed": 1, "end_offset": 4, "lag": 3,
               "member_id": null})
    );

    ok(&[
        "--dir",
        &d,
        "groups",
        "reset-offsets",
        "billing",
        "--topic",
        "t",
        "--to-earliest",
    ]);
    let desc = ok_json(&["--dir", &d, "groups", "describe", "billing"]);
    assert_eq!(desc["offsets"][0]["committed"], 0);
    assert_eq!(
        ok_json(&[
            "--dir",
            &d,
            "groups",
            "reset-offsets",
            "billing",
            "--topic",
            "t",
            "--partition",
            "0",
            "--to-latest",
        ]),
        json!({"group": "billing", "offsets": [{"topic": "t", "partition": 0, "new_offset": 4}]})
    );
    ok(&[
        "--dir",
        &d,
        "groups",
        "reset-offsets",
        "billing",
        "--topic",
        "t",
        "--to-datetime",
        "2000-01-01T00:00:00.000Z",
    ]);

    assert_eq!(
        ok_json(&["--dir", &d, "groups", "delete", "billing"]),
        json!({"deleted": "billing"})
    );
    assert_eq!(ok_json(&["--dir", &d, "groups", "list"]), json!([]));
}

#[test]
fn dump_shows_batches_and_records() {
    let (_tmp, d) = data_dir_with_records();
    let log = segment_log(&d);
    let out = ok(&["dump", log.to_str().unwrap(), "--records"]);
    // The producer may split the four records into one batch or more.
    assert!(
        out.contains("position: 0 baseOffset: 0 lastOffset: "),
        "{out}"
    );
    assert!(out.contains("crc: ok"), "{out}");
    assert!(out.contains("offset: 2 timestamp:"), "{out}");
    assert!(out.contains("key: \"k3\" value: \"v:3\""), "{out}");
    assert!(out.contains("key: null value: \"nokey\""), "{out}");

    // Every header field, as Kafka's kafka-dump-log.sh names them.
    for field in [
        "crc32c: 0x",
        "magic: 2",
        "attributes: 0",
        "compresscodec: none",
        "timestampType: CreateTime",
        "isTransactional: false",
        "isControl: false",
        "producerId: -1",
        "producerEpoch: -1",
        "baseSequence: -1",
        "partitionLeaderEpoch: -1",
    ] {
        assert!(out.contains(field), "{field}: {out}");
    }

    // --json: the same fields, and records exactly (null told apart from text), in the
    // convention and in hex.
    let dumped = ok_json(&["dump", log.to_str().unwrap(), "--records"]);
    assert_eq!(dumped["size"], std::fs::metadata(&log).unwrap().len());
    let batches = dumped["batches"].as_array().unwrap();
    for b in batches {
        for (field, want) in [
            ("crc", json!("ok")),
            ("partition_leader_epoch", json!(-1)),
            ("magic", json!(2)),
            ("attributes", json!(0)),
            ("compression", json!("none")),
            ("timestamp_type", json!("CreateTime")),
            ("transactional", json!(false)),
            ("control", json!(false)),
            ("delete_horizon", Value::Null),
            ("producer_id", json!(-1)),
            ("producer_epoch", json!(-1)),
            ("base_sequence", json!(-1)),
        ] {
            assert_eq!(b[field], want, "{field}: {b}");
        }
        assert_eq!(b["size"], b["batch_length"].as_u64().unwrap() + 12, "{b}");
        assert!(
            b["crc32c"].is_u64() && b["last_offset_delta"].is_u64(),
            "{b}"
        );
    }
    let records: Vec<&Value> = batches
        .iter()
        .flat_map(|b| b["records"].as_array().unwrap())
        .collect();
    let fields = |r: &Value| {
        json!([
            r["offset"],
            r["key"],
            r["value"],
            r["headers"],
            r["key_hex"],
            r["value_hex"],
            r["headers_hex"]
        ])
    };
    let got: Vec<Value> = records.iter().map(|r| fields(r)).collect();
    assert_eq!(
        got,
        [
            json!([0, "k1", "v1", [], "6b31", "7631", []]),
            json!([1, "k2", "v2", [], "6b32", "7632", []]),
            json!([2, "k3", "v:3", [], "6b33", "763a33", []]),
            json!([3, null, "nokey", [], null, "6e6f6b6579", []]),
        ]
    );

    // A clean close keeps a segment this small's index in memory only (FORMAT.md §11); a
    // flush writes the files, the one the next open rebuilt.
    {
        let broker = embroker::Broker::open(Path::new(&d)).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        p.flush().unwrap();
        broker.close().unwrap();
    }
    let index = log.with_extension("timeindex");
    let out = ok(&["dump", index.to_str().unwrap()]);
    assert!(out.contains("offset: 3"), "{out}");
    let ts = records[3]["timestamp"].clone();
    assert_eq!(
        ok_json(&["dump", index.to_str().unwrap()]),
        json!({"entries": [{"timestamp": ts, "offset": 3}], "trailing_bytes": 0})
    );
    // The offset index: empty at this size (one entry per index.interval.bytes).
    assert_eq!(
        ok_json(&["dump", log.with_extension("index").to_str().unwrap()]),
        json!({"entries": [], "trailing_bytes": 0})
    );

    // A clean close keeps the points in the data directory's `recovery-points` (FORMAT.md
    // §8b); a partition's own `recovery-point` is what a flush writes. Without the former, an
    // open scans the log and its flush writes the latter at the log end.
    std::fs::remove_file(Path::new(&d).join("recovery-points")).unwrap();
    let broker = embroker::Broker::open(&d).unwrap();
    broker.flush().unwrap();
    broker.close().unwrap();
    let rp = Path::new(&d).join("t-0").join("recovery-point");
    let out = ok(&["dump", rp.to_str().unwrap()]);
    assert!(out.contains("offset: 4 segmentBase: 0"), "{out}");
    let rp = ok_json(&["dump", rp.to_str().unwrap()]);
    assert_eq!((&rp["offset"], &rp["segment_base"]), (&json!(4), &json!(0)));
    assert_eq!(rp["position"], dumped["size"]);
    assert_eq!(rp["max_timestamp"], ts);

    // DeleteRecords' log start (FORMAT.md §22).
    let broker = embroker::Broker::open(&d).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.delete_records(2).unwrap(), 2);
    broker.close().unwrap();
    let start = Path::new(&d).join("t-0").join("log-start-offset");
    let out = ok(&["dump", start.to_str().unwrap()]);
    assert!(out.contains("logStartOffset: 2"), "{out}");
    assert_eq!(
        ok_json(&["dump", start.to_str().unwrap()]),
        json!({"log_start_offset": 2})
    );
}

#[test]
fn dump_shows_producer_fields_and_transaction_markers() {
    use embroker::codec::{
        set_base_offset, BatchBuilder, ControlRecordType, EndTransactionMarker, ProducerFields,
    };
    let tmp = tempfile::tempdir().unwrap();
    let producer = ProducerFields {
        producer_id: 4242,
        producer_epoch: 3,
        base_sequence: 17,
    };
    let mut b = BatchBuilder::new();
    b.set_producer(producer);
    b.set_transactional(true);
    b.push(1_000, Some(b"k"), Some(b"v"), &[]).unwrap();
    let mut image = b.finish();
    let marker = EndTransactionMarker {
        kind: ControlRecordType::Commit,
        coordinator_epoch: 5,
    };
    let mut control = marker.encode_batch(producer, 1_001).unwrap();
    set_base_offset(&mut control, 1);
    image.extend_from_slice(&control);
    let log = tmp.path().join("00000000000000000000.log");
    std::fs::write(&log, &image).unwrap();

    let out = ok(&["dump", log.to_str().unwrap(), "--records"]);
    assert!(
        out.contains(
            "attributes: 16 compresscodec: none timestampType: CreateTime isTransactional: true \
             isControl: false producerId: 4242 producerEpoch: 3 baseSequence: 17"
        ),
        "{out}"
    );
    assert!(
        out.contains("attributes: 48 compresscodec: none timestampType: CreateTime isTransactional: true isControl: true producerId: 4242 producerEpoch: 3 baseSequence: -1"),
        "{out}"
    );
    assert!(
        out.contains("offset: 1 timestamp: 1001 key: 0x00000001 value: 0x000000000005 endTxnMarker: COMMIT coordinatorEpoch: 5"),
        "{out}"
    );
    let out = ok_json(&["dump", log.to_str().unwrap(), "--records"]);
    let (data, marker) = (&out["batches"][0], &out["batches"][1]);
    assert_eq!(
        json!([
            data["transactional"],
            data["control"],
            data["producer_id"],
            data["producer_epoch"],
            data["base_sequence"]
        ]),
        json!([true, false, 4242, 3, 17])
    );
    assert_eq!(
        json!([
            marker["transactional"],
            marker["control"],
            marker["base_sequence"]
        ]),
        json!([true, true, -1])
    );
    let r = &marker["records"][0];
    assert_eq!(
        r["control"],
        json!({"type": "COMMIT", "type_id": 1, "coordinator_epoch": 5})
    );
    // A control record's key and value are bytes that happen to be UTF-8 (NULs and a
    // one): JSON strings in the convention, with the exact bytes in hex beside.
    assert_eq!(r["key"], "\u{0}\u{0}\u{0}\u{1}");
    assert_eq!(r["key_hex"], "00000001");
    assert_eq!(r["value"], "\u{0}\u{0}\u{0}\u{0}\u{0}\u{5}");
    assert_eq!(r["value_hex"], "000000000005");
}

#[test]
fn verify_passes_a_good_directory_and_names_a_flipped_byte() {
    let (_tmp, d) = data_dir_with_records();
    let out = ok(&["verify", &d]);
    assert!(out.contains("0 problem(s)"), "{out}");

    let log = segment_log(&d);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[70] ^= 0x40;
    std::fs::write(&log, &bytes).unwrap();

    let o = run(&["verify", &d]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let problem = stdout(&o)
        .lines()
        .find(|l| l.starts_with("problem: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no problem line: {}", stdout(&o)));
    assert!(problem.contains(log.to_str().unwrap()), "{problem}");
    assert!(problem.contains("at byte 17"), "{problem}");
    assert!(problem.contains("CRC mismatch"), "{problem}");

    // dump shows the bad CRC too, and says so with exit 1.
    let o = run(&["dump", log.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("crc: bad"), "{}", stdout(&o));

    // verify read only: the file is as we left it.
    assert_eq!(std::fs::read(&log).unwrap(), bytes);
}

#[test]
fn a_locked_directory_is_reported_clearly() {
    let (_tmp, d) = data_dir_with_records();
    let broker = Broker::open(&d).unwrap();
    let o = run(&["--dir", &d, "topics", "list"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with("embroker: "), "{err}");
    assert!(err.contains("locked"), "{err}");
    assert!(err.contains(&d), "{err}");
    assert!(err.contains("waited 1000 ms"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Read-only commands take no lock.
    ok(&["verify", &d]);
    ok(&["dump", segment_log(&d).to_str().unwrap()]);
    broker.close().unwrap();
}

#[test]
fn a_missing_directory_is_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let d = dir_arg(&tmp.path().join("nope"));
    let o = run(&["--dir", &d, "topics", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no data directory"), "{}", stderr(&o));
    assert!(!Path::new(&d).exists());
}

/// `consume --follow` reads in sessions and does not hold the directory while it waits, so a
/// producer in another process can append, and the follower prints what it appended.
#[test]
fn follow_sees_records_produced_by_another_process() {
    let tmp = tempfile::tempdir().unwrap();
    let d = dir_arg(&tmp.path().join("data"));
    ok(&["--dir", &d, "topics", "create", "live"]);
    let mut follower = Command::new(BIN)
        .args([
            "--dir",
            &d,
            "consume",
            "live",
            "--follow",
            "--max-messages",
            "3",
        ])
        .args(["--format", "%o=%s\\n"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    for batch in [&b"one\ntwo\n"[..], b"three\n"] {
        // Generous: the follower may hold the lock for a moment on a loaded machine.
        let o = run_with_input(
            &["--dir", &d, "--lock-timeout", "10000", "produce", "live"],
            batch,
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while follower.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            follower.kill().unwrap();
            panic!("the follower did not stop after 3 records");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = follower.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "0=one\n1=two\n2=three\n");
}

/// `verify` also finds a torn tail and an index entry that points nowhere, and reports in
/// JSON for scripts; what open would quietly clean up (a stray `.tmp`) is only a warning.
#[test]
fn verify_finds_torn_tail_and_bad_index_entries() {
    let (_tmp, d) = data_dir_with_records();
    let stray = Path::new(&d).join("t-0").join("recovery-point.tmp");
    std::fs::write(&stray, b"x").unwrap();
    let o = run(&["--json", "verify", &d]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v = parse(&stdout(&o));
    assert_eq!(v["problems"], json!([]));
    assert_eq!(v["changed_while_verifying"], json!([]));
    assert!(v["files"].as_u64().unwrap() > 0, "{v}");
    let w = &v["warnings"][0];
    assert_eq!(w["file"], stray.to_str().unwrap());
    assert_eq!(w["position"], Value::Null);
    assert!(
        w["reason"]
            .as_str()
            .unwrap()
            .contains("stray temporary file"),
        "{v}"
    );

    let log = segment_log(&d);
    let len = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    // One offset-index entry: offset 1 at position 9999 (past the end of the log).
    let index = log.with_extension("index");
    std::fs::write(&index, [0, 0, 0, 1, 0, 0, 0x27, 0x0f]).unwrap();

    let o = run(&["--json", "verify", &d]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = parse(&stdout(&o));
    let problems = v["problems"].as_array().unwrap();
    let find = |text: &str| {
        problems
            .iter()
            .find(|p| p["reason"].as_str().unwrap().contains(text))
            .unwrap_or_else(|| panic!("no problem saying {text:?}: {v}"))
    };
    assert_eq!(find("torn batch")["file"], log.to_str().unwrap());
    let bad_entry = find("position 9999 is past the end of the log");
    assert_eq!(bad_entry["file"], index.to_str().unwrap());
    assert_eq!(bad_entry["position"], 0);
}

/// Topic `x.tmp` is legal in Kafka: its file in `topics/` is not a stray temporary file, while
/// a leftover `x~` (how topic files are written) is.
#[test]
fn verify_keeps_a_topic_named_like_a_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = dir_arg(tmp.path());
    {
        let broker = Broker::open(tmp.path()).unwrap();
        broker
            .create_topic("x.tmp", embroker::TopicConfig::default())
            .unwrap();
        broker.close().unwrap();
    }
    let out = ok(&["verify", &d]);
    assert!(!out.contains("stray temporary file"), "{out}");
    assert!(out.contains("0 problem(s)"), "{out}");

    std::fs::write(tmp.path().join("topics").join("x~"), b"partial").unwrap();
    let out = ok(&["verify", &d]);
    assert!(out.contains("stray temporary file"), "{out}");
}

/// What `Broker::open` refuses in a partition directory, verify reports as a problem naming
/// the file: a segment name that is not 20 digits of an appendable offset, or a symlink.
#[test]
fn verify_reports_segment_files_open_refuses() {
    for (name, link) in [
        ("09223372036854775807.log", false),
        ("0000000000000000100.log", false),
        ("00000000000000000001.x.log", false),
        ("00000000000000000100.log", true),
    ] {
        let (_tmp, d) = data_dir_with_records();
        let path = Path::new(&d).join("t-0").join(name);
        if link {
            std::os::unix::fs::symlink("/nonexistent/embroker", &path).unwrap();
        } else {
            std::fs::write(&path, b"").unwrap();
        }
        let o = run(&["verify", &d]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stdout(&o));
        assert!(
            stdout(&o)
                .lines()
                .any(|l| l.starts_with("problem: ") && l.contains(name)),
            "{name}: {}",
            stdout(&o)
        );
    }
}

#[test]
fn produce_compresses_and_consume_and_dump_read_compressed_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let d = dir_arg(&tmp.path().join("data"));
    ok(&["--dir", &d, "topics", "create", "t"]);
    let lines: String = (0..200)
        .map(|i| format!("k{i}:value number {i} of many\n"))
        .collect();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let o = run_with_input(
            &[
                "--dir",
                &d,
                "produce",
                "t",
                "--key-separator",
                ":",
                "--compression-type",
                codec,
            ],
            lines.as_bytes(),
        );
        assert_eq!(o.status.code(), Some(0), "{codec}: {}", stderr(&o));
    }
    let out = ok(&[
        "--dir",
        &d,
        "consume",
        "t",
        "--from-beginning",
        "--format",
        "%k=%s\\n",
    ]);
    let want: String = (0..200)
        .map(|i| format!("k{i}=value number {i} of many\n"))
        .collect();
    assert_eq!(out, want.repeat(4));
    let dumped = ok_json(&["dump", segment_log(&d).to_str().unwrap(), "--records"]);
    let batches = dumped["batches"].as_array().unwrap();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        assert!(
            batches.iter().any(|b| b["compression"] == codec),
            "{codec} missing from {dumped:.400}"
        );
    }
    assert!(
        batches
            .iter()
            .flat_map(|b| b["records"].as_array().unwrap())
            .any(|r| r["value"] == "value number 199 of many"),
        "{dumped:.400}"
    );
    let verified = run(&["--dir", &d, "verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    let o = run(&["--dir", &d, "produce", "t", "--compression-type", "brotli"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Binary keys, values and header values, null keys, null header values and tombstones go in
/// through `produce --json-input` and come out of `consume --json` and `dump --json` as the
/// same JSON values: UTF-8 as strings, other bytes as `{"base64": ...}`, null as null.
#[test]
fn json_carries_binary_bytes_nulls_and_tombstones() {
    let tmp = tempfile::tempdir().unwrap();
    let d = dir_arg(&tmp.path().join("data"));
    ok(&["--dir", &d, "topics", "create", "t", "--partitions", "2"]);
    let lines = [
        // Binary key and value, a binary and a null header value, a timestamp.
        json!({"key": {"base64": "AP+A"}, "value": {"base64": "//79"}, "timestamp": 1_700_000_000_123_i64,
               "headers": [{"key": "bin", "value": {"base64": "gA=="}},
                           {"key": "nul", "value": null},
                           {"key": "txt", "value": "a \"quoted\"\nline"}]}),
        // No key; text with characters JSON must escape.
        json!({"key": null, "value": "tab\tand \u{1} and é", "timestamp": 5}),
        // A tombstone (null value) with a key; an empty header value.
        json!({"key": "gone", "value": null, "timestamp": 6, "headers": [{"key": "e", "value": ""}]}),
        // Fields a consume --json line has are ignored; partition is the line's own.
        json!({"topic": "other", "offset": 42, "partition": 1, "value": "p1", "timestamp": 7}),
    ];
    let mut input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    input.push_str("\n  \n"); // blank lines are skipped
    let o = run_with_input(
        &[
            "--dir",
            &d,
            "--json",
            "produce",
            "t",
            "--json-input",
            "--partition",
            "0",
        ],
        input.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(parse(&stdout(&o)), json!({"topic": "t", "records": 4}));

    let out = ok(&["--dir", &d, "--json", "consume", "t", "--from-beginning"]);
    let got = parse_lines(&out);
    let want = [
        json!({"topic": "t", "partition": 0, "offset": 0, "timestamp": 1_700_000_000_123_i64,
               "key": {"base64": "AP+A"}, "value": {"base64": "//79"},
               "headers": [{"key": "bin", "value": {"base64": "gA=="}},
                           {"key": "nul", "value": null},
                           {"key": "txt", "value": "a \"quoted\"\nline"}]}),
        json!({"topic": "t", "partition": 0, "offset": 1, "timestamp": 5,
               "key": null, "value": "tab\tand \u{1} and é", "headers": []}),
        json!({"topic": "t", "partition": 0, "offset": 2, "timestamp": 6,
               "key": "gone", "value": null, "headers": [{"key": "e", "value": ""}]}),
        json!({"topic": "t", "partition": 1, "offset": 0, "timestamp": 7,
               "key": null, "value": "p1", "headers": []}),
    ];
    assert_eq!(got, want);

    // dump --json --records: the same values, and the exact bytes in hex beside them.
    let dumped = ok_json(&["dump", segment_log(&d).to_str().unwrap(), "--records"]);
    let records: Vec<Value> = dumped["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["records"].as_array().unwrap().clone())
        .collect();
    assert_eq!(records.len(), 3, "{dumped}");
    for (r, w) in records.iter().zip(&want) {
        for field in ["offset", "timestamp", "key", "value", "headers"] {
            assert_eq!(r[field], w[field], "{field}: {r}");
        }
    }
    assert_eq!(
        json!([
            records[0]["key_hex"],
            records[0]["value_hex"],
            records[0]["headers_hex"]
        ]),
        json!(["00ff80", "fffefd", [{"key": "bin", "value_hex": "80"},
                                    {"key": "nul", "value_hex": null},
                                    {"key": "txt", "value_hex": "61202271756f746564220a6c696e65"}]])
    );
    assert_eq!(records[2]["value_hex"], Value::Null);

    // consume --json output fed back to produce --json-input gives the same records.
    ok(&["--dir", &d, "topics", "create", "copy", "--partitions", "2"]);
    let o = run_with_input(
        &["--dir", &d, "produce", "copy", "--json-input"],
        out.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let copied = parse_lines(&ok(&[
        "--dir",
        &d,
        "--json",
        "consume",
        "copy",
        "--from-beginning",
    ]));
    let strip = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .map(|r| {
                json!([
                    r["partition"],
                    r["offset"],
                    r["timestamp"],
                    r["key"],
                    r["value"],
                    r["headers"]
                ])
            })
            .collect()
    };
    assert_eq!(strip(&copied), strip(&want));

    // A bad line stops produce with its line number; the lines before it were sent.
    let o = run_with_input(
        &["--dir", &d, "produce", "copy", "--json-input"],
        b"{\"value\": \"fine\"}\n{\"value\": 3}\n{\"value\": \"not reached\"}\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 2: value:"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("produced 1 record(s)"),
        "{}",
        stderr(&o)
    );
    // --json-input and --key-separator do not mix (usage error).
    let o = run(&[
        "--dir",
        &d,
        "produce",
        "copy",
        "--json-input",
        "--key-separator",
        ":",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// The top-level help states the JSON convention.
#[test]
fn help_states_the_json_convention() {
    let out = ok(&["--help"]);
    assert!(
        out.contains(r#"{"base64": "...."#) || out.contains(r#"{"base64": "..."}"#),
        "{out}"
    );
    let out = ok(&["produce", "--help"]);
    assert!(out.contains("--json-input"), "{out}");
}
