//! Topic configs on disk: one human-readable properties file per topic in `topics/`.
//!
//! A file is named by the topic (at most 249 characters, so `NAME.tmp` still fits a file
//! name) and holds Kafka's keys, one `key=value` per line. It is the commit point of topic
//! creation and deletion: partition directories are created before it is written and removed
//! after it is deleted, and open removes partition directories that no file accounts for.
//!
//! A file is replaced through `NAME~` (fsync, rename, fsync the directory): `~` cannot occur in a
//! topic name, so the temporary file of one topic is never another topic's file. Before, the
//! temporary file was `NAME.tmp`, which is also the file of the legal topic `NAME.tmp`: writing
//! topic `x` overwrote topic `x.tmp`'s file, and open removed `x.tmp` as a leftover, then its
//! partitions as orphans. A `NAME.tmp` left by an older version is told from a topic by its
//! first line, which names the topic it was written for.

use std::path::{Path, PathBuf};

use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::io;

pub(crate) const DIR_NAME: &str = "topics";

pub(crate) fn path(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join(DIR_NAME).join(topic)
}

/// The comment line that carries a topic's id (older versions read it as a comment).
const ID_PREFIX: &str = "# topic id: ";

/// A new random topic id: what keys the topic's partitions in the data directory's
/// `recovery-points` file, so that an entry of a deleted topic never applies to a topic
/// created again under its name (Kafka keys its partitions by topic id likewise).
pub(crate) fn new_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded from the operating system's randomness once per thread and
    // varied per instance; time, process and a counter make each call distinct besides.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// The topic id a config file carries, if it carries one (files of older versions do not).
pub(crate) fn parse_id(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let hex = text.lines().find_map(|l| l.strip_prefix(ID_PREFIX))?;
    (hex.trim_end().len() == 16)
        .then(|| u64::from_str_radix(hex.trim_end(), 16).ok())
        .flatten()
}

/// Writes a topic's config atomically, with its id if it has one.
pub(crate) fn write(
    data_dir: &Path,
    topic: &str,
    config: &TopicConfig,
    id: Option<u64>,
) -> Result<()> {
    let mut text = format!("# embroker topic config, format 1: topic {topic}\n");
    if let Some(id) = id {
        text.push_str(&format!("{ID_PREFIX}{id:016x}\n"));
    }
    for (k, v) in config.to_properties() {
        text.push_str(k);
        text.push('=');
        text.push_str(&v);
        text.push('\n');
    }
    io::write_atomic_via(
        &path(data_dir, topic),
        &tmp_path(data_dir, topic),
        text.as_bytes(),
    )
}

/// Suffix of a topic file being written: `~` is not allowed in topic names.
const TMP_SUFFIX: char = '~';

fn tmp_path(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join(DIR_NAME).join(format!("{topic}{TMP_SUFFIX}"))
}

/// Far more than any topic config (about 1 KiB): a larger file is damage, not read whole.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Reads a topic file whole unless it is larger than any config could be (then it is
/// damage, and not read).
fn read_bounded(p: &Path) -> Result<Option<Vec<u8>>> {
    match io::read_small(p, MAX_FILE_BYTES)? {
        io::SmallFile::Missing => Ok(None),
        io::SmallFile::Bytes(bytes) => Ok(Some(bytes)),
        io::SmallFile::TooLarge(len) => Err(Error::Corrupt {
            path: p.to_path_buf(),
            position: MAX_FILE_BYTES,
            reason: format!(
                "topic config file of {len} bytes, more than any config ({MAX_FILE_BYTES})"
            ),
        }),
    }
}

