//! The admin, transaction and SASL APIs of the wire protocol, spoken as a client speaks them
//! (kafka-protocol's client-side encoders over a TcpStream): every API at every version the
//! server advertises encodes, decodes and does what Kafka's does.
#![cfg(feature = "server")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use embroker::codec::{decode_batch, BatchBuilder, ProducerFields};
use embroker::{Broker, Record, SaslPlainUsers, ServerConfig, TopicConfig};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::ResponseError;

const NODE: i32 = 1;

struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    fn connect(server: &embroker::Server) -> Client {
        let stream = TcpStream::connect(server.local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Client {
            stream,
            correlation: 0,
        }
    }

    /// Sends `req` at `version` and reads its response; `Err` when the server closed the
    /// connection instead.
    fn try_call<R: Request>(&mut self, req: &R, version: i16) -> std::io::Result<R::Response> {
        let key = ApiKey::try_from(R::KEY).unwrap();
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("server_admin")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        req.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encoding {key:?} v{version}: {e}"));
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        self.stream.write_all(&frame)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body)?;
        let mut body = Bytes::from(body);
        let header =
            ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        let response = R::Response::decode(&mut body, version)
            .unwrap_or_else(|e| panic!("decoding {key:?} v{version}: {e}"));
        assert!(!body.has_remaining(), "{key:?} v{version}: bytes left");
        Ok(response)
    }

    fn call<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        self.try_call(req, version).unwrap()
    }

    /// True once the server closed the connection (a read returns end of stream).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn tn(x: &str) -> TopicName {
    TopicName(s(x))
}

/// The versions ApiVersions advertises for `key`.
fn advertised(client: &mut Client, key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let r = client.call(&ApiVersionsRequest::default(), 0);
    let row = r
        .api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .unwrap_or_else(|| panic!("{key:?} is not advertised"));
    row.min_version..=row.max_version
}

fn create_request(name: &str, partitions: i32, replication: i16) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(tn(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("3600000"))),
            ])])
}

#[test]
fn the_admin_and_transaction_apis_are_advertised() {
    let broker = Broker::temporary().unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut c = Client::connect(&server);
    for (key, max) in [
        (ApiKey::CreateTopics, 7),
        (ApiKey::DeleteTopics, 6),
        (ApiKey::CreatePartitions, 3),
        (ApiKey::DescribeConfigs, 4),
        (ApiKey::AlterConfigs, 2),
        (ApiKey::IncrementalAlterConfigs, 1),
        (ApiKey::DeleteRecords, 2),
        (ApiKey::DescribeCluster, 2),
        (ApiKey::DescribeProducers, 0),
        (ApiKey::ListTransactions, 2),
        (ApiKey::DescribeTransactions, 0),
        (ApiKey::InitProducerId, 5),
        (ApiKey::AddPartitionsToTxn, 3),
        (ApiKey::AddOffsetsToTxn, 4),
        (ApiKey::EndTxn, 4),
        (ApiKey::SaslHandshake, 1),
        (ApiKey::SaslAuthenticate, 2),
    ] {
        assert_eq!(*advertised(&mut c, key).end(), max, "{key:?}");
    }
}

