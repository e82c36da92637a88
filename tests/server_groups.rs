//! The classic consumer-group protocol and the offset APIs over the wire, spoken with
//! kafka-protocol's client-side encoders over a plain TcpStream: joins, the leader's
//! assignment, syncs, leaves and rebalances, session-timeout eviction, static member
//! replacement, commits and fetches shared with in-process consumers, describe/list/delete,
//! and every advertised version of each API.
#![cfg(feature = "server")]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTp;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

use embroker::{Broker, ConsumerConfig, GroupState, ServerConfig, TopicConfig, TopicPartition};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A member's partitions: (topic, partition).
type Assigned = Vec<(String, i32)>;

/// One client connection speaking Kafka's framing.
struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Client {
            stream,
            correlation: 0,
        }
    }

    fn call<Req: Encodable, Resp: Decodable>(&mut self, key: ApiKey, v: i16, req: &Req) -> Resp {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(v)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(s("test-client")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(v))
            .unwrap();
        req.encode(&mut body, v)
            .unwrap_or_else(|e| panic!("encoding {key:?} v{v}: {e}"));
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .unwrap_or_else(|e| panic!("{key:?} v{v}: no response: {e}"));
        let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).unwrap();
        let mut buf = Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut buf, key.response_header_version(v)).unwrap();
        assert_eq!(rh.correlation_id, self.correlation);
        let resp =
            Resp::decode(&mut buf, v).unwrap_or_else(|e| panic!("decoding {key:?} v{v}: {e}"));
        assert!(
            buf.is_empty(),
            "{key:?} v{v}: bytes left after the response"
        );
        resp
    }
}

fn setup(partitions: i32) -> (Broker, embroker::Server) {
    setup_with_delay(partitions, Duration::ZERO)
}

/// Members that join concurrently need an initial rebalance delay (Kafka's
/// `group.initial.rebalance.delay.ms`), or the first completes a generation alone.
fn setup_with_delay(partitions: i32, delay: Duration) -> (Broker, embroker::Server) {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    let server = broker
        .serve_with(
            "127.0.0.1:0",
            ServerConfig::default()
                .group_initial_rebalance_delay(delay)
                .group_min_session_timeout(Duration::from_millis(100)),
        )
        .unwrap();
    (broker, server)
}

fn subscription(topics: &[&str]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut out = BytesMut::new();
    out.extend_from_slice(&1i16.to_be_bytes());
    sub.encode(&mut out, 1).unwrap();
    out.freeze()
}

fn assignment(tps: &[(&str, i32)]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        by_topic.entry(t).or_default().push(*p);
    }
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                AssignedTp::default()
                    .with_topic(TopicName(s(t)))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut out = BytesMut::new();
    out.extend_from_slice(&1i16.to_be_bytes());
    a.encode(&mut out, 1).unwrap();
    out.freeze()
}

fn decode_assignment(mut b: Bytes) -> Vec<(String, i32)> {
    if b.is_empty() {
        return Vec::new();
    }
    let v = i16::from_be_bytes([b[0], b[1]]);
    let _ = b.split_to(2);
    let a = ConsumerProtocolAssignment::decode(&mut b, v).unwrap();
    a.assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
        .collect()
}

fn join_request(
    group: &str,
    member: &str,
    session_ms: i32,
    instance: Option<&str>,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(session_ms.max(2_000))
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(subscription(&["t"]))])
}

/// A JoinGroup at v9, including the MEMBER_ID_REQUIRED round for a new member.
fn join(
    c: &mut Client,
    group: &str,
    member: &str,
    session_ms: i32,
    instance: Option<&str>,
) -> JoinGroupResponse {
    let r: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        9,
        &join_request(group, member, session_ms, instance),
    );
    if r.error_code == ResponseError::MemberIdRequired.code() {
        assert!(member.is_empty());
        return c.call(
            ApiKey::JoinGroup,
            9,
            &join_request(group, &r.member_id, session_ms, instance),
        );
    }
    r
}

