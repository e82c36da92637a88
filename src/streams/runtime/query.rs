//! Interactive queries: reading a running application's key-value store by key and by range
//! (Kafka's `KafkaStreams.store(StoreQueryParameters)` with `keyValueStore()`).
//!
//! Owns: [`KeyValueStoreView`], which asks every stream thread to read its tasks' instances
//! of the store and merges the answers; a global table's store, of which the instance has
//! one copy, it reads directly under the store's read lock.
//!
//! Invariants: a store is read only by the thread that owns it, between two batches (the
//! question travels as a closure over a channel and the thread is woken from `poll`), so a
//! reader never sees half a record's effects and the stores need no locks; each task holds a
//! disjoint set of keys (its partition's), so the merge is a union, sorted by key.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::state_listener::StateMachine;
use super::thread::Query;
use crate::error::{Error, Result};
use crate::streams::global_store::SharedStore;
use crate::streams::state::{
    InMemoryKeyValueStore, ReadOnlyKeyValueStore, ValueAndTimestamp, WithoutTimestamps,
};
use crate::WakeupHandle;

/// How long a read waits for the threads' answers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// One thread's mailbox: its query channel and the handle that wakes it from `poll`.
pub(crate) type ThreadMailbox = (Sender<Query>, Arc<std::sync::Mutex<Option<WakeupHandle>>>);

/// Reads one store's instance, erased.
type ReadFn<K, V> = dyn Fn(&dyn ReadOnlyKeyValueStore<K, V>) -> Result<Vec<(K, V)>>;

/// Reads one store's instances, erased, shareable with the threads.
type Read<K, V> =
    Arc<dyn Fn(&dyn ReadOnlyKeyValueStore<K, V>) -> Result<Vec<(K, V)>> + Send + Sync>;

/// A read-only view of a running application's key-value store, across all its tasks and
/// threads (Kafka's `ReadOnlyKeyValueStore` from `KafkaStreams.store`). For the DSL's stores
/// the values are shown without their timestamps.
pub struct KeyValueStoreView<K, V> {
    pub(crate) name: String,
    pub(crate) threads: Vec<ThreadMailbox>,
    pub(crate) states: Arc<StateMachine>,
    /// A global table's store: read here, under its lock, not from the threads.
    pub(crate) global: Option<SharedStore>,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> KeyValueStoreView<K, V>
where
    K: Ord + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn ask(&self, read: Read<K, V>) -> Result<Vec<(K, V)>> {
        let state = self.states.state();
        if !state.is_running_or_rebalancing() {
            return Err(Error::StateStore {
                store: self.name.clone(),
                reason: format!(
                    "the application is {state:?}: stores are readable while it is Running or \
                     Rebalancing"
                ),
            });
        }
        if let Some(store) = &self.global {
            let slot: &dyn std::any::Any = store;
            return match crate::streams::global_store::read_values(slot, |s| read(s)) {
                Some(entries) => entries,
                None => Err(Error::StateStore {
                    store: self.name.clone(),
                    reason: format!(
                        "it is not a global store of {} to {}",
                        std::any::type_name::<K>(),
                        std::any::type_name::<V>()
                    ),
                }),
            };
        }
        let mut answers = Vec::new();
        for (sender, wakeup) in &self.threads {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let name = self.name.clone();
            let read = Arc::clone(&read);
            let query: Query = Box::new(move |tasks| {
                let mut found = Vec::new();
                let mut result = Ok(());
                for task in tasks.values() {
                    match read_task(&task.task, &name, &*read) {
                        Ok(mut entries) => found.append(&mut entries),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                let _ = tx.send(result.map(|()| found));
            });
            if sender.send(query).is_err() {
                return Err(self.gone());
            }
            if let Some(w) = &*wakeup.lock().unwrap_or_else(|e| e.into_inner()) {
                w.wakeup();
            }
            answers.push(rx);
        }
        let mut all = Vec::new();
        for rx in answers {
            match rx.recv_timeout(ANSWER_TIMEOUT) {
                Ok(entries) => all.append(&mut entries?),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    return Err(Error::Timeout {
                        operation: format!("reading store {:?} from its stream threads", self.name),
                        timeout: ANSWER_TIMEOUT,
                    })
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Err(self.gone()),
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    fn gone(&self) -> Error {
        Error::StateStore {
            store: self.name.clone(),
            reason: "its stream thread stopped before answering".to_string(),
        }
    }
}

/// Read a task's instance of store `name`: a DSL store (timestamped) or a Processor API
/// store of `K` to `V`.
fn read_task<K, V>(
    task: &crate::streams::task::Task,
    name: &str,
    read: &ReadFn<K, V>,
) -> Result<Vec<(K, V)>>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    let Some(store) = task.store_any(name) else {
        return Ok(Vec::new());
    };
    if let Some(s) = store.downcast_ref::<InMemoryKeyValueStore<K, ValueAndTimestamp<V>>>() {
        return read(&WithoutTimestamps(s));
    }
    if let Some(s) = store.downcast_ref::<InMemoryKeyValueStore<K, V>>() {
        return read(s);
    }
    if let Some(s) = store.downcast_ref::<crate::streams::PersistentKeyValueStore<K, V>>() {
        return read(s);
    }
    Err(Error::StateStore {
        store: name.to_string(),
        reason: format!(
            "it is not a key-value store of {} to {}",
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        ),
    })
}

impl<K, V> ReadOnlyKeyValueStore<K, V> for KeyValueStoreView<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    fn get(&self, key: &K) -> Result<Option<V>> {
        let key = key.clone();
        let found = self.ask(Arc::new(move |s| {
            Ok(s.get(&key)?.map(|v| (key.clone(), v)).into_iter().collect())
        }))?;
        Ok(found.into_iter().next().map(|(_, v)| v))
    }

    fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let (from, to) = (from.clone(), to.clone());
        self.ask(Arc::new(move |s| s.range(&from, &to)))
    }

    fn all(&self) -> Result<Vec<(K, V)>> {
        self.ask(Arc::new(|s| s.all()))
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        Ok(self.all()?.len() as u64)
    }
}