#[test]
fn create_topics_at_every_version() {
    let broker = Broker::temporary().unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut c = Client::connect(&server);
    for v in advertised(&mut c, ApiKey::CreateTopics) {
        let name = format!("created-{v}");
        let r = c.call(&create_request(&name, 2, 1), v);
        let t = &r.topics[0];
        assert_eq!(t.error_code, 0, "v{v}: {:?}", t.error_message);
        assert_eq!(broker.topic(&name).unwrap().partition_count(), 2);
        assert_eq!(
            broker.describe_topic(&name).unwrap().config.retention_ms,
            3_600_000
        );
        if v >= 5 {
            assert_eq!(t.num_partitions, 2);
            assert_eq!(t.replication_factor, 1);
            let configs = t.configs.as_ref().unwrap();
            let retention = configs.iter().find(|e| &*e.name == "retention.ms").unwrap();
            assert_eq!(retention.value.as_deref(), Some("3600000"));
            assert_eq!(retention.config_source, 1); // DYNAMIC_TOPIC_CONFIG
            let segment = configs
                .iter()
                .find(|e| &*e.name == "segment.bytes")
                .unwrap();
            assert_eq!(segment.config_source, 5); // DEFAULT_CONFIG
        }
        if v >= 7 {
            assert!(!t.topic_id.is_nil());
        }
        // Again: it exists.
        let r = c.call(&create_request(&name, 2, 1), v);
        assert_eq!(
            r.topics[0].error_code,
            ResponseError::TopicAlreadyExists.code()
        );
        // Replication beyond one broker.
        let r = c.call(&create_request(&format!("{name}-rf"), 1, 3), v);
        assert_eq!(
            r.topics[0].error_code,
            ResponseError::InvalidReplicationFactor.code()
        );
        // -1: the broker's defaults.
        let r = c.call(&create_request(&format!("{name}-default"), -1, -1), v);
        assert_eq!(r.topics[0].error_code, 0);
        assert_eq!(
            broker
                .topic(&format!("{name}-default"))
                .unwrap()
                .partition_count(),
            1
        );
        // validate_only creates nothing.
        let r = c.call(
            &create_request(&format!("{name}-validate"), 4, 1).with_validate_only(true),
            v,
        );
        assert_eq!(r.topics[0].error_code, 0);
        assert!(broker.describe_topic(&format!("{name}-validate")).is_err());
        // A bad config names its key.
        let mut bad = create_request(&format!("{name}-bad"), 1, 1);
        bad.topics[0].configs[0].value = Some(s("soon"));
        let r = c.call(&bad, v);
        assert_eq!(r.topics[0].error_code, ResponseError::InvalidConfig.code());
        assert!(r.topics[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("retention.ms"));
        // A name colliding with another ('.' versus '_'), validated or not.
        let r = c.call(&create_request(&format!("dot.{v}"), 1, 1), v);
        assert_eq!(r.topics[0].error_code, 0);
        for validate_only in [true, false] {
            let r = c.call(
                &create_request(&format!("dot_{v}"), 1, 1).with_validate_only(validate_only),
                v,
            );
            assert_eq!(
                r.topics[0].error_code,
                ResponseError::InvalidTopicException.code()
            );
        }
        // Internal and invalid names.
        let r = c.call(&create_request("__mine", 1, 1), v);
        assert_eq!(
            r.topics[0].error_code,
            ResponseError::InvalidTopicException.code()
        );
    }
}

#[test]
fn delete_topics_and_create_partitions_at_every_version() {
    let broker = Broker::temporary().unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut c = Client::connect(&server);
    for v in advertised(&mut c, ApiKey::CreatePartitions) {
        let name = format!("grow-{v}");
        broker.create_topic(&name, TopicConfig::default()).unwrap();
        let req = |count: i32, validate_only: bool| {
            CreatePartitionsRequest::default()
                .with_timeout_ms(1000)
                .with_validate_only(validate_only)
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(tn(&name))
                        .with_count(count),
                ])
        };
        let r = c.call(&req(3, true), v);
        assert_eq!(r.results[0].error_code, 0);
        assert_eq!(broker.topic(&name).unwrap().partition_count(), 1);
        let r = c.call(&req(3, false), v);
        assert_eq!(
            r.results[0].error_code, 0,
            "{:?}",
            r.results[0].error_message
        );
        assert_eq!(broker.topic(&name).unwrap().partition_count(), 3);
        let r = c.call(&req(2, false), v);
        assert_eq!(
            r.results[0].error_code,
            ResponseError::InvalidPartitions.code()
        );
        let mut missing = req(5, false);
        missing.topics[0].name = tn("nope");
        let r = c.call(&missing, v);
        assert_eq!(
            r.results[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
    for v in advertised(&mut c, ApiKey::DeleteTopics) {
        let name = format!("doomed-{v}");
        broker.create_topic(&name, TopicConfig::default()).unwrap();
        let req = if v >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(tn(&name))),
                delete_topics_request::DeleteTopicState::default().with_name(Some(tn("nope"))),
                // By an id no topic has.
                delete_topics_request::DeleteTopicState::default(),
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![tn(&name), tn("nope")])
        }
        .with_timeout_ms(1000);
        let r = c.call(&req, v);
        assert_eq!(r.responses[0].error_code, 0);
        assert_eq!(r.responses[0].name.as_ref().unwrap().0.as_str(), name);
        assert_eq!(
            r.responses[1].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        if v >= 6 {
            assert_eq!(
                r.responses[2].error_code,
                ResponseError::UnknownTopicId.code()
            );
        }
        assert!(broker.describe_topic(&name).is_err());
    }
    // The internal topics keep their partitions.
    let r = c.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("t"))))
            .with_transaction_timeout_ms(1000),
        4,
    );
    assert_eq!(r.error_code, 0);
    let r = c.call(
        &CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(tn("__transaction_state"))
                .with_count(60),
        ]),
        3,
    );
    assert_eq!(
        r.results[0].error_code,
        ResponseError::InvalidRequest.code()
    );
    let r = c.call(
        &DeleteRecordsRequest::default().with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(tn("__transaction_state"))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(-1),
                ]),
        ]),
        2,
    );
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    // Version 6 by the id CreateTopics reported.
    let r = c.call(&create_request("by-id", 1, 1), 7);
    let id = r.topics[0].topic_id;
    let r = c.call(
        &DeleteTopicsRequest::default().with_topics(vec![
            delete_topics_request::DeleteTopicState::default().with_topic_id(id),
        ]),
        6,
    );
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[0].name.as_ref().unwrap().0.as_str(), "by-id");
    assert!(broker.describe_topic("by-id").is_err());
}

