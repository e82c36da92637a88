//! [`Serde`]: how a key or value type of a topology meets a record's nullable bytes, and the
//! DSL's parameter objects that carry serdes ([`Consumed`], [`Produced`], [`Grouped`]).
//!
//! Kafka's keys and values are nullable; a Rust type is not. The choice (docs/ARCHITECTURE.md,
//! "Issue #21: decisions"): nullability is part of the type the application declares. A
//! `Serde<String>` refuses a null (an error naming the topic, never a silent default), a
//! `Serde<Option<String>>` maps null to `None`, and `Serde<()>` is Kafka's `Void` serde (always
//! null; a non-null record is refused). So a keyless input (WordCount's lines) is a
//! `KStream<(), String>`, and a stream that may carry tombstones is a `KStream<K, Option<V>>`.
//!
//! Invariant: a serde sees every key and value of its topic, null or not, so the rule above
//! holds at every edge of a topology (sources, sinks, repartition topics, the test driver).

use std::fmt;
use std::sync::Arc;

use super::processor::Record;
use super::topology::Extractor;
use crate::typed::{Builtin, Deserializer, SerdeError, Serializer};
use crate::types::{Bytes, Header};

/// A serializer and deserializer of `T` that also decides what a null key or value means
/// (Kafka's `Serde<T>`). Implemented by [`Builtin`] for Kafka's built-in types, their `Option`s
/// and `()` (Kafka's `Void`), by `Json` (feature `serde`), and by
/// [`NonNull`] and [`Nullable`] around any [`Serializer`] + [`Deserializer`] of the
/// application's own.
///
/// ```
/// use embroker::streams::Serde;
/// use embroker::{Builtin, Bytes};
/// let null: Option<String> = Builtin.deserialize("t", &[], None)?;
/// assert_eq!(null, None);
/// let word: String = Builtin.deserialize("t", &[], Some(Bytes::from_static(b"hi")))?;
/// assert_eq!(word, "hi");
/// let refused: Result<String, _> = Builtin.deserialize("t", &[], None);
/// assert!(refused.is_err());
/// # Ok::<(), embroker::SerdeError>(())
/// ```
pub trait Serde<T>: Send + Sync + 'static {
    /// The bytes of `data` for `topic`; `None` writes a null.
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Vec<Header>,
        data: T,
    ) -> Result<Option<Bytes>, SerdeError>;

    /// The `T` in a key or value of a record of `topic`; `data` is `None` for a null.
    fn deserialize(
        &self,
        topic: &str,
        headers: &[Header],
        data: Option<Bytes>,
    ) -> Result<T, SerdeError>;
}

/// A null where the declared type has no null.
#[derive(Debug)]
struct NullRefused(&'static str);

impl fmt::Display for NullRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "null where a {} was expected (declare the type as an Option to accept nulls, or () \
             for keys that are always null)",
            self.0
        )
    }
}

impl std::error::Error for NullRefused {}

/// Bytes where Kafka's `Void` serde (`()`) accepts only null.
#[derive(Debug)]
struct NotNull(usize);

impl fmt::Display for NotNull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes where () (Kafka's Void serde) accepts only null",
            self.0
        )
    }
}

impl std::error::Error for NotNull {}

macro_rules! builtin_serde {
    ($($t:ty),* $(,)?) => {$(
        impl Serde<$t> for Builtin {
            fn serialize(&self, topic: &str, headers: &mut Vec<Header>, data: $t)
                -> Result<Option<Bytes>, SerdeError> {
                Serializer::<$t>::serialize(self, topic, headers, data).map(Some)
            }
            fn deserialize(&self, topic: &str, headers: &[Header], data: Option<Bytes>)
                -> Result<$t, SerdeError> {
                match data {
                    Some(bytes) => Deserializer::<$t>::deserialize(self, topic, headers, bytes),
                    None => Err(Box::new(NullRefused(stringify!($t)))),
                }
            }
        }

        impl Serde<Option<$t>> for Builtin {
            fn serialize(&self, topic: &str, headers: &mut Vec<Header>, data: Option<$t>)
                -> Result<Option<Bytes>, SerdeError> {
                data.map(|d| Serializer::<$t>::serialize(self, topic, headers, d)).transpose()
            }
            fn deserialize(&self, topic: &str, headers: &[Header], data: Option<Bytes>)
                -> Result<Option<$t>, SerdeError> {
                data.map(|b| Deserializer::<$t>::deserialize(self, topic, headers, b)).transpose()
            }
        }
    )*};
}

