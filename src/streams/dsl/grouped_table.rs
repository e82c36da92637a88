//! [`KGroupedTable`]: a table re-grouped by a new key, ready to aggregate with an adder and a
//! subtractor (Kafka's `KGroupedTable`), and the bytes of a table change on its repartition
//! topic.

use std::marker::PhantomData;
use std::sync::Arc;

use super::ktable::KTable;
use super::processors::{Fold, Step, TableAggregate};
use super::{
    add, add_kv_store, add_logged_kv_store, add_processor, changelog_value_serde, name, supplier,
    Change, Materialized, Shared,
};
use crate::streams::serdes::{Serde, SharedSerde};
use crate::streams::state::ValueAndTimestamp;
use crate::typed::SerdeError;
use crate::types::{Bytes, Header};

/// A table grouped by a key chosen per row (Kafka's `KGroupedTable<K, V>`), made by
/// [`KTable::group_by`]. Each update of the source table arrives as a change: the old row's
/// value leaves its group (the subtractor) and the new one joins its group (the adder), so the
/// aggregates always equal an aggregation over the table's current rows.
///
/// ```
/// use embroker::streams::{Consumed, Grouped, Materialized, ReadOnlyKeyValueStore, StreamsBuilder, StreamsConfig, TopologyTestDriver};
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// // user -> city; count users per city.
/// builder
///     .table("user-city", Consumed::<String, String>::with(Builtin, Builtin), Materialized::default())
///     .group_by(|_, city| (city.clone(), city.clone()), Grouped::with(Builtin, Builtin))
///     .count(Materialized::as_("users-per-city"));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("cities"))?;
/// let moves = driver.create_input_topic::<String, Option<String>>("user-city", Builtin, Builtin);
/// moves.pipe_input("ann".to_string(), Some("Oslo".to_string()))?;
/// moves.pipe_input("bob".to_string(), Some("Oslo".to_string()))?;
/// moves.pipe_input("ann".to_string(), Some("Rome".to_string()))?; // leaves Oslo
/// moves.pipe_input("bob".to_string(), None)?; // deleted: leaves Oslo
/// let per_city = driver.get_key_value_store::<String, i64>("users-per-city")?;
/// assert_eq!(per_city.all()?, [("Oslo".to_string(), 0), ("Rome".to_string(), 1)]);
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct KGroupedTable<K, V> {
    shared: Shared,
    /// The node that forwards the re-keyed changes.
    node: usize,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    name: Option<String>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> KGroupedTable<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    pub(crate) fn new(
        shared: Shared,
        node: usize,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        name: Option<String>,
    ) -> Self {
        KGroupedTable {
            shared,
            node,
            key_serde,
            value_serde,
            name,
            _types: PhantomData,
        }
    }

    /// The number of rows per group (Kafka's `count`).
    pub fn count(self, materialized: Materialized) -> KTable<K, i64> {
        self.aggregate_with(
            "KTABLE-AGGREGATE",
            Arc::new(|| 0),
            Arc::new(|_, _, n: i64| n.saturating_add(1)),
            Arc::new(|_, _, n: i64| n.saturating_sub(1)),
            materialized,
            Some(Arc::new(crate::Builtin)),
        )
    }

    /// The rows per group combined by `adder(aggregate, value)` and taken out again by
    /// `subtractor(aggregate, value)` (Kafka's `reduce`). A group's first value is its
    /// aggregate.
    pub fn reduce(
        self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, V> {
        let value_serde = self.value_serde.clone();
        self.aggregate_opt(
            "KTABLE-REDUCE",
            Arc::new(move |_, value, old: Option<V>| match old {
                Some(aggregate) => adder(aggregate, value),
                None => value,
            }),
            Arc::new(move |_, value, aggregate: V| subtractor(aggregate, value)),
            materialized,
            Some(value_serde),
        )
    }

    /// The rows per group folded from `initializer()` by `adder(key, value, aggregate)` and
    /// unfolded by `subtractor(key, value, aggregate)` (Kafka's `aggregate`).
    pub fn aggregate<VA: Clone + 'static>(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, VA> {
        self.aggregate_with(
            "KTABLE-AGGREGATE",
            Arc::new(initializer),
            Arc::new(adder),
            Arc::new(subtractor),
            materialized,
            None,
        )
    }

    fn aggregate_with<VA: Clone + 'static>(
        self,
        prefix: &str,
        initializer: Arc<dyn Fn() -> VA + Send + Sync>,
        adder: Fold<K, V, VA>,
        subtractor: Fold<K, V, VA>,
        materialized: Materialized,
        value_serde: Option<SharedSerde<VA>>,
    ) -> KTable<K, VA> {
        self.aggregate_opt(
            prefix,
            Arc::new(move |k, v, old: Option<VA>| {
                adder(k, v, old.unwrap_or_else(|| initializer()))
            }),
            subtractor,
            materialized,
            value_serde,
        )
    }

    /// Name the store, add the repartition topic (always: the key changed), the store (with
    /// a changelog when the aggregate's serde is known and logging is on) and the
    /// aggregation node.
    fn aggregate_opt<VA: Clone + 'static>(
        self,
        prefix: &str,
        add_step: Step<K, V, VA>,
        subtract: Fold<K, V, VA>,
        materialized: Materialized,
        value_serde: Option<SharedSerde<VA>>,
    ) -> KTable<K, VA> {
        let shared = self.shared.clone();
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| name(&shared, &format!("{prefix}-STATE-STORE")));
        let value_serde = changelog_value_serde(&shared, &materialized, &store, value_serde);
        let topic_prefix = self.name.clone().unwrap_or_else(|| store.clone());
        let topic = format!("{topic_prefix}-repartition");
        let changes: SharedSerde<Change<V>> = Arc::new(ChangeSerde(self.value_serde.clone()));
        let (sink, source) = (
            format!("{topic_prefix}-repartition-sink"),
            format!("{topic_prefix}-repartition-source"),
        );
        let key_serde = self.key_serde.clone();
        let (ks, vs) = (self.key_serde.clone(), changes.clone());
        add(&shared, |t| {
            t.sink_node(sink, &topic, true, ks, vs, self.node)
        });
        let parent = add(&shared, |t| {
            t.source_node::<K, Change<V>>(source, &topic, true, self.key_serde, changes, None)
        });
        match value_serde {
            Some(value_serde) => {
                add_logged_kv_store::<K, VA>(&shared, &store, key_serde, value_serde)
            }
            None => add_kv_store::<K, ValueAndTimestamp<VA>>(&shared, &store),
        }
        let node_name = name(&shared, prefix);
        let store_name = store.clone();
        let node = add_processor(
            &shared,
            node_name,
            &[parent],
            vec![store.clone()],
            supplier(move || TableAggregate::<K, V, VA> {
                store: store_name.clone(),
                add: add_step.clone(),
                subtract: subtract.clone(),
            }),
        );
        KTable::new(shared, node, Some(store))
    }
}

