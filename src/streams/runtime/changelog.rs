//! Changelogs: how a store's changes become records of its compacted changelog topic
//! (`<application.id>-<store>-changelog`, Kafka's name) and how a store is rebuilt from them.
//!
//! Owns: the [`StoreLogger`] interface (made by the DSL with the store's serdes, kept in the
//! topology's store definition), its implementations (the DSL's timestamped key-value,
//! window and session stores, the Processor API's plain key-value stores, and the
//! stream-stream join's window stores and outer-join buffer), and [`restore`], which reads
//! one changelog partition from an offset to its end.
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
use crate::streams::state::{
    InMemoryKeyValueStore, InMemorySessionStore, InMemoryWindowStore, ValueAndTimestamp,
};
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

fn deserialization(changelog: &str, part: RecordPart, e: &dyn std::fmt::Display) -> Error {
    Error::Deserialization {
        topic: changelog.to_string(),
        partition: -1,
        offset: -1,
        part,
        reason: e.to_string(),
    }
}

impl<K, V> TimestampedKeyValueLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn decode_key(&self, changelog: &str, key: Bytes) -> Result<K> {
        self.key_serde
            .deserialize(changelog, &[], Some(key))
            .map_err(|e| deserialization(changelog, RecordPart::Key, &e))
    }

    /// A changelog record's key and (non-null) value, the value at `timestamp`.
    fn decode(
        &self,
        changelog: &str,
        key: Bytes,
        value: Bytes,
        timestamp: i64,
    ) -> Result<(K, ValueAndTimestamp<V>)> {
        let key = self.decode_key(changelog, key)?;
        let value = self
            .value_serde
            .deserialize(changelog, &[], Some(value))
            .map_err(|e| deserialization(changelog, RecordPart::Value, &e))?;
        Ok((key, ValueAndTimestamp::make(value, timestamp)))
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
        match record.value {
            Some(value) => {
                let (key, value) = self.decode(changelog, record.key, value, record.timestamp)?;
                store.restore(key, Some(value));
            }
            None => {
                let key = self.decode_key(changelog, record.key)?;
                store.restore(key, None);
            }
        }
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

/// The logger of the DSL's windowed aggregation stores
/// (`InMemoryWindowStore<K, ValueAndTimestamp<V>>`). A record's key is Kafka's window-store
/// key (`WindowKeySchema`): the key's bytes, the window start (8 bytes big-endian) and a
/// sequence number (4 bytes big-endian, always 0: no duplicates are kept).
pub(crate) struct TimestampedWindowLogger<K, V> {
    inner: TimestampedKeyValueLogger<K, V>,
}

impl<K, V> TimestampedWindowLogger<K, V> {
    pub(crate) fn new(key_serde: SharedSerde<K>, value_serde: SharedSerde<V>) -> Self {
        TimestampedWindowLogger {
            inner: TimestampedKeyValueLogger::new(key_serde, value_serde),
        }
    }
}

type WindowStore<K, V> = InMemoryWindowStore<K, ValueAndTimestamp<V>>;

/// The suffix of a window-store key: start and sequence number.
const WINDOW_SUFFIX: usize = 12;

impl<K, V> TimestampedWindowLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn encode(
        &self,
        changelog: &str,
        key: K,
        start: i64,
        value: ValueAndTimestamp<V>,
    ) -> Result<ChangeRecord> {
        let mut record = self.inner.encode(changelog, key, Some(value), 0)?;
        let mut bytes = Vec::with_capacity(record.key.len() + WINDOW_SUFFIX);
        bytes.extend_from_slice(&record.key);
        bytes.extend_from_slice(&start.to_be_bytes());
        bytes.extend_from_slice(&0i32.to_be_bytes());
        record.key = Bytes::from(bytes);
        Ok(record)
    }
}

