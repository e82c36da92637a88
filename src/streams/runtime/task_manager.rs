//! A stream thread's tasks: one per assigned partition number, made from the topology when
//! the group assigns the partition, restored from their changelogs, fed the records the
//! thread polls, and closed (with their store files, persistent stores flushed, and
//! checkpoint) when it is revoked.
//!
//! Owns: the [`StreamTask`]s of one thread, each a [`Task`] plus what the runtime adds around
//! it (its partition, each input topic's partition time, its logged stores and their
//! changelogs, its directory under the state directory).
//!
//! Invariants: a task is made only on the thread that runs it (its nodes and stores are not
//! `Send`); task `p` holds partition `p` of every source topic (co-partitioned inputs together)
//! and writes partition `p` of every changelog; a logged store's changes are drained after
//! each batch, and with the record caches flushed before every commit, so a committed offset
//! never runs ahead of the changelog that holds its effects.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::changelog::{self, changelog_topic, ChangeRecord, StoreLogger};
use super::source::Source;
use super::{checkpoint, store_file};
use crate::error::{Error, Result};
use crate::streams::persistent::AsDiskStore;
use crate::streams::processor::PunctuationType;
use crate::streams::task::{Produced, Task};
use crate::streams::topology::Topology;
use crate::types::TopicPartition;
use crate::{Broker, ConsumerRecord};

/// A logged store of a task.
struct Logged {
    store: String,
    changelog: String,
    logger: Arc<dyn StoreLogger>,
    /// A persistent store: restored into its own files from its checkpointed offset, never
    /// written to a store file.
    persistent: bool,
    /// A persistent store whose files did not exist when the task started: the checkpoint
    /// does not describe it, so it is restored from the changelog's start.
    fresh: bool,
}

/// One running task of the runtime (Kafka's `StreamTask`, id `0_<partition>`).
pub(crate) struct StreamTask {
    pub(crate) partition: i32,
    pub(crate) task: Task,
    /// The sources met so far, by interned topic (the consumer's), with their partition times:
    /// found by address, so that a record costs no hashing of its topic name.
    sources: Vec<(&'static str, Source)>,
    logged: Vec<Logged>,
    /// `state.dir/<application.id>/0_<partition>`, when the application has a state dir.
    dir: Option<PathBuf>,
    /// The persistent stores, flushed on a clean close before the checkpoint.
    disk: Vec<(String, AsDiskStore)>,
    /// The checkpoint read when the task started.
    checkpoint: BTreeMap<TopicPartition, i64>,
}

/// What a task wrote while processing: its sinks' records and its stores' changes.
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) produced: Vec<Produced>,
    /// (changelog topic, partition, change).
    pub(crate) changes: Vec<(String, i32, ChangeRecord)>,
}

/// What restoring a task did, for the thread's counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Restored {
    /// Changelog records read.
    pub(crate) records: u64,
    /// Entries loaded from store files.
    pub(crate) from_files: u64,
}

