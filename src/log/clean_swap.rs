//! Swapping cleaned segments into a partition directory so that a crash at any moment leaves
//! either the old segments or the new ones, never a mix and never a loss.
//!
//! The cleaner writes each cleaned segment as `<base>.log.cleaned` with `<base>.index.cleaned`,
//! `<base>.timeindex.cleaned` and, when its segments had aborted transactions,
//! `<base>.txnindex.cleaned` (named by the first old segment it replaces) and fsyncs them. The commit point is the atomic replacement of the `cleaner-swap` manifest, which
//! lists, per cleaned segment, the old segments it replaces. Then, per entry, the old
//! segments other than the first are deleted and the `.cleaned` files are renamed over the
//! first's names; the directory is fsynced and the manifest removed.
//!
//! At open, when the segment listing finds a manifest or `.cleaned` files ([`recover`], then
//! the listing is taken again): a manifest means the swap was committed,
//! so it is finished (every step is idempotent: a file already deleted or renamed is skipped);
//! `.cleaned` files without a manifest belong to a pass that never committed and are removed.
//!
//! Manifest bytes, big-endian: magic `EBCS`, version u16 (1), entry count u32, then per entry
//! the new base offset i64, the count u32 of old segments and their base offsets i64 (the
//! first equal to the new base), and a CRC-32 u32 of everything before it.

use std::path::{Path, PathBuf};

use super::sealed;
use super::segment::file_name;
use crate::error::{Error, Result};
use crate::io;

/// The manifest's file name in the partition directory.
pub(crate) const MANIFEST: &str = "cleaner-swap";
/// Suffix of a cleaned segment's files before the swap.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
const MAGIC: &[u8; 4] = b"EBCS";
const VERSION: u16 = 1;
/// The extensions of a segment's files, the log last: until its rename, the old log is still
/// the one at that name.
const EXTENSIONS: [&str; 4] = ["index", "timeindex", "txnindex", "log"];

/// One cleaned segment and the old segments it replaces (the first shares its base offset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SwapEntry {
    pub new_base: i64,
    pub old_bases: Vec<i64>,
}

/// The path of a cleaned segment's file before the swap, e.g. `<base>.log.cleaned`.
pub(crate) fn cleaned_path(dir: &Path, base: i64, extension: &str) -> PathBuf {
    dir.join(format!("{}{CLEANED_SUFFIX}", file_name(base, extension)))
}

fn encode(entries: &[SwapEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + entries.len() * 24);
    b.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        b.extend_from_slice(&e.new_base.to_be_bytes());
        b.extend_from_slice(&(e.old_bases.len() as u32).to_be_bytes());
        for base in &e.old_bases {
            b.extend_from_slice(&base.to_be_bytes());
        }
    }
    sealed::seal(MAGIC, VERSION, &b)
}

/// Reads a big-endian field at the front of `b` and advances it.
fn take<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = b.split_first_chunk::<N>()?;
    *b = rest;
    Some(*head)
}

fn decode(bytes: &[u8]) -> Option<Vec<SwapEntry>> {
    let mut b = sealed::open(MAGIC, VERSION, bytes)?;
    let count = u32::from_be_bytes(take(&mut b)?);
    let mut entries = Vec::new();
    for _ in 0..count {
        let new_base = i64::from_be_bytes(take(&mut b)?);
        let n = u32::from_be_bytes(take(&mut b)?);
        let mut old_bases = Vec::new();
        for _ in 0..n {
            old_bases.push(i64::from_be_bytes(take(&mut b)?));
        }
        if old_bases.first() != Some(&new_base) || new_base < 0 {
            return None;
        }
        entries.push(SwapEntry {
            new_base,
            old_bases,
        });
    }
    b.is_empty().then_some(entries)
}

/// Commits a swap: writes the manifest atomically (the commit point), then finishes it.
pub(crate) fn commit(dir: &Path, entries: &[SwapEntry]) -> Result<()> {
    io::write_atomic(&dir.join(MANIFEST), &encode(entries))?;
    finish(dir, entries)
}

