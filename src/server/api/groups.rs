//! The classic consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, DescribeGroups, ListGroups, DeleteGroups.
//!
//! The group state machine is the group layer's (`group::classic`); these handlers only
//! translate requests into its calls and its answers into Kafka's responses, setting
//! version-dependent fields only at the versions that have them. JoinGroup and SyncGroup
//! block their connection's thread until the rebalance answers them (Kafka parks them in a
//! purgatory; here the connection is muted the same way), or until the server stops.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;

use crate::group::{ClassicError, ClassicLimits, GroupState, JoinParams, SyncParams};
use crate::server::connection::RequestContext;
use crate::server::errors;

/// Kafka's error for a refusal of the group state machine.
pub(crate) fn code(e: ClassicError) -> i16 {
    kafka_error(e).code()
}

fn kafka_error(e: ClassicError) -> ResponseError {
    match e {
        ClassicError::UnknownMemberId => ResponseError::UnknownMemberId,
        ClassicError::IllegalGeneration => ResponseError::IllegalGeneration,
        ClassicError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        ClassicError::FencedInstanceId => ResponseError::FencedInstanceId,
        ClassicError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        ClassicError::MemberIdRequired => ResponseError::MemberIdRequired,
        ClassicError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        ClassicError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The broker's group limits from the server's settings.
fn limits(ctx: &RequestContext<'_>) -> ClassicLimits {
    let c = &ctx.shared.config;
    ClassicLimits {
        min_session_timeout_ms: ms(c.group_min_session_timeout),
        max_session_timeout_ms: ms(c.group_max_session_timeout),
        initial_rebalance_delay_ms: ms(c.group_initial_rebalance_delay),
    }
}

/// The group-level error before any group logic: the offsets could not be loaded at open,
/// or the group id is empty.
fn precheck(ctx: &RequestContext<'_>, group_id: &str) -> Option<i16> {
    if let Err(e) = ctx.shared.broker.inner.groups().check() {
        return Some(errors::code(&e));
    }
    group_id
        .is_empty()
        .then_some(ResponseError::InvalidGroupId.code())
}

/// FindCoordinator: this broker coordinates every group and transaction.
pub(crate) fn find_coordinator(
    ctx: &RequestContext<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let node = BrokerId(ctx.shared.config.node_id);
    let (host, port) = ctx.advertised();
    // Key types: 0 a group, 1 a transactional id (version 1 and later).
    let valid_type = matches!(req.key_type, 0 | 1);
    if ctx.version() >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                if valid_type {
                    c.with_node_id(node)
                        .with_host(s(host.clone()))
                        .with_port(port)
                } else {
                    c.with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(s(format!("unknown key type {}", req.key_type))))
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if !valid_type {
        let mut r = FindCoordinatorResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1);
        if ctx.version() >= 1 {
            r.error_message = Some(s(format!("unknown key type {}", req.key_type)));
        }
        return r;
    }
    FindCoordinatorResponse::default()
        .with_node_id(node)
        .with_host(s(host))
        .with_port(port)
}

/// JoinGroup: blocks until the rebalance completes (see `group::classic`).
pub(crate) fn join_group(ctx: &RequestContext<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let v = ctx.version();
    let group_id = req.group_id.0.to_string();
    let error = |code: i16| {
        let mut r = JoinGroupResponse::default()
            .with_error_code(code)
            .with_member_id(req.member_id.clone());
        if v >= 7 {
            r.protocol_name = None;
        }
        r
    };
    if let Some(code) = precheck(ctx, &group_id) {
        return error(code);
    }
    let params = JoinParams {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: ctx.client_id().to_string(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        // Version 0 has no rebalance timeout: the session timeout serves (as in Kafka).
        rebalance_timeout_ms: if v >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: v >= 4,
    };
    let group = ctx.shared.broker.inner.groups().get_or_create(&group_id);
    let stop = || ctx.shared.stopping() || ctx.client_gone();
    let answer = group.classic_join(&ctx.shared.broker.inner, &limits(ctx), params, &stop);
    let mut r = JoinGroupResponse::default()
        .with_error_code(answer.error.map_or(0, code))
        .with_generation_id(answer.generation)
        .with_leader(s(answer.leader))
        .with_member_id(s(answer.member_id));
    r.protocol_name = match (answer.protocol_name, v >= 7) {
        (Some(n), _) => Some(s(n)),
        (None, true) => None,
        (None, false) => Some(StrBytes::default()),
    };
    if v >= 7 {
        r.protocol_type = answer.protocol_type.map(s);
    }
    r.members = answer
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let mut m = JoinGroupResponseMember::default()
                .with_member_id(s(id))
                .with_metadata(metadata);
            if v >= 5 {
                m.group_instance_id = instance.map(s);
            }
            m
        })
        .collect();
    r
}

