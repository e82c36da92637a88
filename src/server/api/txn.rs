//! Idempotent and transactional producers over the wire: InitProducerId, AddPartitionsToTxn
//! (the client versions, 0 to 3), AddOffsetsToTxn and EndTxn, onto the broker's transaction
//! coordinator (`crate::txn::coordinator`).
//!
//! Wire clients use transaction version 1 (the server advertises no `transaction.version`
//! feature): a producer keeps its epoch across transactions, so this module calls the
//! coordinator's `add_partitions_as`/`add_offsets_as` with `durable` (the `Ongoing` record is
//! fsynced, as Kafka's coordinator does for such clients) and `end_txn_as` without an epoch
//! bump. It owns no state: every answer is the coordinator's.
//!
//! Errors are Kafka's: an unknown transactional id or another producer id is
//! `INVALID_PRODUCER_ID_MAPPING`, another epoch `PRODUCER_FENCED` (`INVALID_PRODUCER_EPOCH`
//! for the versions before KIP-588's), a transaction still being completed
//! `CONCURRENT_TRANSACTIONS`, a call the state does not allow `INVALID_TXN_STATE`, and a
//! coordinator whose `__transaction_state` could not be loaded `COORDINATOR_NOT_AVAILABLE`.

use std::collections::HashSet;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId,
};
use kafka_protocol::ResponseError;

use crate::error::Error;
use crate::server::connection::RequestContext;
use crate::server::errors;
use crate::txn::TxnState;
use crate::types::TopicPartition;

/// The first versions where a fenced producer gets `PRODUCER_FENCED` rather than
/// `INVALID_PRODUCER_EPOCH` (KIP-588), per API.
const FENCED_FROM_INIT: i16 = 4;
const FENCED_FROM_ADD: i16 = 2;
const FENCED_FROM_END: i16 = 2;

/// The Kafka error of a coordinator call of `tid` by (`producer_id`, `epoch`) that failed
/// with `e`. `fenced_from` is the API's first version that knows `PRODUCER_FENCED`.
fn txn_error(
    ctx: &RequestContext<'_>,
    tid: &str,
    producer_id: i64,
    e: &Error,
    fenced_from: i16,
) -> ResponseError {
    let broker = &ctx.shared.broker;
    let current = match broker.describe_transaction(tid) {
        Ok(d) => d,
        // `__transaction_state` could not be loaded: clients retry elsewhere / later.
        Err(_) => return ResponseError::CoordinatorNotAvailable,
    };
    match e {
        Error::InvalidTxnState { .. } | Error::ProducerFenced { .. } => match &current {
            None => ResponseError::InvalidProducerIdMapping,
            Some(d) if d.producer_id != producer_id => ResponseError::InvalidProducerIdMapping,
            Some(_) if matches!(e, Error::ProducerFenced { .. }) => {
                if ctx.version() >= fenced_from {
                    ResponseError::ProducerFenced
                } else {
                    ResponseError::InvalidProducerEpoch
                }
            }
            Some(d)
                if matches!(
                    d.state,
                    TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
                ) =>
            {
                ResponseError::ConcurrentTransactions
            }
            Some(_) => ResponseError::InvalidTxnState,
        },
        Error::InvalidProducerEpoch { .. } if ctx.version() >= fenced_from => {
            ResponseError::ProducerFenced
        }
        other => errors::kafka_error(other),
    }
}

