//! The producer's group commit under `acks=all`: a sync thread that fsyncs what the sender
//! appended while the sender goes on appending, and the appended batches waiting for the
//! fsync that covers them.
//!
//! Owns: [`SyncLine`], what the sender thread and its sync thread share (the logs to sync
//! through which offset, and the outcomes of the syncs done), the sync thread's loop
//! ([`SyncLine::run`]), and [`Awaiting`], the sender's queue of appended batches not yet
//! settled. The sender appends a round, notes its logs' syncs ([`Awaiting::note_syncs`]) and
//! takes the next round at once; it asks for them ([`SyncLine::want`]) when no fsync runs, and
//! the sync thread fsyncs each log once through the highest offset asked
//! (`PartitionLog::sync_to`, which shares fsyncs with other callers too), then hands the
//! outcomes back and wakes the sender, which completes the batches they cover. So an fsync
//! runs while the sender appends the next batches, and the next fsync covers everything
//! appended meanwhile. The sender asks for it one look at the lanes after completing the
//! last fsync's batches, not at once: the threads that waited for those records send their
//! next ones meanwhile, and they make this fsync instead of waiting behind it for the one
//! after (started as soon as the last one returned, an fsync covered only what was appended
//! during that one, and a blocked sender's record waited for two fsyncs).
//!
//! Invariants:
//! - A batch is settled successfully only by the outcome of a sync of its log through at
//!   least its end offset that returned `Ok`: an acknowledged `acks=all` record is durable.
//! - A failed sync settles, with its error, every batch of its log that it was to cover.
//! - Batches of one log settle and leave [`Awaiting::take_settled`] in append order (a
//!   partition's callbacks run in `send` order); batches of different logs do not wait for
//!   each other.
//! - Per log, the offsets asked grow (the sender appends in order), so the outcomes of one
//!   log arrive in the order of their offsets.
//! - The sync thread stops only when asked to and nothing is left to sync: every sync asked
//!   for gets an outcome.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::error::Result;
use crate::log::{AppendInfo, PartitionLog};
use crate::producer::accumulator::ProducerBatch;

/// A log to make durable through an offset (exclusive end).
type SyncTo = (Arc<PartitionLog>, i64);

#[derive(Default)]
struct Queue {
    /// Syncs asked for and not taken by the sync thread yet, at most one per log.
    wanted: Vec<SyncTo>,
    /// Outcomes of syncs done, not taken by the sender yet.
    synced: Vec<(SyncTo, Result<()>)>,
    stopping: bool,
}

/// What the sender thread and its sync thread share (see the module docs).
#[derive(Default)]
pub(crate) struct SyncLine {
    queue: Mutex<Queue>,
    /// The sync thread took syncs and has not handed their outcomes back yet.
    busy: AtomicBool,
    /// Wakes the sync thread: a sync was asked for, or it is to stop.
    wake: Condvar,
}

impl SyncLine {
    /// Asks for `log` to be made durable through `end` (exclusive).
    pub(crate) fn want(&self, syncs: impl IntoIterator<Item = SyncTo>) {
        merge(&mut self.queue.lock().wanted, syncs);
        self.wake.notify_one();
    }

    /// The outcomes of the syncs done since the last call.
    pub(crate) fn take_synced(&self) -> Vec<(SyncTo, Result<()>)> {
        std::mem::take(&mut self.queue.lock().synced)
    }

    /// True when outcomes wait for [`SyncLine::take_synced`].
    pub(crate) fn has_synced(&self) -> bool {
        !self.queue.lock().synced.is_empty()
    }

    /// True while the sync thread syncs (from taking the syncs asked to handing back their
    /// outcomes).
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Asks the sync thread to stop once nothing is left to sync.
    pub(crate) fn stop(&self) {
        self.queue.lock().stopping = true;
        self.wake.notify_one();
    }

    /// The sync thread: syncs what is asked, in rounds, until stopped with nothing asked.
    /// `synced` is called after each round's outcomes are handed over (it wakes the sender).
    pub(crate) fn run(&self, synced: impl Fn()) {
        loop {
            let round = {
                let mut q = self.queue.lock();
                while q.wanted.is_empty() && !q.stopping {
                    self.wake.wait(&mut q);
                }
                if q.wanted.is_empty() {
                    return;
                }
                self.busy.store(true, Ordering::Release);
                std::mem::take(&mut q.wanted)
            };
            let outcomes: Vec<(SyncTo, Result<()>)> = round
                .into_iter()
                .map(|(log, end)| {
                    let result = log.sync_to(end);
                    ((log, end), result)
                })
                .collect();
            self.queue.lock().synced.extend(outcomes);
            // Before the wake-up: the sender, woken, takes open batches for the next sync.
            self.busy.store(false, Ordering::Release);
            synced();
        }
    }
}

/// Adds `syncs` to `into`, keeping one per log, through the highest end.
fn merge(into: &mut Vec<SyncTo>, syncs: impl IntoIterator<Item = SyncTo>) {
    for (log, end) in syncs {
        match into.iter_mut().find(|(l, _)| Arc::ptr_eq(l, &log)) {
            Some((_, e)) => *e = (*e).max(end),
            None => into.push((log, end)),
        }
    }
}