fn sync(
    c: &mut Client,
    group: &str,
    j: &JoinGroupResponse,
    assignments: Vec<(String, Bytes)>,
) -> SyncGroupResponse {
    c.call(
        ApiKey::SyncGroup,
        5,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(j.generation_id)
            .with_member_id(j.member_id.clone())
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(j.protocol_name.clone())
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(&m))
                            .with_assignment(a)
                    })
                    .collect(),
            ),
    )
}

fn heartbeat(c: &mut Client, group: &str, member: &str, generation: i32) -> i16 {
    let r: HeartbeatResponse = c.call(
        ApiKey::Heartbeat,
        4,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(generation)
            .with_member_id(s(member)),
    );
    r.error_code
}

/// The leader's assignment: the topic's partitions round-robin over the members in order.
fn round_robin(j: &JoinGroupResponse, partitions: i32) -> Vec<(String, Bytes)> {
    let ids: Vec<String> = j.members.iter().map(|m| m.member_id.to_string()).collect();
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let mine: Vec<(&str, i32)> = (0..partitions)
                .filter(|p| *p as usize % ids.len() == i)
                .map(|p| ("t", p))
                .collect();
            (id.clone(), assignment(&mine))
        })
        .collect()
}

/// A member that joins (or rejoins with `member`) and syncs: the leader assigns. Returns its
/// join answer and its partitions.
fn join_and_sync(
    c: &mut Client,
    group: &str,
    member: &str,
    session_ms: i32,
    partitions: i32,
) -> (JoinGroupResponse, Vec<(String, i32)>) {
    let j = join(c, group, member, session_ms, None);
    assert_eq!(j.error_code, 0, "join: {j:?}");
    let assignments = if j.leader == j.member_id {
        round_robin(&j, partitions)
    } else {
        Vec::new()
    };
    let r = sync(c, group, &j, assignments);
    assert_eq!(r.error_code, 0, "sync: {r:?}");
    (j, decode_assignment(r.assignment))
}

#[test]
fn three_members_join_the_leader_assigns_and_a_leave_rebalances_the_rest() {
    let (broker, server) = setup_with_delay(6, Duration::from_millis(300));
    let addr = server.local_addr();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                let (j, mine) = join_and_sync(&mut c, "g3", "", 10_000, 6);
                (c, j, mine)
            })
        })
        .collect();
    let mut members: Vec<(Client, JoinGroupResponse, Assigned)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let generation = members[0].1.generation_id;
    let leader = members[0].1.leader.clone();
    for (_, j, mine) in &members {
        assert_eq!(j.generation_id, generation);
        assert_eq!(j.leader, leader);
        assert_eq!(j.protocol_name.as_deref(), Some("range"));
        assert_eq!(j.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(mine.len(), 2, "{mine:?}");
        if j.member_id == leader {
            assert_eq!(j.members.len(), 3);
        } else {
            assert!(j.members.is_empty());
        }
    }
    let mut all: Vec<(String, i32)> = members.iter().flat_map(|m| m.2.clone()).collect();
    all.sort();
    assert_eq!(
        all,
        (0..6).map(|p| ("t".to_string(), p)).collect::<Vec<_>>()
    );

    // The group layer reports the network members.
    let d = broker.describe_group("g3").unwrap();
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.generation, generation);
    assert_eq!(d.protocol.as_deref(), Some("range"));
    assert_eq!(d.members.len(), 3);
    for m in &d.members {
        assert_eq!(m.client_id, "test-client");
        assert_eq!(m.client_host.as_deref(), Some("/127.0.0.1"));
        assert_eq!(m.topics, vec!["t".to_string()]);
        assert_eq!(m.assignment.len(), 2);
    }
    let listed = broker.list_groups().unwrap();
    assert!(listed
        .iter()
        .any(|l| l.group_id == "g3" && l.state == GroupState::Stable));

    // Heartbeats in the stable group.
    for (c, j, _) in &mut members {
        assert_eq!(heartbeat(c, "g3", &j.member_id, generation), 0);
    }
    let first = members[0].1.member_id.to_string();
    assert_eq!(
        heartbeat(&mut members[0].0, "g3", &first, generation + 7),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        heartbeat(&mut members[0].0, "g3", "nobody", generation),
        ResponseError::UnknownMemberId.code()
    );

    // The third leaves; the other two learn of the rebalance by heartbeat and rejoin.
    let (mut c3, j3, _) = members.pop().unwrap();
    let left: LeaveGroupResponse = c3.call(
        ApiKey::LeaveGroup,
        5,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("g3")))
            .with_members(vec![
                MemberIdentity::default().with_member_id(j3.member_id.clone())
            ]),
    );
    assert_eq!(left.error_code, 0);
    assert_eq!(left.members[0].error_code, 0);
    let handles: Vec<_> = members
        .into_iter()
        .map(|(mut c, j, _)| {
            thread::spawn(move || {
                assert_eq!(
                    heartbeat(&mut c, "g3", &j.member_id, j.generation_id),
                    ResponseError::RebalanceInProgress.code()
                );
                join_and_sync(&mut c, "g3", &j.member_id, 10_000, 6)
            })
        })
        .collect();
    let rejoined: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (j, mine) in &rejoined {
        assert_eq!(j.generation_id, generation + 1);
        assert_eq!(mine.len(), 3);
    }
    assert_eq!(broker.describe_group("g3").unwrap().members.len(), 2);
}

