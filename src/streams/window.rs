//! Windows: [`TimeWindows`] (tumbling and hopping, with a grace period), [`SessionWindows`]
//! (merged by an inactivity gap), [`SlidingWindows`] (a window per record, `dsl/sliding.rs`), the [`Window`] a record falls in, the [`Windowed`] key of a
//! windowed aggregation, and [`TimeWindowedSerde`] and [`SessionWindowedSerde`], Kafka's byte
//! layouts of windowed keys.
//!
//! Invariants: a time window is `[start, end)` with `start` a multiple of the advance
//! (windows are aligned to the epoch, as Kafka's); a record at `t` belongs to every time
//! window with `start <= t < end`, and never to a window starting before 0. A session window
//! is `[start, end]`, the first and last timestamps of its records.

use std::time::Duration;

use super::serdes::Serde;
use crate::error::{Error, Result};
use crate::typed::SerdeError;
use crate::types::{Bytes, Header};

/// One time window, `[start, end)` in milliseconds (Kafka's `Window`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// The first millisecond in the window.
    pub start: i64,
    /// The first millisecond after it.
    pub end: i64,
}

/// A key and the window its aggregate is for (Kafka's `Windowed<K>`). Ordered by key, then
/// window.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

/// Fixed-size windows that advance by a fixed step: tumbling when the step is the size,
/// hopping (overlapping) when smaller (Kafka's `TimeWindows`). A record later than the grace
/// period after its window's end (by stream time) is dropped and counted.
///
/// ```
/// use std::time::Duration;
/// use embroker::streams::TimeWindows;
/// let tumbling = TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10));
/// assert_eq!(tumbling.windows_for(61_000).iter().map(|w| w.start).collect::<Vec<_>>(), [60_000]);
/// let hopping = TimeWindows::of_size_with_no_grace(Duration::from_secs(10)).advance_by(Duration::from_secs(5));
/// assert_eq!(hopping.windows_for(12_000).iter().map(|w| w.start).collect::<Vec<_>>(), [5_000, 10_000]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
    grace_ms: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl TimeWindows {
    /// Tumbling windows of `size` with no grace period: a record is dropped once stream time
    /// has passed its window's end (Kafka's `ofSizeWithNoGrace`).
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        TimeWindows::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` that accept records up to `grace` after their end, by
    /// stream time (Kafka's `ofSizeAndGrace`).
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        TimeWindows {
            size_ms: millis(size),
            advance_ms: millis(size),
            grace_ms: millis(grace),
        }
    }

    /// Hopping windows: a new window every `advance`, which must be at least 1 ms and at most
    /// the size (checked when the topology is built) (Kafka's `advanceBy`).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance_ms = millis(advance);
        self
    }

    /// The window size in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// The grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// Check the sizes, as Kafka does when the windows are made.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.size_ms < 1 {
            return Err(Error::InvalidTopology {
                reason: "TimeWindows: the window size must be at least 1 ms".to_string(),
            });
        }
        if self.advance_ms < 1 || self.advance_ms > self.size_ms {
            return Err(Error::InvalidTopology {
                reason: format!(
                    "TimeWindows: the advance ({} ms) must be at least 1 ms and at most the window \
                     size ({} ms)",
                    self.advance_ms, self.size_ms
                ),
            });
        }
        Ok(())
    }

    /// The windows a record at `timestamp` belongs to, earliest first (Kafka's
    /// `windowsFor`); none for a negative timestamp or invalid windows.
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        if timestamp < 0 || self.validate().is_err() {
            return Vec::new();
        }
        let first = timestamp
            .saturating_sub(self.size_ms)
            .saturating_add(self.advance_ms)
            .max(0);
        let mut start = first / self.advance_ms * self.advance_ms;
        let mut windows = Vec::new();
        while start <= timestamp {
            windows.push(Window {
                start,
                end: start.saturating_add(self.size_ms),
            });
            start = start.saturating_add(self.advance_ms);
            if start == i64::MAX {
                break;
            }
        }
        windows
    }
}

/// Kafka's `TimeWindowedSerde`: a windowed key as the inner key's bytes followed by the
/// window start, 8 bytes big-endian; the end is the start plus the window size, which the
/// reader must know (as with Kafka's `TimeWindowedDeserializer`).
#[derive(Clone, Copy, Debug)]
pub struct TimeWindowedSerde<S> {
    inner: S,
    window_size_ms: i64,
}

impl<S> TimeWindowedSerde<S> {
    /// Windowed keys whose inner keys use `inner`, for windows of `window_size`.
    pub fn new(inner: S, window_size: Duration) -> Self {
        TimeWindowedSerde {
            inner,
            window_size_ms: millis(window_size),
        }
    }
}

/// Windowed key bytes shorter than the 8-byte window start.
#[derive(Debug)]
struct TooShort(usize);

impl std::fmt::Display for TooShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes: a windowed key ends with its 8-byte window start (a session-windowed \
             key with its end and start, 16 bytes)",
            self.0
        )
    }
}

impl std::error::Error for TooShort {}

impl<K, S: Serde<K>> Serde<Windowed<K>> for TimeWindowedSerde<S> {
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Vec<Header>,
        data: Windowed<K>,
    ) -> Result<Option<Bytes>, SerdeError> {
        let key = self.inner.serialize(topic, headers, data.key)?;
        let mut bytes = key.map(Vec::from).unwrap_or_default();
        bytes.extend_from_slice(&data.window.start.to_be_bytes());
        Ok(Some(Bytes::from(bytes)))
    }

    fn deserialize(
        &self,
        topic: &str,
        headers: &[Header],
        data: Option<Bytes>,
    ) -> Result<Windowed<K>, SerdeError> {
        let bytes = data.unwrap_or_default();
        let split = bytes
            .len()
            .checked_sub(8)
            .ok_or_else(|| Box::new(TooShort(bytes.len())))?;
        let mut start = [0u8; 8];
        start.copy_from_slice(&bytes[split..]);
        let start = i64::from_be_bytes(start);
        let key = self
            .inner
            .deserialize(topic, headers, Some(bytes.slice(..split)))?;
        Ok(Windowed {
            key,
            window: Window {
                start,
                end: start.saturating_add(self.window_size_ms),
            },
        })
    }
}

/// Sessions: a key's records closer together than the inactivity gap form one window, which
/// grows, and merges with its neighbours, as records arrive (Kafka's `SessionWindows`). A
/// record whose merged session ended more than the grace period before stream time is
/// dropped and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionWindows {
    gap_ms: i64,
    grace_ms: i64,
}

impl SessionWindows {
    /// Sessions closed by `gap` of inactivity, with no grace period (Kafka's
    /// `ofInactivityGapWithNoGrace`).
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        SessionWindows::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions closed by `gap` of inactivity that accept records up to `grace` after their
    /// end, by stream time (Kafka's `ofInactivityGapAndGrace`).
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap_ms: millis(gap),
            grace_ms: millis(grace),
        }
    }

    /// The inactivity gap in milliseconds.
    pub fn inactivity_gap_ms(&self) -> i64 {
        self.gap_ms
    }

    /// The grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// Check the gap, as Kafka does when the windows are made.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.gap_ms < 1 {
            return Err(Error::InvalidTopology {
                reason: "SessionWindows: the inactivity gap must be at least 1 ms".to_string(),
            });
        }
        Ok(())
    }
}

/// Windows that slide with the records (Kafka's `SlidingWindows`): each window spans a
/// fixed time difference, both ends inclusive, and windows exist only where a record starts
/// or ends one: a record at `t` makes `[t - difference, t]` and, once a later record of its
/// key comes within the difference, `[t + 1, t + 1 + difference]`. A record later than the
/// grace period after a window's end (by stream time) is not added to it, and counted.
///
/// ```
/// use std::time::Duration;
/// use embroker::streams::SlidingWindows;
/// let w = SlidingWindows::of_time_difference_and_grace(Duration::from_millis(10), Duration::from_millis(5));
/// assert_eq!((w.time_difference_ms(), w.grace_ms()), (10, 5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlidingWindows {
    difference_ms: i64,
    grace_ms: i64,
}

