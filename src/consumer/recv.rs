//! The consumer's async receive: [`Recv`], the future of [`Consumer::recv`], and (feature
//! `stream`) [`BatchStream`], a `futures_core::Stream` of what each poll returns, and
//! [`RecordStream`], the same flattened into single records.
//!
//! Both make the same look for records as `poll` (`Consumer::poll_step`). When there is none,
//! the task's [`Waker`](std::task::Waker) is registered with the broker's notifier, which every
//! append, group change and [`WakeupHandle::wakeup`](crate::WakeupHandle::wakeup) bumps: the
//! future is woken by the event itself, with no thread, timer or polling loop of its own, and
//! it removes its waker when dropped.
//!
//! There is no deadline: without a runtime there is no timer to end one. A caller that wants
//! one uses its runtime's (`tokio::time::timeout(d, consumer.recv())`); dropping the future
//! is clean. The group protocol's own timed steps (a rebalance waiting for a member's
//! `max.poll.interval.ms` or the rebalance timeout) run on the next event or the next receive,
//! so a group member should receive under such a timeout (docs/ARCHITECTURE.md, "Async").

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::consumer::{Consumer, PollStep};
use super::records::ConsumerRecords;
use crate::error::Result;

/// The future of [`Consumer::recv`]: the next non-empty [`ConsumerRecords`], or an error.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited or polled"]
pub struct Recv<'a> {
    consumer: &'a mut Consumer,
    state: Receiving,
}

/// A receive in progress, apart from the consumer it borrows (shared by `Recv` and the
/// stream).
#[derive(Debug, Default)]
pub(super) struct Receiving {
    /// The subscription's topics, read at the first poll (`Some(None)`: assigned partitions).
    topics: Option<Option<Vec<String>>>,
    /// The key of this receive's waker in the broker's notifier, while one is registered.
    key: Option<u64>,
}

impl Receiving {
    pub(super) fn poll(
        &mut self,
        consumer: &mut Consumer,
        cx: &mut Context<'_>,
    ) -> Poll<Result<ConsumerRecords>> {
        if self.topics.is_none() {
            match consumer.poll_begin() {
                Ok(topics) => self.topics = Some(topics),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        loop {
            let topics = self.topics.as_ref().and_then(|t| t.as_deref());
            // A step may run listener callbacks or commits: here, on the polling task, as it
            // runs inside `poll` for the blocking API.
            let seen = match consumer.poll_step(topics) {
                Ok(PollStep::Idle { seen, .. }) => seen,
                Ok(PollStep::Ready(records)) => {
                    self.finish(consumer);
                    return Poll::Ready(Ok(records));
                }
                Err(e) => {
                    self.finish(consumer);
                    return Poll::Ready(Err(e));
                }
            };
            match consumer.notifier().register(self.key, cx.waker(), seen) {
                Some(key) => {
                    self.key = Some(key);
                    return Poll::Pending;
                }
                // An event came in since the look: look again.
                None => self.key = None,
            }
        }
    }

    /// Ends the receive (done or dropped): removes the waker, leaves `poll` for the group.
    pub(super) fn finish(&mut self, consumer: &mut Consumer) {
        if let Some(key) = self.key.take() {
            consumer.notifier().deregister(key);
        }
        if self.topics.take().is_some() {
            consumer.poll_end();
        }
    }
}

impl Future for Recv<'_> {
    type Output = Result<ConsumerRecords>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.state.poll(this.consumer, cx)
    }
}

impl Drop for Recv<'_> {
    fn drop(&mut self) {
        self.state.finish(self.consumer);
    }
}