#[test]
fn a_member_that_stops_heartbeating_is_evicted_after_its_session_timeout() {
    let (broker, server) = setup_with_delay(2, Duration::from_millis(300));
    let addr = server.local_addr();
    // Member a: long session, heartbeats. Member b: 300 ms session, goes silent after sync.
    let a = thread::spawn(move || {
        let mut c = Client::connect(addr);
        let r = join_and_sync(&mut c, "ge", "", 10_000, 2);
        (c, r)
    });
    let b = thread::spawn(move || {
        let mut c = Client::connect(addr);
        let r = join_and_sync(&mut c, "ge", "", 300, 2);
        (c, r)
    });
    let (mut ca, (ja, _)) = a.join().unwrap();
    let (_cb, (jb, _)) = b.join().unwrap();
    assert_eq!(ja.generation_id, jb.generation_id);
    let start = Instant::now();
    loop {
        let code = heartbeat(&mut ca, "ge", &ja.member_id, ja.generation_id);
        if code == ResponseError::RebalanceInProgress.code() {
            break;
        }
        assert_eq!(code, 0);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "b was never evicted"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "evicted too early"
    );
    let (j, mine) = join_and_sync(&mut ca, "ge", &ja.member_id, 10_000, 2);
    assert_eq!(j.generation_id, ja.generation_id + 1);
    assert_eq!(j.members.len(), 1);
    assert_eq!(mine.len(), 2);
    let d = broker.describe_group("ge").unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, ja.member_id.to_string());
}

#[test]
fn a_static_member_rejoining_under_a_new_id_fences_the_old_one() {
    let (broker, server) = setup(2);
    let addr = server.local_addr();
    let mut old = Client::connect(addr);
    let j_old = join(&mut old, "gs", "", 10_000, Some("instance-1"));
    assert_eq!(j_old.error_code, 0, "{j_old:?}");
    let r = sync(&mut old, "gs", &j_old, round_robin(&j_old, 2));
    assert_eq!(r.error_code, 0);
    // The same instance restarts: a join without member id.
    let mut new = Client::connect(addr);
    let j_new = join(&mut new, "gs", "", 10_000, Some("instance-1"));
    assert_eq!(j_new.error_code, 0, "{j_new:?}");
    assert_ne!(j_new.member_id, j_old.member_id);
    let r = sync(&mut new, "gs", &j_new, round_robin(&j_new, 2));
    assert_eq!(r.error_code, 0);
    let hb: HeartbeatResponse = old.call(
        ApiKey::Heartbeat,
        4,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s("gs")))
            .with_generation_id(j_old.generation_id)
            .with_member_id(j_old.member_id.clone())
            .with_group_instance_id(Some(s("instance-1"))),
    );
    assert_eq!(hb.error_code, ResponseError::FencedInstanceId.code());
    let d = broker.describe_group("gs").unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, j_new.member_id.to_string());
    assert_eq!(
        d.members[0].group_instance_id.as_deref(),
        Some("instance-1")
    );
}

