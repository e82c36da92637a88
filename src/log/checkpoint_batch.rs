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
//! A clean close passes a [`PointsFile`]: its partitions write no `recovery-point.tmp` and,
//! with no producer state, no snapshot; step 1 ends with the data directory's
//! `recovery-points.tmp` (every partition's point: those of the batch and those the close
//! leaves alone), step 3 renames it into place after the partitions' ends. One file for the
//! directory instead of one or two per partition.
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
use super::recovery_points::{self, Entry};
use crate::error::{Error, Result};
use crate::io;

/// The data directory's `recovery-points` file, written by a clean close's batch.
pub(crate) struct PointsFile {
    pub data_dir: PathBuf,
    /// Per log of the batch (same order): its directory name and its topic's id; `None`
    /// writes that log's point to its own `recovery-point` file as before.
    pub ids: Vec<Option<(String, u64)>>,
    /// The entries of partitions outside the batch (unchanged since open), written as given.
    pub others: Vec<Entry>,
    /// Entries read at open, kept for every partition that gets no new one (offline, or its
    /// checkpoint failed): still true, and dropping one would make its next open scan a log
    /// whose damage a point had marked as damage (an error) into a torn tail (a cut).
    pub kept: Vec<Entry>,
}

/// Held for a whole batch (see the module docs).
static BATCHES: Mutex<()> = parking_lot::const_mutex(());

/// Checkpoints `logs` as one batch (see the module docs); with `snapshot`, each also gets a
/// producer snapshot at its log end (a clean close, the end of a recovery). `fs` is an open
/// handle of `fs_path`, a directory on the file system holding the logs. With `points`, the
/// points go to the data directory's `recovery-points` file (see the module docs). One
/// result per log.
pub(crate) fn checkpoint_many(
    logs: &[Arc<PartitionLog>],
    fs: Option<&File>,
    fs_path: &Path,
    threads: usize,
    snapshot: bool,
    points: Option<&PointsFile>,
) -> Vec<Result<()>> {
    let _one_batch = BATCHES.lock();
    let in_points = |i: usize| points.is_some_and(|p| p.ids.get(i).is_some_and(Option::is_some));
    // By index: a pending checkpoint borrows its log for as long as `logs` lives.
    let indices: Vec<usize> = (0..logs.len()).collect();
    let begun: Vec<Mutex<Option<Result<Option<PendingCheckpoint<'_>>>>>> =
        io::sync::for_each_parallel(&indices, threads, |&i| {
            Mutex::new(Some(logs[i].checkpoint_begin(snapshot, in_points(i))))
        });
    let mut files: Vec<PathBuf> = begun
        .iter()
        .flat_map(|b| match b.lock().as_ref() {
            Some(Ok(Some(p))) => p.written.clone(),
            _ => Vec::new(),
        })
        .collect();
    if files.is_empty() {
        return begun.into_iter().map(|b| settle(b.into_inner())).collect();
    }
    let points_tmp = points.and_then(|p| write_points_tmp(p, &begun));
    files.extend(points_tmp.clone());
    if let Err(e) = io::sync::batch(fs, &files, threads) {
        if let Some(tmp) = &points_tmp {
            let _ = std::fs::remove_file(tmp);
        }
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
    let mut dirs: Vec<PathBuf> = logs.iter().map(|log| log.dir.clone()).collect();
    let mut ended = ended;
    if let (Some(tmp), Some(p)) = (&points_tmp, points) {
        // After every partition's end: the entries are true once the first sync returned.
        let path = recovery_points::path(&p.data_dir);
        if let Err(e) = std::fs::rename(tmp, &path) {
            let e = Error::io("renaming into place", &path, e);
            ended = ended.into_iter().map(|r| r.and(Err(e.clone()))).collect();
        }
        dirs.push(p.data_dir.clone());
    }
    match io::sync::batch(fs, &dirs, threads) {
        Ok(()) => ended,
        Err(e) => {
            let e = Error::io("syncing the file system of", fs_path, e);
            ended.into_iter().map(|r| r.and(Err(e.clone()))).collect()
        }
    }
}

/// Writes (unsynced) `recovery-points.tmp` with the points of the batch's logs that go there
/// and `p.others`; its path, or `None` (logged) if it could not be written: those logs' next
/// open then uses their own older files, or scans.
fn write_points_tmp(
    p: &PointsFile,
    begun: &[Mutex<Option<Result<Option<PendingCheckpoint<'_>>>>>],
) -> Option<PathBuf> {
    let mut entries = p.others.clone();
    for (b, id) in begun.iter().zip(&p.ids) {
        if let (Some(Ok(Some(pending))), Some((dir_name, topic_id))) = (b.lock().as_ref(), id) {
            entries.push(Entry {
                dir_name: dir_name.clone(),
                topic_id: *topic_id,
                point: pending.point(),
                no_producers: pending.no_producers,
            });
        }
    }
    let named: std::collections::HashSet<&str> =
        entries.iter().map(|e| e.dir_name.as_str()).collect();
    let kept: Vec<Entry> = p
        .kept
        .iter()
        .filter(|e| !named.contains(e.dir_name.as_str()))
        .cloned()
        .collect();
    entries.extend(kept);
    let tmp = recovery_points::tmp_path(&p.data_dir);
    match io::write_unsynced(&tmp, &recovery_points::encode(&entries)) {
        Ok(()) => Some(tmp),
        Err(e) => {
            log::warn!("recovery points not written (the next open scans more): {e}");
            None
        }
    }
}

fn settle(begun: Option<Result<Option<PendingCheckpoint<'_>>>>) -> Result<()> {
    match begun {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}
