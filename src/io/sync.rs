//! Every fsync the crate issues goes through here: of file data ([`data`]), of a file with its
//! metadata ([`all`]), and of directories (`io::sync_dir`, which asks [`is_ephemeral`] first).
//!
//! Owns the durability switch. A temporary broker's data directory dies with it, so nothing
//! in it needs to survive a crash or a power loss: `Broker::temporary` registers its
//! directory as ephemeral ([`Ephemeral`]) and every sync of a path under it returns at once,
//! without a system call. One switch, decided here from the path, so no caller carries a
//! mode and a sync added later is covered as long as it comes through this module (clippy's
//! `disallowed-methods` refuses `File::sync_all` / `File::sync_data` anywhere else).
//!
//! Invariants:
//! - A path is ephemeral exactly while a registration of a directory holding it lives; a
//!   persistent broker's directory is never registered (a registered directory is a fresh
//!   `tempfile` directory no one else opens).
//! - Paths are compared by components, as they were built: the broker derives every path
//!   from its directory with `join`, so the root is a prefix of each.

use std::fs::File;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

/// The directories whose contents need no fsync (temporary brokers' directories), one entry
/// per registration.
static EPHEMERAL_ROOTS: RwLock<Vec<PathBuf>> = RwLock::new(Vec::new());

/// A registration of a directory as ephemeral: syncs of paths under it are skipped until this
/// is dropped.
#[derive(Debug)]
pub(crate) struct Ephemeral {
    root: PathBuf,
}

impl Ephemeral {
    /// Registers `root` (a directory that is removed when its owner is done with it).
    pub(crate) fn register(root: &Path) -> Ephemeral {
        EPHEMERAL_ROOTS.write().push(root.to_path_buf());
        Ephemeral {
            root: root.to_path_buf(),
        }
    }
}

impl Drop for Ephemeral {
    fn drop(&mut self) {
        let mut roots = EPHEMERAL_ROOTS.write();
        if let Some(i) = roots.iter().position(|r| *r == self.root) {
            roots.swap_remove(i);
        }
    }
}

/// Whether `path` lies in a directory registered as ephemeral: nothing there is fsynced.
pub(crate) fn is_ephemeral(path: &Path) -> bool {
    let roots = EPHEMERAL_ROOTS.read();
    !roots.is_empty() && roots.iter().any(|r| path.starts_with(r))
}

/// Fsyncs `file`'s data (`fdatasync`), unless `path` (the file's path) is ephemeral.
pub(crate) fn data(file: &File, path: &Path) -> std::io::Result<()> {
    if is_ephemeral(path) {
        record::skipped(path);
        return Ok(());
    }
    record::performed(path);
    #[allow(clippy::disallowed_methods)] // the one place that fsyncs
    file.sync_data()
}

/// Fsyncs `file`'s data and metadata (`fsync`; for directories too), unless `path` (the
/// file's path) is ephemeral.
pub(crate) fn all(file: &File, path: &Path) -> std::io::Result<()> {
    if is_ephemeral(path) {
        record::skipped(path);
        return Ok(());
    }
    record::performed(path);
    #[allow(clippy::disallowed_methods)] // the one place that fsyncs
    file.sync_all()
}

/// Test builds count every sync asked for, by path, so tests can prove what a broker fsyncs.
#[cfg(test)]
pub(crate) mod record {
    use std::path::{Path, PathBuf};

    use parking_lot::Mutex;

    /// Every sync asked for in this process: the path, and whether it was performed.
    static SYNCS: Mutex<Vec<(PathBuf, bool)>> = Mutex::new(Vec::new());

    pub(super) fn performed(path: &Path) {
        SYNCS.lock().push((path.to_path_buf(), true));
    }

    pub(super) fn skipped(path: &Path) {
        SYNCS.lock().push((path.to_path_buf(), false));
    }

    /// Syncs of paths under `root` so far: (performed, skipped). Other tests run in parallel,
    /// so a test counts only under its own directory.
    pub(crate) fn under(root: &Path) -> (usize, usize) {
        let syncs = SYNCS.lock();
        let mine = syncs.iter().filter(|(p, _)| p.starts_with(root));
        let performed = mine.clone().filter(|(_, done)| *done).count();
        let skipped = mine.filter(|(_, done)| !*done).count();
        (performed, skipped)
    }
}

#[cfg(not(test))]
mod record {
    use std::path::Path;

    #[inline(always)]
    pub(super) fn performed(_: &Path) {}

    #[inline(always)]
    pub(super) fn skipped(_: &Path) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_directory_is_ephemeral_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file_path = dir.path().join("a").join("f");
        assert!(!is_ephemeral(&file_path));
        let reg = Ephemeral::register(dir.path());
        assert!(is_ephemeral(&file_path));
        assert!(is_ephemeral(dir.path()));
        // A sibling whose name extends the root's is not under it.
        let mut sibling = dir.path().as_os_str().to_owned();
        sibling.push("x");
        assert!(!is_ephemeral(Path::new(&sibling)));
        drop(reg);
        assert!(!is_ephemeral(&file_path));
    }

    #[test]
    fn syncs_under_an_ephemeral_root_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        data(&file, &path).unwrap();
        all(&file, &path).unwrap();
        assert_eq!(record::under(dir.path()), (2, 0));
        let reg = Ephemeral::register(dir.path());
        data(&file, &path).unwrap();
        all(&file, &path).unwrap();
        assert_eq!(record::under(dir.path()), (2, 2));
        drop(reg);
    }
}
