//! Changelogs: how a store's changes become records of its compacted changelog topic
//! (`<application.id>-<store>-changelog`, Kafka's name) and how a store is rebuilt from them.
//!
//! Owns: the [`StoreLogger`] interface (made by the DSL with the store's serdes, kept in the
//! topology's store definition), its implementation for the DSL's timestamped key-value
//! stores, and [`restore`], which reads one changelog partition from an offset to its end.
//!
//! Invariants: a changelog record's key is the store key's bytes, its value the value's bytes
//! (a null value deletes the key), its timestamp the value's timestamp, as Kafka's
//! `ChangeLoggingTimestampedKeyValueBytesStore` writes them; so a store rebuilt from its
//! changelog equals the store that wrote it. Restoration never records changes (it would
//! write the changelog back to itself).

use std::any::Any;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::streams::serdes::SharedSerde;
use crate::streams::state::{InMemoryKeyValueStore, ValueAndTimestamp};
use crate::types::{Bytes, TopicPartition};
use crate::RecordPart;
use crate::{Broker, ConsumerConfig, IsolationLevel, OffsetReset};

/// The changelog topic of `store` (Kafka's `ProcessorStateManager.storeChangelogTopic`).
pub(crate) fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

/// One change of a store as a changelog record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChangeRecord {
    pub(crate) key: Bytes,
    /// `None`: the key was deleted (a tombstone).
    pub(crate) value: Option<Bytes>,
    pub(crate) timestamp: i64,
}

/// Writes a store's changes as changelog records and applies them back, for a store type
/// erased as `dyn Any` (the topology's stores).
pub(crate) trait StoreLogger: Send + Sync {
    /// Start recording the store's changes.
    fn enable(&self, store: &mut dyn Any) -> Result<()>;
    /// The changes since the last call, as records of `changelog`.
    fn drain(&self, store: &mut dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>>;
    /// Apply one record of `changelog` to the store, without recording it as a change.
    fn restore(&self, store: &mut dyn Any, changelog: &str, record: ChangeRecord) -> Result<()>;
    /// Every entry of the store, as records of `changelog`.
    fn snapshot(&self, store: &dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>>;
}

/// The logger of the DSL's key-value stores (`InMemoryKeyValueStore<K, ValueAndTimestamp<V>>`).
pub(crate) struct TimestampedKeyValueLogger<K, V> {
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K, V> TimestampedKeyValueLogger<K, V> {
    pub(crate) fn new(key_serde: SharedSerde<K>, value_serde: SharedSerde<V>) -> Self {
        TimestampedKeyValueLogger {
            key_serde,
            value_serde,
        }
    }
}

type Store<K, V> = InMemoryKeyValueStore<K, ValueAndTimestamp<V>>;

fn downcast<'a, S: Any>(store: &'a mut dyn Any, changelog: &str) -> Result<&'a mut S> {
    store.downcast_mut::<S>().ok_or_else(|| Error::StateStore {
        store: changelog.to_string(),
        reason: format!(
            "the store of this changelog is not a {}",
            std::any::type_name::<S>()
        ),
    })
}

impl<K, V> TimestampedKeyValueLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn encode(
        &self,
        changelog: &str,
        key: K,
        value: Option<ValueAndTimestamp<V>>,
        fallback_ts: i64,
    ) -> Result<ChangeRecord> {
        let serialization = |part, e: &dyn std::fmt::Display| Error::Serialization {
            topic: changelog.to_string(),
            part,
            reason: e.to_string(),
        };
        let mut headers = Vec::new();
        let key = self
            .key_serde
            .serialize(changelog, &mut headers, key)
            .map_err(|e| serialization(RecordPart::Key, &e))?
            .ok_or_else(|| Error::Serialization {
                topic: changelog.to_string(),
                part: RecordPart::Key,
                reason: "a store key serialized to null, which a changelog cannot hold".to_string(),
            })?;
        let (value, timestamp) = match value {
            Some(v) => (
                self.value_serde
                    .serialize(changelog, &mut headers, v.value)
                    .map_err(|e| serialization(RecordPart::Value, &e))?,
                v.timestamp,
            ),
            None => (None, fallback_ts),
        };
        Ok(ChangeRecord {
            key,
            value,
            timestamp: timestamp.max(0),
        })
    }
}

