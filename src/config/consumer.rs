//! Consumer configuration with Kafka's keys.
//!
//! Defaults are Kafka's, with one exception: `group.initial.rebalance.delay.ms` is 0. In Kafka it
//! is a broker setting (default 3000) that holds the first rebalance of an empty group for 3 s so
//! that members starting together join one rebalance instead of several, each costing network
//! round trips. In one process a rebalance is a few function calls, and that 3 s wait is the
//! classic reason tests against a real broker are slow, so here the first member is assigned at
//! once. Because the group coordinator lives in the same process, the setting is per consumer.
//!
//! `session.timeout.ms` is not bound to the broker's `group.min.session.timeout.ms` (6000) and
//! `group.max.session.timeout.ms` (1800000): with an injected clock, tests may use any positive
//! value.
//!
//! Every key the Kafka Java consumer defines is accepted, so that a Java client's `.properties`
//! file loads unchanged ([`ConsumerConfig::from_file`]): keys that cannot apply in one process
//! (`bootstrap.servers`, `security.protocol`, serializer classes, ...) are ignored, listed by
//! `ignored_keys` and logged once; librdkafka's aliases are accepted; a key Kafka does not define is
//! an error that suggests the closest known key. The catalogue, with a reason for each ignored
//! key, is `IGNORED_KEYS`.

use crate::config::known_keys::{self, Catalogue};
use crate::config::load::{self, IgnoredKeys, KafkaKeys};
use crate::config::properties::{
    check_range, list_items, parse_bool, parse_choice, parse_i64, parse_u32, setters,
};
use crate::error::{Error, Result};
use std::path::Path;

/// Where a consumer starts in a partition that has no committed offset, or whose committed
/// offset is out of range. Kafka's `auto.offset.reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OffsetReset {
    /// `earliest`: the log start offset.
    Earliest,
    /// `latest`: the log end offset (only records produced from now on). Kafka's default.
    #[default]
    Latest,
    /// `none`: an error ([`Error::NoOffsetForPartition`], or [`Error::OffsetOutOfRange`]).
    None,
}

impl OffsetReset {
    /// Kafka's spelling of the value.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
            OffsetReset::None => "none",
        }
    }
}

/// A partition assignor for consumer groups. Kafka's `partition.assignment.strategy` entries.
///
/// Accepted spellings: the short names (which are Kafka's assignor protocol names) and Kafka's
/// class names, `org.apache.kafka.clients.consumer.RangeAssignor` and so on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AssignmentStrategy {
    /// `range` (`RangeAssignor`): per topic, consecutive ranges of partitions per member.
    Range,
    /// `roundrobin` (`RoundRobinAssignor`): all partitions dealt out one by one.
    RoundRobin,
    /// `sticky` (`StickyAssignor`): balanced, keeping previous assignments; eager rebalancing.
    Sticky,
    /// `cooperative-sticky` (`CooperativeStickyAssignor`): sticky, with cooperative
    /// (incremental) rebalancing.
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// The assignor's protocol name, as Kafka's `ConsumerPartitionAssignor.name()` returns it.
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::Sticky => "sticky",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }
}

/// Which records a consumer sees. Kafka's `isolation.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum IsolationLevel {
    /// `read_uncommitted`: every record up to the log end. Kafka's default.
    #[default]
    ReadUncommitted,
    /// `read_committed`: records up to the last stable offset (the first offset of the
    /// earliest open transaction), without those of aborted transactions.
    ReadCommitted,
}

impl IsolationLevel {
    /// Kafka's spelling of the value.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "read_uncommitted",
            IsolationLevel::ReadCommitted => "read_committed",
        }
    }
}

