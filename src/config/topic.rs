//! Per-topic configuration with Kafka's keys and defaults.
//!
//! Defaults are Kafka's except `segment.bytes` (64 MiB instead of 1 GiB): a segment is the unit
//! retention deletes, so an embedded log with Kafka's 1 GiB segments would keep up to 1 GiB per
//! partition past `retention.ms` and `retention.bytes`, which is too much for an application that
//! links the log in, and for a test suite that makes hundreds of topics.

use crate::codec::{Compression, CompressionCodec};
use crate::config::compression::CompressionLevels;
use crate::config::known_keys::{self, Catalogue};
use crate::config::load::{self, IgnoredKeys, KafkaKeys};
use crate::config::properties::{check_range, parse_f64, parse_i32, parse_i64, parse_u32, setters};
use crate::error::{Error, Result};
use crate::types::TimestampType;
use std::path::Path;

/// What happens to old data: deletion by retention, compaction by key, or both.
/// Kafka's `cleanup.policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CleanupPolicy {
    /// Delete whole old segments by `retention.ms` and `retention.bytes` (Kafka's default).
    #[default]
    Delete,
    /// Keep the newest record of every key.
    Compact,
    /// Both: compact, and delete old segments by retention.
    CompactDelete,
}

impl CleanupPolicy {
    /// Kafka's spelling of the value.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    /// True when retention by time and size applies.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// True when the log is compacted.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    fn parse(key: &str, value: &str) -> Result<Self> {
        let mut delete = false;
        let mut compact = false;
        for part in value.split(',').map(str::trim) {
            match part.to_ascii_lowercase().as_str() {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => {
                    return Err(Error::config(
                        key,
                        value,
                        "must be delete, compact, or compact,delete",
                    ))
                }
            }
        }
        Ok(match (compact, delete) {
            (true, true) => CleanupPolicy::CompactDelete,
            (true, false) => CleanupPolicy::Compact,
            _ => CleanupPolicy::Delete,
        })
    }
}

