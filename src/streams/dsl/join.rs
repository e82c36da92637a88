//! The joins of the DSL (Kafka's `KStream.join/leftJoin/outerJoin` and `KTable.join/
//! leftJoin/outerJoin`): KStream-KStream in [`JoinWindows`], KStream-KTable, KTable-KTable.
//! The stream-global-table join is in `global.rs`.
//!
//! Owns: the nodes and stores of each join, with Kafka's names (`KSTREAM-JOINTHIS-…`,
//! `KSTREAM-OUTEROTHER-…`, `KSTREAM-OUTERSHARED-…-store`, `KTABLE-JOINTHIS-…`,
//! `KSTREAM-MERGE-…`), and the co-partition group each join records on the topology.
//!
//! Invariants: both inputs come from one builder; a stream input whose key may have changed
//! (`map`, `select_key`, …) must be `repartition`ed first (refused at build otherwise: Kafka
//! repartitions it itself with `StreamJoined`'s serdes, which this DSL does not take); a
//! table input must be materialized (a store to look rows up in). Every error is kept and
//! returned by `StreamsBuilder::build`.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::join_processors::{
    Joiner, LeftSide, OuterShared, RightSide, RowJoiner, StreamJoinSide, StreamTableJoin,
    TableJoinKind, TableJoinSide, TableJoiner,
};
use super::join_windows::JoinWindows;
use super::kstream::KStream;
use super::ktable::KTable;
use super::{add, add_processor, name, supplier, Shared};
use crate::error::Error;
use crate::streams::join_store::JoinWindowStore;
use crate::streams::runtime::changelog::{JoinWindowLogger, OuterJoinLogger, StoreLogger};
use crate::streams::serdes::{Serde, SharedSerde};
use crate::streams::topology::{PassThrough, StoreSupplier};

/// Record an error at build (and return the failed node index).
fn refuse(shared: &Shared, reason: String) -> usize {
    add(shared, |_| Err(Error::InvalidTopology { reason }))
}

/// Add a store made by `make` named `store`.
fn add_store(shared: &Shared, store: &str, make: StoreSupplier) {
    add(shared, |t| t.add_store(store, make).map(|()| 0));
}

/// Add a store made by `make` named `store`, logged by `logger` if there is one.
fn add_maybe_logged(
    shared: &Shared,
    store: &str,
    make: StoreSupplier,
    logger: Option<Arc<dyn crate::streams::runtime::changelog::StoreLogger>>,
) {
    match logger {
        Some(logger) => add(shared, |t| {
            t.add_logged_store(store, make, logger).map(|()| 0)
        }),
        None => {
            add_store(shared, store, make);
            0
        }
    };
}

/// The serdes of a stream-stream join's stores, so that they are backed by changelogs
/// (Kafka's `StreamJoined.with(keySerde, valueSerde, otherValueSerde)`): the key, this
/// stream's values and the other stream's values. Joins called without it keep their stores
/// in memory only, and a moved task starts with empty join windows.
pub struct StreamJoined<K, V, VO> {
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    other_value_serde: SharedSerde<VO>,
    logging: bool,
}

impl<K, V, VO> StreamJoined<K, V, VO> {
    /// The join's serdes (Kafka's `StreamJoined.with`); logging is on.
    pub fn with(
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        other_value_serde: impl Serde<VO>,
    ) -> Self {
        StreamJoined {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            other_value_serde: Arc::new(other_value_serde),
            logging: true,
        }
    }

    /// Keep the join's stores without changelogs (Kafka's `withLoggingDisabled`).
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }
}

/// Record that the sources under `nodes` must be co-partitioned.
fn copartition(shared: &Shared, nodes: Vec<usize>) {
    shared.borrow_mut().topology.copartition_nodes.push(nodes);
}

