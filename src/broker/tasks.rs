//! The broker's background threads: the tasks thread (retention, time-based flushes,
//! recovery-point checkpoints) and the frame both it and the log cleaner run in.
//!
//! Each is one named thread holding only a weak reference, so it never keeps the broker alive;
//! `stop` signals it through a channel and joins it (unless called from the thread itself,
//! when the last handle happened to drop there).

use std::sync::Weak;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

use super::broker::BrokerInner;
use crate::error::{Error, Result};

/// How often the tasks thread wakes to check time-based flushes (`flush.ms`).
const TICK: Duration = Duration::from_millis(100);

/// A background thread that runs `body` every `period` until stopped or the broker closes.
pub(crate) struct Background {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

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
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn stop(mut self) {
        let _ = self.stop.try_send(());
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// Starts the tasks thread.
pub(crate) fn start(
    broker: Weak<BrokerInner>,
    retention_every: Duration,
    checkpoint_every: Duration,
) -> Result<Background> {
    let mut next_retention = Instant::now() + retention_every;
    let mut next_checkpoint = Instant::now() + checkpoint_every;
    Background::spawn("embroker-tasks", broker, TICK, move |broker| {
        let now = Instant::now();
        let now_ms = broker.clock().now_ms();
        for log in broker.all_logs() {
            // A fatal error marks the log failed (appends then report it); any other is
            // retried by the next tick.
            warn_unless_failed("flush", log.flush_if_due(now_ms));
            warn_unless_failed("sync", log.sync_sealed());
        }
        if now >= next_retention {
            warn_unless_failed("retention", broker.enforce_retention());
            next_retention = now + retention_every;
        }
        if now >= next_checkpoint {
            for log in broker.all_logs() {
                warn_unless_failed("checkpoint", log.checkpoint_if_changed());
            }
            next_checkpoint = now + checkpoint_every;
        }
    })
}

/// Logs a background task's error, except those that only repeat an earlier one (a failed or
/// closed log).
fn warn_unless_failed<T>(task: &str, result: Result<T>) {
    match result {
        Ok(_) | Err(Error::LogFailed { .. }) | Err(Error::Closed { .. }) => {}
        Err(e) => log::warn!("background {task} failed, will retry: {e}"),
    }
}
