//! The result of one batch, shared by the futures of its records.
//!
//! A batch has one [`Completion`]; every [`SendFuture`] of a record in it holds an `Arc` of it
//! and its own index in the batch, so sending a record costs a reference count, not an
//! allocation. Invariant: a completion is set exactly once per use (the first `set` wins),
//! and every batch sets it, on success, on failure, or from `Drop` (see
//! `accumulator::ProducerBatch`).
//!
//! A completion no future holds any more is used again by a later batch, possibly of another
//! partition: where it belongs (topic, partition) therefore sits with its outcome under its
//! lock, and `reuse` clears the outcome. The producer reuses only completions no future held
//! when their batch completed (only its own references made ahead did), so no future of an
//! earlier use can see a later one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::Acks;
use crate::error::{Error, Result};
use crate::producer::record::RecordMetadata;

/// Where a batch landed: enough to compute every record's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchOutcome {
    pub base_offset: i64,
    /// Set when the topic stamps `LogAppendTime`.
    pub log_append_time: Option<i64>,
}

/// Told when a thread or task starts to wait on a batch (see [`Completion::awaited`]): the
/// producer's sender, which then takes the batch without waiting for it to grow.
pub(crate) trait Hurry: Send + Sync {
    /// Someone waits on a batch: look at the open batches now.
    fn hurry(&self);
}

/// The result of one batch, set once per use.
///
/// Waiters do not share a condition variable: a blocked `wait` leaves its thread in the
/// completion and parks it alone, and `set` unparks each such thread directly, in one pass
/// after releasing the lock. A woken thread reads the outcome from atomics, without the lock,
/// so the fifty threads of a group-committed batch wake at once instead of one after another
/// through a mutex (a condvar's `notify_all` requeues its waiters onto the mutex, and each then
/// waits for the one before it to be scheduled, take the mutex and release it).
#[derive(Debug)]
pub(crate) struct Completion {
    acks: Acks,
    /// [`PENDING`], [`SUCCEEDED`] or [`FAILED`]: stored (release) after the outcome and the
    /// atomics below, so a waiter that loads it (acquire) can read them without the lock.
    status: AtomicU8,
    /// The outcome's base offset once `status` is [`SUCCEEDED`].
    base_offset: AtomicI64,
    /// The outcome's log append time ([`NO_APPEND_TIME`] for none).
    log_append_time: AtomicI64,
    /// Set by the first wait on the batch in this use (see [`Completion::awaited`]).
    awaited: AtomicBool,
    /// Told of the first wait (the producer's sender); `None` in tests.
    sender: Option<Weak<dyn Hurry>>,
    state: Mutex<State>,
}

/// The outcome is not set yet.
const PENDING: u8 = 0;
/// The batch was stored: the atomics hold its outcome.
const SUCCEEDED: u8 = 1;
/// The batch failed: the error is in the state, under the lock.
const FAILED: u8 = 2;
/// No log append time (the topic uses `CreateTime`).
const NO_APPEND_TIME: i64 = i64::MIN;

/// A completion's batch and, once set, its outcome.
#[derive(Debug)]
struct State {
    /// Interned (see `topic_names`): copied into every record's metadata.
    topic: &'static str,
    partition: i32,
    outcome: Option<Result<BatchOutcome>>,
    /// Wakers of the batch's pending async futures, by the record's index in the batch (a
    /// record has one future, so the index is a key). `set` takes and wakes them all, so none
    /// is left for a later use of the completion.
    wakers: Vec<(i32, Waker)>,
    /// Threads blocked in `wait` on the batch; `set` takes and unparks them all.
    threads: Vec<Thread>,
}

/// The topic and partition of a batch, for its records' metadata.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Place {
    pub topic: &'static str,
    pub partition: i32,
    pub acks: Acks,
}