/// A consumer's configuration: Kafka's consumer settings, plus the broker-side
/// `group.initial.rebalance.delay.ms`.
///
/// Build it with chainable setters or from Kafka's property keys; it is checked when the
/// consumer is created, and errors name the key.
///
/// ```
/// use embroker::{AssignmentStrategy, ConsumerConfig, OffsetReset};
/// let typed = ConsumerConfig::default()
///     .group_id("billing")
///     .auto_offset_reset(OffsetReset::Earliest)
///     .partition_assignment_strategy(vec![AssignmentStrategy::Range]);
/// let parsed = ConsumerConfig::from_properties(&[
///     ("bootstrap.servers", "localhost:9092"), // accepted and ignored
///     ("group.id", "billing"),
///     ("auto.offset.reset", "earliest"),
///     ("partition.assignment.strategy", "org.apache.kafka.clients.consumer.RangeAssignor"),
/// ])?;
/// assert_eq!(typed, parsed);
/// assert!(ConsumerConfig::from_properties(&[("auto.offset.reset", "first")]).is_err());
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// The consumer group (`group.id`); `None` for a consumer that only uses `assign` and
    /// commits nothing. Default: `None`.
    pub group_id: Option<String>,
    /// A name for this consumer in logs and errors (`client.id`). Default: empty.
    pub client_id: String,
    /// Length of one sample of the windowed metrics (`*-rate`, `*-avg`, `*-max`) in
    /// milliseconds (`metrics.sample.window.ms`); see [`crate::metrics`]. Default: 30000.
    pub metrics_sample_window_ms: i64,
    /// Samples the windowed metrics keep (`metrics.num.samples`): they cover the last
    /// `metrics.num.samples × metrics.sample.window.ms`. Default: 2.
    pub metrics_num_samples: u32,
    /// A static member's fixed identity in its group (`group.instance.id`): 1 to 249 of
    /// `a-z A-Z 0-9 . _ -`. A consumer joining with the id of a current member replaces it, as
    /// in Kafka: the older one is fenced ([`crate::Error::FencedInstanceId`]).
    /// Default: `None` (a dynamic member).
    pub group_instance_id: Option<String>,
    /// Where to start without a valid committed offset (`auto.offset.reset`).
    /// Default: [`OffsetReset::Latest`].
    pub auto_offset_reset: OffsetReset,
    /// Commit positions from inside `poll` every `auto.commit.interval.ms`
    /// (`enable.auto.commit`). Has no effect without a `group_id`: see
    /// [`ConsumerConfig::auto_commit_enabled`]. Default: true.
    pub enable_auto_commit: bool,
    /// Interval between automatic commits (`auto.commit.interval.ms`). Default: 5000.
    pub auto_commit_interval_ms: u32,
    /// Most records one `poll` returns (`max.poll.records`). Default: 500.
    pub max_poll_records: u32,
    /// Longest allowed gap between `poll` calls before the member leaves its group
    /// (`max.poll.interval.ms`). Default: 300000.
    pub max_poll_interval_ms: u32,
    /// A member that shows no sign of life for this long is removed from its group
    /// (`session.timeout.ms`). Default: 45000.
    pub session_timeout_ms: u32,
    /// Most bytes one fetch returns across partitions (`fetch.max.bytes`). Default: 52428800.
    pub fetch_max_bytes: u32,
    /// Most bytes one fetch returns per partition (`max.partition.fetch.bytes`).
    /// Default: 1048576.
    pub max_partition_fetch_bytes: u32,
    /// A fetch waits for at least this many bytes (`fetch.min.bytes`). Default: 1.
    pub fetch_min_bytes: u32,
    /// ... or for at most this long (`fetch.max.wait.ms`). Default: 500.
    pub fetch_max_wait_ms: u32,
    /// Assignors this member supports, preferred first (`partition.assignment.strategy`,
    /// comma-separated). Default: `[Range, CooperativeSticky]`, as Kafka.
    pub partition_assignment_strategy: Vec<AssignmentStrategy>,
    /// Which records are visible (`isolation.level`). Default:
    /// [`IsolationLevel::ReadUncommitted`]. `ReadCommitted` reads only up to the last stable
    /// offset and drops the records of aborted transactions.
    pub isolation_level: IsolationLevel,
    /// How long the first rebalance of an empty group waits for more members
    /// (`group.initial.rebalance.delay.ms`; a broker setting in Kafka). Default: 0 (Kafka's
    /// broker: 3000; see the module docs).
    pub group_initial_rebalance_delay_ms: u32,

    /// The keys given that were accepted and ignored ([`Self::ignored_keys`]).
    ignored: IgnoredKeys,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            ignored: IgnoredKeys::default(),
            group_id: None,
            client_id: String::new(),
            metrics_sample_window_ms: 30_000,
            metrics_num_samples: 2,
            group_instance_id: None,
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5000,
            max_poll_records: 500,
            max_poll_interval_ms: 300_000,
            session_timeout_ms: 45_000,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            fetch_min_bytes: 1,
            fetch_max_wait_ms: 500,
            partition_assignment_strategy: vec![
                AssignmentStrategy::Range,
                AssignmentStrategy::CooperativeSticky,
            ],
            isolation_level: IsolationLevel::ReadUncommitted,
            group_initial_rebalance_delay_ms: 0,
        }
    }
}

const INT_MAX: u32 = i32::MAX as u32;

