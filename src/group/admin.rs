//! Group administration on the broker (Kafka's `AdminClient` consumer-group calls and
//! `kafka-consumer-groups.sh`): list, describe with lag, delete, reset offsets.
//!
//! Owns: the description types. Invariant: deleting a group and resetting its offsets are
//! refused with [`Error::GroupNotEmpty`] while the group has members, and are written to
//! `__consumer_offsets` (offsets or tombstones) before the in-memory table changes.

use std::collections::{BTreeMap, BTreeSet};

use super::classic::{decode_assignment, decode_subscription};
use super::coordinator::{Group, GroupState};
use super::offset_store::OffsetAndMetadata;
use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::metrics::{self, Metrics};
use crate::types::TopicPartition;

/// One line of [`Broker::list_groups`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
}

/// A member as [`Broker::describe_group`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberDescription {
    /// The member id (`client.id-NNNNNNNNNN`).
    pub member_id: String,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// The address a member connected over Kafka's protocol from (`/127.0.0.1` as Kafka
    /// writes it); `None` for an in-process member.
    pub client_host: Option<String>,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// Its partitions in the current generation.
    pub assignment: Vec<TopicPartition>,
}

/// Offsets of one partition as [`Broker::describe_group`] reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionOffsets {
    /// The partition.
    pub topic_partition: TopicPartition,
    /// The group's committed offset, if any.
    pub committed: Option<OffsetAndMetadata>,
    /// The partition's log end offset.
    pub end_offset: i64,
    /// `end_offset - committed` (`None` without a commit).
    pub lag: Option<i64>,
}

/// What [`Broker::describe_group`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// The generation of the last completed rebalance (0 before the first).
    pub generation: i32,
    /// The assignor of the last rebalance (`"range"`, ...), if any.
    pub protocol: Option<String>,
    /// Members in id order (join order).
    pub members: Vec<MemberDescription>,
    /// Every partition that has a commit or is assigned, in order.
    pub offsets: Vec<PartitionOffsets>,
}

impl GroupDescription {
    /// The group's lag and membership as metrics (group `consumer-group-metrics`, tag
    /// `group`): `records-lag` per partition with a commit (tags `topic`, `partition`),
    /// `records-lag-max` and `records-lag-sum` over them (0 without commits), `members`, and
    /// `assigned-partitions` over all members. See the [`metrics` module docs](crate::metrics).
    pub fn metrics(&self) -> Metrics {
        let group = "consumer-group-metrics";
        let mut out = Metrics::default();
        let tags = metrics::tags(&[("group", &self.group_id)]);
        let lags: Vec<i64> = self.offsets.iter().filter_map(|o| o.lag).collect();
        let lag_max = lags.iter().copied().max().unwrap_or(0);
        let lag_sum: i64 = lags.iter().sum();
        out.push(group, "records-lag-max", &tags, lag_max as f64);
        out.push(group, "records-lag-sum", &tags, lag_sum as f64);
        out.push(group, "members", &tags, self.members.len() as f64);
        let assigned: usize = self.members.iter().map(|m| m.assignment.len()).sum();
        out.push(group, "assigned-partitions", &tags, assigned as f64);
        for o in &self.offsets {
            if let Some(lag) = o.lag {
                let tp = &o.topic_partition;
                let tags = metrics::tags(&[
                    ("group", &self.group_id),
                    ("topic", &tp.topic),
                    ("partition", &tp.partition.to_string()),
                ]);
                out.push(group, "records-lag", &tags, lag as f64);
            }
        }
        out
    }
}

/// Where [`Broker::reset_group_offsets`] moves a group's committed offsets
/// (`kafka-consumer-groups.sh --reset-offsets --to-...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetSpec {
    /// The log start offset (`--to-earliest`).
    Earliest,
    /// The log end offset (`--to-latest`).
    Latest,
    /// The first offset whose timestamp is at least this (ms); the end offset if none
    /// (`--to-datetime`).
    Timestamp(i64),
    /// This offset, clamped to `[log start, log end]` (`--to-offset`).
    Offset(i64),
}

fn check_open(broker: &Broker) -> Result<()> {
    if broker.inner.is_closed() {
        return Err(Error::Closed { what: "broker" });
    }
    broker.inner.groups().check()
}

impl Broker {
    /// The groups that have members or committed offsets, by id.
    pub fn list_groups(&self) -> Result<Vec<GroupListing>> {
        check_open(self)?;
        let mut out = Vec::new();
        for group in self.inner.groups().all() {
            let g = group.inner.lock();
            let state = Group::state(&g);
            let has_members = !g.members.is_empty() || g.classic.has_members();
            if state != GroupState::Dead && (has_members || !g.offsets.is_empty()) {
                out.push(GroupListing {
                    group_id: group.id.clone(),
                    state,
                });
            }
        }
        Ok(out)
    }

