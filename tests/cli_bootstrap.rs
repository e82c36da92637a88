//! Issue #18, live inspection: `embroker --bootstrap HOST:PORT` reads a running application's
//! broker through Kafka's wire protocol, the way `kafka-topics.sh`, `kafka-consumer-groups.sh`
//! and `kafka-console-consumer.sh` read a live Kafka. The application here is this test: it
//! serves its in-process broker, writes through its own producer (keys, headers, null values,
//! binary bytes, a compressed topic), and the built tool must show the same records and
//! offsets as the in-process API, JSON parsed and compared value by value.
#![cfg(all(feature = "cli", feature = "server"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use embroker::{
    codec::Compression, Broker, ConsumerConfig, OffsetAndMetadata, OffsetReset, ProducerConfig,
    ProducerRecord, TopicCompression, TopicConfig, TopicPartition,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_embroker");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the embroker binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "embroker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn topics_and_consume_through_a_live_server() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("plain", TopicConfig::default().partitions(3))
        .unwrap();
    broker
        .create_topic(
            "squeezed",
            TopicConfig::default().compression_type(TopicCompression::Codec(Compression::Zstd)),
        )
        .unwrap();
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for i in 0..30u32 {
        let mut r = ProducerRecord::new("plain", format!("value {i}"))
            .key(format!("key {i}"))
            .partition((i % 3) as i32);
        if i % 5 == 0 {
            r = r.header("trace", vec![0xff, 0x00, i as u8]);
        }
        producer.send(r).unwrap().wait().unwrap();
    }
    producer
        .send(ProducerRecord::tombstone("squeezed", "gone"))
        .unwrap()
        .wait()
        .unwrap();
    producer
        .send(ProducerRecord::new("squeezed", vec![0xc3u8, 0x28]).key("binary"))
        .unwrap()
        .wait()
        .unwrap();
    producer.flush().unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let b = server.bootstrap();

    // topics list / describe agree with the in-process view.
    let list: Value =
        serde_json::from_str(ok(&["--bootstrap", &b, "--json", "topics", "list"]).trim()).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["plain", "squeezed"]);
    let d: Value = serde_json::from_str(
        ok(&["--bootstrap", &b, "--json", "topics", "describe", "plain"]).trim(),
    )
    .unwrap();
    let local = broker.describe_topic("plain").unwrap();
    for (p, remote) in local
        .partitions
        .iter()
        .zip(d["partitions"].as_array().unwrap())
    {
        assert_eq!(remote["log_end_offset"], p.log_end_offset);
        assert_eq!(remote["log_start_offset"], p.log_start_offset);
        assert_eq!(remote["last_stable_offset"], p.last_stable_offset);
    }

    // consume: every record, field by field, as the in-process partition holds it.
    let records = json_lines(&ok(&[
        "--bootstrap",
        &b,
        "--json",
        "consume",
        "plain",
        "--from-beginning",
    ]));
    assert_eq!(records.len(), 30);
    for r in &records {
        let p = r["partition"].as_i64().unwrap() as i32;
        let offset = r["offset"].as_i64().unwrap();
        let stored = broker
            .topic("plain")
            .unwrap()
            .partition(p)
            .unwrap()
            .read(offset, 1)
            .unwrap()
            .iter()
            .find(|s| s.offset == offset)
            .unwrap();
        assert_eq!(
            r["key"],
            std::str::from_utf8(stored.key.as_deref().unwrap()).unwrap()
        );
        assert_eq!(
            r["value"],
            std::str::from_utf8(stored.value.as_deref().unwrap()).unwrap()
        );
        assert_eq!(r["timestamp"], stored.timestamp);
        assert_eq!(r["headers"].as_array().unwrap().len(), stored.headers.len());
        if let Some(h) = stored.headers.first() {
            // Not UTF-8: base64 with its marker field.
            assert!(r["headers"][0]["value"]["base64"].is_string(), "{r}");
            assert_eq!(r["headers"][0]["key"], h.key.as_str());
        }
    }
    // A compressed topic (stored compressed, fetched as stored), a null value and bytes that
    // are not UTF-8.
    let squeezed = json_lines(&ok(&[
        "--bootstrap",
        &b,
        "--json",
        "consume",
        "squeezed",
        "--from-beginning",
    ]));
    assert_eq!(squeezed.len(), 2);
    assert_eq!(squeezed[0]["key"], "gone");
    assert!(squeezed[0]["value"].is_null());
    assert!(squeezed[1]["value"]["base64"].is_string());

    // --partition, --offset and --max-messages.
    let some = json_lines(&ok(&[
        "--bootstrap",
        &b,
        "--json",
        "consume",
        "plain",
        "--partition",
        "1",
        "--offset",
        "-3",
        "--max-messages",
        "2",
    ]));
    assert_eq!(some.len(), 2);
    assert!(some.iter().all(|r| r["partition"] == 1));
    assert_eq!(some[0]["offset"], 7);

    // groups list / describe: an in-process group's commits and lag, through OffsetFetch.
    let mut consumer = broker
        .consumer(
            ConsumerConfig::default()
                .group_id("billing")
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    consumer.assign(&[TopicPartition::new("plain", 0)]).unwrap();
    let mut seen = 0;
    while seen < 4 {
        let records = consumer.poll(Duration::from_secs(5)).unwrap();
        seen += records.count();
    }
    let mut commit = BTreeMap::new();
    commit.insert(TopicPartition::new("plain", 0), OffsetAndMetadata::new(4));
    consumer.commit_offsets_sync(&commit).unwrap();
    drop(consumer);
    let groups: Value =
        serde_json::from_str(ok(&["--bootstrap", &b, "--json", "groups", "list"]).trim()).unwrap();
    assert!(groups
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["group"] == "billing"));
    let g: Value = serde_json::from_str(
        ok(&["--bootstrap", &b, "--json", "groups", "describe", "billing"]).trim(),
    )
    .unwrap();
    let offsets = g["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 1, "{g}");
    assert_eq!(offsets[0]["committed"], 4);
    assert_eq!(offsets[0]["end_offset"], 10);
    assert_eq!(offsets[0]["lag"], 6);
    let local = broker.describe_group("billing").unwrap();
    assert_eq!(local.offsets[0].lag, Some(6));

    // Verbs that change a directory are refused over the wire, with a reason.
    let out = run(&["--bootstrap", &b, "topics", "delete", "plain"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bootstrap"));
    assert!(broker.topics().contains(&"plain".to_string()));

    // A server that is not there: an error naming the address, not a hang.
    drop(server);
    let out = run(&["--bootstrap", &b, "topics", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&b));
}