impl<K, V> StoreLogger for TimestampedKeyValueLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn enable(&self, store: &mut dyn Any) -> Result<()> {
        downcast::<Store<K, V>>(store, "?")?.track_changes();
        Ok(())
    }

    fn drain(&self, store: &mut dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        let changes = downcast::<Store<K, V>>(store, changelog)?.take_changes();
        // A deletion has no timestamp of its own: it takes the newest one drained with it.
        let newest = changes
            .iter()
            .filter_map(|(_, v)| v.as_ref().map(|v| v.timestamp))
            .max()
            .unwrap_or(0);
        changes
            .into_iter()
            .map(|(k, v)| self.encode(changelog, k, v, newest))
            .collect()
    }

    fn restore(&self, store: &mut dyn Any, changelog: &str, record: ChangeRecord) -> Result<()> {
        let store = downcast::<Store<K, V>>(store, changelog)?;
        let deserialization = |part, e: &dyn std::fmt::Display| Error::Deserialization {
            topic: changelog.to_string(),
            partition: -1,
            offset: -1,
            part,
            reason: e.to_string(),
        };
        let key = self
            .key_serde
            .deserialize(changelog, &[], Some(record.key))
            .map_err(|e| deserialization(RecordPart::Key, &e))?;
        let value = match record.value {
            Some(bytes) => Some(ValueAndTimestamp::make(
                self.value_serde
                    .deserialize(changelog, &[], Some(bytes))
                    .map_err(|e| deserialization(RecordPart::Value, &e))?,
                record.timestamp,
            )),
            None => None,
        };
        store.restore(key, value);
        Ok(())
    }

    fn snapshot(&self, store: &dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        use crate::streams::state::ReadOnlyKeyValueStore;
        let store = store
            .downcast_ref::<Store<K, V>>()
            .ok_or_else(|| Error::StateStore {
                store: changelog.to_string(),
                reason: "the store of this changelog is not the logger's type".to_string(),
            })?;
        store
            .all()?
            .into_iter()
            .map(|(k, v)| self.encode(changelog, k, Some(v), 0))
            .collect()
    }
}

/// Read partition `partition` of `changelog` from `from` (or its log start, if that is
/// later) up to its end as of now (the last stable offset under `read_committed`), handing
/// each record to `apply`. Returns the offset restoration reached, where a later restore
/// starts.
pub(crate) fn restore(
    broker: &Broker,
    changelog: &str,
    partition: i32,
    from: i64,
    read_committed: bool,
    mut apply: impl FnMut(ChangeRecord) -> Result<()>,
) -> Result<i64> {
    let mut config = ConsumerConfig::default();
    config.client_id = format!("{changelog}-restore-consumer");
    config.auto_offset_reset = OffsetReset::Earliest;
    config.enable_auto_commit = false;
    config.max_poll_records = 10_000;
    if read_committed {
        config.isolation_level = IsolationLevel::ReadCommitted;
    }
    let mut consumer = broker.consumer(config)?;
    let tp = TopicPartition::new(changelog, partition);
    consumer.assign(std::slice::from_ref(&tp))?;
    let start = consumer
        .beginning_offsets(std::slice::from_ref(&tp))?
        .get(&tp)
        .copied()
        .unwrap_or(0);
    let end = consumer
        .end_offsets(std::slice::from_ref(&tp))?
        .get(&tp)
        .copied()
        .unwrap_or(0);
    let from = from.max(start);
    if from >= end {
        return Ok(from);
    }
    consumer.seek(&tp, from)?;
    while consumer.position(&tp)? < end {
        for record in consumer.poll(Duration::from_millis(100))? {
            let Some(key) = record.key else {
                continue;
            };
            apply(ChangeRecord {
                key,
                value: record.value,
                timestamp: record.timestamp,
            })?;
        }
    }
    consumer.position(&tp)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::streams::state::{KeyValueStore, ReadOnlyKeyValueStore};
    use crate::Builtin;

    #[test]
    fn drained_changes_restore_an_equal_store() {
        let logger =
            TimestampedKeyValueLogger::<String, i64>::new(Arc::new(Builtin), Arc::new(Builtin));
        let mut store: Store<String, i64> = InMemoryKeyValueStore::new("counts");
        logger.enable(&mut store).unwrap();
        store
            .put("a".into(), ValueAndTimestamp::make(1, 10))
            .unwrap();
        store
            .put("b".into(), ValueAndTimestamp::make(2, 20))
            .unwrap();
        store.delete(&"a".to_string()).unwrap();
        let changes = logger.drain(&mut store, "app-counts-changelog").unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].key, Bytes::from_static(b"a"));
        assert_eq!(changes[0].value, None);
        assert_eq!(changes[1].timestamp, 20);
        let mut copy: Store<String, i64> = InMemoryKeyValueStore::new("counts");
        for c in changes {
            logger
                .restore(&mut copy, "app-counts-changelog", c)
                .unwrap();
        }
        assert_eq!(copy.all().unwrap(), store.all().unwrap());
        let snap = logger.snapshot(&store, "app-counts-changelog").unwrap();
        assert_eq!(snap.len(), 1);
        assert!(logger
            .drain(&mut InMemoryKeyValueStore::<u8, u8>::new("x"), "t")
            .is_err());
    }
}