/// Longest `group.instance.id`, as Kafka's topic-name rule it borrows.
const GROUP_INSTANCE_ID_LEN_MAX: usize = 249;

const OFFSET_RESET: &[(&str, OffsetReset)] = &[
    ("earliest", OffsetReset::Earliest),
    ("latest", OffsetReset::Latest),
    ("none", OffsetReset::None),
    // librdkafka's spellings.
    ("smallest", OffsetReset::Earliest),
    ("beginning", OffsetReset::Earliest),
    ("largest", OffsetReset::Latest),
    ("end", OffsetReset::Latest),
    ("error", OffsetReset::None),
];

const ASSIGNORS: &[(&str, AssignmentStrategy)] = &[
    ("range", AssignmentStrategy::Range),
    (
        "org.apache.kafka.clients.consumer.RangeAssignor",
        AssignmentStrategy::Range,
    ),
    ("roundrobin", AssignmentStrategy::RoundRobin),
    ("round_robin", AssignmentStrategy::RoundRobin),
    (
        "org.apache.kafka.clients.consumer.RoundRobinAssignor",
        AssignmentStrategy::RoundRobin,
    ),
    ("sticky", AssignmentStrategy::Sticky),
    (
        "org.apache.kafka.clients.consumer.StickyAssignor",
        AssignmentStrategy::Sticky,
    ),
    ("cooperative-sticky", AssignmentStrategy::CooperativeSticky),
    ("cooperative_sticky", AssignmentStrategy::CooperativeSticky),
    (
        "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
        AssignmentStrategy::CooperativeSticky,
    ),
];

const ISOLATION: &[(&str, IsolationLevel)] = &[
    ("read_uncommitted", IsolationLevel::ReadUncommitted),
    ("read_committed", IsolationLevel::ReadCommitted),
];