impl Consumer {
    /// Waits, as a future, for the next records: [`Consumer::poll`] without a timeout, for
    /// async code on any executor. Returns as soon as records are available (never empty).
    ///
    /// The future is woken by the append that brings the records (or a group change, or
    /// [`WakeupHandle::wakeup`](crate::WakeupHandle::wakeup)) through its task's waker: a
    /// pending receive costs no thread and no timer. It has no deadline of its own: to bound
    /// the wait use the runtime's timeout; dropping the future is clean (positions move only
    /// when records are returned). A group member should bound it, so that the group's timed
    /// steps run (see the module docs of `Recv`).
    ///
    /// Errors: those of [`Consumer::poll`].
    ///
    /// ```
    /// # use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig, TopicPartition};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("events", TopicConfig::default())?;
    /// let mut consumer = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))?;
    /// consumer.assign(&[TopicPartition::new("events", 0)])?;
    /// let log = broker.topic("events")?.partition(0)?;
    /// let writer = std::thread::spawn(move || log.append(&[Record::new("hello")]));
    /// let records = futures::executor::block_on(consumer.recv())?;
    /// assert_eq!(records.count(), 1);
    /// # writer.join().unwrap()?;
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn recv(&mut self) -> Recv<'_> {
        Recv {
            consumer: self,
            state: Receiving::default(),
        }
    }
}

#[cfg(feature = "stream")]
pub use stream::{BatchStream, RecordStream};

#[cfg(feature = "stream")]
mod stream {
    use std::collections::BTreeMap;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_core::Stream;

    use super::super::consumer::Consumer;
    use super::super::records::{ConsumerRecord, ConsumerRecords, ConsumerRecordsIntoIter};
    use super::Receiving;
    use crate::error::Result;
    use crate::types::TopicPartition;