/// The topic a config file says it was written for (its first line), if it says.
fn written_for(bytes: &[u8]) -> Option<&str> {
    let first = bytes.split(|&b| b == b'\n').next()?;
    let first = std::str::from_utf8(first).ok()?;
    first
        .strip_prefix("# embroker topic config, format 1: topic ")
        .map(str::trim_end)
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

/// A topic's config and its id (`None` in files of older versions).
pub(crate) type Loaded = (TopicConfig, Option<u64>);

/// Every topic file in the data directory: name and config with id (or the error loading it).
pub(crate) fn load_all(data_dir: &Path) -> Result<Vec<(String, Result<Loaded>)>> {
    let dir = data_dir.join(DIR_NAME);
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
    let mut topics = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
        let p = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.ends_with(TMP_SUFFIX) {
            if p.is_file() {
                std::fs::remove_file(&p).map_err(|e| Error::io("removing leftover", &p, e))?;
            }
            continue;
        }
        if super::names::validate(&name).is_err() {
            continue;
        }
        // A file that cannot be read (a directory, no permission, far too large) breaks its
        // topic only, as damage does: before, it failed the whole `Broker::open`.
        let bytes = match read_bounded(&p) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(e) => {
                topics.push((name, Err(e)));
                continue;
            }
        };
        // An older version's temporary file `NAME.tmp` names topic `NAME` on its first line;
        // topic `NAME.tmp`'s own file names `NAME.tmp`.
        let legacy_tmp = name
            .strip_suffix(".tmp")
            .is_some_and(|stem| written_for(&bytes) == Some(stem));
        if legacy_tmp {
            std::fs::remove_file(&p).map_err(|e| Error::io("removing leftover", &p, e))?;
            continue;
        }
        let config = parse(&p, &bytes).map(|c| (c, parse_id(&bytes)));
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
        write(dir.path(), "orders", &cfg, Some(0xfeed)).unwrap();
        let all = load_all(dir.path()).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.as_ref().unwrap(), &(cfg.clone(), Some(0xfeed)));
        // An older version's file has no id; ids differ from call to call.
        write(dir.path(), "orders", &cfg, None).unwrap();
        assert_eq!(load_all(dir.path()).unwrap()[0].1.as_ref().unwrap().1, None);
        assert_ne!(new_id(), new_id());
        assert_eq!(parse_id(b"# topic id: 00000000000000ff\n"), Some(255));
        assert_eq!(parse_id(b"# topic id: ff\n"), None);
        assert_eq!(parse_id(b"# topic id: zz00000000000000\n"), None);
        let p = path(dir.path(), "orders");
        let e = parse(&p, b"num.partitions=2\ngarbage\n").unwrap_err();
        assert!(matches!(e, Error::Corrupt { position: 17, .. }), "{e}");
        assert!(parse(&p, b"retention.ms=5\n").is_err());
        assert!(parse(&p, b"num.partitions=2\nretention.ms=x\n")
            .unwrap_err()
            .to_string()
            .contains("retention.ms"));
    }

    #[test]
    fn topics_named_like_temporary_files_are_kept_and_leftovers_removed() {
        let dir = tempfile::tempdir().unwrap();
        let topics = dir.path().join(DIR_NAME);
        std::fs::create_dir(&topics).unwrap();
        let tmp_topic = TopicConfig::default().partitions(2);
        write(dir.path(), "x.tmp", &tmp_topic, Some(1)).unwrap();
        // Writing `x` goes through `x~`, not through topic `x.tmp`'s file.
        write(dir.path(), "x", &TopicConfig::default(), Some(2)).unwrap();
        // Leftovers: an interrupted write, and an older version's `y.tmp` written for `y`.
        std::fs::write(topics.join("z~"), b"half").unwrap();
        std::fs::copy(topics.join("x"), topics.join("y.tmp")).unwrap();
        std::fs::write(
            topics.join("y.tmp"),
            std::fs::read_to_string(topics.join("x"))
                .unwrap()
                .replace("topic x\n", "topic y\n"),
        )
        .unwrap();
        let all = load_all(dir.path()).unwrap();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x", "x.tmp"]);
        assert_eq!(all[1].1.as_ref().unwrap(), &(tmp_topic, Some(1)));
        assert!(!topics.join("z~").exists() && !topics.join("y.tmp").exists());
    }
}