impl ConsumerConfig {
    /// The keys `from_properties` accepts and uses, in the order `to_properties` writes them.
    pub const KEYS: &'static [&'static str] = &[
        "group.id",
        "client.id",
        "group.instance.id",
        "auto.offset.reset",
        "enable.auto.commit",
        "auto.commit.interval.ms",
        "max.poll.records",
        "max.poll.interval.ms",
        "session.timeout.ms",
        "fetch.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.min.bytes",
        "fetch.max.wait.ms",
        "partition.assignment.strategy",
        "isolation.level",
        "group.initial.rebalance.delay.ms",
        "metrics.sample.window.ms",
        "metrics.num.samples",
    ];

    /// Keys Kafka defines that `from_properties` and `from_file` accept and ignore, each with
    /// the reason it cannot apply in one process.
    pub const IGNORED_KEYS: &'static [(&'static str, &'static str)] = known_keys::CONSUMER_IGNORED;

    /// librdkafka's names accepted for Kafka's keys: `(librdkafka, Kafka)`.
    pub const ALIASES: &'static [(&'static str, &'static str)] = known_keys::CONSUMER_ALIASES;

    setters! {
        /// Sets `auto.offset.reset`.
        auto_offset_reset: OffsetReset,
        /// Sets `enable.auto.commit`.
        enable_auto_commit: bool,
        /// Sets `auto.commit.interval.ms`.
        auto_commit_interval_ms: u32,
        /// Sets `metrics.sample.window.ms`.
        metrics_sample_window_ms: i64,
        /// Sets `metrics.num.samples`.
        metrics_num_samples: u32,
        /// Sets `max.poll.records`.
        max_poll_records: u32,
        /// Sets `max.poll.interval.ms`.
        max_poll_interval_ms: u32,
        /// Sets `session.timeout.ms`.
        session_timeout_ms: u32,
        /// Sets `fetch.max.bytes`.
        fetch_max_bytes: u32,
        /// Sets `max.partition.fetch.bytes`.
        max_partition_fetch_bytes: u32,
        /// Sets `fetch.min.bytes`.
        fetch_min_bytes: u32,
        /// Sets `fetch.max.wait.ms`.
        fetch_max_wait_ms: u32,
        /// Sets `partition.assignment.strategy`.
        partition_assignment_strategy: Vec<AssignmentStrategy>,
        /// Sets `isolation.level`.
        isolation_level: IsolationLevel,
        /// Sets `group.initial.rebalance.delay.ms`.
        group_initial_rebalance_delay_ms: u32,
    }

    /// Sets `group.id` (clear it by assigning `None` to the field).
    #[must_use]
    pub fn group_id(mut self, value: impl Into<String>) -> Self {
        self.group_id = Some(value.into());
        self
    }

    /// Sets `client.id`.
    #[must_use]
    pub fn client_id(mut self, value: impl Into<String>) -> Self {
        self.client_id = value.into();
        self
    }

    /// Sets `group.instance.id`, making this a static member (clear it by assigning `None` to
    /// the field).
    #[must_use]
    pub fn group_instance_id(mut self, value: impl Into<String>) -> Self {
        self.group_instance_id = Some(value.into());
        self
    }

    /// Whether offsets are committed automatically: `enable.auto.commit` and a `group.id`.
    ///
    /// Kafka turns auto-commit off when there is no `group.id`, and rejects an explicit
    /// `enable.auto.commit=true` then; here the flag is simply without effect, so that the
    /// default config (which says `true`) round trips through properties.
    pub fn auto_commit_enabled(&self) -> bool {
        self.enable_auto_commit && self.group_id.is_some()
    }

    /// Kafka's defaults (with no initial rebalance delay), with Kafka's keys applied over them;
    /// unknown keys and bad values are errors naming the key.
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(props: &[(K, V)]) -> Result<Self> {
        ConsumerConfig::default().with_properties(props)
    }

    /// This config with the given Kafka keys applied over it, then validated.
    pub fn with_properties<K: AsRef<str>, V: AsRef<str>>(self, props: &[(K, V)]) -> Result<Self> {
        load::apply(self, props.iter().map(|(k, v)| (k, v, None)), None)
    }

    /// This library's defaults with the keys of a Java `.properties` file applied over them
    /// (`#`/`!` comments, `=`/`:`/space separators, continuation lines and escapes, as
    /// `java.util.Properties.load`). Keys Kafka defines that cannot apply in one process are
    /// accepted, listed by [`ConsumerConfig::ignored_keys`] and logged once; librdkafka's aliases are
    /// accepted; any other key is an error naming it, its line and the closest known key.
    ///
    /// ```
    /// use embroker::{ConsumerConfig, OffsetReset};
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("consumer.properties");
    /// std::fs::write(&path, "\
    ///     bootstrap.servers=localhost:9092\n\
    ///     group.id=test-consumer-group\n\
    ///     auto.offset.reset=smallest\n")?; // librdkafka's spelling of earliest
    /// let config = ConsumerConfig::from_file(&path)?;
    /// assert_eq!(config.group_id.as_deref(), Some("test-consumer-group"));
    /// assert_eq!(config.auto_offset_reset, OffsetReset::Earliest);
    /// assert_eq!(config.ignored_keys(), ["bootstrap.servers"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        load::apply_file(ConsumerConfig::default(), path.as_ref())
    }

    /// The keys given to this config that it accepted and ignored because they cannot apply in
    /// one process (`bootstrap.servers`, `security.protocol`, ...), as written, in the order
    /// first given. See [`ConsumerConfig::IGNORED_KEYS`] for every such key and why.
    pub fn ignored_keys(&self) -> &[String] {
        self.ignored.as_slice()
    }

    /// Sets one Kafka key.
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "group.id" => self.group_id = Some(value.to_string()),
            "client.id" => self.client_id = value.to_string(),
            "metrics.sample.window.ms" => {
                self.metrics_sample_window_ms = parse_i64(key, value, 0, i64::MAX)?
            }
            "metrics.num.samples" => self.metrics_num_samples = parse_u32(key, value, 1, INT_MAX)?,
            "group.instance.id" => self.group_instance_id = Some(value.to_string()),
            "auto.offset.reset" => {
                self.auto_offset_reset =
                    parse_choice(key, value, OFFSET_RESET, "earliest, latest or none (or librdkafka's smallest, beginning, largest, end, error)")?;
            }
            "enable.auto.commit" => self.enable_auto_commit = parse_bool(key, value)?,
            "auto.commit.interval.ms" => {
                self.auto_commit_interval_ms = parse_u32(key, value, 0, INT_MAX)?;
            }
            "max.poll.records" => self.max_poll_records = parse_u32(key, value, 1, INT_MAX)?,
            "max.poll.interval.ms" => {
                self.max_poll_interval_ms = parse_u32(key, value, 1, INT_MAX)?;
            }
            "session.timeout.ms" => self.session_timeout_ms = parse_u32(key, value, 1, INT_MAX)?,
            "fetch.max.bytes" => self.fetch_max_bytes = parse_u32(key, value, 0, INT_MAX)?,
            "max.partition.fetch.bytes" => {
                self.max_partition_fetch_bytes = parse_u32(key, value, 0, INT_MAX)?;
            }
            "fetch.min.bytes" => self.fetch_min_bytes = parse_u32(key, value, 0, INT_MAX)?,
            "fetch.max.wait.ms" => self.fetch_max_wait_ms = parse_u32(key, value, 0, INT_MAX)?,
            "partition.assignment.strategy" => {
                self.partition_assignment_strategy = list_items(value)
                    .map(|item| parse_assignor(key, value, item))
                    .collect::<Result<_>>()?;
            }
            "isolation.level" => {
                self.isolation_level =
                    parse_choice(key, value, ISOLATION, "read_uncommitted or read_committed")?;
            }
            "group.initial.rebalance.delay.ms" => {
                self.group_initial_rebalance_delay_ms = parse_u32(key, value, 0, INT_MAX)?;
            }
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

    /// Checks every field against Kafka's bounds and what is implemented; the error names the
    /// key.
    pub fn validate(&self) -> Result<()> {
        if let Some(group) = &self.group_id {
            if group.is_empty() {
                return Err(Error::config(
                    "group.id",
                    group,
                    "must not be empty (leave it unset for a consumer without a group)",
                ));
            }
        }
        if let Some(id) = &self.group_instance_id {
            check_group_instance_id(id)?;
        }
        check_range(
            "auto.commit.interval.ms",
            self.auto_commit_interval_ms,
            0,
            INT_MAX,
        )?;
        check_range("max.poll.records", self.max_poll_records, 1, INT_MAX)?;
        check_range(
            "max.poll.interval.ms",
            self.max_poll_interval_ms,
            1,
            INT_MAX,
        )?;
        check_range("session.timeout.ms", self.session_timeout_ms, 1, INT_MAX)?;
        check_range("fetch.max.bytes", self.fetch_max_bytes, 0, INT_MAX)?;
        check_range(
            "max.partition.fetch.bytes",
            self.max_partition_fetch_bytes,
            0,
            INT_MAX,
        )?;
        check_range("fetch.min.bytes", self.fetch_min_bytes, 0, INT_MAX)?;
        check_range("fetch.max.wait.ms", self.fetch_max_wait_ms, 0, INT_MAX)?;
        check_range(
            "metrics.sample.window.ms",
            self.metrics_sample_window_ms,
            0,
            i64::MAX,
        )?;
        check_range("metrics.num.samples", self.metrics_num_samples, 1, INT_MAX)?;
        self.check_assignors()?;
        check_range(
            "group.initial.rebalance.delay.ms",
            self.group_initial_rebalance_delay_ms,
            0,
            INT_MAX,
        )?;
        Ok(())
    }

    fn check_assignors(&self) -> Result<()> {
        const KEY: &str = "partition.assignment.strategy";
        let list = &self.partition_assignment_strategy;
        let text = || list_value(list);
        if list.is_empty() {
            return Err(Error::config(
                KEY,
                text(),
                "must name at least one assignor",
            ));
        }
        for (i, a) in list.iter().enumerate() {
            if list[..i].contains(a) {
                return Err(Error::config(
                    KEY,
                    text(),
                    format!("lists {} twice", a.as_str()),
                ));
            }
        }
        Ok(())
    }

    /// Every setting as Kafka's `(key, value)` pairs, in [`ConsumerConfig::KEYS`] order;
    /// `group.id` and `group.instance.id` are left out when unset.
    pub fn to_properties(&self) -> Vec<(&'static str, String)> {
        let mut props = Vec::with_capacity(Self::KEYS.len());
        if let Some(group) = &self.group_id {
            props.push(("group.id", group.clone()));
        }
        props.push(("client.id", self.client_id.clone()));
        if let Some(id) = &self.group_instance_id {
            props.push(("group.instance.id", id.clone()));
        }
        props.extend([
            (
                "auto.offset.reset",
                self.auto_offset_reset.as_str().to_string(),
            ),
            ("enable.auto.commit", self.enable_auto_commit.to_string()),
            (
                "auto.commit.interval.ms",
                self.auto_commit_interval_ms.to_string(),
            ),
            ("max.poll.records", self.max_poll_records.to_string()),
            (
                "max.poll.interval.ms",
                self.max_poll_interval_ms.to_string(),
            ),
            ("session.timeout.ms", self.session_timeout_ms.to_string()),
            ("fetch.max.bytes", self.fetch_max_bytes.to_string()),
            (
                "max.partition.fetch.bytes",
                self.max_partition_fetch_bytes.to_string(),
            ),
            ("fetch.min.bytes", self.fetch_min_bytes.to_string()),
            ("fetch.max.wait.ms", self.fetch_max_wait_ms.to_string()),
            (
                "partition.assignment.strategy",
                list_value(&self.partition_assignment_strategy),
            ),
            ("isolation.level", self.isolation_level.as_str().to_string()),
            (
                "group.initial.rebalance.delay.ms",
                self.group_initial_rebalance_delay_ms.to_string(),
            ),
            (
                "metrics.sample.window.ms",
                self.metrics_sample_window_ms.to_string(),
            ),
            ("metrics.num.samples", self.metrics_num_samples.to_string()),
        ]);
        props
    }
}