impl SlidingWindows {
    /// Windows of `difference`, closed as soon as stream time passes their end (Kafka's
    /// `ofTimeDifferenceWithNoGrace`).
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        SlidingWindows::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Windows of `difference` that accept records up to `grace` after their end, by stream
    /// time (Kafka's `ofTimeDifferenceAndGrace`).
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows {
            difference_ms: millis(difference),
            grace_ms: millis(grace),
        }
    }

    /// The largest time difference between two records of one window, in milliseconds: the
    /// window size.
    pub fn time_difference_ms(&self) -> i64 {
        self.difference_ms
    }

    /// The grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// Check the sizes: the store keeps windows for twice the difference plus the grace,
    /// which must be a number of milliseconds.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.difference_ms >= i64::MAX / 4 || self.grace_ms >= i64::MAX / 2 {
            return Err(Error::InvalidTopology {
                reason: format!(
                    "SlidingWindows: the time difference ({} ms) and grace ({} ms) are too large",
                    self.difference_ms, self.grace_ms
                ),
            });
        }
        Ok(())
    }
}

/// Kafka's `SessionWindowedSerde`: a session-windowed key as the inner key's bytes followed by
/// the window end and then its start, each 8 bytes big-endian.
#[derive(Clone, Copy, Debug)]
pub struct SessionWindowedSerde<S>(pub S);

