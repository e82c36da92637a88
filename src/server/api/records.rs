//! DeleteRecords: moves partitions' log start offsets up (Kafka's `deleteRecordsBefore`),
//! through `PartitionLog::delete_records`, which makes the new start durable before it
//! answers and deletes the segments wholly below it.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use kafka_protocol::ResponseError;

use super::partition_log;
use crate::broker::names::is_internal;
use crate::server::connection::RequestContext;
use crate::server::errors;

/// DeleteRecords: each partition's records before its offset (-1: the high watermark) are
/// deleted; the answer carries the new low watermark (log start offset). An offset past the
/// high watermark is `OFFSET_OUT_OF_RANGE`; an internal topic (`__consumer_offsets`,
/// `__transaction_state`) is `INVALID_TOPIC_EXCEPTION`, as in Kafka.
pub(crate) fn delete_records(
    ctx: &RequestContext<'_>,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let broker = &ctx.shared.broker.inner;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if is_internal(&name) {
                        // As Kafka: the coordinators' logs are theirs to trim.
                        return out.with_error_code(ResponseError::InvalidTopicException.code());
                    }
                    match partition_log(broker, &name, p.partition_index)
                        .and_then(|log| log.delete_records(p.offset))
                    {
                        Ok(low) => out.with_low_watermark(low),
                        Err(e) => out.with_error_code(errors::code(&e)),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
