//! A source topic as a task's processing sees it: the decoder and node of its source, the
//! topic's partition time, and the slot a decoded record waits in.
//!
//! Owns: [`Source`] and the step shared by stream tasks and the global thread's task: decode a
//! consumed record, apply Kafka's timestamp rules (a negative timestamp is dropped and counted
//! under a custom extractor, an error otherwise: `FailOnInvalidTimestamp`), advance the
//! partition time, and run the record into the task from its source node.
//!
//! Invariant: the partition time only grows; a record is handed to the task only after its
//! decode succeeded and its timestamp checked.

use std::any::Any;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::streams::task::Task;
use crate::streams::topology::Decoder;
use crate::ConsumerRecord;

/// What a task needs of a topic's source, and the topic's partition time (the largest
/// timestamp processed).
pub(crate) struct Source {
    pub(crate) node: usize,
    decode: Decoder,
    custom_timestamps: bool,
    partition_time: i64,
    /// The decoded record's slot, boxed once and reused for every record of the topic.
    slot: Option<Box<dyn Any>>,
}

impl Source {
    /// The source of a topic read by `node` through `decode`.
    pub(crate) fn new(node: usize, decode: &Decoder, custom_timestamps: bool) -> Self {
        Source {
            node,
            decode: Arc::clone(decode),
            custom_timestamps,
            partition_time: -1,
            slot: None,
        }
    }

    /// Decode `record` of `topic` and run it into `task`. Returns whether the record was
    /// processed (false: dropped for its negative timestamp under a custom extractor).
    pub(crate) fn process(
        &mut self,
        task: &mut Task,
        topic: &str,
        record: ConsumerRecord,
    ) -> Result<bool> {
        let timestamp = (self.decode)(
            &mut self.slot,
            topic,
            record.key,
            record.value,
            record.timestamp,
            record.headers.into_vec(),
            self.partition_time,
        )
        .map_err(|(part, e)| Error::Deserialization {
            topic: topic.to_string(),
            partition: record.partition,
            offset: record.offset,
            part,
            reason: e.to_string(),
        })?;
        if timestamp < 0 {
            if self.custom_timestamps {
                task.dropped_records = task.dropped_records.saturating_add(1);
                return Ok(false);
            }
            return Err(Error::InvalidRecord {
                topic: topic.to_string(),
                partition: record.partition,
                reason: format!(
                    "record at offset {} has the invalid timestamp {timestamp} (Kafka's \
                     FailOnInvalidTimestamp)",
                    record.offset
                ),
            });
        }
        self.partition_time = self.partition_time.max(timestamp);
        let Some(slot) = self.slot.as_deref_mut() else {
            return Err(Error::IllegalState {
                reason: format!("the source of {topic} decoded no record"),
            });
        };
        task.process(
            self.node,
            (topic, record.partition, record.offset),
            timestamp,
            slot,
        )?;
        Ok(true)
    }
}
