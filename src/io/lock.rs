//! The exclusive lock on a data directory.
//!
//! A `.lock` file in the directory is locked with std's `File::try_lock` (an advisory lock:
//! `flock` on Unix, `LockFileEx` on Windows). The lock belongs to the open file, so a second
//! `Broker::open` of the same directory fails at once whether it comes from this process or
//! another one, and the lock is released when the file is closed, including when the process
//! dies.
//!
//! One subtlety: a child process forked by any thread of this process shares the lock file's
//! open file description until it calls `exec` (which closes it, as Rust opens files
//! close-on-exec). A `close` followed by an `open` of the same directory can land in that
//! window, so a failed attempt is retried for up to [`RETRY_FOR`] before the directory is
//! reported locked: long enough to cover a fork-to-exec window, short enough to still fail
//! "at once" when another broker really holds the directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a held lock is retried before `DirectoryLocked` is reported.
const RETRY_FOR: Duration = Duration::from_millis(20);

/// Holds the directory lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, failing at once with [`Error::DirectoryLocked`] if it is held.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening lock file", &path, e))?;
        let give_up = Instant::now() + RETRY_FOR;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::DirectoryLocked {
                        path: dir.to_path_buf(),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("locking", &path, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_until_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, Error::DirectoryLocked { .. }), "{err}");
        assert!(err.to_string().contains(&dir.path().display().to_string()));
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