builtin_serde!(
    String,
    Vec<u8>,
    Bytes,
    i16,
    i32,
    i64,
    u16,
    u32,
    u64,
    f32,
    f64
);

impl Serde<()> for Builtin {
    fn serialize(&self, _: &str, _: &mut Vec<Header>, _: ()) -> Result<Option<Bytes>, SerdeError> {
        Ok(None)
    }
    fn deserialize(&self, _: &str, _: &[Header], data: Option<Bytes>) -> Result<(), SerdeError> {
        match data {
            None => Ok(()),
            Some(bytes) => Err(Box::new(NotNull(bytes.len()))),
        }
    }
}

/// JSON: a null record is JSON's `null`, both ways, so `Json<Option<T>>` reads a tombstone as
/// `None` and writes `None` as a tombstone, and `Json<T>` refuses a null unless `T` reads
/// `null`.
#[cfg(feature = "serde")]
impl<T> Serde<T> for crate::Json<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(
        &self,
        _: &str,
        _: &mut Vec<Header>,
        data: T,
    ) -> Result<Option<Bytes>, SerdeError> {
        let bytes = serde_json::to_vec(&data)?;
        Ok((bytes != b"null").then(|| Bytes::from(bytes)))
    }
    fn deserialize(&self, _: &str, _: &[Header], data: Option<Bytes>) -> Result<T, SerdeError> {
        match data {
            Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
            None => Ok(serde_json::from_slice(b"null")?),
        }
    }
}

/// An application's own [`Serializer`] + [`Deserializer`] as a [`Serde`] of a type with no
/// null: a null record is refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct NonNull<S>(pub S);

impl<T, S> Serde<T> for NonNull<S>
where
    S: Serializer<T> + Deserializer<T> + Send + Sync + 'static,
{
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Vec<Header>,
        data: T,
    ) -> Result<Option<Bytes>, SerdeError> {
        self.0.serialize(topic, headers, data).map(Some)
    }
    fn deserialize(
        &self,
        topic: &str,
        headers: &[Header],
        data: Option<Bytes>,
    ) -> Result<T, SerdeError> {
        match data {
            Some(bytes) => self.0.deserialize(topic, headers, bytes),
            None => Err(Box::new(NullRefused(std::any::type_name::<T>()))),
        }
    }
}

/// An application's own [`Serializer`] + [`Deserializer`] of `T` as a [`Serde`] of
/// `Option<T>`: null is `None`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Nullable<S>(pub S);

impl<T, S> Serde<Option<T>> for Nullable<S>
where
    S: Serializer<T> + Deserializer<T> + Send + Sync + 'static,
{
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Vec<Header>,
        data: Option<T>,
    ) -> Result<Option<Bytes>, SerdeError> {
        data.map(|d| self.0.serialize(topic, headers, d))
            .transpose()
    }
    fn deserialize(
        &self,
        topic: &str,
        headers: &[Header],
        data: Option<Bytes>,
    ) -> Result<Option<T>, SerdeError> {
        data.map(|b| self.0.deserialize(topic, headers, b))
            .transpose()
    }
}

/// A shared serde, as the topology keeps it (one per source, sink or repartition topic,
/// shared by every task made from the topology).
pub(crate) type SharedSerde<T> = Arc<dyn Serde<T>>;

/// How a source reads its topic: the key and value serdes (Kafka's `Consumed`).
///
/// ```
/// use embroker::streams::Consumed;
/// use embroker::Builtin;
/// let lines: Consumed<(), String> = Consumed::with(Builtin, Builtin);
/// # let _ = lines;
/// ```
pub struct Consumed<K, V> {
    pub(crate) key_serde: SharedSerde<K>,
    pub(crate) value_serde: SharedSerde<V>,
    pub(crate) timestamp_extractor: Option<Extractor<K, V>>,
}

