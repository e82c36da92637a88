//! Typed records: keys and values as application types, converted to and from the log's bytes
//! by Kafka-style [`Serializer`]s and [`Deserializer`]s.
//!
//! Owns: the two traits, [`Builtin`] (the encodings of Kafka's built-in serializers: UTF-8
//! strings, raw bytes, big-endian fixed-width integers and floats), [`Json`] (feature `serde`),
//! and the typed handles [`TypedProducer`] and [`TypedConsumer`], which wrap a [`Producer`] and
//! a [`Consumer`] and convert at the boundary so that application code never does.
//!
//! Shape (docs/ARCHITECTURE.md, "Typed records"): the untyped [`Producer`] and [`Consumer`]
//! stay as they are (bytes in, bytes out, no type parameters on the hot path); a typed handle
//! is a thin wrapper, `TypedProducer<K, V, KS = Builtin, VS = Builtin>`, made by
//! [`Producer::typed`] or [`TypedProducer::with_serializers`], that dereferences to the
//! untyped handle for everything that is not about records (`flush`, `close`, `subscribe`,
//! `seek`, `commit_sync`, ...).
//!
//! Invariants:
//! - Null stays null: a `None` key or value is never handed to a serializer or deserializer
//!   (Kafka's serializers map null to null), so a tombstone stays a tombstone.
//! - Serializers take their input by value: a `Bytes`, `Vec<u8>` or `String` becomes the
//!   record's bytes without a copy. Deserializers receive the record's `Bytes` (a slice of the
//!   read buffer): a `Bytes` value passes through without a copy.
//! - A record that fails to deserialize is never skipped silently: [`TypedConsumer::poll`]
//!   leaves the partition's position at that record (Kafka's
//!   `RecordDeserializationException`) and reports [`Error::Deserialization`] naming it; the
//!   application may [`seek`](crate::Consumer::seek) past it.
//!
//! [`Producer`]: crate::Producer
//! [`Producer::typed`]: crate::Producer::typed
//! [`Consumer`]: crate::Consumer
//! [`Error::Deserialization`]: crate::Error::Deserialization

mod consumer;
mod producer;
mod serdes;

pub use consumer::{TypedConsumer, TypedConsumerRecord};
pub use producer::{TypedProducer, TypedProducerRecord};
#[cfg(feature = "serde")]
pub use serdes::Json;
pub use serdes::{Builtin, Deserializer, RecordPart, SerdeError, Serializer};
