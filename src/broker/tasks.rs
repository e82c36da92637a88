//! The broker's background threads: the tasks thread (time-based flushes, syncs of rolled
//! segments, recovery-point checkpoints), the retention thread, and the frame they and the
//! log cleaner run in.
//!
//! Retention has its own thread so that fsyncs never delay it: a fast appender on small
//! segments can roll segments faster than a disk fsyncs them, and only retention (which just
//! unlinks files) keeps their number bounded then.
//!
//! Each is one named thread holding only a weak reference, so it never keeps the broker alive;
//! `stop` signals it through a channel and joins it (unless called from the thread itself,
//! when the last handle happened to drop there).
//!
//! A temporary broker's tasks and retention run instead on one thread shared by every
//! temporary broker of the process (`embroker-temp-tasks`, started with the first): they
//! never fsync (see `io::sync`), so one broker's work cannot hold up another's for long, and
//! a test suite opening thousands of fake brokers pays for no thread start and join per
//! broker (two of them were most of a temporary broker's start and drop). `stop` takes the
//! broker off the shared thread's list and waits for a pass over it to finish, so, as with
//! its own threads, nothing runs for a broker after `stop` returns.

use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};

use super::broker::BrokerInner;
use crate::error::{Error, Result};

/// How often the tasks thread wakes to check time-based flushes (`flush.ms`).
const TICK: Duration = Duration::from_millis(100);
/// How often the retention thread wakes to look for logs that rolled many segments.
const RETENTION_TICK: Duration = Duration::from_millis(20);
/// Kafka's `producer.id.expiration.check.interval.ms` default.
const PRODUCER_EXPIRATION_CHECK: Duration = Duration::from_secs(600);

/// A background thread that runs `body` every `period` until stopped or the broker closes,
/// or a temporary broker's place on the shared thread.
pub(crate) struct Background {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Another background thread stopped with this one.
    companion: Option<Box<Background>>,
    /// The broker's job on the shared thread (a temporary broker: no thread of its own).
    shared: Option<Arc<SharedJob>>,
}

/// A broker's periodic work, as closures over its schedule.
type Body = Box<dyn FnMut(&BrokerInner) + Send>;

/// A temporary broker's work on the shared thread.
pub(crate) struct SharedJob {
    broker: Weak<BrokerInner>,
    /// Retention (every [`RETENTION_TICK`]) and the tasks (every [`TICK`]); `None` once
    /// stopped. Locked by the shared thread across a pass, so `stop` waits for one to end.
    bodies: Mutex<Option<(Body, Body)>>,
}

/// The temporary brokers' shared thread: its jobs, and whether it runs.
struct SharedRunner {
    jobs: Vec<Arc<SharedJob>>,
    thread: Option<ThreadId>,
}

static SHARED: Mutex<SharedRunner> = Mutex::new(SharedRunner {
    jobs: Vec::new(),
    thread: None,
});
/// Signalled when a job is added (the thread waits on it while it has none).
static SHARED_JOB_ADDED: Condvar = Condvar::new();

