//! Kafka Streams in-process: a DSL that builds a [`Topology`] of sources, processors, sinks
//! and state stores, and a [`TopologyTestDriver`] that runs it record by record.
//!
//! Kafka's vocabulary in Rust case: [`StreamsBuilder`], [`KStream`] (`filter`, `map`,
//! `map_values`, `flat_map`, `flat_map_values`, `peek`, `foreach`, `merge`, `split`, `to`,
//! `to_dynamic`, `repartition`, `to_table`, `group_by_key`, `group_by`, `process`),
//! [`KGroupedStream`] (`count`, `reduce`, `aggregate` into a store named by
//! [`Materialized`]; `windowed_by` [`TimeWindows`] for tumbling and hopping windows with
//! grace, `windowed_by_session` [`SessionWindows`]), [`KTable`] (`filter`, `map_values`,
//! `to_stream`, `suppress` of a windowed table until its windows close, `group_by` into a
//! [`KGroupedTable`] with adder and subtractor), the Processor API ([`Processor`],
//! [`ProcessorContext::forward`], punctuators), state ([`KeyValueStore`],
//! [`InMemoryKeyValueStore`], [`InMemoryWindowStore`], [`InMemorySessionStore`]) and
//! [`Serde`], which says how each key and value type meets a record's nullable bytes.
//!
//! Layering (docs/ARCHITECTURE.md, `src/streams/`): this layer uses the public typed API
//! (`Serializer`, `Deserializer`, `Builtin`, `Json`) and, with the runtime, the broker's
//! public producers and consumers; nothing below it knows about streams.
//!
//! Modules, one job each: `serdes` (null-aware serdes and the DSL's serde parameters),
//! `topology` (the graph and its Processor API by name), `dsl` (the handles that build it),
//! `window` (time and session windows, windowed keys), `processor` (the Processor API),
//! `task` (one running instance of a topology), `state` (stores), `persistent` and `kv_log`
//! (the persistent key-value store and its file), `cache` (the record cache
//! of the DSL's key-value aggregations), `config`
//! (`StreamsConfig`), `test_driver`, `runtime` (`KafkaStreams`).
//!
//! Joins: [`KStream::join`]/`left_join`/`outer_join` in [`JoinWindows`],
//! [`KStream::join_table`], [`KTable::join`]/`left_join`/`outer_join`,
//! [`KStream::join_global`] against a [`GlobalKTable`]; sliding windows:
//! [`KGroupedStream::windowed_by_sliding`] with [`SlidingWindows`]; joined inputs must be
//! co-partitioned ([`Topology::copartition_groups`], [`Topology::check_copartitioning`]).
//! Modules of their own: `join_store` (the stream-stream join's stores), `copartition`.
//!
//! [`KafkaStreams`] (`runtime`) runs a topology on a broker: stream threads in the consumer
//! group `application.id`, one task per input partition, commits (at-least-once or
//! `exactly_once_v2`), changelog and repartition topics, restoration, a state listener, an
//! uncaught-error handler and interactive queries ([`KafkaStreams::store`]).
//!
//! Stores declared for processors: [`Stores`] and [`StoreBuilder`] (module `stores`),
//! logged by default as in Kafka.
//!
//! Stream-stream joins log their stores when called with [`StreamJoined`] (`join_with`,
//! `left_join_with`, `outer_join_with`).
//!
//! Persistent key-value stores ([`PersistentKeyValueStore`], modules `persistent` and
//! `kv_log`): declared with [`Stores::persistent_key_value_store`], kept in files under the
//! state directory while they run.
//!
//! Not built yet (issue #21): persistent window and session stores, persistent DSL
//! aggregation stores; changelogs of suppression buffers.

mod cache;
mod config;
mod copartition;
mod dsl;
mod global_store;
mod join_store;
mod kv_log;
mod persistent;
mod processor;
mod runtime;
mod serdes;
mod state;
mod stores;
mod task;
mod test_driver;
mod topology;
mod window;

pub use config::{ProcessingGuarantee, StreamsConfig};
pub use dsl::{
    Branched, BranchedKStream, GlobalKTable, JoinWindows, KGroupedStream, KGroupedTable, KStream,
    KTable, Materialized, SessionWindowedKStream, SlidingWindowedKStream, StreamJoined,
    StreamsBuilder, Suppressed, TimeWindowedKStream,
};
pub use persistent::PersistentKeyValueStore;
pub use processor::{
    Processor, ProcessorContext, PunctuationType, Record, RecordMetadata, ScheduleId,
};
pub use runtime::{
    KafkaStreams, KeyValueStoreView, State, StreamThreadExceptionResponse, StreamsStats,
};
pub use serdes::{Consumed, Grouped, NonNull, Nullable, Produced, Repartitioned, Serde};
pub use state::{
    InMemoryKeyValueStore, InMemorySessionStore, InMemoryWindowStore, KeyValueStore,
    ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore, SessionStore,
    ValueAndTimestamp, WindowStore,
};
pub use stores::{KeyValueStoreSupplier, StoreBuilder, Stores};
pub use test_driver::{
    TestInputTopic, TestKeyValueStore, TestOutputTopic, TestSessionStore, TestWindowStore,
    TopologyTestDriver,
};
pub use topology::Topology;
pub use window::{
    SessionWindowedSerde, SessionWindows, SlidingWindows, TimeWindowedSerde, TimeWindows, Window,
    Windowed,
};
