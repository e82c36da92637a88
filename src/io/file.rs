//! Positioned I/O and durable file operations.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Reads exactly `buf.len()` bytes at `position`.
pub(crate) fn read_at(file: &File, buf: &mut [u8], position: u64, path: &Path) -> Result<()> {
    read_exact_at(file, buf, position).map_err(|e| Error::io("reading", path, e))
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], position: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, position)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut position: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, position) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                position += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `position`.
pub(crate) fn write_all_at(file: &File, buf: &[u8], position: u64, path: &Path) -> Result<()> {
    write_all_at_impl(file, buf, position).map_err(|e| Error::io("writing", path, e))
}

#[cfg(unix)]
fn write_all_at_impl(file: &File, buf: &[u8], position: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, position)
}

#[cfg(windows)]
fn write_all_at_impl(file: &File, mut buf: &[u8], mut position: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, position) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                position += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `parts` one after another, starting at `position`: one `pwritev` on Linux for up
/// to [`VECTORED_PARTS_MAX`] parts (a log appends a run of batches with one system call rather
/// than one each), one positioned write per part elsewhere.
pub(crate) fn write_all_vectored_at(
    file: &File,
    parts: &[&[u8]],
    position: u64,
    path: &Path,
) -> Result<()> {
    write_all_vectored_at_impl(file, parts, position).map_err(|e| Error::io("writing", path, e))
}

/// Parts given to one `pwritev` (Linux's `IOV_MAX` is 1,024).
pub(crate) const VECTORED_PARTS_MAX: usize = 256;

#[cfg(target_os = "linux")]
fn write_all_vectored_at_impl(file: &File, parts: &[&[u8]], mut position: u64) -> io::Result<()> {
    use std::io::IoSlice;
    // The first part not yet written in full, and how much of it was.
    let mut first = 0;
    let mut done = 0;
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len().min(VECTORED_PARTS_MAX));
    while first < parts.len() {
        slices.clear();
        let rest = parts.iter().skip(first).take(VECTORED_PARTS_MAX);
        for (i, part) in rest.enumerate() {
            let part = if i == 0 {
                part.get(done..).unwrap_or(&[])
            } else {
                part
            };
            slices.push(IoSlice::new(part));
        }
        let mut n = match rustix::io::pwritev(file, &slices, position) {
            Ok(0) if slices.iter().any(|s| !s.is_empty()) => {
                return Err(io::ErrorKind::WriteZero.into())
            }
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        position += n as u64;
        // Skip the parts the write covered; `done` is how much of the next one it wrote.
        while first < parts.len() {
            let left = parts[first].len() - done;
            if n < left {
                done += n;
                break;
            }
            n -= left;
            first += 1;
            done = 0;
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn write_all_vectored_at_impl(file: &File, parts: &[&[u8]], mut position: u64) -> io::Result<()> {
    for part in parts {
        write_all_at_impl(file, part, position)?;
        position += part.len() as u64;
    }
    Ok(())
}

/// Why a durable operation failed: before anything was fsynced (an open, a write, a rename:
/// nothing durable changed, and the caller may retry), or in the fsync itself (the page cache
/// may no longer match the disk).
#[derive(Debug)]
pub(crate) enum SyncError {
    /// Failed before the fsync.
    Before(Error),
    /// The fsync failed.
    Fsync(Error),
}

impl SyncError {
    /// The error, whichever step failed.
    pub(crate) fn into_error(self) -> Error {
        match self {
            SyncError::Before(e) | SyncError::Fsync(e) => e,
        }
    }
}

/// Fsyncs a directory, so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    sync_dir_steps(dir).map_err(SyncError::into_error)
}

/// [`sync_dir`], telling a failed open (out of file descriptors) from a failed fsync.
pub(crate) fn sync_dir_steps(dir: &Path) -> std::result::Result<(), SyncError> {
    #[cfg(unix)]
    {
        if super::sync::is_ephemeral(dir) {
            // Not even opened: a temporary broker's directory needs no fsync.
            return Ok(());
        }
        let d = File::open(dir)
            .map_err(|e| SyncError::Before(Error::io("opening directory", dir, e)))?;
        super::sync::all(&d, dir)
            .map_err(|e| SyncError::Fsync(Error::io("syncing directory", dir, e)))
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory as a file for fsync; NTFS journals metadata.
        let _ = dir;
        Ok(())
    }
}

/// Creates `dir` (and missing parents) and makes each new entry durable by fsyncing the
/// directory that holds it, so a power loss cannot drop a directory something inside it
/// already counts on.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<()> {
    // The directories that do not exist yet, innermost first.
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p);
        at = p.parent();
    }
    fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
    // Outermost first: each parent's entry is durable before its child's.
    for p in missing.iter().rev() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent)?,
            _ => sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

