//! Producer configuration with Kafka's keys.
//!
//! Defaults are Kafka's except where one process changes what a setting costs or means:
//!
//! * `acks` is `1` ([`Acks::Leader`]), not `all`. Here `acks=1` means "appended to the log, in
//!   the OS page cache": the record survives a crash of the process, not a power loss.
//!   `acks=all` means the append is also fsynced before the send completes (concurrent sends
//!   share one fsync, a group commit), which costs a disk flush per round. Kafka defaults to
//!   `all` because it has replicas to wait for; with no replicas, `all` buys power-loss
//!   durability only, at the price of a flush, so it is opt-in.
//! * `linger.ms` is 0 (Kafka 4.0: 5; before 4.0: 0). Lingering trades latency for fewer network
//!   requests; in-process there is no request to save, batches still form while the log is
//!   busy, and a test that sends and waits in a loop would pay 5 ms per record.
//! * `enable.idempotence` follows Kafka's rule, which with our `acks=1` default means off:
//!   left unset, idempotence is on exactly when `acks=all` (Kafka silently turns it off when
//!   other settings conflict, and `acks` other than `all` conflicts); set to `true` with `acks`
//!   other than `all` it is a config error naming both keys. What it costs here: the producer
//!   asks the broker for a producer id once at creation, and its sender stamps each batch
//!   with the id, epoch and sequence (a few stores and one map lookup per batch, not per
//!   record); the partition log checks the sequence on append.
//! * `transactional.id` needs idempotence, hence `acks=all`, as in Kafka (where `all` is the
//!   default): set without it, validation fails naming `transactional.id` and `acks`.
//! * Keyless records go round robin, not uniform sticky: see [`NullKeyStrategy`] and the
//!   embroker-specific key `embroker.partitioner.null.key`.
//!
//! Every key the Kafka Java producer defines is accepted, so that a Java client's `.properties`
//! file loads unchanged ([`ProducerConfig::from_file`]): keys that cannot apply in one process
//! (`bootstrap.servers`, `security.protocol`, serializer classes, ...) are ignored, listed by
//! `ignored_keys` and logged once; librdkafka's aliases are accepted; a key Kafka does not define is
//! an error that suggests the closest known key. The catalogue, with a reason for each ignored
//! key, is `IGNORED_KEYS`.

use std::fmt;
use std::sync::Arc;

use crate::codec::{Compression, CompressionCodec, CompressionError};
use crate::config::compression::CompressionLevels;
use crate::config::known_keys::{self, Catalogue};
use crate::config::load::{self, IgnoredKeys, KafkaKeys};
use crate::config::properties::{
    check_range, parse_bool, parse_choice, parse_i64, parse_u32, setters,
};
use crate::error::{Error, Result};
use crate::producer::{
    DefaultPartitioner, NullKeyStrategy, Partitioner, RandomPartitioner, RoundRobinPartitioner,
};
use std::path::Path;

/// When a send counts as complete. Kafka's `acks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Acks {
    /// `acks=0`: complete once handed to the producer's buffer; no result is awaited, and the
    /// offset reported is -1.
    None,
    /// `acks=1`: complete once appended to the partition log (in the OS page cache; survives a
    /// crash of the process, not a power loss). The default here.
    #[default]
    Leader,
    /// `acks=all` (or `-1`): complete once appended and fsynced (survives a power loss).
    /// Concurrent sends share one fsync. On a temporary broker ([`Broker::temporary`]) nothing
    /// is fsynced, since its data dies with it: `acks=all` completes once appended.
    ///
    /// [`Broker::temporary`]: crate::Broker::temporary
    All,
}

impl Acks {
    /// Kafka's spelling of the value: `0`, `1` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// Which partitioner the producer uses. Kafka's `partitioner.class`.
///
/// Kafka's class names map as follows (short names in brackets are also accepted):
///
/// | `partitioner.class` | choice |
/// | --- | --- |
/// | empty, `org.apache.kafka.clients.producer.internals.DefaultPartitioner` (`default`) | [`PartitionerChoice::Default`] |
/// | `org.apache.kafka.clients.producer.UniformStickyPartitioner` (`uniform_sticky`) | [`PartitionerChoice::UniformSticky`] |
/// | `org.apache.kafka.clients.producer.RoundRobinPartitioner` (`round_robin`, `roundrobin`) | [`PartitionerChoice::RoundRobin`] |
/// | (`random`) | [`PartitionerChoice::Random`] |
///
/// A partitioner of your own is set in code with [`PartitionerChoice::Custom`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum PartitionerChoice {
    /// Keyed records by murmur2 of the key, as the Java client; keyless records by
    /// `embroker.partitioner.null.key` (see [`DefaultPartitioner`]).
    #[default]
    Default,
    /// Every record, keyed or not, sticks to one partition until `batch.size` bytes went
    /// there, then moves to another at random: Kafka's deprecated `UniformStickyPartitioner`.
    UniformSticky,
    /// Every record to the next partition in turn, keys ignored ([`RoundRobinPartitioner`]).
    RoundRobin,
    /// Every record to a random partition, keys ignored ([`RandomPartitioner`]).
    Random,
    /// A partitioner of your own. Written as `custom` by
    /// [`ProducerConfig::to_properties`]; it cannot be set from properties.
    Custom(Arc<dyn Partitioner>),
}