fn describe_topic_config(
    c: &mut Client,
    topic: &str,
    v: i16,
) -> describe_configs_response::DescribeConfigsResult {
    let r = c.call(
        &DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(topic)),
            ]),
        v,
    );
    r.results.into_iter().next().unwrap()
}

fn value_of(r: &describe_configs_response::DescribeConfigsResult, key: &str) -> (String, i8) {
    let e = r
        .configs
        .iter()
        .find(|e| &*e.name == key)
        .unwrap_or_else(|| panic!("{key} not described"));
    (
        e.value.as_deref().unwrap_or("").to_string(),
        e.config_source,
    )
}

#[test]
fn describe_and_alter_configs_at_every_version() {
    let broker = Broker::temporary().unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut c = Client::connect(&server);
    broker
        .create_topic("conf", TopicConfig::default().retention_ms(1000))
        .unwrap();
    for v in advertised(&mut c, ApiKey::DescribeConfigs) {
        let r = describe_topic_config(&mut c, "conf", v);
        assert_eq!(r.error_code, 0);
        assert_eq!(value_of(&r, "retention.ms"), ("1000".into(), 1));
        assert_eq!(value_of(&r, "cleanup.policy"), ("delete".into(), 5));
        let retention = r
            .configs
            .iter()
            .find(|e| &*e.name == "retention.ms")
            .unwrap();
        assert_eq!(retention.synonyms.len(), 2); // the topic's, then the default
        assert_eq!(&*retention.synonyms[1].name, "log.retention.ms");
        assert!(!r.configs.iter().any(|e| &*e.name == "num.partitions"));
        if v >= 3 {
            assert_eq!(retention.config_type, 5); // LONG
        }
        let missing = describe_topic_config(&mut c, "nope", v);
        assert_eq!(
            missing.error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        // Only the keys asked for; the broker's own settings.
        let r = c.call(
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("conf"))
                    .with_configuration_keys(Some(vec![s("segment.bytes")])),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s(&NODE.to_string())),
            ]),
            v,
        );
        assert_eq!(r.results[0].configs.len(), 1);
        assert_eq!(r.results[1].error_code, 0);
        let broker_conf = &r.results[1];
        assert_eq!(value_of(broker_conf, "num.partitions").0, "1");
        assert_eq!(value_of(broker_conf, "log.retention.ms").0, "604800000");
        assert!(broker_conf.configs.iter().all(|e| e.read_only));
    }
    for v in advertised(&mut c, ApiKey::IncrementalAlterConfigs) {
        broker
            .alter_topic_config("conf", &[("retention.ms", "1000")])
            .unwrap();
        let op = |name: &str, op: i8, value: Option<&str>| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s(name))
                .with_config_operation(op)
                .with_value(value.map(s))
        };
        let req = |configs, validate_only| {
            IncrementalAlterConfigsRequest::default()
                .with_validate_only(validate_only)
                .with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("conf"))
                        .with_configs(configs),
                ])
        };
        let r = c.call(&req(vec![op("retention.ms", 0, Some("5000"))], true), v);
        assert_eq!(r.responses[0].error_code, 0);
        assert_eq!(
            broker.describe_topic("conf").unwrap().config.retention_ms,
            1000
        );
        let r = c.call(
            &req(
                vec![
                    op("retention.ms", 0, Some("5000")),
                    op("cleanup.policy", 2, Some("compact")),
                ],
                false,
            ),
            v,
        );
        assert_eq!(
            r.responses[0].error_code, 0,
            "{:?}",
            r.responses[0].error_message
        );
        let config = broker.describe_topic("conf").unwrap().config;
        assert_eq!(config.retention_ms, 5000);
        assert_eq!(config.cleanup_policy.as_str(), "compact,delete");
        let r = c.call(
            &req(
                vec![
                    op("retention.ms", 1, None),
                    op("cleanup.policy", 3, Some("delete")),
                ],
                false,
            ),
            v,
        );
        assert_eq!(r.responses[0].error_code, 0);
        let config = broker.describe_topic("conf").unwrap().config;
        assert_eq!(config.retention_ms, TopicConfig::default().retention_ms);
        assert_eq!(config.cleanup_policy.as_str(), "compact");
        // APPEND to a key that is not a list; an unknown key; a bad value.
        for bad in [
            op("retention.ms", 2, Some("1")),
            op("retention.mss", 0, Some("1")),
            op("retention.ms", 0, Some("x")),
        ] {
            let r = c.call(&req(vec![bad], false), v);
            assert_ne!(r.responses[0].error_code, 0);
        }
        // Back to delete for the next round.
        let r = c.call(
            &req(vec![op("cleanup.policy", 0, Some("delete"))], false),
            v,
        );
        assert_eq!(r.responses[0].error_code, 0);
        // Broker resources are not altered here.
        let r = c.call(
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("1"))
                    .with_configs(vec![op("log.retention.ms", 0, Some("1"))]),
            ]),
            v,
        );
        assert_eq!(
            r.responses[0].error_code,
            ResponseError::InvalidRequest.code()
        );
    }
    for v in advertised(&mut c, ApiKey::AlterConfigs) {
        broker
            .alter_topic_config("conf", &[("retention.ms", "1234")])
            .unwrap();
        let r = c.call(
            &AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("conf"))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s("segment.ms"))
                        .with_value(Some(s("60000")))]),
            ]),
            v,
        );
        assert_eq!(
            r.responses[0].error_code, 0,
            "{:?}",
            r.responses[0].error_message
        );
        let config = broker.describe_topic("conf").unwrap().config;
        assert_eq!(config.segment_ms, 60_000);
        // The whole config was replaced: what was left out is the default again.
        assert_eq!(config.retention_ms, TopicConfig::default().retention_ms);
    }
}