fn commit(
    c: &mut Client,
    v: i16,
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(&str, i32, i64)],
) -> Vec<i16> {
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (t, p, o) in offsets {
        by_topic.entry(t).or_default().push((*p, *o));
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, o)| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_metadata(Some(s("meta")))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, v, &req);
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// (partition, offset, metadata, error) of topic `t` for `group`, at version `v`.
fn fetch(
    c: &mut Client,
    v: i16,
    group: &str,
    partitions: Option<Vec<i32>>,
) -> Vec<(i32, i64, String, i16)> {
    if v >= 8 {
        let req =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(partitions.map(|ps| {
                    vec![OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(ps)]
                }))]);
        let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, v, &req);
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].error_code, 0);
        return r.groups[0]
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.metadata.as_deref().unwrap_or("").to_string(),
                        p.error_code,
                    )
                })
            })
            .collect();
    }
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(partitions.map(|ps| {
            vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partition_indexes(ps)]
        }));
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, v, &req);
    assert_eq!(r.error_code, 0);
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_deref().unwrap_or("").to_string(),
                    p.error_code,
                )
            })
        })
        .collect()
}

#[test]
fn commits_are_checked_against_the_generation_and_shared_with_in_process_consumers() {
    let (broker, server) = setup(2);
    let mut c = Client::connect(server.local_addr());
    // A simple commit (no group management) to an empty group.
    assert_eq!(
        commit(&mut c, 9, "gc", "", -1, &[("t", 0, 5), ("t", 1, 7)]),
        vec![0, 0]
    );
    // An unknown topic fails alone.
    let errs = commit(&mut c, 9, "gc", "", -1, &[("nope", 0, 1), ("t", 0, 6)]);
    assert!(errs.contains(&ResponseError::UnknownTopicOrPartition.code()));
    assert!(errs.contains(&0));
    let got = fetch(&mut c, 9, "gc", Some(vec![0, 1]));
    assert_eq!(
        got,
        vec![(0, 6, "meta".into(), 0), (1, 7, "meta".into(), 0)]
    );
    // An in-process consumer of the same group sees them.
    let consumer = broker
        .consumer(ConsumerConfig::default().group_id("gc"))
        .unwrap();
    let committed = consumer.committed(&TopicPartition::new("t", 0)).unwrap();
    assert_eq!(committed.map(|o| o.offset), Some(6));
    drop(consumer);

    // A member commits with its generation; others are refused as Kafka refuses them.
    let (j, _) = join_and_sync(&mut c, "gc", "", 10_000, 2);
    assert_eq!(
        commit(
            &mut c,
            9,
            "gc",
            &j.member_id,
            j.generation_id,
            &[("t", 0, 9)]
        ),
        vec![0]
    );
    assert_eq!(
        commit(
            &mut c,
            9,
            "gc",
            &j.member_id,
            j.generation_id + 1,
            &[("t", 0, 9)]
        ),
        vec![ResponseError::IllegalGeneration.code()]
    );
    assert_eq!(
        commit(&mut c, 9, "gc", "stranger", j.generation_id, &[("t", 0, 9)]),
        vec![ResponseError::UnknownMemberId.code()]
    );
    assert_eq!(
        commit(&mut c, 9, "gc", "", -1, &[("t", 0, 9)]),
        vec![ResponseError::UnknownMemberId.code()]
    );
    // Every version of OffsetFetch reads the same offsets; a null topic list reads all.
    for v in 1..=9 {
        assert_eq!(fetch(&mut c, v, "gc", Some(vec![0]))[0].1, 9, "v{v}");
        if v >= 2 {
            assert_eq!(fetch(&mut c, v, "gc", None).len(), 2, "v{v}");
        }
    }
    // A partition without a commit: -1.
    assert_eq!(fetch(&mut c, 9, "nogroup", Some(vec![0]))[0].1, -1);
    // The in-process describe shows the commit and the network member.
    let d = broker.describe_group("gc").unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.offsets[0].committed.as_ref().map(|o| o.offset), Some(9));
}