impl PartitionerChoice {
    /// The short name written by [`ProducerConfig::to_properties`].
    pub fn as_str(&self) -> &'static str {
        match self {
            PartitionerChoice::Default => "default",
            PartitionerChoice::UniformSticky => "uniform_sticky",
            PartitionerChoice::RoundRobin => "round_robin",
            PartitionerChoice::Random => "random",
            PartitionerChoice::Custom(_) => "custom",
        }
    }
}

impl fmt::Debug for PartitionerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionerChoice::Default => f.write_str("Default"),
            PartitionerChoice::UniformSticky => f.write_str("UniformSticky"),
            PartitionerChoice::RoundRobin => f.write_str("RoundRobin"),
            PartitionerChoice::Random => f.write_str("Random"),
            PartitionerChoice::Custom(p) => f.debug_tuple("Custom").field(p).finish(),
        }
    }
}

impl PartialEq for PartitionerChoice {
    /// Built-in choices compare by kind; custom partitioners by identity (the same `Arc`).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PartitionerChoice::Custom(a), PartitionerChoice::Custom(b)) => Arc::ptr_eq(a, b),
            (PartitionerChoice::Default, PartitionerChoice::Default)
            | (PartitionerChoice::UniformSticky, PartitionerChoice::UniformSticky)
            | (PartitionerChoice::RoundRobin, PartitionerChoice::RoundRobin)
            | (PartitionerChoice::Random, PartitionerChoice::Random) => true,
            _ => false,
        }
    }
}

/// A producer's configuration: Kafka's producer settings, plus the embroker-specific
/// `embroker.partitioner.null.key`.
///
/// Build it with chainable setters or from Kafka's property keys; it is checked when the
/// producer is created, and errors name the key. See the module docs for the defaults that
/// differ from Kafka's and why.
///
/// ```
/// use embroker::{Acks, PartitionerChoice, ProducerConfig};
/// let typed = ProducerConfig::default()
///     .acks(Acks::All)
///     .linger_ms(5)
///     .partitioner(PartitionerChoice::RoundRobin);
/// let parsed = ProducerConfig::from_properties(&[
///     ("bootstrap.servers", "localhost:9092"), // accepted and ignored
///     ("acks", "all"),
///     ("linger.ms", "5"),
///     ("partitioner.class", "org.apache.kafka.clients.producer.RoundRobinPartitioner"),
/// ])?;
/// assert_eq!(typed, parsed);
/// assert!(ProducerConfig::from_properties(&[("acks", "2")]).is_err());
/// assert!(ProducerConfig::from_properties(&[("lingerms", "5")]).is_err());
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// When a send counts as complete (`acks`). Default: [`Acks::Leader`] (`1`; Kafka: `all`,
    /// see the module docs).
    pub acks: Acks,
    /// How long a partial batch waits for more records (`linger.ms`). Default: 0 (Kafka 4.0: 5,
    /// see the module docs).
    pub linger_ms: i64,
    /// Upper bound of a batch's size in bytes, and the sticky partitioner's switch point
    /// (`batch.size`). Default: 16384.
    pub batch_size: u32,
    /// Bytes of records the producer may hold before `send` blocks (`buffer.memory`). As in
    /// Kafka, room is taken per batch (up to `batch.size` ahead of its records, the unused
    /// part given back when the batch is sent). Default: 33554432 (32 MiB).
    pub buffer_memory: i64,
    /// How long `send` may block waiting for buffer space (`max.block.ms`). Default: 60000.
    pub max_block_ms: i64,
    /// Largest record (and batch) the producer accepts, in bytes (`max.request.size`).
    /// Default: 1048576.
    pub max_request_size: u32,
    /// The partitioner (`partitioner.class`). Default: [`PartitionerChoice::Default`].
    pub partitioner: PartitionerChoice,
    /// Place keyed records as if they had no key (`partitioner.ignore.keys`); applies to
    /// [`PartitionerChoice::Default`] only. Default: false.
    pub partitioner_ignore_keys: bool,
    /// Where [`PartitionerChoice::Default`] sends keyless records
    /// (`embroker.partitioner.null.key`: `round_robin` or `sticky`; embroker's own key, Kafka
    /// has no such setting). Default: [`NullKeyStrategy::RoundRobin`] (Kafka ≥ 3.3: sticky).
    pub null_key_strategy: NullKeyStrategy,
    /// A name for this producer in logs and errors (`client.id`). Default: empty.
    pub client_id: String,
    /// Length of one sample of the windowed metrics (`*-rate`, `*-avg`, `*-max`) in
    /// milliseconds (`metrics.sample.window.ms`); see [`crate::metrics`]. Default: 30000.
    pub metrics_sample_window_ms: i64,
    /// Samples the windowed metrics keep (`metrics.num.samples`): they cover the last
    /// `metrics.num.samples × metrics.sample.window.ms`. Default: 2.
    pub metrics_num_samples: u32,
    /// The idempotent producer (`enable.idempotence`). Default: `None`, not set: on when
    /// `acks=all` or a `transactional.id` is set, off otherwise (Kafka's rule for a default it
    /// turns off when other settings conflict; see the module docs). `Some(true)` with `acks`
    /// other than `all` fails validation. [`ProducerConfig::idempotent`] gives the outcome.
    pub enable_idempotence: Option<bool>,
    /// The producer's transactional id (`transactional.id`): set, the producer is
    /// transactional ([`Producer::init_transactions`](crate::Producer::init_transactions)).
    /// Default: `None`. Needs `acks=all`.
    pub transactional_id: Option<String>,
    /// How long a transaction may stay open before the broker aborts it
    /// (`transaction.timeout.ms`, at most the broker's `transaction.max.timeout.ms`).
    /// Default: 60000.
    pub transaction_timeout_ms: i64,
    /// The codec batches are compressed with (`compression.type`: none, gzip, snappy, lz4 or
    /// zstd). Default: none, as Kafka.
    pub compression_type: Compression,
    /// Each codec's level (`compression.gzip.level`, `compression.lz4.level`,
    /// `compression.zstd.level`). Default: Kafka's.
    pub compression_levels: CompressionLevels,

    /// The keys given that were accepted and ignored ([`Self::ignored_keys`]).
    ignored: IgnoredKeys,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            ignored: IgnoredKeys::default(),
            acks: Acks::Leader,
            linger_ms: 0,
            batch_size: 16384,
            buffer_memory: 32 * 1024 * 1024,
            max_block_ms: 60_000,
            max_request_size: 1024 * 1024,
            partitioner: PartitionerChoice::Default,
            partitioner_ignore_keys: false,
            null_key_strategy: NullKeyStrategy::RoundRobin,
            client_id: String::new(),
            metrics_sample_window_ms: 30_000,
            metrics_num_samples: 2,
            enable_idempotence: None,
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            compression_type: Compression::None,
            compression_levels: CompressionLevels::default(),
        }
    }
}