impl Background {
    pub(crate) fn spawn(
        name: &str,
        broker: Weak<BrokerInner>,
        period: Duration,
        mut body: impl FnMut(&BrokerInner) + Send + 'static,
    ) -> Result<Background> {
        let (stop, stopped) = bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || loop {
                match stopped.recv_timeout(period) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(broker) = broker.upgrade() else {
                    return;
                };
                if broker.is_closed() {
                    return;
                }
                body(&broker);
            })
            .map_err(|e| Error::io("starting background thread for", std::env::temp_dir(), e))?;
        Ok(Background {
            stop: Some(stop),
            thread: Some(thread),
            companion: None,
            shared: None,
        })
    }

    /// Runs `retention` every [`RETENTION_TICK`] and `tasks` every [`TICK`] on the thread
    /// shared by temporary brokers, starting it if this is the first.
    fn shared(broker: Weak<BrokerInner>, retention: Body, tasks: Body) -> Result<Background> {
        let job = Arc::new(SharedJob {
            broker,
            bodies: Mutex::new(Some((retention, tasks))),
        });
        let mut runner = SHARED.lock();
        if runner.thread.is_none() {
            let thread = std::thread::Builder::new()
                .name("embroker-temp-tasks".into())
                .spawn(run_shared)
                .map_err(|e| {
                    Error::io("starting background thread for", std::env::temp_dir(), e)
                })?;
            runner.thread = Some(thread.thread().id());
        }
        runner.jobs.push(Arc::clone(&job));
        drop(runner);
        SHARED_JOB_ADDED.notify_one();
        Ok(Background {
            stop: None,
            thread: None,
            companion: None,
            shared: Some(job),
        })
    }

    pub(crate) fn stop(mut self) {
        if let Some(companion) = self.companion.take() {
            companion.stop();
        }
        if let Some(job) = self.shared.take() {
            let on_runner = {
                let mut runner = SHARED.lock();
                runner.jobs.retain(|j| !Arc::ptr_eq(j, &job));
                runner.thread == Some(std::thread::current().id())
            };
            // Waits for a pass over this broker to end (unless this is that pass: the last
            // handle dropped there), then drops the bodies.
            if !on_runner {
                drop(job.bodies.lock().take());
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.try_send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// The temporary brokers' shared thread: every [`RETENTION_TICK`], each job's retention, and
/// every fifth tick its tasks; parked without a timer while there is no job.
fn run_shared() {
    let per_tasks_tick = (TICK.as_millis() / RETENTION_TICK.as_millis()).max(1);
    let mut tick: u128 = 0;
    loop {
        {
            let mut runner = SHARED.lock();
            while runner.jobs.is_empty() {
                SHARED_JOB_ADDED.wait(&mut runner);
            }
        }
        std::thread::sleep(RETENTION_TICK);
        tick = tick.wrapping_add(1);
        let jobs = SHARED.lock().jobs.clone();
        for job in jobs {
            let mut bodies = job.bodies.lock();
            let Some((retention, tasks)) = bodies.as_mut() else {
                continue;
            };
            let Some(broker) = job.broker.upgrade() else {
                continue;
            };
            if broker.is_closed() {
                continue;
            }
            retention(&broker);
            if tick.is_multiple_of(per_tasks_tick) {
                tasks(&broker);
            }
            // Released before the job's lock: once `stop` has that lock, this thread holds
            // the broker no more (as a joined thread would not), so a temporary directory is
            // removed by the thread that dropped the last handle, before its drop returns.
            drop(broker);
            drop(bodies);
        }
    }
}

/// Starts the tasks thread and the retention thread (stopped with it), or, for a temporary
/// broker (`shared`), puts both on the thread temporary brokers share.
pub(crate) fn start(
    broker: Weak<BrokerInner>,
    retention_every: Duration,
    checkpoint_every: Duration,
    producer_expiration: Duration,
    shared: bool,
) -> Result<Background> {
    // An interval too long to add to an `Instant` (`Duration::MAX`) means never: `None`.
    let mut next_retention = Instant::now().checked_add(retention_every);
    let retention_body = move |broker: &BrokerInner| {
        let now = Instant::now();
        let due = next_retention.is_some_and(|at| now >= at);
        if due {
            next_retention = now.checked_add(retention_every);
        }
        let now_ms = broker.clock().now_ms();
        for log in broker.all_logs() {
            // Every `retention_every`, and sooner (by size only) for a log over its
            // `retention.bytes` that rolled many segments since its last pass.
            if due {
                warn_unless_failed("retention", log.enforce_retention(now_ms, false));
            } else if log.retention_backlog() {
                warn_unless_failed("retention", log.enforce_retention(now_ms, true));
            }
        }
    };
    let mut next_checkpoint = Instant::now().checked_add(checkpoint_every);
    // Kafka checks every `producer.id.expiration.check.interval.ms` (10 minutes); a shorter
    // expiration is checked as often as it is long.
    let expiry_every = producer_expiration.min(PRODUCER_EXPIRATION_CHECK);
    let expiration_ms = i64::try_from(producer_expiration.as_millis()).unwrap_or(i64::MAX);
    let mut next_expiry = Instant::now().checked_add(expiry_every);
    let tasks_body = move |broker: &BrokerInner| {
        let now = Instant::now();
        let now_ms = broker.clock().now_ms();
        let mut rolled = Vec::new();
        for log in broker.all_logs() {
            // A fatal error marks the log failed (appends then report it); any other is
            // retried by the next tick.
            warn_unless_failed("flush", log.flush_if_due(now_ms));
            if log.sync_sealed_due() {
                rolled.push(log);
            }
        }
        // Segments sealed by rolls, of every partition at once: one pass of syncs, not a
        // chain of fsyncs per partition (issue #20).
        for result in broker.checkpoint_logs(&rolled, false) {
            warn_unless_failed("sync", result);
        }
        // Kafka checks every `transaction.abort.timed.out.transaction.cleanup.interval.ms`
        // (10 s); a tick is cheaper here than a timer of its own.
        broker.txns().abort_expired(broker, now_ms);
        if next_checkpoint.is_some_and(|at| now >= at) {
            // Only the partitions that changed write anything; all in one batch.
            for result in broker.checkpoint_logs(&broker.all_logs(), false) {
                warn_unless_failed("checkpoint", result);
            }
            next_checkpoint = now.checked_add(checkpoint_every);
        }
        if next_expiry.is_some_and(|at| now >= at) {
            for log in broker.all_logs() {
                let expired = log.expire_producers(now_ms, expiration_ms);
                if expired > 0 {
                    log::debug!("{log:?}: {expired} idle producers expired");
                }
            }
            next_expiry = now.checked_add(expiry_every);
        }
    };
    if shared {
        return Background::shared(broker, Box::new(retention_body), Box::new(tasks_body));
    }
    let retention = Background::spawn(
        "embroker-retention",
        broker.clone(),
        RETENTION_TICK,
        retention_body,
    )?;
    let mut tasks = Background::spawn("embroker-tasks", broker, TICK, tasks_body);
    match &mut tasks {
        Ok(tasks) => tasks.companion = Some(Box::new(retention)),
        Err(_) => retention.stop(),
    }
    tasks
}

/// Logs a background task's error, except those that only repeat an earlier one (a failed or
/// closed log).
fn warn_unless_failed<T>(task: &str, result: Result<T>) {
    match result {
        Ok(_) | Err(Error::LogFailed { .. }) | Err(Error::Closed { .. }) => {}
        Err(e) => log::warn!("background {task} failed, will retry: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::{Broker, Record, TopicConfig};

    /// A fast appender on 4 KiB segments with `retention.bytes` of 10 segments: retention
    /// runs while it appends, however long the check interval is, and once it stops the
    /// live segments come back to what `retention.bytes` keeps.
    #[test]
    fn retention_keeps_up_with_a_fast_appender() {
        let secs = if std::env::var_os("EMBROKER_LONG").is_some() {
            6
        } else {
            3
        };
        let broker = Broker::builder()
            .retention_check_interval(Duration::from_secs(1))
            .open_temporary()
            .unwrap();
        broker
            .create_topic(
                "fast",
                TopicConfig::default()
                    .segment_bytes(4096)
                    .retention_bytes(40 * 1024),
            )
            .unwrap();
        let p = broker.topic("fast").unwrap().partition(0).unwrap();
        let value = vec![b'r'; 1000];
        let start = Instant::now();
        let mut most = 0;
        let mut appended = 0u64;
        // The log start at the end of each second.
        let mut starts = Vec::new();
        while start.elapsed() < Duration::from_secs(secs) {
            for _ in 0..100 {
                p.append(&[Record::new(value.clone())]).unwrap();
                appended += 1;
            }
            let d = broker.describe_topic("fast").unwrap();
            most = most.max(d.partitions[0].segment_count);
            let second = start.elapsed().as_secs() as usize;
            starts.resize(second + 1, d.partitions[0].log_start_offset);
            starts[second] = d.partitions[0].log_start_offset;
        }
        let d = broker.describe_topic("fast").unwrap();
        let (last, start) = (
            d.partitions[0].segment_count,
            d.partitions[0].log_start_offset,
        );
        eprintln!(
            "retention pace: {appended} appends of 1 KB in {secs} s on 4 KiB segments, \
             retention.bytes 40 KiB: at most {most} live segments, {last} at the end, log \
             start {start}; log start at the end of each second {starts:?}"
        );
        // Before retention had its own thread it did not run once in such a run (the tasks
        // thread was busy fsyncing the rolled segments): the log start stayed at 0. How fast
        // it follows depends on the machine, so that is printed, not asserted: on ext4,
        // creating files in a directory that deletes as fast slows both down (a CI machine
        // appended 16,000 records in 3 s while retention deleted a third of them), and under
        // a load of 10 on 2 cores a whole second passed once without a retention pass.
        assert!(
            start > 0,
            "retention never ran while {appended} records were appended in {secs} s"
        );
        // Once the appender stops, the next passes bring the log back to `retention.bytes`:
        // 40 KiB holds 12 full segments of three 1 KB records, plus the one that crosses the
        // limit (Kafka deletes a segment only if what stays is still at least the limit) and
        // the active one: 14.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut live = last;
        while live > 14 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            live = broker.describe_topic("fast").unwrap().partitions[0].segment_count;
        }
        assert!(
            live <= 14,
            "retention left {live} live segments 60 s after the appender stopped \
             (retention.bytes keeps 14)"
        );
    }
}