#[test]
fn a_group_is_in_process_or_network_never_both() {
    let (broker, server) = setup(2);
    let mut c = Client::connect(server.local_addr());
    let mut consumer = broker
        .consumer(ConsumerConfig::default().group_id("gx"))
        .unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let _ = consumer.poll(Duration::from_millis(100)).unwrap();
    let j: JoinGroupResponse = c.call(ApiKey::JoinGroup, 3, &join_request("gx", "", 10_000, None));
    assert_eq!(
        j.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    drop(consumer);
    let (j, _) = join_and_sync(&mut c, "gx", "", 10_000, 2);
    assert_eq!(j.error_code, 0);
    let mut consumer = broker
        .consumer(ConsumerConfig::default().group_id("gx"))
        .unwrap();
    consumer.subscribe(&["t"]).unwrap();
    assert!(consumer.poll(Duration::from_millis(100)).is_err());
}

#[test]
fn describe_list_and_delete_groups() {
    let (broker, server) = setup(2);
    let mut c = Client::connect(server.local_addr());
    let (j, _) = join_and_sync(&mut c, "gd", "", 10_000, 2);
    assert_eq!(
        commit(
            &mut c,
            9,
            "gd",
            &j.member_id,
            j.generation_id,
            &[("t", 0, 1)]
        ),
        vec![0]
    );
    let d: DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        6,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("gd")), GroupId(s("none"))]),
    );
    assert_eq!(d.groups[0].error_code, 0);
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    assert_eq!(d.groups[0].protocol_type.as_str(), "consumer");
    assert_eq!(d.groups[0].protocol_data.as_str(), "range");
    assert_eq!(d.groups[0].members.len(), 1);
    assert_eq!(d.groups[0].members[0].member_id, j.member_id);
    assert_eq!(
        decode_assignment(d.groups[0].members[0].member_assignment.clone()).len(),
        2
    );
    assert_eq!(
        d.groups[1].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    let l: ListGroupsResponse = c.call(
        ApiKey::ListGroups,
        5,
        &ListGroupsRequest::default().with_states_filter(vec![s("stable")]),
    );
    assert_eq!(l.groups.len(), 1);
    assert_eq!(l.groups[0].group_id.as_str(), "gd");
    let l: ListGroupsResponse = c.call(
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default().with_states_filter(vec![s("Empty")]),
    );
    assert!(l.groups.is_empty());
    let del: DeleteGroupsResponse = c.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("gd"))]),
    );
    assert_eq!(
        del.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );
    // OffsetDelete refuses the subscribed topic while the member is there.
    let od: OffsetDeleteResponse = c.call(
        ApiKey::OffsetDelete,
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("gd")))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ])]),
    );
    assert_eq!(
        od.topics[0].partitions[0].error_code,
        ResponseError::GroupSubscribedToTopic.code()
    );
    let left: LeaveGroupResponse = c.call(
        ApiKey::LeaveGroup,
        0,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("gd")))
            .with_member_id(j.member_id.clone()),
    );
    assert_eq!(left.error_code, 0);
    assert_eq!(
        broker.describe_group("gd").unwrap().state,
        GroupState::Empty
    );
    let del: DeleteGroupsResponse = c.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("gd"))]),
    );
    assert_eq!(del.results[0].error_code, 0);
    assert!(broker.describe_group("gd").is_err());
}

/// The advertised range of `key`.
fn advertised(c: &mut Client, key: ApiKey) -> (i16, i16) {
    let r: ApiVersionsResponse = c.call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(s("test"))
            .with_client_software_version(s("1")),
    );
    let k = r
        .api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .unwrap_or_else(|| panic!("{key:?} not advertised"));
    (k.min_version, k.max_version)
}

