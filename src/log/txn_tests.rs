//! Tests of the partition log's producer state: idempotence, transaction markers, the LSO,
//! the transaction index, snapshots, and what survives a reopen or a crash.

use std::path::Path;
use std::sync::Arc;

use super::partition_log::{PartitionLog, ProducerStateInfo};
use super::segment;
use super::txn_index::AbortedTxn;
use crate::codec::{BatchBuilder, ControlRecordType, EndTransactionMarker, ProducerFields};
use crate::config::TopicConfig;
use crate::error::Error;
use crate::notify::Notifier;

fn open(dir: &Path, config: TopicConfig) -> PartitionLog {
    PartitionLog::open(
        dir,
        Arc::from("t"),
        0,
        Arc::new(config),
        crate::clock::system(),
        Arc::new(Notifier::default()),
    )
    .unwrap()
}

fn batch(pid: i64, epoch: i16, seq: i32, n: i64, txn: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.set_producer(ProducerFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
    });
    b.set_transactional(txn);
    for i in 0..n {
        b.push(1_000 + i, Some(b"k"), Some(&[b'v'; 100]), &[])
            .unwrap();
    }
    b.finish()
}

fn marker(pid: i64, epoch: i16, commit: bool) -> Vec<u8> {
    let kind = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    EndTransactionMarker {
        kind,
        coordinator_epoch: 0,
    }
    .encode_batch(
        ProducerFields {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: -1,
        },
        1_000,
    )
    .unwrap()
}

fn state(log: &PartitionLog, pid: i64) -> ProducerStateInfo {
    *log.producer_states()
        .iter()
        .find(|s| s.producer_id == pid)
        .unwrap()
}

fn snapshots(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().to_string();
            n.ends_with(".snapshot").then_some(n)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_batch_sent_twice_is_written_once_and_acknowledged_with_its_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), TopicConfig::default());
    log.append_records(&[crate::types::Record::new("plain")])
        .unwrap();
    let first = log.append_batch(&mut batch(7, 0, 0, 3, false)).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (1, 3));
    assert!(!first.duplicate);
    let again = log.append_batch(&mut batch(7, 0, 0, 3, false)).unwrap();
    assert_eq!((again.base_offset, again.last_offset), (1, 3));
    assert!(again.duplicate);
    assert_eq!(log.log_end_offset(), 4);
    // Any of the last five batches counts; older ones do not.
    for i in 1..=5 {
        log.append_batch(&mut batch(7, 0, i * 3, 3, false)).unwrap();
    }
    let dup = log.append_batch(&mut batch(7, 0, 6, 3, false)).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 7);
    // The first batch (sequences 0-2) fell out of the five kept.
    let gone = log.append_batch(&mut batch(7, 0, 0, 3, false));
    assert!(matches!(
        gone,
        Err(Error::OutOfOrderSequence {
            expected: 18,
            received: 0,
            ..
        })
    ));
}

#[test]
fn gaps_and_old_epochs_are_refused_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), TopicConfig::default());
    log.append_batch(&mut batch(7, 2, 0, 2, false)).unwrap();
    let gap = log.append_batch(&mut batch(7, 2, 3, 1, false));
    assert!(
        matches!(
            &gap,
            Err(Error::OutOfOrderSequence {
                producer_id: 7,
                expected: 2,
                received: 3,
                ..
            })
        ),
        "{gap:?}"
    );
    let old = log.append_batch(&mut batch(7, 1, 2, 1, false));
    assert!(
        matches!(
            &old,
            Err(Error::InvalidProducerEpoch {
                producer_id: 7,
                expected: 2,
                received: 1,
                ..
            })
        ),
        "{old:?}"
    );
    assert_eq!(log.log_end_offset(), 2);
    // Through the client path too, and a client batch with a producer id needs a sequence.
    assert!(matches!(
        log.append_client_batches(&batch(7, 2, 5, 1, false)),
        Err(Error::OutOfOrderSequence { .. })
    ));
    assert!(matches!(
        log.append_client_batches(&batch(8, 0, -1, 1, false)),
        Err(Error::InvalidRecord { .. })
    ));
    // A call with a good batch then a bad one writes nothing.
    let mut two = batch(7, 2, 2, 1, false);
    two.extend(batch(7, 2, 9, 1, false));
    assert!(log.append_client_batches(&two).is_err());
    assert_eq!(log.log_end_offset(), 2);
    // A new epoch starts at 0.
    assert!(matches!(
        log.append_batch(&mut batch(7, 3, 2, 1, false)),
        Err(Error::OutOfOrderSequence { expected: 0, .. })
    ));
    log.append_batch(&mut batch(7, 3, 0, 1, false)).unwrap();
    assert_eq!(state(&log, 7).epoch, 3);
}

