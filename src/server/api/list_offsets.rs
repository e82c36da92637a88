//! ListOffsets: the earliest, latest, max-timestamp or by-timestamp offset of partitions.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::partition_log;
use crate::error::Result;
use crate::log::PartitionLog;
use crate::server::connection::RequestContext;
use crate::server::errors;

/// Kafka's special timestamps (`ListOffsetsRequest.LATEST_TIMESTAMP` and the rest).
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// Tiered storage's "earliest local" (version 8): every segment here is local.
const EARLIEST_LOCAL: i64 = -4;

/// ListOffsets. `latest` is the last stable offset for `read_committed` (isolation level 1),
/// the log end otherwise, as Kafka's high watermark is on one broker.
pub(crate) fn list_offsets(
    ctx: &RequestContext<'_>,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let broker = &ctx.shared.broker.inner;
    let committed = req.isolation_level == 1;
    // Leader epochs exist from version 4; one broker's epoch is always 0.
    let epoch = if ctx.version() >= 4 { 0 } else { -1 };
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_leader_epoch(epoch);
                    let found = partition_log(broker, &name, p.partition_index)
                        .and_then(|log| offset(&log, p.timestamp, committed));
                    match found {
                        Ok(Some((offset, timestamp))) => {
                            out.with_offset(offset).with_timestamp(timestamp)
                        }
                        Ok(None) => out.with_offset(-1).with_timestamp(-1),
                        Err(e) => out
                            .with_error_code(errors::code(&e))
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn offset(log: &PartitionLog, timestamp: i64, committed: bool) -> Result<Option<(i64, i64)>> {
    // As Kafka's `Partition.fetchOffsetForTimestamp`: a lookup by timestamp answers only
    // offsets the client may read, below the last stable offset for read_committed.
    let fetchable = if committed {
        log.last_stable_offset()
    } else {
        log.log_end_offset()
    };
    let readable = |found: Option<(i64, i64)>| found.filter(|&(offset, _)| offset < fetchable);
    Ok(match timestamp {
        LATEST if committed => Some((log.last_stable_offset(), -1)),
        LATEST => Some((log.log_end_offset(), -1)),
        EARLIEST | EARLIEST_LOCAL => Some((log.log_start_offset(), -1)),
        MAX_TIMESTAMP => readable(log.max_timestamp_offset()?),
        t if t < 0 => None,
        t => readable(log.offset_for_timestamp(t)?),
    })
}
