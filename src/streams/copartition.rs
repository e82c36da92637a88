//! Co-partitioning of joined inputs: which source topics a join needs partitioned alike
//! ([`Topology::copartition_groups`]) and the check against the broker's partition counts
//! before start ([`Topology::check_copartitioning`], Kafka's `CopartitionedTopicsEnforcer`).
//!
//! A join matches records of one key, and a task sees one partition number of each input; so
//! both inputs of a join must have the same number of partitions (and the same partitioner),
//! or a key's records would land in different tasks and never meet.
//!
//! Invariants: a group is the set of source topics upstream of the two sides of one join
//! (following parents up to the sources), groups sharing a topic are merged (as Kafka merges
//! them), global-table topics are never in a group, and internal repartition topics are listed
//! (without the application id) but not checked: the runtime creates them with the group's
//! partition count.

use std::collections::BTreeSet;

use super::topology::{NodeKind, Topology};
use crate::error::{Error, Result};

impl Topology {
    /// The source topics upstream of `node`, sorted (global-table topics left out).
    fn sources_above(&self, node: usize) -> BTreeSet<(String, bool)> {
        let mut found = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut todo = vec![node];
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(def) = self.nodes.get(id) else {
                continue;
            };
            if let NodeKind::Source { topic, internal } = &def.kind {
                if !self.global_topics.contains(topic) {
                    found.insert((topic.clone(), *internal));
                }
            }
            todo.extend(def.parents.iter().copied());
        }
        found
    }

    /// Groups of (topic, internal) that must be co-partitioned, overlapping groups merged.
    fn copartition_sets(&self) -> Vec<BTreeSet<(String, bool)>> {
        let mut groups: Vec<BTreeSet<(String, bool)>> = Vec::new();
        for nodes in &self.copartition_nodes {
            let mut group: BTreeSet<(String, bool)> =
                nodes.iter().flat_map(|&n| self.sources_above(n)).collect();
            // Merge every earlier group that shares a topic with this one.
            let mut i = 0;
            while i < groups.len() {
                if groups[i].iter().any(|t| group.contains(t)) {
                    group.extend(groups.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            if group.len() > 1 {
                groups.push(group);
            }
        }
        groups.sort();
        groups
    }

    /// The groups of source topics that must have the same number of partitions, one per
    /// join (merged when they share a topic), each sorted; internal repartition topics without
    /// the application id (Kafka's `copartitionGroups`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use embroker::streams::{Consumed, JoinWindows, StreamsBuilder};
    /// use embroker::Builtin;
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream("a", Consumed::<String, String>::with(Builtin, Builtin));
    /// let b = builder.stream("b", Consumed::<String, String>::with(Builtin, Builtin));
    /// a.join(&b, |x, y| format!("{x}{y}"), JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(1)));
    /// assert_eq!(builder.build()?.copartition_groups(), vec![vec!["a".to_string(), "b".to_string()]]);
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn copartition_groups(&self) -> Vec<Vec<String>> {
        self.copartition_sets()
            .into_iter()
            .map(|g| g.into_iter().map(|(topic, _)| topic).collect())
            .collect()
    }

    /// Check, before start, that the topics of each co-partition group have the same number
    /// of partitions, asking `partitions(topic)` for each user topic (the runtime passes the
    /// broker's count); repartition topics are skipped, as the runtime creates them. An error
    /// from `partitions` (an unknown topic) is returned as it is; a mismatch is
    /// [`Error::NotCopartitioned`], naming every topic of the group with its count.
    ///
    /// ```
    /// use std::time::Duration;
    /// use embroker::streams::{Consumed, JoinWindows, StreamsBuilder};
    /// use embroker::{Builtin, Error};
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream("a", Consumed::<String, String>::with(Builtin, Builtin));
    /// let b = builder.stream("b", Consumed::<String, String>::with(Builtin, Builtin));
    /// a.join(&b, |x, y| format!("{x}{y}"), JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(1)));
    /// let topology = builder.build()?;
    /// assert!(topology.check_copartitioning(|_| Ok(3)).is_ok());
    /// let e = topology.check_copartitioning(|t| Ok(if t == "a" { 3 } else { 4 })).unwrap_err();
    /// assert!(matches!(e, Error::NotCopartitioned { .. }));
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn check_copartitioning(
        &self,
        mut partitions: impl FnMut(&str) -> Result<i32>,
    ) -> Result<()> {
        for group in self.copartition_sets() {
            let mut counts = Vec::new();
            for (topic, internal) in &group {
                if !internal {
                    counts.push((topic.clone(), partitions(topic)?));
                }
            }
            let mismatch = counts.windows(2).any(|w| w[0].1 != w[1].1);
            if mismatch {
                return Err(Error::NotCopartitioned { topics: counts });
            }
        }
        Ok(())
    }
}
