//! Fetch: stored batches handed to clients as they are, with Kafka's long poll.
//!
//! Batches go out exactly as the log holds them (compressed ones compressed), whole: a read
//! never splits a batch, and the first partition with data gets at least one batch however
//! large (Kafka's "min one message"), later ones only while the response's `max_bytes` lasts.
//! A partition's share is the smallest of the client's `partition_max_bytes`, the server's
//! `max_partition_fetch_bytes` and what is left of `max_bytes` (at least one batch).
//! `read_committed` reads stop at the last stable offset and carry the aborted transactions
//! overlapping them, for the client to drop. Fetch sessions (KIP-227) are refused politely:
//! every response has session id 0, which tells a client to keep sending full requests.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::partition_log;
use crate::server::connection::RequestContext;
use crate::server::errors;

/// Fetch. Waits up to `max_wait_ms` (bounded by the server's `max_fetch_wait`) for
/// `min_bytes` of data, waking on every append, and returns what there is then.
pub(crate) fn fetch(ctx: &RequestContext<'_>, req: FetchRequest) -> FetchResponse {
    let shared = ctx.shared;
    if req.session_epoch > 0 {
        // An incremental fetch of a session this broker never created.
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
    }
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0))
        .min(shared.config.max_fetch_wait);
    let deadline = Instant::now().checked_add(wait);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    // No partition to wait for: Kafka answers at once.
    let nothing = req.topics.iter().all(|t| t.partitions.is_empty());
    let notifier = shared.broker.inner.notifier().clone();
    loop {
        let seen = notifier.events();
        let (response, bytes, failed) = read_once(ctx, &req);
        let expired = deadline.is_none_or(|d| Instant::now() >= d);
        // Kafka answers at once when min_bytes are there (so always for min_bytes 0) or when
        // reading a partition failed (unknown partition, offset out of range, ...): a client
        // must hear of an error now, not after max_wait_ms.
        if bytes >= min_bytes
            || failed
            || nothing
            || expired
            || shared.stopping()
            || response.error_code != 0
        {
            return response;
        }
        if !notifier.wait_past(seen, deadline) {
            // The deadline passed with nothing new: answer with what there is.
            return read_once(ctx, &req).0;
        }
    }
}

/// One pass over the requested partitions; returns the response, its record bytes, and
/// whether any partition has an error.
fn read_once(ctx: &RequestContext<'_>, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let broker = &ctx.shared.broker.inner;
    let committed = req.isolation_level == 1;
    let max_bytes = if ctx.version() >= 3 {
        usize::try_from(req.max_bytes).unwrap_or(0)
    } else {
        usize::MAX
    }
    .min(ctx.shared.config.max_fetch_bytes);
    let mut total = 0usize;
    let mut failed = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let name = topic.topic.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            // Aborted transactions are listed for read_committed only (null otherwise, as
            // Kafka sends them).
            let mut out = PartitionData::default()
                .with_aborted_transactions(None)
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1));
            let log = match partition_log(broker, &name, p.partition) {
                Ok(log) => log,
                Err(e) => {
                    out.error_code = errors::code(&e);
                    failed = true;
                    partitions.push(out);
                    continue;
                }
            };
            out.high_watermark = log.log_end_offset();
            out.last_stable_offset = log.last_stable_offset();
            out.log_start_offset = log.log_start_offset();
            let room = max_bytes.saturating_sub(total);
            let partition_max = usize::try_from(p.partition_max_bytes)
                .unwrap_or(0)
                // A cap of 0 reads as 1: one batch a partition, not none after the first.
                .min(ctx.shared.config.max_partition_fetch_bytes.max(1))
                .min(room);
            // After the first data, a partition gets only what is left of max_bytes; the first
            // gets at least one batch (the segment read returns one however large).
            if partition_max == 0 && total > 0 {
                out.records = Some(Bytes::new());
                if committed {
                    out.aborted_transactions = Some(Vec::new());
                }
                partitions.push(out);
                continue;
            }
            match log.read_stored(p.fetch_offset, partition_max.max(1), committed) {
                Ok((records, aborted)) => {
                    let bytes = records.bytes().clone();
                    total = total.saturating_add(bytes.len());
                    out.records = Some(bytes);
                    if committed {
                        out.aborted_transactions = Some(
                            aborted
                                .into_iter()
                                .map(|a| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(a.producer_id))
                                        .with_first_offset(a.first_offset)
                                })
                                .collect(),
                        );
                    }
                }
                Err(e) => {
                    out.error_code = errors::code(&e);
                    out.records = Some(Bytes::new());
                    failed = true;
                }
            }
            partitions.push(out);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        total,
        failed,
    )
}
