//! The [`Serializer`] and [`Deserializer`] traits and the provided implementations.

use std::fmt;

use crate::types::{Bytes, Header};

/// What a serializer or deserializer fails with: any error, boxed. The typed handles turn it
/// into [`Error::Serialization`](crate::Error::Serialization) or
/// [`Error::Deserialization`](crate::Error::Deserialization), adding the topic (and for a
/// read record, partition and offset) and whether the key or the value failed.
pub type SerdeError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Turns a `T` into a record's key or value bytes. Kafka's `Serializer<T>`:
/// `serialize(topic, headers, data)`.
///
/// `data` is taken by value, so that a type that already holds its bytes (`Bytes`, `Vec<u8>`,
/// `String`) becomes the record's bytes without a copy. A null (`None`) key or value is never
/// passed to a serializer: it stays null, as with Kafka's serializers. The serializer may add
/// headers to the record.
///
/// ```
/// use embroker::{Bytes, Header, SerdeError, Serializer};
/// /// Upper-cases on the way out.
/// struct Shout;
/// impl Serializer<String> for Shout {
///     fn serialize(&self, _topic: &str, _headers: &mut Vec<Header>, data: String)
///         -> Result<Bytes, SerdeError> {
///         Ok(Bytes::from(data.to_uppercase()))
///     }
/// }
/// let bytes = Shout.serialize("t", &mut Vec::new(), "hi".to_string())?;
/// assert_eq!(bytes, "HI");
/// # Ok::<(), SerdeError>(())
/// ```
pub trait Serializer<T> {
    /// The bytes of `data`, a key or value of a record for `topic`.
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Vec<Header>,
        data: T,
    ) -> Result<Bytes, SerdeError>;
}

/// Turns a record's key or value bytes into a `T`. Kafka's `Deserializer<T>`:
/// `deserialize(topic, headers, data)`.
///
/// `data` is a slice of the buffer the record was read into (no copy so far); a null key or
/// value is never passed to a deserializer: it stays `None`.
///
/// ```
/// use embroker::{Builtin, Bytes, Deserializer};
/// let n: i32 = Builtin.deserialize("t", &[], Bytes::from_static(&[0, 0, 1, 0]))?;
/// assert_eq!(n, 256); // big-endian, as Kafka's IntegerDeserializer
/// let short: Result<i32, _> = Builtin.deserialize("t", &[], Bytes::from_static(&[1, 0]));
/// assert!(short.is_err());
/// # Ok::<(), embroker::SerdeError>(())
/// ```
pub trait Deserializer<T> {
    /// The `T` in `data`, a key or value of a record of `topic`.
    fn deserialize(&self, topic: &str, headers: &[Header], data: Bytes) -> Result<T, SerdeError>;
}

/// Which part of a record a serializer or deserializer failed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordPart {
    /// The record's key.
    Key,
    /// The record's value.
    Value,
}

impl fmt::Display for RecordPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordPart::Key => "key",
            RecordPart::Value => "value",
        })
    }
}

/// The encodings of Kafka's built-in serializers and deserializers, in one zero-sized type: the
/// default of the typed handles.
///
/// | Type | Bytes | Kafka's class |
/// |---|---|---|
/// | `String`, `&str` | UTF-8 | `StringSerializer` |
/// | `Vec<u8>`, `&[u8]` | as they are | `ByteArraySerializer` |
/// | [`Bytes`] | as they are, no copy either way | `BytesSerializer` |
/// | `i16`, `i32`, `i64` | 2, 4, 8 bytes, big-endian two's complement | `ShortSerializer`, `IntegerSerializer`, `LongSerializer` |
/// | `u16`, `u32`, `u64` | 2, 4, 8 bytes, big-endian | (none; the same layout) |
/// | `f32`, `f64` | 4, 8 bytes, big-endian IEEE 754 | `FloatSerializer`, `DoubleSerializer` |
///
/// `&str` and `&[u8]` serialize only (copied, as Kafka copies); read them as `String` and
/// `Vec<u8>` (or `Bytes`). Deserializing fails on a fixed-width number of the wrong length
/// (Kafka's "Size of data received by IntegerDeserializer is not 4") and on a `String` that
/// is not UTF-8 (Java would substitute U+FFFD; read `Vec<u8>` to accept anything).
///
/// ```
/// use embroker::{Builtin, Bytes, Deserializer, Serializer};
/// let bytes = Builtin.serialize("t", &mut Vec::new(), 258i16)?;
/// assert_eq!(&bytes[..], &[1, 2]);
/// let text: String = Builtin.deserialize("t", &[], Bytes::from_static(b"caf\xc3\xa9"))?;
/// assert_eq!(text, "café");
/// # Ok::<(), embroker::SerdeError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Builtin;