impl Place {
    /// The metadata of the record at `index` in the batch, given the batch's outcome.
    pub(crate) fn metadata(
        &self,
        outcome: &Result<BatchOutcome>,
        index: i32,
        timestamp: i64,
    ) -> Result<RecordMetadata> {
        match outcome {
            Ok(o) => Ok(RecordMetadata {
                topic: self.topic,
                partition: self.partition,
                // acks=0 reports no offset, as Kafka's producer does.
                offset: if self.acks == Acks::None {
                    -1
                } else {
                    o.base_offset + i64::from(index)
                },
                timestamp: o.log_append_time.unwrap_or(timestamp),
            }),
            Err(e) => Err(e.clone()),
        }
    }
}

impl Completion {
    #[cfg(test)]
    pub(crate) fn new(topic: &'static str, partition: i32, acks: Acks) -> Self {
        Completion::told(topic, partition, acks, None)
    }

    /// A completion whose first wait tells `sender` (see [`Completion::awaited`]).
    pub(crate) fn told(
        topic: &'static str,
        partition: i32,
        acks: Acks,
        sender: Option<Weak<dyn Hurry>>,
    ) -> Self {
        Completion {
            acks,
            status: AtomicU8::new(PENDING),
            base_offset: AtomicI64::new(0),
            log_append_time: AtomicI64::new(NO_APPEND_TIME),
            awaited: AtomicBool::new(false),
            sender,
            state: Mutex::new(State {
                topic,
                partition,
                outcome: None,
                wakers: Vec::new(),
                threads: Vec::new(),
            }),
        }
    }

    /// Makes the completion, whose earlier use is over, that of a new batch of `topic` and
    /// `partition`.
    pub(crate) fn reuse(&self, topic: &'static str, partition: i32) {
        let mut state = self.state.lock();
        state.topic = topic;
        state.partition = partition;
        state.outcome = None;
        self.awaited.store(false, Ordering::SeqCst);
        self.status.store(PENDING, Ordering::Release);
    }

    /// True once a thread or task waits on this use's outcome: its batch is wanted now. Without
    /// `linger.ms` the sender takes such a batch at its next look instead of waiting for it
    /// to stop growing (as Kafka's `linger.ms=0` sends at once); a caller blocked on it would
    /// otherwise wait out the sender's growth wait (see `Shared::drain_lane`).
    pub(crate) fn awaited(&self) -> bool {
        self.awaited.load(Ordering::SeqCst)
    }

    /// Notes a wait on the outcome; the first one of a use tells the sender. Called with no
    /// lock held (the sender's `hurry` may lock the producer's accumulator).
    fn note_awaited(&self) {
        // SeqCst, paired with the sender: it bumps the producer's work count after this store,
        // so a sender that misses the flag sees the bump and looks again.
        if !self.awaited.swap(true, Ordering::SeqCst) {
            if let Some(sender) = self.sender.as_ref().and_then(Weak::upgrade) {
                sender.hurry();
            }
        }
    }

    /// The batch's topic and partition.
    pub(crate) fn place(&self) -> Place {
        let state = self.state.lock();
        Place {
            topic: state.topic,
            partition: state.partition,
            acks: self.acks,
        }
    }