    /// A [`Stream`] of the consumer's records a poll's worth at a time, from
    /// [`Consumer::stream`] (feature `stream`): each item is what one [`Consumer::poll`]
    /// would return (never empty, at most `max.poll.records`), iterated as a blocking loop
    /// iterates it (`for r in &records`, or borrowed with [`ConsumerRecords::views`]). Never
    /// ends by itself; an error is yielded as an item and the stream goes on (a
    /// [`crate::Error::Wakeup`], for instance).
    ///
    /// One item per poll rather than per record: a record is then handed to the loop as the
    /// blocking loop hands it, at the blocking loop's cost per record, where a stream of single
    /// records moves each one through the executor's `Poll` (see [`RecordStream`], and
    /// docs/ARCHITECTURE.md, "Async", for the figures). Positions move when an item is
    /// yielded, as when `poll` returns; dropping the stream skips nothing.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct BatchStream<'a> {
        consumer: &'a mut Consumer,
        state: Receiving,
    }

    impl Stream for BatchStream<'_> {
        type Item = Result<ConsumerRecords>;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = self.get_mut();
            this.state.poll(this.consumer, cx).map(Some)
        }
    }

    impl Drop for BatchStream<'_> {
        fn drop(&mut self) {
            self.state.finish(self.consumer);
        }
    }

    /// A [`Stream`] of the consumer's records, one owned [`ConsumerRecord`] per item, from
    /// [`Consumer::record_stream`] (feature `stream`). Never ends by itself; an error is
    /// yielded as an item and the stream goes on (a [`crate::Error::Wakeup`], for instance).
    ///
    /// Records are fetched a poll's worth at a time (`max.poll.records`). Dropping the
    /// stream with records fetched but not yet yielded seeks their partitions back to the
    /// first of them, so no record is skipped. Each record passes through the executor's
    /// `Poll` by value, which costs more a record than iterating the items of
    /// [`Consumer::stream`] (figures in docs/ARCHITECTURE.md, "Async").
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct RecordStream<'a> {
        consumer: &'a mut Consumer,
        state: Receiving,
        buffered: Option<ConsumerRecordsIntoIter>,
    }

    impl Stream for RecordStream<'_> {
        type Item = Result<ConsumerRecord>;

        // Inlined into the caller's loop (across crates): the next buffered record is
        // decoded where it is used, as `for r in &records` does in a blocking loop.
        #[inline]
        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = self.get_mut();
            if let Some(record) = this.buffered.as_mut().and_then(Iterator::next) {
                return Poll::Ready(Some(Ok(record)));
            }
            this.fetch(cx)
        }
    }

    impl RecordStream<'_> {
        /// The buffered records are all yielded: receives the next ones.
        #[inline(never)]
        fn fetch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<ConsumerRecord>>> {
            loop {
                self.buffered = None;
                match self.state.poll(self.consumer, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(records)) => {
                        let mut records = records.into_iter();
                        if let Some(record) = records.next() {
                            self.buffered = Some(records);
                            return Poll::Ready(Some(Ok(record)));
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                }
            }
        }
    }

    impl Drop for RecordStream<'_> {
        fn drop(&mut self) {
            self.state.finish(self.consumer);
            let Some(rest) = self.buffered.take() else {
                return;
            };
            let mut first: BTreeMap<TopicPartition, i64> = BTreeMap::new();
            for r in rest {
                first.entry(r.topic_partition()).or_insert(r.offset);
            }
            for (tp, offset) in first {
                // Best effort: a partition revoked since has no position to restore.
                let _ = self.consumer.seek(&tp, offset);
            }
        }
    }

    impl Consumer {
        /// The consumer's records as a [`Stream`] of batches (feature `stream`), for async
        /// code on any executor: each item is the next non-empty [`ConsumerRecords`], as soon
        /// as it is appended, woken by the append (see [`Consumer::recv`]); iterate it as a
        /// blocking loop iterates `poll`'s result. The fastest way to consume from async code;
        /// [`Consumer::record_stream`] yields one record per item instead.
        ///
        /// ```
        /// # use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig, TopicPartition};
        /// use futures::StreamExt;
        /// let broker = Broker::temporary()?;
        /// broker.create_topic("events", TopicConfig::default())?;
        /// let log = broker.topic("events")?.partition(0)?;
        /// log.append(&[Record::new("a"), Record::new("b")])?;
        /// let mut consumer = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))?;
        /// consumer.assign(&[TopicPartition::new("events", 0)])?;
        /// let offsets = futures::executor::block_on(async {
        ///     let mut stream = consumer.stream();
        ///     let mut offsets = Vec::new();
        ///     while let Some(records) = stream.next().await {
        ///         for r in &records? {
        ///             offsets.push(r.offset);
        ///         }
        ///         if offsets.len() == 2 {
        ///             break;
        ///         }
        ///     }
        ///     Ok::<_, embroker::Error>(offsets)
        /// })?;
        /// assert_eq!(offsets, [0, 1]);
        /// # Ok::<(), embroker::Error>(())
        /// ```
        pub fn stream(&mut self) -> BatchStream<'_> {
            BatchStream {
                consumer: self,
                state: Receiving::default(),
            }
        }

        /// The consumer's records as a [`Stream`] of single records (feature `stream`): as
        /// [`Consumer::stream`], flattened, each record an owned [`ConsumerRecord`].
        ///
        /// ```
        /// # use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig, TopicPartition};
        /// use futures::StreamExt;
        /// let broker = Broker::temporary()?;
        /// broker.create_topic("events", TopicConfig::default())?;
        /// let log = broker.topic("events")?.partition(0)?;
        /// log.append(&[Record::new("a"), Record::new("b")])?;
        /// let mut consumer = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))?;
        /// consumer.assign(&[TopicPartition::new("events", 0)])?;
        /// let values: Vec<_> = futures::executor::block_on(async {
        ///     let stream = consumer.record_stream().take(2);
        ///     stream.map(|r| r.map(|r| r.offset)).collect::<Vec<_>>().await
        /// });
        /// assert_eq!(values.into_iter().collect::<embroker::Result<Vec<_>>>()?, [0, 1]);
        /// # Ok::<(), embroker::Error>(())
        /// ```
        pub fn record_stream(&mut self) -> RecordStream<'_> {
            RecordStream {
                consumer: self,
                state: Receiving::default(),
                buffered: None,
            }
        }
    }
}
