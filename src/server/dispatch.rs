//! Which handler answers which request.

use kafka_protocol::messages::{RequestKind, ResponseKind};

use super::api;
use super::connection::{Close, RequestContext};
use super::versions;

/// A handler's answer.
pub(crate) enum Reply {
    /// Send this response.
    Send(Box<ResponseKind>),
    /// Send nothing (a Produce with acks=0).
    None,
}

fn send(r: impl Into<ResponseKind>) -> Result<Reply, Close> {
    Ok(Reply::Send(Box::new(r.into())))
}

/// Runs one decoded request. Only APIs listed in `versions` reach here.
pub(crate) fn dispatch(ctx: &RequestContext<'_>, request: RequestKind) -> Result<Reply, Close> {
    match request {
        RequestKind::ApiVersions(r) => send(versions::api_versions(ctx, r)),
        RequestKind::Metadata(r) => send(api::metadata::metadata(ctx, r)),
        RequestKind::Produce(r) => match api::produce::produce(ctx, r) {
            Some(response) => send(response),
            None => Ok(Reply::None),
        },
        RequestKind::Fetch(r) => send(api::fetch::fetch(ctx, r)),
        RequestKind::ListOffsets(r) => send(api::list_offsets::list_offsets(ctx, r)),
        RequestKind::CreateTopics(r) => send(api::topics::create_topics(ctx, r)),
        RequestKind::DeleteTopics(r) => send(api::topics::delete_topics(ctx, r)),
        RequestKind::CreatePartitions(r) => send(api::topics::create_partitions(ctx, r)),
        RequestKind::DescribeConfigs(r) => send(api::configs::describe_configs(ctx, r)),
        RequestKind::AlterConfigs(r) => send(api::configs::alter_configs(ctx, r)),
        RequestKind::IncrementalAlterConfigs(r) => {
            send(api::configs::incremental_alter_configs(ctx, r))
        }
        RequestKind::DeleteRecords(r) => send(api::records::delete_records(ctx, r)),
        RequestKind::DescribeCluster(r) => send(api::cluster::describe_cluster(ctx, r)),
        RequestKind::DescribeProducers(r) => send(api::cluster::describe_producers(ctx, r)),
        RequestKind::ListTransactions(r) => send(api::cluster::list_transactions(ctx, r)),
        RequestKind::DescribeTransactions(r) => send(api::cluster::describe_transactions(ctx, r)),
        RequestKind::InitProducerId(r) => send(api::txn::init_producer_id(ctx, r)),
        RequestKind::AddPartitionsToTxn(r) => send(api::txn::add_partitions_to_txn(ctx, r)),
        RequestKind::AddOffsetsToTxn(r) => send(api::txn::add_offsets_to_txn(ctx, r)),
        RequestKind::EndTxn(r) => send(api::txn::end_txn(ctx, r)),
        RequestKind::SaslHandshake(r) => send(api::sasl::sasl_handshake(ctx, r)),
        RequestKind::SaslAuthenticate(r) => send(api::sasl::sasl_authenticate(ctx, r)),
        // Consumer groups and committed offsets.
        RequestKind::FindCoordinator(r) => send(api::groups::find_coordinator(ctx, r)),
        RequestKind::JoinGroup(r) => send(api::groups::join_group(ctx, r)),
        RequestKind::SyncGroup(r) => send(api::groups::sync_group(ctx, r)),
        RequestKind::Heartbeat(r) => send(api::groups::heartbeat(ctx, r)),
        RequestKind::LeaveGroup(r) => send(api::groups::leave_group(ctx, r)),
        RequestKind::DescribeGroups(r) => send(api::groups::describe_groups(ctx, r)),
        RequestKind::ListGroups(r) => send(api::groups::list_groups(ctx, r)),
        RequestKind::DeleteGroups(r) => send(api::groups::delete_groups(ctx, r)),
        RequestKind::OffsetCommit(r) => send(api::offsets::offset_commit(ctx, r)),
        RequestKind::OffsetFetch(r) => send(api::offsets::offset_fetch(ctx, r)),
        RequestKind::OffsetDelete(r) => send(api::offsets::offset_delete(ctx, r)),
        RequestKind::TxnOffsetCommit(r) => send(api::offsets::txn_offset_commit(ctx, r)),
        other => Err(Close(format!(
            "no handler for {:?}",
            std::mem::discriminant(&other)
        ))),
    }
}