/// One entry of a `partition.assignment.strategy` list; the error quotes the whole value.
fn parse_assignor(key: &str, value: &str, item: &str) -> Result<AssignmentStrategy> {
    ASSIGNORS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(item))
        .map(|(_, assignor)| *assignor)
        .ok_or_else(|| {
            Error::config(
                key,
                value,
                format!(
                    "unknown assignor {item:?}; must be range, roundrobin, sticky, \
                     cooperative-sticky, or one of Kafka's assignor class names"
                ),
            )
        })
}

/// The comma-separated spelling of an assignor list.
fn list_value(list: &[AssignmentStrategy]) -> String {
    list.iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Kafka's rule for `group.instance.id` (`JoinGroupRequest.validateGroupInstanceId`): 1 to 249
/// characters of `a-z A-Z 0-9 . _ -`, and not `.` or `..`.
fn check_group_instance_id(id: &str) -> Result<()> {
    const KEY: &str = "group.instance.id";
    if id.is_empty() {
        return Err(Error::config(KEY, id, "must not be empty"));
    }
    if id == "." || id == ".." {
        return Err(Error::config(KEY, id, "must not be \".\" or \"..\""));
    }
    if id.len() > GROUP_INSTANCE_ID_LEN_MAX {
        return Err(Error::config(
            KEY,
            id,
            format!("must be at most {GROUP_INSTANCE_ID_LEN_MAX} characters"),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Error::config(
            KEY,
            id,
            "may contain only ASCII letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

impl KafkaKeys for ConsumerConfig {
    const CATALOGUE: Catalogue = Catalogue {
        what: "consumer",
        applied: ConsumerConfig::KEYS,
        ignored: known_keys::CONSUMER_IGNORED,
        aliases: known_keys::CONSUMER_ALIASES,
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
    use proptest::prelude::*;

    fn parse(key: &str, value: &str) -> Result<ConsumerConfig> {
        ConsumerConfig::from_properties(&[(key, value)])
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
        let c = ConsumerConfig::default();
        assert_eq!(
            (c.metrics_sample_window_ms, c.metrics_num_samples),
            (30_000, 2)
        );
        let c = ConsumerConfig::from_properties(&[
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
        assert!(ConsumerConfig::default()
            .metrics_num_samples(0)
            .validate()
            .is_err());
    }

    #[test]
    fn defaults() {
        let c = ConsumerConfig::default();
        assert_eq!(c.group_id, None);
        assert_eq!(c.client_id, "");
        assert_eq!(c.group_instance_id, None);
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert!(c.enable_auto_commit);
        assert!(!c.auto_commit_enabled(), "no group, no auto-commit");
        assert_eq!(c.auto_commit_interval_ms, 5000);
        assert_eq!(c.max_poll_records, 500);
        assert_eq!(c.max_poll_interval_ms, 300_000);
        assert_eq!(c.session_timeout_ms, 45_000);
        assert_eq!(c.fetch_max_bytes, 52_428_800);
        assert_eq!(c.max_partition_fetch_bytes, 1_048_576);
        assert_eq!(c.fetch_min_bytes, 1);
        assert_eq!(c.fetch_max_wait_ms, 500);
        assert_eq!(
            c.partition_assignment_strategy,
            [
                AssignmentStrategy::Range,
                AssignmentStrategy::CooperativeSticky
            ]
        );
        assert_eq!(c.isolation_level, IsolationLevel::ReadUncommitted);
        assert_eq!(c.group_initial_rebalance_delay_ms, 0);
        c.validate().unwrap();
        assert_eq!(
            ConsumerConfig::from_properties::<&str, &str>(&[]).unwrap(),
            c
        );
    }

    #[test]
    fn group_and_client_ids() {
        let c = ConsumerConfig::from_properties(&[
            ("group.id", "billing"),
            ("client.id", "c-1"),
            ("group.instance.id", "host-1.pod_2"),
        ])
        .unwrap();
        assert_eq!(c.group_id.as_deref(), Some("billing"));
        assert_eq!(c.client_id, "c-1");
        assert_eq!(c.group_instance_id.as_deref(), Some("host-1.pod_2"));
        assert!(c.auto_commit_enabled());
        assert_names_key("group.id", "");
        for bad in ["", ".", "..", "a b", "é", &"x".repeat(250)] {
            assert_names_key("group.instance.id", bad);
        }
        assert!(parse("group.instance.id", &"x".repeat(249)).is_ok());
    }

    #[test]
    fn auto_offset_reset_spellings() {
        for (text, reset) in [
            ("earliest", OffsetReset::Earliest),
            ("latest", OffsetReset::Latest),
            ("none", OffsetReset::None),
            ("Earliest", OffsetReset::Earliest),
            ("smallest", OffsetReset::Earliest),
            ("beginning", OffsetReset::Earliest),
            ("largest", OffsetReset::Latest),
            ("end", OffsetReset::Latest),
            ("error", OffsetReset::None),
        ] {
            assert_eq!(
                parse("auto.offset.reset", text).unwrap().auto_offset_reset,
                reset
            );
        }
        for bad in ["first", "", "by_duration:PT1H"] {
            assert_names_key("auto.offset.reset", bad);
        }
    }

    #[test]
    fn auto_commit_takes_effect_only_with_a_group() {
        assert_names_key("enable.auto.commit", "sometimes");
        let c = parse("enable.auto.commit", "false").unwrap();
        assert!(!c.enable_auto_commit);
        let c = parse("enable.auto.commit", "true").unwrap();
        assert!(c.enable_auto_commit);
        assert!(!c.auto_commit_enabled());
        assert!(c.group_id("g").auto_commit_enabled());
        assert!(!ConsumerConfig::default()
            .group_id("g")
            .enable_auto_commit(false)
            .auto_commit_enabled());
    }

    #[test]
    fn numeric_keys_take_good_values_and_name_the_key_on_bad_ones() {
        let c = ConsumerConfig::from_properties(&[
            ("auto.commit.interval.ms", "0"),
            ("max.poll.records", "1"),
            ("max.poll.interval.ms", "2147483647"),
            ("session.timeout.ms", "100"),
            ("fetch.max.bytes", "0"),
            ("max.partition.fetch.bytes", "7"),
            ("fetch.min.bytes", "0"),
            ("fetch.max.wait.ms", "0"),
            ("group.initial.rebalance.delay.ms", "3000"),
        ])
        .unwrap();
        assert_eq!(c.auto_commit_interval_ms, 0);
        assert_eq!(c.max_poll_records, 1);
        assert_eq!(c.max_poll_interval_ms, INT_MAX);
        assert_eq!(c.session_timeout_ms, 100);
        assert_eq!(c.fetch_max_bytes, 0);
        assert_eq!(c.max_partition_fetch_bytes, 7);
        assert_eq!(c.fetch_min_bytes, 0);
        assert_eq!(c.fetch_max_wait_ms, 0);
        assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
        for (key, bad) in [
            ("auto.commit.interval.ms", "-1"),
            ("max.poll.records", "0"),
            ("max.poll.interval.ms", "0"),
            ("session.timeout.ms", "0"),
            ("session.timeout.ms", "45s"),
            ("fetch.max.bytes", "2147483648"),
            ("max.partition.fetch.bytes", "-1"),
            ("fetch.min.bytes", "x"),
            ("fetch.max.wait.ms", "1e3"),
            ("group.initial.rebalance.delay.ms", "-3000"),
        ] {
            assert_names_key(key, bad);
        }
    }

    #[test]
    fn assignment_strategy_lists() {
        use AssignmentStrategy::*;
        for (text, list) in [
            ("range", vec![Range]),
            ("roundrobin, sticky", vec![RoundRobin, Sticky]),
            ("cooperative-sticky", vec![CooperativeSticky]),
            (
                "org.apache.kafka.clients.consumer.RangeAssignor,\
                 org.apache.kafka.clients.consumer.RoundRobinAssignor,\
                 org.apache.kafka.clients.consumer.StickyAssignor,\
                 org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
                vec![Range, RoundRobin, Sticky, CooperativeSticky],
            ),
        ] {
            assert_eq!(
                parse("partition.assignment.strategy", text)
                    .unwrap()
                    .partition_assignment_strategy,
                list,
                "{text}"
            );
        }
        for bad in [
            "",
            " , ",
            "range,range",
            "range,fancy",
            "org.example.MyAssignor",
        ] {
            assert_names_key("partition.assignment.strategy", bad);
        }
        let e = ConsumerConfig::default()
            .partition_assignment_strategy(vec![])
            .validate()
            .unwrap_err();
        assert!(
            e.to_string().contains("partition.assignment.strategy"),
            "{e}"
        );
    }

    #[test]
    fn isolation_level_takes_both_kafka_values() {
        assert_eq!(
            parse("isolation.level", "read_uncommitted")
                .unwrap()
                .isolation_level,
            IsolationLevel::ReadUncommitted
        );
        let c = parse("isolation.level", "read_committed").unwrap();
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
        assert!(c.validate().is_ok());
        assert_names_key("isolation.level", "serializable");
    }

    #[test]
    fn unknown_keys_are_rejected_and_bootstrap_servers_ignored() {
        for key in ["key.deserialiser", "acks", "group_id", ""] {
            assert_names_key(key, "1");
        }
        assert_eq!(
            parse("bootstrap.servers", "k:9092").unwrap(),
            ConsumerConfig::default()
        );
    }

    #[test]
    fn typed_setters_are_validated_naming_the_key() {
        for (config, key) in [
            (ConsumerConfig::default().group_id(""), "group.id"),
            (
                ConsumerConfig::default().group_instance_id("a/b"),
                "group.instance.id",
            ),
            (
                ConsumerConfig::default().max_poll_records(0),
                "max.poll.records",
            ),
            (
                ConsumerConfig::default().max_poll_interval_ms(0),
                "max.poll.interval.ms",
            ),
            (
                ConsumerConfig::default().session_timeout_ms(0),
                "session.timeout.ms",
            ),
            (
                ConsumerConfig::default().auto_commit_interval_ms(INT_MAX + 1),
                "auto.commit.interval.ms",
            ),
            (
                ConsumerConfig::default().fetch_max_bytes(u32::MAX),
                "fetch.max.bytes",
            ),
            (
                ConsumerConfig::default().max_partition_fetch_bytes(u32::MAX),
                "max.partition.fetch.bytes",
            ),
            (
                ConsumerConfig::default().fetch_min_bytes(u32::MAX),
                "fetch.min.bytes",
            ),
            (
                ConsumerConfig::default().fetch_max_wait_ms(u32::MAX),
                "fetch.max.wait.ms",
            ),
            (
                ConsumerConfig::default().group_initial_rebalance_delay_ms(u32::MAX),
                "group.initial.rebalance.delay.ms",
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
        let cfg = ConsumerConfig::default()
            .group_id("g")
            .client_id("c")
            .group_instance_id("i-1")
            .auto_offset_reset(OffsetReset::None)
            .enable_auto_commit(false)
            .auto_commit_interval_ms(1)
            .max_poll_records(2)
            .max_poll_interval_ms(3)
            .session_timeout_ms(4)
            .fetch_max_bytes(5)
            .max_partition_fetch_bytes(6)
            .fetch_min_bytes(7)
            .fetch_max_wait_ms(8)
            .partition_assignment_strategy(vec![
                AssignmentStrategy::CooperativeSticky,
                AssignmentStrategy::Sticky,
                AssignmentStrategy::RoundRobin,
                AssignmentStrategy::Range,
            ])
            .group_initial_rebalance_delay_ms(9);
        let props = cfg.to_properties();
        assert_eq!(props.len(), ConsumerConfig::KEYS.len());
        for ((k, _), key) in props.iter().zip(ConsumerConfig::KEYS) {
            assert_eq!(k, key);
        }
        assert_eq!(ConsumerConfig::from_properties(&props).unwrap(), cfg);
        // Unset optional ids are left out, and still round trip.
        let plain = ConsumerConfig::default();
        let props = plain.to_properties();
        assert_eq!(props.len(), ConsumerConfig::KEYS.len() - 2);
        assert_eq!(ConsumerConfig::from_properties(&props).unwrap(), plain);
    }

    proptest! {
        #[test]
        fn from_properties_never_panics(
            pairs in proptest::collection::vec((".{0,40}", ".{0,40}"), 0..6),
        ) {
            let _ = ConsumerConfig::from_properties(&pairs);
        }

        #[test]
        fn known_keys_with_arbitrary_values_never_panic(
            index in 0..ConsumerConfig::KEYS.len(),
            value in ".{0,40}",
        ) {
            let key = ConsumerConfig::KEYS[index];
            match ConsumerConfig::from_properties(&[(key, value.as_str())]) {
                Ok(c) => prop_assert!(c.validate().is_ok()),
                Err(Error::InvalidConfig { key: k, .. }) => prop_assert_eq!(k, key),
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
    }
}
