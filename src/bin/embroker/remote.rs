//! `--bootstrap HOST:PORT`: `topics`, `groups` and `consume` against a running broker through
//! Kafka's wire protocol (feature `server`), the way Kafka's own tools inspect a live cluster.
//!
//! A small blocking client over one connection: ApiVersions first, then each call at the
//! newest version both sides know (up to the newest this client was written for, so its
//! requests stay within the fields it fills). It speaks to any Kafka broker, embroker's
//! server or Kafka itself.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use embroker::{codec, TimestampType};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    fetch_request, ApiKey, ApiVersionsRequest, BrokerId, ConsumerProtocolAssignment,
    DescribeGroupsRequest, FetchRequest, GroupId, ListGroupsRequest, ListOffsetsRequest,
    MetadataRequest, MetadataResponse, OffsetFetchRequest, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use serde_json::{json, Value};

use crate::output::{headers_json, opt_bytes_json, print_json, Table};
use crate::CmdResult;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One connection to a broker.
pub struct Remote {
    stream: TcpStream,
    bootstrap: String,
    correlation: i32,
    versions: BTreeMap<i16, (i16, i16)>,
}

fn kafka_error(code: i16) -> String {
    format!(
        "{:?} (Kafka error code {code})",
        kafka_protocol::ResponseError::try_from_code(code)
    )
}

impl Remote {
    /// Connects and asks for the broker's API versions.
    pub fn connect(bootstrap: &str) -> Result<Remote, BoxError> {
        let stream = TcpStream::connect(bootstrap)
            .map_err(|e| format!("cannot connect to {bootstrap}: {e}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut remote = Remote {
            stream,
            bootstrap: bootstrap.to_string(),
            correlation: 0,
            versions: BTreeMap::new(),
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("embroker-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp = remote.send(&req, 3)?;
        if resp.error_code != 0 {
            return Err(format!(
                "{bootstrap}: ApiVersions failed: {}",
                kafka_error(resp.error_code)
            )
            .into());
        }
        for k in resp.api_keys {
            remote
                .versions
                .insert(k.api_key, (k.min_version, k.max_version));
        }
        Ok(remote)
    }

    /// The version to call `R` at: the newest both this client (`newest`) and the broker know.
    fn version<R: Request>(&self, newest: i16) -> Result<i16, BoxError> {
        let name =
            ApiKey::try_from(R::KEY).map_or_else(|_| R::KEY.to_string(), |k| format!("{k:?}"));
        let Some(&(min, max)) = self.versions.get(&R::KEY) else {
            return Err(format!("{} does not serve {name}", self.bootstrap).into());
        };
        let v = newest.min(max);
        if v < min {
            return Err(format!(
                "{} serves {name} from version {min}; this tool speaks up to {newest}",
                self.bootstrap
            )
            .into());
        }
        Ok(v)
    }

    /// Calls `R` at the newest common version up to `newest`.
    fn call<R: Request>(&mut self, req: &R, newest: i16) -> Result<R::Response, BoxError> {
        let v = self.version::<R>(newest)?;
        self.send(req, v)
    }

    fn send<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, BoxError> {
        self.correlation = self.correlation.wrapping_add(1);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("embroker-cli")))
            .encode(&mut buf, R::header_version(version))?;
        req.encode(&mut buf, version)?;
        let size = i32::try_from(buf.len() - 4)?;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = usize::try_from(i32::from_be_bytes(size))
            .map_err(|_| format!("{}: a response of negative size", self.bootstrap))?;
        if size > 512 << 20 {
            return Err(format!("{}: a response of {size} bytes", self.bootstrap).into());
        }
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body)?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
        if header.correlation_id != self.correlation {
            return Err(format!(
                "{}: response to request {} while waiting for {}",
                self.bootstrap, header.correlation_id, self.correlation
            )
            .into());
        }
        Ok(R::Response::decode(&mut body, version)?)
    }

    fn metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse, BoxError> {
        let req = MetadataRequest::default().with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                })
                .collect()
        }));
        self.call(&req, 12)
    }

    /// Offsets of `partitions` of `topic` at `timestamp` (-2 earliest, -1 latest);
    /// `committed` reads the latest as a read_committed consumer (the last stable offset).
    fn offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
        committed: bool,
    ) -> Result<BTreeMap<i32, i64>, BoxError> {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(i8::from(committed))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let resp = self.call(&req, 7)?;
        let mut out = BTreeMap::new();
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(format!(
                        "{topic}-{}: ListOffsets failed: {}",
                        p.partition_index,
                        kafka_error(p.error_code)
                    )
                    .into());
                }
                out.insert(p.partition_index, p.offset);
            }
        }
        Ok(out)
    }
}