#[test]
fn a_client_call_with_a_duplicate_batch_is_that_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), TopicConfig::default());
    let mut two = batch(7, 0, 0, 2, false);
    two.extend(batch(7, 0, 2, 2, false));
    let info = log.append_client_batches(&two).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 3));
    let again = log.append_client_batches(&two).unwrap();
    assert!(again.duplicate);
    assert_eq!(log.log_end_offset(), 4);
    // Clients may not write markers.
    assert!(log.append_client_batches(&marker(7, 0, true)).is_err());
}

#[test]
fn markers_move_the_lso_and_aborts_land_in_the_transaction_index() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), TopicConfig::default());
    log.append_records(&[crate::types::Record::new("a")])
        .unwrap(); // 0
    log.append_batch(&mut batch(1, 0, 0, 2, true)).unwrap(); // 1-2
    assert_eq!(log.last_stable_offset(), 1);
    log.append_batch(&mut batch(2, 0, 0, 1, true)).unwrap(); // 3
    log.append_batch(&mut batch(3, 0, 0, 1, false)).unwrap(); // 4
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(log.ongoing_transactions(), vec![(1, 1), (2, 3)]);
    // A plain batch of a producer inside a transaction breaks the transaction rules.
    assert!(matches!(
        log.append_batch(&mut batch(1, 0, 2, 1, false)),
        Err(Error::InvalidRecord { .. })
    ));
    let abort = log.append_batch(&mut marker(1, 0, false)).unwrap(); // 5
    assert_eq!(abort.base_offset, 5);
    assert_eq!(
        log.last_stable_offset(),
        3,
        "producer 2's transaction is still open"
    );
    assert_eq!(state(&log, 1).current_txn_start_offset, None);
    log.append_batch(&mut marker(2, 0, true)).unwrap(); // 6
    assert_eq!(log.last_stable_offset(), 7);
    assert!(log.ongoing_transactions().is_empty());

    let (records, aborted) = log.read_committed(0, 1 << 20).unwrap();
    assert_eq!(records.next_offset(), 7);
    assert_eq!(
        aborted,
        vec![AbortedTxn {
            producer_id: 1,
            first_offset: 1,
            last_offset: 5,
            last_stable_offset: 3,
        }]
    );
    let (_, none) = log.read_committed(6, 1 << 20).unwrap();
    assert!(none.is_empty());
    // A marker with an older epoch is refused.
    log.append_batch(&mut batch(4, 3, 0, 1, true)).unwrap();
    assert!(matches!(
        log.append_batch(&mut marker(4, 2, false)),
        Err(Error::InvalidProducerEpoch { .. })
    ));
}