    /// Sets the result unless one is set already, and wakes the waiters: every blocked thread
    /// is unparked and every async task's waker woken, with no lock held meanwhile.
    pub(crate) fn set(&self, result: Result<BatchOutcome>) {
        let mut state = self.state.lock();
        if state.outcome.is_some() {
            return;
        }
        let status = match &result {
            Ok(o) => {
                self.base_offset.store(o.base_offset, Ordering::Relaxed);
                self.log_append_time.store(
                    o.log_append_time.unwrap_or(NO_APPEND_TIME),
                    Ordering::Relaxed,
                );
                SUCCEEDED
            }
            Err(_) => FAILED,
        };
        state.outcome = Some(result);
        self.status.store(status, Ordering::Release);
        let wakers = std::mem::take(&mut state.wakers);
        let threads = std::mem::take(&mut state.threads);
        // Woken outside the lock: an executor may poll the future inline, and a woken thread
        // never finds the lock taken by the thread waking the others.
        drop(state);
        for t in threads {
            t.unpark();
        }
        for (_, w) in wakers {
            w.wake();
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.status.load(Ordering::Acquire) != PENDING
    }

    /// The metadata of the record at `index` once the outcome is set (`None` before), read
    /// without the lock on success; `place` is the batch's, read by the caller earlier (a
    /// completion is not reused while a future holds it).
    fn finished(&self, place: Place, index: i32, timestamp: i64) -> Option<Result<RecordMetadata>> {
        match self.status.load(Ordering::Acquire) {
            PENDING => None,
            SUCCEEDED => {
                let time = self.log_append_time.load(Ordering::Relaxed);
                let outcome = Ok(BatchOutcome {
                    base_offset: self.base_offset.load(Ordering::Relaxed),
                    log_append_time: (time != NO_APPEND_TIME).then_some(time),
                });
                Some(place.metadata(&outcome, index, timestamp))
            }
            _ => {
                let state = self.state.lock();
                state
                    .outcome
                    .as_ref()
                    .map(|outcome| place.metadata(outcome, index, timestamp))
            }
        }
    }

    /// Leaves the calling thread to be unparked by `set`, unless the outcome is set already;
    /// returns the batch's place either way.
    fn register_thread(&self) -> (Place, bool) {
        let mut state = self.state.lock();
        let place = state.place(self.acks);
        if state.outcome.is_some() {
            return (place, false);
        }
        state.threads.push(std::thread::current());
        (place, true)
    }

    /// Takes the calling thread off the list `set` unparks (a wait that timed out).
    fn unregister_thread(&self) {
        let me = std::thread::current().id();
        let mut state = self.state.lock();
        if let Some(i) = state.threads.iter().position(|t| t.id() == me) {
            state.threads.swap_remove(i);
        }
    }
}

impl State {
    fn place(&self, acks: Acks) -> Place {
        Place {
            topic: self.topic,
            partition: self.partition,
            acks,
        }
    }
}

/// The pending result of [`Producer::send`](crate::Producer::send): wait on it for the
/// record's [`RecordMetadata`] once the record is stored under the producer's `acks`, or drop
/// it (the record is sent all the same). Kafka's `Future<RecordMetadata>`.
///
/// `SendFuture` is also a [`Future`]: `.await` it on any executor (tokio, async-std,
/// `futures::executor`, ...) instead of calling [`SendFuture::wait`]. The batch's completion
/// wakes the task through its [`Waker`]: no thread or timer per future. Dropping a pending
/// future removes its waker.
///
/// Under `acks=0` the future is complete at once, with offset -1.
///
/// ```
/// # use embroker::{Broker, ProducerConfig, ProducerRecord, TopicConfig};
/// let broker = Broker::temporary()?;
/// broker.create_topic("events", TopicConfig::default())?;
/// let producer = broker.producer(ProducerConfig::default())?;
/// let metadata = futures::executor::block_on(async {
///     producer.send(ProducerRecord::new("events", "hello"))?.await
/// })?;
/// assert_eq!(metadata.offset, 0);
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "the record is sent whether or not the future is waited on; drop it explicitly if no result is wanted"]
pub struct SendFuture {
    completion: Arc<Completion>,
    index: i32,
    /// Also in the completion; here so that [`SendFuture::partition`] takes no lock.
    partition: i32,
    timestamp: i64,
    /// True once `poll` left a waker in the completion (so `Drop` looks for it; a future that
    /// was never polled, the blocking path's, takes no lock when dropped).
    registered: bool,
}

impl SendFuture {
    pub(crate) fn new(
        completion: Arc<Completion>,
        index: i32,
        partition: i32,
        timestamp: i64,
    ) -> Self {
        SendFuture {
            completion,
            index,
            partition,
            timestamp,
            registered: false,
        }
    }

    /// The partition the record was assigned to (known as soon as `send` returns).
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// True when [`SendFuture::wait`] would return without blocking.
    pub fn is_done(&self) -> bool {
        self.completion.acks == Acks::None || self.completion.is_set()
    }