fn topic_partitions(meta: &MetadataResponse, topic: &str) -> Result<Vec<i32>, BoxError> {
    let t = meta
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .ok_or_else(|| format!("topic {topic:?}: not in the broker's metadata"))?;
    if t.error_code != 0 {
        return Err(format!("topic {topic:?}: {}", kafka_error(t.error_code)).into());
    }
    let mut ps: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    ps.sort_unstable();
    Ok(ps)
}

/// `topics list --bootstrap`.
pub fn topics_list(bootstrap: &str, json_out: bool) -> CmdResult {
    let mut remote = Remote::connect(bootstrap)?;
    let meta = remote.metadata(None)?;
    let mut rows: Vec<(String, usize, Option<String>)> = meta
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            let error = (t.error_code != 0).then(|| kafka_error(t.error_code));
            Some((name, t.partitions.len(), error))
        })
        .collect();
    rows.sort();
    let mut out = std::io::stdout().lock();
    if json_out {
        let items: Vec<Value> = rows
            .iter()
            .map(|(n, p, e)| json!({ "name": n, "partitions": p, "error": e }))
            .collect();
        print_json(&mut out, &Value::Array(items))?;
    } else {
        let mut t = Table::new(&["TOPIC", "PARTITIONS", "ERROR"]);
        for (n, p, e) in rows {
            t.row(vec![n, p.to_string(), e.unwrap_or_default()]);
        }
        t.print(&mut out)?;
    }
    Ok(true)
}

/// `topics describe NAME --bootstrap`: partitions with their offsets.
pub fn topics_describe(bootstrap: &str, name: &str, json_out: bool) -> CmdResult {
    let mut remote = Remote::connect(bootstrap)?;
    let meta = remote.metadata(Some(&[name]))?;
    let partitions = topic_partitions(&meta, name)?;
    let starts = remote.offsets(name, &partitions, -2, false)?;
    let ends = remote.offsets(name, &partitions, -1, false)?;
    let stables = remote.offsets(name, &partitions, -1, true)?;
    let mut out = std::io::stdout().lock();
    let get = |m: &BTreeMap<i32, i64>, p: i32| m.get(&p).copied().unwrap_or(-1);
    if json_out {
        let items: Vec<Value> = partitions
            .iter()
            .map(|&p| {
                json!({
                    "partition": p,
                    "log_start_offset": get(&starts, p),
                    "log_end_offset": get(&ends, p),
                    "last_stable_offset": get(&stables, p),
                })
            })
            .collect();
        print_json(&mut out, &json!({ "name": name, "partitions": items }))?;
    } else {
        writeln!(out, "Topic: {name}  Partitions: {}", partitions.len())?;
        let mut t = Table::new(&["PARTITION", "LOG-START", "LOG-END", "LAST-STABLE-OFFSET"]);
        for &p in &partitions {
            t.row(vec![
                p.to_string(),
                get(&starts, p).to_string(),
                get(&ends, p).to_string(),
                get(&stables, p).to_string(),
            ]);
        }
        t.print(&mut out)?;
    }
    Ok(true)
}

/// `groups list --bootstrap`.
pub fn groups_list(bootstrap: &str, json_out: bool) -> CmdResult {
    let mut remote = Remote::connect(bootstrap)?;
    let resp = remote.call(&ListGroupsRequest::default(), 4)?;
    if resp.error_code != 0 {
        return Err(format!("ListGroups failed: {}", kafka_error(resp.error_code)).into());
    }
    let mut groups: Vec<(String, String)> = resp
        .groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.group_state.to_string()))
        .collect();
    groups.sort();
    let mut out = std::io::stdout().lock();
    if json_out {
        let items: Vec<Value> = groups
            .iter()
            .map(|(g, s)| json!({ "group": g, "state": s }))
            .collect();
        print_json(&mut out, &Value::Array(items))?;
    } else {
        let mut t = Table::new(&["GROUP", "STATE"]);
        for (g, s) in groups {
            t.row(vec![g, s]);
        }
        t.print(&mut out)?;
    }
    Ok(true)
}