/// SyncGroup: the leader's assignment in, each member's bytes out (followers wait for the
/// leader).
pub(crate) fn sync_group(ctx: &RequestContext<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    let v = ctx.version();
    let group_id = req.group_id.0.to_string();
    if let Some(code) = precheck(ctx, &group_id) {
        return SyncGroupResponse::default().with_error_code(code);
    }
    let Some(group) = ctx.shared.broker.inner.groups().get(&group_id) else {
        return SyncGroupResponse::default().with_error_code(code(ClassicError::UnknownMemberId));
    };
    let params = SyncParams {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.as_ref().map(|t| t.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|t| t.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let stop = || ctx.shared.stopping() || ctx.client_gone();
    match group.classic_sync(&ctx.shared.broker.inner, params, &stop) {
        Ok((assignment, protocol_type, protocol_name)) => {
            let mut r = SyncGroupResponse::default().with_assignment(assignment);
            if v >= 5 {
                r.protocol_type = protocol_type.map(s);
                r.protocol_name = protocol_name.map(s);
            }
            r
        }
        Err(e) => SyncGroupResponse::default().with_error_code(code(e)),
    }
}

/// Heartbeat.
pub(crate) fn heartbeat(ctx: &RequestContext<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    if let Some(code) = precheck(ctx, &group_id) {
        return HeartbeatResponse::default().with_error_code(code);
    }
    let Some(group) = ctx.shared.broker.inner.groups().get(&group_id) else {
        return HeartbeatResponse::default().with_error_code(code(ClassicError::UnknownMemberId));
    };
    let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
    let result = group.classic_heartbeat(
        &ctx.shared.broker.inner,
        &req.member_id,
        instance.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, code))
}

/// LeaveGroup: one member (versions 0 to 2) or a batch (3 and later).
pub(crate) fn leave_group(ctx: &RequestContext<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let v = ctx.version();
    let group_id = req.group_id.0.to_string();
    if let Some(code) = precheck(ctx, &group_id) {
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members: Vec<(String, Option<String>)> = if v >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let results = match ctx.shared.broker.inner.groups().get(&group_id) {
        Some(group) => group.classic_leave(&ctx.shared.broker.inner, &members),
        None => vec![Err(ClassicError::UnknownMemberId); members.len()],
    };
    if v < 3 {
        let error = results.first().and_then(|r| r.err()).map_or(0, code);
        return LeaveGroupResponse::default().with_error_code(error);
    }
    let responses = members
        .into_iter()
        .zip(results)
        .map(|((id, instance), result)| {
            MemberResponse::default()
                .with_member_id(s(id))
                .with_group_instance_id(instance.map(s))
                .with_error_code(result.err().map_or(0, code))
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}

/// The bytes of a `ConsumerProtocolAssignment` of `partitions` (version 0), for describing
/// an in-process member the way a network member's leader would have assigned it.
fn encode_assignment(partitions: &[crate::TopicPartition]) -> Bytes {
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as Tp;
    use kafka_protocol::messages::{ConsumerProtocolAssignment, TopicName};
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                Tp::default()
                    .with_topic(TopicName(s(t)))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    match a.encode(&mut out, 0) {
        Ok(()) => out.freeze(),
        Err(_) => Bytes::new(),
    }
}

/// DescribeGroups: state, protocol and members of each group (network members with their
/// metadata and assignment bytes; in-process members with their assignment encoded as a
/// consumer's).
pub(crate) fn describe_groups(
    ctx: &RequestContext<'_>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let v = ctx.version();
    let registry = ctx.shared.broker.inner.groups();
    let load = registry.check().err();
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let mut out = DescribedGroup::default().with_group_id(id.clone());
            if let Some(e) = &load {
                return out.with_error_code(errors::code(e));
            }
            let group = registry.get(&id);
            let Some(group) = group else {
                return dead(out, v);
            };
            let g = group.inner.lock();
            let state = crate::group::Group::state(&g);
            if state == GroupState::Dead
                || (!g.classic.has_members() && g.members.is_empty() && g.offsets.is_empty())
            {
                drop(g);
                return dead(out, v);
            }
            out.group_state = s(state.as_str());
            if g.classic.has_members() {
                out.protocol_type = s(g.classic.protocol_type().unwrap_or(""));
                out.protocol_data = s(g.classic.protocol.clone().unwrap_or_default());
                out.members = g
                    .classic
                    .members
                    .iter()
                    .map(|(mid, m)| {
                        let mut d = DescribedGroupMember::default()
                            .with_member_id(s(mid.clone()))
                            .with_client_id(s(m.client_id.clone()))
                            .with_client_host(s(m.client_host.clone()))
                            .with_member_metadata(g.classic.member_metadata(m))
                            .with_member_assignment(m.assignment.clone());
                        if v >= 4 {
                            d.group_instance_id = m.instance_id.clone().map(s);
                        }
                        d
                    })
                    .collect();
            } else if !g.members.is_empty() {
                out.protocol_type = s("consumer");
                out.protocol_data = s(g.protocol.clone().unwrap_or_default());
                out.members = g
                    .members
                    .iter()
                    .map(|(mid, m)| {
                        let mut d = DescribedGroupMember::default()
                            .with_member_id(s(mid.clone()))
                            .with_client_id(s(m.client_id.clone()))
                            .with_client_host(s("/in-process"))
                            .with_member_assignment(encode_assignment(&m.assignment));
                        if v >= 4 {
                            d.group_instance_id = m.instance_id.clone().map(s);
                        }
                        d
                    })
                    .collect();
            }
            out
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// A group that does not exist: Kafka's `Dead` state, and from version 6
/// `GROUP_ID_NOT_FOUND`.
fn dead(mut out: DescribedGroup, v: i16) -> DescribedGroup {
    out.group_state = s("Dead");
    if v >= 6 {
        out.error_code = ResponseError::GroupIdNotFound.code();
        out.error_message = Some(s(format!("group {} not found", out.group_id.0)));
    }
    out
}

/// ListGroups: every group with members or committed offsets, filtered by state (version 4
/// and later) and type (version 5: every group here is `classic`).
pub(crate) fn list_groups(ctx: &RequestContext<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let v = ctx.version();
    let registry = ctx.shared.broker.inner.groups();
    if let Err(e) = registry.check() {
        return ListGroupsResponse::default().with_error_code(errors::code(&e));
    }
    if v >= 5
        && !req.types_filter.is_empty()
        && !req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"))
    {
        return ListGroupsResponse::default();
    }
    let mut groups = Vec::new();
    for group in registry.all() {
        let g = group.inner.lock();
        let state = crate::group::Group::state(&g);
        let has_members = g.classic.has_members() || !g.members.is_empty();
        if state == GroupState::Dead || (!has_members && g.offsets.is_empty()) {
            continue;
        }
        if v >= 4
            && !req.states_filter.is_empty()
            && !req
                .states_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(state.as_str()))
        {
            continue;
        }
        let protocol_type = if g.classic.has_members() {
            g.classic.protocol_type().unwrap_or("").to_string()
        } else if !g.members.is_empty() {
            "consumer".to_string()
        } else {
            String::new()
        };
        let mut l = ListedGroup::default()
            .with_group_id(GroupId(s(group.id.clone())))
            .with_protocol_type(s(protocol_type));
        if v >= 4 {
            l.group_state = s(state.as_str());
        }
        if v >= 5 {
            l.group_type = s("classic");
        }
        groups.push(l);
    }
    ListGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups: each group and its committed offsets, when it has no members.
pub(crate) fn delete_groups(
    ctx: &RequestContext<'_>,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .into_iter()
        .map(|id| {
            let error = match ctx.shared.broker.delete_group(&id) {
                Ok(()) => 0,
                Err(e) => errors::code(&e),
            };
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(error)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