impl StreamTask {
    /// Make task `partition`, then rebuild each logged store. An in-memory store loads its
    /// store file when the task's checkpoint names the changelog offset the file holds, then
    /// reads the changelog past that offset to its end. A persistent store keeps its files and
    /// reads the changelog past its checkpointed offset (from the start when it has none);
    /// under exactly-once a persistent store without a checkpointed offset is wiped first
    /// (it may hold uncommitted writes), and the task's checkpoint loses the persistent
    /// stores' offsets while it runs, so that a crash leaves none (Kafka's
    /// `ProcessorStateManager`).
    // Each argument is one the thread holds separately (topology, config values, broker, clock).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        topology: &Topology,
        application_id: &str,
        partition: i32,
        broker: &Broker,
        state_dir: Option<&std::path::Path>,
        read_committed: bool,
        now_ms: i64,
        cache_max_bytes: u64,
    ) -> Result<(StreamTask, Restored)> {
        let dir = state_dir.map(|d| d.join(application_id).join(format!("0_{partition}")));
        let checkpoint = match &dir {
            Some(dir) => checkpoint::read(dir)?,
            None => BTreeMap::new(),
        };
        let eos = read_committed;
        let mut logged = Vec::new();
        let mut disk = Vec::new();
        let mut dropped_offsets = false;
        for s in &topology.stores {
            let changelog = changelog_topic(application_id, &s.name);
            let tp = TopicPartition::new(changelog.as_str(), partition);
            let mut fresh = false;
            if let (Some(as_disk), Some(dir)) = (s.disk, &dir) {
                disk.push((s.name.clone(), as_disk));
                let store_dir = dir.join(&s.name);
                if s.logger.is_some() && eos && !checkpoint.contains_key(&tp) && store_dir.exists()
                {
                    log::warn!(
                        "{}: no checkpointed offset under exactly_once_v2, so the store may \
                         hold uncommitted writes; wiping it to restore from {changelog}",
                        store_dir.display()
                    );
                    crate::io::remove_dir_all_durable(&store_dir)?;
                }
                fresh = !store_dir.join(crate::streams::kv_log::FILE_NAME).exists();
                // Restoration still starts from the offset read here.
                dropped_offsets |= eos && checkpoint.contains_key(&tp);
            }
            if let Some(logger) = &s.logger {
                logged.push(Logged {
                    store: s.name.clone(),
                    changelog,
                    logger: Arc::clone(logger),
                    persistent: s.disk.is_some(),
                    fresh,
                });
            }
        }
        if let (true, Some(dir)) = (dropped_offsets, &dir) {
            // Kafka deletes the checkpoint under EOS; the in-memory stores' offsets are kept,
            // as their store files do not change while the task runs.
            let mut kept = checkpoint.clone();
            for l in logged.iter().filter(|l| l.persistent) {
                kept.remove(&TopicPartition::new(l.changelog.as_str(), partition));
            }
            checkpoint::write(dir, &kept)?;
        }
        let task = Task::new(
            topology,
            application_id,
            now_ms,
            cache_max_bytes,
            dir.as_deref(),
        )?;
        let mut t = StreamTask {
            partition,
            task,
            sources: Vec::new(),
            logged,
            dir,
            disk,
            checkpoint,
        };
        let restored = t.restore(broker, read_committed)?;
        Ok((t, restored))
    }

    fn restore(&mut self, broker: &Broker, read_committed: bool) -> Result<Restored> {
        let mut restored = Restored::default();
        for l in &self.logged {
            let store = self.task.store_any_mut(&l.store)?;
            l.logger.enable(store)?;
            let tp = TopicPartition::new(l.changelog.as_str(), self.partition);
            let mut from = 0;
            if l.persistent {
                if let (false, Some(&offset)) = (l.fresh, self.checkpoint.get(&tp)) {
                    from = offset;
                }
            } else if let (Some(dir), Some(&offset)) = (&self.dir, self.checkpoint.get(&tp)) {
                if let Some(entries) = store_file::read(dir, &l.store)? {
                    restored.from_files += entries.len() as u64;
                    for e in entries {
                        l.logger.restore(store, &l.changelog, e)?;
                    }
                    from = offset;
                }
            }
            changelog::restore(
                broker,
                &l.changelog,
                self.partition,
                from,
                read_committed,
                |record| {
                    restored.records += 1;
                    l.logger.restore(store, &l.changelog, record)
                },
            )?;
        }
        Ok(restored)
    }

    /// Process one polled record: decode it with its source's serdes and extractor, run it
    /// through the topology, then the stream-time punctuations it made due.
    pub(crate) fn process(
        &mut self,
        topology: &Topology,
        application_id: &str,
        record: ConsumerRecord,
    ) -> Result<()> {
        let topic = record.topic;
        let index = match self
            .sources
            .iter()
            .position(|(t, _)| std::ptr::eq(*t, topic))
        {
            Some(index) => index,
            None => {
                let Some(def) = topology.source_for(topic, application_id) else {
                    return Err(Error::UnknownTopic {
                        topic: topic.to_string(),
                    });
                };
                let source = Source::new(def.node, &def.decode, def.custom_timestamps);
                self.sources.push((topic, source));
                self.sources.len() - 1
            }
        };
        let Some((_, source)) = self.sources.get_mut(index) else {
            return Err(Error::UnknownTopic {
                topic: topic.to_string(),
            });
        };
        if !source.process(&mut self.task, topic, record)? {
            return Ok(());
        }
        self.task.punctuate(PunctuationType::StreamTime)
    }

    /// Run the wall-clock punctuations due at `now_ms`.
    pub(crate) fn punctuate_wall_clock(&mut self, now_ms: i64) -> Result<()> {
        self.task.wall_clock_ms = now_ms;
        self.task.punctuate(PunctuationType::WallClockTime)
    }

    /// Take what the task wrote since the last call into `out`: its sinks' records and its
    /// logged stores' changes. With `flush_caches` (a commit), the record caches first forward
    /// and log every key they hold; without, only what they evicted is there.
    pub(crate) fn drain(&mut self, out: &mut Output, flush_caches: bool) -> Result<()> {
        if flush_caches {
            self.task.flush()?;
        }
        // The first task drained hands over its buffer and takes the (sent, emptied) one of
        // `out`: no copy of its records and no regrowth of either buffer.
        if out.produced.is_empty() {
            std::mem::swap(&mut out.produced, &mut self.task.produced);
        } else {
            out.produced.append(&mut self.task.produced);
        }
        for l in &self.logged {
            let store = self.task.store_any_mut(&l.store)?;
            for change in l.logger.drain(store, &l.changelog)? {
                out.changes
                    .push((l.changelog.clone(), self.partition, change));
            }
        }
        Ok(())
    }

    /// Close the task cleanly: its processors, then (with a state directory) each persistent
    /// store flushed and fsynced, each logged in-memory store's file written, and the
    /// checkpoint naming the changelog end each store holds. Call after the task's changes
    /// were drained and written (flushed, or committed under exactly-once).
    pub(crate) fn close_clean(mut self, broker: &Broker) -> Result<()> {
        self.task.close();
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        checkpoint::remove(dir)?;
        for (name, as_disk) in &self.disk {
            let store = self.task.store_any_mut(name)?;
            if let Some(store) = as_disk(store) {
                store.flush()?;
            }
        }
        let mut offsets = BTreeMap::new();
        for l in &self.logged {
            if !l.persistent {
                let store = self.task.store_any_mut(&l.store)?;
                let entries = l.logger.snapshot(store, &l.changelog)?;
                store_file::write(dir, &l.store, &entries)?;
            }
            let end = broker
                .topic(&l.changelog)?
                .partition(self.partition)?
                .log_end_offset();
            offsets.insert(
                TopicPartition::new(l.changelog.as_str(), self.partition),
                end,
            );
        }
        checkpoint::write(dir, &offsets)
    }

    /// Close the task after a failure or a lost partition: processors only; the state
    /// directory keeps its previous checkpoint, if any.
    pub(crate) fn close_dirty(mut self) {
        self.task.close();
    }
}
