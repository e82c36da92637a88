//! The `embroker` command-line tool, driven as a user drives it: the built binary run with
//! `std::process::Command`, input through a pipe, output and exit codes checked.
#![cfg(feature = "cli")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use embroker::Broker;

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
    let json = ok(&["--dir", &d, "--json", "topics", "list"]);
    assert_eq!(
        json.trim(),
        r#"[{"name":"orders","partitions":3,"error":null}]"#
    );

    let desc = ok(&["--dir", &d, "topics", "describe", "orders"]);
    assert!(desc.contains("retention.ms=60000"), "{desc}");
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

    ok(&["--dir", &d, "topics", "add-partitions", "orders", "5"]);
    let json = ok(&["--dir", &d, "--json", "topics", "list"]);
    assert!(json.contains(r#""partitions":5"#), "{json}");

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
    let list = ok(&["--dir", &d, "--json", "topics", "list"]);
    assert_eq!(list.trim(), "[]");
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
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(r#"{"topic":"t","partition":0,"offset":3,"timestamp":"#),
        "{out}"
    );
    assert!(
        out.trim_end()
            .ends_with(r#","key":null,"value":"nokey","headers":[]}"#),
        "{out}"
    );

    // Without --from-beginning a consumer starts at the end: nothing to print.
    assert_eq!(ok(&["--dir", &d, "consume", "t"]), "");
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

    let desc = ok(&["--dir", &d, "groups", "describe", "billing"]);
    let row: Vec<&str> = desc
        .lines()
        .find(|l| l.starts_with("t "))
        .unwrap_or_else(|| panic!("no row for t: {desc}"))
        .split_whitespace()
        .collect();
    // TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID
    assert_eq!(row, ["t", "0", "3", "4", "1", "-"], "{desc}");

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
    let json = ok(&["--dir", &d, "--json", "groups", "describe", "billing"]);
    assert!(
        json.contains(r#""partition":0,"committed":1,"end_offset":4,"lag":3"#),
        "{json}"
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
    let json = ok(&["--dir", &d, "--json", "groups", "describe", "billing"]);
    assert!(json.contains(r#""partition":0,"committed":0"#), "{json}");
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

    ok(&["--dir", &d, "groups", "delete", "billing"]);
    let list = ok(&["--dir", &d, "--json", "groups", "list"]);
    assert_eq!(list.trim(), "[]");
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

    // --json: the same fields, and records exactly (hex, null told apart from text).
    let out = ok(&["--json", "dump", log.to_str().unwrap(), "--records"]);
    for field in [
        "\"crc\":\"ok\"",
        "\"batch_length\":",
        "\"partition_leader_epoch\":-1",
        "\"magic\":2",
        "\"crc32c\":",
        "\"attributes\":0",
        "\"compression\":\"none\"",
        "\"timestamp_type\":\"CreateTime\"",
        "\"transactional\":false",
        "\"control\":false",
        "\"delete_horizon\":null",
        "\"last_offset_delta\":",
        "\"producer_id\":-1",
        "\"producer_epoch\":-1",
        "\"base_sequence\":-1",
        // k3 -> v:3, and the keyless record.
        "\"key_hex\":\"6b33\",\"value_hex\":\"763a33\",\"headers_hex\":[]",
        "\"key_hex\":null,\"value_hex\":\"6e6f6b6579\"",
    ] {
        assert!(out.contains(field), "{field}: {out}");
    }

    let index = log.with_extension("timeindex");
    let out = ok(&["dump", index.to_str().unwrap()]);
    assert!(out.contains("offset: 3"), "{out}");

    let rp = Path::new(&d).join("t-0").join("recovery-point");
    let out = ok(&["dump", rp.to_str().unwrap()]);
    assert!(out.contains("offset: 4 segmentBase: 0"), "{out}");
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
    let out = ok(&["--json", "dump", log.to_str().unwrap(), "--records"]);
    assert!(
        out.contains("\"transactional\":true,\"control\":true"),
        "{out}"
    );
    assert!(
        out.contains("\"control\":{\"type\":\"COMMIT\",\"type_id\":1,\"coordinator_epoch\":5}"),
        "{out}"
    );
    assert!(
        out.contains("\"producer_id\":4242,\"producer_epoch\":3,\"base_sequence\":17"),
        "{out}"
    );
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
    assert!(stdout(&o).contains(r#""problems":[]"#), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("stray temporary file"),
        "{}",
        stdout(&o)
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
    let out = stdout(&o);
    assert!(out.contains("torn batch"), "{out}");
    assert!(
        out.contains("position 9999 is past the end of the log"),
        "{out}"
    );
    assert!(
        out.contains(r#"00000000000000000000.index","position":0"#),
        "{out}"
    );
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
    let dumped = ok(&[
        "--json",
        "dump",
        segment_log(&d).to_str().unwrap(),
        "--records",
    ]);
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        assert!(
            dumped.contains(&format!("\"compression\":\"{codec}\"")),
            "{codec} missing from {dumped:.400}"
        );
    }
    assert!(dumped.contains("value number 199 of many"), "{dumped:.400}");
    let verified = run(&["--dir", &d, "verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    let o = run(&["--dir", &d, "produce", "t", "--compression-type", "brotli"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
