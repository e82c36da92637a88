//! The one place that reads the system clock.
//!
//! Log logic (retention, segment.ms, LogAppendTime), producers (linger) and groups (session
//! expiry) take time from a [`Clock`], so tests can replace it. Wall time is milliseconds since
//! the Unix epoch, as Kafka's timestamps are.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            // Seconds and milliseconds apart: `as_millis` divides a u128, which showed in the
            // producer's profile (it reads the clock for every record).
            Ok(d) => i64::try_from(d.as_secs())
                .unwrap_or(i64::MAX / 1_000)
                .saturating_mul(1_000)
                .saturating_add(i64::from(d.subsec_millis())),
            // A clock set before 1970 is a broken machine; time zero keeps arithmetic sane.
            Err(_) => 0,
        }
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

    /// Moves the clock forward (or back, with a negative delta).
    pub fn advance_ms(&self, delta_ms: i64) {
        self.now_ms.fetch_add(delta_ms, Ordering::SeqCst);
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