/// A topic's configuration: partition count and Kafka's per-topic settings.
///
/// Build it with chainable setters or from Kafka's property keys; both are checked when the
/// topic is created or altered, and errors name the key.
///
/// ```
/// use embroker::TopicConfig;
/// let typed = TopicConfig::default().partitions(4).retention_ms(60_000);
/// let parsed = TopicConfig::from_properties(&[
///     ("num.partitions", "4"),
///     ("retention.ms", "60000"),
/// ])?;
/// assert_eq!(typed, parsed);
/// assert!(TopicConfig::from_properties(&[("retention.mss", "1")]).is_err());
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TopicConfig {
    /// Number of partitions (`num.partitions`). Default: 1.
    pub partitions: i32,
    /// Roll a new segment when the active one would pass this size (`segment.bytes`).
    /// Default: 64 MiB (Kafka: 1 GiB; see the module docs).
    pub segment_bytes: u32,
    /// Roll a new segment when the active segment's records span more than this
    /// (`segment.ms`, by record timestamps). Default: 7 days.
    pub segment_ms: i64,
    /// Delete closed segments whose newest record is older than this (`retention.ms`);
    /// -1 keeps data forever. Default: 7 days.
    pub retention_ms: i64,
    /// Delete the oldest segments while the partition is larger than this (`retention.bytes`);
    /// -1 means no limit. Default: -1.
    pub retention_bytes: i64,
    /// `cleanup.policy`. Default: delete.
    pub cleanup_policy: CleanupPolicy,
    /// Largest record batch the log accepts, in bytes (`max.message.bytes`).
    /// Default: 1048588 (1 MiB + 12), as Kafka.
    pub max_message_bytes: u32,
    /// Bytes of log between offset-index entries (`index.interval.bytes`). Default: 4096.
    pub index_interval_bytes: u32,
    /// Fsync the log after this many records (`flush.messages`). Default: never (i64::MAX).
    pub flush_messages: i64,
    /// Fsync the log when this long has passed since the last fsync (`flush.ms`).
    /// Default: never (i64::MAX).
    pub flush_ms: i64,
    /// Whose timestamp is stored (`message.timestamp.type`). Default: CreateTime.
    pub timestamp_type: TimestampType,
    /// What the log stores batches as (`compression.type`). Default:
    /// [`TopicCompression::Producer`], each batch as its producer compressed it.
    pub compression_type: TopicCompression,
    /// Each codec's level when the topic recompresses (`compression.gzip.level`,
    /// `compression.lz4.level`, `compression.zstd.level`). Default: Kafka's.
    pub compression_levels: CompressionLevels,
    /// Under CreateTime, the most a record's timestamp may lie before the broker's time
    /// (`message.timestamp.before.max.ms`). Default: no bound (i64::MAX), as Kafka.
    pub message_timestamp_before_max_ms: i64,
    /// Under CreateTime, the most a record's timestamp may lie after the broker's time
    /// (`message.timestamp.after.max.ms`). Default: no bound (i64::MAX), as Kafka.
    pub message_timestamp_after_max_ms: i64,
    /// Compact a partition when its dirty ratio passes this (`min.cleanable.dirty.ratio`).
    /// Default: 0.5.
    pub min_cleanable_dirty_ratio: f64,
    /// Keep tombstones this long after cleaning (`delete.retention.ms`). Default: 1 day.
    pub delete_retention_ms: i64,
    /// Never compact records younger than this (`min.compaction.lag.ms`). Default: 0.
    pub min_compaction_lag_ms: i64,
    /// Force compaction of records older than this (`max.compaction.lag.ms`).
    /// Default: never (i64::MAX).
    pub max_compaction_lag_ms: i64,

    /// The keys given that were accepted and ignored ([`Self::ignored_keys`]).
    ignored: IgnoredKeys,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            ignored: IgnoredKeys::default(),
            partitions: 1,
            segment_bytes: 64 * 1024 * 1024,
            segment_ms: 7 * DAY_MS,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            max_message_bytes: 1024 * 1024 + 12,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            timestamp_type: TimestampType::CreateTime,
            compression_type: TopicCompression::Producer,
            compression_levels: CompressionLevels::default(),
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            delete_retention_ms: DAY_MS,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

/// What a topic stores its batches as (`compression.type`, Kafka's `BrokerCompressionType`).
///
/// ```
/// use embroker::codec::Compression;
/// use embroker::{TopicCompression, TopicConfig};
///
/// let config = TopicConfig::from_properties(&[("compression.type", "zstd")])?;
/// assert_eq!(config.compression_type, TopicCompression::Codec(Compression::Zstd));
/// assert_eq!(TopicCompression::Codec(Compression::None).name(), "uncompressed");
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TopicCompression {
    /// Keep each batch as its producer compressed it (`producer`).
    #[default]
    Producer,
    /// Store every batch with this codec, recompressing batches that use another
    /// (`uncompressed` for [`Compression::None`], else the codec's name).
    Codec(Compression),
}

impl TopicCompression {
    /// Kafka's name: `producer`, `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            TopicCompression::Producer => "producer",
            TopicCompression::Codec(Compression::None) => "uncompressed",
            TopicCompression::Codec(c) => c.name(),
        }
    }

    /// The value Kafka names `name` (exact, lower case, as Kafka's `BrokerCompressionType`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "producer" => Some(TopicCompression::Producer),
            "uncompressed" => Some(TopicCompression::Codec(Compression::None)),
            "none" => None,
            other => other.parse().ok().map(TopicCompression::Codec),
        }
    }
}

/// Most partitions one topic may have. Kafka has no hard limit; a directory and open files per
/// partition make a bound sensible in one process.
pub(crate) const PARTITIONS_MAX: i32 = 10_000;

