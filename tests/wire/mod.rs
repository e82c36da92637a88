//! A minimal Kafka client for the wire-protocol tests: encodes one request at a chosen version
//! with the `kafka-protocol` crate, sends it over a `TcpStream` and decodes the response, so
//! the tests speak to the server exactly as an outside client does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// One client connection.
pub struct Conn {
    pub stream: TcpStream,
    next_correlation: i32,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connecting to the server");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            next_correlation: 1,
        }
    }

    /// Sends `request` as `key` at `version` without waiting; returns its correlation id.
    pub fn send(&mut self, key: ApiKey, version: i16, request: &RequestKind) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let frame = request_frame(key, version, correlation, request);
        self.stream.write_all(&frame).expect("sending a request");
        correlation
    }

    /// Reads one response frame (without its size prefix); `None` when the server closed the
    /// connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        read_frame(&mut self.stream)
    }

    /// Reads and decodes the response to a request of `key` at `version`.
    pub fn recv(&mut self, key: ApiKey, version: i16) -> (i32, ResponseKind) {
        let frame = self
            .read_frame()
            .unwrap_or_else(|| panic!("{key:?} v{version}: the server closed the connection"));
        decode_response(key, version, frame)
    }

    /// Sends a request and returns its decoded response (checking the correlation id).
    pub fn call(
        &mut self,
        key: ApiKey,
        version: i16,
        request: impl Into<RequestKind>,
    ) -> ResponseKind {
        let request = request.into();
        let id = self.send(key, version, &request);
        let (got, response) = self.recv(key, version);
        assert_eq!(got, id, "{key:?} v{version}: correlation id");
        response
    }

    /// True when the server has closed this connection (reads end) within `within`.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// A whole request frame: size prefix, header, body.
pub fn request_frame(
    key: ApiKey,
    version: i16,
    correlation: i32,
    request: &RequestKind,
) -> Vec<u8> {
    let body = request_body(key, version, correlation, request);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A request's header and body, without the size prefix.
pub fn request_body(key: ApiKey, version: i16, correlation: i32, request: &RequestKind) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("embroker-test")));
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap_or_else(|e| panic!("{key:?} v{version}: encoding the header: {e}"));
    request
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version}: encoding the request: {e:#}"));
    buf.to_vec()
}

/// Reads one size-prefixed frame; `None` at the end of the stream or on a reset.
pub fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let size = i32::from_be_bytes(size);
    assert!(size >= 4, "a response of {size} bytes");
    let mut buf = vec![0u8; size as usize];
    stream.read_exact(&mut buf).ok()?;
    Some(Bytes::from(buf))
}