#[test]
fn every_advertised_version_encodes_and_decodes() {
    let (_broker, server) = setup(2);
    let mut c = Client::connect(server.local_addr());

    let (lo, hi) = advertised(&mut c, ApiKey::FindCoordinator);
    for v in lo..=hi {
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req.coordinator_keys = vec![s("g"), s("h")];
        } else {
            req.key = s("g");
        }
        if v >= 1 {
            req.key_type = 0;
        }
        let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, v, &req);
        if v >= 4 {
            assert_eq!(r.coordinators.len(), 2);
            assert_eq!(r.coordinators[0].node_id.0, 1);
            assert_eq!(
                r.coordinators[0].port,
                i32::from(server.local_addr().port())
            );
        } else {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.node_id.0, 1);
            assert_eq!(r.host.as_str(), "127.0.0.1");
        }
    }

    let (lo, hi) = advertised(&mut c, ApiKey::JoinGroup);
    assert_eq!((lo, hi), (0, 9));
    let (slo, shi) = advertised(&mut c, ApiKey::SyncGroup);
    let (hlo, hhi) = advertised(&mut c, ApiKey::Heartbeat);
    let (llo, lhi) = advertised(&mut c, ApiKey::LeaveGroup);
    for v in lo..=hi {
        let group = format!("gv{v}");
        let mut req = join_request(&group, "", 10_000, None);
        if v < 5 {
            req.group_instance_id = None;
        }
        if v < 1 {
            req.rebalance_timeout_ms = JoinGroupRequest::default().rebalance_timeout_ms;
        }
        let mut j: JoinGroupResponse = c.call(ApiKey::JoinGroup, v, &req);
        if v >= 4 {
            assert_eq!(j.error_code, ResponseError::MemberIdRequired.code(), "v{v}");
            req.member_id = j.member_id.clone();
            j = c.call(ApiKey::JoinGroup, v, &req);
        }
        assert_eq!(j.error_code, 0, "JoinGroup v{v}");
        assert_eq!(j.members.len(), 1);
        let sv = v.clamp(slo, shi);
        let mut sreq = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(j.generation_id)
            .with_member_id(j.member_id.clone())
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(j.member_id.clone())
                .with_assignment(assignment(&[("t", 0), ("t", 1)]))]);
        if sv >= 5 {
            sreq.protocol_type = Some(s("consumer"));
            sreq.protocol_name = Some(s("range"));
        }
        let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, sv, &sreq);
        assert_eq!(r.error_code, 0, "SyncGroup v{sv}");
        assert_eq!(decode_assignment(r.assignment).len(), 2);
        let hv = v.clamp(hlo, hhi);
        let h: HeartbeatResponse = c.call(
            ApiKey::Heartbeat,
            hv,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id(j.generation_id)
                .with_member_id(j.member_id.clone()),
        );
        assert_eq!(h.error_code, 0, "Heartbeat v{hv}");
        let lv = v.clamp(llo, lhi);
        let mut lreq = LeaveGroupRequest::default().with_group_id(GroupId(s(&group)));
        if lv >= 3 {
            lreq.members = vec![MemberIdentity::default().with_member_id(j.member_id.clone())];
        } else {
            lreq.member_id = j.member_id.clone();
        }
        let l: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, lv, &lreq);
        assert_eq!(l.error_code, 0, "LeaveGroup v{lv}");
    }
    // SyncGroup, Heartbeat and LeaveGroup versions beyond what the join loop reached.
    for v in slo..=shi {
        let r: SyncGroupResponse = c.call(
            ApiKey::SyncGroup,
            v,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(s("gv9")))
                .with_member_id(s("x")),
        );
        assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    }
    for v in hlo..=hhi {
        let r: HeartbeatResponse = c.call(
            ApiKey::Heartbeat,
            v,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s("gv9")))
                .with_member_id(s("x")),
        );
        assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    }
    for v in llo..=lhi {
        let mut req = LeaveGroupRequest::default().with_group_id(GroupId(s("gv9")));
        if v >= 3 {
            req.members = vec![MemberIdentity::default().with_member_id(s("x"))];
        } else {
            req.member_id = s("x");
        }
        let r: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, v, &req);
        if v >= 3 {
            assert_eq!(
                r.members[0].error_code,
                ResponseError::UnknownMemberId.code()
            );
        } else {
            assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
        }
    }

    let (lo, hi) = advertised(&mut c, ApiKey::OffsetCommit);
    for v in lo..=hi {
        assert_eq!(
            commit(&mut c, v, "go", "", -1, &[("t", 0, i64::from(v))]),
            vec![0],
            "OffsetCommit v{v}"
        );
    }
    let (lo, hi) = advertised(&mut c, ApiKey::OffsetFetch);
    for v in lo..=hi {
        let got = fetch(&mut c, v, "go", Some(vec![0, 1]));
        assert_eq!(got[0].1, 9, "OffsetFetch v{v}");
        assert_eq!(got[1].1, -1, "OffsetFetch v{v}");
    }
    let (lo, hi) = advertised(&mut c, ApiKey::TxnOffsetCommit);
    for v in lo..=hi {
        let mut req = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_group_id(GroupId(s("gtx")))
            .with_producer_id(ProducerId(1000))
            .with_producer_epoch(0)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(1)
                    .with_committed_offset(3)])]);
        if v >= 3 {
            req.generation_id = -1;
        }
        let r: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, v, &req);
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "TxnOffsetCommit v{v}"
        );
    }
    // The transactional offset is pending: require_stable answers UNSTABLE_OFFSET_COMMIT.
    let r: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s("gtx")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partition_indexes(vec![1])]))
            .with_require_stable(true),
    );
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnstableOffsetCommit.code()
    );
    let (lo, hi) = advertised(&mut c, ApiKey::OffsetDelete);
    for v in lo..=hi {
        let r: OffsetDeleteResponse = c.call(
            ApiKey::OffsetDelete,
            v,
            &OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("go")))
                .with_topics(vec![OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ])]),
        );
        assert_eq!(r.error_code, 0);
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
    }
    assert_eq!(fetch(&mut c, 9, "go", Some(vec![0]))[0].1, -1);

    let (lo, hi) = advertised(&mut c, ApiKey::DescribeGroups);
    for v in lo..=hi {
        let r: DescribeGroupsResponse = c.call(
            ApiKey::DescribeGroups,
            v,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("gc")), GroupId(s("go"))]),
        );
        assert_eq!(r.groups.len(), 2, "DescribeGroups v{v}");
        assert_eq!(r.groups[0].group_state.as_str(), "Dead");
    }
    let (lo, hi) = advertised(&mut c, ApiKey::ListGroups);
    for v in lo..=hi {
        let r: ListGroupsResponse = c.call(ApiKey::ListGroups, v, &ListGroupsRequest::default());
        assert_eq!(r.error_code, 0, "ListGroups v{v}");
    }
    let (lo, hi) = advertised(&mut c, ApiKey::DeleteGroups);
    for v in lo..=hi {
        let r: DeleteGroupsResponse = c.call(
            ApiKey::DeleteGroups,
            v,
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("nothing"))]),
        );
        assert_eq!(
            r.results[0].error_code,
            ResponseError::GroupIdNotFound.code(),
            "v{v}"
        );
    }
}

