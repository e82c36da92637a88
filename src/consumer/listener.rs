//! The user's hooks into a consumer: [`RebalanceListener`] and the thread-safe
//! [`WakeupHandle`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::Consumer;
use crate::error::Result;
use crate::notify::Notifier;
use crate::types::TopicPartition;

/// Called inside `poll` (and `close`, `unsubscribe`) when the group moves partitions. Kafka's
/// `ConsumerRebalanceListener`.
///
/// Order, as in Kafka: under the eager protocol (range, roundrobin, sticky) every member calls
/// `on_partitions_revoked` with everything it owns (even nothing) before the rebalance, then
/// `on_partitions_assigned` with its full new assignment. Under the cooperative protocol
/// (cooperative-sticky) a member calls `on_partitions_revoked` only with the partitions that
/// move away (and only if there are any), then `on_partitions_assigned` with the partitions it
/// gained (possibly none); the moved partitions reach their new owner in a follow-up rebalance.
/// The old owner's `on_partitions_revoked` always returns before the new owner's
/// `on_partitions_assigned` starts, and `on_partitions_revoked` runs only while the member's
/// generation is the group's, so committing inside it (through the `consumer` argument) is
/// accepted and hands over exactly (the one exception: a consumer with this one's
/// `group.instance.id` joins meanwhile and fences it, [`crate::Error::FencedInstanceId`]).
///
/// On `close`, `unsubscribe` or drop, the member runs `on_partitions_revoked` when its
/// generation is still current (even while a rebalance waits for it: the group then waits for
/// it to leave), and `on_partitions_lost` when the group has already completed a rebalance the
/// member has not picked up in a `poll`, as Kafka's `onLeavePrepare` does during a rebalance.
///
/// An error returned by a callback comes out of `poll` as [`crate::Error::Callback`]; the
/// rebalance still completes.
pub trait RebalanceListener: Send {
    /// These partitions are about to move away; commit what was processed.
    fn on_partitions_revoked(
        &mut self,
        consumer: &mut Consumer,
        partitions: &[TopicPartition],
    ) -> Result<()>;

    /// These partitions are now this consumer's (positions are resolved lazily; `seek` here to
    /// start elsewhere).
    fn on_partitions_assigned(
        &mut self,
        consumer: &mut Consumer,
        partitions: &[TopicPartition],
    ) -> Result<()>;

    /// These partitions were taken away without a clean revoke: the member was expelled after
    /// `max.poll.interval.ms`, its group was deleted, another consumer joined with its
    /// `group.instance.id` (fenced), or it is leaving after the group completed a rebalance it
    /// has not picked up. They may already have a new owner, and commits for them fail
    /// ([`crate::Error::CommitFailed`], [`crate::Error::FencedInstanceId`] or, for partitions
    /// no one else owns yet, [`crate::Error::RebalanceInProgress`]). Default: calls
    /// [`RebalanceListener::on_partitions_revoked`] (as Kafka's does), so a listener that
    /// commits there and does not override this method sees that commit fail here: override
    /// it to drop the partitions' state without committing.
    fn on_partitions_lost(
        &mut self,
        consumer: &mut Consumer,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        self.on_partitions_revoked(consumer, partitions)
    }
}

/// Interrupts a consumer's blocked `poll` from another thread: the poll returns
/// [`crate::Error::Wakeup`] (once; if no poll is blocked, the next one does). Kafka's
/// `consumer.wakeup()`.
///
/// ```
/// use std::time::Duration;
/// use embroker::{Broker, ConsumerConfig, Error, TopicConfig, TopicPartition};
/// let broker = Broker::temporary()?;
/// broker.create_topic("t", TopicConfig::default())?;
/// let mut consumer = broker.consumer(ConsumerConfig::default())?;
/// consumer.assign(&[TopicPartition::new("t", 0)])?;
/// let handle = consumer.wakeup_handle();
/// let t = std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(20));
///     handle.wakeup();
/// });
/// assert!(matches!(consumer.poll(Duration::from_secs(30)), Err(Error::Wakeup)));
/// t.join().unwrap();
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct WakeupHandle {
    pub(crate) flag: Arc<AtomicBool>,
    pub(crate) notifier: Arc<Notifier>,
}

impl WakeupHandle {
    /// Makes the consumer's current (or next) `poll` return [`crate::Error::Wakeup`].
    pub fn wakeup(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notifier.notify();
    }
}
