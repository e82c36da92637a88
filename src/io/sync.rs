//! Every fsync the crate issues goes through here: of file data ([`data`]), of a file with its
//! metadata ([`all`]), of directories (`io::sync_dir`, which asks [`is_ephemeral`] first), and of
//! a batch of files at once ([`batch`]: one `syncfs(2)` on Linux); and [`for_each_parallel`], which
//! runs independent per-partition work (opens, recoveries, checkpoints) on a few threads, so
//! partitions' fsyncs overlap instead of queueing one partition after another.
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
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Whether `dir` is the directory of a live temporary broker (a registered root itself, not a
/// path under one). A temporary broker takes no `.lock`, so a persistent open of its directory
/// in this process is refused by this instead.
pub(crate) fn is_ephemeral_root(dir: &Path) -> bool {
    let roots = EPHEMERAL_ROOTS.read();
    !roots.is_empty() && roots.iter().any(|r| r == dir)
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

/// Makes every write made so far to the files of a batch durable at once: on Linux one
/// `syncfs(2)` of the file system holding `fs` (an open handle of the data directory, opened
/// when the broker opened, so the kernel reports any writeback error since then), elsewhere (or
/// without `fs`) an fsync of each of `files` on up to `threads` threads. A batch of thousands of partitions
/// then waits on one pass of the disk instead of thousands of fsyncs.
///
/// `syncfs` also flushes what other programs wrote to the same file system, and its error is
/// the file system's, not a file's: the caller treats a failure as a failure of every file of
/// the batch.
pub(crate) fn batch(fs: Option<&File>, files: &[PathBuf], threads: usize) -> std::io::Result<()> {
    if !files.is_empty() && files.iter().all(|f| is_ephemeral(f)) {
        // A temporary broker's files: nothing to make durable (see the module docs).
        files.iter().for_each(|f| record::skipped(f));
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    if let Some(fs) = fs {
        return rustix::fs::syncfs(fs).map_err(std::io::Error::from);
    }
    let _ = fs;
    for_each_parallel(files, threads, |path| {
        if path.is_dir() {
            #[cfg(unix)]
            return File::open(path).and_then(|d| all(&d, path));
            #[cfg(not(unix))]
            return Ok(());
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| all(&f, path))
    })
    .into_iter()
    .collect()
}

/// Runs `f` on every item on up to `threads` threads (the calling thread is one of them) and
/// returns the results in the items' order. Items are handed out one at a time, so a slow
/// item (a partition with a log to scan) does not hold back a thread's whole share.
///
/// With one thread, or one item, nothing is spawned. A panic in `f` is re-raised here.
pub(crate) fn for_each_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut parts = std::thread::scope(|s| {
        let spawned: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut parts = vec![work()];
        for h in spawned {
            match h.join() {
                Ok(part) => parts.push(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        parts
    });
    let mut out: Vec<(usize, R)> = parts.iter_mut().flat_map(std::mem::take).collect();
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
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

    #[test]
    fn parallel_results_keep_the_items_order_whatever_the_thread_count() {
        let items: Vec<u64> = (0..1000).collect();
        for threads in [0, 1, 2, 7, 64, 5000] {
            let out = for_each_parallel(&items, threads, |x| x * 3);
            assert_eq!(out.len(), items.len());
            assert!(
                out.iter().zip(&items).all(|(o, i)| *o == i * 3),
                "{threads}"
            );
        }
        assert!(for_each_parallel(&[] as &[u8], 8, |x| *x).is_empty());
    }

    #[test]
    fn parallel_work_really_runs_on_several_threads() {
        let items: Vec<u32> = (0..64).collect();
        let ids = for_each_parallel(&items, 4, |_| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            std::thread::current().id()
        });
        let mut distinct = ids.clone();
        distinct.sort_by_key(|id| format!("{id:?}"));
        distinct.dedup();
        assert!(distinct.len() > 1, "one thread did all the work");
    }
}