#[test]
fn stopping_the_server_does_not_wait_for_a_parked_join() {
    let (_broker, server) = setup(2);
    let addr = server.local_addr();
    let mut a = Client::connect(addr);
    let (ja, _) = join_and_sync(&mut a, "gstop", "", 30_000, 2);
    assert_eq!(ja.error_code, 0);
    // b's join waits for a to rejoin, which it never does (rebalance timeout 30 s).
    let waiting = thread::spawn(move || {
        let mut b = Client::connect(addr);
        let mut req = join_request("gstop", "", 30_000, None);
        req.rebalance_timeout_ms = 30_000;
        let first: JoinGroupResponse = b.call(ApiKey::JoinGroup, 9, &req);
        req.member_id = first.member_id;
        // The second join parks; the server stops under it.
        b.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::JoinGroup as i16)
            .with_request_api_version(9)
            .with_correlation_id(b.correlation);
        let mut body = BytesMut::new();
        header
            .encode(&mut body, ApiKey::JoinGroup.request_header_version(9))
            .unwrap();
        req.encode(&mut body, 9).unwrap();
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        b.stream.write_all(&frame).unwrap();
        let mut rest = Vec::new();
        let _ = b.stream.read_to_end(&mut rest);
    });
    thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    drop(server);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "stop waited for the join"
    );
    waiting.join().unwrap();
}