#[test]
fn describe_cluster_at_every_version() {
    let broker = Broker::temporary().unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut c = Client::connect(&server);
    for v in advertised(&mut c, ApiKey::DescribeCluster) {
        let mut req = DescribeClusterRequest::default();
        if v >= 1 {
            req.endpoint_type = 1;
        }
        let r = c.call(&req, v);
        assert_eq!(r.error_code, 0);
        assert_eq!(r.cluster_id.len(), 22);
        assert_eq!(r.controller_id, BrokerId(NODE));
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.brokers[0].port, i32::from(server.local_addr().port()));
    }
}

fn batch(producer: ProducerFields, transactional: bool, values: &[&str]) -> Bytes {
    let mut b = BatchBuilder::new();
    b.set_producer(producer);
    b.set_transactional(transactional);
    for v in values {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        b.push(now, None, Some(v.as_bytes()), &[]).unwrap();
    }
    Bytes::from(b.finish())
}

fn produce(c: &mut Client, tid: Option<&str>, topic: &str, records: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_transactional_id(tid.map(|t| TransactionalId(s(t))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(tn(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records)),
            ])]);
    let r = c.call(&req, 9);
    r.responses[0].partition_responses[0].error_code
}

/// The values read_committed Fetches from 0 return up to the last stable offset, aborted
/// transactions dropped as a client drops them: a producer's batches are aborted from its
/// aborted transaction's first offset up to its next control batch (the abort marker).
fn fetch_committed(c: &mut Client, topic: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut aborting: Vec<i64> = Vec::new();
    let mut offset = 0;
    loop {
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_isolation_level(1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(tn(topic))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let r = c.call(&req, 11);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        if offset >= p.last_stable_offset {
            return out;
        }
        let mut aborted: Vec<(i64, i64)> = p
            .aborted_transactions
            .iter()
            .flatten()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect();
        let mut bytes: &[u8] = p.records.as_deref().unwrap_or(&[]);
        assert!(!bytes.is_empty(), "no progress at {offset}");
        while !bytes.is_empty() {
            let b = decode_batch(bytes).unwrap();
            let h = b.header;
            aborted.retain(|&(pid, first)| {
                if first <= h.base_offset {
                    aborting.push(pid);
                    false
                } else {
                    true
                }
            });
            if h.is_control() {
                aborting.retain(|&pid| pid != h.producer_id);
            } else if !(h.is_transactional() && aborting.contains(&h.producer_id)) {
                for r in b.records() {
                    out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                }
            }
            offset = h.next_offset();
            bytes = &bytes[h.total_bytes()..];
        }
    }
}

#[test]
fn transactions_through_the_wire_at_every_version() {
    let broker = Broker::temporary().unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut c = Client::connect(&server);
    let init_versions = advertised(&mut c, ApiKey::InitProducerId);
    let add_versions = advertised(&mut c, ApiKey::AddPartitionsToTxn);
    let offsets_versions = advertised(&mut c, ApiKey::AddOffsetsToTxn);
    let end_versions = advertised(&mut c, ApiKey::EndTxn);
    // Idempotent producers: a fresh id each time.
    let mut seen = Vec::new();
    for v in init_versions.clone() {
        let r = c.call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            v,
        );
        assert_eq!(r.error_code, 0);
        assert_eq!(r.producer_epoch, 0);
        assert!(!seen.contains(&r.producer_id.0));
        seen.push(r.producer_id.0);
    }
    let max = |r: &std::ops::RangeInclusive<i16>| *r.end();
    let rounds = [
        max(&init_versions),
        max(&add_versions),
        max(&offsets_versions),
        max(&end_versions),
    ]
    .into_iter()
    .max()
    .unwrap();
    for round in 0..=rounds {
        let at = |r: &std::ops::RangeInclusive<i16>| round.clamp(*r.start(), *r.end());
        let topic = format!("txn-{round}");
        broker.create_topic(&topic, TopicConfig::default()).unwrap();
        let tid = format!("tid-{round}");
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(&tid))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = c.call(&init, at(&init_versions));
        assert_eq!(r.error_code, 0);
        let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
        let add = |c: &mut Client, epoch: i16| {
            let r = c.call(
                &AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(TransactionalId(s(&tid)))
                    .with_v3_and_below_producer_id(ProducerId(pid))
                    .with_v3_and_below_producer_epoch(epoch)
                    .with_v3_and_below_topics(vec![
                        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                            .with_name(tn(&topic))
                            .with_partitions(vec![0]),
                    ]),
                at(&add_versions),
            );
            r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
        };
        let end = |c: &mut Client, epoch: i16, commit: bool| {
            c.call(
                &EndTxnRequest::default()
                    .with_transactional_id(TransactionalId(s(&tid)))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_committed(commit),
                at(&end_versions),
            )
            .error_code
        };
        // Committed: a, b.
        assert_eq!(add(&mut c, epoch), 0);
        let fields = |seq| ProducerFields {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
        };
        assert_eq!(
            produce(
                &mut c,
                Some(&tid),
                &topic,
                batch(fields(0), true, &["a", "b"])
            ),
            0
        );
        let r = c.call(
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s(&tid)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(GroupId(s("g"))),
            at(&offsets_versions),
        );
        assert_eq!(r.error_code, 0);
        let open = broker.describe_transaction(&tid).unwrap().unwrap();
        assert_eq!(open.state.name(), "Ongoing");
        assert_eq!(end(&mut c, epoch, true), 0);
        // A repeat of the commit succeeds; an abort of it does not.
        assert_eq!(end(&mut c, epoch, true), 0);
        assert_eq!(
            end(&mut c, epoch, false),
            ResponseError::InvalidTxnState.code()
        );
        // Aborted: c.
        assert_eq!(add(&mut c, epoch), 0);
        assert_eq!(
            produce(&mut c, Some(&tid), &topic, batch(fields(2), true, &["c"])),
            0
        );
        assert_eq!(end(&mut c, epoch, false), 0);
        // Committed: d.
        assert_eq!(add(&mut c, epoch), 0);
        assert_eq!(
            produce(&mut c, Some(&tid), &topic, batch(fields(3), true, &["d"])),
            0
        );
        assert_eq!(end(&mut c, epoch, true), 0);
        assert_eq!(fetch_committed(&mut c, &topic), ["a", "b", "d"]);
        // Another producer id, an older epoch, an unknown id.
        let fenced = if at(&add_versions) >= 2 {
            ResponseError::ProducerFenced
        } else {
            ResponseError::InvalidProducerEpoch
        };
        assert_eq!(add(&mut c, epoch.wrapping_sub(1)), fenced.code());
        let r = c.call(
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("never-initialized")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(true),
            at(&end_versions),
        );
        assert_eq!(r.error_code, ResponseError::InvalidProducerIdMapping.code());
        // An unknown topic: that partition fails, the others are not attempted.
        let r = c.call(
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s(&tid)))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(tn(&topic))
                        .with_partitions(vec![0]),
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(tn("nope"))
                        .with_partitions(vec![0]),
                ]),
            at(&add_versions),
        );
        let codes: Vec<i16> = r
            .results_by_topic_v3_and_below
            .iter()
            .map(|t| t.results_by_partition[0].partition_error_code)
            .collect();
        assert_eq!(
            codes,
            [
                ResponseError::OperationNotAttempted.code(),
                ResponseError::UnknownTopicOrPartition.code()
            ]
        );
        // A new InitProducerId fences this epoch; KIP-360's form with a stale epoch is
        // refused.
        let r = c.call(&init, at(&init_versions));
        assert_eq!(r.error_code, 0);
        assert_eq!(r.producer_epoch, epoch + 1);
        if at(&init_versions) >= 3 {
            let stale = init
                .clone()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch);
            let r = c.call(&stale, at(&init_versions));
            assert_ne!(r.error_code, 0);
            let current = init
                .clone()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch + 1);
            let r = c.call(&current, at(&init_versions));
            assert_eq!(r.error_code, 0);
            assert_eq!(r.producer_epoch, epoch + 2);
        }
    }
}

