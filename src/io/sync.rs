//! The one place embroker asks the kernel to make bytes durable: every fsync of a file or a
//! directory goes through [`data`], [`all`] or [`dir`], so a switch that turns syncs off (a
//! temporary broker's data dies with it) or a change in how they are issued applies to all of
//! them at once; and [`for_each_parallel`], which runs independent per-partition work (opens,
//! recoveries, checkpoints) on a few threads, so partitions' fsyncs overlap instead of
//! queueing one partition after another.
//!
//! Invariant: these return the kernel's answer unchanged; callers map an error to the file it
//! concerns and decide whether it is fatal (see `SyncError`).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `fdatasync(2)`: the file's data, and the metadata needed to read it back (its size).
pub(crate) fn data(file: &File) -> std::io::Result<()> {
    file.sync_data()
}

/// `fsync(2)`: the file's data and all its metadata.
pub(crate) fn all(file: &File) -> std::io::Result<()> {
    file.sync_all()
}

/// `fsync(2)` of an open directory: the entries created, renamed or removed in it.
pub(crate) fn dir(dir: &File) -> std::io::Result<()> {
    dir.sync_all()
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
    #[cfg(target_os = "linux")]
    if let Some(fs) = fs {
        return rustix::fs::syncfs(fs).map_err(std::io::Error::from);
    }
    let _ = fs;
    for_each_parallel(files, threads, |path| {
        if path.is_dir() {
            #[cfg(unix)]
            return File::open(path).and_then(|d| dir(&d));
            #[cfg(not(unix))]
            return Ok(());
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| all(&f))
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

#[cfg(test)]
mod tests {
    use super::*;

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
