//! A `read_committed` consumer over a log with transactions (markers written the way the
//! transaction coordinator writes them, through `PartitionLog::append_batch`): it reads up to
//! the last stable offset, drops aborted transactions, never sees markers, and its end
//! offsets, lag, `seek_to_end` and `latest` reset use the LSO.

use std::sync::Arc;
use std::time::Duration;

use crate::codec::{BatchBuilder, ControlRecordType, EndTransactionMarker, ProducerFields};
use crate::config::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::log::PartitionLog;
use crate::types::{Record, TopicPartition};
use crate::{Broker, Consumer, TopicConfig};

fn setup() -> (Broker, Arc<PartitionLog>, TopicPartition) {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let log = broker.inner.partition_log("t", 0).unwrap();
    (broker, log, TopicPartition::new("t", 0))
}

fn txn_batch(log: &PartitionLog, pid: i64, seq: i32, values: &[&str]) {
    let mut b = BatchBuilder::new();
    b.set_producer(ProducerFields {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
    });
    b.set_transactional(true);
    for v in values {
        b.push(1_000, None, Some(v.as_bytes()), &[]).unwrap();
    }
    log.append_batch(&mut b.finish()).unwrap();
}

fn end_txn(log: &PartitionLog, pid: i64, commit: bool) {
    let kind = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    let mut bytes = EndTransactionMarker {
        kind,
        coordinator_epoch: 0,
    }
    .encode_batch(
        ProducerFields {
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: -1,
        },
        1_000,
    )
    .unwrap();
    log.append_batch(&mut bytes).unwrap();
}

fn plain(log: &PartitionLog, v: &str) {
    log.append_records(&[Record::new(v.to_string())]).unwrap();
}

fn consumer(broker: &Broker, level: IsolationLevel, reset: OffsetReset) -> Consumer {
    let mut config = ConsumerConfig::default();
    config.isolation_level = level;
    config.auto_offset_reset = reset;
    broker.consumer(config).unwrap()
}

/// Everything a few polls return (a poll that reads only a marker or an aborted batch returns
/// nothing but moves the position, so an empty poll does not mean the end).
fn poll_values(c: &mut Consumer) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for _ in 0..30 {
        let records = c.poll(Duration::ZERO).unwrap();
        for r in &records {
            let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            out.push((r.offset, v));
        }
    }
    out
}

#[test]
fn aborted_records_and_markers_are_never_seen_and_reads_stop_at_the_lso() {
    let (broker, log, tp) = setup();
    plain(&log, "a"); // 0
    txn_batch(&log, 1, 0, &["x1", "x2"]); // 1-2
    plain(&log, "b"); // 3
    txn_batch(&log, 2, 0, &["y"]); // 4
    end_txn(&log, 1, false); // 5: abort producer 1
    plain(&log, "c"); // 6

    let mut rc = consumer(
        &broker,
        IsolationLevel::ReadCommitted,
        OffsetReset::Earliest,
    );
    rc.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(poll_values(&mut rc), [(0, "a".into()), (3, "b".into())]);
    // Producer 2's transaction is open at 4: the position waits there.
    assert_eq!(rc.position(&tp).unwrap(), 4);
    assert_eq!(rc.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp], 4);

    // A long poll wakes when the commit marker moves the LSO.
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            end_txn(&log, 2, true); // 7
        })
    };
    let records = rc.poll(Duration::from_secs(10)).unwrap();
    writer.join().unwrap();
    let got: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert!(!got.is_empty(), "woken by the marker");
    let mut seen: Vec<(i64, String)> = records
        .iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    seen.extend(poll_values(&mut rc));
    assert_eq!(seen, [(4, "y".into()), (6, "c".into())]);
    assert_eq!(rc.position(&tp).unwrap(), 8, "past the last marker");

    // read_uncommitted sees every data record, aborted ones too, and no marker.
    let mut ru = consumer(
        &broker,
        IsolationLevel::ReadUncommitted,
        OffsetReset::Earliest,
    );
    ru.assign(std::slice::from_ref(&tp)).unwrap();
    let all: Vec<i64> = poll_values(&mut ru).into_iter().map(|(o, _)| o).collect();
    assert_eq!(all, [0, 1, 2, 3, 4, 6]);
}

#[test]
fn end_offsets_seek_to_end_and_latest_reset_use_the_lso() {
    let (broker, log, tp) = setup();
    plain(&log, "a"); // 0
    txn_batch(&log, 1, 0, &["x"]); // 1
    plain(&log, "b"); // 2
    assert_eq!(log.last_stable_offset(), 1);

    let mut latest = consumer(&broker, IsolationLevel::ReadCommitted, OffsetReset::Latest);
    latest.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(latest.position(&tp).unwrap(), 1);

    let mut rc = consumer(
        &broker,
        IsolationLevel::ReadCommitted,
        OffsetReset::Earliest,
    );
    rc.assign(std::slice::from_ref(&tp)).unwrap();
    rc.seek_to_end(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(rc.position(&tp).unwrap(), 1);
    assert_eq!(rc.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp], 1);

    let mut ru = consumer(
        &broker,
        IsolationLevel::ReadUncommitted,
        OffsetReset::Latest,
    );
    ru.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(ru.position(&tp).unwrap(), 3);
    assert_eq!(ru.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp], 3);

    end_txn(&log, 1, true); // 3
    assert_eq!(poll_values(&mut latest), [(1, "x".into()), (2, "b".into())]);
    assert_eq!(latest.position(&tp).unwrap(), 4);
}

#[test]
fn an_abort_after_a_commit_of_the_same_producer_drops_only_its_own_records() {
    let (broker, log, tp) = setup();
    txn_batch(&log, 1, 0, &["keep1"]); // 0
    end_txn(&log, 1, true); // 1
    txn_batch(&log, 1, 1, &["drop1", "drop2"]); // 2-3
    plain(&log, "plain"); // 4
    txn_batch(&log, 1, 3, &["drop3"]); // 5
    end_txn(&log, 1, false); // 6
    txn_batch(&log, 1, 4, &["keep2"]); // 7
    end_txn(&log, 1, true); // 8
    let mut rc = consumer(
        &broker,
        IsolationLevel::ReadCommitted,
        OffsetReset::Earliest,
    );
    rc.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(
        poll_values(&mut rc),
        [
            (0, "keep1".into()),
            (4, "plain".into()),
            (7, "keep2".into())
        ]
    );
    // Read from the middle of the aborted transaction, with small reads too.
    for from in 0..9 {
        let mut config = ConsumerConfig::default();
        config.isolation_level = IsolationLevel::ReadCommitted;
        config.max_partition_fetch_bytes = 1;
        let mut c = broker.consumer(config).unwrap();
        c.assign(std::slice::from_ref(&tp)).unwrap();
        c.seek(&tp, from).unwrap();
        let got: Vec<i64> = poll_values(&mut c).into_iter().map(|(o, _)| o).collect();
        let want: Vec<i64> = [0, 4, 7].into_iter().filter(|o| *o >= from).collect();
        assert_eq!(got, want, "from {from}");
        assert_eq!(c.position(&tp).unwrap(), 9);
    }
}
