//! [`StreamsConfig`]: the settings of a streams application (Kafka's `StreamsConfig`).
//!
//! Owns: parsing and checking Kafka's keys. Invariant: every key Kafka defines that this
//! layer knows is checked (a bad value is an error naming the key), a key it does not know
//! is an error naming it, and the keys that only the runtime uses (threads, commit interval,
//! state directory, processing guarantee, client id) are kept, checked, for the runtime.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Kafka's default `statestore.cache.max.bytes`: 10 MiB.
const DEFAULT_CACHE_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// Kafka's `processing.guarantee`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProcessingGuarantee {
    /// `at_least_once`: records may be processed again after a failure.
    #[default]
    AtLeastOnce,
    /// `exactly_once_v2`: each record's effects are committed once, in transactions.
    ExactlyOnceV2,
}

/// The settings of a streams application.
///
/// ```
/// use embroker::streams::StreamsConfig;
/// let config = StreamsConfig::from_properties(&[
///     ("application.id", "wordcount"),
///     ("bootstrap.servers", "localhost:9092"),
///     ("cache.max.bytes.buffering", "0"),
/// ])?;
/// assert_eq!(config.application_id(), "wordcount");
/// assert!(StreamsConfig::from_properties(&[("application.id", "a b")]).is_err());
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamsConfig {
    application_id: String,
    num_stream_threads: u32,
    /// `None`: not set, so the guarantee's default applies (Kafka's `StreamsConfig`).
    commit_interval_ms: Option<u64>,
    processing_guarantee: ProcessingGuarantee,
    state_dir: Option<PathBuf>,
    cache_max_bytes: u64,
    client_id: Option<String>,
}