impl Serializer<Bytes> for Builtin {
    #[inline]
    fn serialize(&self, _: &str, _: &mut Vec<Header>, data: Bytes) -> Result<Bytes, SerdeError> {
        Ok(data)
    }
}

impl Deserializer<Bytes> for Builtin {
    #[inline]
    fn deserialize(&self, _: &str, _: &[Header], data: Bytes) -> Result<Bytes, SerdeError> {
        Ok(data)
    }
}

impl Serializer<Vec<u8>> for Builtin {
    #[inline]
    fn serialize(&self, _: &str, _: &mut Vec<Header>, data: Vec<u8>) -> Result<Bytes, SerdeError> {
        Ok(Bytes::from(data))
    }
}

impl Deserializer<Vec<u8>> for Builtin {
    #[inline]
    fn deserialize(&self, _: &str, _: &[Header], data: Bytes) -> Result<Vec<u8>, SerdeError> {
        Ok(Vec::from(data))
    }
}

impl Serializer<&[u8]> for Builtin {
    #[inline]
    fn serialize(&self, _: &str, _: &mut Vec<Header>, data: &[u8]) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(data))
    }
}

impl Serializer<String> for Builtin {
    #[inline]
    fn serialize(&self, _: &str, _: &mut Vec<Header>, data: String) -> Result<Bytes, SerdeError> {
        Ok(Bytes::from(data))
    }
}

impl Serializer<&str> for Builtin {
    #[inline]
    fn serialize(&self, _: &str, _: &mut Vec<Header>, data: &str) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(data.as_bytes()))
    }
}

impl Deserializer<String> for Builtin {
    #[inline]
    fn deserialize(&self, _: &str, _: &[Header], data: Bytes) -> Result<String, SerdeError> {
        Ok(String::from_utf8(Vec::from(data))?)
    }
}

/// A wrong length, for the fixed-width deserializers.
#[derive(Debug)]
struct WrongLength {
    kafka_class: &'static str,
    expected: usize,
    found: usize,
}

impl fmt::Display for WrongLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes where a big-endian {}-byte number was expected (size of data received by \
             {} is not {})",
            self.found, self.expected, self.kafka_class, self.expected
        )
    }
}

impl std::error::Error for WrongLength {}

macro_rules! fixed_width {
    ($($t:ty => $class:literal),* $(,)?) => {$(
        impl Serializer<$t> for Builtin {
            #[inline]
            fn serialize(&self, _: &str, _: &mut Vec<Header>, data: $t)
                -> Result<Bytes, SerdeError> {
                Ok(Bytes::copy_from_slice(&data.to_be_bytes()))
            }
        }

        impl Deserializer<$t> for Builtin {
            #[inline]
            fn deserialize(&self, _: &str, _: &[Header], data: Bytes) -> Result<$t, SerdeError> {
                const WIDTH: usize = std::mem::size_of::<$t>();
                let bytes: [u8; WIDTH] = data[..].try_into().map_err(|_| WrongLength {
                    kafka_class: $class,
                    expected: WIDTH,
                    found: data.len(),
                })?;
                Ok(<$t>::from_be_bytes(bytes))
            }
        }
    )*};
}