    /// State, generation, members with their assignments, and committed offset, end offset
    /// and lag of every partition the group has committed or is assigned.
    ///
    /// ```
    /// use embroker::{Broker, ConsumerConfig, OffsetAndMetadata, TopicConfig, TopicPartition};
    /// use std::collections::BTreeMap;
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("t", TopicConfig::default())?;
    /// broker.topic("t")?.partition(0)?.append(&[embroker::Record::new("x")])?;
    /// let mut consumer = broker.consumer(ConsumerConfig::default().group_id("g"))?;
    /// let tp = TopicPartition::new("t", 0);
    /// consumer.assign(&[tp.clone()])?;
    /// consumer.commit_offsets_sync(&BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(0))]))?;
    /// let d = broker.describe_group("g")?;
    /// assert_eq!(d.offsets[0].lag, Some(1));
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn describe_group(&self, group_id: &str) -> Result<GroupDescription> {
        check_open(self)?;
        let group = self
            .inner
            .groups()
            .get(group_id)
            .ok_or_else(|| Error::UnknownGroup {
                group: group_id.to_string(),
            })?;
        let (state, generation, protocol, members, committed) = {
            let g = group.inner.lock();
            let mut members: Vec<MemberDescription> = g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    client_id: m.client_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_host: None,
                    topics: m.topics.clone(),
                    assignment: m.assignment.clone(),
                })
                .collect();
            // Network members (a group has one kind or the other).
            members.extend(g.classic.members.iter().map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_host: Some(m.client_host.clone()),
                topics: decode_subscription(&g.classic.member_metadata(m)),
                assignment: decode_assignment(&m.assignment),
            }));
            let (generation, protocol) = if g.classic.has_members() {
                (g.classic.generation, g.classic.protocol.clone())
            } else {
                (g.generation, g.protocol.clone())
            };
            (
                Group::state(&g),
                generation,
                protocol,
                members,
                g.offsets.clone(),
            )
        };
        if state == GroupState::Dead {
            return Err(Error::UnknownGroup {
                group: group_id.to_string(),
            });
        }
        let mut partitions: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
        for m in &members {
            partitions.extend(m.assignment.iter().cloned());
        }
        let offsets = partitions
            .into_iter()
            .map(|tp| {
                let end_offset = self
                    .inner
                    .partition_log(&tp.topic, tp.partition)
                    .map(|log| log.log_end_offset())
                    .unwrap_or(0);
                let committed = committed.get(&tp).cloned();
                let lag = committed
                    .as_ref()
                    .map(|c| end_offset.saturating_sub(c.offset).max(0));
                PartitionOffsets {
                    topic_partition: tp,
                    committed,
                    end_offset,
                    lag,
                }
            })
            .collect();
        Ok(GroupDescription {
            group_id: group_id.to_string(),
            state,
            generation,
            protocol,
            members,
            offsets,
        })
    }

    /// Deletes a group and its committed offsets (tombstones in `__consumer_offsets`).
    /// [`Error::GroupNotEmpty`] while it has members, [`Error::UnknownGroup`] if it does not
    /// exist.
    pub fn delete_group(&self, group_id: &str) -> Result<()> {
        check_open(self)?;
        let registry = self.inner.groups();
        let group = registry.get(group_id).ok_or_else(|| Error::UnknownGroup {
            group: group_id.to_string(),
        })?;
        let tombstones: Vec<(TopicPartition, Option<OffsetAndMetadata>)> = group
            .inner
            .lock()
            .offsets
            .keys()
            .map(|tp| (tp.clone(), None))
            .collect();
        group.admin_write(&self.inner, &tombstones, true)?;
        registry.remove(&group);
        Ok(())
    }

    /// Moves a group's committed offsets for `partitions` (all partitions it has committed when
    /// empty) to `to`, while the group has no members ([`Error::GroupNotEmpty`] otherwise).
    /// Returns the new offsets. The group is created if it does not exist, as Kafka's tool does.
    pub fn reset_group_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
        to: OffsetSpec,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        check_open(self)?;
        let group = self.inner.groups().get_or_create(group_id);
        let targets: Vec<TopicPartition> = if partitions.is_empty() {
            group.inner.lock().offsets.keys().cloned().collect()
        } else {
            partitions.to_vec()
        };
        let mut result = BTreeMap::new();
        let mut changes = Vec::new();
        for tp in targets {
            let log = self.inner.partition_log(&tp.topic, tp.partition)?;
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            let offset = match to {
                OffsetSpec::Earliest => start,
                OffsetSpec::Latest => end,
                OffsetSpec::Timestamp(ts) => {
                    if ts < 0 {
                        return Err(Error::argument("timestamp", format!("{ts} is negative")));
                    }
                    log.offset_for_timestamp(ts)?.map_or(end, |(o, _)| o)
                }
                OffsetSpec::Offset(o) => o.clamp(start, end),
            };
            result.insert(tp.clone(), offset);
            changes.push((tp, Some(OffsetAndMetadata::new(offset))));
        }
        group.admin_write(&self.inner, &changes, false)?;
        Ok(result)
    }
}
