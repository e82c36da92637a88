//! A store's file in the state directory: the whole store, written when its task closes
//! cleanly, so that the next start loads it and restores only the changelog past the task's
//! checkpoint (a clean restart restores nothing).
//!
//! Owns: `state.dir/<application.id>/<task>/<store>.store`. The bytes (docs/FORMAT.md,
//! "Streams store file"): the magic `EMBSTOR1`; then per entry a key length (u32 big-endian),
//! the key, a value length (i32 big-endian), the value, the timestamp (i64 big-endian); then
//! the number of entries (u64 big-endian) and the CRC-32 (IEEE, u32 big-endian) of every
//! byte before it. Keys and values are the changelog's bytes, so the file is the compacted
//! changelog up to the checkpoint's offset.
//!
//! Invariants: written atomically (temporary file, sync, rename) before the checkpoint that
//! refers to it; a file whose magic, count or CRC does not check is ignored (the task then
//! restores from the changelog's start), never loaded in part.

use std::path::{Path, PathBuf};

use super::changelog::ChangeRecord;
use crate::error::Result;
use crate::io::write_atomic;
use crate::types::Bytes;

const MAGIC: &[u8; 8] = b"EMBSTOR1";
/// The count and the CRC after the entries.
const TRAILER: usize = 12;

/// The file of `store` in the task directory `dir`.
pub(crate) fn path(dir: &Path, store: &str) -> PathBuf {
    dir.join(format!("{store}.store"))
}

/// The file's bytes for `entries`.
pub(crate) fn encode(entries: &[ChangeRecord]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|e| 16 + e.key.len() + e.value.as_ref().map_or(0, Bytes::len))
        .sum();
    let mut out = Vec::with_capacity(MAGIC.len() + size + TRAILER);
    out.extend_from_slice(MAGIC);
    for e in entries {
        out.extend_from_slice(&u32::try_from(e.key.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&e.key);
        match &e.value {
            Some(v) => {
                out.extend_from_slice(&i32::try_from(v.len()).unwrap_or(i32::MAX).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        out.extend_from_slice(&e.timestamp.to_be_bytes());
    }
    out.extend_from_slice(&(entries.len() as u64).to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The entries of a file's bytes, or `None` if they do not check.
pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<ChangeRecord>> {
    if bytes.len() < MAGIC.len() + TRAILER || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_be_bytes() != crc {
        return None;
    }
    let (entries_bytes, count) = body.split_at(body.len() - 8);
    let count = u64::from_be_bytes(count.try_into().ok()?);
    let mut rest = &entries_bytes[MAGIC.len()..];
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    };
    let mut entries = Vec::new();
    for _ in 0..count {
        let key_len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        let key = Bytes::copy_from_slice(take(key_len)?);
        let value_len = i32::from_be_bytes(take(4)?.try_into().ok()?);
        let value = match usize::try_from(value_len) {
            Ok(len) => Some(Bytes::copy_from_slice(take(len)?)),
            Err(_) if value_len == -1 => None,
            Err(_) => return None,
        };
        let timestamp = i64::from_be_bytes(take(8)?.try_into().ok()?);
        entries.push(ChangeRecord {
            key,
            value,
            timestamp,
        });
    }
    take(0)?;
    (rest.is_empty()).then_some(entries)
}

/// Write `entries` as the file of `store` in `dir` (created if missing).
pub(crate) fn write(dir: &Path, store: &str, entries: &[ChangeRecord]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io("creating", dir, e))?;
    write_atomic(&path(dir, store), &encode(entries))
}

/// The entries of `store`'s file in `dir`: `None` when it is missing or does not check
/// (logged).
pub(crate) fn read(dir: &Path, store: &str) -> Result<Option<Vec<ChangeRecord>>> {
    let file = path(dir, store);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::Error::io("reading", &file, e)),
    };
    let entries = decode(&bytes);
    if entries.is_none() {
        log::warn!(
            "{}: not a store file (magic, count or CRC-32 do not check); restoring from the \
             changelog",
            file.display()
        );
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn entries_round_trip_and_any_flipped_byte_is_refused(
            raw in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..20),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                 any::<i64>()),
                0..20),
            flip in any::<proptest::sample::Index>(),
        ) {
            let entries: Vec<ChangeRecord> = raw
                .into_iter()
                .map(|(k, v, t)| ChangeRecord {
                    key: Bytes::from(k),
                    value: v.map(Bytes::from),
                    timestamp: t,
                })
                .collect();
            let mut bytes = encode(&entries);
            prop_assert_eq!(decode(&bytes), Some(entries));
            let i = flip.index(bytes.len());
            bytes[i] ^= 0x40;
            prop_assert_eq!(decode(&bytes), None);
            prop_assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        }
    }

    #[test]
    fn a_missing_or_damaged_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), "s").unwrap(), None);
        let e = vec![ChangeRecord {
            key: Bytes::from_static(b"k"),
            value: Some(Bytes::from_static(b"v")),
            timestamp: 7,
        }];
        write(dir.path(), "s", &e).unwrap();
        assert_eq!(read(dir.path(), "s").unwrap(), Some(e));
        std::fs::write(path(dir.path(), "s"), b"EMBSTOR1").unwrap();
        assert_eq!(read(dir.path(), "s").unwrap(), None);
    }
}
