//! The one place that reads the system clock.
//!
//! Log logic (retention, segment.ms, LogAppendTime), producers (linger) and groups (session
//! expiry) take time from a [`Clock`], so tests can replace it. Wall time is milliseconds since
//! the Unix epoch, as Kafka's timestamps are.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// `SystemTime::now()` in whole milliseconds. The conversion from `SystemTime` (a
    /// subtraction with checks, then a division) cost about as much as the clock read itself
    /// (30 ns together on the project's VM, read per record by the producer), so each thread
    /// keeps the millisecond it last converted and the instants where it begins and ends: a read
    /// inside that millisecond costs the clock read and two comparisons (19 ns). The answer is
    /// the same either way, also when the clock steps back.
    #[inline]
    fn now_ms(&self) -> i64 {
        let now = SystemTime::now();
        LAST_MS
            .try_with(|last| {
                let (start, end, ms) = last.get();
                if start <= now && now < end {
                    return ms;
                }
                let ms = millis_since_epoch(now);
                let start = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                last.set((start, start + Duration::from_millis(1), ms));
                ms
            })
            .unwrap_or_else(|_| millis_since_epoch(now))
    }
}

thread_local! {
    /// The millisecond this thread's clock read last converted: its start (inclusive), its end
    /// (exclusive) and its value (see `SystemClock::now_ms`). Empty until the first read.
    static LAST_MS: Cell<(SystemTime, SystemTime, i64)> =
        const { Cell::new((UNIX_EPOCH, UNIX_EPOCH, 0)) };
}

/// `t` in whole milliseconds since the Unix epoch.
fn millis_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        // Seconds and milliseconds apart: `as_millis` divides a u128.
        Ok(d) => i64::try_from(d.as_secs())
            .unwrap_or(i64::MAX / 1_000)
            .saturating_mul(1_000)
            .saturating_add(i64::from(d.subsec_millis())),
        // A clock set before 1970 is a broken machine; time zero keeps arithmetic sane.
        Err(_) => 0,
    }
}

/// A clock that moves only when told to; for tests of time-driven behaviour.
///
/// ```
/// use embroker::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance_ms(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> Arc<Self> {
        Arc::new(ManualClock {
            now_ms: AtomicI64::new(now_ms),
        })
    }

    /// Moves the clock forward (or back, with a negative delta), saturating at the ends of
    /// `i64`.
    pub fn advance_ms(&self, delta_ms: i64) {
        let _ = self
            .now_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(delta_ms))
            });
    }

    /// Sets the clock.
    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// The shared clock handle passed between layers.
pub type SharedClock = Arc<dyn Clock>;

/// The default clock handle.
pub(crate) fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_reads_whole_milliseconds_of_the_system_time() {
        for _ in 0..100_000 {
            let before = millis_since_epoch(SystemTime::now());
            let read = SystemClock.now_ms();
            let after = millis_since_epoch(SystemTime::now());
            assert!(
                before <= read && read <= after,
                "{before} <= {read} <= {after}"
            );
        }
    }

    #[test]
    fn milliseconds_since_epoch_are_floored() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_999);
        assert_eq!(millis_since_epoch(t), 1_700_000_000_123);
        assert_eq!(millis_since_epoch(UNIX_EPOCH), 0);
        assert_eq!(millis_since_epoch(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