const INT_MAX: u32 = i32::MAX as u32;

const ACKS: &[(&str, Acks)] = &[
    ("0", Acks::None),
    ("1", Acks::Leader),
    ("all", Acks::All),
    ("-1", Acks::All),
];

const NULL_KEY: &[(&str, NullKeyStrategy)] = &[
    ("round_robin", NullKeyStrategy::RoundRobin),
    ("roundrobin", NullKeyStrategy::RoundRobin),
    ("sticky", NullKeyStrategy::Sticky),
];

impl ProducerConfig {
    /// The keys `from_properties` accepts and uses, in the order `to_properties` writes them.
    pub const KEYS: &'static [&'static str] = &[
        "acks",
        "linger.ms",
        "batch.size",
        "buffer.memory",
        "max.block.ms",
        "max.request.size",
        "partitioner.class",
        "partitioner.ignore.keys",
        "embroker.partitioner.null.key",
        "client.id",
        "metrics.sample.window.ms",
        "metrics.num.samples",
        "enable.idempotence",
        "transactional.id",
        "transaction.timeout.ms",
        "compression.type",
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.zstd.level",
    ];

    /// Keys Kafka defines that `from_properties` and `from_file` accept and ignore, each with
    /// the reason it cannot apply in one process.
    pub const IGNORED_KEYS: &'static [(&'static str, &'static str)] = known_keys::PRODUCER_IGNORED;

    /// librdkafka's names accepted for Kafka's keys: `(librdkafka, Kafka)`.
    pub const ALIASES: &'static [(&'static str, &'static str)] = known_keys::PRODUCER_ALIASES;

    setters! {
        /// Sets `acks`.
        acks: Acks,
        /// Sets `linger.ms`.
        linger_ms: i64,
        /// Sets `batch.size`.
        batch_size: u32,
        /// Sets `buffer.memory`.
        buffer_memory: i64,
        /// Sets `max.block.ms`.
        max_block_ms: i64,
        /// Sets `max.request.size`.
        max_request_size: u32,
        /// Sets `partitioner.class`, or a partitioner of your own with
        /// [`PartitionerChoice::Custom`].
        partitioner: PartitionerChoice,
        /// Sets `partitioner.ignore.keys`.
        partitioner_ignore_keys: bool,
        /// Sets `embroker.partitioner.null.key`.
        null_key_strategy: NullKeyStrategy,
        /// Sets `metrics.sample.window.ms`.
        metrics_sample_window_ms: i64,
        /// Sets `metrics.num.samples`.
        metrics_num_samples: u32,
        /// Sets `transaction.timeout.ms`.
        transaction_timeout_ms: i64,
        /// Sets `compression.type`.
        compression_type: Compression,
        /// Sets `compression.gzip.level`, `compression.lz4.level` and
        /// `compression.zstd.level`.
        compression_levels: CompressionLevels,
    }

    /// Sets `enable.idempotence` explicitly (see [`ProducerConfig::enable_idempotence`]).
    #[must_use]
    pub fn enable_idempotence(mut self, enabled: bool) -> Self {
        self.enable_idempotence = Some(enabled);
        self
    }

    /// Sets `transactional.id`.
    #[must_use]
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// True when the producer is idempotent: `enable.idempotence` as set, or when not set,
    /// `acks=all` or a `transactional.id` (Kafka's rule).
    pub fn idempotent(&self) -> bool {
        match self.enable_idempotence {
            Some(enabled) => enabled,
            None => self.acks == Acks::All || self.transactional_id.is_some(),
        }
    }

    /// Sets `client.id`.
    #[must_use]
    pub fn client_id(mut self, value: impl Into<String>) -> Self {
        self.client_id = value.into();
        self
    }

    /// This library's defaults, with Kafka's keys applied over them; unknown keys and bad values
    /// are errors naming the key.
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(props: &[(K, V)]) -> Result<Self> {
        ProducerConfig::default().with_properties(props)
    }

    /// This config with the given Kafka keys applied over it, then validated.
    pub fn with_properties<K: AsRef<str>, V: AsRef<str>>(self, props: &[(K, V)]) -> Result<Self> {
        load::apply(self, props.iter().map(|(k, v)| (k, v, None)), None)
    }

    /// This library's defaults with the keys of a Java `.properties` file applied over them
    /// (`#`/`!` comments, `=`/`:`/space separators, continuation lines and escapes, as
    /// `java.util.Properties.load`). Keys Kafka defines that cannot apply in one process are
    /// accepted, listed by [`ProducerConfig::ignored_keys`] and logged once; librdkafka's aliases are
    /// accepted; any other key is an error naming it, its line and the closest known key.
    ///
    /// ```
    /// use embroker::{Acks, ProducerConfig};
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("producer.properties");
    /// std::fs::write(&path, "\
    ///     ! a comment, as in Kafka's config/producer.properties\n\
    ///     bootstrap.servers=localhost:9092\n\
    ///     key.serializer=org.apache.kafka.common.serialization.StringSerializer\n\
    ///     acks=all\n\
    ///     linger.ms: 5\n")?;
    /// let config = ProducerConfig::from_file(&path)?;
    /// assert_eq!(config.acks, Acks::All);
    /// assert_eq!(config.linger_ms, 5);
    /// assert_eq!(config.ignored_keys(), ["bootstrap.servers", "key.serializer"]);
    ///
    /// std::fs::write(&path, "lingerms=5\n")?;
    /// let error = ProducerConfig::from_file(&path).unwrap_err().to_string();
    /// assert!(error.contains("did you mean linger.ms?"), "{error}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        load::apply_file(ProducerConfig::default(), path.as_ref())
    }

    /// The keys given to this config that it accepted and ignored because they cannot apply in
    /// one process (`bootstrap.servers`, `security.protocol`, ...), as written, in the order
    /// first given. See [`ProducerConfig::IGNORED_KEYS`] for every such key and why.
    pub fn ignored_keys(&self) -> &[String] {
        self.ignored.as_slice()
    }

    /// Sets one Kafka key.
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "acks" => self.acks = parse_choice(key, value, ACKS, "0, 1, all or -1")?,
            "linger.ms" => self.linger_ms = parse_i64(key, value, 0, i64::MAX)?,
            "batch.size" => self.batch_size = parse_u32(key, value, 0, INT_MAX)?,
            "buffer.memory" => self.buffer_memory = parse_i64(key, value, 0, i64::MAX)?,
            "max.block.ms" => self.max_block_ms = parse_i64(key, value, 0, i64::MAX)?,
            "max.request.size" => self.max_request_size = parse_u32(key, value, 0, INT_MAX)?,
            "partitioner.class" => self.partitioner = self.parse_partitioner(key, value)?,
            "partitioner.ignore.keys" => self.partitioner_ignore_keys = parse_bool(key, value)?,
            "embroker.partitioner.null.key" => {
                self.null_key_strategy =
                    parse_choice(key, value, NULL_KEY, "round_robin or sticky")?;
            }
            "client.id" => self.client_id = value.to_string(),
            "metrics.sample.window.ms" => {
                self.metrics_sample_window_ms = parse_i64(key, value, 0, i64::MAX)?
            }
            "metrics.num.samples" => self.metrics_num_samples = parse_u32(key, value, 1, INT_MAX)?,
            // Empty: not set (what `to_properties` writes for `None`).
            "enable.idempotence" if value.trim().is_empty() => self.enable_idempotence = None,
            "enable.idempotence" => self.enable_idempotence = Some(parse_bool(key, value)?),
            "transactional.id" if value.trim().is_empty() => self.transactional_id = None,
            "transactional.id" => self.transactional_id = Some(value.to_string()),
            "transaction.timeout.ms" => {
                self.transaction_timeout_ms = parse_i64(key, value, 1, i64::from(i32::MAX))?
            }
            "compression.type" => {
                self.compression_type = value
                    .trim()
                    .parse()
                    .map_err(|e: CompressionError| Error::config(key, value, e.to_string()))?;
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

    fn parse_partitioner(&self, key: &str, value: &str) -> Result<PartitionerChoice> {
        let name = value.trim();
        let choice = match name {
            "" | "default" | "org.apache.kafka.clients.producer.internals.DefaultPartitioner" => {
                PartitionerChoice::Default
            }
            "uniform_sticky" | "org.apache.kafka.clients.producer.UniformStickyPartitioner" => {
                PartitionerChoice::UniformSticky
            }
            "round_robin"
            | "roundrobin"
            | "org.apache.kafka.clients.producer.RoundRobinPartitioner" => {
                PartitionerChoice::RoundRobin
            }
            "random" => PartitionerChoice::Random,
            // What to_properties writes for a custom partitioner: keep the one already set.
            "custom" if matches!(self.partitioner, PartitionerChoice::Custom(_)) => {
                self.partitioner.clone()
            }
            "custom" => {
                return Err(Error::config(
                    key,
                    value,
                    "a custom partitioner is set in code with PartitionerChoice::Custom",
                ))
            }
            _ => {
                return Err(Error::config(
                    key,
                    value,
                    "must be default, uniform_sticky, round_robin, random, or one of Kafka's \
                     partitioner class names (DefaultPartitioner, UniformStickyPartitioner, \
                     RoundRobinPartitioner)",
                ))
            }
        };
        Ok(choice)
    }

    /// Checks every field against Kafka's bounds and what is implemented; the error names the
    /// key.
    pub fn validate(&self) -> Result<()> {
        check_range("linger.ms", self.linger_ms, 0, i64::MAX)?;
        check_range("batch.size", self.batch_size, 0, INT_MAX)?;
        check_range("buffer.memory", self.buffer_memory, 0, i64::MAX)?;
        check_range("max.block.ms", self.max_block_ms, 0, i64::MAX)?;
        check_range("max.request.size", self.max_request_size, 0, INT_MAX)?;
        check_range(
            "metrics.sample.window.ms",
            self.metrics_sample_window_ms,
            0,
            i64::MAX,
        )?;
        check_range("metrics.num.samples", self.metrics_num_samples, 1, INT_MAX)?;
        self.compression_levels.validate()?;
        check_range(
            "transaction.timeout.ms",
            self.transaction_timeout_ms,
            1,
            i64::from(i32::MAX),
        )?;
        if self.enable_idempotence == Some(true) && self.acks != Acks::All {
            return Err(Error::config(
                "enable.idempotence",
                true,
                format!(
                    "requires acks=all (acks is {}): set acks=all, or leave enable.idempotence \
                     unset to have it off with these acks",
                    self.acks.as_str()
                ),
            ));
        }
        if let Some(id) = &self.transactional_id {
            if id.is_empty() || id.len() > i16::MAX as usize {
                return Err(Error::config(
                    "transactional.id",
                    id,
                    "must be 1..=32767 bytes",
                ));
            }
            if self.enable_idempotence == Some(false) {
                return Err(Error::config(
                    "transactional.id",
                    id,
                    "requires enable.idempotence (set to false)",
                ));
            }
            if self.acks != Acks::All {
                return Err(Error::config(
                    "transactional.id",
                    id,
                    format!(
                        "requires acks=all (acks is {}): a transactional producer is idempotent",
                        self.acks.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The partitioner this config describes, ready to share between threads. A custom
    /// partitioner is returned as is (the same `Arc`).
    pub fn build_partitioner(&self) -> Arc<dyn Partitioner> {
        match &self.partitioner {
            PartitionerChoice::Default => Arc::new(
                DefaultPartitioner::new(self.null_key_strategy, self.batch_size)
                    .ignore_keys(self.partitioner_ignore_keys),
            ),
            PartitionerChoice::UniformSticky => Arc::new(
                DefaultPartitioner::new(NullKeyStrategy::Sticky, self.batch_size).ignore_keys(true),
            ),
            PartitionerChoice::RoundRobin => Arc::new(RoundRobinPartitioner::new()),
            PartitionerChoice::Random => Arc::new(RandomPartitioner::new()),
            PartitionerChoice::Custom(p) => Arc::clone(p),
        }
    }

    /// Every setting as Kafka's `(key, value)` pairs, in [`ProducerConfig::KEYS`] order.
    pub fn to_properties(&self) -> Vec<(&'static str, String)> {
        vec![
            ("acks", self.acks.as_str().to_string()),
            ("linger.ms", self.linger_ms.to_string()),
            ("batch.size", self.batch_size.to_string()),
            ("buffer.memory", self.buffer_memory.to_string()),
            ("max.block.ms", self.max_block_ms.to_string()),
            ("max.request.size", self.max_request_size.to_string()),
            ("partitioner.class", self.partitioner.as_str().to_string()),
            (
                "partitioner.ignore.keys",
                self.partitioner_ignore_keys.to_string(),
            ),
            (
                "embroker.partitioner.null.key",
                self.null_key_strategy.as_str().to_string(),
            ),
            ("client.id", self.client_id.clone()),
            (
                "metrics.sample.window.ms",
                self.metrics_sample_window_ms.to_string(),
            ),
            ("metrics.num.samples", self.metrics_num_samples.to_string()),
            (
                "enable.idempotence",
                self.enable_idempotence
                    .map_or_else(String::new, |b| b.to_string()),
            ),
            (
                "transactional.id",
                self.transactional_id.clone().unwrap_or_default(),
            ),
            (
                "transaction.timeout.ms",
                self.transaction_timeout_ms.to_string(),
            ),
            ("compression.type", self.compression_type.name().to_string()),
        ]
        .into_iter()
        .chain(self.compression_levels.to_properties())
        .collect()
    }

    /// The codec and level batches are compressed with.
    pub fn compression_codec(&self) -> CompressionCodec {
        self.compression_levels.codec(self.compression_type)
    }
}

impl KafkaKeys for ProducerConfig {
    const CATALOGUE: Catalogue = Catalogue {
        what: "producer",
        applied: ProducerConfig::KEYS,
        ignored: known_keys::PRODUCER_IGNORED,
        aliases: known_keys::PRODUCER_ALIASES,
    };

    fn set_key(&mut self, key: &str, value: &str) -> Result<()> {
        self.set(key, value)
    }

    fn check_ignored(&self, _key: &str, _value: &str) -> Result<()> {
        Ok(())
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
    use proptest::prelude::*;

    fn parse(key: &str, value: &str) -> Result<ProducerConfig> {
        ProducerConfig::from_properties(&[(key, value)])
    }

    fn assert_names_key(key: &str, value: &str) {
        let e = parse(key, value).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidConfig { key: k, .. } if k == key),
            "{key}={value}: {e}"
        );
    }

    #[test]
    fn metrics_window_keys_are_applied_with_kafka_bounds() {
        let c = ProducerConfig::default();
        assert_eq!(
            (c.metrics_sample_window_ms, c.metrics_num_samples),
            (30_000, 2)
        );
        let c = ProducerConfig::from_properties(&[
            ("metrics.sample.window.ms", "500"),
            ("metrics.num.samples", "3"),
        ])
        .unwrap();
        assert_eq!(
            (c.metrics_sample_window_ms, c.metrics_num_samples),
            (500, 3)
        );
        assert!(c.ignored_keys().is_empty());
        assert_eq!(
            parse("metrics.sample.window.ms", "0")
                .unwrap()
                .metrics_sample_window_ms,
            0
        );
        assert_names_key("metrics.sample.window.ms", "-1");
        assert_names_key("metrics.num.samples", "0");
        assert!(ProducerConfig::default()
            .metrics_num_samples(0)
            .validate()
            .is_err());
    }

    #[test]
    fn defaults() {
        let c = ProducerConfig::default();
        assert_eq!(c.acks, Acks::Leader);
        assert_eq!(c.linger_ms, 0);
        assert_eq!(c.batch_size, 16384);
        assert_eq!(c.buffer_memory, 33_554_432);
        assert_eq!(c.max_block_ms, 60_000);
        assert_eq!(c.max_request_size, 1_048_576);
        assert_eq!(c.partitioner, PartitionerChoice::Default);
        assert!(!c.partitioner_ignore_keys);
        assert_eq!(c.null_key_strategy, NullKeyStrategy::RoundRobin);
        assert_eq!(c.client_id, "");
        assert_eq!(c.enable_idempotence, None);
        assert!(!c.idempotent());
        c.validate().unwrap();
        assert_eq!(
            ProducerConfig::from_properties::<&str, &str>(&[]).unwrap(),
            c
        );
    }

    #[test]
    fn acks_spellings() {
        for (text, acks) in [
            ("0", Acks::None),
            ("1", Acks::Leader),
            ("all", Acks::All),
            ("ALL", Acks::All),
            ("-1", Acks::All),
        ] {
            assert_eq!(parse("acks", text).unwrap().acks, acks, "{text}");
        }
        for bad in ["2", "", "leader", "-2"] {
            assert_names_key("acks", bad);
        }
    }

    #[test]
    fn numeric_keys_take_good_values_and_name_the_key_on_bad_ones() {
        let c = ProducerConfig::from_properties(&[
            ("linger.ms", "7"),
            ("batch.size", "0"),
            ("buffer.memory", "1024"),
            ("max.block.ms", "0"),
            ("max.request.size", "2147483647"),
        ])
        .unwrap();
        assert_eq!(c.linger_ms, 7);
        assert_eq!(c.batch_size, 0);
        assert_eq!(c.buffer_memory, 1024);
        assert_eq!(c.max_block_ms, 0);
        assert_eq!(c.max_request_size, i32::MAX as u32);
        for (key, bad) in [
            ("linger.ms", "-1"),
            ("linger.ms", "5ms"),
            ("batch.size", "-1"),
            ("batch.size", "2147483648"),
            ("buffer.memory", "-5"),
            ("max.block.ms", "soon"),
            ("max.request.size", "1.5"),
        ] {
            assert_names_key(key, bad);
        }
    }

    #[test]
    fn partitioner_class_names() {
        for (text, choice) in [
            ("", PartitionerChoice::Default),
            ("default", PartitionerChoice::Default),
            (
                "org.apache.kafka.clients.producer.internals.DefaultPartitioner",
                PartitionerChoice::Default,
            ),
            (
                "org.apache.kafka.clients.producer.UniformStickyPartitioner",
                PartitionerChoice::UniformSticky,
            ),
            ("uniform_sticky", PartitionerChoice::UniformSticky),
            (
                "org.apache.kafka.clients.producer.RoundRobinPartitioner",
                PartitionerChoice::RoundRobin,
            ),
            ("round_robin", PartitionerChoice::RoundRobin),
            ("roundrobin", PartitionerChoice::RoundRobin),
            ("random", PartitionerChoice::Random),
        ] {
            assert_eq!(
                parse("partitioner.class", text).unwrap().partitioner,
                choice,
                "{text:?}"
            );
        }
        assert_names_key("partitioner.class", "com.example.MyPartitioner");
        assert_names_key("partitioner.class", "custom");
    }

    #[test]
    fn custom_partitioner_is_kept_and_compared_by_identity() {
        let mine: Arc<dyn Partitioner> = Arc::new(RoundRobinPartitioner::new());
        let c = ProducerConfig::default().partitioner(PartitionerChoice::Custom(Arc::clone(&mine)));
        assert!(Arc::ptr_eq(&c.build_partitioner(), &mine));
        assert_eq!(c.clone(), c);
        let other = ProducerConfig::default().partitioner(PartitionerChoice::Custom(Arc::new(
            RoundRobinPartitioner::new(),
        )));
        assert_ne!(c, other);
        // to_properties writes "custom"; applying that over the same config keeps it.
        let props = c.to_properties();
        assert!(props.contains(&("partitioner.class", "custom".to_string())));
        assert_eq!(c.clone().with_properties(&props).unwrap(), c);
        assert!(format!("{c:?}").contains("Custom(RoundRobinPartitioner"));
    }

    #[test]
    fn ignore_keys_and_null_key_strategy() {
        assert!(
            parse("partitioner.ignore.keys", "true")
                .unwrap()
                .partitioner_ignore_keys
        );
        assert_names_key("partitioner.ignore.keys", "yes");
        for (text, strategy) in [
            ("round_robin", NullKeyStrategy::RoundRobin),
            ("roundrobin", NullKeyStrategy::RoundRobin),
            ("Sticky", NullKeyStrategy::Sticky),
        ] {
            assert_eq!(
                parse("embroker.partitioner.null.key", text)
                    .unwrap()
                    .null_key_strategy,
                strategy
            );
        }
        assert_names_key("embroker.partitioner.null.key", "random");
    }

    #[test]
    fn client_id_and_ignored_bootstrap_servers() {
        let c = ProducerConfig::from_properties(&[
            ("client.id", "orders-writer"),
            ("bootstrap.servers", "a:9092,b:9092"),
        ])
        .unwrap();
        assert_eq!(c.client_id, "orders-writer");
        assert_eq!(c, ProducerConfig::default().client_id("orders-writer"));
    }

    #[test]
    fn idempotence_follows_kafkas_rule() {
        // Not set: on exactly with acks=all.
        assert!(!ProducerConfig::default().idempotent());
        assert!(ProducerConfig::default().acks(Acks::All).idempotent());
        assert!(!parse("enable.idempotence", "false").unwrap().idempotent());
        assert_eq!(
            parse("enable.idempotence", "").unwrap().enable_idempotence,
            None
        );
        // Set true with conflicting acks: an error naming both keys.
        let e = parse("enable.idempotence", "true").unwrap_err();
        assert!(
            matches!(&e, Error::InvalidConfig { key, reason, .. }
                if key == "enable.idempotence" && reason.contains("acks")),
            "{e}"
        );
        let c = ProducerConfig::from_properties(&[("enable.idempotence", "true"), ("acks", "all")])
            .unwrap();
        assert!(c.idempotent());
        assert_names_key("enable.idempotence", "maybe");
    }

    #[test]
    fn transactional_id_needs_acks_all_and_idempotence() {
        assert_names_key("transactional.id", "tx-1");
        let c = ProducerConfig::from_properties(&[("transactional.id", "tx-1"), ("acks", "all")])
            .unwrap();
        assert_eq!(c.transactional_id.as_deref(), Some("tx-1"));
        assert!(c.idempotent());
        let e = ProducerConfig::from_properties(&[
            ("transactional.id", "tx-1"),
            ("acks", "all"),
            ("enable.idempotence", "false"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("enable.idempotence"), "{e}");
        assert_eq!(
            parse("transactional.id", "").unwrap().transactional_id,
            None
        );
        assert_names_key("transaction.timeout.ms", "0");
        assert_eq!(
            parse("transaction.timeout.ms", "5000")
                .unwrap()
                .transaction_timeout_ms,
            5000
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        for key in ["acks ", "linger_ms", "group.id", ""] {
            assert_names_key(key, "1");
        }
    }

    #[test]
    fn typed_setters_are_validated_naming_the_key() {
        for (config, key) in [
            (ProducerConfig::default().linger_ms(-1), "linger.ms"),
            (ProducerConfig::default().batch_size(u32::MAX), "batch.size"),
            (ProducerConfig::default().buffer_memory(-1), "buffer.memory"),
            (ProducerConfig::default().max_block_ms(-1), "max.block.ms"),
            (
                ProducerConfig::default().max_request_size(INT_MAX + 1),
                "max.request.size",
            ),
        ] {
            let e = config.validate().unwrap_err();
            assert!(
                matches!(&e, Error::InvalidConfig { key: k, .. } if k == key),
                "{key}: {e}"
            );
        }
    }

    #[test]
    fn round_trips_through_properties() {
        let cfg = ProducerConfig::default()
            .acks(Acks::None)
            .linger_ms(12)
            .batch_size(1)
            .buffer_memory(99)
            .max_block_ms(3)
            .max_request_size(4096)
            .partitioner(PartitionerChoice::UniformSticky)
            .partitioner_ignore_keys(true)
            .null_key_strategy(NullKeyStrategy::Sticky)
            .client_id("p-1");
        let props = cfg.to_properties();
        assert_eq!(props.len(), ProducerConfig::KEYS.len());
        for ((k, _), key) in props.iter().zip(ProducerConfig::KEYS) {
            assert_eq!(k, key);
        }
        assert_eq!(ProducerConfig::from_properties(&props).unwrap(), cfg);
        for acks in [Acks::None, Acks::Leader, Acks::All] {
            let c = ProducerConfig::default().acks(acks);
            assert_eq!(
                ProducerConfig::from_properties(&c.to_properties()).unwrap(),
                c
            );
        }
        for choice in [
            PartitionerChoice::Default,
            PartitionerChoice::UniformSticky,
            PartitionerChoice::RoundRobin,
            PartitionerChoice::Random,
        ] {
            let c = ProducerConfig::default().partitioner(choice);
            assert_eq!(
                ProducerConfig::from_properties(&c.to_properties()).unwrap(),
                c
            );
        }
    }

    #[test]
    fn built_partitioners_follow_the_config() {
        let keyed = |c: &ProducerConfig| {
            c.build_partitioner()
                .partition("t", Some(b"foobar"), None, 10)
                .unwrap()
        };
        // Kafka's vector: "foobar" over 10 partitions is partition 6.
        assert_eq!(keyed(&ProducerConfig::default()), 6);
        let rr = ProducerConfig::default().partitioner(PartitionerChoice::RoundRobin);
        let p = rr.build_partitioner();
        let picks: Vec<i32> = (0..3)
            .map(|_| p.partition("t", Some(b"foobar"), None, 10).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2]);
        let ignore = ProducerConfig::default().partitioner_ignore_keys(true);
        let p = ignore.build_partitioner();
        assert_eq!(p.partition("t", Some(b"foobar"), None, 10).unwrap(), 0);
        assert_eq!(p.partition("t", Some(b"foobar"), None, 10).unwrap(), 1);
        // Uniform sticky ignores keys: with a huge batch, every record sticks to one partition.
        let sticky = ProducerConfig::default()
            .partitioner(PartitionerChoice::UniformSticky)
            .batch_size(1 << 30);
        let p = sticky.build_partitioner();
        let first = p.partition("t", Some(b"a"), None, 10).unwrap();
        for key in [&b"b"[..], b"c", b"foobar"] {
            assert_eq!(p.partition("t", Some(key), None, 10).unwrap(), first);
        }
    }

    proptest! {
        #[test]
        fn from_properties_never_panics(
            pairs in proptest::collection::vec((".{0,40}", ".{0,40}"), 0..6),
        ) {
            let _ = ProducerConfig::from_properties(&pairs);
        }

        #[test]
        fn known_keys_with_arbitrary_values_never_panic(
            index in 0..ProducerConfig::KEYS.len(),
            value in ".{0,40}",
        ) {
            let key = ProducerConfig::KEYS[index];
            match ProducerConfig::from_properties(&[(key, value.as_str())]) {
                Ok(c) => prop_assert!(c.validate().is_ok()),
                Err(Error::InvalidConfig { key: k, .. }) => prop_assert_eq!(k, key),
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
    }
}