#[test]
fn read_committed_stops_at_the_lso() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), TopicConfig::default());
    log.append_records(&[crate::types::Record::new("a")])
        .unwrap(); // 0
    log.append_batch(&mut batch(1, 0, 0, 2, true)).unwrap(); // 1-2
    log.append_records(&[crate::types::Record::new("b")])
        .unwrap(); // 3
    let (records, _) = log.read_committed(0, 1 << 20).unwrap();
    assert_eq!(records.iter().count(), 1);
    assert_eq!(records.next_offset(), 1);
    let (records, _) = log.read_committed(2, 1 << 20).unwrap();
    assert!(records.is_empty());
    assert_eq!(records.next_offset(), 2);
    log.append_batch(&mut marker(1, 0, true)).unwrap();
    assert_eq!(log.last_stable_offset(), 5);
    let (records, aborted) = log.read_committed(1, 1 << 20).unwrap();
    assert_eq!(records.next_offset(), 5);
    assert!(aborted.is_empty());
}

/// Appends a mix across several segments: producer 1 aborts, 2 commits, 3 stays open.
fn mixed(log: &PartitionLog) {
    for round in 0..4 {
        let seq = round * 2;
        log.append_batch(&mut batch(1, 0, seq, 2, true)).unwrap();
        log.append_batch(&mut batch(2, 0, seq, 2, true)).unwrap();
        log.append_batch(&mut marker(1, 0, false)).unwrap();
        log.append_batch(&mut marker(2, 0, true)).unwrap();
        log.append_batch(&mut batch(5, 1, round, 1, false)).unwrap();
    }
    log.append_batch(&mut batch(3, 0, 0, 1, true)).unwrap();
}

fn everything(log: &PartitionLog) -> (Vec<ProducerStateInfo>, Vec<AbortedTxn>, i64, i64) {
    let (_, aborted) = log.read_committed(0, usize::MAX).unwrap();
    let mut all = aborted;
    // `read_committed` reads at least one batch; gather every segment's entries directly.
    all.clear();
    for seg in log.segments.read().iter() {
        all.extend(seg.aborted());
    }
    (
        log.producer_states(),
        all,
        log.last_stable_offset(),
        log.log_end_offset(),
    )
}

#[test]
fn state_survives_a_clean_close_and_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TopicConfig::default().segment_bytes(600);
    let log = open(tmp.path(), config.clone());
    mixed(&log);
    let before = everything(&log);
    assert_eq!(before.1.len(), 4);
    assert!(log.segments.read().len() > 3, "several segments");
    assert_eq!(before.2, log.ongoing_transactions()[0].1);
    log.close(true).unwrap();
    drop(log);
    let names = snapshots(tmp.path());
    assert!(!names.is_empty());
    let txnindexes = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".txnindex")
        })
        .count();
    assert!(txnindexes >= 1);

    let log = open(tmp.path(), config.clone());
    assert_eq!(everything(&log), before, "after a clean close");
    // Crash: no close; the state is rebuilt from snapshots and the log.
    log.append_batch(&mut batch(5, 1, 4, 1, false)).unwrap();
    let before = everything(&log);
    drop(log);
    let log = open(tmp.path(), config.clone());
    assert_eq!(everything(&log), before, "after a crash");
    drop(log);
    // Without any snapshot, from the log start.
    for s in snapshots(tmp.path()) {
        std::fs::remove_file(tmp.path().join(s)).unwrap();
    }
    let log = open(tmp.path(), config);
    assert_eq!(everything(&log), before, "without snapshots");
    assert!(!snapshots(tmp.path()).is_empty(), "the replay leaves one");
}

#[test]
fn a_torn_active_segment_rolls_the_state_back_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TopicConfig::default();
    let log = open(tmp.path(), config.clone());
    log.append_batch(&mut batch(7, 0, 0, 2, false)).unwrap();
    log.checkpoint().unwrap();
    log.append_batch(&mut batch(7, 0, 2, 2, true)).unwrap();
    log.append_batch(&mut marker(7, 0, false)).unwrap();
    drop(log);
    // Cut the marker and half of the transactional batch off.
    let path = tmp.path().join(segment::file_name(0, "log"));
    let len = std::fs::metadata(&path).unwrap().len();
    let marker_len = marker(7, 0, false).len() as u64;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - marker_len - 20).unwrap();
    drop(f);
    let log = open(tmp.path(), config);
    assert_eq!(log.log_end_offset(), 2);
    let s = state(&log, 7);
    assert_eq!((s.last_sequence, s.current_txn_start_offset), (1, None));
    assert_eq!(log.last_stable_offset(), 2);
    // The producer goes on from its last acknowledged batch.
    log.append_batch(&mut batch(7, 0, 2, 1, false)).unwrap();
}