/// `groups describe GROUP --bootstrap`: members and, per committed partition, the lag, as
/// `kafka-consumer-groups.sh --describe` prints them.
pub fn groups_describe(bootstrap: &str, group: &str, json_out: bool) -> CmdResult {
    let mut remote = Remote::connect(bootstrap)?;
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let resp = remote.call(&req, 5)?;
    let d = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| format!("group {group:?}: no description"))?;
    if d.error_code != 0 {
        return Err(format!("group {group:?}: {}", kafka_error(d.error_code)).into());
    }
    // Each member's partitions, from the consumer protocol's assignment bytes.
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut members = Vec::new();
    for m in &d.members {
        let mut assigned = Vec::new();
        let mut bytes = m.member_assignment.clone();
        if bytes.len() >= 2 {
            let version = i16::from_be_bytes([bytes[0], bytes[1]]);
            let _ = bytes::Buf::get_i16(&mut bytes);
            if let Ok(a) = ConsumerProtocolAssignment::decode(&mut bytes, version) {
                for tp in a.assigned_partitions {
                    for p in tp.partitions {
                        owners.insert((tp.topic.0.to_string(), p), m.member_id.to_string());
                        assigned.push(format!("{}-{p}", tp.topic.0.as_str()));
                    }
                }
            }
        }
        members.push(json!({
            "member_id": m.member_id.as_str(),
            "client_id": m.client_id.as_str(),
            "client_host": m.client_host.as_str(),
            "group_instance_id": m.group_instance_id.as_ref().map(|s| s.as_str()),
            "assignment": assigned,
        }));
    }
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(None::<Vec<OffsetFetchRequestTopic>>);
    let fetched = remote.call(&req, 7)?;
    if fetched.error_code != 0 {
        return Err(format!(
            "group {group:?}: OffsetFetch failed: {}",
            kafka_error(fetched.error_code)
        )
        .into());
    }
    let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for t in &fetched.topics {
        for p in &t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                committed.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in committed.keys().chain(owners.keys()) {
        by_topic.entry(t.clone()).or_default().push(*p);
    }
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (t, mut ps) in by_topic {
        ps.sort_unstable();
        ps.dedup();
        for (p, end) in remote.offsets(&t, &ps, -1, false)? {
            ends.insert((t.clone(), p), end);
        }
    }
    let mut out = std::io::stdout().lock();
    if json_out {
        let offsets: Vec<Value> = ends
            .iter()
            .map(|((t, p), end)| {
                let c = committed.get(&(t.clone(), *p)).copied();
                json!({
                    "topic": t,
                    "partition": p,
                    "committed": c,
                    "end_offset": end,
                    "lag": c.map(|c| end - c),
                    "member_id": owners.get(&(t.clone(), *p)),
                })
            })
            .collect();
        print_json(
            &mut out,
            &json!({
                "group": group,
                "state": d.group_state.as_str(),
                "protocol": d.protocol_data.as_str(),
                "members": members,
                "offsets": offsets,
            }),
        )?;
    } else {
        writeln!(
            out,
            "Group: {group}  State: {}  Protocol: {}",
            d.group_state.as_str(),
            if d.protocol_data.is_empty() {
                "-"
            } else {
                d.protocol_data.as_str()
            }
        )?;
        writeln!(out)?;
        let mut t = Table::new(&[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
        ]);
        let dash = || "-".to_string();
        for ((topic, p), end) in &ends {
            let c = committed.get(&(topic.clone(), *p)).copied();
            t.row(vec![
                topic.clone(),
                p.to_string(),
                c.map_or_else(dash, |c| c.to_string()),
                end.to_string(),
                c.map_or_else(dash, |c| (end - c).to_string()),
                owners
                    .get(&(topic.clone(), *p))
                    .cloned()
                    .unwrap_or_else(dash),
            ]);
        }
        t.print(&mut out)?;
    }
    Ok(true)
}

/// One record as `consume --bootstrap` prints it.
pub struct Fetched {
    /// The partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (ms).
    pub timestamp: i64,
    /// Key, value and headers.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// The headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Fetched {
    /// The record as the tool's JSON convention writes it.
    pub fn json(&self, topic: &str) -> Value {
        json!({
            "topic": topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "key": opt_bytes_json(self.key.as_deref()),
            "value": opt_bytes_json(self.value.as_deref()),
            "headers": headers_json(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref()))),
        })
    }
}