impl TopicConfig {
    /// The keys `from_properties` accepts, in the order `to_properties` writes them.
    pub const KEYS: &'static [&'static str] = &[
        "num.partitions",
        "segment.bytes",
        "segment.ms",
        "retention.ms",
        "retention.bytes",
        "cleanup.policy",
        "max.message.bytes",
        "index.interval.bytes",
        "flush.messages",
        "flush.ms",
        "message.timestamp.type",
        "message.timestamp.before.max.ms",
        "message.timestamp.after.max.ms",
        "compression.type",
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.zstd.level",
        "min.cleanable.dirty.ratio",
        "delete.retention.ms",
        "min.compaction.lag.ms",
        "max.compaction.lag.ms",
    ];

    /// Keys Kafka defines for topics that `from_properties` and `from_file` accept and ignore,
    /// each with the reason it cannot apply in one process.
    pub const IGNORED_KEYS: &'static [(&'static str, &'static str)] = known_keys::TOPIC_IGNORED;

    setters! {
        /// Sets `num.partitions`.
        partitions: i32,
        /// Sets `segment.bytes`.
        segment_bytes: u32,
        /// Sets `segment.ms`.
        segment_ms: i64,
        /// Sets `retention.ms` (-1: forever).
        retention_ms: i64,
        /// Sets `retention.bytes` (-1: no limit).
        retention_bytes: i64,
        /// Sets `cleanup.policy`.
        cleanup_policy: CleanupPolicy,
        /// Sets `max.message.bytes`.
        max_message_bytes: u32,
        /// Sets `index.interval.bytes`.
        index_interval_bytes: u32,
        /// Sets `flush.messages`.
        flush_messages: i64,
        /// Sets `flush.ms`.
        flush_ms: i64,
        /// Sets `message.timestamp.type`.
        timestamp_type: TimestampType,
        /// Sets `compression.type`.
        compression_type: TopicCompression,
        /// Sets `compression.gzip.level`, `compression.lz4.level` and
        /// `compression.zstd.level`.
        compression_levels: CompressionLevels,
        /// Sets `message.timestamp.before.max.ms`.
        message_timestamp_before_max_ms: i64,
        /// Sets `message.timestamp.after.max.ms`.
        message_timestamp_after_max_ms: i64,
        /// Sets `min.cleanable.dirty.ratio`.
        min_cleanable_dirty_ratio: f64,
        /// Sets `delete.retention.ms`.
        delete_retention_ms: i64,
        /// Sets `min.compaction.lag.ms`.
        min_compaction_lag_ms: i64,
        /// Sets `max.compaction.lag.ms`.
        max_compaction_lag_ms: i64,
    }

    /// Kafka's defaults (with 64 MiB segments), from Kafka's keys; unknown keys and bad values
    /// are errors naming the key.
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(props: &[(K, V)]) -> Result<Self> {
        TopicConfig::default().with_properties(props)
    }

    /// This config with the given Kafka keys applied over it (what `alter_topic_config` does).
    pub fn with_properties<K: AsRef<str>, V: AsRef<str>>(self, props: &[(K, V)]) -> Result<Self> {
        load::apply(self, props.iter().map(|(k, v)| (k, v, None)), None)
    }

    /// This library's defaults with the keys of a Java `.properties` file applied over them
    /// (`#`/`!` comments, `=`/`:`/space separators, continuation lines and escapes, as
    /// `java.util.Properties.load`). Keys Kafka defines that cannot apply in one process are
    /// accepted, listed by [`TopicConfig::ignored_keys`] and logged once; librdkafka's aliases are
    /// accepted; any other key is an error naming it, its line and the closest known key.
    ///
    /// ```
    /// use embroker::TopicConfig;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("orders.properties");
    /// std::fs::write(&path, "\
    ///     cleanup.policy=compact\n\
    ///     min.insync.replicas=2\n\
    ///     retention.ms=604800000\n")?;
    /// let config = TopicConfig::from_file(&path)?;
    /// assert_eq!(config.retention_ms, 604_800_000);
    /// assert_eq!(config.ignored_keys(), ["min.insync.replicas"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        load::apply_file(TopicConfig::default(), path.as_ref())
    }

    /// The keys given to this config that it accepted and ignored because they cannot apply in
    /// one process (`bootstrap.servers`, `security.protocol`, ...), as written, in the order
    /// first given. See [`TopicConfig::IGNORED_KEYS`] for every such key and why.
    pub fn ignored_keys(&self) -> &[String] {
        self.ignored.as_slice()
    }

    /// Sets one Kafka key.
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "num.partitions" => self.partitions = parse_i32(key, value, 1, PARTITIONS_MAX)?,
            "segment.bytes" => self.segment_bytes = parse_u32(key, value, 14, i32::MAX as u32)?,
            "segment.ms" => self.segment_ms = parse_i64(key, value, 1, i64::MAX)?,
            "retention.ms" => self.retention_ms = parse_i64(key, value, -1, i64::MAX)?,
            "retention.bytes" => self.retention_bytes = parse_i64(key, value, -1, i64::MAX)?,
            "cleanup.policy" => self.cleanup_policy = CleanupPolicy::parse(key, value)?,
            "max.message.bytes" => {
                self.max_message_bytes = parse_u32(key, value, 0, i32::MAX as u32)?;
            }
            "index.interval.bytes" => {
                self.index_interval_bytes = parse_u32(key, value, 0, i32::MAX as u32)?;
            }
            "flush.messages" => self.flush_messages = parse_i64(key, value, 1, i64::MAX)?,
            "flush.ms" => self.flush_ms = parse_i64(key, value, 0, i64::MAX)?,
            "message.timestamp.type" => {
                self.timestamp_type = match value.trim() {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => {
                        return Err(Error::config(
                            key,
                            value,
                            "must be CreateTime or LogAppendTime",
                        ))
                    }
                };
            }
            "compression.type" => {
                self.compression_type =
                    TopicCompression::from_name(value.trim()).ok_or_else(|| {
                        Error::config(
                            key,
                            value,
                            "must be uncompressed, zstd, lz4, snappy, gzip or producer",
                        )
                    })?;
            }
            "message.timestamp.before.max.ms" => {
                self.message_timestamp_before_max_ms = parse_i64(key, value, 0, i64::MAX)?;
            }
            "message.timestamp.after.max.ms" => {
                self.message_timestamp_after_max_ms = parse_i64(key, value, 0, i64::MAX)?;
            }
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio = parse_f64(key, value, 0.0, 1.0)?;
            }
            "delete.retention.ms" => self.delete_retention_ms = parse_i64(key, value, 0, i64::MAX)?,
            "min.compaction.lag.ms" => {
                self.min_compaction_lag_ms = parse_i64(key, value, 0, i64::MAX)?;
            }
            "max.compaction.lag.ms" => {
                self.max_compaction_lag_ms = parse_i64(key, value, 1, i64::MAX)?;
            }
            _ if self.compression_levels.set(key, value)? => {}
            _ => {
                return Err(Error::config(
                    key,
                    value,
                    Self::CATALOGUE.unknown_reason(key),
                ))
            }
        }
        Ok(())
    }

    /// The codec the log stores batches with; `None` under `compression.type=producer`.
    pub fn compression_codec(&self) -> Option<CompressionCodec> {
        match self.compression_type {
            TopicCompression::Producer => None,
            TopicCompression::Codec(c) => Some(self.compression_levels.codec(c)),
        }
    }

    /// Checks every field against Kafka's bounds; the error names the key.
    pub fn validate(&self) -> Result<()> {
        check_range("num.partitions", self.partitions, 1, PARTITIONS_MAX)?;
        check_range("segment.bytes", self.segment_bytes, 14, i32::MAX as u32)?;
        check_range("segment.ms", self.segment_ms, 1, i64::MAX)?;
        check_range("retention.ms", self.retention_ms, -1, i64::MAX)?;
        check_range("retention.bytes", self.retention_bytes, -1, i64::MAX)?;
        check_range(
            "max.message.bytes",
            self.max_message_bytes,
            0,
            i32::MAX as u32,
        )?;
        check_range(
            "index.interval.bytes",
            self.index_interval_bytes,
            0,
            i32::MAX as u32,
        )?;
        check_range("flush.messages", self.flush_messages, 1, i64::MAX)?;
        check_range("flush.ms", self.flush_ms, 0, i64::MAX)?;
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(Error::config(
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio,
                "must be between 0 and 1",
            ));
        }
        check_range("delete.retention.ms", self.delete_retention_ms, 0, i64::MAX)?;
        check_range(
            "message.timestamp.before.max.ms",
            self.message_timestamp_before_max_ms,
            0,
            i64::MAX,
        )?;
        check_range(
            "message.timestamp.after.max.ms",
            self.message_timestamp_after_max_ms,
            0,
            i64::MAX,
        )?;
        self.compression_levels.validate()?;
        check_range(
            "min.compaction.lag.ms",
            self.min_compaction_lag_ms,
            0,
            i64::MAX,
        )?;
        check_range(
            "max.compaction.lag.ms",
            self.max_compaction_lag_ms,
            1,
            i64::MAX,
        )?;
        Ok(())
    }

    /// Every setting as Kafka's `(key, value)` pairs, in [`TopicConfig::KEYS`] order.
    pub fn to_properties(&self) -> Vec<(&'static str, String)> {
        vec![
            ("num.partitions", self.partitions.to_string()),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("retention.ms", self.retention_ms.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("cleanup.policy", self.cleanup_policy.as_str().to_string()),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            (
                "index.interval.bytes",
                self.index_interval_bytes.to_string(),
            ),
            ("flush.messages", self.flush_messages.to_string()),
            ("flush.ms", self.flush_ms.to_string()),
            (
                "message.timestamp.type",
                self.timestamp_type.as_str().to_string(),
            ),
            (
                "message.timestamp.before.max.ms",
                self.message_timestamp_before_max_ms.to_string(),
            ),
            (
                "message.timestamp.after.max.ms",
                self.message_timestamp_after_max_ms.to_string(),
            ),
            ("compression.type", self.compression_type.name().to_string()),
            (
                "compression.gzip.level",
                self.compression_levels.gzip.to_string(),
            ),
            (
                "compression.lz4.level",
                self.compression_levels.lz4.to_string(),
            ),
            (
                "compression.zstd.level",
                self.compression_levels.zstd.to_string(),
            ),
            (
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio.to_string(),
            ),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
            (
                "min.compaction.lag.ms",
                self.min_compaction_lag_ms.to_string(),
            ),
            (
                "max.compaction.lag.ms",
                self.max_compaction_lag_ms.to_string(),
            ),
        ]
    }
}

