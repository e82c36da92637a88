//! DescribeCluster, DescribeProducers, ListTransactions and DescribeTransactions: what an
//! admin client asks about the broker, partitions' producers and the transaction
//! coordinator. Read-only; the state is the broker's.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{self, TopicData};
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeProducersRequest,
    DescribeProducersResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::partition_log;
use crate::server::connection::RequestContext;
use crate::server::errors;
use crate::txn::TransactionDescription;

/// DescribeCluster: this one broker, which is also the controller.
pub(crate) fn describe_cluster(
    ctx: &RequestContext<'_>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let node = ctx.shared.config.node_id;
    let (host, port) = ctx.advertised();
    let mut out = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(ctx.shared.cluster_id.clone()))
        .with_controller_id(BrokerId(node))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(node))
            .with_host(StrBytes::from_string(host))
            .with_port(port)])
        .with_cluster_authorized_operations(i32::MIN);
    // Version 1 and later name the listener kind asked for: brokers (1); a controller
    // listener (2) is not exposed separately, this broker answers for both.
    if ctx.version() >= 1 {
        out.endpoint_type = req.endpoint_type;
        if !matches!(req.endpoint_type, 1 | 2) {
            out.error_code = ResponseError::UnsupportedEndpointType.code();
            out.brokers.clear();
        }
    }
    out
}

/// DescribeProducers: the producers each partition holds state for (idempotence and open
/// transactions).
pub(crate) fn describe_producers(
    ctx: &RequestContext<'_>,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let broker = &ctx.shared.broker.inner;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let out = PartitionResponse::default().with_partition_index(p);
                    match partition_log(broker, &name, p) {
                        Ok(log) => out.with_active_producers(
                            log.producer_states()
                                .into_iter()
                                .map(|s| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(s.producer_id))
                                        .with_producer_epoch(i32::from(s.epoch))
                                        .with_last_sequence(s.last_sequence)
                                        .with_last_timestamp(s.last_timestamp)
                                        .with_coordinator_epoch(s.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            s.current_txn_start_offset.unwrap_or(-1),
                                        )
                                })
                                .collect(),
                        ),
                        Err(e) => out
                            .with_error_code(errors::code(&e))
                            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// The longest transactional id pattern accepted (a transactional id is at most 32767
/// bytes; the bound keeps the matching work of one request small).
const PATTERN_MAX: usize = 1024;

/// Whether `id` matches `pattern`, a regular expression of literal characters, `.` and `.*`
/// (what `kafka-transactions.sh list` patterns use); `None` for any other syntax, or a
/// pattern over [`PATTERN_MAX`] bytes.
fn matches_pattern(pattern: &str, id: &str) -> Option<bool> {
    if pattern.len() > PATTERN_MAX || pattern.chars().any(|c| "\\[](){}+?|^$".contains(c)) {
        return None;
    }
    // Split on ".*" into pieces that must appear in order; '.' in a piece is any character.
    let pieces: Vec<Vec<char>> = pattern.split(".*").map(|p| p.chars().collect()).collect();
    let id: Vec<char> = id.chars().collect();
    let eq = |piece: &[char], at: &[char]| {
        piece.len() <= at.len() && piece.iter().zip(at).all(|(p, c)| *p == '.' || p == c)
    };
    let (first, rest) = pieces.split_first()?;
    if !eq(first, &id) {
        return Some(false);
    }
    let mut pos = first.len();
    if rest.is_empty() {
        return Some(pos == id.len());
    }
    let (last, middle) = rest.split_last()?;
    for piece in middle {
        let found = (pos..=id.len()).find(|&i| eq(piece, &id[i..]));
        match found {
            Some(i) => pos = i + piece.len(),
            None => return Some(false),
        }
    }
    Some(id.len() >= pos + last.len() && eq(last, &id[id.len() - last.len()..]))
}