/// A table change on a repartition topic, in Kafka's `ChangedSerializer` layout: the new
/// value then a flag 1; the old value then a flag 0; or both, as a 4-byte big-endian length
/// of the new value, the new value, the old value and a flag 2.
pub(crate) struct ChangeSerde<V>(pub(crate) SharedSerde<V>);

/// Why a change's bytes were refused.
#[derive(Debug)]
struct BadChange(&'static str);

impl std::fmt::Display for BadChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a table change: {}", self.0)
    }
}

impl std::error::Error for BadChange {}

impl<V: 'static> ChangeSerde<V> {
    fn bytes(&self, topic: &str, headers: &mut Vec<Header>, v: V) -> Result<Bytes, SerdeError> {
        self.0.serialize(topic, headers, v)?.ok_or_else(|| {
            Box::new(BadChange("the value serde wrote null for a value")) as SerdeError
        })
    }
}

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Vec<Header>,
        data: Change<V>,
    ) -> Result<Option<Bytes>, SerdeError> {
        let mut out = Vec::new();
        match (data.new, data.old) {
            (Some(new), None) => {
                out.extend_from_slice(&self.bytes(topic, headers, new)?);
                out.push(1);
            }
            (None, Some(old)) => {
                out.extend_from_slice(&self.bytes(topic, headers, old)?);
                out.push(0);
            }
            (Some(new), Some(old)) => {
                let new = self.bytes(topic, headers, new)?;
                let len = u32::try_from(new.len())
                    .map_err(|_| Box::new(BadChange("a new value over 4 GiB")) as SerdeError)?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&new);
                out.extend_from_slice(&self.bytes(topic, headers, old)?);
                out.push(2);
            }
            (None, None) => return Err(Box::new(BadChange("neither a new nor an old value"))),
        }
        Ok(Some(Bytes::from(out)))
    }

    fn deserialize(
        &self,
        topic: &str,
        headers: &[Header],
        data: Option<Bytes>,
    ) -> Result<Change<V>, SerdeError> {
        let data = data.ok_or_else(|| Box::new(BadChange("null")) as SerdeError)?;
        let Some((&flag, body)) = data.split_last() else {
            return Err(Box::new(BadChange("empty")));
        };
        let body = data.slice_ref(body);
        let value = |b: Bytes| self.0.deserialize(topic, headers, Some(b));
        match flag {
            1 => Ok(Change {
                new: Some(value(body)?),
                old: None,
            }),
            0 => Ok(Change {
                new: None,
                old: Some(value(body)?),
            }),
            2 => {
                let len_bytes: [u8; 4] = body
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| Box::new(BadChange("no length")) as SerdeError)?;
                let len = u32::from_be_bytes(len_bytes) as usize;
                let end = 4usize
                    .checked_add(len)
                    .filter(|&e| e <= body.len())
                    .ok_or_else(|| Box::new(BadChange("a length past the end")) as SerdeError)?;
                Ok(Change {
                    new: Some(value(body.slice(4..end))?),
                    old: Some(value(body.slice(end..))?),
                })
            }
            _ => Err(Box::new(BadChange("an unknown flag"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Builtin;

    fn serde() -> ChangeSerde<String> {
        ChangeSerde(Arc::new(Builtin))
    }

    #[test]
    fn kafkas_layout() {
        let s = serde();
        let both = Change {
            new: Some("ab".to_string()),
            old: Some("c".to_string()),
        };
        let bytes = s
            .serialize("t", &mut Vec::new(), both.clone())
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[..], b"\0\0\0\x02abc\x02");
        assert_eq!(s.deserialize("t", &[], Some(bytes)).unwrap(), both);
        let new = Change {
            new: Some("x".to_string()),
            old: None,
        };
        let bytes = s.serialize("t", &mut Vec::new(), new).unwrap().unwrap();
        assert_eq!(&bytes[..], b"x\x01");
        for bad in [&b""[..], b"x\x07", b"\0\0\0\x09ab\x02", b"\0\x02"] {
            assert!(s
                .deserialize("t", &[], Some(Bytes::copy_from_slice(bad)))
                .is_err());
        }
        assert!(s
            .serialize(
                "t",
                &mut Vec::new(),
                Change {
                    new: None,
                    old: None
                }
            )
            .is_err());
    }

    proptest! {
        #[test]
        fn changes_round_trip(new: Option<String>, old: Option<String>) {
            prop_assume!(new.is_some() || old.is_some());
            let s = serde();
            let change = Change { new, old };
            let bytes = s.serialize("t", &mut Vec::new(), change.clone()).unwrap();
            prop_assert_eq!(s.deserialize("t", &[], bytes).unwrap(), change);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let _ = serde().deserialize("t", &[], Some(Bytes::from(bytes)));
        }
    }
}