#[test]
fn a_damaged_snapshot_is_ignored_and_the_state_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TopicConfig::default().segment_bytes(600);
    let log = open(tmp.path(), config.clone());
    mixed(&log);
    let before = everything(&log);
    log.close(true).unwrap();
    drop(log);
    let names = snapshots(tmp.path());
    let newest = tmp.path().join(names.last().unwrap());
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let log = open(tmp.path(), config.clone());
    assert_eq!(everything(&log), before, "truncated snapshot");
    drop(log);
    for name in snapshots(tmp.path()) {
        std::fs::write(tmp.path().join(name), b"garbage").unwrap();
    }
    let log = open(tmp.path(), config);
    assert_eq!(everything(&log), before, "every snapshot garbage");
}

#[test]
fn a_damaged_transaction_index_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TopicConfig::default().segment_bytes(600);
    let log = open(tmp.path(), config.clone());
    mixed(&log);
    let before = everything(&log);
    log.close(true).unwrap();
    drop(log);
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "txnindex") {
            std::fs::write(&p, b"short").unwrap();
        }
    }
    let log = open(tmp.path(), config);
    assert_eq!(everything(&log), before);
}

#[test]
fn snapshots_are_taken_at_rolls_once_durable_and_retention_keeps_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TopicConfig::default().segment_bytes(400).retention_bytes(1);
    let log = open(tmp.path(), config);
    for seq in 0..10 {
        log.append_batch(&mut batch(9, 0, seq, 1, false)).unwrap();
    }
    assert!(snapshots(tmp.path()).is_empty(), "nothing durable yet");
    log.sync_sealed().unwrap();
    let taken = snapshots(tmp.path());
    assert!(taken.len() > 1, "{taken:?}");
    let deleted = log.enforce_retention(i64::MAX, true).unwrap();
    assert!(deleted > 0);
    let left = snapshots(tmp.path());
    let start = log.log_start_offset();
    let newest = taken.last().unwrap();
    assert!(left.contains(newest));
    for name in &left {
        let offset: i64 = name.trim_end_matches(".snapshot").parse().unwrap();
        assert!(offset >= start || name == newest, "{name} below {start}");
    }
}

#[test]
fn idle_producers_expire_unless_a_transaction_is_open() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), TopicConfig::default());
    log.append_batch(&mut batch(1, 0, 0, 1, false)).unwrap(); // timestamp 1000
    log.append_batch(&mut batch(2, 0, 0, 1, true)).unwrap();
    assert_eq!(log.expire_producers(1_500, 1_000), 0);
    assert_eq!(log.expire_producers(10_000, 1_000), 1);
    assert_eq!(log.producer_states().len(), 1);
    assert_eq!(log.producer_states()[0].producer_id, 2);
    // An expired producer is unknown again: any sequence is accepted (KIP-360).
    log.append_batch(&mut batch(1, 0, 40, 1, false)).unwrap();
}

fn keyed(pid: i64, epoch: i16, seq: i32, txn: bool, kvs: &[(&str, &str)]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.set_producer(ProducerFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
    });
    b.set_transactional(txn);
    for (k, v) in kvs {
        b.push(1_000, Some(k.as_bytes()), Some(v.as_bytes()), &[])
            .unwrap();
    }
    b.finish()
}

