//! Request decoding that cannot be made to allocate more than the request holds.
//!
//! The `kafka-protocol` crate (0.18) decodes an array by reading its element count and calling
//! `Vec::with_capacity(count)` before it decodes one element: a request of a few bytes that
//! claims 2³¹ elements makes it ask the allocator for `2³¹ × size_of::<Element>()` bytes,
//! often over a hundred gigabytes, and an allocation that fails aborts the whole process (not
//! a panic: nothing can catch it). An 18-byte Metadata v1 request did that here (the
//! `server_request` fuzz target and `tests/server_hostile.rs`).
//!
//! Every element of a Kafka array takes at least one byte on the wire, so a count larger than
//! the bytes left after it cannot be part of a valid request. This module decodes each request
//! first through [`Probe`], a buffer that watches the reads the decoder makes of the two ways
//! a count or a length is written:
//!
//! - An unsigned varint (flexible versions' compact arrays, strings and bytes, and tagged
//!   fields). In a request's schema a varint is never a plain value, so one of two bytes or
//!   more whose value is larger than the bytes after it refuses the request at once, before
//!   the decoder sees its last byte; so does a varint of more than five bytes, as Kafka's
//!   reader refuses one. The probe cannot tell the first byte of a varint from a later one,
//!   so it checks every byte over 127 as a start: a later byte of a valid varint reads as a
//!   smaller value that ends where the varint ends, so it passes whenever the varint does.
//!   (A fuzzed input where a check at a later byte went the other way, by rewriting that
//!   byte, made the decoder see 2²⁸ elements: nothing is rewritten now.)
//! - A 4-byte integer (older versions' arrays, strings' and bytes' lengths, and many plain
//!   fields). One larger than the bytes after it is replaced by a count of zero, so the probe
//!   allocates nothing large. If that probe fails, so would the request as it is (the value
//!   was either a count that cannot fit or a field that does not matter to the failure), and
//!   it is refused. Such a value may be an ordinary field (a Fetch's `max_bytes` of 50 MiB
//!   in a request of 100 bytes), so the request is probed a second time with those values at
//!   one; if the decoder reads the same positions both times, the values did not steer the
//!   decoding (they are plain fields), and the request is decoded as it is, with every count
//!   bounded by the bytes after it. If they steer it, they are counts or lengths larger than
//!   the request, and it is refused as malformed, which it is.
//!
//! A request with no such value is decoded once, by the probe itself.
//!
//! What remains allocated up front is at most `remaining bytes × size_of::<Element>()` per
//! array, bounded by [`ServerConfig::max_request_bytes`](super::ServerConfig).

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestKind};
use kafka_protocol::protocol::buf::ByteBuf;
use kafka_protocol::protocol::Decodable;

/// A buffer over a request body that records where the decoder reads counts and lengths and
/// replaces those larger than the rest of the body.
struct Probe {
    data: Bytes,
    pos: usize,
    /// The count given in place of a too-large 4-byte one: 0 or 1 elements.
    extra: i32,
    /// How many values were replaced.
    replaced: usize,
    /// Why the request was refused outright (a varint count larger than the request).
    refused: Option<&'static str>,
    /// A digest of the positions of every intercepted read (FNV-1a), and their number.
    trace: u64,
    reads: u64,
}

impl Probe {
    fn new(data: Bytes, extra: i32) -> Probe {
        Probe {
            data,
            pos: 0,
            extra,
            replaced: 0,
            refused: None,
            trace: 0xcbf2_9ce4_8422_2325,
            reads: 0,
        }
    }

