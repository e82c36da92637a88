//! Kafka's wire protocol as an outside client sees it (feature `server`): every request is
//! encoded with the `kafka-protocol` crate at a chosen version, sent over TCP to
//! `Broker::serve`, and its response decoded the same way (`tests/wire/mod.rs`).
//!
//! The version sweep reads the table the server advertises in ApiVersions, so APIs added to
//! the server later are swept without a change here.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod wire;

use std::time::{Duration, Instant};

use bytes::Bytes;
use embroker::codec::{
    decode_batch, set_base_offset, BatchBuilder, Compression, CompressionCodec, ControlRecordType,
    EndTransactionMarker, ProducerFields,
};
use embroker::{
    Broker, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Server, ServerConfig,
    TopicConfig, TopicPartition,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wire::Conn;

const NONE: i16 = 0;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn setup(partitions: i32) -> (Broker, Server) {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    (broker, server)
}

fn api_versions(conn: &mut Conn, version: i16) -> ApiVersionsResponse {
    match conn.call(ApiKey::ApiVersions, version, ApiVersionsRequest::default()) {
        ResponseKind::ApiVersions(r) => r,
        other => panic!("{other:?}"),
    }
}

/// The advertised table: (key, min, max).
fn advertised(conn: &mut Conn) -> Vec<(ApiKey, i16, i16)> {
    let r = api_versions(conn, 3);
    assert_eq!(r.error_code, NONE);
    r.api_keys
        .iter()
        .map(|k| {
            (
                ApiKey::try_from(k.api_key).unwrap(),
                k.min_version,
                k.max_version,
            )
        })
        .collect()
}

/// A batch of `n` records (`prefix-i`), optionally compressed, with producer fields.
fn batch(
    n: usize,
    prefix: &str,
    producer: Option<ProducerFields>,
    transactional: bool,
    compression: Compression,
) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    if let Some(p) = producer {
        b.set_producer(p);
    }
    b.set_transactional(transactional);
    let now = 1_700_000_000_000i64;
    for i in 0..n {
        let key = format!("k{i}");
        let value = format!("{prefix}-{i}");
        b.push(
            now + i as i64,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &[],
        )
        .unwrap();
    }
    let plain = b.finish();
    if compression == Compression::None {
        return plain;
    }
    let decoded = decode_batch(&plain).unwrap();
    let mut out = Vec::new();
    embroker::codec::compress_batch(&decoded, CompressionCodec::new(compression), &mut out)
        .unwrap();
    out
}

fn produce_request(topic: &str, partition: i32, acks: i16, records: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])])
}

fn produce(conn: &mut Conn, version: i16, req: ProduceRequest) -> ProduceResponse {
    match conn.call(ApiKey::Produce, version, req) {
        ResponseKind::Produce(r) => r,
        other => panic!("{other:?}"),
    }
}

