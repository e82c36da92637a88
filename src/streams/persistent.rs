//! The persistent key-value store (the role of Kafka's RocksDB store): a typed store over
//! a [`KvLog`] in the store's directory under its task's, through the serdes of its builder.
//!
//! Owns: [`PersistentKeyValueStore`] and the [`DiskStore`] interface the runtime and the
//! test driver open, flush and wipe persistent stores through (the topology keeps stores as
//! `dyn Any`).
//!
//! Invariants: the bytes on disk are the serdes' bytes of keys and values (the changelog's
//! bytes, so restoration writes them as they come); keys are ordered by `K`'s `Ord`, as the
//! in-memory store's are; reads hand out deserialized copies. A store is usable only once
//! opened in a directory (before its task's processors are initialized); what it holds is
//! durable after [`DiskStore::flush`], which a clean close does before its checkpoint.

use std::any::Any;
use std::path::{Path, PathBuf};

use super::kv_log::{KvLog, Opened};
use super::serdes::{Serde, SharedSerde};
use super::state::{KeyValueStore, ReadOnlyKeyValueStore};
use crate::error::{Error, Result};
use crate::types::Bytes;
use crate::RecordPart;

/// A store that keeps its data in files under a directory.
pub(crate) trait DiskStore {
    /// Open the store's files in `dir` (created if missing).
    fn open(&mut self, dir: &Path) -> Result<Opened>;
    /// Make everything written so far durable.
    fn flush(&mut self) -> Result<()>;
}

/// How the runtime reaches a persistent store kept as `dyn Any`.
pub(crate) type AsDiskStore = fn(&mut dyn Any) -> Option<&mut dyn DiskStore>;

/// [`AsDiskStore`] for `PersistentKeyValueStore<K, V>`.
pub(crate) fn as_disk_store<K: Ord + Clone + 'static, V: 'static>(
    store: &mut dyn Any,
) -> Option<&mut dyn DiskStore> {
    store
        .downcast_mut::<PersistentKeyValueStore<K, V>>()
        .map(|s| s as &mut dyn DiskStore)
}

/// A key-value store whose entries live in a file (Kafka's `Stores.persistentKeyValueStore`):
/// memory holds its keys and where their values are, a `get` reads the value from the file.
///
/// Declared with [`Stores::persistent_key_value_store`](super::Stores::persistent_key_value_store),
/// the runtime opens it in `state.dir/<application.id>/<task>/<store>/`; on its own it is
/// opened with [`PersistentKeyValueStore::open`].
///
/// ```
/// use embroker::streams::{KeyValueStore, PersistentKeyValueStore, ReadOnlyKeyValueStore};
/// use embroker::Builtin;
/// let dir = tempfile::tempdir()?;
/// let mut store = PersistentKeyValueStore::<String, i64>::open("counts", dir.path(), Builtin, Builtin)?;
/// store.put("a".to_string(), 1)?;
/// store.put("b".to_string(), 2)?;
/// store.flush()?;
/// drop(store);
/// let store = PersistentKeyValueStore::<String, i64>::open("counts", dir.path(), Builtin, Builtin)?;
/// assert_eq!(store.get(&"b".to_string())?, Some(2));
/// assert_eq!(store.all()?.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PersistentKeyValueStore<K, V> {
    name: String,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    log: Option<KvLog<K>>,
    dir: Option<PathBuf>,
    /// The keys written since the runtime last took them, with repeats, when the store has a
    /// changelog (as the in-memory store's).
    changed: Option<Vec<K>>,
}

impl<K, V> std::fmt::Debug for PersistentKeyValueStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentKeyValueStore")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish()
    }
}