/// ListTransactions: the coordinator's transactional ids, filtered by state, producer id,
/// how long their transaction has run (version 1) and an id pattern (version 2).
pub(crate) fn list_transactions(
    ctx: &RequestContext<'_>,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let all = match ctx.shared.broker.list_transactions() {
        Ok(all) => all,
        Err(_) => {
            return ListTransactionsResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    };
    let now = ctx.shared.broker.inner.now_ms();
    let pattern = req
        .transactional_id_pattern
        .as_ref()
        .map(|p| p.to_string())
        .filter(|p| !p.is_empty());
    if let Some(p) = &pattern {
        if matches_pattern(p, "").is_none() {
            return ListTransactionsResponse::default()
                .with_error_code(ResponseError::InvalidRegularExpression.code());
        }
    }
    let keep = |d: &TransactionDescription| {
        (req.state_filters.is_empty() || req.state_filters.iter().any(|s| &**s == d.state.name()))
            && (req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(d.producer_id)))
            && (ctx.version() < 1
                || req.duration_filter < 0
                || (d.start_ms >= 0 && now.saturating_sub(d.start_ms) >= req.duration_filter))
            && pattern
                .as_ref()
                .is_none_or(|p| matches_pattern(p, &d.transactional_id) == Some(true))
    };
    let states = all
        .iter()
        .filter(|d| keep(d))
        .map(|d| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    d.transactional_id.clone(),
                )))
                .with_producer_id(ProducerId(d.producer_id))
                .with_transaction_state(StrBytes::from_static_str(d.state.name()))
        })
        .collect();
    ListTransactionsResponse::default().with_transaction_states(states)
}

/// DescribeTransactions: each id's producer, state, timeout, start and partitions;
/// `TRANSACTIONAL_ID_NOT_FOUND` for an id the coordinator does not know.
pub(crate) fn describe_transactions(
    ctx: &RequestContext<'_>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|tid| {
            let out = describe_transactions_response::TransactionState::default()
                .with_transactional_id(tid.clone())
                .with_transaction_state(StrBytes::from_static_str(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            match ctx.shared.broker.describe_transaction(&tid.0) {
                Err(_) => out.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
                Ok(None) => out.with_error_code(ResponseError::TransactionalIdNotFound.code()),
                Ok(Some(d)) => {
                    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for tp in &d.partitions {
                        topics
                            .entry(tp.topic.clone())
                            .or_default()
                            .push(tp.partition);
                    }
                    out.with_transaction_state(StrBytes::from_static_str(d.state.name()))
                        .with_transaction_timeout_ms(d.timeout_ms)
                        .with_transaction_start_time_ms(d.start_ms)
                        .with_producer_id(ProducerId(d.producer_id))
                        .with_producer_epoch(d.producer_epoch)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(topic, partitions)| {
                                    TopicData::default()
                                        .with_topic(TopicName(StrBytes::from_string(topic)))
                                        .with_partitions(partitions)
                                })
                                .collect(),
                        )
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

#[cfg(test)]
mod tests {
    use super::matches_pattern;

    #[test]
    fn patterns_of_literals_dots_and_stars() {
        assert_eq!(matches_pattern("abc", "abc"), Some(true));
        assert_eq!(matches_pattern("abc", "abcd"), Some(false));
        assert_eq!(matches_pattern("a.c", "abc"), Some(true));
        assert_eq!(matches_pattern(".*", ""), Some(true));
        assert_eq!(matches_pattern("tx-.*", "tx-1"), Some(true));
        assert_eq!(matches_pattern("tx-.*", "ty-1"), Some(false));
        assert_eq!(matches_pattern(".*-1", "tx-1"), Some(true));
        assert_eq!(matches_pattern("a.*b.*c", "aXbYc"), Some(true));
        assert_eq!(matches_pattern("a.*b.*c", "aXcYb"), Some(false));
        assert_eq!(matches_pattern("a.*a", "a"), Some(false));
        assert_eq!(matches_pattern("a+", "aa"), None);
    }
}
