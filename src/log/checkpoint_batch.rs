//! Checkpoints of many partitions at once, for a clean close, [`Broker::flush`], the tasks
//! thread (rolled segments, the periodic checkpoint) and `create_partitions`: the work grows with the partitions that changed, and the fsyncs are one
//! pass for all of them, not a chain per partition.
//!
//! The protocol, each step over every partition before the next (steps 1 and 3 on the
//! recovery threads):
//! 1. `checkpoint_begin` writes, without fsyncing, what a checkpoint writes: index tails,
//!    `recovery-point.tmp`, a producer snapshot's temporary file. Partitions with nothing to
//!    write are left out.
//! 2. One sync pass (`io::sync::batch`: `syncfs(2)` on Linux) makes the segments' data and
//!    all of step 1 durable.
//! 3. `checkpoint_end` publishes: pending segments synced, durable offset moved, the
//!    temporary files renamed into place.
//! 4. A second sync pass makes the renames durable.
//!
//! Invariants: one batch at a time in the process (`BATCHES`): a batch holds the
//! `checkpointing` lock of each partition it began until it ends, and takes them one after
//! another, so two batches over the same partitions in different orders (a flush and the
//! tasks thread) would each wait for a lock the other holds. A recovery point or snapshot names only bytes already durable (it is renamed
//! into place only after step 2); a failure in step 2 fails every partition of the batch
//! (the page cache can no longer be trusted, and `syncfs` does not say which file failed);
//! a failure anywhere else changed nothing an open trusts and is only reported.
//!
//! [`Broker::flush`]: crate::Broker::flush

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::partition_log::{PartitionLog, PendingCheckpoint};
use crate::error::{Error, Result};
use crate::io;

/// Held for a whole batch (see the module docs).
static BATCHES: Mutex<()> = parking_lot::const_mutex(());

/// Checkpoints `logs` as one batch (see the module docs); with `snapshot`, each also gets a
/// producer snapshot at its log end (a clean close, the end of a recovery). `fs` is an open
/// handle of `fs_path`, a directory on the file system holding the logs. One result per log.
pub(crate) fn checkpoint_many(
    logs: &[Arc<PartitionLog>],
    fs: Option<&File>,
    fs_path: &Path,
    threads: usize,
    snapshot: bool,
) -> Vec<Result<()>> {
    let _one_batch = BATCHES.lock();
    // By index: a pending checkpoint borrows its log for as long as `logs` lives.
    let indices: Vec<usize> = (0..logs.len()).collect();
    let begun: Vec<Mutex<Option<Result<Option<PendingCheckpoint<'_>>>>>> =
        io::sync::for_each_parallel(&indices, threads, |&i| {
            Mutex::new(Some(logs[i].checkpoint_begin(snapshot)))
        });
    let files: Vec<PathBuf> = begun
        .iter()
        .flat_map(|b| match b.lock().as_ref() {
            Some(Ok(Some(p))) => p.written.clone(),
            _ => Vec::new(),
        })
        .collect();
    if files.is_empty() {
        return begun.into_iter().map(|b| settle(b.into_inner())).collect();
    }
    if let Err(e) = io::sync::batch(fs, &files, threads) {
        let e = Error::io("syncing the file system of", fs_path, e);
        return logs
            .iter()
            .zip(begun)
            .map(|(log, b)| match b.into_inner() {
                Some(Ok(Some(_))) => Err(log.fail(e.clone())),
                other => settle(other),
            })
            .collect();
    }
    let pairs: Vec<(&Arc<PartitionLog>, &Mutex<Option<_>>)> = logs.iter().zip(&begun).collect();
    let ended = io::sync::for_each_parallel(&pairs, threads, |(log, b)| match b.lock().take() {
        Some(Ok(Some(pending))) => log.checkpoint_end(pending),
        other => settle(other),
    });
    // The renames: an error here leaves the old (true) files in place, so it is reported
    // for every partition, not fatal to any. Without `syncfs` the directories are what to
    // fsync: the `.tmp` files are renamed away by now, and the rest was synced above.
    let dirs: Vec<PathBuf> = logs.iter().map(|log| log.dir.clone()).collect();
    match io::sync::batch(fs, &dirs, threads) {
        Ok(()) => ended,
        Err(e) => {
            let e = Error::io("syncing the file system of", fs_path, e);
            ended.into_iter().map(|r| r.and(Err(e.clone()))).collect()
        }
    }
}

fn settle(begun: Option<Result<Option<PendingCheckpoint<'_>>>>) -> Result<()> {
    match begun {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}