#[test]
fn producers_and_transactions_are_described_at_every_version() {
    let broker = Broker::temporary().unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut c = Client::connect(&server);
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let r = c.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("open-one"))))
            .with_transaction_timeout_ms(60_000),
        4,
    );
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let r = c.call(
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s("open-one")))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(tn("t"))
                    .with_partitions(vec![0]),
            ]),
        3,
    );
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    let fields = ProducerFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: 0,
    };
    assert_eq!(
        produce(&mut c, Some("open-one"), "t", batch(fields, true, &["x"])),
        0
    );
    for v in advertised(&mut c, ApiKey::DescribeProducers) {
        let r = c.call(
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(tn("t"))
                    .with_partition_indexes(vec![0, 7]),
            ]),
            v,
        );
        let p = &r.topics[0].partitions;
        assert_eq!(p[0].error_code, 0);
        assert_eq!(p[0].active_producers.len(), 1);
        assert_eq!(p[0].active_producers[0].producer_id, ProducerId(pid));
        assert_eq!(p[0].active_producers[0].current_txn_start_offset, 0);
        assert_eq!(
            p[1].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
    for v in advertised(&mut c, ApiKey::ListTransactions) {
        let r = c.call(&ListTransactionsRequest::default(), v);
        assert_eq!(r.error_code, 0);
        assert_eq!(r.transaction_states.len(), 1);
        assert_eq!(&*r.transaction_states[0].transaction_state, "Ongoing");
        let r = c.call(
            &ListTransactionsRequest::default().with_state_filters(vec![s("Empty")]),
            v,
        );
        assert!(r.transaction_states.is_empty());
        if v >= 2 {
            let r = c.call(
                &ListTransactionsRequest::default()
                    .with_transactional_id_pattern(Some(s("open-.*"))),
                v,
            );
            assert_eq!(r.transaction_states.len(), 1);
        }
    }
    for v in advertised(&mut c, ApiKey::DescribeTransactions) {
        let r = c.call(
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![
                TransactionalId(s("open-one")),
                TransactionalId(s("nope")),
            ]),
            v,
        );
        let t = &r.transaction_states[0];
        assert_eq!(t.error_code, 0);
        assert_eq!(&*t.transaction_state, "Ongoing");
        assert_eq!(t.producer_id, ProducerId(pid));
        assert_eq!(t.transaction_timeout_ms, 60_000);
        assert_eq!(t.topics.len(), 1);
        assert_eq!(t.topics[0].partitions, [0]);
        assert_eq!(
            r.transaction_states[1].error_code,
            ResponseError::TransactionalIdNotFound.code()
        );
    }
}