/// An appended batch waiting for the sync that covers it.
pub(crate) struct Appended {
    pub batch: ProducerBatch,
    /// The append's outcome; the batch's end offset is its `last_offset + 1`.
    pub result: Result<AppendInfo>,
    /// Records a full batch like this one likely holds (for the completion's references).
    pub records: usize,
    /// Records in the batch.
    pub count: u64,
    /// When the sender took the batch's round (for the batch's latency).
    pub round: Instant,
}

impl Appended {
    fn end(&self) -> Option<i64> {
        self.result.as_ref().ok().map(|info| info.last_offset + 1)
    }
}

/// The sender's appended batches not settled yet, in append order (see the module docs).
#[derive(Default)]
pub(crate) struct Awaiting {
    /// Each batch and, once known, the outcome of its sync.
    batches: VecDeque<(Appended, Option<Result<()>>)>,
    /// Syncs the batches need that the sender has not asked of the sync thread yet, at most
    /// one per log.
    unasked: Vec<SyncTo>,
}

impl Awaiting {
    /// True when no batch waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Notes syncs that appended batches need, to be asked later ([`Awaiting::take_unasked`]).
    pub(crate) fn note_syncs(&mut self, syncs: impl IntoIterator<Item = SyncTo>) {
        merge(&mut self.unasked, syncs);
    }

    /// True when syncs wait to be asked.
    pub(crate) fn has_unasked(&self) -> bool {
        !self.unasked.is_empty()
    }

    /// The syncs to ask of the sync thread.
    pub(crate) fn take_unasked(&mut self) -> Vec<SyncTo> {
        std::mem::take(&mut self.unasked)
    }

    /// True when the batch of sequence number `seq` is appended and waits for its sync.
    pub(crate) fn holds(&self, seq: u64) -> bool {
        self.batches.iter().any(|(a, _)| a.batch.seq == seq)
    }

    /// Queues `appended`; a batch whose append failed needs no sync and is settled already.
    pub(crate) fn push(&mut self, appended: Appended) {
        let settled = appended.result.is_err().then_some(Ok(()));
        self.batches.push_back((appended, settled));
    }

    /// Settles, with `outcome`, every unsettled batch of `log` that ends at or before `end`.
    pub(crate) fn synced(&mut self, (log, end): &SyncTo, outcome: &Result<()>) {
        for (a, settled) in self.batches.iter_mut() {
            if settled.is_none()
                && Arc::ptr_eq(&a.batch.log, log)
                && a.end().is_some_and(|e| e <= *end)
            {
                *settled = Some(outcome.clone());
            }
        }
    }

    /// Takes the settled batches that no unsettled batch of the same log precedes, in order;
    /// each one's `result` is then its outcome: the append's, or the error of its sync.
    pub(crate) fn take_settled(&mut self) -> Vec<Appended> {
        let mut out = Vec::new();
        let mut blocked: Vec<*const PartitionLog> = Vec::new();
        let mut kept = VecDeque::with_capacity(self.batches.len());
        for (mut a, settled) in self.batches.drain(..) {
            let log = Arc::as_ptr(&a.batch.log);
            match settled {
                Some(sync) if !blocked.contains(&log) => {
                    a.result = a.result.and_then(|info| sync.map(|()| info));
                    out.push(a);
                }
                settled => {
                    if settled.is_none() && !blocked.contains(&log) {
                        blocked.push(log);
                    }
                    kept.push_back((a, settled));
                }
            }
        }
        self.batches = kept;
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Acks, TopicConfig};
    use crate::error::Error;
    use crate::notify::Notifier;
    use crate::producer::future::Completion;
    use crate::Record;

    fn open_log(dir: &Path, partition: i32) -> Arc<PartitionLog> {
        Arc::new(
            PartitionLog::open(
                &dir.join(format!("t-{partition}")),
                Arc::from("t"),
                partition,
                Arc::new(TopicConfig::default()),
                crate::clock::system(),
                Arc::new(Notifier::default()),
            )
            .unwrap(),
        )
    }

    /// A batch of `log` appended at `[base, end)`, or whose append failed (`end` `None`).
    fn appended(log: &Arc<PartitionLog>, seq: u64, end: Option<i64>) -> Appended {
        let completion = Arc::new(Completion::new("t", 0, Acks::All));
        let batch = ProducerBatch::new(
            seq,
            Arc::clone(log),
            Vec::new(),
            64,
            1 << 20,
            completion,
            Vec::new(),
        );
        let result = match end {
            Some(end) => Ok(AppendInfo {
                base_offset: end - 1,
                last_offset: end - 1,
                log_append_time: None,
                duplicate: false,
            }),
            None => Err(Error::Closed { what: "test log" }),
        };
        Appended {
            batch,
            result,
            records: 1,
            count: 1,
            round: Instant::now(),
        }
    }