impl<K: Ord + Clone + 'static, V: 'static> PersistentKeyValueStore<K, V> {
    /// A store called `name`, not yet open (the runtime opens it in its task's directory).
    pub(crate) fn unopened(
        name: impl Into<String>,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> Self {
        PersistentKeyValueStore {
            name: name.into(),
            key_serde,
            value_serde,
            log: None,
            dir: None,
            changed: None,
        }
    }

    /// The store called `name` in `dir` (created if missing, reopened if there), its keys and
    /// values written with `key_serde` and `value_serde`.
    pub fn open(
        name: impl Into<String>,
        dir: &Path,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Result<Self> {
        let mut store = PersistentKeyValueStore::unopened(
            name,
            std::sync::Arc::new(key_serde),
            std::sync::Arc::new(value_serde),
        );
        DiskStore::open(&mut store, dir)?;
        Ok(store)
    }

    /// Write what the store holds to disk and fsync it.
    pub fn flush(&mut self) -> Result<()> {
        self.log_mut()?.flush()
    }

    fn not_open(&self) -> Error {
        Error::StateStore {
            store: self.name.clone(),
            reason: "the persistent store is not open (no state directory)".to_string(),
        }
    }

    fn log(&self) -> Result<&KvLog<K>> {
        self.log.as_ref().ok_or_else(|| self.not_open())
    }

    fn log_mut(&mut self) -> Result<&mut KvLog<K>> {
        match self.log.as_mut() {
            Some(log) => Ok(log),
            None => Err(Error::StateStore {
                store: self.name.clone(),
                reason: "the persistent store is not open (no state directory)".to_string(),
            }),
        }
    }

    fn key_bytes(&self, key: &K) -> Result<Bytes> {
        let mut headers = Vec::new();
        self.key_serde
            .serialize(&self.name, &mut headers, key.clone())
            .map_err(|e| Error::Serialization {
                topic: self.name.clone(),
                part: RecordPart::Key,
                reason: e.to_string(),
            })?
            .ok_or_else(|| Error::Serialization {
                topic: self.name.clone(),
                part: RecordPart::Key,
                reason: "a store key serialized to null, which a store cannot hold".to_string(),
            })
    }

    fn value_bytes(&self, value: V) -> Result<Bytes> {
        let mut headers = Vec::new();
        self.value_serde
            .serialize(&self.name, &mut headers, value)
            .map_err(|e| Error::Serialization {
                topic: self.name.clone(),
                part: RecordPart::Value,
                reason: e.to_string(),
            })?
            .ok_or_else(|| Error::Serialization {
                topic: self.name.clone(),
                part: RecordPart::Value,
                reason: "a store value serialized to null; delete the key instead".to_string(),
            })
    }

    fn value_of(&self, bytes: Vec<u8>) -> Result<V> {
        self.value_serde
            .deserialize(&self.name, &[], Some(Bytes::from(bytes)))
            .map_err(|e| Error::Deserialization {
                topic: self.name.clone(),
                partition: -1,
                offset: -1,
                part: RecordPart::Value,
                reason: e.to_string(),
            })
    }

    fn mark(&mut self, key: &K) {
        if let Some(changed) = &mut self.changed {
            changed.push(key.clone());
        }
    }

    /// Record from now on which keys are written, for the runtime's changelog.
    pub(crate) fn track_changes(&mut self) {
        self.changed.get_or_insert_with(Vec::new);
    }

    /// The keys changed since the last call, each with its value now (`None`: deleted), in
    /// key order.
    pub(crate) fn take_changes(&mut self) -> Result<Vec<(K, Option<V>)>> {
        let Some(changed) = &mut self.changed else {
            return Ok(Vec::new());
        };
        let mut keys = std::mem::take(changed);
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .map(|k| {
                let v = self.get(&k)?;
                Ok((k, v))
            })
            .collect()
    }

    /// Apply a changelog record's bytes (`None`: a tombstone) without recording a change:
    /// the changelog's bytes are the store's, so only the key is deserialized.
    pub(crate) fn restore_bytes(&mut self, key: Bytes, value: Option<Bytes>) -> Result<()> {
        let k = self
            .key_serde
            .deserialize(&self.name, &[], Some(key.clone()))
            .map_err(|e| Error::Deserialization {
                topic: self.name.clone(),
                partition: -1,
                offset: -1,
                part: RecordPart::Key,
                reason: e.to_string(),
            })?;
        let log = self.log_mut()?;
        if value.is_none() && !log.contains(&k) {
            return Ok(());
        }
        log.write(k, &key, value.as_deref())
    }
}

impl<K: Ord + Clone + 'static, V: 'static> DiskStore for PersistentKeyValueStore<K, V> {
    fn open(&mut self, dir: &Path) -> Result<Opened> {
        let serde = std::sync::Arc::clone(&self.key_serde);
        let name = self.name.clone();
        let (log, opened) = KvLog::open(dir, |bytes| {
            serde
                .deserialize(&name, &[], Some(Bytes::copy_from_slice(bytes)))
                .map_err(|e| Error::Deserialization {
                    topic: name.clone(),
                    partition: -1,
                    offset: -1,
                    part: RecordPart::Key,
                    reason: format!("{}: {e}", dir.display()),
                })
        })?;
        self.log = Some(log);
        self.dir = Some(dir.to_path_buf());
        Ok(opened)
    }

    fn flush(&mut self) -> Result<()> {
        self.log_mut()?.flush()
    }
}

impl<K: Ord + Clone + 'static, V: 'static> ReadOnlyKeyValueStore<K, V>
    for PersistentKeyValueStore<K, V>
{
    fn get(&self, key: &K) -> Result<Option<V>> {
        match self.log()?.get(key)? {
            Some(bytes) => self.value_of(bytes).map(Some),
            None => Ok(None),
        }
    }

    fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        self.log()?
            .range(Some(from), Some(to))?
            .into_iter()
            .map(|(k, v)| Ok((k, self.value_of(v)?)))
            .collect()
    }

    fn all(&self) -> Result<Vec<(K, V)>> {
        self.log()?
            .range(None, None)?
            .into_iter()
            .map(|(k, v)| Ok((k, self.value_of(v)?)))
            .collect()
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        Ok(self.log.as_ref().map_or(0, |l| l.len() as u64))
    }
}

impl<K: Ord + Clone + 'static, V: 'static> KeyValueStore<K, V> for PersistentKeyValueStore<K, V> {
    fn name(&self) -> &str {
        &self.name
    }