#[test]
fn delete_records_at_every_version_and_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    {
        let broker = Broker::open(dir.path()).unwrap();
        let server = broker.serve("127.0.0.1:0").unwrap();
        let mut c = Client::connect(&server);
        for v in advertised(&mut c, ApiKey::DeleteRecords) {
            let topic = format!("dr-{v}");
            // Small segments: deletion removes whole ones below the new start.
            broker
                .create_topic(&topic, TopicConfig::default().segment_bytes(200))
                .unwrap();
            let p = broker.topic(&topic).unwrap().partition(0).unwrap();
            for i in 0..20 {
                p.append(&[Record::new(format!("value-{i:04}"))]).unwrap();
            }
            let segments_before = p.metrics().get("num-log-segments").unwrap();
            let req = |offset: i64, partition: i32| {
                DeleteRecordsRequest::default()
                    .with_timeout_ms(1000)
                    .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                        .with_name(tn(&topic))
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(partition)
                                .with_offset(offset),
                        ])])
            };
            let r = c.call(&req(13, 0), v);
            let res = &r.topics[0].partitions[0];
            assert_eq!(res.error_code, 0);
            assert_eq!(res.low_watermark, 13);
            assert_eq!(p.log_start_offset(), 13);
            assert!(p.metrics().get("num-log-segments").unwrap() < segments_before);
            assert!(p.read(12, 1 << 20).is_err());
            let read = p.read(13, 1 << 20).unwrap();
            assert!(read.iter().any(|r| r.offset == 13));
            // Lower: nothing changes; past the end: out of range; unknown partition.
            let r = c.call(&req(5, 0), v);
            assert_eq!(r.topics[0].partitions[0].low_watermark, 13);
            let r = c.call(&req(21, 0), v);
            assert_eq!(
                r.topics[0].partitions[0].error_code,
                ResponseError::OffsetOutOfRange.code()
            );
            let r = c.call(&req(1, 3), v);
            assert_eq!(
                r.topics[0].partitions[0].error_code,
                ResponseError::UnknownTopicOrPartition.code()
            );
            if v == 0 {
                // -1: up to the high watermark.
                let r = c.call(&req(-1, 0), v);
                assert_eq!(r.topics[0].partitions[0].low_watermark, 20);
                expected.push((topic, 20));
            } else {
                expected.push((topic, 13));
            }
        }
        drop(server);
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    for (topic, start) in expected {
        let p = broker.topic(&topic).unwrap().partition(0).unwrap();
        assert_eq!(p.log_start_offset(), start, "{topic}");
        assert_eq!(p.log_end_offset(), 20, "{topic}");
    }
}

