//! A byte-rate limit for background I/O (the log cleaner's
//! `log.cleaner.io.max.bytes.per.second`), as Kafka's `Throttler` does it: count the bytes,
//! and sleep whenever the count runs ahead of the allowed rate since the start.
//!
//! Sleeps are cut into short waits that check a cancel flag, so closing a broker never waits
//! for a throttled pass.

use std::time::{Duration, Instant};

/// Longest single sleep before the cancel flag is checked again.
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// Paces callers to at most `bytes_per_second`.
#[derive(Debug)]
pub(crate) struct Throttle {
    bytes_per_second: f64,
    started: Instant,
    bytes: f64,
}

impl Throttle {
    /// A throttle starting now; `f64::INFINITY` never sleeps.
    pub(crate) fn new(bytes_per_second: f64) -> Throttle {
        Throttle {
            bytes_per_second,
            started: Instant::now(),
            bytes: 0.0,
        }
    }

    /// Counts `bytes` and sleeps until the average rate since the start is back within the
    /// limit, or `cancelled` says stop. Returns false when cancelled.
    pub(crate) fn pace(&mut self, bytes: usize, cancelled: &dyn Fn() -> bool) -> bool {
        if !self.bytes_per_second.is_finite() {
            return !cancelled();
        }
        self.bytes += bytes as f64;
        let due = Duration::from_secs_f64(self.bytes / self.bytes_per_second);
        loop {
            if cancelled() {
                return false;
            }
            let elapsed = self.started.elapsed();
            if elapsed >= due {
                return true;
            }
            std::thread::sleep((due - elapsed).min(CHECK_EVERY));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate_and_stops_when_cancelled() {
        let mut t = Throttle::new(1_000_000.0);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(t.pace(10_000, &|| false));
        }
        // 100 KB at 1 MB/s: at least 100 ms.
        assert!(start.elapsed() >= Duration::from_millis(100));
        let start = Instant::now();
        assert!(!t.pace(100_000_000, &|| true));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(Throttle::new(f64::INFINITY).pace(usize::MAX, &|| false));
    }
}
