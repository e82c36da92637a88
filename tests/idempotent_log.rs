//! Idempotent appends through the public API: batches from `BatchBuilder` with a producer id
//! and sequence, appended with `Partition::append_batches`, are checked as Kafka's broker
//! checks an idempotent producer's (ProducerStateManager): a retry is written once and
//! acknowledged with its original offsets, a gap is `OutOfOrderSequence`, an older epoch is
//! `InvalidProducerEpoch`, and the producer's state survives closing and reopening the broker
//! (and a drop without close).

mod common;

use std::path::Path;

use embroker::codec::{BatchBuilder, ProducerFields};
use embroker::{Broker, Error, Partition, TopicConfig};

const T0: i64 = 1_700_000_000_000;

/// `n` records of producer `pid` at `epoch`, numbered from `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.set_producer(ProducerFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
    });
    for i in 0..n {
        let value = format!("p{pid}-e{epoch}-s{}", seq as usize + i);
        b.push(T0 + i as i64, None, Some(value.as_bytes()), &[])
            .unwrap();
    }
    b.finish()
}

fn partition(broker: &Broker) -> Partition {
    broker.topic("t").unwrap().partition(0).unwrap()
}

fn values(p: &Partition) -> Vec<String> {
    common::values(&common::read_all(p, 0))
}

#[test]
fn a_batch_sent_twice_is_written_once_with_its_original_offsets() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = partition(&broker);
    let first = p.append_batches(&batch(1, 0, 0, 3)).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (0, 2));
    assert!(!first.duplicate);
    p.append_batches(&batch(2, 0, 0, 1)).unwrap();
    let retry = p.append_batches(&batch(1, 0, 0, 3)).unwrap();
    assert_eq!((retry.base_offset, retry.last_offset), (0, 2));
    assert!(retry.duplicate);
    assert_eq!(p.log_end_offset(), 4);
    assert_eq!(values(&p), ["p1-e0-s0", "p1-e0-s1", "p1-e0-s2", "p2-e0-s0"]);
}

#[test]
fn a_sequence_gap_is_out_of_order_and_writes_nothing() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = partition(&broker);
    p.append_batches(&batch(1, 0, 0, 2)).unwrap();
    let e = p.append_batches(&batch(1, 0, 3, 1)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfOrderSequence {
                producer_id: 1,
                expected: 2,
                received: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("t-0"), "{e}");
    assert_eq!(p.log_end_offset(), 2);
    p.append_batches(&batch(1, 0, 2, 1)).unwrap();
}

#[test]
fn an_old_epoch_is_refused_and_a_new_one_starts_at_zero() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = partition(&broker);
    p.append_batches(&batch(1, 5, 0, 1)).unwrap();
    let e = p.append_batches(&batch(1, 4, 1, 1)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidProducerEpoch {
                producer_id: 1,
                expected: 5,
                received: 4,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        p.append_batches(&batch(1, 6, 1, 1)),
        Err(Error::OutOfOrderSequence { expected: 0, .. })
    ));
    p.append_batches(&batch(1, 6, 0, 1)).unwrap();
    assert_eq!(p.log_end_offset(), 2);
}