#[test]
fn sasl_plain_guards_every_other_api() {
    let broker = Broker::temporary().unwrap();
    let users = SaslPlainUsers::default()
        .insert("alice", "alice-secret")
        .insert("b", "c");
    let server = broker
        .serve_with(
            "127.0.0.1:0",
            ServerConfig::default().sasl_plain_users(users),
        )
        .unwrap();
    // Metadata before authenticating closes the connection.
    let mut c = Client::connect(&server);
    assert!(c.try_call(&MetadataRequest::default(), 12).is_err() || c.closed());
    for hv in 0..=1 {
        for av in 0..=2 {
            // Good credentials, at every version pair.
            let mut c = Client::connect(&server);
            let r = c.call(&ApiVersionsRequest::default(), 3);
            assert_eq!(r.error_code, 0);
            if hv == 0 && av > 0 {
                continue;
            }
            let r = c.call(
                &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
                hv,
            );
            assert_eq!(r.error_code, 0);
            assert_eq!(r.mechanisms, [s("PLAIN")]);
            let token = Bytes::from_static(b"\0alice\0alice-secret");
            if hv == 0 {
                // The bare token, answered by an empty frame.
                let mut frame = (token.len() as i32).to_be_bytes().to_vec();
                frame.extend_from_slice(&token);
                c.stream.write_all(&frame).unwrap();
                let mut size = [0u8; 4];
                c.stream.read_exact(&mut size).unwrap();
                assert_eq!(size, [0; 4]);
            } else {
                let r = c.call(
                    &SaslAuthenticateRequest::default().with_auth_bytes(token),
                    av,
                );
                assert_eq!(r.error_code, 0, "{:?}", r.error_message);
            }
            let r = c.call(&MetadataRequest::default(), 12);
            assert_eq!(r.brokers.len(), 1);
        }
    }
    for av in 0..=2 {
        // A wrong password: SASL_AUTHENTICATION_FAILED, then the connection closes.
        let mut c = Client::connect(&server);
        let r = c.call(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            1,
        );
        assert_eq!(r.error_code, 0);
        let r = c.call(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0alice\0wrong")),
            av,
        );
        assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
        assert!(c.closed());
    }
    // A version 0 token shorter than any request header.
    let mut c = Client::connect(&server);
    let r = c.call(
        &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        0,
    );
    assert_eq!(r.error_code, 0);
    c.stream.write_all(&[0, 0, 0, 4, 0, b'b', 0, b'c']).unwrap();
    let mut size = [0u8; 4];
    c.stream.read_exact(&mut size).unwrap();
    assert_eq!(size, [0; 4]);
    let r = c.call(&MetadataRequest::default(), 12);
    assert_eq!(r.brokers.len(), 1);
    // A wrong version 0 token closes the connection.
    let mut c = Client::connect(&server);
    c.call(
        &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        0,
    );
    c.stream.write_all(&[0, 0, 0, 4, 0, b'b', 0, b'x']).unwrap();
    assert!(c.closed());
    // Another mechanism.
    let mut c = Client::connect(&server);
    let r = c.call(
        &SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-256")),
        1,
    );
    assert_eq!(r.error_code, ResponseError::UnsupportedSaslMechanism.code());
    assert_eq!(r.mechanisms, [s("PLAIN")]);
}