/// The latest committed value of each key, as a read_committed reader of the whole log sees it.
fn committed_latest(log: &PartitionLog) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut from = log.log_start_offset();
    while from < log.last_stable_offset() {
        let (records, aborted) = log.read_committed(from, 1 << 20).unwrap();
        let visible = crate::consumer::drop_aborted_for_tests(records.clone(), aborted);
        for r in visible.iter() {
            let k = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            out.insert(k, v);
        }
        if records.next_offset() <= from {
            break;
        }
        from = records.next_offset();
    }
    out
}

/// Compaction with transactions (Kafka's cleaner): aborted records are dropped and supersede
/// nothing, a producer's last batch survives, markers stay, the aborted transactions stay in
/// the cleaned segment's `.txnindex` (through the swap and a reopen), and nothing at or past
/// the last stable offset is cleaned.
#[test]
fn the_cleaner_drops_aborted_records_and_keeps_each_producers_last_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TopicConfig::default()
        .segment_bytes(400)
        .cleanup_policy(crate::CleanupPolicy::Compact);
    let log = open(tmp.path(), config.clone());
    let mut seq = 0;
    for round in 0..6 {
        let v = format!("committed-{round}");
        log.append_batch(&mut keyed(1, 0, seq, true, &[("a", &v), ("b", &v)]))
            .unwrap();
        log.append_batch(&mut marker(1, 0, true)).unwrap();
        // An aborted overwrite of both keys: it must neither show nor win.
        log.append_batch(&mut keyed(
            1,
            0,
            seq + 2,
            true,
            &[("a", "aborted"), ("b", "aborted")],
        ))
        .unwrap();
        log.append_batch(&mut marker(1, 0, false)).unwrap();
        seq += 4;
    }
    // Producer 2 writes key c once, then only plain records overwrite it.
    log.append_batch(&mut keyed(2, 0, 0, false, &[("c", "from-2")]))
        .unwrap();
    for i in 0..6 {
        log.append_records(&[crate::types::Record::new(format!("plain-{i}")).key("c")])
            .unwrap();
    }
    // An open transaction at the end: nothing from it on is cleaned.
    log.append_batch(&mut keyed(3, 0, 0, true, &[("a", "open")]))
        .unwrap();
    for i in 0..6 {
        log.append_records(&[crate::types::Record::new(format!("late-{i}")).key("d")])
            .unwrap();
    }
    log.checkpoint().unwrap();
    let before = committed_latest(&log);
    assert_eq!(before["a"], "committed-5");
    let lso = log.last_stable_offset();
    let aborted_before: Vec<AbortedTxn> = log
        .segments
        .read()
        .iter()
        .flat_map(|s| s.aborted())
        .collect();
    assert_eq!(aborted_before.len(), 6);

    let mut throttle = super::Throttle::new(f64::INFINITY);
    let stats = log
        .clean(1 << 20, &mut throttle, i64::MAX / 2, &|| false)
        .unwrap()
        .expect("a pass is due");
    assert!(stats.records_removed >= 12, "{stats:?}");
    assert_eq!(committed_latest(&log), before);
    let aborted_after: Vec<AbortedTxn> = log
        .segments
        .read()
        .iter()
        .flat_map(|s| s.aborted())
        .collect();
    assert_eq!(aborted_after, aborted_before);
    // Aborted records are gone below the LSO, and producer 2's only batch is left.
    let mut from = log.log_start_offset();
    let mut aborted_values = 0;
    let mut from_2 = 0;
    while from < lso {
        let records = log.read(from, 1 << 20).unwrap();
        for batch in records.batches() {
            if batch.header.base_offset >= lso {
                break;
            }
            if batch.header.producer_id == 2 {
                from_2 += 1;
            }
            for r in batch.data_records() {
                if r.value == Some(b"aborted".as_slice()) {
                    aborted_values += 1;
                }
            }
        }
        from = records.next_offset();
    }
    // Only producer 1's last batch (an aborted one) is left, kept whole for its state; no
    // read_committed reader sees it.
    assert_eq!(aborted_values, 2);
    assert_eq!(from_2, 1, "producer 2's last batch survives");
    // The open transaction and what follows it are untouched.
    let mut from = lso;
    let mut untouched = 0;
    while from < log.log_end_offset() {
        let records = log.read(from, 1 << 20).unwrap();
        untouched += records.iter().count();
        from = records.next_offset();
    }
    assert_eq!(untouched, 7);
    log.close(true).unwrap();
    drop(log);
    let log = open(tmp.path(), config);
    assert_eq!(committed_latest(&log), before, "after a reopen");
    let reopened: Vec<AbortedTxn> = log
        .segments
        .read()
        .iter()
        .flat_map(|s| s.aborted())
        .collect();
    assert_eq!(reopened, aborted_before);
}

