//! A global table's store: one instance per application instance, written by whoever reads
//! the global topic (the `KafkaStreams` global thread, or the test driver's task) and read by
//! every task's joins and by interactive queries (Kafka's global state stores).
//!
//! Owns: the shared store type ([`SharedStore`], holding a [`GlobalKv`]), the functions that
//! read and write it from type-erased task slots, and [`GlobalStoreDef`], what the runtime
//! needs to know of each global store (its topic, and how to save and load its content as
//! store-file entries).
//!
//! Invariants: a task's slot for a global store holds a `SharedStore` (an `Arc`), so the
//! runtime makes every task share one instance by giving the topology's store supplier a
//! clone of it; reads take the read lock, the one writer the write lock, so a reader sees a
//! row before or after an update, never half of one; a poisoned lock is taken over (the
//! store is a map whose every operation leaves it whole).

use std::any::Any;
use std::sync::{Arc, RwLock};

use super::runtime::changelog::{ChangeRecord, StoreLogger, TimestampedKeyValueLogger};
use super::serdes::SharedSerde;
use super::state::WithoutTimestamps;
use super::state::{InMemoryKeyValueStore, ReadOnlyKeyValueStore, ValueAndTimestamp};
use crate::error::{Error, Result};

/// A global store as a task holds it: shared by the instance's threads.
pub(crate) type SharedStore = Arc<dyn Any + Send + Sync>;

/// What a [`SharedStore`] of a global table of `K` to `V` holds.
pub(crate) type GlobalKv<K, V> = RwLock<InMemoryKeyValueStore<K, ValueAndTimestamp<V>>>;

/// A fresh, empty global store `name`, as a task's store slot holds it.
pub(crate) fn new_store<K, V>(name: &str) -> Box<dyn Any>
where
    K: Ord + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    let store: SharedStore = Arc::new(GlobalKv::<K, V>::new(InMemoryKeyValueStore::new(name)));
    Box::new(store)
}

/// The store in a task's slot `slot`, if it is a global store of `K` to `V`.
pub(crate) fn typed<K: 'static, V: 'static>(slot: &dyn Any) -> Option<&GlobalKv<K, V>> {
    slot.downcast_ref::<SharedStore>()?
        .downcast_ref::<GlobalKv<K, V>>()
}

fn wrong_type<K, V>(name: &str) -> Error {
    Error::StateStore {
        store: name.to_string(),
        reason: format!(
            "it is not a global store of {} to {}",
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        ),
    }
}

/// Read the global store `name` of `K` to `V` in `slot` under the read lock, values
/// with their timestamps.
pub(crate) fn read<K: 'static, V: 'static, R>(
    slot: &dyn Any,
    name: &str,
    f: impl FnOnce(&InMemoryKeyValueStore<K, ValueAndTimestamp<V>>) -> Result<R>,
) -> Result<R> {
    let store = typed::<K, V>(slot).ok_or_else(|| wrong_type::<K, V>(name))?;
    f(&store.read().unwrap_or_else(|e| e.into_inner()))
}

/// Read the global store of `K` to `V` in `slot` as users see it (without timestamps);
/// `None` when `slot` holds no such store.
pub(crate) fn read_values<K, V, R>(
    slot: &dyn Any,
    f: impl FnOnce(&dyn ReadOnlyKeyValueStore<K, V>) -> Result<R>,
) -> Option<Result<R>>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    let store = typed::<K, V>(slot)?;
    let guard = store.read().unwrap_or_else(|e| e.into_inner());
    Some(f(&WithoutTimestamps(&guard)))
}

/// Change the global store `name` of `K` to `V` in `slot` under the write lock.
pub(crate) fn write<K: 'static, V: 'static, R>(
    slot: &dyn Any,
    name: &str,
    f: impl FnOnce(&mut InMemoryKeyValueStore<K, ValueAndTimestamp<V>>) -> Result<R>,
) -> Result<R> {
    let store = typed::<K, V>(slot).ok_or_else(|| wrong_type::<K, V>(name))?;
    f(&mut store.write().unwrap_or_else(|e| e.into_inner()))
}