impl<K, S: Serde<K>> Serde<Windowed<K>> for SessionWindowedSerde<S> {
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Vec<Header>,
        data: Windowed<K>,
    ) -> Result<Option<Bytes>, SerdeError> {
        let key = self.0.serialize(topic, headers, data.key)?;
        let mut bytes = key.map(Vec::from).unwrap_or_default();
        bytes.extend_from_slice(&data.window.end.to_be_bytes());
        bytes.extend_from_slice(&data.window.start.to_be_bytes());
        Ok(Some(Bytes::from(bytes)))
    }

    fn deserialize(
        &self,
        topic: &str,
        headers: &[Header],
        data: Option<Bytes>,
    ) -> Result<Windowed<K>, SerdeError> {
        let bytes = data.unwrap_or_default();
        let split = bytes
            .len()
            .checked_sub(16)
            .ok_or_else(|| Box::new(TooShort(bytes.len())))?;
        let mut end = [0u8; 8];
        end.copy_from_slice(&bytes[split..split + 8]);
        let mut start = [0u8; 8];
        start.copy_from_slice(&bytes[split + 8..]);
        let key = self
            .0
            .deserialize(topic, headers, Some(bytes.slice(..split)))?;
        Ok(Windowed {
            key,
            window: Window {
                start: i64::from_be_bytes(start),
                end: i64::from_be_bytes(end),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Builtin;

    #[test]
    fn bad_sizes_are_refused() {
        let ok = TimeWindows::of_size_with_no_grace(Duration::from_millis(10));
        assert!(ok.validate().is_ok());
        assert!(TimeWindows::of_size_with_no_grace(Duration::ZERO)
            .validate()
            .is_err());
        assert!(ok.advance_by(Duration::ZERO).validate().is_err());
        assert!(ok.advance_by(Duration::from_millis(11)).validate().is_err());
        assert!(ok.windows_for(-1).is_empty());
        assert_eq!(ok.windows_for(0), [Window { start: 0, end: 10 }]);
    }

    #[test]
    fn windowed_keys_are_kafkas_bytes() {
        let serde = TimeWindowedSerde::new(Builtin, Duration::from_millis(100));
        let w = Windowed {
            key: "k".to_string(),
            window: Window {
                start: 258,
                end: 358,
            },
        };
        let bytes = serde
            .serialize("t", &mut Vec::new(), w.clone())
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[..], b"k\0\0\0\0\0\0\x01\x02");
        assert_eq!(serde.deserialize("t", &[], Some(bytes)).unwrap(), w);
        let short: Result<Windowed<String>, _> =
            serde.deserialize("t", &[], Some(Bytes::from_static(b"abc")));
        assert!(short.unwrap_err().to_string().contains("3 bytes"));
    }

    #[test]
    fn session_windowed_keys_are_kafkas_bytes() {
        let serde = SessionWindowedSerde(Builtin);
        let w = Windowed {
            key: "k".to_string(),
            window: Window { start: 1, end: 2 },
        };
        let bytes = serde
            .serialize("t", &mut Vec::new(), w.clone())
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[..], b"k\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\x01");
        assert_eq!(serde.deserialize("t", &[], Some(bytes)).unwrap(), w);
        let short: Result<Windowed<String>, _> =
            serde.deserialize("t", &[], Some(Bytes::from_static(b"0123456789")));
        assert!(short.is_err());
        assert!(
            SessionWindows::of_inactivity_gap_with_no_grace(Duration::ZERO)
                .validate()
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn a_record_is_in_exactly_the_windows_that_contain_it(
            size in 1i64..50, advance_pick in 1i64..50, t in 0i64..10_000,
        ) {
            let advance = advance_pick.min(size);
            let w = TimeWindows::of_size_with_no_grace(Duration::from_millis(size as u64))
                .advance_by(Duration::from_millis(advance as u64));
            let got = w.windows_for(t);
            let want: Vec<Window> = (0..=t / advance)
                .map(|i| Window { start: i * advance, end: i * advance + size })
                .filter(|win| win.start <= t && t < win.end)
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
