//! Topic administration through the public API: Kafka's naming rules, config keys, the
//! directory lock, partition increases, config changes, deletion. Bad input must give a clear
//! error and leave nothing on disk.

mod common;

use common::file_names;

use embroker::{Broker, CleanupPolicy, Error, Record, TopicConfig};

#[test]
fn bad_topic_names_say_which_rule_and_create_nothing() {
    // A persistent broker: a temporary one has no `topics/` to check.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let before = file_names(broker.path());
    let long = "x".repeat(250);
    for (name, rule) in [
        ("../etc", "only ASCII letters"),
        ("", "must not be empty"),
        (long.as_str(), "at most 249"),
        ("nul\0byte", "only ASCII letters"),
        ("a/b", "only ASCII letters"),
        (".", "'.' or '..'"),
        ("..", "'.' or '..'"),
        ("__internal", "reserved for internal topics"),
    ] {
        let e = broker
            .create_topic(name, TopicConfig::default())
            .unwrap_err();
        assert!(matches!(e, Error::InvalidTopicName { .. }), "{name:?}: {e}");
        assert!(e.to_string().contains(rule), "{name:?}: {e}");
    }
    assert_eq!(file_names(broker.path()), before);
    assert_eq!(
        file_names(&broker.path().join("topics")),
        Vec::<String>::new()
    );
    // Kafka's '.'/'_' collision rule.
    broker
        .create_topic("foo.bar", TopicConfig::default())
        .unwrap();
    let e = broker
        .create_topic("foo_bar", TopicConfig::default())
        .unwrap_err();
    assert!(e.to_string().contains("collides"), "{e}");
    let e = broker
        .create_topic("foo.bar", TopicConfig::default())
        .unwrap_err();
    assert!(matches!(e, Error::TopicExists { .. }), "{e}");
}

#[test]
fn bad_configs_name_the_key_and_create_nothing() {
    let broker = Broker::temporary().unwrap();
    let e = TopicConfig::from_properties(&[("retention.ms", "soon")]).unwrap_err();
    assert!(e.to_string().contains("retention.ms"), "{e}");
    let e = TopicConfig::from_properties(&[("segment.bytez", "1")]).unwrap_err();
    assert!(e.to_string().contains("segment.bytez"), "{e}");
    let e = broker
        .create_topic("t", TopicConfig::default().partitions(0))
        .unwrap_err();
    assert!(e.to_string().contains("num.partitions"), "{e}");
    let e = broker
        .create_topic("t", TopicConfig::default().retention_bytes(-5))
        .unwrap_err();
    assert!(e.to_string().contains("retention.bytes"), "{e}");
    assert!(!broker.path().join("t-0").exists());
    assert!(broker.topics().is_empty());
}

#[test]
fn second_open_of_a_directory_fails_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = Broker::open(dir.path()).unwrap();
    let e = Broker::open(dir.path()).unwrap_err();
    assert!(matches!(e, Error::DirectoryLocked { .. }), "{e}");
    assert!(
        e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );
    first.close().unwrap();
    Broker::open(dir.path()).unwrap();
}

#[test]
fn partitions_only_grow_and_configs_persist_and_alter() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic(
                "t",
                TopicConfig::default().partitions(2).retention_ms(60_000),
            )
            .unwrap();
        let e = broker.create_partitions("t", 2).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidPartitionCount {
                    current: 2,
                    requested: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(broker.create_partitions("t", 1).is_err());
        broker.create_partitions("t", 5).unwrap();
        assert_eq!(broker.topic("t").unwrap().partition_count(), 5);
        broker
            .topic("t")
            .unwrap()
            .partition(4)
            .unwrap()
            .append(&[Record::new("x")])
            .unwrap();
        let e = broker.topic("t").unwrap().partition(5).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnknownPartition {
                    partition: 5,
                    partitions: 5,
                    ..
                }
            ),
            "{e}"
        );
        assert!(broker.topic("t").unwrap().partition(-1).is_err());
        broker
            .alter_topic_config(
                "t",
                &[
                    ("retention.ms", "1234"),
                    ("cleanup.policy", "compact,delete"),
                ],
            )
            .unwrap();
        let e = broker
            .alter_topic_config("t", &[("retention.ms", "-7")])
            .unwrap_err();
        assert!(e.to_string().contains("retention.ms"), "{e}");
        let e = broker
            .alter_topic_config("t", &[("num.partitions", "9")])
            .unwrap_err();
        assert!(e.to_string().contains("num.partitions"), "{e}");
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    let d = broker.describe_topic("t").unwrap();
    assert_eq!(d.partitions.len(), 5);
    assert_eq!(d.config.retention_ms, 1234);
    assert_eq!(d.config.cleanup_policy, CleanupPolicy::CompactDelete);
    assert_eq!(d.partitions[4].log_end_offset, 1);
}

