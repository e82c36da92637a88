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
        other => Err(Close(format!(
            "no handler for {:?}",
            std::mem::discriminant(&other)
        ))),
    }
}