/// Removes `dir` and everything in it, then makes the removal durable.
pub(crate) fn remove_dir_all_durable(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("removing directory", dir, e)),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file, writing
/// them first to `PATH.tmp` (see [`write_atomic_via`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    write_atomic_via(path, Path::new(&tmp_name), bytes)
}

/// Replaces `path` with `bytes` through the temporary file `tmp` (in the same directory), so
/// that a crash leaves either the old or the new file.
///
/// On failure the temporary file is removed (best effort: it may hold the space a full disk
/// needs back); `path` then holds the old or the new contents, so a caller that only ever
/// writes true statements there may treat any failure as "not written yet" and retry.
pub(crate) fn write_atomic_via(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<()> {
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(|e| Error::io("creating", tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| Error::io("writing", tmp, e))?;
        super::sync::all(&file, tmp).map_err(|e| Error::io("syncing", tmp, e))?;
        drop(file);
        fs::rename(tmp, path).map_err(|e| Error::io("renaming into place", path, e))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` (created or truncated) without fsyncing: for a batched
/// checkpoint, which syncs every file it wrote in one pass before it renames any into place.
pub(crate) fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::io("creating", path, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io("writing", path, e))
}

/// What [`read_small`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SmallFile {
    /// No such file.
    Missing,
    /// Larger than the caller's bound (its length): damage, and not read, so a huge (sparse)
    /// file costs neither memory nor time.
    TooLarge(u64),
    /// The whole file.
    Bytes(Vec<u8>),
}

/// Reads a small file whole, unless it is longer than `max_bytes` (more than any valid
/// version of it could be).
pub(crate) fn read_small(path: &Path, max_bytes: u64) -> Result<SmallFile> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SmallFile::Missing),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    if len > max_bytes {
        return Ok(SmallFile::TooLarge(len));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // Bounded again: the file may grow between the length and the read.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Ok(SmallFile::TooLarge(bytes.len() as u64));
    }
    Ok(SmallFile::Bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.properties");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(
            read_small(&p, 3).unwrap(),
            SmallFile::Bytes(b"two".to_vec())
        );
        assert_eq!(read_small(&p, 2).unwrap(), SmallFile::TooLarge(3));
        assert!(!dir.path().join("x.properties.tmp").exists());
        assert_eq!(
            read_small(&dir.path().join("missing"), 3).unwrap(),
            SmallFile::Missing
        );
    }

    #[test]
    fn durable_dir_creation_makes_every_missing_level() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a").join("b").join("c");
        create_dir_durable(&deep).unwrap();
        assert!(deep.is_dir());
        // Existing directories are fine, and so is a relative path.
        create_dir_durable(&deep).unwrap();
        let cwd_relative = Path::new("target").join("create-dir-durable-test");
        create_dir_durable(&cwd_relative).unwrap();
        assert!(cwd_relative.is_dir());
        let _ = fs::remove_dir(&cwd_relative);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Parts written with one vectored write read back as their concatenation, however
        /// many (more than one `pwritev` takes) and however sized (empty ones too).
        #[test]
        fn vectored_writes_land_as_the_parts_in_order(
            sizes in proptest::collection::vec(0usize..300, 0..600),
            position in 0u64..5_000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("f");
            let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
            let parts: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| (0..*n).map(|j| (i * 31 + j) as u8).collect())
                .collect();
            let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            write_all_vectored_at(&f, &slices, position, &p).unwrap();
            let all = parts.concat();
            let mut back = vec![0u8; all.len()];
            read_at(&f, &mut back, position, &p).unwrap();
            proptest::prop_assert_eq!(back, all);
            let len = f.metadata().unwrap().len();
            let expected = if sizes.iter().sum::<usize>() == 0 { 0 } else { position + sizes.iter().sum::<usize>() as u64 };
            proptest::prop_assert_eq!(len, expected);
        }
    }

    #[test]
    fn positioned_io_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        write_all_at(&f, b"hello", 3, &p).unwrap();
        let mut buf = [0u8; 5];
        read_at(&f, &mut buf, 3, &p).unwrap();
        assert_eq!(&buf, b"hello");
        let e = read_at(&f, &mut [0u8; 10], 3, &p).unwrap_err();
        assert!(e.to_string().contains(&p.display().to_string()));
    }
}