#[test]
fn without_sasl_a_handshake_is_an_illegal_state_and_nothing_is_guarded() {
    let broker = Broker::temporary().unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut c = Client::connect(&server);
    let r = c.call(
        &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        1,
    );
    assert_eq!(r.error_code, ResponseError::IllegalSaslState.code());
    let r = c.call(&MetadataRequest::default(), 12);
    assert_eq!(r.brokers.len(), 1);
}

#[test]
fn hostile_numbers_get_errors_never_a_panic() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut c = Client::connect(&server);
    for (partitions, replication) in [(i32::MAX, 1), (i32::MIN, 1), (0, 1), (1, i16::MIN), (1, 0)] {
        let r = c.call(&create_request("hostile", partitions, replication), 7);
        assert_ne!(r.topics[0].error_code, 0, "{partitions} {replication}");
    }
    let mut assigned = create_request("assigned", -1, -1);
    assigned.topics[0].assignments =
        vec![create_topics_request::CreatableReplicaAssignment::default()
            .with_partition_index(i32::MAX)
            .with_broker_ids(vec![BrokerId(NODE)])];
    let r = c.call(&assigned, 7);
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::InvalidReplicaAssignment.code()
    );
    assigned.topics[0].assignments[0].partition_index = 0;
    let r = c.call(&assigned, 7);
    assert_eq!(r.topics[0].error_code, 0);
    for count in [i32::MIN, -1, 0, i32::MAX] {
        let r = c.call(
            &CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(tn("t"))
                    .with_count(count),
            ]),
            3,
        );
        assert_ne!(r.results[0].error_code, 0, "{count}");
    }
    for (partition, offset) in [
        (i32::MIN, 0),
        (-1, 0),
        (0, i64::MIN),
        (0, i64::MAX),
        (0, -2),
    ] {
        let r = c.call(
            &DeleteRecordsRequest::default().with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(tn("t"))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(partition)
                            .with_offset(offset),
                    ]),
            ]),
            2,
        );
        assert_ne!(r.topics[0].partitions[0].error_code, 0);
    }
    for resource_type in [i8::MIN, -1, 0, 1, 3, 8, 16, 32, i8::MAX] {
        let r = c.call(
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(s("t")),
            ]),
            4,
        );
        assert_ne!(r.results[0].error_code, 0);
    }
    for timeout in [i32::MIN, -1, 0, i32::MAX] {
        let r = c.call(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("h"))))
                .with_transaction_timeout_ms(timeout),
            5,
        );
        assert_eq!(
            r.error_code,
            ResponseError::InvalidTransactionTimeout.code(),
            "{timeout}"
        );
    }
    for (pid, epoch) in [(i64::MIN, i16::MIN), (-1, -1), (i64::MAX, i16::MAX)] {
        let r = c.call(
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("h")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(true),
            4,
        );
        assert_ne!(r.error_code, 0);
        let r = c.call(
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("h")))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(tn("t"))
                        .with_partitions(vec![i32::MIN, -1, 0, i32::MAX]),
                ]),
            3,
        );
        assert!(r.results_by_topic_v3_and_below[0]
            .results_by_partition
            .iter()
            .all(|p| p.partition_error_code != 0));
    }
    let r = c.call(
        &ListTransactionsRequest::default()
            .with_duration_filter(i64::MIN)
            .with_transactional_id_pattern(Some(s(&".*".repeat(10_000)))),
        2,
    );
    assert_eq!(r.error_code, ResponseError::InvalidRegularExpression.code());
    let r = c.call(
        &ListTransactionsRequest::default().with_duration_filter(i64::MAX),
        2,
    );
    assert_eq!(r.error_code, 0);
    // Still serving.
    let r = c.call(&MetadataRequest::default(), 12);
    assert_eq!(r.brokers.len(), 1);
}
