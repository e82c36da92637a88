//! Produce: client batches onto partition logs, as they are.
//!
//! Each partition's bytes go to `PartitionLog::append_client_batches`, which checks them as
//! Kafka's `LogValidator` does (CRC, offsets, sizes, timestamps, producer sequences and
//! epochs) and stamps offsets without re-encoding, so a client's compressed batch is stored
//! compressed. With `acks=-1` the response waits until every partition's batch is durable
//! (the log's group commit: concurrent producers share fsyncs); `acks=1` answers once the
//! batch is in the log; `acks=0` answers nothing.

use std::collections::BTreeMap;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::partition_log;
use crate::codec;
use crate::error::Error;
use crate::server::connection::RequestContext;
use crate::server::errors;
use crate::types::TopicPartition;

/// Produce. `None` for `acks=0` (no response is sent).
pub(crate) fn produce(ctx: &RequestContext<'_>, req: ProduceRequest) -> Option<ProduceResponse> {
    let broker = &ctx.shared.broker.inner;
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // (topic index, partition index, log, end offset) to fsync for acks=-1.
    let mut to_sync = Vec::new();
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let mut out = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            if !valid_acks {
                out.error_code = ResponseError::InvalidRequiredAcks.code();
                partitions.push(out);
                continue;
            }
            let result = partition_log(broker, &name, p.index).and_then(|log| {
                let bytes = p.records.as_deref().unwrap_or(&[]);
                verify_transactional(
                    broker,
                    req.transactional_id.as_deref().map(|t| t.as_str()),
                    &name,
                    p.index,
                    bytes,
                )?;
                let info = log.append_client_batches(bytes)?;
                Ok((log, info))
            });
            match result {
                Ok((log, info)) => {
                    out.base_offset = info.base_offset;
                    out.log_append_time_ms = info.log_append_time.unwrap_or(-1);
                    out.log_start_offset = log.log_start_offset();
                    if acks == -1 {
                        let end = info.last_offset.saturating_add(1);
                        to_sync.push((responses.len(), partitions.len(), log, end));
                    }
                }
                Err(e) => {
                    out.error_code = errors::code(&e);
                    out.error_message = Some(StrBytes::from_string(e.to_string()));
                }
            }
            partitions.push(out);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    // Every append is in before the first fsync, so one sync covers all of a log's batches
    // in this request: each log is synced once, to its largest end.
    let mut ends: BTreeMap<(String, i32), (usize, i64)> = BTreeMap::new();
    for (i, (_, _, log, end)) in to_sync.iter().enumerate() {
        let key = (log.topic().to_string(), log.partition());
        let e = ends.entry(key).or_insert((i, *end));
        if *end >= e.1 {
            *e = (i, *end);
        }
    }
    let mut failed: BTreeMap<(String, i32), crate::error::Error> = BTreeMap::new();
    for (key, (i, end)) in &ends {
        if let Err(e) = to_sync[*i].2.sync_to(*end) {
            failed.insert(key.clone(), e);
        }
    }
    for (t, p, log, _) in &to_sync {
        let key = (log.topic().to_string(), log.partition());
        let Some(e) = failed.get(&key) else { continue };
        if let Some(out) = responses
            .get_mut(*t)
            .and_then(|r| r.partition_responses.get_mut(*p))
        {
            out.error_code = errors::code(e);
            out.error_message = Some(StrBytes::from_string(e.to_string()));
            out.base_offset = -1;
        }
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// Kafka's transaction verification (KIP-890 part 1): a transactional batch is written only
/// while its producer's transaction holds the partition (AddPartitionsToTxn came first), under
/// the request's `transactional_id`. A batch that fails to parse is left to
/// `append_client_batches`, which refuses it with the precise error.
fn verify_transactional(
    broker: &crate::broker::BrokerInner,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    mut bytes: &[u8],
) -> crate::error::Result<()> {
    let mut tp = None;
    while let Ok(h) = codec::peek_header(bytes) {
        if h.is_transactional() && h.producer_id >= 0 {
            let Some(tid) = transactional_id else {
                return Err(Error::InvalidTxnState {
                    transactional_id: String::new(),
                    state: "none: a transactional batch in a request without a transactional id"
                        .into(),
                    operation: "produce",
                });
            };
            let tp = tp.get_or_insert_with(|| TopicPartition::new(topic, partition));
            broker
                .txns()
                .verify_partition(tid, h.producer_id, h.producer_epoch, tp)?;
        }
        bytes = bytes.get(h.total_bytes()..).unwrap_or(&[]);
    }
    Ok(())
}