fixed_width! {
    i16 => "ShortDeserializer",
    i32 => "IntegerDeserializer",
    i64 => "LongDeserializer",
    u16 => "a 2-byte deserializer",
    u32 => "a 4-byte deserializer",
    u64 => "an 8-byte deserializer",
    f32 => "FloatDeserializer",
    f64 => "DoubleDeserializer",
}

/// JSON through `serde_json` (feature `serde`): any `T: Serialize` out, any
/// `T: DeserializeOwned` in. The counterpart of the JSON serializers Kafka users plug in.
///
/// ```
/// use embroker::{Bytes, Deserializer, Json, Serializer};
/// let json = Json::<Vec<u32>>::new();
/// let bytes = json.serialize("t", &mut Vec::new(), vec![1, 2])?;
/// assert_eq!(bytes, "[1,2]");
/// assert_eq!(json.deserialize("t", &[], bytes)?, vec![1, 2]);
/// assert!(json.deserialize("t", &[], Bytes::from_static(b"{")).is_err());
/// # Ok::<(), embroker::SerdeError>(())
/// ```
#[cfg(feature = "serde")]
pub struct Json<T>(std::marker::PhantomData<fn(T) -> T>);

#[cfg(feature = "serde")]
impl<T> Json<T> {
    /// The JSON serializer and deserializer of `T`.
    pub const fn new() -> Self {
        Json(std::marker::PhantomData)
    }
}

// Written out rather than derived: derives would require `T: Default`, `T: Clone`, ...
#[cfg(feature = "serde")]
impl<T> Default for Json<T> {
    fn default() -> Self {
        Json::new()
    }
}

#[cfg(feature = "serde")]
impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        *self
    }
}

#[cfg(feature = "serde")]
impl<T> Copy for Json<T> {}

#[cfg(feature = "serde")]
impl<T> fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Json<{}>", std::any::type_name::<T>())
    }
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize> Serializer<T> for Json<T> {
    fn serialize(&self, _: &str, _: &mut Vec<Header>, data: T) -> Result<Bytes, SerdeError> {
        Ok(Bytes::from(serde_json::to_vec(&data)?))
    }
}