/// (error code, base offset) of the only partition of a produce response.
fn produced(r: &ProduceResponse) -> (i16, i64) {
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch_request(topic: &str, partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

fn fetch(conn: &mut Conn, version: i16, req: FetchRequest) -> FetchResponse {
    match conn.call(ApiKey::Fetch, version, req) {
        ResponseKind::Fetch(r) => r,
        other => panic!("{other:?}"),
    }
}

/// Every record value in a fetched partition's bytes (batches as stored; compressed ones are
/// inflated by embroker's codec to read them), with its offset.
fn values(records: &Bytes) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut rest: &[u8] = records;
    while !rest.is_empty() {
        let Ok(b) = decode_batch(rest) else { break }; // a partial batch at the end
        let len = b.header.total_bytes();
        let mut inflated = Vec::new();
        let plain = if b.header.is_compressed() {
            embroker::codec::inflate_batch(&b, &mut inflated).unwrap();
            decode_batch(&inflated).unwrap()
        } else {
            b
        };
        if !plain.header.is_control() {
            for r in plain.records() {
                out.push((
                    plain.header.base_offset + i64::from(r.offset_delta),
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                ));
            }
        }
        rest = &rest[len..];
    }
    out
}

fn list_offsets(conn: &mut Conn, version: i16, isolation: i8, timestamp: i64) -> (i16, i64, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let r: ListOffsetsResponse = match conn.call(ApiKey::ListOffsets, version, req) {
        ResponseKind::ListOffsets(r) => r,
        other => panic!("{other:?}"),
    };
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

fn metadata(conn: &mut Conn, version: i16, req: MetadataRequest) -> MetadataResponse {
    match conn.call(ApiKey::Metadata, version, req) {
        ResponseKind::Metadata(r) => r,
        other => panic!("{other:?}"),
    }
}

fn exists(broker: &Broker, topic: &str) -> bool {
    broker.topics().iter().any(|t| t == topic)
}

/// A Metadata request naming `names`; `allow` is sent from version 4 (earlier versions have
/// no such field and always allow: pass true for them).
fn named(names: &[&str], allow: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(allow)
}

// ---------------------------------------------------------------------------------------------
// ApiVersions and the version sweep
// ---------------------------------------------------------------------------------------------

#[test]
fn api_versions_at_every_version_and_a_too_new_one() {
    let (_broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    let table = advertised(&mut conn);
    let &(_, min, max) = table
        .iter()
        .find(|(k, _, _)| *k == ApiKey::ApiVersions)
        .expect("ApiVersions advertises itself");
    for v in min..=max {
        let r = api_versions(&mut conn, v);
        assert_eq!(r.error_code, NONE, "v{v}");
        assert_eq!(r.api_keys.len(), table.len(), "v{v}");
    }
    // A version newer than the server knows: UNSUPPORTED_VERSION, answered in version 0 with
    // the table, and the connection stays open.
    // kafka-protocol encodes no version past its own newest, so the newest one it knows is
    // encoded and its header's version raised (a newer client's body is unknown anyway).
    let too_new = max + 1;
    let request = RequestKind::ApiVersions(ApiVersionsRequest::default());
    let id = 4242;
    let mut frame = wire::request_frame(ApiKey::ApiVersions, max, id, &request);
    frame[6..8].copy_from_slice(&too_new.to_be_bytes());
    std::io::Write::write_all(&mut conn.stream, &frame).unwrap();
    let frame = conn.read_frame().expect("an answer, not a close");
    let (got, response) = wire::decode_response(ApiKey::ApiVersions, 0, frame);
    assert_eq!(got, id);
    let ResponseKind::ApiVersions(r) = response else {
        panic!()
    };
    assert_eq!(r.error_code, ResponseError::UnsupportedVersion.code());
    assert_eq!(r.api_keys.len(), table.len());
    assert_eq!(api_versions(&mut conn, 0).error_code, NONE);
}

/// A default-ish request of every advertised API at every advertised version gets a response
/// that decodes at that version (catches responses with a field set that the version lacks,
/// which `kafka-protocol` refuses to encode: the server would close the connection).
#[test]
fn every_advertised_api_answers_at_every_advertised_version() {
    let (broker, server) = setup(2);
    broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append_batches(&batch(3, "v", None, false, Compression::None))
        .unwrap();
    let table = advertised(&mut Conn::connect(server.local_addr()));
    let mut answered = 0;
    let mut closed = Vec::new();
    for &(key, min, max) in &table {
        // A connection per API: one API's state (a SASL handshake) must not reach another's.
        let mut conn = Conn::connect(server.local_addr());
        for version in min..=max {
            let Some(request) = sweep_request(key) else {
                panic!("{key:?}: no default request in this test");
            };
            if let RequestKind::Produce(p) = &request {
                assert_ne!(p.acks, 0);
            }
            let id = conn.send(key, version, &request);
            let Some(frame) = conn.read_frame() else {
                closed.push((key, version));
                conn = Conn::connect(server.local_addr());
                continue;
            };
            let (got, _response) = wire::decode_response(key, version, frame);
            assert_eq!(got, id, "{key:?} v{version}");
            answered += 1;
        }
    }
    // A default request that the server documents closing the connection on.
    let documented = |key: ApiKey| DOCUMENTED_CLOSES.contains(&key);
    let undocumented: Vec<_> = closed.iter().filter(|(k, _)| !documented(*k)).collect();
    assert!(
        undocumented.is_empty(),
        "the server closed the connection on advertised requests: {undocumented:?}"
    );
    assert!(answered >= 30, "only {answered} requests answered");
}

/// APIs whose default request (every field at its default) the server answers by closing the
/// connection, as Kafka does: a SASL token with no handshake before it.
const DOCUMENTED_CLOSES: &[ApiKey] = &[ApiKey::SaslAuthenticate];

/// The sweep's request for `key`: the default, with what a default lacks to be answered
/// (acks=1, a topic and partition, a group id).
fn sweep_request(key: ApiKey) -> Option<RequestKind> {
    Some(match key {
        ApiKey::Produce => RequestKind::Produce(produce_request(
            "t",
            0,
            1,
            batch(1, "s", None, false, Compression::None),
        )),
        ApiKey::Fetch => RequestKind::Fetch(fetch_request("t", 0, 0)),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(
            vec![ListOffsetsTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])],
        )),
        // allow_auto_topic_creation at its default (true), which every version can carry.
        ApiKey::Metadata => RequestKind::Metadata(named(&["t"], true)),
        other => wire::default_request(other)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

#[test]
fn metadata_all_topics_and_named_topics() {
    let broker = Broker::builder()
        .auto_create_topics(false)
        .open_temporary()
        .unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    broker
        .create_topic("u", TopicConfig::default().partitions(1))
        .unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut conn = Conn::connect(server.local_addr());
    for version in [0i16, 1, 4, 7, 9, 10, 12] {
        let all = if version == 0 {
            MetadataRequest::default().with_topics(Some(vec![]))
        } else {
            MetadataRequest::default().with_topics(None)
        };
        let r = metadata(&mut conn, version, all);
        assert_eq!(r.brokers.len(), 1, "v{version}");
        assert_eq!(r.brokers[0].port, i32::from(server.local_addr().port()));
        assert_eq!(r.brokers[0].host.as_str(), "127.0.0.1");
        let mut names: Vec<(String, usize)> = r
            .topics
            .iter()
            .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.partitions.len()))
            .filter(|(n, _)| !n.starts_with("__"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [("t".to_string(), 3), ("u".to_string(), 1)],
            "v{version}"
        );
        for t in &r.topics {
            for p in &t.partitions {
                assert_eq!(p.leader_id.0, r.brokers[0].node_id.0);
            }
        }
        // Named: one that exists and one that does not (no auto-creation by default).
        let r = metadata(&mut conn, version, named(&["u", "missing"], version < 4));
        assert_eq!(r.topics.len(), 2);
        assert_eq!(r.topics[0].error_code, NONE);
        assert_eq!(r.topics[0].partitions.len(), 1);
        assert_eq!(
            r.topics[1].error_code,
            ResponseError::UnknownTopicOrPartition.code(),
            "v{version}"
        );
    }
    // An empty list in version 1 and later asks for no topics.
    let r = metadata(
        &mut conn,
        1,
        MetadataRequest::default().with_topics(Some(vec![])),
    );
    assert!(r.topics.is_empty());
}

#[test]
fn metadata_auto_creates_topics_only_when_broker_and_client_allow() {
    // Broker setting on.
    let broker = Broker::builder()
        .auto_create_topics(true)
        .open_temporary()
        .unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut conn = Conn::connect(server.local_addr());
    // The client says no (version 4 and later carry allow_auto_topic_creation).
    let r = metadata(&mut conn, 9, named(&["no"], false));
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert!(!exists(&broker, "no"));
    // The client says yes.
    let r = metadata(&mut conn, 9, named(&["yes"], true));
    assert_eq!(r.topics[0].error_code, NONE);
    assert!(!r.topics[0].partitions.is_empty());
    assert!(exists(&broker, "yes"));
    // Versions before 4 always allow.
    let r = metadata(&mut conn, 3, named(&["old"], true));
    assert_eq!(r.topics[0].error_code, NONE);
    assert!(exists(&broker, "old"));
    // An invalid name is INVALID_TOPIC_EXCEPTION, not created.
    let r = metadata(&mut conn, 9, named(&["bad/name"], true));
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    drop(server);

    // Broker setting off: never created.
    let broker = Broker::builder()
        .auto_create_topics(false)
        .open_temporary()
        .unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut conn = Conn::connect(server.local_addr());
    for version in [1i16, 9, 12] {
        let r = metadata(&mut conn, version, named(&["nope"], true));
        assert_eq!(
            r.topics[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
    assert!(!exists(&broker, "nope"));
}

// ---------------------------------------------------------------------------------------------
// Produce
// ---------------------------------------------------------------------------------------------

#[test]
fn produce_with_each_acks_and_read_back() {
    let (broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    // acks=1 and acks=-1 answer with the base offset.
    let r = produce(
        &mut conn,
        9,
        produce_request("t", 0, 1, batch(2, "a", None, false, Compression::None)),
    );
    assert_eq!(produced(&r), (NONE, 0));
    let r = produce(
        &mut conn,
        11,
        produce_request("t", 0, -1, batch(3, "b", None, false, Compression::None)),
    );
    assert_eq!(produced(&r), (NONE, 2));
    // acks=0: no response at all; the next request's response comes next.
    let req = RequestKind::Produce(produce_request(
        "t",
        0,
        0,
        batch(1, "c", None, false, Compression::None),
    ));
    conn.send(ApiKey::Produce, 9, &req);
    let r = produce(
        &mut conn,
        9,
        produce_request("t", 0, 1, batch(1, "d", None, false, Compression::None)),
    );
    assert_eq!(produced(&r), (NONE, 6));
    // An invalid acks value.
    let r = produce(
        &mut conn,
        9,
        produce_request("t", 0, 2, batch(1, "e", None, false, Compression::None)),
    );
    assert_eq!(produced(&r).0, ResponseError::InvalidRequiredAcks.code());
    let f = fetch(&mut conn, 12, fetch_request("t", 0, 0));
    let got = values(f.responses[0].partitions[0].records.as_ref().unwrap());
    let want: Vec<(i64, String)> = ["a-0", "a-1", "b-0", "b-1", "b-2", "c-0", "d-0"]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.to_string()))
        .collect();
    assert_eq!(got, want);
    // What the wire wrote, embroker's own consumer reads.
    let mut c = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < want.len() && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(100)).unwrap() {
            seen.push((
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    assert_eq!(seen, want);
}

#[test]
fn compressed_batches_are_stored_and_fetched_as_they_are() {
    let (broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    let mut offset = 0;
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let bytes = batch(4, codec.name(), None, false, codec);
        let r = produce(&mut conn, 9, produce_request("t", 0, 1, bytes.clone()));
        assert_eq!(produced(&r), (NONE, offset), "{codec:?}");
        let f = fetch(&mut conn, 12, fetch_request("t", 0, offset));
        let records = f.responses[0].partitions[0].records.clone().unwrap();
        let first = decode_batch(&records).unwrap();
        assert_eq!(
            first.header.compression_id(),
            codec.id(),
            "{codec:?}: stored as sent"
        );
        // The same bytes as sent but for the base offset the broker stamped.
        let mut sent = bytes.clone();
        set_base_offset(&mut sent, offset);
        assert_eq!(
            &records[..first.header.total_bytes()],
            &sent[..],
            "{codec:?}"
        );
        let vals = values(&records);
        assert_eq!(vals.len(), 4);
        assert_eq!(vals[0], (offset, format!("{}-0", codec.name())));
        offset += 4;
    }
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), offset);
}

#[test]
fn a_corrupt_batch_is_corrupt_message_and_nothing_is_written() {
    let (broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    let mut bytes = batch(2, "x", None, false, Compression::None);
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // inside the records: the CRC no longer holds
    let r = produce(&mut conn, 9, produce_request("t", 0, 1, bytes));
    assert_eq!(produced(&r).0, ResponseError::CorruptMessage.code());
    assert_eq!(
        broker
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        0
    );
    // A good batch after it lands at offset 0.
    let r = produce(
        &mut conn,
        9,
        produce_request("t", 0, 1, batch(1, "ok", None, false, Compression::None)),
    );
    assert_eq!(produced(&r), (NONE, 0));
}

#[test]
fn produce_to_an_unknown_topic_or_partition() {
    let broker = Broker::builder()
        .auto_create_topics(true)
        .open_temporary()
        .unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut conn = Conn::connect(server.local_addr());
    let r = produce(
        &mut conn,
        9,
        produce_request(
            "missing",
            0,
            1,
            batch(1, "x", None, false, Compression::None),
        ),
    );
    assert_eq!(
        produced(&r).0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    // Produce never auto-creates, even with the broker setting on (Kafka's rule).
    assert!(!exists(&broker, "missing"));
    let r = produce(
        &mut conn,
        9,
        produce_request("t", 7, 1, batch(1, "x", None, false, Compression::None)),
    );
    assert_eq!(
        produced(&r).0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let r = produce(
        &mut conn,
        9,
        produce_request("t", -1, 1, batch(1, "x", None, false, Compression::None)),
    );
    assert_eq!(
        produced(&r).0,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn an_idempotent_duplicate_is_acknowledged_with_its_first_offset() {
    let (broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    // Some records first, so the duplicate's offset is not 0.
    produce(
        &mut conn,
        9,
        produce_request("t", 0, 1, batch(2, "plain", None, false, Compression::None)),
    );
    let producer = ProducerFields {
        producer_id: 4242,
        producer_epoch: 0,
        base_sequence: 0,
    };
    let first = batch(3, "idem", Some(producer), false, Compression::None);
    let r = produce(&mut conn, 9, produce_request("t", 0, -1, first.clone()));
    assert_eq!(produced(&r), (NONE, 2));
    // The same batch again (a client's retry after a lost response).
    let r = produce(&mut conn, 9, produce_request("t", 0, -1, first));
    assert_eq!(
        produced(&r),
        (NONE, 2),
        "the duplicate gets its original offset"
    );
    assert_eq!(
        broker
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        5
    );
    // A gap in the sequence is OUT_OF_ORDER_SEQUENCE_NUMBER.
    let gap = batch(
        1,
        "gap",
        Some(ProducerFields {
            base_sequence: 10,
            ..producer
        }),
        false,
        Compression::None,
    );
    let r = produce(&mut conn, 9, produce_request("t", 0, -1, gap));
    assert_eq!(
        produced(&r).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
}

// ---------------------------------------------------------------------------------------------
// Fetch
// ---------------------------------------------------------------------------------------------

#[test]
fn a_long_poll_returns_when_a_produce_lands() {
    let (_broker, server) = setup(1);
    let addr = server.local_addr();
    let mut conn = Conn::connect(addr);
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut other = Conn::connect(addr);
        produce(
            &mut other,
            9,
            produce_request("t", 0, 1, batch(1, "late", None, false, Compression::None)),
        );
    });
    let f = fetch(
        &mut conn,
        12,
        fetch_request("t", 0, 0).with_max_wait_ms(2000),
    );
    let took = start.elapsed();
    producer.join().unwrap();
    let got = values(f.responses[0].partitions[0].records.as_ref().unwrap());
    assert_eq!(got, [(0, "late-0".to_string())]);
    assert!(
        took >= Duration::from_millis(250),
        "{took:?}: answered before the produce"
    );
    assert!(
        took < Duration::from_millis(1500),
        "{took:?}: the long poll did not wake"
    );
}

#[test]
fn a_long_poll_waits_for_min_bytes() {
    let (_broker, server) = setup(1);
    let addr = server.local_addr();
    let mut conn = Conn::connect(addr);
    // One small batch is there already; min_bytes asks for more than it holds.
    produce(
        &mut conn,
        9,
        produce_request("t", 0, 1, batch(1, "one", None, false, Compression::None)),
    );
    let start = Instant::now();
    let f = fetch(
        &mut conn,
        12,
        fetch_request("t", 0, 0)
            .with_max_wait_ms(600)
            .with_min_bytes(100_000),
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(550),
        "{took:?}: min_bytes not waited for"
    );
    assert_eq!(
        values(f.responses[0].partitions[0].records.as_ref().unwrap()).len(),
        1
    );
    // min_bytes met at once: no wait.
    let start = Instant::now();
    fetch(
        &mut conn,
        12,
        fetch_request("t", 0, 0)
            .with_max_wait_ms(5000)
            .with_min_bytes(1),
    );
    assert!(start.elapsed() < Duration::from_millis(1000));
}

#[test]
fn max_bytes_and_partition_max_bytes_keep_at_least_one_batch() {
    let (_broker, server) = setup(2);
    let mut conn = Conn::connect(server.local_addr());
    for p in 0..2 {
        for i in 0..5 {
            let r = produce(
                &mut conn,
                9,
                produce_request(
                    "t",
                    p,
                    1,
                    batch(10, &format!("p{p}b{i}"), None, false, Compression::None),
                ),
            );
            assert_eq!(produced(&r).0, NONE);
        }
    }
    let one = batch(10, "p0b0", None, false, Compression::None).len();
    let two_partitions = |max: i32, part_max: i32| {
        FetchRequest::default()
            .with_max_bytes(max)
            .with_min_bytes(1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(
                    (0..2)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(part_max)
                        })
                        .collect(),
                )])
    };
    let sizes = |f: &FetchResponse| -> Vec<usize> {
        f.responses[0]
            .partitions
            .iter()
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .collect()
    };
    // partition_max_bytes of 1 byte: still one whole batch from each partition (the first
    // gets one however small its limit; Kafka gives every partition its own "at least one").
    let f = fetch(&mut conn, 12, two_partitions(50 << 20, 1));
    let s = sizes(&f);
    assert_eq!(s[0], one, "{s:?}");
    // partition_max_bytes of two and a half batches: two whole batches.
    let f = fetch(
        &mut conn,
        12,
        two_partitions(50 << 20, (one * 5 / 2) as i32),
    );
    assert_eq!(sizes(&f), [2 * one, 2 * one]);
    // max_bytes of 1: the first partition still gets one batch, the second nothing.
    let f = fetch(&mut conn, 12, two_partitions(1, 1 << 20));
    assert_eq!(sizes(&f), [one, 0]);
    // max_bytes of three batches over both partitions.
    let f = fetch(&mut conn, 12, two_partitions((one * 3) as i32, 1 << 20));
    let s = sizes(&f);
    assert_eq!(s.iter().sum::<usize>(), 3 * one, "{s:?}");
    for p in &f.responses[0].partitions {
        let r = p.records.as_ref().unwrap();
        if !r.is_empty() {
            // Whole batches only.
            assert_eq!(values(r).len() * one / 10, r.len());
        }
    }
}

/// `ServerConfig::max_partition_fetch_bytes` caps a partition's share of a Fetch below the
/// client's `partition_max_bytes`, in whole batches, and never below one batch.
#[test]
fn the_server_caps_each_partition_of_a_fetch_in_whole_batches() {
    let one = batch(10, "b0", None, false, Compression::None).len();
    for (cap, want) in [
        (one * 5 / 2, 2 * one),
        (1, one),
        (0, one),
        (usize::MAX, 5 * one),
    ] {
        let broker = Broker::temporary().unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let server = broker
            .serve_with(
                "127.0.0.1:0",
                ServerConfig::default().max_partition_fetch_bytes(cap),
            )
            .unwrap();
        let mut conn = Conn::connect(server.local_addr());
        for i in 0..5 {
            let records = batch(10, &format!("b{i}"), None, false, Compression::None);
            let r = produce(&mut conn, 9, produce_request("t", 0, 1, records));
            assert_eq!(produced(&r).0, NONE);
        }
        // The client asks for 1 MiB of the partition (fetch_request's partition_max_bytes).
        let f = fetch(&mut conn, 12, fetch_request("t", 0, 0));
        let records = f.responses[0].partitions[0].records.clone().unwrap();
        assert_eq!(records.len(), want, "cap {cap}");
        assert_eq!(values(&records).len(), want / one * 10, "cap {cap}");
    }
    assert_eq!(ServerConfig::default().max_partition_fetch_bytes, 64 * 1024);
}

#[test]
fn fetch_errors_answer_at_once() {
    let (_broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    produce(
        &mut conn,
        9,
        produce_request("t", 0, 1, batch(2, "x", None, false, Compression::None)),
    );
    // Out of range, past the end.
    let start = Instant::now();
    let f = fetch(
        &mut conn,
        12,
        fetch_request("t", 0, 100).with_max_wait_ms(3000),
    );
    let p = &f.responses[0].partitions[0];
    assert_eq!(p.error_code, ResponseError::OffsetOutOfRange.code());
    assert_eq!(p.high_watermark, 2);
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "OFFSET_OUT_OF_RANGE waited {:?} (Kafka answers an error at once)",
        start.elapsed()
    );
    // Negative offset.
    let f = fetch(&mut conn, 12, fetch_request("t", 0, -5));
    assert_eq!(
        f.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    // Unknown topic: at once too.
    let start = Instant::now();
    let f = fetch(
        &mut conn,
        12,
        fetch_request("nope", 0, 0).with_max_wait_ms(3000),
    );
    assert_eq!(
        f.responses[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    // At the end exactly: no error, no records.
    let f = fetch(&mut conn, 12, fetch_request("t", 0, 2));
    let p = &f.responses[0].partitions[0];
    assert_eq!(p.error_code, NONE);
    assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
}

#[test]
fn min_bytes_zero_does_not_wait() {
    let (_broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    let start = Instant::now();
    let f = fetch(
        &mut conn,
        12,
        fetch_request("t", 0, 0)
            .with_max_wait_ms(3000)
            .with_min_bytes(0),
    );
    assert_eq!(f.responses[0].partitions[0].error_code, NONE);
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "min_bytes=0 waited {:?} (Kafka answers at once)",
        start.elapsed()
    );
}

#[test]
fn a_fetch_of_no_partitions_does_not_wait() {
    let (_broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    let start = Instant::now();
    let f = fetch(
        &mut conn,
        12,
        FetchRequest::default()
            .with_max_wait_ms(3000)
            .with_min_bytes(1),
    );
    assert!(f.responses.is_empty());
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "an empty fetch waited {:?} (Kafka answers at once)",
        start.elapsed()
    );
}

#[test]
fn fetch_sessions_are_refused_politely() {
    let (_broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    let f = fetch(
        &mut conn,
        12,
        fetch_request("t", 0, 0)
            .with_session_id(0)
            .with_session_epoch(0),
    );
    assert_eq!(f.error_code, NONE);
    assert_eq!(f.session_id, 0);
    let f = fetch(
        &mut conn,
        12,
        fetch_request("t", 0, 0)
            .with_session_id(77)
            .with_session_epoch(3),
    );
    assert_eq!(f.error_code, ResponseError::FetchSessionIdNotFound.code());
}

/// A log with a committed transaction, an aborted one and an open one, through the
/// in-process transactional producer: (end of the committed part, first offset of the aborted
/// transaction's records, producer id of the aborted transaction).
fn transactional_log(broker: &Broker) -> i64 {
    let cfg = ProducerConfig::default()
        .acks(embroker::Acks::All)
        .transactional_id("tx-wire");
    let p = broker.producer(cfg).unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new("t", "committed"))
        .unwrap()
        .wait()
        .unwrap();
    p.commit_transaction().unwrap();
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new("t", "aborted"))
        .unwrap()
        .wait()
        .unwrap();
    p.abort_transaction().unwrap();
    let end = broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new("t", "open"))
        .unwrap()
        .wait()
        .unwrap();
    // Left open: the LSO stays at `end`.
    std::mem::forget(p);
    end
}

#[test]
fn read_committed_fetch_lists_aborted_transactions_and_stops_at_the_lso() {
    let (broker, server) = setup(1);
    let lso = transactional_log(&broker);
    let hw = broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    assert!(hw > lso);
    let mut conn = Conn::connect(server.local_addr());
    for version in [4i16, 8, 12] {
        let f = fetch(
            &mut conn,
            version,
            fetch_request("t", 0, 0).with_isolation_level(1),
        );
        let p = &f.responses[0].partitions[0];
        assert_eq!(p.error_code, NONE);
        assert_eq!(p.last_stable_offset, lso, "v{version}");
        assert_eq!(p.high_watermark, hw);
        let aborted = p
            .aborted_transactions
            .as_ref()
            .expect("a list for read_committed");
        assert_eq!(aborted.len(), 1, "v{version}: {aborted:?}");
        let got = values(p.records.as_ref().unwrap());
        assert!(
            got.iter().all(|(o, _)| *o < lso),
            "v{version}: past the LSO: {got:?}"
        );
        let names: Vec<&str> = got.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            names,
            ["committed", "aborted"],
            "v{version}: the client drops the aborted one"
        );
        // The aborted transaction's first offset is the "aborted" record's.
        let aborted_at = got.iter().find(|(_, v)| v == "aborted").unwrap().0;
        assert_eq!(aborted[0].first_offset, aborted_at);
        // read_uncommitted sees the open transaction's record too, and no aborted list.
        let f = fetch(
            &mut conn,
            version,
            fetch_request("t", 0, 0).with_isolation_level(0),
        );
        let p = &f.responses[0].partitions[0];
        assert!(p.aborted_transactions.is_none());
        let names: Vec<String> = values(p.records.as_ref().unwrap())
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(names, ["committed", "aborted", "open"]);
    }
    // The marker batches are there (control batches) and a client sees them as such.
    let f = fetch(&mut conn, 12, fetch_request("t", 0, 0));
    let records = f.responses[0].partitions[0].records.clone().unwrap();
    let mut rest: &[u8] = &records;
    let mut markers = Vec::new();
    while let Ok(b) = decode_batch(rest) {
        if b.header.is_control() {
            let r = b.records().next().unwrap();
            markers.push(
                EndTransactionMarker::parse(r.key.unwrap(), r.value)
                    .unwrap()
                    .kind,
            );
        }
        rest = &rest[b.header.total_bytes()..];
    }
    assert_eq!(
        markers,
        [ControlRecordType::Commit, ControlRecordType::Abort]
    );
}

// ---------------------------------------------------------------------------------------------
// ListOffsets
// ---------------------------------------------------------------------------------------------

#[test]
fn list_offsets_earliest_latest_by_timestamp_and_max_timestamp() {
    let (broker, server) = setup(1);
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    // Three batches with increasing timestamps, then one with an older max.
    let mut b = BatchBuilder::new();
    b.push(1000, None, Some(b"a"), &[]).unwrap();
    b.push(2000, None, Some(b"b"), &[]).unwrap();
    p.append_batches(&b.finish()).unwrap();
    let mut b = BatchBuilder::new();
    b.push(5000, None, Some(b"c"), &[]).unwrap();
    p.append_batches(&b.finish()).unwrap();
    let mut b = BatchBuilder::new();
    b.push(3000, None, Some(b"d"), &[]).unwrap();
    p.append_batches(&b.finish()).unwrap();
    let mut conn = Conn::connect(server.local_addr());
    for version in 1i16..=7 {
        assert_eq!(
            list_offsets(&mut conn, version, 0, -2).1,
            0,
            "earliest v{version}"
        );
        assert_eq!(
            list_offsets(&mut conn, version, 0, -1).1,
            4,
            "latest v{version}"
        );
        let (e, o, ts) = list_offsets(&mut conn, version, 0, 1500);
        assert_eq!((e, o, ts), (NONE, 1, 2000), "by timestamp v{version}");
        let (e, o, _) = list_offsets(&mut conn, version, 0, 9999);
        assert_eq!((e, o), (NONE, -1), "past every timestamp v{version}");
    }
    let (e, o, ts) = list_offsets(&mut conn, 7, 0, -3);
    assert_eq!((e, o, ts), (NONE, 2, 5000), "max timestamp");
    // Unknown partition.
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(topic_name("t"))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(9)
            .with_timestamp(-1)])]);
    let ResponseKind::ListOffsets(r) = conn.call(ApiKey::ListOffsets, 5, req) else {
        panic!()
    };
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn list_offsets_read_committed_latest_is_the_lso() {
    let (broker, server) = setup(1);
    let lso = transactional_log(&broker);
    let end = broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    let mut conn = Conn::connect(server.local_addr());
    for version in 2i16..=7 {
        assert_eq!(list_offsets(&mut conn, version, 1, -1).1, lso, "v{version}");
        assert_eq!(list_offsets(&mut conn, version, 0, -1).1, end, "v{version}");
    }
}

// ---------------------------------------------------------------------------------------------
// Pipelining and the in-process API
// ---------------------------------------------------------------------------------------------

#[test]
fn fifty_pipelined_requests_are_answered_in_order() {
    let (_broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    let mut sent = Vec::new();
    for i in 0..50 {
        let (key, version, req) = match i % 4 {
            0 => (
                ApiKey::Metadata,
                9,
                RequestKind::Metadata(named(&["t"], true)),
            ),
            1 => (
                ApiKey::Produce,
                9,
                RequestKind::Produce(produce_request(
                    "t",
                    0,
                    1,
                    batch(1, &format!("p{i}"), None, false, Compression::None),
                )),
            ),
            2 => (
                ApiKey::Fetch,
                12,
                RequestKind::Fetch(fetch_request("t", 0, 0)),
            ),
            _ => (
                ApiKey::ApiVersions,
                3,
                RequestKind::ApiVersions(ApiVersionsRequest::default()),
            ),
        };
        let id = conn.send(key, version, &req);
        sent.push((id, key, version));
    }
    let mut produced_offsets = Vec::new();
    for (id, key, version) in sent {
        let (got, response) = conn.recv(key, version);
        assert_eq!(got, id, "responses out of order");
        if let ResponseKind::Produce(r) = response {
            produced_offsets.push(produced(&r).1);
        }
    }
    assert_eq!(
        produced_offsets,
        (0..produced_offsets.len() as i64).collect::<Vec<_>>()
    );
}

#[test]
fn records_produced_in_process_are_fetched_through_the_wire() {
    let (broker, server) = setup(1);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for i in 0..10 {
        drop(
            producer
                .send(ProducerRecord::new("t", format!("in-process-{i}")).partition(0))
                .unwrap(),
        );
    }
    producer.flush().unwrap();
    let mut conn = Conn::connect(server.local_addr());
    let f = fetch(&mut conn, 12, fetch_request("t", 0, 0));
    let got = values(f.responses[0].partitions[0].records.as_ref().unwrap());
    let want: Vec<(i64, String)> = (0..10).map(|i| (i, format!("in-process-{i}"))).collect();
    assert_eq!(got, want);
    // And at older versions.
    for version in [4i16, 7, 11] {
        let f = fetch(&mut conn, version, fetch_request("t", 0, 5));
        // Whole batches: the one holding offset 5 starts at or before it.
        let got = values(f.responses[0].partitions[0].records.as_ref().unwrap());
        assert!(got.first().is_some_and(|r| r.0 <= 5), "v{version}: {got:?}");
        assert!(
            got.iter().any(|r| r == &(5, "in-process-5".to_string())),
            "v{version}"
        );
    }
}

#[test]
fn server_config_is_honoured() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let server = broker
        .serve_with(
            "127.0.0.1:0",
            ServerConfig::default()
                .advertised_host("kafka.example")
                .node_id(7)
                .max_fetch_wait(Duration::from_millis(300)),
        )
        .unwrap();
    let mut conn = Conn::connect(server.local_addr());
    let r = metadata(&mut conn, 12, named(&["t"], false));
    assert_eq!(r.brokers[0].host.as_str(), "kafka.example");
    assert_eq!(r.brokers[0].node_id.0, 7);
    assert_eq!(r.topics[0].partitions[0].leader_id.0, 7);
    // max_fetch_wait caps a long poll's own max_wait.
    let start = Instant::now();
    fetch(
        &mut conn,
        12,
        fetch_request("t", 0, 0).with_max_wait_ms(10_000),
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn produce_to_an_internal_topic_is_refused() {
    let (broker, server) = setup(1);
    // A committed offset, so that __consumer_offsets exists (embroker keeps it out of
    // `topics()`, and clients must not write to it: Kafka refuses appends to internal topics).
    let mut c = broker
        .consumer(
            ConsumerConfig::default()
                .group_id("g")
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    c.commit_sync().unwrap();
    drop(c);
    let internal: Vec<String> = broker
        .topics()
        .into_iter()
        .filter(|t| t.starts_with("__"))
        .collect();
    let mut conn = Conn::connect(server.local_addr());
    for topic in internal
        .iter()
        .map(String::as_str)
        .chain(["__consumer_offsets", "__transaction_state"])
    {
        let r = produce(
            &mut conn,
            9,
            produce_request(
                topic,
                0,
                1,
                batch(1, "garbage", None, false, Compression::None),
            ),
        );
        let code = produced(&r).0;
        assert!(
            code == ResponseError::InvalidTopicException.code()
                || code == ResponseError::UnknownTopicOrPartition.code(),
            "{topic}: a client's produce to an internal topic was answered {code}"
        );
    }
}

#[test]
fn list_offsets_by_timestamp_read_committed_stops_at_the_lso() {
    let (broker, server) = setup(1);
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let mut b = BatchBuilder::new();
    b.push(1000, None, Some(b"committed"), &[]).unwrap();
    p.append_batches(&b.finish()).unwrap();
    // An open transaction at offset 1, later timestamps.
    let open = {
        let mut b = BatchBuilder::new();
        b.set_producer(ProducerFields {
            producer_id: 99,
            producer_epoch: 0,
            base_sequence: 0,
        });
        b.set_transactional(true);
        b.push(5000, None, Some(b"open"), &[]).unwrap();
        b.finish()
    };
    p.append_batches(&open).unwrap();
    let mut conn = Conn::connect(server.local_addr());
    assert_eq!(list_offsets(&mut conn, 5, 1, -1).1, 1, "LSO");
    // read_uncommitted finds the open record by its timestamp.
    assert_eq!(list_offsets(&mut conn, 5, 0, 4000).1, 1);
    // read_committed must not point past the LSO (Kafka returns no offset).
    let (e, o, _) = list_offsets(&mut conn, 5, 1, 4000);
    assert_eq!(
        (e, o),
        (NONE, -1),
        "read_committed by timestamp returned offset {o} >= LSO 1"
    );
}

#[test]
fn a_request_with_one_bad_batch_among_good_ones_writes_nothing() {
    let (broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    let mut records = batch(2, "good", None, false, Compression::None);
    let mut bad = batch(2, "bad", None, false, Compression::None);
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    records.extend_from_slice(&bad);
    let r = produce(&mut conn, 9, produce_request("t", 0, 1, records));
    assert_eq!(produced(&r).0, ResponseError::CorruptMessage.code());
    let end = broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    assert_eq!(
        end, 0,
        "a request's batches for one partition are all or nothing"
    );
}

#[test]
fn topic_rules_are_kafka_errors() {
    let (broker, server) = setup(1);
    broker
        .create_topic(
            "compacted",
            TopicConfig::default().cleanup_policy(embroker::CleanupPolicy::Compact),
        )
        .unwrap();
    broker
        .create_topic("small", TopicConfig::default().max_message_bytes(200))
        .unwrap();
    let mut conn = Conn::connect(server.local_addr());
    // A record without a key on a compacted topic.
    let mut b = BatchBuilder::new();
    b.push(1_700_000_000_000, None, Some(b"no key"), &[])
        .unwrap();
    let r = produce(&mut conn, 9, produce_request("compacted", 0, 1, b.finish()));
    assert_eq!(produced(&r).0, ResponseError::InvalidRecord.code());
    // A batch over max.message.bytes.
    let big = batch(20, &"x".repeat(50), None, false, Compression::None);
    assert!(big.len() > 200);
    let r = produce(&mut conn, 9, produce_request("small", 0, 1, big));
    assert_eq!(produced(&r).0, ResponseError::MessageTooLarge.code());
    // Null records.
    let mut req = produce_request("t", 0, 1, Vec::new());
    req.topic_data[0].partition_data[0].records = None;
    let r = produce(&mut conn, 9, req);
    let (code, _) = produced(&r);
    assert!(
        code == NONE
            || code == ResponseError::InvalidRecord.code()
            || code == ResponseError::CorruptMessage.code(),
        "null records: {code}"
    );
    assert_eq!(
        broker
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        0
    );
}

/// A transactional batch from a producer id the transaction coordinator never gave out, for a
/// partition no AddPartitionsToTxn named: Kafka 4 (transaction verification, KIP-890) refuses
/// it; accepted, it opens a transaction nothing will ever end, and the partition's last stable
/// offset (what read_committed consumers may read) stays below it for good.
/// Produce verifies a transactional batch with the coordinator (this test found it missing).
#[test]
fn a_transactional_batch_outside_any_transaction_does_not_hang_the_lso() {
    let (broker, server) = setup(1);
    let mut conn = Conn::connect(server.local_addr());
    produce(
        &mut conn,
        9,
        produce_request(
            "t",
            0,
            1,
            batch(1, "before", None, false, Compression::None),
        ),
    );
    let stray = batch(
        1,
        "stray",
        Some(ProducerFields {
            producer_id: 123_456,
            producer_epoch: 0,
            base_sequence: 0,
        }),
        true,
        Compression::None,
    );
    let r = produce(&mut conn, 9, produce_request("t", 0, -1, stray));
    let (code, _) = produced(&r);
    produce(
        &mut conn,
        9,
        produce_request("t", 0, 1, batch(1, "after", None, false, Compression::None)),
    );
    let end = broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    let lso = list_offsets(&mut conn, 5, 1, -1).1;
    assert!(
        code != NONE || lso == end,
        "a stray transactional batch was accepted (error {code}) and the LSO stays at {lso} \
         below the log end {end}: read_committed consumers stop there"
    );
}