#[test]
fn a_duplicate_on_a_log_append_time_topic_reports_the_original_append_time() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(
        tmp.path(),
        TopicConfig::default().timestamp_type(crate::types::TimestampType::LogAppendTime),
    );
    let first = log
        .append_client_batches(&batch(7, 0, 0, 2, false))
        .unwrap();
    let at = first.log_append_time.expect("stamped");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let again = log
        .append_client_batches(&batch(7, 0, 0, 2, false))
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.log_append_time, Some(at));
    assert_eq!((again.base_offset, again.last_offset), (0, 1));
}

/// Damage in flushed data fails the reads that reach it, not the open: the producer-state
/// replay skips to the next segment.
#[test]
fn damage_below_the_recovery_point_does_not_fail_the_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TopicConfig::default().segment_bytes(600);
    let log = open(tmp.path(), config.clone());
    for seq in 0..12 {
        log.append_batch(&mut batch(9, 0, seq, 1, false)).unwrap();
    }
    log.close(true).unwrap();
    drop(log);
    for s in snapshots(tmp.path()) {
        std::fs::remove_file(tmp.path().join(s)).unwrap();
    }
    let first = tmp.path().join(segment::file_name(0, "log"));
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let log = open(tmp.path(), config);
    let mut from = 0;
    let damaged = loop {
        match log.read(from, 1) {
            Ok(r) if r.next_offset() > from => from = r.next_offset(),
            other => break other,
        }
    };
    assert!(matches!(damaged, Err(Error::Corrupt { .. })), "{damaged:?}");
    assert_eq!(state(&log, 9).last_sequence, 11, "later segments replayed");
    log.append_batch(&mut batch(9, 0, 12, 1, false)).unwrap();
}

