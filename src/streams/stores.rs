//! Kafka's `Stores` factory and the store builders a Processor-API topology declares its
//! stores with (`Topology::add_state_store_builder`, `StreamsBuilder::add_state_store_builder`).
//!
//! Owns: what a declared store is (its name, its serdes, whether it is logged) and turning
//! that into the topology's store definition: an in-memory key-value store, with a changelog
//! (`<application.id>-<store>-changelog`, written by the runtime as the key's and value's
//! bytes) unless logging was disabled; or a persistent key-value store (module
//! `persistent`), opened by the runtime in its task's directory.
//!
//! Invariants: logging is on by default, as Kafka's `StoreBuilder`s are; a store builder
//! carries its serdes, so every store declared through it can be restored from its changelog.

use std::marker::PhantomData;
use std::sync::Arc;

use super::persistent::{as_disk_store, PersistentKeyValueStore};
use super::runtime::changelog::KeyValueLogger;
use super::serdes::{Serde, SharedSerde};
use super::state::InMemoryKeyValueStore;
use super::topology::{StoreSupplier, Topology};
use crate::error::Result;

/// Factories of store suppliers and builders (Kafka's `Stores`).
///
/// ```
/// use embroker::streams::Stores;
/// use embroker::Builtin;
/// let builder = Stores::key_value_store_builder::<String, i64>(
///     Stores::in_memory_key_value_store("seen"),
///     Builtin,
///     Builtin,
/// );
/// assert_eq!(builder.name(), "seen");
/// assert!(builder.logging_enabled());
/// assert!(!builder.with_logging_disabled().logging_enabled());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Stores;

/// Which key-value store to build, and its name (Kafka's `KeyValueBytesStoreSupplier`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValueStoreSupplier {
    name: String,
    persistent: bool,
}

impl KeyValueStoreSupplier {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the store keeps its data in files under the state directory.
    pub fn persistent(&self) -> bool {
        self.persistent
    }
}

impl Stores {
    /// An in-memory key-value store named `name` (Kafka's `Stores.inMemoryKeyValueStore`).
    pub fn in_memory_key_value_store(name: impl Into<String>) -> KeyValueStoreSupplier {
        KeyValueStoreSupplier {
            name: name.into(),
            persistent: false,
        }
    }

    /// A persistent key-value store named `name` (Kafka's `Stores.persistentKeyValueStore`):
    /// its entries live in `state.dir/<application.id>/<task>/<name>/`, and processors reach
    /// it as a [`PersistentKeyValueStore<K, V>`](super::PersistentKeyValueStore) (or through
    /// [`ProcessorContext::key_value_store`](super::ProcessorContext::key_value_store)).
    pub fn persistent_key_value_store(name: impl Into<String>) -> KeyValueStoreSupplier {
        KeyValueStoreSupplier {
            name: name.into(),
            persistent: true,
        }
    }

    /// A builder of the key-value store `supplier` with the serdes of its keys and values,
    /// logged by default (Kafka's `Stores.keyValueStoreBuilder`).
    pub fn key_value_store_builder<K, V>(
        supplier: KeyValueStoreSupplier,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            name: supplier.name,
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            logging: true,
            persistent: supplier.persistent,
            _types: PhantomData,
        }
    }
}

/// A store declared for processors (Kafka's `StoreBuilder<KeyValueStore<K, V>>`). The
/// processors reach it as an [`InMemoryKeyValueStore<K, V>`] (or a
/// [`PersistentKeyValueStore<K, V>`] for a persistent supplier) through
/// [`ProcessorContext::state_store`](super::ProcessorContext::state_store), or as either
/// through [`ProcessorContext::key_value_store`](super::ProcessorContext::key_value_store).
pub struct StoreBuilder<K, V> {
    name: String,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    logging: bool,
    persistent: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for StoreBuilder<K, V> {
    fn clone(&self) -> Self {
        StoreBuilder {
            name: self.name.clone(),
            key_serde: Arc::clone(&self.key_serde),
            value_serde: Arc::clone(&self.value_serde),
            logging: self.logging,
            persistent: self.persistent,
            _types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for StoreBuilder<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("name", &self.name)
            .field("logging", &self.logging)
            .field("persistent", &self.persistent)
            .finish()
    }
}

impl<K, V> StoreBuilder<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the store has a changelog.
    pub fn logging_enabled(&self) -> bool {
        self.logging
    }

    /// Back the store by its changelog topic (Kafka's `withLoggingEnabled`; the default).
    pub fn with_logging_enabled(mut self) -> Self {
        self.logging = true;
        self
    }

    /// Keep the store without a changelog (Kafka's `withLoggingDisabled`): its contents are
    /// lost when its task moves or its state directory is deleted.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }
}

impl<K, V> StoreBuilder<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    /// Add the store to `topology` (unconnected); its name must be new.
    pub(crate) fn add_to(self, topology: &mut Topology) -> Result<()> {
        let store_name = self.name.clone();
        let make: StoreSupplier = if self.persistent {
            let (key_serde, value_serde) =
                (Arc::clone(&self.key_serde), Arc::clone(&self.value_serde));
            Arc::new(move || {
                Box::new(PersistentKeyValueStore::<K, V>::unopened(
                    store_name.clone(),
                    Arc::clone(&key_serde),
                    Arc::clone(&value_serde),
                )) as Box<dyn std::any::Any>
            })
        } else {
            Arc::new(move || {
                Box::new(InMemoryKeyValueStore::<K, V>::new(store_name.clone()))
                    as Box<dyn std::any::Any>
            })
        };
        if self.logging {
            let logger = Arc::new(KeyValueLogger::new(self.key_serde, self.value_serde));
            topology.add_logged_store(&self.name, make, logger)?;
        } else {
            topology.add_store(&self.name, make)?;
        }
        if self.persistent {
            if let Some(def) = topology.stores.last_mut() {
                def.disk = Some(as_disk_store::<K, V>);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Builtin;

    #[test]
    fn a_builder_adds_a_logged_store_unless_logging_is_disabled() {
        let mut topology = Topology::new();
        Stores::key_value_store_builder::<String, i64>(
            Stores::in_memory_key_value_store("logged"),
            Builtin,
            Builtin,
        )
        .add_to(&mut topology)
        .unwrap();
        Stores::key_value_store_builder::<String, i64>(
            Stores::in_memory_key_value_store("plain"),
            Builtin,
            Builtin,
        )
        .with_logging_disabled()
        .add_to(&mut topology)
        .unwrap();
        let logged: Vec<(String, bool)> = topology
            .stores
            .iter()
            .map(|s| (s.name.clone(), s.logger.is_some()))
            .collect();
        assert_eq!(
            logged,
            vec![("logged".to_string(), true), ("plain".to_string(), false)]
        );
        let again = Stores::key_value_store_builder::<String, i64>(
            Stores::in_memory_key_value_store("logged"),
            Builtin,
            Builtin,
        );
        assert!(again.add_to(&mut topology).is_err(), "a name is used once");
    }
}
