//! Issue #19: a Java client's `.properties` files load. The files below are what a Java
//! application ships: Kafka quickstart's `config/producer.properties` and
//! `config/consumer.properties` keys, and the client properties Spring Boot generates from
//! `spring.kafka.*` (serializers, SSL, SASL, retries, timeouts). Applied values are checked, the
//! ignored keys are listed (and logged once), and unknown keys fail with a suggestion.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use embroker::codec::Compression;
use embroker::{
    Acks, AssignmentStrategy, CleanupPolicy, ConsumerConfig, Error, OffsetReset, PartitionerChoice,
    ProducerConfig, TopicCompression, TopicConfig,
};

const PRODUCER: &str = r#"# Licensed to the Apache Software Foundation (ASF) ...
# see org.apache.kafka.clients.producer.ProducerConfig for more details

############################# Producer Basics #############################

# list of brokers used for bootstrapping knowledge about the rest of the cluster
# format: host1:port1,host2:port2 ...
bootstrap.servers=broker-1.internal:9093,broker-2.internal:9093

# specify the compression codec for all data generated: none, gzip, snappy, lz4, zstd
compression.type=lz4

# name of the partitioner class for partitioning records;
# The default uses "sticky" partitioning logic which spreads the load evenly between partitions
partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner

# the maximum amount of time the client will wait for the response of a request
request.timeout.ms=30000

# how long `KafkaProducer.send` and `KafkaProducer.partitionsFor` will block for
max.block.ms=10000

# the producer will wait for up to the given delay to allow other records to be sent so that the sends can be batched together
linger.ms=5

# the maximum size of a request in bytes
max.request.size=2097152

# the default batch size in bytes when batching multiple records sent to a partition
batch.size=32768

# the total bytes of memory the producer can use to buffer records waiting to be sent to the server
buffer.memory=67108864

############################# Spring Boot (spring.kafka.producer.*) #############################
client.id=orders-service-producer
acks=all
retries=2147483647
delivery.timeout.ms=120000
enable.idempotence=false
max.in.flight.requests.per.connection=5
key.serializer=org.apache.kafka.common.serialization.StringSerializer
value.serializer=org.springframework.kafka.support.serializer.JsonSerializer
client.dns.lookup=use_all_dns_ips
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
    username="orders" \
    password="s3cr\u00e9t";
ssl.truststore.location=/etc/kafka/secrets/kafka.client.truststore.jks
ssl.truststore.password=changeit
ssl.endpoint.identification.algorithm=https
"#;

const CONSUMER: &str = r#"# see org.apache.kafka.clients.consumer.ConsumerConfig for more details

# list of brokers used for bootstrapping knowledge about the rest of the cluster
# format: host1:port1,host2:port2 ...
bootstrap.servers = localhost:9092

# consumer group id
group.id = test-consumer-group

# What to do when there is no initial offset in Kafka or if the current
# offset does not exist any more on the server: latest, earliest, none
auto.offset.reset = earliest

! Spring Boot (spring.kafka.consumer.*)
client.id : billing-consumer
enable.auto.commit : false
max.poll.records : 200
session.timeout.ms : 45000
heartbeat.interval.ms : 3000
fetch.min.bytes : 1
fetch.max.wait.ms : 500
partition.assignment.strategy : org.apache.kafka.clients.consumer.CooperativeStickyAssignor
isolation.level : read_uncommitted
key.deserializer : org.apache.kafka.common.serialization.StringDeserializer
value.deserializer : org.apache.kafka.common.serialization.ByteArrayDeserializer
security.protocol : SSL
ssl.keystore.location : /etc/kafka/secrets/kafka.client.keystore.jks
ssl.keystore.password : changeit
ssl.key.password : changeit
default.api.timeout.ms : 60000
"#;

const TOPIC: &str = "\
# kafka-configs --alter --entity-type topics --entity-name orders --add-config ...
cleanup.policy=compact,delete
retention.ms=604800000
segment.bytes=16777216
min.cleanable.dirty.ratio=0.1
delete.retention.ms=86400000
compression.type=zstd
min.insync.replicas=2
unclean.leader.election.enable=false
message.timestamp.type=LogAppendTime
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Captures log lines, to see that ignored keys are logged once per load.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