/// Carries out a committed swap; safe to repeat after a crash at any step.
fn finish(dir: &Path, entries: &[SwapEntry]) -> Result<()> {
    for e in entries {
        for &old in e.old_bases.iter().filter(|&&b| b != e.new_base) {
            for ext in ["log", "index", "timeindex", "txnindex"] {
                remove_if_present(&dir.join(file_name(old, ext)))?;
            }
        }
        for ext in EXTENSIONS {
            let from = cleaned_path(dir, e.new_base, ext);
            if from.exists() {
                let to = dir.join(file_name(e.new_base, ext));
                std::fs::rename(&from, &to).map_err(|err| Error::io("renaming", &from, err))?;
            }
        }
    }
    io::sync_dir(dir)?;
    remove_if_present(&dir.join(MANIFEST))?;
    io::sync_dir(dir)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

/// Far more than a manifest of every segment a partition can hold.
const MANIFEST_BYTES_MAX: u64 = 64 << 20;

/// Finishes a committed swap, or rolls back an uncommitted one (removes its `.cleaned` files).
/// Called at open, before the segments are listed. A manifest that does not decode is
/// `Error::Corrupt`: which old segments it replaced cannot be known, so nothing is guessed.
pub(crate) fn recover(dir: &Path) -> Result<()> {
    let manifest = dir.join(MANIFEST);
    match io::read_small(&manifest, MANIFEST_BYTES_MAX)? {
        io::SmallFile::Missing => {}
        // Larger than any manifest (a few bytes per segment): damage, reported unread.
        io::SmallFile::TooLarge(len) => {
            return Err(Error::Corrupt {
                path: manifest,
                position: MANIFEST_BYTES_MAX,
                reason: format!("cleaner swap manifest of {len} bytes, more than any manifest"),
            })
        }
        io::SmallFile::Bytes(bytes) => {
            let entries = decode(&bytes).ok_or_else(|| Error::Corrupt {
                path: manifest.clone(),
                position: 0,
                reason: "cleaner swap manifest does not decode (checksum or layout)".into(),
            })?;
            finish(dir, &entries)?;
        }
    }
    let mut removed = false;
    let listing = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    for entry in listing {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(CLEANED_SUFFIX))
        {
            remove_if_present(&entry.path())?;
            removed = true;
        }
    }
    if removed {
        io::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<SwapEntry> {
        vec![
            SwapEntry {
                new_base: 0,
                old_bases: vec![0, 10, 20],
            },
            SwapEntry {
                new_base: 30,
                old_bases: vec![30],
            },
        ]
    }

    #[test]
    fn manifest_round_trip_and_damage() {
        let b = encode(&entries());
        assert_eq!(decode(&b), Some(entries()));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x04;
            assert_eq!(decode(&bad), None, "byte {i}");
        }
        for len in 0..b.len() {
            assert_eq!(decode(&b[..len]), None, "length {len}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes: Vec<u8>) {
            if let Some(entries) = decode(&bytes) {
                proptest::prop_assert_eq!(encode(&entries), bytes);
            }
        }
    }

    fn touch(dir: &Path, name: &str, content: &str) {
        std::fs::write(dir.join(name), content).unwrap();
    }

    fn read(dir: &Path, name: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(name)).ok()
    }

    fn old_and_cleaned(dir: &Path) {
        for base in [0, 10, 20, 30] {
            for ext in ["log", "index", "timeindex"] {
                touch(dir, &file_name(base, ext), "old");
            }
        }
        for base in [0, 30] {
            for ext in ["log", "index", "timeindex"] {
                touch(dir, &format!("{}.cleaned", file_name(base, ext)), "new");
            }
        }
    }

    fn assert_swapped(dir: &Path) {
        for base in [0, 30] {
            for ext in ["log", "index", "timeindex"] {
                assert_eq!(read(dir, &file_name(base, ext)).as_deref(), Some("new"));
            }
        }
        for base in [10, 20] {
            assert_eq!(read(dir, &file_name(base, "log")), None);
        }
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 6, "{names:?}");
    }

    #[test]
    fn an_uncommitted_swap_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        old_and_cleaned(dir.path());
        recover(dir.path()).unwrap();
        for base in [0, 10, 20, 30] {
            assert_eq!(
                read(dir.path(), &file_name(base, "log")).as_deref(),
                Some("old")
            );
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 12);
    }

    #[test]
    fn a_committed_swap_finishes_from_any_step() {
        // Replay the swap step by step: after each file operation, `recover` finishes it.
        for stop_after in 0..=9 {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            old_and_cleaned(d);
            std::fs::write(d.join(MANIFEST), encode(&entries())).unwrap();
            let mut steps = 0;
            'replay: for e in entries() {
                for &old in e.old_bases.iter().filter(|&&b| b != e.new_base) {
                    if steps == stop_after {
                        break 'replay;
                    }
                    for ext in ["log", "index", "timeindex"] {
                        let _ = std::fs::remove_file(d.join(file_name(old, ext)));
                    }
                    steps += 1;
                }
                for ext in EXTENSIONS {
                    if steps == stop_after {
                        break 'replay;
                    }
                    let to = d.join(file_name(e.new_base, ext));
                    let from = cleaned_path(d, e.new_base, ext);
                    // A cleaned segment without aborted transactions has no `.txnindex`.
                    if from.exists() {
                        std::fs::rename(from, to).unwrap();
                    }
                    steps += 1;
                }
            }
            recover(d).unwrap();
            assert_swapped(d);
        }
    }

    #[test]
    fn a_damaged_manifest_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        old_and_cleaned(dir.path());
        std::fs::write(dir.path().join(MANIFEST), b"EBCS garbage").unwrap();
        let e = recover(dir.path()).unwrap_err();
        assert!(e.to_string().contains(MANIFEST), "{e}");
        // Nothing was touched.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 19);
    }
}