impl<K, V> StoreLogger for TimestampedWindowLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn enable(&self, store: &mut dyn Any) -> Result<()> {
        downcast::<WindowStore<K, V>>(store, "?")?.track_changes();
        Ok(())
    }

    fn drain(&self, store: &mut dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        downcast::<WindowStore<K, V>>(store, changelog)?
            .take_changes()
            .into_iter()
            .map(|(k, start, v)| self.encode(changelog, k, start, v))
            .collect()
    }

    fn restore(&self, store: &mut dyn Any, changelog: &str, record: ChangeRecord) -> Result<()> {
        let store = downcast::<WindowStore<K, V>>(store, changelog)?;
        let Some(split) = record.key.len().checked_sub(WINDOW_SUFFIX) else {
            return Err(Error::Deserialization {
                topic: changelog.to_string(),
                partition: -1,
                offset: -1,
                part: RecordPart::Key,
                reason: format!(
                    "a window-store key of {} bytes is shorter than its 12-byte suffix",
                    record.key.len()
                ),
            });
        };
        let mut start = [0u8; 8];
        start.copy_from_slice(&record.key[split..split + 8]);
        let start = i64::from_be_bytes(start);
        let Some(value) = record.value.clone() else {
            // Window stores are not deleted from; a null is nothing to restore.
            return Ok(());
        };
        let (key, value) = self.inner.decode(
            changelog,
            record.key.slice(..split),
            value,
            record.timestamp,
        )?;
        store.restore(key, start, value);
        Ok(())
    }

    fn snapshot(&self, store: &dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        use crate::streams::state::ReadOnlyWindowStore;
        let store = store
            .downcast_ref::<WindowStore<K, V>>()
            .ok_or_else(|| Error::StateStore {
                store: changelog.to_string(),
                reason: "the store of this changelog is not the logger's type".to_string(),
            })?;
        ReadOnlyWindowStore::all(store)?
            .into_iter()
            .map(|(w, v)| self.encode(changelog, w.key, w.window.start, v))
            .collect()
    }
}

/// The logger of the DSL's session aggregation stores (`InMemorySessionStore<K, V>`). A
/// record's key is Kafka's session-store key (`SessionKeySchema`): the key's bytes, the
/// session end and the session start (8 bytes big-endian each); its value the aggregate's
/// bytes (null: the session was merged away or expired); its timestamp the session end.
pub(crate) struct SessionLogger<K, V> {
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K, V> SessionLogger<K, V> {
    pub(crate) fn new(key_serde: SharedSerde<K>, value_serde: SharedSerde<V>) -> Self {
        SessionLogger {
            key_serde,
            value_serde,
        }
    }
}

type SessionStoreOf<K, V> = InMemorySessionStore<K, V>;

/// The suffix of a session-store key: end and start.
const SESSION_SUFFIX: usize = 16;

impl<K, V> SessionLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn encode(
        &self,
        changelog: &str,
        (key, start, end, value): (K, i64, i64, Option<V>),
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
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(key.len() + SESSION_SUFFIX);
        bytes.extend_from_slice(&key);
        bytes.extend_from_slice(&end.to_be_bytes());
        bytes.extend_from_slice(&start.to_be_bytes());
        let value = match value {
            Some(v) => self
                .value_serde
                .serialize(changelog, &mut headers, v)
                .map_err(|e| serialization(RecordPart::Value, &e))?,
            None => None,
        };
        Ok(ChangeRecord {
            key: Bytes::from(bytes),
            value,
            timestamp: end.max(0),
        })
    }
}

impl<K, V> StoreLogger for SessionLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn enable(&self, store: &mut dyn Any) -> Result<()> {
        downcast::<SessionStoreOf<K, V>>(store, "?")?.track_changes();
        Ok(())
    }

    fn drain(&self, store: &mut dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        downcast::<SessionStoreOf<K, V>>(store, changelog)?
            .take_changes()
            .into_iter()
            .map(|change| self.encode(changelog, change))
            .collect()
    }

    fn restore(&self, store: &mut dyn Any, changelog: &str, record: ChangeRecord) -> Result<()> {
        let store = downcast::<SessionStoreOf<K, V>>(store, changelog)?;
        let Some(split) = record.key.len().checked_sub(SESSION_SUFFIX) else {
            return Err(deserialization(
                changelog,
                RecordPart::Key,
                &format!(
                    "a session-store key of {} bytes is shorter than its 16-byte suffix",
                    record.key.len()
                ),
            ));
        };
        let mut end = [0u8; 8];
        end.copy_from_slice(&record.key[split..split + 8]);
        let mut start = [0u8; 8];
        start.copy_from_slice(&record.key[split + 8..]);
        let key = self
            .key_serde
            .deserialize(changelog, &[], Some(record.key.slice(..split)))
            .map_err(|e| deserialization(changelog, RecordPart::Key, &e))?;
        let value = match record.value {
            Some(bytes) => Some(
                self.value_serde
                    .deserialize(changelog, &[], Some(bytes))
                    .map_err(|e| deserialization(changelog, RecordPart::Value, &e))?,
            ),
            None => None,
        };
        store.restore(
            key,
            i64::from_be_bytes(start),
            i64::from_be_bytes(end),
            value,
        );
        Ok(())
    }

    fn snapshot(&self, store: &dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        let store = store
            .downcast_ref::<SessionStoreOf<K, V>>()
            .ok_or_else(|| Error::StateStore {
                store: changelog.to_string(),
                reason: "the store of this changelog is not the logger's type".to_string(),
            })?;
        store
            .entries()
            .into_iter()
            .map(|(k, start, end, v)| self.encode(changelog, (k, start, end, Some(v))))
            .collect()
    }
}