    fn record(&mut self, pos: usize) {
        self.reads += 1;
        for b in (pos as u64).to_be_bytes() {
            self.trace ^= u64::from(b);
            self.trace = self.trace.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The error a refused read returns (the decoder stops there; `refused` says why).
    fn refuse(&self) -> bytes::TryGetError {
        bytes::TryGetError {
            requested: 1,
            available: 0,
        }
    }

    /// The unsigned varint starting at `pos`, read as `kafka-protocol` reads one (at most five
    /// bytes, stopping at the first byte without its high bit): its value and length, or `None`
    /// when the body ends first.
    fn varint_at(&self, pos: usize) -> Option<(u64, usize)> {
        let mut value = 0u64;
        for i in 0..5 {
            let b = *self.data.get(pos + i)?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some((value, i + 1));
            }
        }
        Some((value, 5))
    }
}

impl Buf for Probe {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn chunk(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    fn advance(&mut self, cnt: usize) {
        self.pos = self.pos.saturating_add(cnt).min(self.data.len());
    }

    fn try_get_i32(&mut self) -> Result<i32, bytes::TryGetError> {
        let at = self.pos;
        let Some(raw) = self.data.get(at..at + 4) else {
            return Err(bytes::TryGetError {
                requested: 4,
                available: self.remaining(),
            });
        };
        let value = i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        self.pos += 4;
        self.record(at);
        if usize::try_from(value).is_ok_and(|v| v > self.remaining()) {
            // An array of this many elements cannot fit in what is left.
            self.replaced += 1;
            return Ok(self.extra);
        }
        Ok(value)
    }

    fn try_get_u8(&mut self) -> Result<u8, bytes::TryGetError> {
        let at = self.pos;
        let Some(&byte) = self.data.get(at) else {
            return Err(bytes::TryGetError {
                requested: 1,
                available: 0,
            });
        };
        if byte >= 0x80 {
            // The first or a later byte of an unsigned varint of two or more bytes: in a
            // request, always a count or a length (a compact array or string, a tagged field's
            // count, tag or size), or a boolean written as a byte over 127, which no client
            // writes. Which one is not known here, so every such position is read as the start
            // of a varint. At the true start that is the decoder's value; a later byte of a
            // valid varint reads as a smaller value ending at the same byte, so it never trips
            // the check below that its start passes.
            match self.varint_at(at) {
                Some((_, 5)) if self.data.get(at + 4).is_some_and(|&b| b >= 0x80) => {
                    // Kafka's reader refuses a sixth byte ("varint is too long").
                    self.refused = Some("a varint longer than five bytes");
                    return Err(self.refuse());
                }
                Some((value, len)) => {
                    let after = self.data.len() - at - len;
                    // A compact count of n elements is written n + 1.
                    if value.saturating_sub(1) > after as u64 {
                        self.refused =
                            Some("a compact count or length larger than the rest of the request");
                        return Err(self.refuse());
                    }
                }
                None => {} // the body ends inside it: the decoder fails on its own
            }
        }
        self.pos += 1;
        self.record(at);
        Ok(byte)
    }
}

impl ByteBuf for Probe {
    fn peek_bytes(&mut self, r: std::ops::Range<usize>) -> Bytes {
        let start = (self.pos + r.start).min(self.data.len());
        let end = (self.pos + r.end).clamp(start, self.data.len());
        self.data.slice(start..end)
    }

