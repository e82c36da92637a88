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