impl<K, V> Consumed<K, V> {
    /// Read keys with `key_serde` and values with `value_serde`; records are processed at
    /// their own timestamps.
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Consumed {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            timestamp_extractor: None,
        }
    }

    /// Process each record at the timestamp `extractor(record, partition_time)` returns
    /// instead of its own, e.g. an event time inside the value (Kafka's
    /// `TimestampExtractor`; `partition_time` is the largest timestamp of the partition so far,
    /// -1 before any). A negative result drops the record and counts it as dropped (Kafka's
    /// rule for extractors that return one); a table's tombstone keeps its own timestamp.
    /// Default: the record's timestamp, where a negative one is an error (Kafka's
    /// `FailOnInvalidTimestamp`).
    pub fn with_timestamp_extractor(
        mut self,
        extractor: impl Fn(&Record<K, V>, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.timestamp_extractor = Some(Arc::new(extractor));
        self
    }
}

/// How a sink writes its topic: the key and value serdes (Kafka's `Produced`).
pub struct Produced<K, V> {
    pub(crate) key_serde: SharedSerde<K>,
    pub(crate) value_serde: SharedSerde<V>,
}

impl<K, V> Produced<K, V> {
    /// Write keys with `key_serde` and values with `value_serde`.
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Produced {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
        }
    }
}

/// How a grouping writes and reads its repartition topic: the serdes and, optionally, the
/// name that Kafka uses for the topic (`<application.id>-<name>-repartition`) (Kafka's
/// `Grouped`).
pub struct Grouped<K, V> {
    pub(crate) key_serde: SharedSerde<K>,
    pub(crate) value_serde: SharedSerde<V>,
    pub(crate) name: Option<String>,
}

impl<K, V> Grouped<K, V> {
    /// Repartition with `key_serde` and `value_serde`; the topic is named after the store.
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Grouped {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            name: None,
        }
    }

    /// Name the repartition topic `<application.id>-<name>-repartition` (Kafka's
    /// `Grouped.as(name)`). Default: named after the aggregation's store.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How `KStream::repartition` writes and reads its internal topic: serdes and an optional
/// name (Kafka's `Repartitioned`, which carries the same as [`Grouped`]).
pub type Repartitioned<K, V> = Grouped<K, V>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_is_refused_by_plain_types_and_none_for_options() {
        let r: Result<i64, _> = Serde::deserialize(&Builtin, "t", &[], None);
        let text = r.unwrap_err().to_string();
        assert!(text.contains("null where a i64"), "{text}");
        let n: Option<i64> = Serde::deserialize(&Builtin, "t", &[], None).unwrap();
        assert_eq!(n, None);
        let out = Serde::<Option<i64>>::serialize(&Builtin, "t", &mut Vec::new(), None).unwrap();
        assert_eq!(out, None);
        let out = Serde::<i64>::serialize(&Builtin, "t", &mut Vec::new(), 3).unwrap();
        assert_eq!(out.as_deref(), Some(&[0, 0, 0, 0, 0, 0, 0, 3][..]));
    }

    #[test]
    fn unit_is_kafkas_void() {
        let out = Serde::<()>::serialize(&Builtin, "t", &mut Vec::new(), ()).unwrap();
        assert_eq!(out, None);
        Serde::<()>::deserialize(&Builtin, "t", &[], None).unwrap();
        let err = Serde::<()>::deserialize(&Builtin, "t", &[], Some(Bytes::from_static(b"x")));
        assert!(err.unwrap_err().to_string().contains("Void"));
    }

    #[test]
    fn wrappers_adapt_an_applications_own_serializer() {
        let out = NonNull(Builtin)
            .serialize("t", &mut Vec::new(), 7i32)
            .unwrap();
        assert_eq!(out.as_deref(), Some(&[0, 0, 0, 7][..]));
        let refused: Result<i32, _> = NonNull(Builtin).deserialize("t", &[], None);
        assert!(refused.is_err());
        let none: Option<i32> = Nullable(Builtin).deserialize("t", &[], None).unwrap();
        assert_eq!(none, None);
        let some: Option<i32> = Nullable(Builtin)
            .deserialize("t", &[], Some(Bytes::from_static(&[0, 0, 1, 0])))
            .unwrap();
        assert_eq!(some, Some(256));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_null_is_a_null_record() {
        let json = crate::Json::<Option<Vec<u8>>>::new();
        assert_eq!(
            Serde::serialize(&json, "t", &mut Vec::new(), None).unwrap(),
            None
        );
        assert_eq!(Serde::deserialize(&json, "t", &[], None).unwrap(), None);
        let plain = crate::Json::<Vec<u8>>::new();
        assert!(Serde::deserialize(&plain, "t", &[], None).is_err());
    }
}
