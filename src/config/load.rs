//! Applying Kafka keys to a config: the part every config shares. Each key is looked up in the
//! config's catalogue ([`known_keys`](super::known_keys)): applied keys go to the config's own
//! setter, ignored keys are recorded on the config and logged once per load, unknown keys are
//! errors that suggest the closest known key.

use std::fmt;
use std::path::Path;

use crate::config::java_properties;
use crate::config::known_keys::{Catalogue, Lookup};
use crate::error::{Error, Result};

/// The keys a config accepted and ignored, in the order first given.
///
/// Provenance, not configuration: two configs that differ only in what they ignored compare
/// equal, so a config loaded from a Kafka client's file equals the same config built in code.
#[derive(Clone, Default)]
pub(crate) struct IgnoredKeys(Vec<String>);

impl IgnoredKeys {
    pub(crate) fn as_slice(&self) -> &[String] {
        &self.0
    }

    fn add(&mut self, key: &str) {
        if !self.0.iter().any(|k| k == key) {
            self.0.push(key.to_string());
        }
    }
}

impl PartialEq for IgnoredKeys {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for IgnoredKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// A config that takes Kafka's keys.
pub(crate) trait KafkaKeys: Sized {
    /// The config's key catalogue.
    const CATALOGUE: Catalogue;

    /// Sets one applied key (Kafka's name).
    fn set_key(&mut self, key: &str, value: &str) -> Result<()>;

    /// Checks the value of an ignored key that is accepted only with some values. Default: any.
    fn check_ignored(&self, _key: &str, _value: &str) -> Result<()> {
        Ok(())
    }

    /// Checks the whole config.
    fn validate_all(&self) -> Result<()>;

    /// Where the config records its ignored keys.
    fn ignored_mut(&mut self) -> &mut IgnoredKeys;
}

/// Applies `(key, value, line)` entries in order, then validates, then logs the keys ignored in
/// this load on one line. `source` names the file the entries came from, if any.
pub(crate) fn apply<C: KafkaKeys>(
    mut config: C,
    entries: impl IntoIterator<Item = (impl AsRef<str>, impl AsRef<str>, Option<usize>)>,
    source: Option<&Path>,
) -> Result<C> {
    let catalogue = C::CATALOGUE;
    let mut ignored_now: Vec<String> = Vec::new();
    for (key, value, line) in entries {
        let (key, value) = (key.as_ref(), value.as_ref());
        let outcome = match catalogue.lookup(key) {
            Lookup::Applied(kafka) => config
                .set_key(kafka, value)
                .map_err(|e| rename(e, kafka, key)),
            Lookup::Ignored(kafka) => {
                let checked = config
                    .check_ignored(kafka, value)
                    .map_err(|e| rename(e, kafka, key));
                if checked.is_ok() && !ignored_now.iter().any(|k| k == key) {
                    ignored_now.push(key.to_string());
                }
                checked
            }
            Lookup::Unknown => Err(Error::config(key, value, catalogue.unknown_reason(key))),
        };
        outcome.map_err(|e| locate(e, source, line))?;
    }
    config.validate_all()?;
    if !ignored_now.is_empty() {
        let from = source.map_or(String::new(), |p| format!(" from {}", p.display()));
        log::info!(
            "{} config{from}: ignored {} Kafka key(s) that cannot apply in one process: {}",
            catalogue.what,
            ignored_now.len(),
            ignored_now.join(", ")
        );
    }
    let ignored = config.ignored_mut();
    for key in &ignored_now {
        ignored.add(key);
    }
    Ok(config)
}

/// Reads a Java `.properties` file and applies it over `config`.
pub(crate) fn apply_file<C: KafkaKeys>(config: C, path: &Path) -> Result<C> {
    let entries = java_properties::read_file(path)?;
    apply(
        config,
        entries.into_iter().map(|p| (p.key, p.value, Some(p.line))),
        Some(path),
    )
}

/// An error about `kafka` (the name a librdkafka alias stands for) speaks of the key as the user
/// wrote it.
fn rename(error: Error, kafka: &str, given: &str) -> Error {
    match error {
        Error::InvalidConfig { key, value, reason } if key == kafka && kafka != given => {
            Error::InvalidConfig {
                key: given.to_string(),
                value,
                reason: format!("{reason} (as {kafka}, which {given} stands for)"),
            }
        }
        other => other,
    }
}

/// A key's error from a file says where the key is.
fn locate(error: Error, source: Option<&Path>, line: Option<usize>) -> Error {
    match (error, source, line) {
        (Error::InvalidConfig { key, value, reason }, Some(path), Some(line)) => {
            Error::InvalidConfig {
                key,
                value,
                reason: format!("{reason} ({} line {line})", path.display()),
            }
        }
        (other, _, _) => other,
    }
}
