//! Dropping the last handle closes the broker before the drop returns, even when a background
//! thread happens to be working on the broker at that moment (here: the tasks thread fsyncing
//! rolled segments). The directory lock is released and a temporary directory is gone by then.

use std::time::{Duration, Instant};

use embroker::{Broker, Record, TopicConfig};

/// The tasks thread's period (`broker::tasks::TICK`): its first look comes this long after
/// the broker opens.
const TASKS_TICK: Duration = Duration::from_millis(100);

/// Opens a broker with `open`, rolls many small segments (which the tasks thread fsyncs at its
/// next look), and drops the broker just after that look began. Returns the broker's path.
fn drop_while_tasks_thread_syncs(open: impl Fn() -> Broker) -> std::path::PathBuf {
    let opened = Instant::now();
    let broker = open();
    let path = broker.path().to_path_buf();
    if broker.topic("t").is_err() {
        broker
            .create_topic("t", TopicConfig::default().segment_bytes(64 * 1024))
            .unwrap();
    }
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let value = vec![b'v'; 1024];
    let batch: Vec<Record> = (0..60).map(|_| Record::new(value.clone())).collect();
    for _ in 0..200 {
        p.append(&batch).unwrap();
    }
    drop(p);
    let look = opened + TASKS_TICK + Duration::from_millis(2);
    std::thread::sleep(look.saturating_duration_since(Instant::now()));
    drop(broker);
    path
}

#[test]
fn a_temporary_directory_is_gone_when_the_last_handle_drops() {
    for round in 0..3 {
        let path = drop_while_tasks_thread_syncs(|| Broker::temporary().unwrap());
        assert!(
            !path.exists(),
            "round {round}: {} still exists after the last handle dropped",
            path.display()
        );
    }
}

#[test]
fn a_directory_reopens_at_once_after_the_last_handle_drops() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        drop_while_tasks_thread_syncs(|| Broker::open(dir.path()).unwrap());
        if let Err(e) = Broker::open(dir.path()) {
            panic!("round {round}: reopening right after the last handle dropped: {e}");
        }
    }
}