impl<K: Ord + Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Checks shared by the stream joins: same builder, no pending key change.
    fn join_refusal(
        &self,
        what: &str,
        other_shared: &Shared,
        other_marked: bool,
    ) -> Option<String> {
        if !Rc::ptr_eq(&self.shared, other_shared) {
            return Some(format!(
                "{what}: join of streams or tables of two different builders"
            ));
        }
        if self.repartition_required || other_marked {
            return Some(format!(
                "{what}: a joined stream's key may have changed (map, select_key, flat_map, \
                 process): call repartition() on it before the join, so that records of a key \
                 meet in one task"
            ));
        }
        None
    }

    fn stream_join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        windows: JoinWindows,
        joiner: Joiner<K, V, VO, VR>,
        left_outer: bool,
        right_outer: bool,
        serdes: Option<StreamJoined<K, V, VO>>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let serdes = serdes.filter(|s| s.logging);
        let shared = &self.shared;
        let this_name = name(
            shared,
            if right_outer {
                "KSTREAM-OUTERTHIS"
            } else {
                "KSTREAM-JOINTHIS"
            },
        );
        let other_name = name(
            shared,
            if left_outer {
                "KSTREAM-OUTEROTHER"
            } else {
                "KSTREAM-JOINOTHER"
            },
        );
        let refusal = self
            .join_refusal(&this_name, &other.shared, other.repartition_required)
            .or_else(|| windows.validate().err().map(|e| e.to_string()));
        if let Some(reason) = refusal {
            return KStream::new(shared.clone(), refuse(shared, reason), false);
        }
        let retention = windows.size_ms().saturating_add(windows.grace_ms());
        let this_store = format!("{this_name}-store");
        let other_store = format!("{other_name}-store");
        let (this_logger, other_logger, outer_logger) = match &serdes {
            Some(j) => {
                let this: Arc<dyn StoreLogger> = Arc::new(JoinWindowLogger::new(
                    j.key_serde.clone(),
                    j.value_serde.clone(),
                ));
                let other: Arc<dyn StoreLogger> = Arc::new(JoinWindowLogger::new(
                    j.key_serde.clone(),
                    j.other_value_serde.clone(),
                ));
                let outer: Arc<dyn StoreLogger> = Arc::new(OuterJoinLogger::new(
                    j.key_serde.clone(),
                    j.value_serde.clone(),
                    j.other_value_serde.clone(),
                ));
                (Some(this), Some(other), Some(outer))
            }
            None => (None, None, None),
        };
        add_maybe_logged(
            shared,
            &this_store,
            Arc::new(move || {
                Box::new(JoinWindowStore::<K, V>::new(retention)) as Box<dyn std::any::Any>
            }),
            this_logger,
        );
        add_maybe_logged(
            shared,
            &other_store,
            Arc::new(move || {
                Box::new(JoinWindowStore::<K, VO>::new(retention)) as Box<dyn std::any::Any>
            }),
            other_logger,
        );
        let outer_store = (left_outer || right_outer).then(|| {
            let store = format!("{}-store", name(shared, "KSTREAM-OUTERSHARED"));
            add_maybe_logged(
                shared,
                &store,
                Arc::new(|| Box::new(OuterShared::<K, V, VO>::new()) as Box<dyn std::any::Any>),
                outer_logger,
            );
            store
        });
        let stores: Vec<String> = [
            Some(this_store.clone()),
            Some(other_store.clone()),
            outer_store.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let (ts, os, outer, j) = (
            this_store.clone(),
            other_store.clone(),
            outer_store.clone(),
            joiner.clone(),
        );
        let this_node = add_processor(
            shared,
            this_name,
            &[self.node],
            stores.clone(),
            supplier(move || StreamJoinSide::<K, V, VO, VR, LeftSide> {
                this_store: ts.clone(),
                other_store: os.clone(),
                outer_store: outer.clone(),
                outer: left_outer,
                windows,
                joiner: j.clone(),
                _side: PhantomData,
            }),
        );
        let other_node = add_processor(
            shared,
            other_name,
            &[other.node],
            stores,
            supplier(move || StreamJoinSide::<K, V, VO, VR, RightSide> {
                this_store: other_store.clone(),
                other_store: this_store.clone(),
                outer_store: outer_store.clone(),
                outer: right_outer,
                windows,
                joiner: joiner.clone(),
                _side: PhantomData,
            }),
        );
        copartition(shared, vec![self.node, other.node]);
        let merge = name(shared, "KSTREAM-MERGE");
        let node = add_processor(
            shared,
            merge,
            &[this_node, other_node],
            Vec::new(),
            supplier(PassThrough::<K, VR>::new),
        );
        KStream::new(shared.clone(), node, false)
    }

    /// Join with `other`'s records of the same key at most the windows' time difference
    /// apart: `joiner(this value, other value)` for each pair, at the later of the two
    /// timestamps (Kafka's `join(KStream, ValueJoiner, JoinWindows)`). Each side keeps its
    /// records for the window size plus grace in a store.
    ///
    /// ```
    /// use std::time::Duration;
    /// use embroker::streams::{Consumed, JoinWindows, Produced, StreamsBuilder, StreamsConfig, TopologyTestDriver};
    /// use embroker::Builtin;
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream("views", Consumed::<String, String>::with(Builtin, Builtin));
    /// let clicks = builder.stream("clicks", Consumed::<String, String>::with(Builtin, Builtin));
    /// views
    ///     .join(&clicks, |v, c| format!("{v}+{c}"), JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(5)))
    ///     .to("out", Produced::with(Builtin, Builtin));
    /// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("app"))?;
    /// let views_in = driver.create_input_topic::<String, String>("views", Builtin, Builtin);
    /// let clicks_in = driver.create_input_topic::<String, String>("clicks", Builtin, Builtin);
    /// let out = driver.create_output_topic::<String, String>("out", Builtin, Builtin);
    /// views_in.pipe_input_with_timestamp("ann".into(), "home".into(), 1_000)?;
    /// clicks_in.pipe_input_with_timestamp("ann".into(), "buy".into(), 4_000)?;
    /// clicks_in.pipe_input_with_timestamp("ann".into(), "late".into(), 7_000)?; // 6 s apart
    /// assert_eq!(out.read_key_values_to_list()?, vec![("ann".to_string(), "home+buy".to_string())]);
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |_, l, r| match (l, r) {
            (Some(l), Some(r)) => Some(joiner(l, r)),
            // An inner join never calls it with a side missing.
            _ => None,
        });
        self.stream_join(other, windows, joiner, false, false, None)
    }

    /// [`join`](Self::join) with its stores backed by changelogs written with `serdes`
    /// (Kafka's `join(KStream, ValueJoiner, JoinWindows, StreamJoined)`), so that a moved or
    /// restarted task keeps its join windows.
    pub fn join_with<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        serdes: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |_, l, r| match (l, r) {
            (Some(l), Some(r)) => Some(joiner(l, r)),
            _ => None,
        });
        self.stream_join(other, windows, joiner, false, false, Some(serdes))
    }

    /// [`join`](Self::join), and each record of this stream that found no partner once its
    /// window closed (stream time past its timestamp + after + grace) as `joiner(value,
    /// None)` at its own timestamp (Kafka's `leftJoin`; no spurious early `[A, null]`).
    pub fn left_join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |_, l, r| l.map(|l| joiner(l, r)));
        self.stream_join(other, windows, joiner, true, false, None)
    }

    /// [`left_join`](Self::left_join) with its stores (both sides' windows and the buffer of
    /// unmatched records) backed by changelogs written with `serdes` (Kafka's
    /// `leftJoin(KStream, ValueJoiner, JoinWindows, StreamJoined)`).
    pub fn left_join_with<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        serdes: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |_, l, r| l.map(|l| joiner(l, r)));
        self.stream_join(other, windows, joiner, true, false, Some(serdes))
    }

    /// [`left_join`](Self::left_join) on both sides: unmatched records of either stream come
    /// out once their windows close, as `joiner(Some(value), None)` or `joiner(None,
    /// Some(value))` (Kafka's `outerJoin`).
    pub fn outer_join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |_, l, r| Some(joiner(l, r)));
        self.stream_join(other, windows, joiner, true, true, None)
    }

    /// [`outer_join`](Self::outer_join) with its stores backed by changelogs written with
    /// `serdes` (Kafka's `outerJoin(KStream, ValueJoiner, JoinWindows, StreamJoined)`).
    pub fn outer_join_with<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        serdes: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |_, l, r| Some(joiner(l, r)));
        self.stream_join(other, windows, joiner, true, true, Some(serdes))
    }

    fn table_join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        left: bool,
        joiner: RowJoiner<K, V, VT, VR>,
    ) -> KStream<K, VR>
    where
        VT: Clone + 'static,
        VR: Clone + 'static,
    {
        let shared = &self.shared;
        let node_name = name(shared, "KSTREAM-JOIN");
        let refusal = self
            .join_refusal(&node_name, &table.shared, false)
            .or_else(|| {
                table.store.is_none().then(|| {
                    format!(
                        "{node_name}: the joined table is not materialized; join a table made by \
                     StreamsBuilder::table, to_table or an aggregation"
                    )
                })
            });
        let (Some(store), None) = (table.store.clone(), refusal.clone()) else {
            let reason = refusal.unwrap_or_default();
            return KStream::new(shared.clone(), refuse(shared, reason), false);
        };
        let table_store = store.clone();
        let node = add_processor(
            shared,
            node_name,
            &[self.node],
            vec![store],
            supplier(move || StreamTableJoin::<K, V, K, VT, VR> {
                table_store: table_store.clone(),
                left,
                key_of: Arc::new(|k: &K, _: &V| k.clone()),
                joiner: joiner.clone(),
            }),
        );
        copartition(shared, vec![self.node, table.node]);
        KStream::new(shared.clone(), node, false)
    }

    /// Join each record with `table`'s current row of its key: `joiner(value, row)` when
    /// there is one, nothing otherwise, at the record's timestamp; table updates produce
    /// nothing (Kafka's `join(KTable, ValueJoiner)`). The table must be materialized.
    ///
    /// ```
    /// use embroker::streams::{Consumed, Materialized, Produced, StreamsBuilder, StreamsConfig, TopologyTestDriver};
    /// use embroker::Builtin;
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table("users", Consumed::<String, String>::with(Builtin, Builtin), Materialized::default());
    /// builder
    ///     .stream("clicks", Consumed::<String, String>::with(Builtin, Builtin))
    ///     .join_table(&users, |page, region| format!("{page}@{region}"))
    ///     .to("out", Produced::with(Builtin, Builtin));
    /// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("app"))?;
    /// let users_in = driver.create_input_topic::<String, Option<String>>("users", Builtin, Builtin);
    /// let clicks = driver.create_input_topic::<String, String>("clicks", Builtin, Builtin);
    /// let out = driver.create_output_topic::<String, String>("out", Builtin, Builtin);
    /// clicks.pipe_input("ann".into(), "/a".into())?; // no row yet: nothing
    /// users_in.pipe_input("ann".into(), Some("eu".into()))?;
    /// clicks.pipe_input("ann".into(), "/b".into())?;
    /// assert_eq!(out.read_values_to_list()?, vec!["/b@eu".to_string()]);
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn join_table<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VT: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_join(
            table,
            false,
            Arc::new(move |_, v, row| row.map(|row| joiner(v, row))),
        )
    }

    /// [`join_table`](Self::join_table), and records without a row as `joiner(value, None)`
    /// (Kafka's `leftJoin(KTable, ValueJoiner)`).
    pub fn left_join_table<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VT: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_join(table, true, Arc::new(move |_, v, row| Some(joiner(v, row))))
    }
}