impl KafkaKeys for TopicConfig {
    const CATALOGUE: Catalogue = Catalogue {
        what: "topic",
        applied: TopicConfig::KEYS,
        ignored: known_keys::TOPIC_IGNORED,
        aliases: &[],
    };

    fn set_key(&mut self, key: &str, value: &str) -> Result<()> {
        self.set(key, value)
    }
    fn validate_all(&self) -> Result<()> {
        self.validate()
    }

    fn ignored_mut(&mut self) -> &mut IgnoredKeys {
        &mut self.ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_properties() {
        let cfg = TopicConfig::default()
            .partitions(7)
            .segment_bytes(1 << 20)
            .cleanup_policy(CleanupPolicy::CompactDelete)
            .timestamp_type(TimestampType::LogAppendTime)
            .min_cleanable_dirty_ratio(0.25);
        let props = cfg.to_properties();
        assert_eq!(props.len(), TopicConfig::KEYS.len());
        for ((k, _), key) in props.iter().zip(TopicConfig::KEYS) {
            assert_eq!(k, key);
        }
        assert_eq!(TopicConfig::from_properties(&props).unwrap(), cfg);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (key, value) in [
            ("retention.ms", "-2"),
            ("segment.bytes", "0"),
            ("segment.bytes", "99999999999"),
            ("cleanup.policy", "shred"),
            ("message.timestamp.type", "Now"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("num.partitions", "0"),
            ("flush.messages", "x"),
            ("no.such.key", "1"),
        ] {
            let e = TopicConfig::from_properties(&[(key, value)]).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidConfig { key: k, .. } if k == key),
                "{key}={value}: {e}"
            );
        }
        let e = TopicConfig::default()
            .partitions(-1)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("num.partitions"), "{e}");
    }

    #[test]
    fn cleanup_policy_spellings() {
        for (text, policy) in [
            ("delete", CleanupPolicy::Delete),
            ("compact", CleanupPolicy::Compact),
            ("compact,delete", CleanupPolicy::CompactDelete),
            ("delete, compact", CleanupPolicy::CompactDelete),
        ] {
            assert_eq!(
                CleanupPolicy::parse("cleanup.policy", text).unwrap(),
                policy
            );
        }
    }
}
