//! The consumer's durable commit as a future: [`Consumer::commit`] and
//! [`Consumer::commit_offsets`], returning [`Commit`].
//!
//! The call does what `commit_sync` does up to its fsync (checks, append to the offsets log's
//! page cache, the group's committed offsets updated) and hands the fsync to the broker's
//! syncer thread; the [`Commit`] completes when the syncer has made the commit durable,
//! woken through its task's waker. Concurrent commits of every consumer of the broker share
//! the syncer's fsyncs (group commit). Invariant: a `Commit` holds no borrow of the consumer,
//! so the consumer keeps polling while the fsync runs, and dropping a `Commit` changes
//! nothing (the commit is appended already and the syncer still makes it durable).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::consumer::Consumer;
use crate::broker::Durable;
use crate::error::{Error, Result};
use crate::group::OffsetAndMetadata;
use crate::types::TopicPartition;

/// A durable commit in progress, from [`Consumer::commit`] or [`Consumer::commit_offsets`]:
/// a `Future<Output = Result<()>>` that completes once the commit is fsynced (or failed).
///
/// The commit was made (in the page cache, visible to [`Consumer::committed`]) when the
/// method returned; awaiting the future waits for its durability. Dropping it does not undo
/// the commit, nor stop its fsync.
#[derive(Debug)]
#[must_use = "the commit is made, but is durable only once the future completes"]
pub struct Commit {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Known at the call: an error, or nothing to sync.
    Done(Option<Result<()>>),
    /// Waiting for the syncer.
    Syncing(Arc<Durable>),
}

impl Future for Commit {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let result = match &mut self.state {
            State::Done(result) => result.take().unwrap_or_else(|| {
                Err(Error::IllegalState {
                    reason: "a commit future was polled after it completed".into(),
                })
            }),
            State::Syncing(durable) => match durable.poll(cx.waker()) {
                Poll::Ready(result) => result,
                Poll::Pending => return Poll::Pending,
            },
        };
        self.state = State::Done(None);
        Poll::Ready(result)
    }
}

impl Drop for Commit {
    fn drop(&mut self) {
        if let State::Syncing(durable) = &self.state {
            durable.forget_waker();
        }
    }
}

impl Consumer {
    /// Commits the positions of every assigned partition, durably, as a future: the async
    /// form of [`Consumer::commit_sync`], for code on any executor.
    ///
    /// The commit is made when this returns (in the page cache; [`Consumer::committed`] sees
    /// it); the returned [`Commit`] completes once it is fsynced to `__consumer_offsets`, by
    /// the broker's syncer thread (started with the first such commit, shared by all of
    /// them: one fsync covers every commit pending), so no thread of the caller blocks on the
    /// fsync. Errors are those of `commit_sync` and arrive through the future:
    /// [`Error::RebalanceInProgress`], [`Error::CommitFailed`], [`Error::FencedInstanceId`],
    /// [`Error::Closed`], a failed fsync. Commit callbacks of earlier
    /// [`Consumer::commit_async`] calls run here, as in `commit_sync`. The consumer's commit
    /// metrics count the call (`commit-latency-avg` is the time to the append, without the
    /// fsync, which runs after the call returns).
    ///
    /// ```
    /// # use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig, TopicPartition};
    /// # use std::time::Duration;
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("events", TopicConfig::default())?;
    /// broker.topic("events")?.partition(0)?.append(&[Record::new("a"), Record::new("b")])?;
    /// let config = ConsumerConfig::default()
    ///     .group_id("audit")
    ///     .auto_offset_reset(OffsetReset::Earliest);
    /// let mut consumer = broker.consumer(config)?;
    /// let tp = TopicPartition::new("events", 0);
    /// consumer.assign(&[tp.clone()])?;
    /// futures::executor::block_on(async {
    ///     let records = consumer.recv().await?;
    ///     assert_eq!(records.count(), 2);
    ///     consumer.commit().await
    /// })?;
    /// assert_eq!(consumer.committed(&tp)?.map(|c| c.offset), Some(2));
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn commit(&mut self) -> Commit {
        let offsets = match self.check_can_commit() {
            Ok(()) => self.positions(),
            Err(e) => return Commit::done(Err(e)),
        };
        self.run_commit_callbacks();
        self.commit_durably(&offsets)
    }

    /// Commits these offsets (each the next offset to read, with optional metadata) durably,
    /// as a future: the async form of [`Consumer::commit_offsets_sync`], completing and
    /// failing as [`Consumer::commit`].
    pub fn commit_offsets(
        &mut self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Commit {
        if let Err(e) = self.check_can_commit() {
            return Commit::done(Err(e));
        }
        self.run_commit_callbacks();
        self.commit_durably(offsets)
    }

    fn commit_durably(&mut self, offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>) -> Commit {
        if offsets.is_empty() {
            return Commit::done(Ok(()));
        }
        let broker = Arc::clone(self.broker_inner());
        let syncing = self.commit_map_then(offsets, |appended| {
            Ok(appended.map(|a| broker.syncer().submit(a.log, a.end_offset)))
        });
        match syncing {
            Ok(Some(durable)) => Commit {
                state: State::Syncing(durable),
            },
            Ok(None) => Commit::done(Ok(())),
            Err(e) => Commit::done(Err(e)),
        }
    }
}

impl Commit {
    fn done(result: Result<()>) -> Self {
        Commit {
            state: State::Done(Some(result)),
        }
    }
}