/// Reads `topic` through Fetch from the given start positions and calls `emit` per record
/// until `emit` says stop, or (without `follow`) every partition is at its end.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partition: Option<i32>,
    from_beginning: bool,
    offset: Option<i64>,
    follow: bool,
    mut emit: impl FnMut(&Fetched) -> Result<bool, BoxError>,
) -> Result<(), BoxError> {
    let mut remote = Remote::connect(bootstrap)?;
    let meta = remote.metadata(Some(&[topic]))?;
    let all = topic_partitions(&meta, topic)?;
    let partitions: Vec<i32> = match partition {
        Some(p) if all.contains(&p) => vec![p],
        Some(p) => return Err(format!("topic {topic:?} has no partition {p}").into()),
        None => all,
    };
    let starts = remote.offsets(topic, &partitions, -2, false)?;
    let mut ends = remote.offsets(topic, &partitions, -1, false)?;
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    for &p in &partitions {
        let start = starts.get(&p).copied().unwrap_or(0);
        let end = ends.get(&p).copied().unwrap_or(0);
        let pos = match offset {
            Some(o) if o >= 0 => o.clamp(start, end),
            Some(o) => end.saturating_add(o).max(start),
            None if from_beginning => start,
            None => end,
        };
        positions.insert(p, pos);
    }
    let fetch_version = remote.version::<FetchRequest>(12)?;
    let name = TopicName(StrBytes::from_string(topic.to_string()));
    let deadline_idle = Duration::from_millis(500);
    loop {
        if !follow
            && positions
                .iter()
                .all(|(p, pos)| *pos >= ends.get(p).copied().unwrap_or(0))
        {
            return Ok(());
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(i32::try_from(deadline_idle.as_millis()).unwrap_or(500))
            .with_min_bytes(1)
            .with_max_bytes(16 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(name.clone())
                .with_partitions(
                    positions
                        .iter()
                        .map(|(&p, &pos)| {
                            fetch_request::FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(pos)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                )]);
        let started = Instant::now();
        let resp = remote.send(&req, fetch_version)?;
        if resp.error_code != 0 {
            return Err(format!("Fetch failed: {}", kafka_error(resp.error_code)).into());
        }
        for t in resp.responses {
            for pd in t.partitions {
                if pd.error_code != 0 {
                    return Err(format!(
                        "{topic}-{}: Fetch failed: {}",
                        pd.partition_index,
                        kafka_error(pd.error_code)
                    )
                    .into());
                }
                ends.insert(pd.partition_index, pd.high_watermark);
                let mut data: &[u8] = pd.records.as_deref().unwrap_or(&[]);
                let pos = positions.entry(pd.partition_index).or_insert(0);
                while !data.is_empty() {
                    let batch = codec::decode_batch(data).map_err(|e| {
                        format!(
                            "{topic}-{}: a bad batch at offset {pos}: {e:?}",
                            pd.partition_index
                        )
                    })?;
                    let h = batch.header;
                    data = data.get(h.total_bytes()..).unwrap_or(&[]);
                    if !h.is_control() {
                        let records =
                            codec::batch_records(&batch).map_err(|e| format!("{topic}: {e:?}"))?;
                        for r in records.iter() {
                            let offset = h.base_offset.saturating_add(i64::from(r.offset_delta));
                            if offset < *pos {
                                continue;
                            }
                            let f = Fetched {
                                partition: pd.partition_index,
                                offset,
                                timestamp: match h.timestamp_type() {
                                    TimestampType::LogAppendTime => h.max_timestamp,
                                    _ => h.base_timestamp.saturating_add(r.timestamp_delta),
                                },
                                key: r.key.map(<[u8]>::to_vec),
                                value: r.value.map(<[u8]>::to_vec),
                                headers: r
                                    .headers
                                    .clone()
                                    .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                                    .collect(),
                            };
                            if !emit(&f)? {
                                return Ok(());
                            }
                        }
                    }
                    *pos = (*pos).max(h.next_offset());
                }
            }
        }
        if follow && started.elapsed() < Duration::from_millis(5) {
            // The broker answered at once with nothing (it may not long-poll): do not spin.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