    fn put(&mut self, key: K, value: V) -> Result<()> {
        let key_bytes = self.key_bytes(&key)?;
        let value_bytes = self.value_bytes(value)?;
        self.mark(&key);
        self.log_mut()?.write(key, &key_bytes, Some(&value_bytes))
    }

    fn put_if_absent(&mut self, key: K, value: V) -> Result<Option<V>> {
        if let Some(old) = self.get(&key)? {
            return Ok(Some(old));
        }
        self.put(key, value)?;
        Ok(None)
    }

    fn delete(&mut self, key: &K) -> Result<Option<V>> {
        let Some(old) = self.get(key)? else {
            return Ok(None);
        };
        let key_bytes = self.key_bytes(key)?;
        self.mark(key);
        self.log_mut()?.write(key.clone(), &key_bytes, None)?;
        Ok(Some(old))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::Builtin;

    fn open(dir: &Path) -> PersistentKeyValueStore<i32, String> {
        PersistentKeyValueStore::open("s", dir, Builtin, Builtin).unwrap()
    }

    #[test]
    fn an_unopened_store_says_so_and_changes_are_tracked() {
        let mut s = PersistentKeyValueStore::<i32, String>::unopened(
            "s",
            std::sync::Arc::new(Builtin),
            std::sync::Arc::new(Builtin),
        );
        let e = s.put(1, "a".into()).unwrap_err();
        assert!(e.to_string().contains("not open"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        DiskStore::open(&mut s, dir.path()).unwrap();
        s.track_changes();
        s.put(2, "b".into()).unwrap();
        s.put(1, "a".into()).unwrap();
        s.put(2, "c".into()).unwrap();
        s.delete(&1).unwrap();
        s.delete(&7).unwrap();
        assert_eq!(
            s.take_changes().unwrap(),
            vec![(1, None), (2, Some("c".to_string()))]
        );
        s.restore_bytes(
            Bytes::from_static(&[0, 0, 0, 5]),
            Some(Bytes::from_static(b"r")),
        )
        .unwrap();
        assert!(
            s.take_changes().unwrap().is_empty(),
            "restoration is not a change"
        );
        assert_eq!(s.get(&5).unwrap(), Some("r".to_string()));
        assert_eq!(KeyValueStore::name(&s), "s");
    }

    proptest! {
        // Signed keys: the store orders by `K`, not by the serialized bytes (where -1 would
        // sort after 1), as the in-memory store does.
        #[test]
        fn the_store_is_a_map_in_key_order_across_reopens(
            ops in proptest::collection::vec((0u8..5, -8i32..8, -8i32..8, "[a-z]{0,6}"), 0..150)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut s = open(dir.path());
            let mut model = BTreeMap::new();
            for (op, k, k2, v) in ops {
                match op {
                    0 => { s.put(k, v.clone()).unwrap(); model.insert(k, v); }
                    1 => { prop_assert_eq!(s.delete(&k).unwrap(), model.remove(&k)); }
                    2 => {
                        prop_assert_eq!(s.put_if_absent(k, v.clone()).unwrap(), model.get(&k).cloned());
                        model.entry(k).or_insert(v);
                    }
                    3 => {
                        let want: Vec<(i32, String)> = if k <= k2 {
                            model.range(k..=k2).map(|(a, b)| (*a, b.clone())).collect()
                        } else {
                            Vec::new()
                        };
                        prop_assert_eq!(s.range(&k, &k2).unwrap(), want);
                    }
                    _ => {
                        s.flush().unwrap();
                        drop(s);
                        s = open(dir.path());
                    }
                }
                prop_assert_eq!(s.get(&k).unwrap(), model.get(&k).cloned());
            }
            let all: Vec<(i32, String)> = model.into_iter().collect();
            prop_assert_eq!(s.approximate_num_entries().unwrap(), all.len() as u64);
            prop_assert_eq!(s.all().unwrap(), all);
        }
    }
}