    /// Blocks until the record is stored under the producer's `acks` (or failed), and returns
    /// where it was stored.
    pub fn wait(self) -> Result<RecordMetadata> {
        if let Some(immediate) = self.immediate() {
            return immediate;
        }
        let (place, registered) = self.completion.register_thread();
        if registered {
            self.completion.note_awaited();
        }
        loop {
            if let Some(done) = self.completion.finished(place, self.index, self.timestamp) {
                return done;
            }
            debug_assert!(registered, "an unset outcome with no thread to wake");
            // Returns when `set` unparks this thread, or spuriously (an unpark left over from
            // an earlier wait): the status decides.
            std::thread::park();
        }
    }

    /// Like [`SendFuture::wait`], but gives up after `timeout` with [`Error::Timeout`]; the
    /// record is still on its way and the future can be waited on again.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<RecordMetadata> {
        if let Some(immediate) = self.immediate() {
            return immediate;
        }
        let deadline = Instant::now().checked_add(timeout);
        let (place, registered) = self.completion.register_thread();
        if registered {
            self.completion.note_awaited();
        }
        loop {
            if let Some(done) = self.completion.finished(place, self.index, self.timestamp) {
                return done;
            }
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        self.completion.unregister_thread();
                        // Set between the last look and the unregistering: still an answer.
                        if let Some(done) =
                            self.completion.finished(place, self.index, self.timestamp)
                        {
                            return done;
                        }
                        return Err(Error::Timeout {
                            operation: format!(
                                "waiting for a record sent to {}-{}",
                                place.topic, place.partition
                            ),
                            timeout,
                        });
                    }
                    std::thread::park_timeout(d - now);
                }
            }
        }
    }

    /// Under `acks=0`, the answer without waiting: nothing is awaited, the offset is -1.
    fn immediate(&self) -> Option<Result<RecordMetadata>> {
        (self.completion.acks == Acks::None).then(|| {
            Ok(RecordMetadata {
                topic: self.completion.place().topic,
                partition: self.partition,
                offset: -1,
                timestamp: self.timestamp,
            })
        })
    }
}

impl Future for SendFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(immediate) = this.immediate() {
            return Poll::Ready(immediate);
        }
        let mut state = this.completion.state.lock();
        if let Some(outcome) = state.outcome.as_ref() {
            this.registered = false;
            return Poll::Ready(state.place(this.completion.acks).metadata(
                outcome,
                this.index,
                this.timestamp,
            ));
        }
        let index = this.index;
        match state.wakers.iter_mut().find(|(i, _)| *i == index) {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => state.wakers.push((index, cx.waker().clone())),
        }
        drop(state);
        this.registered = true;
        this.completion.note_awaited();
        Poll::Pending
    }
}