impl<K: Ord + Clone + 'static, V: Clone + 'static> KTable<K, V> {
    fn table_table_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        kinds: (TableJoinKind, TableJoinKind),
        joiner: TableJoiner<K, V, VO, VR>,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let shared = &self.shared;
        let (this_prefix, other_prefix) = match kinds.0 {
            TableJoinKind::Inner => ("KTABLE-JOINTHIS", "KTABLE-JOINOTHER"),
            TableJoinKind::Left | TableJoinKind::RightOfLeft => {
                ("KTABLE-LEFTTHIS", "KTABLE-LEFTOTHER")
            }
            TableJoinKind::Outer => ("KTABLE-OUTERTHIS", "KTABLE-OUTEROTHER"),
        };
        let this_name = name(shared, this_prefix);
        let other_name = name(shared, other_prefix);
        let refusal = if !Rc::ptr_eq(shared, &other.shared) {
            Some(format!(
                "{this_name}: join of tables of two different builders"
            ))
        } else if self.store.is_none() || other.store.is_none() {
            Some(format!(
                "{this_name}: both joined tables must be materialized; join tables made by \
                 StreamsBuilder::table, to_table or an aggregation"
            ))
        } else {
            None
        };
        let (Some(this_store), Some(other_store), None) =
            (self.store.clone(), other.store.clone(), refusal.clone())
        else {
            let reason = refusal.unwrap_or_default();
            return KTable::new(shared.clone(), refuse(shared, reason), None);
        };
        let (os, j, kind) = (other_store.clone(), joiner.clone(), kinds.0);
        let this_node = add_processor(
            shared,
            this_name,
            &[self.node],
            vec![other_store],
            supplier(move || TableJoinSide::<K, V, VO, VR> {
                other_store: os.clone(),
                kind,
                joiner: j.clone(),
            }),
        );
        let reversed: TableJoiner<K, VO, V, VR> = Arc::new(move |k, o, t| joiner(k, t, o));
        let kind = kinds.1;
        let other_node = add_processor(
            shared,
            other_name,
            &[other.node],
            vec![this_store.clone()],
            supplier(move || TableJoinSide::<K, VO, V, VR> {
                other_store: this_store.clone(),
                kind,
                joiner: reversed.clone(),
            }),
        );
        copartition(shared, vec![self.node, other.node]);
        let merge = name(shared, "KTABLE-MERGE");
        let node = add_processor(
            shared,
            merge,
            &[this_node, other_node],
            Vec::new(),
            supplier(PassThrough::<K, super::Change<VR>>::new),
        );
        KTable::new(shared.clone(), node, None)
    }

    /// The table of keys with rows in both tables: `joiner(this row, other row)`, updated as
    /// either side changes, a deletion when either row goes, at the later of the two rows'
    /// timestamps (Kafka's `KTable.join`). Both tables must be materialized; the result is
    /// not (join it further after `to_stream().to_table(...)`).
    ///
    /// ```
    /// use embroker::streams::{Consumed, Materialized, Produced, StreamsBuilder, StreamsConfig, TopologyTestDriver};
    /// use embroker::Builtin;
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table("names", Consumed::<i64, String>::with(Builtin, Builtin), Materialized::default());
    /// let ages = builder.table("ages", Consumed::<i64, i64>::with(Builtin, Builtin), Materialized::default());
    /// names
    ///     .join(&ages, |n, a| format!("{n} ({a})"))
    ///     .to_stream()
    ///     .to("people", Produced::with(Builtin, Builtin));
    /// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("app"))?;
    /// let n = driver.create_input_topic::<i64, Option<String>>("names", Builtin, Builtin);
    /// let a = driver.create_input_topic::<i64, Option<i64>>("ages", Builtin, Builtin);
    /// let out = driver.create_output_topic::<i64, Option<String>>("people", Builtin, Builtin);
    /// n.pipe_input(1, Some("Ann".into()))?;
    /// a.pipe_input(1, Some(41))?;
    /// a.pipe_input(1, None)?;
    /// assert_eq!(out.read_values_to_list()?, vec![Some("Ann (41)".to_string()), None]);
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_table_join(
            other,
            (TableJoinKind::Inner, TableJoinKind::Inner),
            Arc::new(move |_, t, o| match (t, o) {
                (Some(t), Some(o)) => Some(joiner(t, o)),
                _ => None,
            }),
        )
    }

    /// Every key with a row in this table: `joiner(row, other's row or None)` (Kafka's
    /// `KTable.leftJoin`).
    pub fn left_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_table_join(
            other,
            (TableJoinKind::Left, TableJoinKind::RightOfLeft),
            Arc::new(move |_, t, o| t.map(|t| joiner(t, o))),
        )
    }

    /// Every key with a row in either table: `joiner(this row, other row)`, either missing
    /// as `None` (Kafka's `KTable.outerJoin`).
    pub fn outer_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_table_join(
            other,
            (TableJoinKind::Outer, TableJoinKind::Outer),
            Arc::new(move |_, t, o| Some(joiner(t, o))),
        )
    }
}