/// Copies a live broker's directory: what a crash of the process leaves (the page cache keeps
/// every byte written, nothing was closed or checkpointed last).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Random producers append over small segments (so the state comes back from roll snapshots
/// and replayed segments); after a clean close and after a crash image, each producer's next
/// sequence is the only one accepted and its last batch is recognised as a duplicate.
#[test]
fn producer_state_survives_reopen_and_a_crash() {
    let seed = common::seed();
    common::with_seed(seed, || {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = common::XorShift(seed);
        let config = TopicConfig::default().segment_bytes(300);
        let mut next = [0i32; 3];
        let mut last = [(0i64, 0i64); 3];
        let append = |p: &Partition,
                      rng: &mut common::XorShift,
                      next: &mut [i32; 3],
                      last: &mut [(i64, i64); 3]| {
            let pid = rng.below(3) as usize;
            let n = 1 + rng.below(3) as usize;
            let info = p
                .append_batches(&batch(pid as i64, 0, next[pid], n))
                .unwrap();
            assert!(!info.duplicate);
            last[pid] = (info.base_offset, info.last_offset);
            next[pid] += n as i32;
            pid
        };
        let check = |p: &Partition, next: &[i32; 3], last: &[(i64, i64); 3], when: &str| {
            for pid in 0..3 {
                if next[pid] == 0 {
                    continue;
                }
                let e = p
                    .append_batches(&batch(pid as i64, 0, next[pid] + 1, 1))
                    .unwrap_err();
                assert!(matches!(e, Error::OutOfOrderSequence { .. }), "{when}: {e}");
                let (base, end) = last[pid];
                let n = (end - base + 1) as usize;
                let retry = p
                    .append_batches(&batch(pid as i64, 0, next[pid] - n as i32, n))
                    .unwrap();
                assert!(retry.duplicate, "{when}: producer {pid}");
                assert_eq!((retry.base_offset, retry.last_offset), last[pid], "{when}");
            }
        };
        {
            let broker = Broker::open(dir.path()).unwrap();
            broker.create_topic("t", config).unwrap();
            let p = partition(&broker);
            for _ in 0..30 {
                append(&p, &mut rng, &mut next, &mut last);
            }
            broker.close().unwrap();
        }
        let crash = tempfile::tempdir().unwrap();
        let end = {
            let broker = Broker::open(dir.path()).unwrap();
            let p = partition(&broker);
            check(&p, &next, &last, "after a clean close");
            for _ in 0..10 {
                append(&p, &mut rng, &mut next, &mut last);
            }
            copy_dir(dir.path(), crash.path());
            let end = p.log_end_offset();
            broker.close().unwrap();
            end
        };
        let broker = Broker::open(crash.path()).unwrap();
        let p = partition(&broker);
        assert_eq!(p.log_end_offset(), end);
        check(&p, &next, &last, "after a crash");
    });
}

#[test]
fn state_survives_a_clean_reopen_with_duplicates_detected() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = partition(&broker);
        let first = p.append_batches(&batch(9, 2, 0, 4)).unwrap();
        broker.close().unwrap();
        first
    };
    let broker = Broker::open(dir.path()).unwrap();
    let p = partition(&broker);
    let retry = p.append_batches(&batch(9, 2, 0, 4)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (first.base_offset, first.last_offset)
    );
    assert!(matches!(
        p.append_batches(&batch(9, 1, 4, 1)),
        Err(Error::InvalidProducerEpoch { .. })
    ));
    p.append_batches(&batch(9, 2, 4, 1)).unwrap();
    assert_eq!(p.log_end_offset(), 5);
}

/// `producer.id.expiration.ms`: the background task forgets a producer idle that long (by its
/// last batch's timestamp, as Kafka compares it), after which any sequence starts it afresh.
#[test]
fn idle_producers_expire_in_the_background() {
    let broker = Broker::builder()
        .producer_id_expiration(std::time::Duration::from_millis(300))
        .open_temporary()
        .unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = partition(&broker);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut b = BatchBuilder::new();
    b.set_producer(ProducerFields {
        producer_id: 4,
        producer_epoch: 0,
        base_sequence: 0,
    });
    b.push(now - 60_000, None, Some(b"old"), &[]).unwrap();
    p.append_batches(&b.finish()).unwrap();
    assert!(matches!(
        p.append_batches(&batch(4, 0, 50, 1)),
        Err(Error::OutOfOrderSequence { .. })
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match p.append_batches(&batch(4, 0, 50, 1)) {
            Ok(info) => {
                assert!(!info.duplicate);
                break;
            }
            Err(Error::OutOfOrderSequence { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("the producer never expired: {e}"),
        }
    }
    assert!(Broker::builder()
        .producer_id_expiration(std::time::Duration::ZERO)
        .open_temporary()
        .is_err());
}

#[test]
fn an_open_transaction_holds_the_last_stable_offset_and_is_described() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = partition(&broker);
    p.append_batches(&batch(1, 0, 0, 2)).unwrap();
    let mut txn = BatchBuilder::new();
    txn.set_producer(ProducerFields {
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: 0,
    });
    txn.set_transactional(true);
    txn.push(T0, None, Some(b"in a transaction"), &[]).unwrap();
    p.append_batches(&txn.finish()).unwrap();
    p.append_batches(&batch(1, 0, 2, 1)).unwrap();
    assert_eq!(p.log_end_offset(), 4);
    assert_eq!(
        p.last_stable_offset(),
        2,
        "the open transaction starts at 2"
    );
    let d = broker.describe_topic("t").unwrap();
    let part = &d.partitions[0];
    assert_eq!(part.last_stable_offset, 2);
    assert_eq!(part.open_transactions.len(), 1);
    assert_eq!(
        (
            part.open_transactions[0].producer_id,
            part.open_transactions[0].first_offset
        ),
        (7, 2)
    );
}
