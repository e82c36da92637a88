//! [`JoinWindows`]: how far apart in time two records of a stream-stream join may be, and the
//! grace period after which a window closes (Kafka's `JoinWindows`).
//!
//! Invariants: a left record at `t` joins right records in `[t - before, t + after]`; the
//! window size is `before + after` and the join stores keep records for size + grace (Kafka's
//! retention of join stores); a left/outer join's unmatched record is emitted once the join's
//! stream time passes `t + after + grace` (left) or `t + before + grace` (right), never
//! before (the spurious-result fix of KIP-633, on for every `JoinWindows` here, as for Kafka's
//! non-deprecated constructors).

use std::time::Duration;

use crate::error::{Error, Result};

/// The time bounds of a stream-stream join (Kafka's `JoinWindows`).
///
/// ```
/// use std::time::Duration;
/// use embroker::streams::JoinWindows;
/// let w = JoinWindows::of_time_difference_and_grace(Duration::from_secs(10), Duration::from_secs(2))
///     .after(Duration::from_secs(4));
/// assert_eq!((w.before_ms(), w.after_ms(), w.grace_ms(), w.size_ms()), (10_000, 4_000, 2_000, 14_000));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JoinWindows {
    before_ms: i64,
    after_ms: i64,
    grace_ms: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl JoinWindows {
    /// Records at most `difference` apart join; an unmatched record of a left/outer join is
    /// emitted as soon as its window ends (Kafka's `ofTimeDifferenceWithNoGrace`).
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        JoinWindows::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Records at most `difference` apart join, and the windows accept out-of-order records
    /// for `grace` after they end (Kafka's `ofTimeDifferenceAndGrace`).
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        let ms = millis(difference);
        JoinWindows {
            before_ms: ms,
            after_ms: ms,
            grace_ms: millis(grace),
        }
    }

    /// Join a left record only with right records at most `before` older (Kafka's
    /// `before`).
    pub fn before(mut self, before: Duration) -> Self {
        self.before_ms = millis(before);
        self
    }

    /// Join a left record only with right records at most `after` newer (Kafka's `after`).
    pub fn after(mut self, after: Duration) -> Self {
        self.after_ms = millis(after);
        self
    }

    /// How much older a right record may be than the left one, in milliseconds.
    pub fn before_ms(&self) -> i64 {
        self.before_ms
    }

    /// How much newer a right record may be than the left one, in milliseconds.
    pub fn after_ms(&self) -> i64 {
        self.after_ms
    }

    /// The grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// The window size, `before + after`, in milliseconds (Kafka's `size()`).
    pub fn size_ms(&self) -> i64 {
        self.before_ms.saturating_add(self.after_ms)
    }

    /// Check the bounds, as Kafka does when the windows are made.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.size_ms() < 0 || self.size_ms() == i64::MAX {
            return Err(Error::InvalidTopology {
                reason: format!(
                    "JoinWindows: the window interval (before {} ms + after {} ms) must be a \
                     finite, non-negative number of milliseconds",
                    self.before_ms, self.after_ms
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_kafkas() {
        let w = JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(100));
        assert_eq!((w.before_ms(), w.after_ms(), w.grace_ms()), (100, 100, 0));
        assert_eq!(w.size_ms(), 200);
        assert!(w.validate().is_ok());
        let w = w.before(Duration::ZERO);
        assert_eq!(w.size_ms(), 100);
        assert!(JoinWindows::of_time_difference_with_no_grace(Duration::MAX)
            .validate()
            .is_err());
    }
}