    fn seqs(settled: &[Appended]) -> Vec<u64> {
        settled.iter().map(|a| a.batch.seq).collect()
    }

    #[test]
    fn a_batch_settles_only_once_a_sync_covers_it_and_in_its_logs_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (open_log(dir.path(), 0), open_log(dir.path(), 1));
        let mut awaiting = Awaiting::default();
        awaiting.push(appended(&a, 1, Some(10)));
        awaiting.push(appended(&b, 2, Some(5)));
        awaiting.push(appended(&a, 3, Some(20)));
        // A failed append needs no sync, but waits for the batch of its log before it.
        awaiting.push(appended(&a, 4, None));
        // One of another log does not.
        awaiting.push(appended(&b, 5, None));
        assert!(awaiting.take_settled().is_empty());
        // A sync short of a batch's end does not settle it.
        awaiting.synced(&(Arc::clone(&b), 4), &Ok(()));
        assert!(awaiting.take_settled().is_empty());
        awaiting.synced(&(Arc::clone(&a), 10), &Ok(()));
        let settled = awaiting.take_settled();
        assert_eq!(seqs(&settled), [1]);
        assert_eq!(settled[0].result.as_ref().unwrap().last_offset, 9);
        awaiting.synced(&(Arc::clone(&b), 5), &Ok(()));
        assert_eq!(seqs(&awaiting.take_settled()), [2, 5]);
        awaiting.synced(&(Arc::clone(&a), 25), &Ok(()));
        let settled = awaiting.take_settled();
        assert_eq!(seqs(&settled), [3, 4]);
        assert!(settled[0].result.is_ok());
        assert!(matches!(settled[1].result, Err(Error::Closed { .. })));
        assert!(awaiting.is_empty());
    }

    #[test]
    fn syncs_noted_wait_to_be_asked_one_per_log_through_the_highest_end() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (open_log(dir.path(), 0), open_log(dir.path(), 1));
        let mut awaiting = Awaiting::default();
        assert!(!awaiting.has_unasked());
        awaiting.note_syncs([(Arc::clone(&a), 10), (Arc::clone(&b), 3)]);
        awaiting.note_syncs([(Arc::clone(&a), 25), (Arc::clone(&b), 2)]);
        assert!(awaiting.has_unasked());
        let asked: Vec<(usize, i64)> = awaiting
            .take_unasked()
            .into_iter()
            .map(|(log, end)| (usize::from(!Arc::ptr_eq(&log, &a)), end))
            .collect();
        assert_eq!(asked, [(0, 25), (1, 3)]);
        assert!(!awaiting.has_unasked());
    }

    #[test]
    fn a_failed_sync_fails_every_batch_it_covered_and_no_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let a = open_log(dir.path(), 0);
        let mut awaiting = Awaiting::default();
        for (seq, end) in [(1, 10), (2, 20), (3, 30)] {
            awaiting.push(appended(&a, seq, Some(end)));
        }
        let failure = Err(Error::LogFailed {
            topic: "t".into(),
            partition: 0,
            cause: "fsync: EIO".into(),
        });
        awaiting.synced(&(Arc::clone(&a), 20), &failure);
        let settled = awaiting.take_settled();
        assert_eq!(seqs(&settled), [1, 2]);
        assert!(settled
            .iter()
            .all(|s| matches!(s.result, Err(Error::LogFailed { .. }))));
        assert!(!awaiting.is_empty());
        awaiting.synced(&(Arc::clone(&a), 30), &Ok(()));
        let settled = awaiting.take_settled();
        assert_eq!(seqs(&settled), [3]);
        assert!(settled[0].result.is_ok());
    }

    #[test]
    fn the_sync_thread_syncs_what_is_asked_hands_back_outcomes_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (open_log(dir.path(), 0), open_log(dir.path(), 1));
        let mut ends = Vec::new();
        for log in [&a, &b] {
            for i in 0..3 {
                let info = log.append_records(&[Record::new(format!("v{i}"))]).unwrap();
                ends.push((Arc::clone(log), info.last_offset + 1));
            }
        }
        let line = SyncLine::default();
        let wakes = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                line.run(|| {
                    wakes.fetch_add(1, Ordering::SeqCst);
                })
            });
            // Asked twice for each log: one sync each, through the higher end.
            line.want(ends.clone());
            let mut outcomes = Vec::new();
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            while outcomes.len() < 2 && Instant::now() < deadline {
                outcomes.extend(line.take_synced());
                std::thread::yield_now();
            }
            line.stop();
            assert!(outcomes.len() >= 2, "outcomes: {}", outcomes.len());
            for log in [&a, &b] {
                let end = outcomes
                    .iter()
                    .filter(|((l, _), r)| Arc::ptr_eq(l, log) && r.is_ok())
                    .map(|((_, e), _)| *e)
                    .max();
                assert_eq!(end, Some(3));
            }
        });
        assert!(wakes.load(Ordering::SeqCst) >= 1);
        assert!(!line.is_busy());
        assert!(!line.has_synced());
    }
}
