//! A task's `.checkpoint` file: the changelog offset up to which each of its stores' files
//! in the state directory hold the changelog (Kafka's `OffsetCheckpoint`, same text format).
//!
//! Owns: reading and writing `state.dir/<application.id>/<task>/.checkpoint`. The bytes
//! (docs/FORMAT.md, "Streams task checkpoint"): Kafka's text format, a version line `0`, a
//! line with the number of entries, then one `<topic> <partition> <offset>` line per
//! changelog partition, each line ended by `\n`.
//!
//! Invariants: the file is replaced atomically (written to `.checkpoint.tmp`, synced, renamed,
//! the directory synced), so a crash leaves the old or the new one; it is written only after
//! the store files it describes are in place; a file that does not parse is treated as absent
//! (the task then restores from the changelog's start), never trusted in part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::io::{read_small, write_atomic, SmallFile};
use crate::types::TopicPartition;

/// The file's name inside a task directory (Kafka's `.checkpoint`).
pub(crate) const FILE_NAME: &str = ".checkpoint";

/// Larger than any checkpoint of a task's changelogs.
const MAX_BYTES: u64 = 1 << 20;

/// The checkpoint of the task directory `dir`.
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Kafka's text for `offsets`.
pub(crate) fn encode(offsets: &BTreeMap<TopicPartition, i64>) -> String {
    let mut text = format!("0\n{}\n", offsets.len());
    for (tp, offset) in offsets {
        text.push_str(&format!("{} {} {offset}\n", tp.topic, tp.partition));
    }
    text
}

/// The offsets in `text`, or `None` if it is not a version-0 checkpoint whose count matches
/// its lines.
pub(crate) fn decode(text: &str) -> Option<BTreeMap<TopicPartition, i64>> {
    let mut lines = text.strip_suffix('\n')?.split('\n');
    if lines.next()? != "0" {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    let mut offsets = BTreeMap::new();
    for line in lines {
        let mut fields = line.split(' ');
        let (topic, partition, offset) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() || topic.is_empty() {
            return None;
        }
        let partition: i32 = partition.parse().ok()?;
        let offset: i64 = offset.parse().ok()?;
        if partition < 0 || offset < 0 {
            return None;
        }
        offsets.insert(TopicPartition::new(topic, partition), offset);
    }
    (offsets.len() == count).then_some(offsets)
}

/// Write `offsets` to the task directory `dir` (created if missing).
pub(crate) fn write(dir: &Path, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io("creating", dir, e))?;
    write_atomic(&path(dir), encode(offsets).as_bytes())
}

/// The checkpoint in `dir`: empty when there is none or it does not parse (logged).
pub(crate) fn read(dir: &Path) -> Result<BTreeMap<TopicPartition, i64>> {
    let file = path(dir);
    match read_small(&file, MAX_BYTES)? {
        SmallFile::Missing => Ok(BTreeMap::new()),
        SmallFile::TooLarge(len) => {
            log::warn!(
                "{}: {len} bytes, more than a checkpoint holds; restoring from the changelog",
                file.display()
            );
            Ok(BTreeMap::new())
        }
        SmallFile::Bytes(bytes) => match std::str::from_utf8(&bytes).ok().and_then(decode) {
            Some(offsets) => Ok(offsets),
            None => {
                log::warn!(
                    "{}: not a checkpoint (version 0, count, `topic partition offset` lines); \
                         restoring from the changelog",
                    file.display()
                );
                Ok(BTreeMap::new())
            }
        },
    }
}

/// Remove the checkpoint of `dir`, if any: the store files are about to change, so until the
/// next checkpoint they must not be trusted.
pub(crate) fn remove(dir: &Path) -> Result<()> {
    match std::fs::remove_file(path(dir)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::Error::io("removing", path(dir), e)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn kafkas_text_round_trips_and_damage_is_refused() {
        let mut offsets = BTreeMap::new();
        offsets.insert(TopicPartition::new("app-counts-changelog", 3), 1234);
        offsets.insert(TopicPartition::new("app-b-changelog", 0), 0);
        let text = encode(&offsets);
        assert_eq!(
            text,
            "0\n2\napp-b-changelog 0 0\napp-counts-changelog 3 1234\n"
        );
        assert_eq!(decode(&text), Some(offsets));
        for bad in [
            "",
            "1\n0\n",
            "0\n2\napp-b-changelog 0 0\n",
            "0\n1\napp-b-changelog 0\n",
            "0\n1\napp-b-changelog 0 -1\n",
            "0\n1\napp-b-changelog 0 1",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("0_1");
        assert!(read(&task).unwrap().is_empty());
        write(&task, &decode(&text).unwrap()).unwrap();
        assert_eq!(read(&task).unwrap().len(), 2);
        std::fs::write(path(&task), "garbage").unwrap();
        assert!(read(&task).unwrap().is_empty());
        remove(&task).unwrap();
        remove(&task).unwrap();
    }

    proptest! {
        #[test]
        fn any_offsets_round_trip(entries in proptest::collection::btree_map(
            ("[a-z.-]{1,20}", 0i32..1000), 0i64..i64::MAX, 0..20)) {
            let offsets: BTreeMap<TopicPartition, i64> = entries
                .into_iter()
                .map(|((t, p), o)| (TopicPartition::new(t, p), o))
                .collect();
            prop_assert_eq!(decode(&encode(&offsets)), Some(offsets));
        }
    }
}