    fn get_bytes(&mut self, size: usize) -> Bytes {
        let end = self.pos.saturating_add(size).min(self.data.len());
        let out = self.data.slice(self.pos..end);
        self.pos = end;
        out
    }
}

/// Decodes one message of type `T` from `body`, refusing counts and lengths larger than the
/// body (see the module docs). Bytes after the message are ignored, as Kafka does.
fn checked<T: Decodable>(body: &Bytes, version: i16) -> Result<T, String> {
    let mut first = Probe::new(body.clone(), 0);
    // A probe that fails means a request that fails: a replaced value was either a plain
    // field (the request as it is fails at the same place) or a count larger than the bytes
    // left (it cannot decode at all).
    let decoded = T::decode(&mut first, version);
    if let Some(why) = first.refused {
        return Err(why.into());
    }
    let message = decoded.map_err(|e| format!("{e:#}"))?;
    if first.replaced == 0 {
        // Nothing was replaced: the probe read the request as it is.
        return finish(message, first.remaining());
    }
    let mut second = Probe::new(body.clone(), 1);
    let again = T::decode(&mut second, version);
    if again.is_err()
        || second.refused.is_some()
        || (first.trace, first.reads, first.pos) != (second.trace, second.reads, second.pos)
    {
        return Err("a count or length larger than the rest of the request".into());
    }
    // The large values are plain fields: the request read as it is allocates no more than
    // the probe did.
    let mut real = body.clone();
    let message = T::decode(&mut real, version).map_err(|e| format!("{e:#}"))?;
    finish(message, real.remaining())
}

/// Bytes after a whole message are ignored, as Kafka's broker ignores them (it parses a
/// request from a buffer and never looks past its end): librdkafka 2.x sends three after a
/// Metadata v12 body.
fn finish<T>(message: T, left: usize) -> Result<T, String> {
    if left > 0 {
        log::debug!("{left} bytes after a request body ignored");
    }
    Ok(message)
}

/// `RequestKind::decode` for a request body, with every count and length bounded by the body.
pub(crate) fn decode_request(
    key: ApiKey,
    body: &Bytes,
    version: i16,
) -> Result<RequestKind, String> {
    Ok(match key {
        ApiKey::Produce => RequestKind::Produce(checked(body, version)?),
        ApiKey::Fetch => RequestKind::Fetch(checked(body, version)?),
        ApiKey::ListOffsets => RequestKind::ListOffsets(checked(body, version)?),
        ApiKey::Metadata => RequestKind::Metadata(checked(body, version)?),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(checked(body, version)?),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(checked(body, version)?),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(checked(body, version)?),
        ApiKey::JoinGroup => RequestKind::JoinGroup(checked(body, version)?),
        ApiKey::Heartbeat => RequestKind::Heartbeat(checked(body, version)?),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(checked(body, version)?),
        ApiKey::SyncGroup => RequestKind::SyncGroup(checked(body, version)?),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(checked(body, version)?),
        ApiKey::ListGroups => RequestKind::ListGroups(checked(body, version)?),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(checked(body, version)?),
        ApiKey::ApiVersions => RequestKind::ApiVersions(checked(body, version)?),
        ApiKey::CreateTopics => RequestKind::CreateTopics(checked(body, version)?),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(checked(body, version)?),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(checked(body, version)?),
        ApiKey::InitProducerId => RequestKind::InitProducerId(checked(body, version)?),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(checked(body, version)?),
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(checked(body, version)?),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(checked(body, version)?),
        ApiKey::EndTxn => RequestKind::EndTxn(checked(body, version)?),
        ApiKey::WriteTxnMarkers => RequestKind::WriteTxnMarkers(checked(body, version)?),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(checked(body, version)?),
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(checked(body, version)?),
        ApiKey::CreateAcls => RequestKind::CreateAcls(checked(body, version)?),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(checked(body, version)?),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(checked(body, version)?),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(checked(body, version)?),
        ApiKey::AlterReplicaLogDirs => RequestKind::AlterReplicaLogDirs(checked(body, version)?),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(checked(body, version)?),
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(checked(body, version)?),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(checked(body, version)?),
        ApiKey::CreateDelegationToken => {
            RequestKind::CreateDelegationToken(checked(body, version)?)
        }
        ApiKey::RenewDelegationToken => RequestKind::RenewDelegationToken(checked(body, version)?),
        ApiKey::ExpireDelegationToken => {
            RequestKind::ExpireDelegationToken(checked(body, version)?)
        }
        ApiKey::DescribeDelegationToken => {
            RequestKind::DescribeDelegationToken(checked(body, version)?)
        }
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(checked(body, version)?),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(checked(body, version)?),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(checked(body, version)?)
        }
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(checked(body, version)?)
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(checked(body, version)?)
        }
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(checked(body, version)?),
        ApiKey::DescribeClientQuotas => RequestKind::DescribeClientQuotas(checked(body, version)?),
        ApiKey::AlterClientQuotas => RequestKind::AlterClientQuotas(checked(body, version)?),
        ApiKey::DescribeUserScramCredentials => {
            RequestKind::DescribeUserScramCredentials(checked(body, version)?)
        }
        ApiKey::AlterUserScramCredentials => {
            RequestKind::AlterUserScramCredentials(checked(body, version)?)
        }
        ApiKey::Vote => RequestKind::Vote(checked(body, version)?),
        ApiKey::BeginQuorumEpoch => RequestKind::BeginQuorumEpoch(checked(body, version)?),
        ApiKey::EndQuorumEpoch => RequestKind::EndQuorumEpoch(checked(body, version)?),
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(checked(body, version)?),
        ApiKey::AlterPartition => RequestKind::AlterPartition(checked(body, version)?),
        ApiKey::UpdateFeatures => RequestKind::UpdateFeatures(checked(body, version)?),
        ApiKey::Envelope => RequestKind::Envelope(checked(body, version)?),
        ApiKey::FetchSnapshot => RequestKind::FetchSnapshot(checked(body, version)?),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(checked(body, version)?),
        ApiKey::DescribeProducers => RequestKind::DescribeProducers(checked(body, version)?),
        ApiKey::BrokerRegistration => RequestKind::BrokerRegistration(checked(body, version)?),
        ApiKey::BrokerHeartbeat => RequestKind::BrokerHeartbeat(checked(body, version)?),
        ApiKey::UnregisterBroker => RequestKind::UnregisterBroker(checked(body, version)?),
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(checked(body, version)?),
        ApiKey::ListTransactions => RequestKind::ListTransactions(checked(body, version)?),
        ApiKey::AllocateProducerIds => RequestKind::AllocateProducerIds(checked(body, version)?),
        ApiKey::ConsumerGroupHeartbeat => {
            RequestKind::ConsumerGroupHeartbeat(checked(body, version)?)
        }
        ApiKey::ConsumerGroupDescribe => {
            RequestKind::ConsumerGroupDescribe(checked(body, version)?)
        }
        ApiKey::ControllerRegistration => {
            RequestKind::ControllerRegistration(checked(body, version)?)
        }
        ApiKey::GetTelemetrySubscriptions => {
            RequestKind::GetTelemetrySubscriptions(checked(body, version)?)
        }
        ApiKey::PushTelemetry => RequestKind::PushTelemetry(checked(body, version)?),
        ApiKey::AssignReplicasToDirs => RequestKind::AssignReplicasToDirs(checked(body, version)?),
        ApiKey::ListConfigResources => RequestKind::ListConfigResources(checked(body, version)?),
        ApiKey::DescribeTopicPartitions => {
            RequestKind::DescribeTopicPartitions(checked(body, version)?)
        }
        ApiKey::ShareGroupHeartbeat => RequestKind::ShareGroupHeartbeat(checked(body, version)?),
        ApiKey::ShareGroupDescribe => RequestKind::ShareGroupDescribe(checked(body, version)?),
        ApiKey::ShareFetch => RequestKind::ShareFetch(checked(body, version)?),
        ApiKey::ShareAcknowledge => RequestKind::ShareAcknowledge(checked(body, version)?),
        ApiKey::AddRaftVoter => RequestKind::AddRaftVoter(checked(body, version)?),
        ApiKey::RemoveRaftVoter => RequestKind::RemoveRaftVoter(checked(body, version)?),
        ApiKey::UpdateRaftVoter => RequestKind::UpdateRaftVoter(checked(body, version)?),
        ApiKey::InitializeShareGroupState => {
            RequestKind::InitializeShareGroupState(checked(body, version)?)
        }
        ApiKey::ReadShareGroupState => RequestKind::ReadShareGroupState(checked(body, version)?),
        ApiKey::WriteShareGroupState => RequestKind::WriteShareGroupState(checked(body, version)?),
        ApiKey::DeleteShareGroupState => {
            RequestKind::DeleteShareGroupState(checked(body, version)?)
        }
        ApiKey::ReadShareGroupStateSummary => {
            RequestKind::ReadShareGroupStateSummary(checked(body, version)?)
        }
        ApiKey::DescribeShareGroupOffsets => {
            RequestKind::DescribeShareGroupOffsets(checked(body, version)?)
        }
        ApiKey::AlterShareGroupOffsets => {
            RequestKind::AlterShareGroupOffsets(checked(body, version)?)
        }
        ApiKey::DeleteShareGroupOffsets => {
            RequestKind::DeleteShareGroupOffsets(checked(body, version)?)
        }
        #[allow(unreachable_patterns)]
        other => return Err(format!("{other:?} has no decoder")),
    })
}