/// Saves and loads a global store's content as store-file entries (the records of its
/// topic: key and value bytes, timestamp), through the lock.
pub(crate) trait GlobalCodec: Send + Sync {
    /// Every entry of the store in `store` (a [`SharedStore`]).
    fn snapshot(&self, store: &SharedStore, name: &str) -> Result<Vec<ChangeRecord>>;
    /// Apply one entry to the store in `store` (a [`SharedStore`]).
    fn restore(&self, store: &SharedStore, name: &str, record: ChangeRecord) -> Result<()>;
}

/// The codec of a global table of `K` to `V`: the topic's serdes, as the DSL's logged
/// key-value stores use them (a store file of a global store has the format of any other).
struct Codec<K, V> {
    logger: TimestampedKeyValueLogger<K, V>,
}

impl<K, V> GlobalCodec for Codec<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
    TimestampedKeyValueLogger<K, V>: StoreLogger,
{
    fn snapshot(&self, store: &SharedStore, name: &str) -> Result<Vec<ChangeRecord>> {
        let store = store
            .downcast_ref::<GlobalKv<K, V>>()
            .ok_or_else(|| wrong_type::<K, V>(name))?;
        let guard = store.read().unwrap_or_else(|e| e.into_inner());
        self.logger.snapshot(&*guard, name)
    }

    fn restore(&self, store: &SharedStore, name: &str, record: ChangeRecord) -> Result<()> {
        let store = store
            .downcast_ref::<GlobalKv<K, V>>()
            .ok_or_else(|| wrong_type::<K, V>(name))?;
        let mut guard = store.write().unwrap_or_else(|e| e.into_inner());
        self.logger.restore(&mut *guard, name, record)
    }
}

/// A global store of the topology: its name, the topic that fills it, and its codec.
#[derive(Clone)]
pub(crate) struct GlobalStoreDef {
    pub(crate) store: String,
    pub(crate) topic: String,
    pub(crate) codec: Arc<dyn GlobalCodec>,
}

impl GlobalStoreDef {
    /// The global store `store` of `K` to `V` filled from `topic`, its records read with
    /// these serdes.
    pub(crate) fn new<K, V>(
        store: &str,
        topic: &str,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> Self
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        GlobalStoreDef {
            store: store.to_string(),
            topic: topic.to_string(),
            codec: Arc::new(Codec {
                logger: TimestampedKeyValueLogger::new(key_serde, value_serde),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::state::KeyValueStore;
    use crate::Builtin;

    #[test]
    fn a_shared_store_is_written_and_read_through_its_slot_and_saved_by_its_codec() {
        let slot = new_store::<String, i64>("g");
        write::<String, i64, _>(&*slot, "g", |s| {
            s.put("a".into(), ValueAndTimestamp::make(1, 10))
        })
        .unwrap();
        let got = read_values::<String, i64, _>(&*slot, |s| s.get(&"a".to_string()));
        assert_eq!(got.unwrap().unwrap(), Some(1));
        assert!(read_values::<String, String, _>(&*slot, |s| s.all()).is_none());
        assert!(read::<i64, i64, _>(&*slot, "g", |s| s.all()).is_err());

        let def =
            GlobalStoreDef::new::<String, i64>("g", "t", Arc::new(Builtin), Arc::new(Builtin));
        let shared = slot.downcast_ref::<SharedStore>().unwrap();
        let entries = def.codec.snapshot(shared, "g").unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].timestamp, 10);
        let other = new_store::<String, i64>("g");
        let other_shared = other.downcast_ref::<SharedStore>().unwrap();
        for e in entries {
            def.codec.restore(other_shared, "g", e).unwrap();
        }
        let row = read::<String, i64, _>(&*other, "g", |s| s.get(&"a".to_string())).unwrap();
        assert_eq!(row, Some(ValueAndTimestamp::make(1, 10)));
    }
}