/// The logger of plain key-value stores (`InMemoryKeyValueStore<K, V>`), the stores a
/// Processor-API processor declares with a [`StoreBuilder`](crate::streams::StoreBuilder)
/// (Kafka's `ChangeLoggingKeyValueBytesStore`). A record's key is the key's bytes, its value
/// the value's bytes (null: deleted). The store holds no timestamps, so its records carry 0
/// (Kafka writes the processed record's timestamp; a compacted changelog never expires by
/// time, and restoration does not read it).
pub(crate) struct KeyValueLogger<K, V> {
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K, V> KeyValueLogger<K, V> {
    pub(crate) fn new(key_serde: SharedSerde<K>, value_serde: SharedSerde<V>) -> Self {
        KeyValueLogger {
            key_serde,
            value_serde,
        }
    }
}

type PlainStore<K, V> = InMemoryKeyValueStore<K, V>;
type DiskStore<K, V> = crate::streams::PersistentKeyValueStore<K, V>;

impl<K, V> KeyValueLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn encode(&self, changelog: &str, key: K, value: Option<V>) -> Result<ChangeRecord> {
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
        let value = match value {
            Some(v) => self
                .value_serde
                .serialize(changelog, &mut headers, v)
                .map_err(|e| serialization(RecordPart::Value, &e))?,
            None => None,
        };
        Ok(ChangeRecord {
            key,
            value,
            timestamp: 0,
        })
    }
}

impl<K, V> StoreLogger for KeyValueLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn enable(&self, store: &mut dyn Any) -> Result<()> {
        if let Some(store) = store.downcast_mut::<DiskStore<K, V>>() {
            store.track_changes();
            return Ok(());
        }
        downcast::<PlainStore<K, V>>(store, "?")?.track_changes();
        Ok(())
    }

    fn drain(&self, store: &mut dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        let changes = match store.downcast_mut::<DiskStore<K, V>>() {
            Some(store) => store.take_changes()?,
            None => downcast::<PlainStore<K, V>>(store, changelog)?.take_changes(),
        };
        changes
            .into_iter()
            .map(|(k, v)| self.encode(changelog, k, v))
            .collect()
    }

    fn restore(&self, store: &mut dyn Any, changelog: &str, record: ChangeRecord) -> Result<()> {
        if let Some(store) = store.downcast_mut::<DiskStore<K, V>>() {
            // The changelog's bytes are the store's: written as they come.
            return store.restore_bytes(record.key, record.value);
        }
        let store = downcast::<PlainStore<K, V>>(store, changelog)?;
        let key = self
            .key_serde
            .deserialize(changelog, &[], Some(record.key))
            .map_err(|e| deserialization(changelog, RecordPart::Key, &e))?;
        let value = match record.value {
            Some(bytes) => Some(
                self.value_serde
                    .deserialize(changelog, &[], Some(bytes))
                    .map_err(|e| deserialization(changelog, RecordPart::Value, &e))?,
            ),
            None => None,
        };
        store.restore(key, value);
        Ok(())
    }

    fn snapshot(&self, store: &dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        use crate::streams::state::ReadOnlyKeyValueStore;
        let entries = if let Some(store) = store.downcast_ref::<DiskStore<K, V>>() {
            store.all()?
        } else {
            store
                .downcast_ref::<PlainStore<K, V>>()
                .ok_or_else(|| Error::StateStore {
                    store: changelog.to_string(),
                    reason: "the store of this changelog is not the logger's type".to_string(),
                })?
                .all()?
        };
        entries
            .into_iter()
            .map(|(k, v)| self.encode(changelog, k, Some(v)))
            .collect()
    }
}