fn logs() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).unwrap();
        log::set_max_level(log::LevelFilter::Info);
        capture
    })
}

fn logged_lines_mentioning(needle: &str) -> Vec<String> {
    logs()
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

#[test]
fn java_producer_properties_load() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "producer.properties", PRODUCER);
    let c = ProducerConfig::from_file(&path).unwrap();
    assert_eq!(c.acks, Acks::All);
    assert_eq!(c.linger_ms, 5);
    assert_eq!(c.batch_size, 32768);
    assert_eq!(c.buffer_memory, 67_108_864);
    assert_eq!(c.max_block_ms, 10_000);
    assert_eq!(c.max_request_size, 2_097_152);
    assert_eq!(c.compression_type, Compression::Lz4);
    assert_eq!(c.partitioner, PartitionerChoice::RoundRobin);
    assert_eq!(c.client_id, "orders-service-producer");
    assert_eq!(c.enable_idempotence, Some(false));
    assert_eq!(
        c.ignored_keys(),
        [
            "bootstrap.servers",
            "request.timeout.ms",
            "retries",
            "delivery.timeout.ms",
            "max.in.flight.requests.per.connection",
            "key.serializer",
            "value.serializer",
            "client.dns.lookup",
            "security.protocol",
            "sasl.mechanism",
            "sasl.jaas.config",
            "ssl.truststore.location",
            "ssl.truststore.password",
            "ssl.endpoint.identification.algorithm",
        ]
    );
    let lines = logged_lines_mentioning("producer.properties");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("ignored 14 Kafka key(s)") && lines[0].contains("security.protocol"),
        "{}",
        lines[0]
    );
    // The ignored keys are provenance: the same settings in code compare equal.
    let typed = ProducerConfig::default()
        .acks(Acks::All)
        .linger_ms(5)
        .batch_size(32768)
        .buffer_memory(67_108_864)
        .max_block_ms(10_000)
        .max_request_size(2_097_152)
        .compression_type(Compression::Lz4)
        .partitioner(PartitionerChoice::RoundRobin)
        .client_id("orders-service-producer")
        .enable_idempotence(false);
    assert_eq!(c, typed);
    assert!(typed.ignored_keys().is_empty());
}

#[test]
fn java_consumer_properties_load() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "consumer.properties", CONSUMER);
    let c = ConsumerConfig::from_file(&path).unwrap();
    assert_eq!(c.group_id.as_deref(), Some("test-consumer-group"));
    assert_eq!(c.client_id, "billing-consumer");
    assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
    assert!(!c.enable_auto_commit);
    assert_eq!(c.max_poll_records, 200);
    assert_eq!(c.session_timeout_ms, 45_000);
    assert_eq!(c.fetch_min_bytes, 1);
    assert_eq!(c.fetch_max_wait_ms, 500);
    assert_eq!(
        c.partition_assignment_strategy,
        [AssignmentStrategy::CooperativeSticky]
    );
    assert_eq!(
        c.ignored_keys(),
        [
            "bootstrap.servers",
            "heartbeat.interval.ms",
            "key.deserializer",
            "value.deserializer",
            "security.protocol",
            "ssl.keystore.location",
            "ssl.keystore.password",
            "ssl.key.password",
            "default.api.timeout.ms",
        ]
    );
    let lines = logged_lines_mentioning("consumer.properties");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("consumer config from"), "{}", lines[0]);
}

#[test]
fn topic_properties_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "orders.properties", TOPIC);
    let c = TopicConfig::from_file(&path).unwrap();
    assert_eq!(c.cleanup_policy, CleanupPolicy::CompactDelete);
    assert_eq!(c.retention_ms, 604_800_000);
    assert_eq!(c.segment_bytes, 16_777_216);
    assert_eq!(c.min_cleanable_dirty_ratio, 0.1);
    assert_eq!(
        c.compression_type,
        TopicCompression::Codec(Compression::Zstd)
    );
    assert_eq!(
        c.ignored_keys(),
        ["min.insync.replicas", "unclean.leader.election.enable"]
    );
}