#[cfg(feature = "serde")]
impl<T: serde::de::DeserializeOwned> Deserializer<T> for Json<T> {
    fn deserialize(&self, _: &str, _: &[Header], data: Bytes) -> Result<T, SerdeError> {
        Ok(serde_json::from_slice(&data)?)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn round_trip<T>(data: T) -> T
    where
        T: Clone,
        Builtin: Serializer<T> + Deserializer<T>,
    {
        let bytes = Builtin.serialize("t", &mut Vec::new(), data).unwrap();
        Builtin.deserialize("t", &[], bytes).unwrap()
    }

    #[test]
    fn integers_are_big_endian_fixed_width_as_kafka_writes_them() {
        // Kafka's IntegerSerializer(0x01020304) and LongSerializer(-2) bytes.
        let b = Builtin
            .serialize("t", &mut Vec::new(), 0x0102_0304i32)
            .unwrap();
        assert_eq!(&b[..], &[1, 2, 3, 4]);
        let b = Builtin.serialize("t", &mut Vec::new(), -2i64).unwrap();
        assert_eq!(&b[..], &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        let b = Builtin.serialize("t", &mut Vec::new(), 1.0f64).unwrap();
        assert_eq!(&b[..], &[0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_wrong_length_is_an_error_naming_kafkas_class() {
        for len in [0usize, 3, 5, 8] {
            let r: Result<i32, _> = Builtin.deserialize("t", &[], Bytes::from(vec![0u8; len]));
            let text = r.unwrap_err().to_string();
            assert!(text.contains("IntegerDeserializer is not 4"), "{text}");
            assert!(text.starts_with(&format!("{len} bytes")), "{text}");
        }
        let r: Result<i64, _> = Builtin.deserialize("t", &[], Bytes::from_static(&[0; 4]));
        assert!(r.is_err());
    }

    #[test]
    fn bytes_pass_through_without_a_copy() {
        let data = Bytes::from(vec![7u8; 64]);
        let at = data.as_ptr();
        let out = Builtin.serialize("t", &mut Vec::new(), data).unwrap();
        assert_eq!(out.as_ptr(), at);
        let back: Bytes = Builtin.deserialize("t", &[], out).unwrap();
        assert_eq!(back.as_ptr(), at);
        let s = String::from("no copy");
        let at = s.as_ptr();
        assert_eq!(
            Builtin.serialize("t", &mut Vec::new(), s).unwrap().as_ptr(),
            at
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_for_string() {
        let r: Result<String, _> = Builtin.deserialize("t", &[], Bytes::from_static(b"\xff"));
        assert!(r.is_err());
        let raw: Vec<u8> = Builtin
            .deserialize("t", &[], Bytes::from_static(b"\xff"))
            .unwrap();
        assert_eq!(raw, b"\xff");
        assert_eq!(
            Builtin.serialize("t", &mut Vec::new(), "é").unwrap(),
            "é".as_bytes()
        );
    }

    proptest! {
        #[test]
        fn fixed_width_round_trips(a: i16, b: i32, c: i64, d: u16, e: u32, f: u64) {
            prop_assert_eq!(round_trip(a), a);
            prop_assert_eq!(round_trip(b), b);
            prop_assert_eq!(round_trip(c), c);
            prop_assert_eq!(round_trip(d), d);
            prop_assert_eq!(round_trip(e), e);
            prop_assert_eq!(round_trip(f), f);
        }

        #[test]
        fn floats_round_trip_bit_for_bit(a: f32, b: f64) {
            prop_assert_eq!(round_trip(a).to_bits(), a.to_bits());
            prop_assert_eq!(round_trip(b).to_bits(), b.to_bits());
        }

        #[test]
        fn strings_and_bytes_round_trip(s: String, v: Vec<u8>) {
            prop_assert_eq!(round_trip(s.clone()), s.clone());
            prop_assert_eq!(round_trip(v.clone()), v.clone());
            let from_str: String = Builtin
                .deserialize("t", &[], Builtin.serialize("t", &mut Vec::new(), s.as_str()).unwrap())
                .unwrap();
            prop_assert_eq!(from_str, s);
            let b = Bytes::from(v.clone());
            prop_assert_eq!(round_trip(b), v);
        }

        #[test]
        fn integers_decode_only_from_their_width(v in proptest::collection::vec(any::<u8>(), 0..12)) {
            let r: Result<i32, _> = Builtin.deserialize("t", &[], Bytes::from(v.clone()));
            prop_assert_eq!(r.is_ok(), v.len() == 4);
            let r: Result<i64, _> = Builtin.deserialize("t", &[], Bytes::from(v.clone()));
            prop_assert_eq!(r.is_ok(), v.len() == 8);
            let r: Result<i16, _> = Builtin.deserialize("t", &[], Bytes::from(v.clone()));
            prop_assert_eq!(r.is_ok(), v.len() == 2);
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_round_trips_and_reports_bad_input() {
        let json = Json::<std::collections::BTreeMap<String, Vec<i64>>>::new();
        let mut m = std::collections::BTreeMap::new();
        m.insert("a".to_string(), vec![1, -2]);
        let bytes = json.serialize("t", &mut Vec::new(), m.clone()).unwrap();
        assert_eq!(bytes, r#"{"a":[1,-2]}"#);
        assert_eq!(json.deserialize("t", &[], bytes).unwrap(), m);
        assert!(json
            .deserialize("t", &[], Bytes::from_static(b"[1]"))
            .is_err());
    }
}