/// Decodes a response frame (header and body) of `key` at `version`.
pub fn decode_response(key: ApiKey, version: i16, mut frame: Bytes) -> (i32, ResponseKind) {
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .unwrap_or_else(|e| panic!("{key:?} v{version}: decoding the response header: {e}"));
    let response = ResponseKind::decode(key, &mut frame, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version}: decoding the response: {e:#}"));
    assert!(
        frame.is_empty(),
        "{key:?} v{version}: {} bytes after the response",
        frame.len()
    );
    (header.correlation_id, response)
}

/// A request of `key` with every field at its default.
pub fn default_request(key: ApiKey) -> Option<RequestKind> {
    Some(match key {
        ApiKey::Produce => RequestKind::Produce(Default::default()),
        ApiKey::Fetch => RequestKind::Fetch(Default::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(Default::default()),
        ApiKey::Metadata => RequestKind::Metadata(Default::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(Default::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(Default::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(Default::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(Default::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(Default::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(Default::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(Default::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(Default::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(Default::default()),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(Default::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(Default::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(Default::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(Default::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(Default::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(Default::default()),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(Default::default()),
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(Default::default()),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(Default::default()),
        ApiKey::EndTxn => RequestKind::EndTxn(Default::default()),
        ApiKey::WriteTxnMarkers => RequestKind::WriteTxnMarkers(Default::default()),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(Default::default()),
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(Default::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(Default::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(Default::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(Default::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(Default::default()),
        ApiKey::AlterReplicaLogDirs => RequestKind::AlterReplicaLogDirs(Default::default()),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(Default::default()),
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(Default::default()),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(Default::default()),
        ApiKey::CreateDelegationToken => RequestKind::CreateDelegationToken(Default::default()),
        ApiKey::RenewDelegationToken => RequestKind::RenewDelegationToken(Default::default()),
        ApiKey::ExpireDelegationToken => RequestKind::ExpireDelegationToken(Default::default()),
        ApiKey::DescribeDelegationToken => RequestKind::DescribeDelegationToken(Default::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(Default::default()),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(Default::default()),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(Default::default()),
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(Default::default())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(Default::default())
        }
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(Default::default()),
        ApiKey::DescribeClientQuotas => RequestKind::DescribeClientQuotas(Default::default()),
        ApiKey::AlterClientQuotas => RequestKind::AlterClientQuotas(Default::default()),
        ApiKey::DescribeUserScramCredentials => {
            RequestKind::DescribeUserScramCredentials(Default::default())
        }
        ApiKey::AlterUserScramCredentials => {
            RequestKind::AlterUserScramCredentials(Default::default())
        }
        ApiKey::Vote => RequestKind::Vote(Default::default()),
        ApiKey::BeginQuorumEpoch => RequestKind::BeginQuorumEpoch(Default::default()),
        ApiKey::EndQuorumEpoch => RequestKind::EndQuorumEpoch(Default::default()),
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(Default::default()),
        ApiKey::AlterPartition => RequestKind::AlterPartition(Default::default()),
        ApiKey::UpdateFeatures => RequestKind::UpdateFeatures(Default::default()),
        ApiKey::Envelope => RequestKind::Envelope(Default::default()),
        ApiKey::FetchSnapshot => RequestKind::FetchSnapshot(Default::default()),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(Default::default()),
        ApiKey::DescribeProducers => RequestKind::DescribeProducers(Default::default()),
        ApiKey::BrokerRegistration => RequestKind::BrokerRegistration(Default::default()),
        ApiKey::BrokerHeartbeat => RequestKind::BrokerHeartbeat(Default::default()),
        ApiKey::UnregisterBroker => RequestKind::UnregisterBroker(Default::default()),
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(Default::default()),
        ApiKey::ListTransactions => RequestKind::ListTransactions(Default::default()),
        ApiKey::AllocateProducerIds => RequestKind::AllocateProducerIds(Default::default()),
        ApiKey::ConsumerGroupHeartbeat => RequestKind::ConsumerGroupHeartbeat(Default::default()),
        ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(Default::default()),
        ApiKey::ControllerRegistration => RequestKind::ControllerRegistration(Default::default()),
        ApiKey::GetTelemetrySubscriptions => {
            RequestKind::GetTelemetrySubscriptions(Default::default())
        }
        ApiKey::PushTelemetry => RequestKind::PushTelemetry(Default::default()),
        ApiKey::AssignReplicasToDirs => RequestKind::AssignReplicasToDirs(Default::default()),
        ApiKey::ListConfigResources => RequestKind::ListConfigResources(Default::default()),
        ApiKey::DescribeTopicPartitions => RequestKind::DescribeTopicPartitions(Default::default()),
        ApiKey::ShareGroupHeartbeat => RequestKind::ShareGroupHeartbeat(Default::default()),
        ApiKey::ShareGroupDescribe => RequestKind::ShareGroupDescribe(Default::default()),
        ApiKey::ShareFetch => RequestKind::ShareFetch(Default::default()),
        ApiKey::ShareAcknowledge => RequestKind::ShareAcknowledge(Default::default()),
        ApiKey::AddRaftVoter => RequestKind::AddRaftVoter(Default::default()),
        ApiKey::RemoveRaftVoter => RequestKind::RemoveRaftVoter(Default::default()),
        ApiKey::UpdateRaftVoter => RequestKind::UpdateRaftVoter(Default::default()),
        ApiKey::InitializeShareGroupState => {
            RequestKind::InitializeShareGroupState(Default::default())
        }
        ApiKey::ReadShareGroupState => RequestKind::ReadShareGroupState(Default::default()),
        ApiKey::WriteShareGroupState => RequestKind::WriteShareGroupState(Default::default()),
        ApiKey::DeleteShareGroupState => RequestKind::DeleteShareGroupState(Default::default()),
        ApiKey::ReadShareGroupStateSummary => {
            RequestKind::ReadShareGroupStateSummary(Default::default())
        }
        ApiKey::DescribeShareGroupOffsets => {
            RequestKind::DescribeShareGroupOffsets(Default::default())
        }
        ApiKey::AlterShareGroupOffsets => RequestKind::AlterShareGroupOffsets(Default::default()),
        ApiKey::DeleteShareGroupOffsets => RequestKind::DeleteShareGroupOffsets(Default::default()),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// Raw bytes helper: `BufMut` over a `Vec`.
pub fn put_i32(v: &mut Vec<u8>, x: i32) {
    v.put_i32(x);
}
