//! Which segments retention deletes: a pure function of segment facts, config and time.
//!
//! Kafka's rules (`UnifiedLog.deleteOldSegments`): walk segments oldest first and stop at the
//! first that does not qualify, so deletion is always a prefix. By size: while the log minus the
//! segment would still be at least `retention.bytes`. By time: while the segment's newest record
//! is older than `retention.ms`. An empty last segment is never deleted; the active segment may
//! be, in which case the log rolls a fresh empty segment first.

use crate::config::TopicConfig;

/// The facts retention needs about one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentFacts {
    pub size: u64,
    /// Newest record timestamp (the file's last-modified time when the segment holds no
    /// valid one, as Kafka's `largestTimestamp`); `None` for an empty segment.
    pub max_timestamp: Option<i64>,
}

/// How many of the oldest segments to delete (a prefix of `segments`, oldest first).
pub(crate) fn deletable_prefix(
    segments: &[SegmentFacts],
    config: &TopicConfig,
    now_ms: i64,
) -> usize {
    if !config.cleanup_policy.deletes() {
        return 0;
    }
    let by_size = if config.retention_bytes < 0 {
        0
    } else {
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let mut excess = total.saturating_sub(config.retention_bytes as u64) as i128;
        let mut n = 0;
        for s in segments {
            if excess - i128::from(s.size) < 0 {
                break;
            }
            excess -= i128::from(s.size);
            n += 1;
        }
        n
    };
    let by_time = if config.retention_ms < 0 {
        0
    } else {
        segments
            .iter()
            .take_while(|s| match s.max_timestamp {
                Some(ts) => now_ms.saturating_sub(ts) > config.retention_ms,
                // An empty segment (left by compaction) holds nothing to keep: it must not
                // shield the expired segments after it.
                None => s.size == 0,
            })
            .count()
    };
    let mut n = by_size.max(by_time);
    // Never delete an empty last segment (nothing to gain, and the log needs one).
    if n == segments.len() && segments.last().is_some_and(|s| s.size == 0) {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(size: u64, ts: i64) -> SegmentFacts {
        SegmentFacts {
            size,
            max_timestamp: Some(ts),
        }
    }

    #[test]
    fn time_deletes_a_prefix_only() {
        let cfg = TopicConfig::default().retention_ms(1000);
        let segs = [seg(10, 0), seg(10, 5000), seg(10, 0), seg(10, 9000)];
        assert_eq!(deletable_prefix(&segs, &cfg, 5500), 1); // stops at the young second segment
        assert_eq!(deletable_prefix(&segs, &cfg, 100_000), 4); // all, the active one included
    }

    #[test]
    fn size_never_shrinks_below_the_limit() {
        let cfg = TopicConfig::default().retention_ms(-1).retention_bytes(25);
        let segs = [seg(10, 0), seg(10, 0), seg(10, 0), seg(10, 0)];
        assert_eq!(deletable_prefix(&segs, &cfg, 0), 1); // 40 -> 30 (not 20)
        let cfg = cfg.retention_bytes(0);
        assert_eq!(deletable_prefix(&segs, &cfg, 0), 4);
    }

    #[test]
    fn empty_last_segment_and_compact_only_are_kept() {
        let cfg = TopicConfig::default().retention_ms(0);
        let segs = [
            seg(10, 0),
            SegmentFacts {
                size: 0,
                max_timestamp: None,
            },
        ];
        assert_eq!(deletable_prefix(&segs, &cfg, 10), 1);
        let cfg = cfg.cleanup_policy(crate::CleanupPolicy::Compact);
        assert_eq!(deletable_prefix(&segs, &cfg, 10), 0);
    }
}