#[test]
fn delete_topic_removes_data_and_stale_handles_fail() {
    // A persistent broker, whose topic file must go too; a temporary one has none.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .create_topic("gone", TopicConfig::default().partitions(2))
        .unwrap();
    let p = broker.topic("gone").unwrap().partition(0).unwrap();
    p.append(&[Record::new("x")]).unwrap();
    broker.delete_topic("gone").unwrap();
    assert!(!broker.path().join("gone-0").exists());
    assert!(!broker.path().join("topics/gone").exists());
    assert!(matches!(
        broker.topic("gone").unwrap_err(),
        Error::UnknownTopic { .. }
    ));
    assert!(p.append(&[Record::new("y")]).is_err());
    assert!(matches!(
        broker.delete_topic("gone").unwrap_err(),
        Error::UnknownTopic { .. }
    ));
    // The name is free again, with fresh offsets.
    broker.create_topic("gone", TopicConfig::default()).unwrap();
    assert_eq!(
        broker
            .topic("gone")
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        0
    );
}

#[test]
fn auto_create_is_off_by_default_and_on_when_asked() {
    let broker = Broker::temporary().unwrap();
    assert!(matches!(
        broker.topic("nope").unwrap_err(),
        Error::UnknownTopic { .. }
    ));
    let broker = Broker::builder()
        .auto_create_topics(true)
        .default_topic_config(TopicConfig::default().partitions(3))
        .open_temporary()
        .unwrap();
    assert_eq!(broker.topic("yes").unwrap().partition_count(), 3);
    assert!(broker.topic("../bad").is_err());
}

#[test]
fn closed_broker_refuses_work_and_temporary_dir_goes_away() {
    let broker = Broker::temporary().unwrap();
    let path = broker.path().to_path_buf();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    broker.close().unwrap();
    broker.close().unwrap();
    assert!(matches!(
        broker.topic("t").unwrap_err(),
        Error::Closed { .. }
    ));
    assert!(p.append(&[Record::new("x")]).is_err());
    drop(p);
    drop(broker);
    assert!(
        !path.exists(),
        "temporary directory removed with the last handle"
    );
}

/// A `create_partitions` whose new partition cannot open removes only the new partitions'
/// directories: it used to number them from 0 and remove the topic's existing partitions'
/// directories (issue #20, found while batching partition creation).
#[test]
fn a_failed_create_partitions_keeps_the_existing_partitions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = embroker::Broker::open(dir.path()).unwrap();
        broker
            .create_topic("kept", embroker::TopicConfig::default().partitions(2))
            .unwrap();
        let p0 = broker.topic("kept").unwrap().partition(0).unwrap();
        p0.append(&[embroker::Record::new("stays")]).unwrap();
        // A file where partition 2's directory would go: that partition cannot open.
        std::fs::write(dir.path().join("kept-2"), b"not a directory").unwrap();
        assert!(broker.create_partitions("kept", 3).is_err());
        assert!(dir.path().join("kept-0").is_dir());
        assert!(dir.path().join("kept-1").is_dir());
        broker.close().unwrap();
    }
    let _ = std::fs::remove_file(dir.path().join("kept-2"));
    let broker = embroker::Broker::open(dir.path()).unwrap();
    let p0 = broker.topic("kept").unwrap().partition(0).unwrap();
    let read = p0.read(0, 1 << 20).unwrap();
    let values: Vec<_> = read.iter().map(|r| r.value.unwrap()).collect();
    assert_eq!(values, [bytes::Bytes::from_static(b"stays")]);
    assert_eq!(broker.topic("kept").unwrap().partition_count(), 2);
}