/// Serialize `value` for `changelog` with `serde`, as a non-null key or value part.
fn bytes_of<T: 'static>(
    serde: &SharedSerde<T>,
    changelog: &str,
    part: RecordPart,
    value: T,
) -> Result<Bytes> {
    let mut headers = Vec::new();
    serde
        .serialize(changelog, &mut headers, value)
        .map_err(|e| Error::Serialization {
            topic: changelog.to_string(),
            part,
            reason: e.to_string(),
        })?
        .ok_or_else(|| Error::Serialization {
            topic: changelog.to_string(),
            part,
            reason: "serialized to null, which a join store's changelog cannot hold".to_string(),
        })
}

/// Deserialize a key or value part of a `changelog` record with `serde`.
fn value_of<T: 'static>(
    serde: &SharedSerde<T>,
    changelog: &str,
    part: RecordPart,
    bytes: Bytes,
) -> Result<T> {
    serde
        .deserialize(changelog, &[], Some(bytes))
        .map_err(|e| deserialization(changelog, part, &e))
}

/// The logger of one side's store of a stream-stream join (`JoinWindowStore<K, V>`, Kafka's
/// `KSTREAM-JOINTHIS-…-store` and `…JOINOTHER…`/`…OUTERTHIS…`/`…OUTEROTHER…` stores). A record's key is
/// Kafka's window-store key with duplicates retained: the key's bytes, the record's timestamp
/// (8 bytes big-endian) and a sequence number (4 bytes big-endian) that differs for every
/// record written, so that compaction keeps duplicates; its value the value's bytes; its
/// timestamp the record's. Records are never deleted: restoration re-applies the store's
/// expiry, as Kafka's window-store restoration skips expired segments.
pub(crate) struct JoinWindowLogger<K, V> {
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    /// The next sequence number (Kafka's `seqnum`, wrapping).
    seqnum: std::sync::atomic::AtomicU32,
}

impl<K, V> JoinWindowLogger<K, V> {
    pub(crate) fn new(key_serde: SharedSerde<K>, value_serde: SharedSerde<V>) -> Self {
        JoinWindowLogger {
            key_serde,
            value_serde,
            seqnum: std::sync::atomic::AtomicU32::new(0),
        }
    }
}

type JoinStoreOf<K, V> = crate::streams::join_store::JoinWindowStore<K, V>;

impl<K, V> JoinWindowLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn encode(
        &self,
        changelog: &str,
        (key, timestamp, value): (K, i64, V),
    ) -> Result<ChangeRecord> {
        let key = bytes_of(&self.key_serde, changelog, RecordPart::Key, key)?;
        let value = bytes_of(&self.value_serde, changelog, RecordPart::Value, value)?;
        let seq = self
            .seqnum
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut bytes = Vec::with_capacity(key.len() + WINDOW_SUFFIX);
        bytes.extend_from_slice(&key);
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&seq.to_be_bytes());
        Ok(ChangeRecord {
            key: Bytes::from(bytes),
            value: Some(value),
            timestamp: timestamp.max(0),
        })
    }
}

impl<K, V> StoreLogger for JoinWindowLogger<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn enable(&self, store: &mut dyn Any) -> Result<()> {
        downcast::<JoinStoreOf<K, V>>(store, "?")?.track_changes();
        Ok(())
    }

    fn drain(&self, store: &mut dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        downcast::<JoinStoreOf<K, V>>(store, changelog)?
            .take_changes()
            .into_iter()
            .map(|change| self.encode(changelog, change))
            .collect()
    }

    fn restore(&self, store: &mut dyn Any, changelog: &str, record: ChangeRecord) -> Result<()> {
        let store = downcast::<JoinStoreOf<K, V>>(store, changelog)?;
        let Some(split) = record.key.len().checked_sub(WINDOW_SUFFIX) else {
            return Err(deserialization(
                changelog,
                RecordPart::Key,
                &format!(
                    "a join-store key of {} bytes is shorter than its 12-byte suffix",
                    record.key.len()
                ),
            ));
        };
        let Some(value) = record.value else {
            return Ok(());
        };
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&record.key[split..split + 8]);
        let key = value_of(
            &self.key_serde,
            changelog,
            RecordPart::Key,
            record.key.slice(..split),
        )?;
        let value = value_of(&self.value_serde, changelog, RecordPart::Value, value)?;
        store.restore(key, value, i64::from_be_bytes(ts));
        Ok(())
    }

    fn snapshot(&self, store: &dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        let store = store
            .downcast_ref::<JoinStoreOf<K, V>>()
            .ok_or_else(|| Error::StateStore {
                store: changelog.to_string(),
                reason: "the store of this changelog is not the logger's type".to_string(),
            })?;
        store
            .entries()
            .into_iter()
            .map(|e| self.encode(changelog, e))
            .collect()
    }
}