impl StreamsConfig {
    /// A config for `application_id` (Kafka's `application.id`: the consumer group, the
    /// prefix of internal topics), every other key at Kafka's default. The id is checked
    /// when the config is used: see [`validate`](Self::validate).
    pub fn new(application_id: impl Into<String>) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            num_stream_threads: 1,
            commit_interval_ms: None,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            state_dir: None,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            client_id: None,
        }
    }

    /// A config from Kafka's keys: `application.id` (required), `bootstrap.servers`
    /// (accepted: there is no network), `num.stream.threads`, `commit.interval.ms`,
    /// `processing.guarantee` (`at_least_once`, `exactly_once_v2`), `state.dir`, `client.id`,
    /// `cache.max.bytes.buffering` and `statestore.cache.max.bytes` (the record caches'
    /// budget, see [`Materialized`](super::Materialized)). Another key is an error naming it.
    pub fn from_properties(properties: &[(&str, &str)]) -> Result<Self> {
        if !properties.iter().any(|(k, _)| *k == "application.id") {
            return Err(Error::config("application.id", "", "is required"));
        }
        StreamsConfig::new("").with_properties(properties)
    }

    /// This config with Kafka's keys applied, as [`from_properties`](Self::from_properties)
    /// reads them (`application.id` optional here), also `client.id` (the prefix of the
    /// threads' client and transactional ids; default `<application.id>-<n>`, `n` counting
    /// the instances made in this process).
    ///
    /// ```
    /// use embroker::streams::StreamsConfig;
    /// let config = StreamsConfig::new("app").with_properties(&[("num.stream.threads", "2")])?;
    /// assert_eq!(config.num_stream_threads(), 2);
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn with_properties(mut self, properties: &[(&str, &str)]) -> Result<Self> {
        let config = &mut self;
        for &(key, value) in properties {
            match key {
                "application.id" => config.application_id = value.to_string(),
                "client.id" => config.client_id = Some(value.to_string()),
                "bootstrap.servers" => {}
                "num.stream.threads" => {
                    config.num_stream_threads = parse(key, value)?;
                    if config.num_stream_threads == 0 {
                        return Err(Error::config(key, value, "must be at least 1"));
                    }
                }
                "commit.interval.ms" => config.commit_interval_ms = Some(parse(key, value)?),
                "processing.guarantee" => {
                    config.processing_guarantee = match value {
                        "at_least_once" => ProcessingGuarantee::AtLeastOnce,
                        "exactly_once_v2" => ProcessingGuarantee::ExactlyOnceV2,
                        _ => {
                            return Err(Error::config(
                                key,
                                value,
                                "must be at_least_once or exactly_once_v2",
                            ))
                        }
                    }
                }
                "state.dir" => config.state_dir = Some(PathBuf::from(value)),
                "cache.max.bytes.buffering" | "statestore.cache.max.bytes" => {
                    config.cache_max_bytes = parse(key, value)?
                }
                _ => {
                    return Err(Error::config(
                        key,
                        value,
                        "not a Kafka Streams config key that embroker knows",
                    ))
                }
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// Check the config: `application.id` is non-empty and of Kafka's legal characters
    /// (ASCII letters, digits, `.`, `_`, `-`), since it prefixes topic names.
    pub fn validate(&self) -> Result<()> {
        let id = &self.application_id;
        if id.is_empty() {
            return Err(Error::config("application.id", id, "must not be empty"));
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(Error::config(
                "application.id",
                id,
                format!("{c:?} is not allowed: use ASCII letters, digits, '.', '_' and '-'"),
            ));
        }
        Ok(())
    }

    /// `application.id`.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// `num.stream.threads` (used by the runtime). Default: 1.
    pub fn num_stream_threads(&self) -> u32 {
        self.num_stream_threads
    }

    /// `commit.interval.ms` (used by the runtime). Default, as Kafka's: 30,000 under
    /// at-least-once, 100 under `exactly_once_v2` (where a commit ends a transaction, and
    /// downstream `read_committed` consumers see output only then).
    ///
    /// ```
    /// use embroker::streams::StreamsConfig;
    /// let alo = StreamsConfig::new("app");
    /// assert_eq!(alo.commit_interval_ms(), 30_000);
    /// let eos = alo.with_properties(&[("processing.guarantee", "exactly_once_v2")])?;
    /// assert_eq!(eos.commit_interval_ms(), 100);
    /// let set = eos.with_properties(&[("commit.interval.ms", "5000")])?;
    /// assert_eq!(set.commit_interval_ms(), 5_000);
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn commit_interval_ms(&self) -> u64 {
        match (self.commit_interval_ms, self.processing_guarantee) {
            (Some(ms), _) => ms,
            (None, ProcessingGuarantee::AtLeastOnce) => 30_000,
            (None, ProcessingGuarantee::ExactlyOnceV2) => 100,
        }
    }

    /// `processing.guarantee` (used by the runtime). Default: at least once.
    pub fn processing_guarantee(&self) -> ProcessingGuarantee {
        self.processing_guarantee
    }

    /// `state.dir` (used by persistent stores). Default: none set.
    pub fn state_dir(&self) -> Option<&std::path::Path> {
        self.state_dir.as_deref()
    }

    /// `client.id`, if set.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// `statestore.cache.max.bytes` (or the older `cache.max.bytes.buffering`): the bytes of
    /// record cache a stream thread may hold, divided among its cached stores' caches; 0
    /// turns caching off. Default: 10 MiB, as Kafka's. Under the runtime a cache is flushed
    /// at every commit (and a key when the budget evicts it); in the test driver after every
    /// record, as Kafka's driver commits after every record.
    pub fn cache_max_bytes(&self) -> u64 {
        self.cache_max_bytes
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::config(key, value, "not a non-negative integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_named() {
        let c = StreamsConfig::from_properties(&[
            ("application.id", "app-1.x_y"),
            ("num.stream.threads", "4"),
            ("commit.interval.ms", "100"),
            ("processing.guarantee", "exactly_once_v2"),
            ("state.dir", "/tmp/s"),
            ("statestore.cache.max.bytes", "0"),
        ])
        .unwrap();
        assert_eq!(c.num_stream_threads(), 4);
        assert_eq!(c.commit_interval_ms(), 100);
        assert_eq!(c.processing_guarantee(), ProcessingGuarantee::ExactlyOnceV2);
        assert_eq!(c.state_dir(), Some(std::path::Path::new("/tmp/s")));
        assert_eq!(c.client_id(), None);
        let c = c.with_properties(&[("client.id", "app-x")]).unwrap();
        assert_eq!(c.client_id(), Some("app-x"));
        assert_eq!(c.num_stream_threads(), 4, "other keys kept");
        assert!(c.with_properties(&[("num.stream.threads", "0")]).is_err());
        for (props, key) in [
            (vec![("bootstrap.servers", "x")], "application.id"),
            (vec![("application.id", "")], "application.id"),
            (vec![("application.id", "a/b")], "application.id"),
            (
                vec![("application.id", "a"), ("num.stream.threads", "0")],
                "num.stream.threads",
            ),
            (
                vec![("application.id", "a"), ("commit.interval.ms", "-1")],
                "commit.interval.ms",
            ),
            (
                vec![
                    ("application.id", "a"),
                    ("processing.guarantee", "exactly_once"),
                ],
                "processing.guarantee",
            ),
            (
                vec![("application.id", "a"), ("default.key.serde", "x")],
                "default.key.serde",
            ),
        ] {
            let text = StreamsConfig::from_properties(&props)
                .unwrap_err()
                .to_string();
            assert!(text.contains(key), "{text}");
        }
    }
}