/// InitProducerId. Without a transactional id: a fresh producer id at epoch 0 (as Kafka
/// does even when the request names an earlier producer id). With one: the coordinator's
/// `init_producer_id` (the epoch bumped, older producers fenced, an open transaction
/// aborted). A request of version 3 or later that names the producer id and epoch it had
/// (KIP-360's recovery from an abortable error) is refused with `PRODUCER_FENCED` when those
/// are no longer the id's current ones, so a zombie cannot fence its successor.
pub(crate) fn init_producer_id(
    ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let broker = &ctx.shared.broker.inner;
    let fail = |code: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let tid = req.transactional_id.as_ref().map(|t| t.0.to_string());
    let Some(tid) = tid else {
        return match broker.txns().init_producer_id(broker, None, 0) {
            Ok((pid, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(e) => fail(errors::kafka_error(&e)),
        };
    };
    if ctx.version() >= 3 && req.producer_id.0 >= 0 {
        match ctx.shared.broker.describe_transaction(&tid) {
            Err(_) => return fail(ResponseError::CoordinatorNotAvailable),
            Ok(Some(d))
                if d.producer_id != req.producer_id.0 || d.producer_epoch != req.producer_epoch =>
            {
                return fail(if ctx.version() >= FENCED_FROM_INIT {
                    ResponseError::ProducerFenced
                } else {
                    ResponseError::InvalidProducerEpoch
                });
            }
            // Unknown id (lost?) or the current producer: a new epoch either way.
            Ok(_) => {}
        }
    }
    let timeout = i64::from(req.transaction_timeout_ms);
    match broker.txns().init_producer_id(broker, Some(&tid), timeout) {
        Ok((pid, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        Err(e @ Error::InvalidArgument { .. }) => fail(errors::kafka_error(&e)),
        Err(e @ Error::InvalidTransactionTimeout { .. }) => fail(errors::kafka_error(&e)),
        Err(e) => fail(if ctx.shared.broker.describe_transaction(&tid).is_err() {
            ResponseError::CoordinatorNotAvailable
        } else {
            errors::kafka_error(&e)
        }),
    }
}

/// AddPartitionsToTxn, versions 0 to 3 (one transaction per request; the batched,
/// broker-to-broker versions 4 and later are not served). Partitions of topics that do not
/// exist fail with `UNKNOWN_TOPIC_OR_PARTITION` and the others with
/// `OPERATION_NOT_ATTEMPTED`, as Kafka does; otherwise every partition gets the
/// coordinator's answer.
pub(crate) fn add_partitions_to_txn(
    ctx: &RequestContext<'_>,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let broker = &ctx.shared.broker.inner;
    let tid = req.v3_and_below_transactional_id.0.to_string();
    let pid = req.v3_and_below_producer_id.0;
    let epoch = req.v3_and_below_producer_epoch;
    let mut wanted = Vec::new();
    let mut unknown = HashSet::new();
    for topic in &req.v3_and_below_topics {
        let name = topic.name.0.to_string();
        for &p in &topic.partitions {
            match super::partition_log(broker, &name, p) {
                Ok(_) => wanted.push(TopicPartition::new(name.as_str(), p)),
                Err(_) => {
                    unknown.insert((name.clone(), p));
                }
            }
        }
    }
    let result: Result<(), ResponseError> = if !unknown.is_empty() {
        Err(ResponseError::OperationNotAttempted)
    } else if wanted.is_empty() {
        // Nothing to add: no transaction begins (and nothing is answered but the empty list).
        Ok(())
    } else {
        broker
            .txns()
            .add_partitions_as(broker, &tid, pid, epoch, &wanted, true)
            .map_err(|e| txn_error(ctx, &tid, pid, &e, FENCED_FROM_ADD))
    };
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .iter()
                .map(|&p| {
                    let code = if unknown.contains(&(name.clone(), p)) {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        match result {
                            Ok(()) => 0,
                            Err(e) => e.code(),
                        }
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction, for a
/// TxnOffsetCommit to follow.
pub(crate) fn add_offsets_to_txn(
    ctx: &RequestContext<'_>,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let broker = &ctx.shared.broker.inner;
    let tid = req.transactional_id.0.to_string();
    let pid = req.producer_id.0;
    let group = req.group_id.0.to_string();
    let code =
        match broker
            .txns()
            .add_offsets_as(broker, &tid, pid, req.producer_epoch, &group, true)
        {
            Ok(_) => 0,
            Err(e) => txn_error(ctx, &tid, pid, &e, FENCED_FROM_ADD).code(),
        };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

/// EndTxn: commits or aborts the transaction (markers written before the answer), keeping
/// the producer's epoch (transaction version 1). A repeat of a completed end of the same
/// kind succeeds, as in Kafka; the other kind is `INVALID_TXN_STATE`.
pub(crate) fn end_txn(ctx: &RequestContext<'_>, req: EndTxnRequest) -> EndTxnResponse {
    let broker = &ctx.shared.broker.inner;
    let tid = req.transactional_id.0.to_string();
    let pid = req.producer_id.0;
    let result =
        broker
            .txns()
            .end_txn_as(broker, &tid, pid, req.producer_epoch, req.committed, false);
    let code = match result {
        Ok(_) => 0,
        Err(e) => txn_error(ctx, &tid, pid, &e, FENCED_FROM_END).code(),
    };
    EndTxnResponse::default().with_error_code(code)
}