#[test]
fn librdkafka_aliases_are_accepted() {
    let p = ProducerConfig::from_properties(&[
        ("metadata.broker.list", "localhost:9092"),
        ("queue.buffering.max.ms", "20"),
        ("request.required.acks", "-1"),
        ("compression.codec", "snappy"),
        ("message.send.max.retries", "3"),
    ])
    .unwrap();
    assert_eq!(p.linger_ms, 20);
    assert_eq!(p.acks, Acks::All);
    assert_eq!(p.compression_type, Compression::Snappy);
    assert_eq!(
        p.ignored_keys(),
        ["metadata.broker.list", "message.send.max.retries"]
    );
    let c = ConsumerConfig::from_properties(&[
        ("auto.commit.enable", "false"),
        ("fetch.message.max.bytes", "4096"),
        ("fetch.wait.max.ms", "100"),
        ("auto.offset.reset", "largest"),
    ])
    .unwrap();
    assert!(!c.enable_auto_commit);
    assert_eq!(c.max_partition_fetch_bytes, 4096);
    assert_eq!(c.fetch_max_wait_ms, 100);
    assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
    // A bad value under an alias names the key as written.
    let e = ProducerConfig::from_properties(&[("queue.buffering.max.ms", "soon")]).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig { key, .. } if key == "queue.buffering.max.ms"),
        "{e}"
    );
    assert!(e.to_string().contains("linger.ms"), "{e}");
}

#[test]
fn unknown_keys_suggest_the_closest_known_key() {
    for (key, near) in [
        ("lingerms", "linger.ms"),
        ("bootstrap.server", "bootstrap.servers"),
    ] {
        let e = ProducerConfig::from_properties(&[(key, "5")]).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidConfig { key: k, .. } if k == key),
            "{e}"
        );
        let text = e.to_string();
        assert!(text.contains(&format!("did you mean {near}?")), "{text}");
        assert!(
            !text.contains("KEYS") && !text.contains("Config::"),
            "{text}"
        );
    }
    let e = ConsumerConfig::from_properties(&[("group.idd", "g")]).unwrap_err();
    assert!(e.to_string().contains("did you mean group.id?"), "{e}");
    let e = TopicConfig::from_properties(&[("retention.mss", "1")]).unwrap_err();
    assert!(e.to_string().contains("did you mean retention.ms?"), "{e}");
    // Nothing close: no suggestion, still the user's key.
    let e = ProducerConfig::from_properties(&[("spring.json.trusted.packages", "*")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid config spring.json.trusted.packages=\"*\": not a producer config key Kafka defines"
    );
}

#[test]
fn file_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.properties",
        "# header\nacks=all\nlinger.mss=5\n",
    );
    let text = ProducerConfig::from_file(&path).unwrap_err().to_string();
    assert!(text.contains("did you mean linger.ms?"), "{text}");
    assert!(text.contains("bad.properties line 3"), "{text}");
    let path = write(
        dir.path(),
        "escape.properties",
        "acks=all\nclient.id=\\u12\n",
    );
    let e = ProducerConfig::from_file(&path).unwrap_err();
    assert!(matches!(&e, Error::ConfigFile { line: 2, .. }), "{e}");
    assert!(e.to_string().contains("escape.properties line 2"), "{e}");
    let e = ConsumerConfig::from_file(dir.path().join("absent.properties")).unwrap_err();
    assert!(matches!(&e, Error::Io { .. }), "{e}");
}

#[test]
fn a_transactional_id_is_applied_and_needs_acks_all() {
    let c = ProducerConfig::from_properties(&[("transactional.id", "")]).unwrap();
    assert_eq!(c.transactional_id, None);
    assert!(c.ignored_keys().is_empty());
    let e = ProducerConfig::from_properties(&[("transactional.id", "tx-1")]).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig { key, .. } if key == "transactional.id"),
        "{e}"
    );
    let c =
        ProducerConfig::from_properties(&[("transactional.id", "tx-1"), ("acks", "all")]).unwrap();
    assert_eq!(c.transactional_id.as_deref(), Some("tx-1"));
}