/// The logger of a left or outer stream-stream join's shared buffer (Kafka's
/// `KSTREAM-OUTERSHARED-…-store`). A record's key is Kafka's `TimestampedKeyAndJoinSide`
/// bytes: the timestamp (8 bytes big-endian), a byte 1 for the left side or 0 for the right,
/// then the key's bytes; its value the entry's records, each a side byte (1 left, 0 right), a
/// 4-byte big-endian length and the value's bytes (Kafka keeps a list of
/// `LeftOrRightValue`s per key); a null value: the entry was joined or emitted; its timestamp
/// the entry's.
pub(crate) struct OuterJoinLogger<K, VL, VR> {
    key_serde: SharedSerde<K>,
    left_serde: SharedSerde<VL>,
    right_serde: SharedSerde<VR>,
}

impl<K, VL, VR> OuterJoinLogger<K, VL, VR> {
    pub(crate) fn new(
        key_serde: SharedSerde<K>,
        left_serde: SharedSerde<VL>,
        right_serde: SharedSerde<VR>,
    ) -> Self {
        OuterJoinLogger {
            key_serde,
            left_serde,
            right_serde,
        }
    }
}

type OuterOf<K, VL, VR> = crate::streams::dsl::join_processors::OuterShared<K, VL, VR>;

impl<K, VL, VR> OuterJoinLogger<K, VL, VR>
where
    K: Ord + Clone + 'static,
    VL: Clone + 'static,
    VR: Clone + 'static,
{
    fn encode(
        &self,
        changelog: &str,
        ((timestamp, side, key), values): crate::streams::join_store::OuterEntry<K, VL, VR>,
    ) -> Result<ChangeRecord> {
        use crate::streams::join_store::{JoinSide, LeftOrRight};
        let key = bytes_of(&self.key_serde, changelog, RecordPart::Key, key)?;
        let mut bytes = Vec::with_capacity(key.len() + 9);
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.push(u8::from(side == JoinSide::Left));
        bytes.extend_from_slice(&key);
        let value = match values {
            None => None,
            Some(values) => {
                let mut out = Vec::new();
                for v in values {
                    let (flag, b) = match v {
                        LeftOrRight::Left(v) => (
                            1u8,
                            bytes_of(&self.left_serde, changelog, RecordPart::Value, v)?,
                        ),
                        LeftOrRight::Right(v) => (
                            0u8,
                            bytes_of(&self.right_serde, changelog, RecordPart::Value, v)?,
                        ),
                    };
                    let len = u32::try_from(b.len()).map_err(|_| Error::Serialization {
                        topic: changelog.to_string(),
                        part: RecordPart::Value,
                        reason: format!("a join value of {} bytes exceeds 4 GiB", b.len()),
                    })?;
                    out.push(flag);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&b);
                }
                Some(Bytes::from(out))
            }
        };
        Ok(ChangeRecord {
            key: Bytes::from(bytes),
            value,
            timestamp: timestamp.max(0),
        })
    }

    #[allow(clippy::type_complexity)]
    fn decode(
        &self,
        changelog: &str,
        record: ChangeRecord,
    ) -> Result<crate::streams::join_store::OuterEntry<K, VL, VR>> {
        use crate::streams::join_store::{JoinSide, LeftOrRight};
        let bad = |what: String| deserialization(changelog, RecordPart::Key, &what);
        if record.key.len() < 9 {
            return Err(bad(format!(
                "an outer-join key of {} bytes is shorter than its 9-byte prefix",
                record.key.len()
            )));
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&record.key[..8]);
        let side = match record.key[8] {
            0 => JoinSide::Right,
            1 => JoinSide::Left,
            other => {
                return Err(bad(format!(
                    "an outer-join side byte {other} is not 0 or 1"
                )))
            }
        };
        let key = value_of(
            &self.key_serde,
            changelog,
            RecordPart::Key,
            record.key.slice(9..),
        )?;
        let values = match record.value {
            None => None,
            Some(bytes) => {
                let bad = |what: String| deserialization(changelog, RecordPart::Value, &what);
                let mut values = Vec::new();
                let mut at = 0usize;
                while at < bytes.len() {
                    let Some(header) = bytes.get(at..at + 5) else {
                        return Err(bad(format!("an outer-join value cut at byte {at}")));
                    };
                    let mut len = [0u8; 4];
                    len.copy_from_slice(&header[1..5]);
                    let len = u32::from_be_bytes(len) as usize;
                    let start = at + 5;
                    let Some(end) = start.checked_add(len).filter(|e| *e <= bytes.len()) else {
                        return Err(bad(format!(
                            "an outer-join value of {len} bytes at byte {start} runs past the \
                             record's {} bytes",
                            bytes.len()
                        )));
                    };
                    let part = bytes.slice(start..end);
                    values.push(match header[0] {
                        1 => LeftOrRight::Left(value_of(
                            &self.left_serde,
                            changelog,
                            RecordPart::Value,
                            part,
                        )?),
                        0 => LeftOrRight::Right(value_of(
                            &self.right_serde,
                            changelog,
                            RecordPart::Value,
                            part,
                        )?),
                        other => {
                            return Err(bad(format!(
                                "an outer-join side byte {other} is not 0 or 1"
                            )))
                        }
                    });
                    at = end;
                }
                Some(values)
            }
        };
        Ok(((i64::from_be_bytes(ts), side, key), values))
    }
}