impl Drop for SendFuture {
    fn drop(&mut self) {
        if self.registered {
            let index = self.index;
            self.completion
                .state
                .lock()
                .wakers
                .retain(|(i, _)| *i != index);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    fn future(completion: &Arc<Completion>, index: i32) -> SendFuture {
        SendFuture::new(Arc::clone(completion), index, 3, 1_000)
    }

    /// Every thread blocked on a batch wakes with its own record's metadata, whether it
    /// parked before the outcome was set or was still arriving, over many batches.
    #[test]
    fn every_waiter_of_a_batch_wakes_with_its_record() {
        const WAITERS: usize = 50;
        for round in 0..20 {
            let completion = Arc::new(Completion::new("t", 3, Acks::All));
            let barrier = Barrier::new(WAITERS + 1);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..WAITERS)
                    .map(|i| {
                        let f = future(&completion, i as i32);
                        let barrier = &barrier;
                        s.spawn(move || {
                            barrier.wait();
                            if i % 5 == 0 {
                                f.wait_timeout(Duration::from_secs(30)).unwrap()
                            } else {
                                f.wait().unwrap()
                            }
                        })
                    })
                    .collect();
                barrier.wait();
                // Some waiters are parked by now, some not yet: both must end well.
                if round % 2 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
                completion.set(Ok(BatchOutcome {
                    base_offset: 100,
                    log_append_time: None,
                }));
                for (i, h) in handles.into_iter().enumerate() {
                    let meta = h.join().unwrap();
                    assert_eq!(meta.offset, 100 + i as i64);
                    assert_eq!(
                        (meta.topic, meta.partition, meta.timestamp),
                        ("t", 3, 1_000)
                    );
                }
            });
        }
    }

    /// A wait that timed out leaves nothing behind: the same future then completes, and a
    /// failed batch's error reaches every waiter.
    #[test]
    fn a_timed_out_wait_can_wait_again_and_errors_reach_every_waiter() {
        let completion = Arc::new(Completion::new("t", 3, Acks::All));
        let f = future(&completion, 0);
        assert!(matches!(
            f.wait_timeout(Duration::from_millis(5)),
            Err(Error::Timeout { .. })
        ));
        assert!(completion.state.lock().threads.is_empty());
        std::thread::scope(|s| {
            let waiters: Vec<_> = (1..4)
                .map(|i| {
                    let f = future(&completion, i);
                    s.spawn(move || f.wait())
                })
                .collect();
            std::thread::sleep(Duration::from_millis(2));
            completion.set(Err(Error::Closed { what: "producer" }));
            for w in waiters {
                assert!(matches!(w.join().unwrap(), Err(Error::Closed { .. })));
            }
        });
        assert!(matches!(
            f.wait_timeout(Duration::from_millis(5)),
            Err(Error::Closed { .. })
        ));
        // A reused completion starts pending, with the new place and no thread left over.
        drop(f);
        completion.reuse("u", 4);
        assert!(!completion.is_set());
        assert!(completion.state.lock().threads.is_empty());
        completion.set(Ok(BatchOutcome {
            base_offset: 7,
            log_append_time: Some(55),
        }));
        let meta = SendFuture::new(Arc::clone(&completion), 1, 4, 0)
            .wait()
            .unwrap();
        assert_eq!(
            (meta.topic, meta.partition, meta.offset, meta.timestamp),
            ("u", 4, 8, 55)
        );
    }

    /// Counts the sender's hurries.
    #[derive(Default)]
    struct CountingSender(std::sync::atomic::AtomicUsize);

    impl Hurry for CountingSender {
        fn hurry(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn hurries(sender: &CountingSender) -> usize {
        sender.0.load(Ordering::SeqCst)
    }

    /// The first wait on a pending batch, blocking or async, marks it awaited and tells the
    /// sender once; later waits of the same use do not tell it again, a wait on a set outcome
    /// does not tell it at all, and a reused completion starts not awaited.
    #[test]
    fn the_first_wait_on_a_pending_batch_tells_the_sender_once() {
        let sender = Arc::new(CountingSender::default());
        let weak = Arc::downgrade(&sender) as Weak<dyn Hurry>;
        let completion = Arc::new(Completion::told("t", 3, Acks::Leader, Some(weak)));
        assert!(!completion.awaited());
        std::thread::scope(|s| {
            let f = future(&completion, 0);
            let waiter = s.spawn(move || f.wait());
            while hurries(&sender) == 0 {
                std::thread::yield_now();
            }
            assert!(completion.awaited());
            // A second waiter of the same use: already awaited, the sender is not told again.
            assert!(matches!(
                future(&completion, 1).wait_timeout(Duration::from_millis(1)),
                Err(Error::Timeout { .. })
            ));
            assert_eq!(hurries(&sender), 1);
            completion.set(Ok(BatchOutcome {
                base_offset: 10,
                log_append_time: None,
            }));
            assert_eq!(waiter.join().unwrap().unwrap().offset, 10);
        });
        // Set: a wait returns at once and tells nobody.
        assert_eq!(future(&completion, 2).wait().unwrap().offset, 12);
        assert_eq!(hurries(&sender), 1);

        // A new use is not awaited until an async poll registers its waker.
        completion.reuse("t", 3);
        assert!(!completion.awaited());
        let mut f = future(&completion, 0);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert!(completion.awaited());
        assert_eq!(hurries(&sender), 2);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(hurries(&sender), 2);
        drop(f);

        // A sender that is gone is not told (the producer closed), and nothing fails.
        drop(sender);
        completion.reuse("t", 3);
        assert!(matches!(
            future(&completion, 0).wait_timeout(Duration::from_millis(1)),
            Err(Error::Timeout { .. })
        ));
        assert!(completion.awaited());
    }
}