mod model {
    //! A proptest of the whole chain (producer state, markers, LSO, transaction index, snapshots,
    //! reopen and crash, the consumer's filter) against a model: which offsets a
    //! `read_committed` reader sees.

    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Plain,
        Data { pid: i64, n: i64, txn: bool },
        End { pid: i64, commit: bool },
        Reopen { clean: bool },
        Sync,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => Just(Op::Plain),
            6 => (0i64..3, 1i64..4, any::<bool>()).prop_map(|(pid, n, txn)| Op::Data { pid, n, txn }),
            3 => (0i64..3, any::<bool>()).prop_map(|(pid, commit)| Op::End { pid, commit }),
            1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
            1 => Just(Op::Sync),
        ]
    }

    /// Offsets a read_committed reader gets, reading the whole log.
    fn visible(log: &PartitionLog) -> Vec<i64> {
        let mut out = Vec::new();
        let mut from = log.log_start_offset();
        while from < log.last_stable_offset() {
            let (records, aborted) = log.read_committed(from, 700).unwrap();
            let kept = crate::consumer::drop_aborted_for_tests(records.clone(), aborted);
            out.extend(kept.iter().map(|r| r.offset));
            if records.next_offset() <= from {
                break;
            }
            from = records.next_offset();
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn read_committed_sees_exactly_the_committed_records(ops in proptest::collection::vec(op(), 1..50)) {
            let tmp = tempfile::tempdir().unwrap();
            let config = TopicConfig::default().segment_bytes(700);
            let mut log = open(tmp.path(), config.clone());
            let mut next_seq = [0i32; 3];
            // Per producer: the open transaction's offsets.
            let mut open_txn: [Option<Vec<i64>>; 3] = [None, None, None];
            // offset -> visible once decided (None: in an open transaction).
            let mut model: BTreeMap<i64, Option<bool>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Plain => {
                        let info = log.append_records(&[crate::types::Record::new("p")]).unwrap();
                        model.insert(info.base_offset, Some(true));
                    }
                    Op::Data { pid, n, txn } => {
                        let p = pid as usize;
                        let result = log.append_batch(&mut batch(pid, 0, next_seq[p], n, txn));
                        if open_txn[p].is_some() && !txn {
                            prop_assert!(matches!(result, Err(Error::InvalidRecord { .. })), "{:?}", result);
                            continue;
                        }
                        let info = result.unwrap();
                        prop_assert!(!info.duplicate);
                        next_seq[p] += n as i32;
                        for o in info.base_offset..=info.last_offset {
                            if txn {
                                model.insert(o, None);
                                open_txn[p].get_or_insert_with(Vec::new).push(o);
                            } else {
                                model.insert(o, Some(true));
                            }
                        }
                    }
                    Op::End { pid, commit } => {
                        let p = pid as usize;
                        log.append_batch(&mut marker(pid, 0, commit)).unwrap();
                        for o in open_txn[p].take().unwrap_or_default() {
                            model.insert(o, Some(commit));
                        }
                    }
                    Op::Reopen { clean } => {
                        if clean {
                            log.close(true).unwrap();
                        }
                        drop(log);
                        log = open(tmp.path(), config.clone());
                    }
                    Op::Sync => log.sync_sealed().unwrap(),
                }
                let first_open = open_txn.iter().flatten().filter_map(|v| v.first()).min().copied();
                let end = log.log_end_offset();
                prop_assert_eq!(log.last_stable_offset(), first_open.map_or(end, |f| f.min(end)));
            }
            let lso = log.last_stable_offset();
            let want: Vec<i64> = model
                .iter()
                .filter(|(o, v)| **o < lso && **v == Some(true))
                .map(|(o, _)| *o)
                .collect();
            prop_assert_eq!(visible(&log), want.clone());
            // The same after a crash and after a clean close.
            drop(log);
            let log = open(tmp.path(), config.clone());
            prop_assert_eq!(log.last_stable_offset(), lso);
            prop_assert_eq!(visible(&log), want.clone());
            log.close(true).unwrap();
            drop(log);
            let log = open(tmp.path(), config);
            prop_assert_eq!(visible(&log), want);
            for (p, seq) in next_seq.iter().enumerate() {
                if *seq > 0 {
                    prop_assert_eq!(state(&log, p as i64).last_sequence, seq - 1);
                }
            }
        }
    }
}

/// On a topic that recompresses every batch (markers excepted), the state replayed from the
/// log alone (no snapshot) equals the live one.
#[test]
fn state_is_replayed_from_compressed_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TopicConfig::default().segment_bytes(600).compression_type(
        crate::config::TopicCompression::Codec(crate::codec::Compression::Gzip),
    );
    let log = open(tmp.path(), config.clone());
    mixed(&log);
    let file = std::fs::read(tmp.path().join(segment::file_name(0, "log"))).unwrap();
    let first = crate::codec::peek_header(&file).unwrap();
    assert_eq!(first.compression_id(), 1, "stored gzip-compressed");
    let before = everything(&log);
    log.close(true).unwrap();
    drop(log);
    for s in snapshots(tmp.path()) {
        std::fs::remove_file(tmp.path().join(s)).unwrap();
    }
    let log = open(tmp.path(), config);
    assert_eq!(everything(&log), before);
}
