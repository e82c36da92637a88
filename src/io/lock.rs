//! The exclusive lock on a data directory.
//!
//! A `.lock` file in the directory is locked with std's `File::try_lock` (an advisory lock:
//! `flock` on Unix, `LockFileEx` on Windows). The lock belongs to the open file, so a second
//! `Broker::open` of the same directory fails at once whether it comes from this process or
//! another one, and the lock is released when the file is closed, including when the process
//! dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Holds the directory lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
    path: PathBuf,
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
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(Error::DirectoryLocked {
                path: dir.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(Error::io("locking", &path, e)),
        }
    }

    /// The lock file's path.
    #[allow(dead_code)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
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