impl<K, VL, VR> StoreLogger for OuterJoinLogger<K, VL, VR>
where
    K: Ord + Clone + 'static,
    VL: Clone + 'static,
    VR: Clone + 'static,
{
    fn enable(&self, store: &mut dyn Any) -> Result<()> {
        downcast::<OuterOf<K, VL, VR>>(store, "?")?
            .store
            .track_changes();
        Ok(())
    }

    fn drain(&self, store: &mut dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        downcast::<OuterOf<K, VL, VR>>(store, changelog)?
            .store
            .take_changes()
            .into_iter()
            .map(|e| self.encode(changelog, e))
            .collect()
    }

    fn restore(&self, store: &mut dyn Any, changelog: &str, record: ChangeRecord) -> Result<()> {
        let store = downcast::<OuterOf<K, VL, VR>>(store, changelog)?;
        let (key, values) = self.decode(changelog, record)?;
        store.restore(key, values);
        Ok(())
    }

    fn snapshot(&self, store: &dyn Any, changelog: &str) -> Result<Vec<ChangeRecord>> {
        let store =
            store
                .downcast_ref::<OuterOf<K, VL, VR>>()
                .ok_or_else(|| Error::StateStore {
                    store: changelog.to_string(),
                    reason: "the store of this changelog is not the logger's type".to_string(),
                })?;
        store
            .store
            .entries()
            .into_iter()
            .map(|e| self.encode(changelog, e))
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

    #[test]
    fn plain_key_value_changes_restore_an_equal_store() {
        let logger = KeyValueLogger::<String, i64>::new(Arc::new(Builtin), Arc::new(Builtin));
        let mut store: PlainStore<String, i64> = InMemoryKeyValueStore::new("seen");
        logger.enable(&mut store).unwrap();
        store.put("a".into(), 1).unwrap();
        store.put("b".into(), 2).unwrap();
        store.put("a".into(), 3).unwrap();
        store.put("c".into(), 4).unwrap();
        store.delete(&"c".to_string()).unwrap();
        let changes = logger.drain(&mut store, "app-seen-changelog").unwrap();
        assert_eq!(
            changes
                .iter()
                .map(|c| (c.key.clone(), c.value.clone()))
                .collect::<Vec<_>>(),
            vec![
                (
                    Bytes::from_static(b"a"),
                    Some(Bytes::from(3i64.to_be_bytes().to_vec()))
                ),
                (
                    Bytes::from_static(b"b"),
                    Some(Bytes::from(2i64.to_be_bytes().to_vec()))
                ),
                (Bytes::from_static(b"c"), None),
            ]
        );
        let mut copy: PlainStore<String, i64> = InMemoryKeyValueStore::new("seen");
        copy.put("c".into(), 9).unwrap();
        logger.enable(&mut copy).unwrap();
        for c in changes {
            logger.restore(&mut copy, "app-seen-changelog", c).unwrap();
        }
        assert_eq!(copy.all().unwrap(), store.all().unwrap());
        assert_eq!(
            logger.snapshot(&store, "app-seen-changelog").unwrap().len(),
            2
        );
        assert!(
            logger.drain(&mut copy, "t").unwrap().is_empty(),
            "restoring records nothing"
        );
        assert!(logger
            .restore(
                &mut InMemoryKeyValueStore::<u8, u8>::new("x"),
                "t",
                ChangeRecord {
                    key: Bytes::from_static(b"a"),
                    value: None,
                    timestamp: 0,
                },
            )
            .is_err());
    }

    #[test]
    fn join_store_changes_keep_duplicates_apart_and_restore_an_equal_store() {
        let logger = JoinWindowLogger::<String, i64>::new(Arc::new(Builtin), Arc::new(Builtin));
        let mut store: JoinStoreOf<String, i64> = JoinStoreOf::new(100);
        logger.enable(&mut store).unwrap();
        store.put("a".into(), 1, 10).unwrap();
        store.put("a".into(), 2, 10).unwrap();
        store.put("b".into(), 3, 20).unwrap();
        let changes = logger.drain(&mut store, "app-j-changelog").unwrap();
        assert_eq!(changes.len(), 3);
        let mut key = b"a".to_vec();
        key.extend_from_slice(&10i64.to_be_bytes());
        key.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(changes[0].key, Bytes::from(key));
        assert_ne!(
            changes[0].key, changes[1].key,
            "a duplicate has its own sequence number"
        );
        assert_eq!(changes[2].timestamp, 20);
        let mut copy: JoinStoreOf<String, i64> = JoinStoreOf::new(100);
        logger.enable(&mut copy).unwrap();
        for c in changes {
            logger.restore(&mut copy, "app-j-changelog", c).unwrap();
        }
        assert_eq!(copy.entries(), store.entries());
        assert!(
            logger.drain(&mut copy, "t").unwrap().is_empty(),
            "restoring records nothing"
        );
        assert_eq!(logger.snapshot(&store, "app-j-changelog").unwrap().len(), 3);
    }

    #[test]
    fn outer_join_changes_restore_an_equal_buffer_and_bad_bytes_are_refused() {
        use crate::streams::join_store::{JoinSide, LeftOrRight};
        let logger = OuterJoinLogger::<String, i64, String>::new(
            Arc::new(Builtin),
            Arc::new(Builtin),
            Arc::new(Builtin),
        );
        let mut store: OuterOf<String, i64, String> = OuterOf::new();
        logger.enable(&mut store).unwrap();
        store
            .store
            .put("a".into(), JoinSide::Left, 5, LeftOrRight::Left(1));
        store
            .store
            .put("a".into(), JoinSide::Left, 5, LeftOrRight::Left(2));
        store.store.put(
            "b".into(),
            JoinSide::Right,
            6,
            LeftOrRight::Right("x".into()),
        );
        store
            .store
            .put("c".into(), JoinSide::Left, 7, LeftOrRight::Left(3));
        store.store.remove("c".into(), JoinSide::Left, 7);
        let changes = logger.drain(&mut store, "app-o-changelog").unwrap();
        assert_eq!(changes.len(), 3);
        let mut key = 5i64.to_be_bytes().to_vec();
        key.push(1);
        key.extend_from_slice(b"a");
        assert_eq!(changes[0].key, Bytes::from(key));
        assert_eq!(changes[2].value, None, "c was removed");
        let mut copy: OuterOf<String, i64, String> = OuterOf::new();
        copy.store
            .put("c".into(), JoinSide::Left, 7, LeftOrRight::Left(9));
        for c in changes {
            logger.restore(&mut copy, "app-o-changelog", c).unwrap();
        }
        assert_eq!(copy.store.entries(), store.store.entries());
        let (taken, _) = copy.store.take_closed(|_, _| false);
        assert_eq!(taken.len(), 2);
        let mut bad = 5i64.to_be_bytes().to_vec();
        bad.push(1);
        let cut = ChangeRecord {
            key: Bytes::from(bad.clone()),
            value: Some(Bytes::from_static(&[1, 0, 0, 0, 9, 0])),
            timestamp: 0,
        };
        assert!(logger.restore(&mut copy, "t", cut).is_err());
        bad[8] = 7;
        let side = ChangeRecord {
            key: Bytes::from(bad),
            value: None,
            timestamp: 0,
        };
        assert!(logger.restore(&mut copy, "t", side).is_err());
    }

    #[test]
    fn window_changes_use_kafkas_window_keys_and_restore_an_equal_store() {
        use crate::streams::state::{ReadOnlyWindowStore, WindowStore as _};
        let logger =
            TimestampedWindowLogger::<String, i64>::new(Arc::new(Builtin), Arc::new(Builtin));
        let mut store: WindowStore<String, i64> = InMemoryWindowStore::new("w", 100, 10);
        logger.enable(&mut store).unwrap();
        store
            .put("a".into(), ValueAndTimestamp::make(1, 5), 0)
            .unwrap();
        store
            .put("a".into(), ValueAndTimestamp::make(2, 7), 0)
            .unwrap();
        store
            .put("b".into(), ValueAndTimestamp::make(3, 15), 10)
            .unwrap();
        let changes = logger.drain(&mut store, "app-w-changelog").unwrap();
        assert_eq!(changes.len(), 2);
        let mut key = b"a".to_vec();
        key.extend_from_slice(&0i64.to_be_bytes());
        key.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(changes[0].key, Bytes::from(key));
        assert_eq!(changes[0].timestamp, 7);
        let mut copy: WindowStore<String, i64> = InMemoryWindowStore::new("w", 100, 10);
        for c in changes {
            logger.restore(&mut copy, "app-w-changelog", c).unwrap();
        }
        assert_eq!(
            ReadOnlyWindowStore::all(&copy).unwrap(),
            ReadOnlyWindowStore::all(&store).unwrap()
        );
        assert_eq!(logger.snapshot(&store, "app-w-changelog").unwrap().len(), 2);
        let short = ChangeRecord {
            key: Bytes::from_static(b"abc"),
            value: Some(Bytes::from_static(&[0; 8])),
            timestamp: 0,
        };
        assert!(logger.restore(&mut copy, "t", short).is_err());
    }

    #[test]
    fn session_changes_use_kafkas_session_keys_and_restore_an_equal_store() {
        use crate::streams::state::{ReadOnlySessionStore, SessionStore as _};
        use crate::streams::window::{Window, Windowed};
        let logger = SessionLogger::<String, i64>::new(Arc::new(Builtin), Arc::new(Builtin));
        let mut store: SessionStoreOf<String, i64> = InMemorySessionStore::new("s", 1_000);
        logger.enable(&mut store).unwrap();
        let session = |start, end| Windowed {
            key: "k".to_string(),
            window: Window { start, end },
        };
        store.put(session(0, 10), 1).unwrap();
        store.put(session(20, 30), 2).unwrap();
        store.remove(&session(0, 10)).unwrap();
        store.put(session(0, 30), 3).unwrap();
        let changes = logger.drain(&mut store, "app-s-changelog").unwrap();
        assert_eq!(changes.len(), 3);
        let mut key = b"k".to_vec();
        key.extend_from_slice(&10i64.to_be_bytes());
        key.extend_from_slice(&0i64.to_be_bytes());
        assert_eq!(changes[0].key, Bytes::from(key));
        assert_eq!(changes[0].value, None, "removed");
        let mut copy: SessionStoreOf<String, i64> = InMemorySessionStore::new("s", 1_000);
        for c in changes {
            logger.restore(&mut copy, "app-s-changelog", c).unwrap();
        }
        assert_eq!(
            copy.fetch(&"k".to_string()).unwrap(),
            store.fetch(&"k".to_string()).unwrap()
        );
        assert_eq!(logger.snapshot(&store, "app-s-changelog").unwrap().len(), 2);
    }
}
