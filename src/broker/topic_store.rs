//! Topic configs on disk: one human-readable properties file per topic in `topics/`.
//!
//! A file is named by the topic (at most 249 characters, so `NAME.tmp` still fits a file
//! name) and holds Kafka's keys, one `key=value` per line. It is the commit point of topic
//! creation and deletion: partition directories are created before it is written and removed
//! after it is deleted, and open removes partition directories that no file accounts for.

use std::path::{Path, PathBuf};

use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::io;

pub(crate) const DIR_NAME: &str = "topics";

pub(crate) fn path(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join(DIR_NAME).join(topic)
}

/// Writes a topic's config atomically.
pub(crate) fn write(data_dir: &Path, topic: &str, config: &TopicConfig) -> Result<()> {
    let mut text = format!("# embroker topic config, format 1: topic {topic}\n");
    for (k, v) in config.to_properties() {
        text.push_str(k);
        text.push('=');
        text.push_str(&v);
        text.push('\n');
    }
    io::write_atomic(&path(data_dir, topic), text.as_bytes())
}

/// Removes a topic's config file durably.
pub(crate) fn remove(data_dir: &Path, topic: &str) -> Result<()> {
    let p = path(data_dir, topic);
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("removing topic config", &p, e)),
    }
    io::sync_dir(&data_dir.join(DIR_NAME))
}

/// Parses a topic config file; damage is an error naming the file and byte position.
pub(crate) fn parse(file: &Path, bytes: &[u8]) -> Result<TopicConfig> {
    let corrupt = |position: usize, reason: String| Error::Corrupt {
        path: file.to_path_buf(),
        position: position as u64,
        reason,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|e| corrupt(e.valid_up_to(), "topic config is not UTF-8".into()))?;
    let mut props = Vec::new();
    let mut position = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            let (k, v) = trimmed
                .split_once('=')
                .ok_or_else(|| corrupt(position, format!("line {trimmed:?} is not key=value")))?;
            props.push((k.trim().to_string(), v.trim().to_string()));
        }
        position += line.len();
    }
    if !props.iter().any(|(k, _)| k == "num.partitions") {
        return Err(corrupt(0, "topic config has no num.partitions".into()));
    }
    TopicConfig::from_properties(&props).map_err(|e| corrupt(0, e.to_string()))
}

/// Every topic file in the data directory: name and config (or the error loading it).
pub(crate) fn load_all(data_dir: &Path) -> Result<Vec<(String, Result<TopicConfig>)>> {
    let dir = data_dir.join(DIR_NAME);
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
    let mut topics = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
        let p = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.ends_with(".tmp") {
            std::fs::remove_file(&p).map_err(|e| Error::io("removing leftover", &p, e))?;
            continue;
        }
        if super::names::validate(&name).is_err() {
            continue;
        }
        let config = match io::read_small(&p)? {
            Some(bytes) => parse(&p, &bytes),
            None => continue,
        };
        topics.push((name, config));
    }
    topics.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_parse_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(DIR_NAME)).unwrap();
        let cfg = TopicConfig::default().partitions(3).retention_ms(5);
        write(dir.path(), "orders", &cfg).unwrap();
        let all = load_all(dir.path()).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.as_ref().unwrap(), &cfg);
        let p = path(dir.path(), "orders");
        let e = parse(&p, b"num.partitions=2\ngarbage\n").unwrap_err();
        assert!(matches!(e, Error::Corrupt { position: 17, .. }), "{e}");
        assert!(parse(&p, b"retention.ms=5\n").is_err());
        assert!(parse(&p, b"num.partitions=2\nretention.ms=x\n")
            .unwrap_err()
            .to_string()
            .contains("retention.ms"));
    }
}
