//! Idempotence and transactions through the public API: the producer's stamped batches,
//! fencing of an older producer with the same `transactional.id`, commit and abort as seen by
//! a `read_uncommitted` consumer (records present either way, one marker after them) and
//! through committed offsets, the coordinator's timeout abort of an abandoned transaction, and
//! the coordinator's recovery on reopen (a durable commit decision completes, an open
//! transaction is aborted).
//!
//! storage branch (producer state, LSO, aborted-transaction index) provides; they are to be
//! un-ignored when it is merged.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use embroker::codec::{ControlRecordType, EndTransactionMarker};
use embroker::{
    Acks, Broker, ConsumerConfig, ConsumerGroupMetadata, Error, IsolationLevel, ManualClock,
    OffsetAndMetadata, OffsetReset, ProducerConfig, ProducerRecord, TopicConfig, TopicPartition,
    TxnState,
};

fn txn_config(id: &str) -> ProducerConfig {
    ProducerConfig::default()
        .acks(Acks::All)
        .transactional_id(id)
}

/// Every batch header of a partition, with the marker kind of control batches.
fn batches(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> Vec<(embroker::codec::BatchHeader, Option<ControlRecordType>)> {
    let p = broker.topic(topic).unwrap().partition(partition).unwrap();
    let records = p.read(0, 1 << 20).unwrap();
    records
        .batches()
        .map(|b| {
            let marker = b.header.is_control().then(|| {
                let r = b.records().next().unwrap();
                EndTransactionMarker::parse(r.key.unwrap(), r.value)
                    .unwrap()
                    .kind
            });
            (b.header, marker)
        })
        .collect()
}

fn values_read_uncommitted(broker: &Broker, topic: &str) -> Vec<String> {
    let mut c = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(&[TopicPartition::new(topic, 0)]).unwrap();
    let mut out = Vec::new();
    let end = broker
        .topic(topic)
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.position(&TopicPartition::new(topic, 0)).unwrap() < end && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(100)).unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

#[test]
fn an_idempotent_producer_stamps_id_epoch_and_consecutive_sequences() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let producer = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    assert!(producer.config().idempotent());
    let mut counts = Vec::new();
    for round in 0..3 {
        for i in 0..=round {
            drop(
                producer
                    .send(ProducerRecord::new("t", format!("{round}-{i}")))
                    .unwrap(),
            );
        }
        producer.flush().unwrap();
        counts.push(round + 1);
    }
    let headers = batches(&broker, "t", 0);
    assert!(!headers.is_empty());
    let producer_id = headers[0].0.producer_id;
    assert!(producer_id >= 0);
    let mut next = 0;
    for (h, marker) in &headers {
        assert!(marker.is_none());
        assert!(!h.is_transactional());
        assert_eq!(h.producer_id, producer_id);
        assert_eq!(h.producer_epoch, 0);
        assert_eq!(h.base_sequence, next, "{headers:?}");
        next += h.record_count;
    }
    assert_eq!(next, 6);
    // A second producer gets another id; a plain acks=1 producer none.
    let other = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    other
        .send(ProducerRecord::new("t", "x"))
        .unwrap()
        .wait()
        .unwrap();
    let plain = broker.producer(ProducerConfig::default()).unwrap();
    plain
        .send(ProducerRecord::new("t", "y"))
        .unwrap()
        .wait()
        .unwrap();
    let headers = batches(&broker, "t", 0);
    let n = headers.len();
    assert!(headers[n - 2].0.producer_id >= 0);
    assert_ne!(headers[n - 2].0.producer_id, producer_id);
    assert_eq!(headers[n - 1].0.producer_id, -1);
}

#[test]
fn producer_ids_are_never_reused_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = broker
            .producer(ProducerConfig::default().acks(Acks::All))
            .unwrap();
        p.send(ProducerRecord::new("t", "a"))
            .unwrap()
            .wait()
            .unwrap();
        p.close().unwrap();
        broker.close().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        batches(&broker, "t", 0)[0].0.producer_id
    };
    let broker = Broker::open(dir.path()).unwrap();
    let p = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    p.send(ProducerRecord::new("t", "b"))
        .unwrap()
        .wait()
        .unwrap();
    let second = batches(&broker, "t", 0)[1].0.producer_id;
    assert!(second > first, "{second} after {first}");
}

#[test]
fn idempotence_config_follows_kafka() {
    let broker = Broker::temporary().unwrap();
    let e = broker
        .producer(ProducerConfig::default().enable_idempotence(true))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig { key, .. } if key == "enable.idempotence"),
        "{e}"
    );
    assert!(e.to_string().contains("acks"), "{e}");
    let e = broker
        .producer(ProducerConfig::default().transactional_id("x"))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig { key, .. } if key == "transactional.id"),
        "{e}"
    );
}

#[test]
fn transactional_calls_follow_the_client_state_machine() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.producer(txn_config("tx")).unwrap();
    // Before init: nothing transactional, no send.
    assert!(matches!(
        p.begin_transaction(),
        Err(Error::InvalidTxnState { .. })
    ));
    let e = p.send(ProducerRecord::new("t", "a")).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidTxnState { operation, .. } if *operation == "send"),
        "{e}"
    );
    p.init_transactions().unwrap();
    assert!(matches!(
        p.init_transactions(),
        Err(Error::InvalidTxnState { .. })
    ));
    // Ready: no send, no commit.
    assert!(matches!(
        p.send(ProducerRecord::new("t", "a")),
        Err(Error::InvalidTxnState { .. })
    ));
    assert!(matches!(
        p.commit_transaction(),
        Err(Error::InvalidTxnState { .. })
    ));
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new("t", "in"))
        .unwrap()
        .wait()
        .unwrap();
    // A second begin changes nothing: the transaction still ends at the coordinator.
    assert!(matches!(
        p.begin_transaction(),
        Err(Error::InvalidTxnState { .. })
    ));
    p.commit_transaction().unwrap();
    assert_eq!(
        broker.describe_transaction("tx").unwrap().unwrap().state,
        TxnState::CompleteCommit
    );
    p.begin_transaction().unwrap();
    // An empty transaction commits without the coordinator.
    p.commit_transaction().unwrap();
    p.begin_transaction().unwrap();
    p.abort_transaction().unwrap();
    // A plain producer has no transactions.
    let plain = broker.producer(ProducerConfig::default()).unwrap();
    assert!(matches!(
        plain.init_transactions(),
        Err(Error::InvalidTxnState { .. })
    ));
    let d = broker.describe_transaction("tx").unwrap().unwrap();
    assert_eq!(d.state, TxnState::CompleteCommit);
    // Transaction version 2: the one transaction that reached the coordinator bumped the
    // epoch; the empty ones did not.
    assert_eq!(d.producer_epoch, 1);
}

#[test]
fn commit_and_abort_write_one_marker_after_the_records() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.producer(txn_config("tx")).unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    drop(p.send(ProducerRecord::new("t", "c1")).unwrap());
    drop(p.send(ProducerRecord::new("t", "c2")).unwrap());
    p.commit_transaction().unwrap();
    p.begin_transaction().unwrap();
    // Written before the abort (an abort drops only what is not written yet).
    p.send(ProducerRecord::new("t", "a1"))
        .unwrap()
        .wait()
        .unwrap();
    p.abort_transaction().unwrap();

    let headers = batches(&broker, "t", 0);
    let markers: Vec<_> = headers.iter().filter_map(|(_, m)| *m).collect();
    assert_eq!(
        markers,
        [ControlRecordType::Commit, ControlRecordType::Abort]
    );
    // Transaction version 2: each marker carries the bumped epoch, and the next
    // transaction's data continues at it, from sequence 0.
    let epochs: Vec<(i16, i32)> = headers
        .iter()
        .map(|(h, _)| (h.producer_epoch, h.base_sequence))
        .collect();
    assert_eq!(epochs, [(0, 0), (1, -1), (1, 0), (2, -1)]);
    for (h, _) in &headers {
        assert!(h.is_transactional());
    }
    // read_uncommitted: every data record, never a marker.
    assert_eq!(values_read_uncommitted(&broker, "t"), ["c1", "c2", "a1"]);
    let d = broker.describe_transaction("tx").unwrap().unwrap();
    assert_eq!(d.state, TxnState::CompleteAbort);
    assert!(d.partitions.is_empty());
    let listed = broker.list_transactions().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].transactional_id, "tx");
}

#[test]
fn abort_drops_records_not_written_yet() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    // Batches linger for a minute: nothing is written before the abort.
    let p = broker.producer(txn_config("tx").linger_ms(60_000)).unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    let futures: Vec<_> = (0..3)
        .map(|i| p.send(ProducerRecord::new("t", format!("r{i}"))).unwrap())
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    p.send_with_callback(ProducerRecord::new("t", "cb"), move |r| {
        tx.send(r.is_err()).unwrap();
    })
    .unwrap();
    p.abort_transaction().unwrap();
    for f in futures {
        let e = f.wait().unwrap_err();
        assert!(matches!(e, Error::TransactionAborted { .. }), "{e}");
    }
    assert!(rx.recv().unwrap(), "the callback got the error");
    let partition = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(
        partition.log_end_offset(),
        0,
        "nothing written, no marker needed"
    );
    // The producer goes on.
    p.begin_transaction().unwrap();
    drop(p.send(ProducerRecord::new("t", "kept")).unwrap());
    p.commit_transaction().unwrap();
    assert_eq!(values_read_uncommitted(&broker, "t"), ["kept"]);
}

#[test]
fn a_second_producer_with_the_same_id_fences_the_first() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let old = broker.producer(txn_config("shared")).unwrap();
    old.init_transactions().unwrap();
    old.begin_transaction().unwrap();
    drop(
        old.send(ProducerRecord::new("t", "old").partition(0))
            .unwrap(),
    );
    old.flush().unwrap();

    let new = broker.producer(txn_config("shared")).unwrap();
    new.init_transactions().unwrap();
    // The old producer's transaction was aborted, with a bumped epoch.
    let headers = batches(&broker, "t", 0);
    let (last, marker) = headers.last().unwrap();
    assert_eq!(*marker, Some(ControlRecordType::Abort));
    assert_eq!(last.producer_epoch, 1);
    let d = broker.describe_transaction("shared").unwrap().unwrap();
    assert_eq!(d.producer_epoch, 2);
    assert_eq!(d.state, TxnState::Empty);

    // The old one is fenced at its next transactional step: a send to a new partition...
    let sent = old
        .send(ProducerRecord::new("t", "late").partition(1))
        .unwrap();
    let e = sent.wait().unwrap_err();
    assert!(matches!(e, Error::ProducerFenced { .. }), "{e}");
    // ... and then for good.
    let e = old.commit_transaction().unwrap_err();
    assert!(
        matches!(
            e,
            Error::ProducerFenced {
                current_epoch: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        old.send(ProducerRecord::new("t", "x")),
        Err(Error::ProducerFenced { .. })
    ));
    assert!(matches!(
        old.abort_transaction(),
        Err(Error::ProducerFenced { .. })
    ));
    assert!(
        batches(&broker, "t", 1).is_empty(),
        "nothing of the fenced producer written"
    );

    // The new producer works.
    new.begin_transaction().unwrap();
    drop(
        new.send(ProducerRecord::new("t", "new").partition(1))
            .unwrap(),
    );
    new.commit_transaction().unwrap();
    let headers = batches(&broker, "t", 1);
    assert_eq!(headers.last().unwrap().1, Some(ControlRecordType::Commit));
    assert_eq!(headers[0].0.producer_epoch, 2);
}

#[test]
fn a_send_refused_before_queueing_leaves_the_transaction_committable() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("t", TopicConfig::default().max_message_bytes(200))
        .unwrap();
    let p = broker.producer(txn_config("tx")).unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new("t", "ok"))
        .unwrap()
        .wait()
        .unwrap();
    // Over the topic's limit, refused at send: nothing of it is in the transaction.
    assert!(p.send(ProducerRecord::new("t", vec![b'x'; 500])).is_err());
    p.commit_transaction().unwrap();
    assert_eq!(values_read_uncommitted(&broker, "t"), ["ok"]);
}

#[test]
fn a_failed_append_makes_the_transaction_abort_only() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(
            "compacted",
            TopicConfig::default().cleanup_policy(embroker::CleanupPolicy::Compact),
        )
        .unwrap();
    let p = broker.producer(txn_config("tx")).unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new("compacted", "v").key("k"))
        .unwrap()
        .wait()
        .unwrap();
    // A compacted topic refuses a keyless record when the batch is appended.
    let failed = p.send(ProducerRecord::new("compacted", "no key")).unwrap();
    assert!(failed.wait().is_err());
    let e = p.commit_transaction().unwrap_err();
    assert!(matches!(e, Error::TransactionAborted { .. }), "{e}");
    let e = p
        .send(ProducerRecord::new("compacted", "v").key("k"))
        .unwrap_err();
    assert!(matches!(e, Error::TransactionAborted { .. }), "{e}");
    p.abort_transaction().unwrap();
    assert_eq!(
        batches(&broker, "compacted", 0).last().unwrap().1,
        Some(ControlRecordType::Abort)
    );
    // The next transaction starts clean.
    p.begin_transaction().unwrap();
    drop(
        p.send(ProducerRecord::new("compacted", "w").key("k"))
            .unwrap(),
    );
    p.commit_transaction().unwrap();
}

#[test]
fn offsets_sent_to_a_transaction_are_committed_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("in", 0);
    let committed = |broker: &Broker| {
        let c = broker
            .consumer(ConsumerConfig::default().group_id("g"))
            .unwrap();
        c.committed(&tp).unwrap()
    };
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("in", TopicConfig::default()).unwrap();
        broker.create_topic("out", TopicConfig::default()).unwrap();
        let p = broker.producer(txn_config("pipe")).unwrap();
        p.init_transactions().unwrap();
        let group = ConsumerGroupMetadata::new("g");
        let offsets = |o: i64| BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(o))]);

        p.begin_transaction().unwrap();
        drop(p.send(ProducerRecord::new("out", "x")).unwrap());
        p.send_offsets_to_transaction(&offsets(5), &group).unwrap();
        assert_eq!(committed(&broker), None, "pending until the marker");
        p.abort_transaction().unwrap();
        assert_eq!(committed(&broker), None, "aborted offsets are discarded");

        p.begin_transaction().unwrap();
        drop(p.send(ProducerRecord::new("out", "y")).unwrap());
        p.send_offsets_to_transaction(&offsets(7), &group).unwrap();
        p.commit_transaction().unwrap();
        assert_eq!(committed(&broker), Some(OffsetAndMetadata::new(7)));

        // Pending at close: aborted on reopen.
        p.begin_transaction().unwrap();
        p.send_offsets_to_transaction(&offsets(9), &group).unwrap();
        drop(p);
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(committed(&broker), Some(OffsetAndMetadata::new(7)));
    assert_eq!(
        broker.describe_transaction("pipe").unwrap().unwrap().state,
        TxnState::CompleteAbort
    );
}

/// Found by `random_transactions_and_reopens_agree_with_a_model` (seed 1796607115423109283): a
/// transaction with offsets and no record ended on the client only, left the coordinator's
/// transaction open, and the next transaction's commit committed its offsets too.
#[test]
fn a_transaction_of_offsets_only_ends_at_the_coordinator() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("in", TopicConfig::default()).unwrap();
    let tp = TopicPartition::new("in", 0);
    let p = broker.producer(txn_config("tx")).unwrap();
    p.init_transactions().unwrap();
    let group = ConsumerGroupMetadata::new("g");
    p.begin_transaction().unwrap();
    p.send_offsets_to_transaction(
        &BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(3))]),
        &group,
    )
    .unwrap();
    p.abort_transaction().unwrap();
    assert_eq!(
        broker.describe_transaction("tx").unwrap().unwrap().state,
        TxnState::CompleteAbort
    );
    p.begin_transaction().unwrap();
    p.send_offsets_to_transaction(
        &BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(5))]),
        &group,
    )
    .unwrap();
    p.commit_transaction().unwrap();
    let c = broker
        .consumer(ConsumerConfig::default().group_id("g"))
        .unwrap();
    assert_eq!(c.committed(&tp).unwrap(), Some(OffsetAndMetadata::new(5)));
    assert_eq!(
        broker.describe_transaction("tx").unwrap().unwrap().state,
        TxnState::CompleteCommit
    );
}

#[test]
fn offsets_from_a_stale_group_member_are_refused() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("in", TopicConfig::default()).unwrap();
    let mut consumer = broker
        .consumer(
            ConsumerConfig::default()
                .group_id("g")
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    consumer.subscribe(&["in"]).unwrap();
    consumer.poll(Duration::from_millis(200)).unwrap();
    let meta = consumer.group_metadata().unwrap();
    assert_eq!(meta.group_id, "g");
    assert!(meta.generation_id >= 1, "{meta:?}");
    assert!(!meta.member_id.is_empty());

    let p = broker.producer(txn_config("tx")).unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    let offsets = BTreeMap::from([(TopicPartition::new("in", 0), OffsetAndMetadata::new(1))]);
    p.send_offsets_to_transaction(&offsets, &meta).unwrap();
    p.commit_transaction().unwrap();

    let stale = ConsumerGroupMetadata {
        generation_id: meta.generation_id + 5,
        ..meta.clone()
    };
    p.begin_transaction().unwrap();
    let e = p.send_offsets_to_transaction(&offsets, &stale).unwrap_err();
    assert!(
        matches!(
            e,
            Error::RebalanceInProgress { .. } | Error::CommitFailed { .. }
        ),
        "{e}"
    );
    // The transaction must abort now.
    assert!(matches!(
        p.commit_transaction(),
        Err(Error::TransactionAborted { .. })
    ));
    p.abort_transaction().unwrap();
}

#[test]
fn an_abandoned_transaction_is_aborted_after_its_timeout() {
    let clock = ManualClock::new(1_000_000);
    let broker = Broker::builder()
        .clock(clock.clone())
        .open_temporary()
        .unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker
        .producer(txn_config("lazy").transaction_timeout_ms(1_000))
        .unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new("t", "never committed"))
        .unwrap()
        .wait()
        .unwrap();
    drop(p);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        broker.describe_transaction("lazy").unwrap().unwrap().state,
        TxnState::Ongoing,
        "not before its timeout"
    );
    clock.advance_ms(1_001);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = broker.describe_transaction("lazy").unwrap().unwrap();
        if d.state == TxnState::CompleteAbort {
            assert_eq!(d.producer_epoch, 1, "the abandoned producer is fenced");
            break;
        }
        assert!(Instant::now() < deadline, "still {:?}", d.state);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        batches(&broker, "t", 0).last().unwrap().1,
        Some(ControlRecordType::Abort)
    );
}

#[test]
fn a_timeout_above_the_broker_maximum_is_refused() {
    let broker = Broker::builder()
        .transaction_max_timeout(Duration::from_secs(10))
        .open_temporary()
        .unwrap();
    let p = broker
        .producer(txn_config("tx").transaction_timeout_ms(20_000))
        .unwrap();
    let e = p.init_transactions().unwrap_err();
    assert!(
        matches!(e, Error::InvalidTransactionTimeout { max_ms: 10_000, .. }),
        "{e}"
    );
}

#[test]
fn an_open_transaction_is_aborted_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = broker.producer(txn_config("tx")).unwrap();
        p.init_transactions().unwrap();
        p.begin_transaction().unwrap();
        p.send(ProducerRecord::new("t", "open"))
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(
            broker.describe_transaction("tx").unwrap().unwrap().state,
            TxnState::Ongoing
        );
        drop(p);
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    let d = broker.describe_transaction("tx").unwrap().unwrap();
    assert_eq!(d.state, TxnState::CompleteAbort);
    assert_eq!(d.producer_epoch, 1);
    assert_eq!(
        batches(&broker, "t", 0).last().unwrap().1,
        Some(ControlRecordType::Abort)
    );
    // A new producer continues with the next epoch.
    let p = broker.producer(txn_config("tx")).unwrap();
    p.init_transactions().unwrap();
    assert_eq!(
        broker
            .describe_transaction("tx")
            .unwrap()
            .unwrap()
            .producer_epoch,
        2
    );
}

/// A crash between the durable commit decision and the markers, in files of an embroker before
/// transaction version 2: the `PrepareCommit` record (version 0, at the data's own epoch) is
/// written here by hand, then the broker reopens and completes the commit at that epoch.
#[test]
fn a_durable_commit_decision_completes_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = broker.producer(txn_config("tx")).unwrap();
        p.init_transactions().unwrap();
        p.begin_transaction().unwrap();
        p.send(ProducerRecord::new("t", "decided"))
            .unwrap()
            .wait()
            .unwrap();
        let d = broker.describe_transaction("tx").unwrap().unwrap();
        let value = embroker::__fuzz::TxnLogValue {
            version: 0,
            producer_id: d.producer_id,
            // As embroker wrote it before transaction version 2: version 0, the decision at
            // the data's own epoch.
            producer_epoch: d.producer_epoch,
            timeout_ms: d.timeout_ms,
            state: TxnState::PrepareCommit,
            partitions: Some(vec![embroker::__fuzz::TxnTopicPartitions {
                topic: "t".into(),
                partitions: vec![0],
                end_offsets: Vec::new(),
            }]),
            last_update_ms: 1,
            start_ms: d.start_ms,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
        };
        let state_topic = broker.topic("__transaction_state").unwrap();
        let n = state_topic.partition_count();
        // Kafka's partition of the id: abs(javaHash("tx")) % 50.
        let hash = "tx"
            .encode_utf16()
            .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
        let partition = hash.abs() % n;
        state_topic
            .partition(partition)
            .unwrap()
            .append(&[
                embroker::Record::new(embroker::__fuzz::encode_txn_log_value(&value))
                    .key(embroker::__fuzz::encode_txn_log_key("tx")),
            ])
            .unwrap();
        drop(p);
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    let d = broker.describe_transaction("tx").unwrap().unwrap();
    assert_eq!(d.state, TxnState::CompleteCommit);
    assert_eq!(d.producer_epoch, 0, "a completed decision fences no one");
    assert_eq!(
        batches(&broker, "t", 0).last().unwrap().1,
        Some(ControlRecordType::Commit)
    );
}

/// Random transactions of three producers over three partitions, with offsets sent to their
/// transactions, random commits and aborts, and reopens of the broker, some while transactions
/// are open: every transaction ends with exactly one marker in each partition it wrote to, the
/// records under COMMIT markers are exactly those of the transactions the model committed, and
/// each group's committed offset is that of its producer's last committed transaction.
#[test]
fn random_transactions_and_reopens_agree_with_a_model() {
    let seed = common::seed();
    let hint = common::replay_hint(seed);
    let mut rng = common::XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let open = |dir: &std::path::Path| {
        let broker = Broker::open(dir).unwrap();
        let producers: Vec<_> = (0..3)
            .map(|i| {
                let p = broker.producer(txn_config(&format!("p{i}"))).unwrap();
                p.init_transactions().unwrap();
                p
            })
            .collect();
        (broker, producers)
    };
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("out", TopicConfig::default().partitions(3))
            .unwrap();
        broker.create_topic("in", TopicConfig::default()).unwrap();
        broker.close().unwrap();
    }
    let (mut broker, mut producers) = open(dir.path());
    let mut committed_values: BTreeSet<String> = BTreeSet::new();
    let mut committed_offsets: BTreeMap<String, i64> = BTreeMap::new();
    let steps = if std::env::var_os("EMBROKER_LONG").is_some() {
        400
    } else {
        60
    };
    for step in 0..steps {
        let i = rng.below(3) as usize;
        let p = &producers[i];
        p.begin_transaction().unwrap();
        let mut values = Vec::new();
        for j in 0..rng.below(5) {
            let value = format!("p{i}-s{step}-r{j}");
            let partition = rng.below(3) as i32;
            drop(
                p.send(ProducerRecord::new("out", value.clone()).partition(partition))
                    .unwrap(),
            );
            values.push(value);
        }
        let offsets = rng.below(2) == 0;
        if offsets {
            let om = BTreeMap::from([(TopicPartition::new("in", 0), OffsetAndMetadata::new(step))]);
            p.send_offsets_to_transaction(&om, &ConsumerGroupMetadata::new(format!("g{i}")))
                .unwrap();
        }
        let decision = rng.below(10);
        if std::env::var_os("TXN_DEBUG").is_some() {
            eprintln!("step {step}: p{i} offsets {offsets} decision {decision}");
        }
        match decision {
            // Left open, then the broker reopens: aborted.
            0 => {
                p.flush().unwrap();
                drop(producers);
                broker.close().unwrap();
                (broker, producers) = open(dir.path());
            }
            1..=3 => p.abort_transaction().unwrap(),
            _ => {
                p.commit_transaction().unwrap();
                committed_values.extend(values);
                if offsets {
                    committed_offsets.insert(format!("g{i}"), step);
                }
            }
        }
        if rng.below(15) == 0 {
            if std::env::var_os("TXN_DEBUG").is_some() {
                eprintln!("reopen");
            }
            drop(producers);
            broker.close().unwrap();
            (broker, producers) = open(dir.path());
        }
    }
    drop(producers);
    broker.close().unwrap();
    let broker = Broker::open(dir.path()).unwrap();

    if std::env::var_os("TXN_DEBUG").is_some() {
        for (h, m) in batches(&broker, "__consumer_offsets", 0) {
            eprintln!(
                "offsets batch @{} pid {} epoch {} txn {} marker {:?} n {}",
                h.base_offset,
                h.producer_id,
                h.producer_epoch,
                h.is_transactional(),
                m,
                h.record_count
            );
        }
    }
    let mut seen_committed = BTreeSet::new();
    for partition in 0..3 {
        let p = broker.topic("out").unwrap().partition(partition).unwrap();
        let records = p.read(0, 64 << 20).unwrap();
        let mut open: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for b in records.batches() {
            let h = b.header;
            assert!(h.is_transactional(), "{hint}");
            if h.is_control() {
                let r = b.records().next().unwrap();
                let marker = EndTransactionMarker::parse(r.key.unwrap(), r.value).unwrap();
                let values = open.remove(&h.producer_id).unwrap_or_default();
                if marker.kind == ControlRecordType::Commit {
                    seen_committed.extend(values);
                }
            } else {
                let values = open.entry(h.producer_id).or_default();
                for r in b.records() {
                    values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                }
            }
        }
        assert!(
            open.is_empty(),
            "out-{partition}: transactions without a marker {open:?}; {hint}"
        );
    }
    assert_eq!(seen_committed, committed_values, "{hint}");
    for i in 0..3 {
        let group = format!("g{i}");
        let c = broker
            .consumer(ConsumerConfig::default().group_id(group.clone()))
            .unwrap();
        let got = c
            .committed(&TopicPartition::new("in", 0))
            .unwrap()
            .map(|o| o.offset);
        assert_eq!(
            got,
            committed_offsets.get(&group).copied(),
            "{group}; {hint}"
        );
    }
    for d in broker.list_transactions().unwrap() {
        assert!(
            matches!(
                d.state,
                TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Empty
            ),
            "{d:?}; {hint}"
        );
    }
}

// ---- read_committed visibility: needs the storage branch (log-txn) ----

fn read_committed_values(broker: &Broker, topic: &str) -> Vec<String> {
    let mut c = broker
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(IsolationLevel::ReadCommitted),
        )
        .unwrap();
    c.assign(&[TopicPartition::new(topic, 0)]).unwrap();
    let mut out = Vec::new();
    for _ in 0..10 {
        for r in c.poll(Duration::from_millis(50)).unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

#[test]
fn read_committed_sees_committed_records_only() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.producer(txn_config("tx")).unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new("t", "aborted"))
        .unwrap()
        .wait()
        .unwrap();
    p.abort_transaction().unwrap();
    p.begin_transaction().unwrap();
    drop(p.send(ProducerRecord::new("t", "committed")).unwrap());
    p.commit_transaction().unwrap();
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new("t", "open"))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(read_committed_values(&broker, "t"), ["committed"]);
    assert_eq!(
        values_read_uncommitted(&broker, "t"),
        ["aborted", "committed", "open"]
    );
}

#[test]
fn a_fenced_producers_records_stay_invisible_to_read_committed() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let old = broker.producer(txn_config("shared")).unwrap();
    old.init_transactions().unwrap();
    old.begin_transaction().unwrap();
    old.send(ProducerRecord::new("t", "old"))
        .unwrap()
        .wait()
        .unwrap();
    let new = broker.producer(txn_config("shared")).unwrap();
    new.init_transactions().unwrap();
    // The log refuses the old epoch now.
    let e = old.send(ProducerRecord::new("t", "late")).unwrap().wait();
    assert!(e.is_err());
    new.begin_transaction().unwrap();
    drop(new.send(ProducerRecord::new("t", "new")).unwrap());
    new.commit_transaction().unwrap();
    assert_eq!(read_committed_values(&broker, "t"), ["new"]);
}

/// The records of partition 0 of `topic` a `read_committed` consumer sees.
fn values_read_committed(broker: &Broker, topic: &str) -> Vec<String> {
    let mut c = broker
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(IsolationLevel::ReadCommitted),
        )
        .unwrap();
    let tp = TopicPartition::new(topic, 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let polled = c.poll(Duration::from_millis(50)).unwrap();
        if polled.is_empty() && !out.is_empty() {
            break;
        }
        for r in polled {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

/// Transaction version 2 recovery: T1 committed (its markers at the bumped epoch 1), T2's data
/// written at epoch 1 and the broker gone before T2 ends (its `Ongoing` state was in memory
/// only). On reopen, T2's data is at the epoch T1's decision handed out, not below it: no
/// decision covers it, so it is aborted (at epoch 2), and T1 stays committed.
#[test]
fn a_later_open_transaction_is_aborted_and_the_committed_one_kept_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = broker.producer(txn_config("tx")).unwrap();
        p.init_transactions().unwrap();
        p.begin_transaction().unwrap();
        drop(p.send(ProducerRecord::new("t", "t1")).unwrap());
        p.commit_transaction().unwrap();
        p.begin_transaction().unwrap();
        p.send(ProducerRecord::new("t", "t2"))
            .unwrap()
            .wait()
            .unwrap();
        drop(p);
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    let headers = batches(&broker, "t", 0);
    let shape: Vec<(i16, Option<ControlRecordType>)> = headers
        .iter()
        .map(|(h, m)| (h.producer_epoch, *m))
        .collect();
    assert_eq!(
        shape,
        [
            (0, None),
            (1, Some(ControlRecordType::Commit)),
            (1, None),
            (2, Some(ControlRecordType::Abort)),
        ]
    );
    assert_eq!(values_read_committed(&broker, "t"), ["t1"]);
    let d = broker.describe_transaction("tx").unwrap().unwrap();
    assert_eq!(d.state, TxnState::CompleteAbort);
    assert_eq!(d.producer_epoch, 2);
    // A new producer takes epoch 3 and works.
    let p = broker.producer(txn_config("tx")).unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    drop(p.send(ProducerRecord::new("t", "t3")).unwrap());
    p.commit_transaction().unwrap();
    assert_eq!(values_read_committed(&broker, "t"), ["t1", "t3"]);
}

thread_local! {
    /// Set by a test whose thread must "crash" at its next durable decision.
    static CRASH_AT_DECISION: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The decision is durable and the process dies before any marker (the crash seam panics on
/// this test's thread only): on reopen the marker is written at the decision's epoch in every
/// partition the decision lists, and the records are committed.
#[test]
fn a_durable_decision_without_markers_is_completed_on_reopen() {
    embroker::__testing::on_commit_decision(Box::new(|| {
        if CRASH_AT_DECISION.with(|c| c.replace(false)) {
            panic!("crash at the commit decision");
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        let p = broker.producer(txn_config("tx")).unwrap();
        p.init_transactions().unwrap();
        p.begin_transaction().unwrap();
        for partition in 0..2 {
            drop(
                p.send(ProducerRecord::new("t", "decided").partition(partition))
                    .unwrap(),
            );
        }
        CRASH_AT_DECISION.with(|c| c.set(true));
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = p.commit_transaction();
        }));
        assert!(crashed.is_err(), "the seam ran");
        for partition in 0..2 {
            assert!(
                batches(&broker, "t", partition)
                    .iter()
                    .all(|(_, m)| m.is_none()),
                "no marker before the crash"
            );
        }
        drop(p);
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    for partition in 0..2 {
        let last = batches(&broker, "t", partition).last().cloned().unwrap();
        assert_eq!(last.1, Some(ControlRecordType::Commit));
        assert_eq!(last.0.producer_epoch, 1, "the decision's epoch");
    }
    assert_eq!(values_read_committed(&broker, "t"), ["decided"]);
    let d = broker.describe_transaction("tx").unwrap().unwrap();
    assert_eq!(d.state, TxnState::CompleteCommit);
    assert_eq!(d.producer_epoch, 1);
}

/// `CompleteCommit` is written without fsync and may become durable before the markers (an
/// fsync of the shared `__transaction_state` partition by another id): it keeps the decision's
/// epoch and partitions, so a reopen that finds it with the partition's transaction still open
/// writes the COMMIT marker, as for `PrepareCommit`.
#[test]
fn a_durable_complete_record_without_markers_is_completed_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = broker.producer(txn_config("tx")).unwrap();
        p.init_transactions().unwrap();
        p.begin_transaction().unwrap();
        p.send(ProducerRecord::new("t", "decided"))
            .unwrap()
            .wait()
            .unwrap();
        let d = broker.describe_transaction("tx").unwrap().unwrap();
        let value = embroker::__fuzz::TxnLogValue {
            version: 1,
            producer_id: d.producer_id,
            producer_epoch: d.producer_epoch + 1,
            timeout_ms: d.timeout_ms,
            state: TxnState::CompleteCommit,
            partitions: Some(vec![embroker::__fuzz::TxnTopicPartitions {
                topic: "t".into(),
                partitions: vec![0],
                end_offsets: Vec::new(),
            }]),
            last_update_ms: 1,
            start_ms: d.start_ms,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 2,
        };
        let state_topic = broker.topic("__transaction_state").unwrap();
        let hash = "tx"
            .encode_utf16()
            .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
        let partition = hash.abs() % state_topic.partition_count();
        state_topic
            .partition(partition)
            .unwrap()
            .append(&[
                embroker::Record::new(embroker::__fuzz::encode_txn_log_value(&value))
                    .key(embroker::__fuzz::encode_txn_log_key("tx")),
            ])
            .unwrap();
        drop(p);
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    let last = batches(&broker, "t", 0).last().cloned().unwrap();
    assert_eq!(last.1, Some(ControlRecordType::Commit));
    assert_eq!(last.0.producer_epoch, 1);
    assert_eq!(values_read_committed(&broker, "t"), ["decided"]);
    let d = broker.describe_transaction("tx").unwrap().unwrap();
    assert_eq!(d.state, TxnState::CompleteCommit);
}

/// Appends `value` for `tid` to its `__transaction_state` partition (Kafka's partition of the
/// id: abs(javaHash(tid)) % 50), as the coordinator would have written it.
fn append_txn_record(broker: &Broker, tid: &str, value: &embroker::__fuzz::TxnLogValue) {
    let state_topic = broker.topic("__transaction_state").unwrap();
    let hash = tid
        .encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
    let partition = hash.abs() % state_topic.partition_count();
    state_topic
        .partition(partition)
        .unwrap()
        .append(&[
            embroker::Record::new(embroker::__fuzz::encode_txn_log_value(value))
                .key(embroker::__fuzz::encode_txn_log_key(tid)),
        ])
        .unwrap();
}

/// A commit decision as `commit_transaction` writes it since its fsync overlaps the data's
/// (transaction version 2, the bumped epoch, the data's end offset per partition), over a
/// transaction that wrote one record to each of `t`-0 and `t`-1, left open; `ends` are the end
/// offsets the decision records. Reopens the broker and returns it.
fn reopen_after_decision_with_ends(dir: &std::path::Path, ends: [i64; 2]) -> Broker {
    {
        let broker = Broker::open(dir).unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        let p = broker.producer(txn_config("tx")).unwrap();
        p.init_transactions().unwrap();
        p.begin_transaction().unwrap();
        for partition in 0..2 {
            p.send(ProducerRecord::new("t", "decided").partition(partition))
                .unwrap()
                .wait()
                .unwrap();
        }
        let d = broker.describe_transaction("tx").unwrap().unwrap();
        let value = embroker::__fuzz::TxnLogValue {
            version: 1,
            producer_id: d.producer_id,
            producer_epoch: d.producer_epoch + 1,
            timeout_ms: d.timeout_ms,
            state: TxnState::PrepareCommit,
            partitions: Some(vec![embroker::__fuzz::TxnTopicPartitions {
                topic: "t".into(),
                partitions: vec![0, 1],
                end_offsets: ends.to_vec(),
            }]),
            last_update_ms: 1,
            start_ms: d.start_ms,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 2,
        };
        append_txn_record(&broker, "tx", &value);
        drop(p);
        broker.close().unwrap();
    }
    Broker::open(dir).unwrap()
}

/// The decision is durable but `t`-1's data did not all reach the disk (its log ends at 1, the
/// decision says its data ends at 3: the crash lost the records the decision's fsync ran
/// alongside). The commit was never acknowledged; reopening aborts it in every partition, at
/// the decision's epoch: `read_committed` sees nothing of it, no partition keeps an open
/// transaction, and the id continues with a later epoch.
#[test]
fn a_commit_decision_whose_data_was_lost_is_aborted_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let broker = reopen_after_decision_with_ends(dir.path(), [1, 3]);
    for partition in 0..2 {
        let last = batches(&broker, "t", partition).last().cloned().unwrap();
        assert_eq!(
            last.1,
            Some(ControlRecordType::Abort),
            "partition {partition}"
        );
        assert_eq!(last.0.producer_epoch, 1, "the decision's epoch");
        let p = broker.topic("t").unwrap().partition(partition).unwrap();
        assert_eq!(
            p.last_stable_offset(),
            p.log_end_offset(),
            "no open transaction"
        );
    }
    assert!(values_read_committed(&broker, "t").is_empty());
    assert_eq!(values_read_uncommitted(&broker, "t"), ["decided"]);
    let d = broker.describe_transaction("tx").unwrap().unwrap();
    assert_eq!(d.state, TxnState::CompleteAbort);
    assert_eq!(d.producer_epoch, 1);
    // The id works on: a new producer commits at a later epoch.
    let p = broker.producer(txn_config("tx")).unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    drop(
        p.send(ProducerRecord::new("t", "next").partition(0))
            .unwrap(),
    );
    p.commit_transaction().unwrap();
    assert_eq!(values_read_committed(&broker, "t"), ["next"]);
    drop(p);
    // A second reopen finds nothing to do: the abort was recorded.
    broker.close().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(values_read_committed(&broker, "t"), ["next"]);
    assert_eq!(
        broker.describe_transaction("tx").unwrap().unwrap().state,
        TxnState::CompleteCommit
    );
}

/// The same decision with every partition's data on disk (each log reaches its end offset):
/// reopening completes the commit.
#[test]
fn a_commit_decision_whose_data_is_all_on_disk_completes_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let broker = reopen_after_decision_with_ends(dir.path(), [1, 1]);
    for partition in 0..2 {
        let last = batches(&broker, "t", partition).last().cloned().unwrap();
        assert_eq!(
            last.1,
            Some(ControlRecordType::Commit),
            "partition {partition}"
        );
        assert_eq!(last.0.producer_epoch, 1);
    }
    let d = broker.describe_transaction("tx").unwrap().unwrap();
    assert_eq!(d.state, TxnState::CompleteCommit);
    let p = broker.topic("t").unwrap().partition(1).unwrap();
    assert_eq!(p.last_stable_offset(), p.log_end_offset());
    assert_eq!(values_read_committed(&broker, "t"), ["decided"]);
}

/// `commit_transaction` with records still being written: the decision carries where each
/// partition's data ends, and the call returns with the records durable and committed.
#[test]
fn a_commit_of_records_in_flight_records_their_end_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let p = broker.producer(txn_config("tx")).unwrap();
    p.init_transactions().unwrap();
    for round in 0..20 {
        p.begin_transaction().unwrap();
        let sent: Vec<_> = (0..200)
            .map(|i| {
                p.send(ProducerRecord::new("t", format!("{round}-{i}")).partition(i % 2))
                    .unwrap()
            })
            .collect();
        p.commit_transaction().unwrap();
        for s in sent {
            // Complete (and so durable) once the commit returned.
            assert!(s.wait().is_ok());
        }
    }
    let mut log_ends = Vec::new();
    for partition in 0..2 {
        let part = broker.topic("t").unwrap().partition(partition).unwrap();
        assert_eq!(part.last_stable_offset(), part.log_end_offset());
        log_ends.push(part.log_end_offset());
    }
    // The decisions written while records were in flight carry their data's end offsets
    // (a commit whose records were all written before it writes none: its data is durable).
    let state_topic = broker.topic("__transaction_state").unwrap();
    let hash = "tx"
        .encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
    let state = state_topic
        .partition(hash.abs() % state_topic.partition_count())
        .unwrap();
    let mut with_ends = 0;
    let mut last_ends = [0i64; 2];
    for r in state.read(0, 1 << 20).unwrap().iter() {
        let rec =
            embroker::__fuzz::decode_txn_log_record(r.key.as_deref().unwrap(), r.value.as_deref())
                .unwrap();
        let v = rec.value.unwrap();
        for topic in v.partitions.iter().flatten() {
            assert!(topic.end_offsets.is_empty() || v.state == TxnState::PrepareCommit);
            for (p, end) in topic.partitions.iter().zip(&topic.end_offsets) {
                let p = usize::try_from(*p).unwrap();
                assert!(
                    *end > last_ends[p],
                    "ends grow: {end} after {}",
                    last_ends[p]
                );
                assert!(*end < log_ends[p], "before the marker");
                last_ends[p] = *end;
                with_ends += 1;
            }
        }
    }
    assert!(
        with_ends > 0,
        "no decision was written with records in flight"
    );
    drop(p);
    broker.close().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let d = broker.describe_transaction("tx").unwrap().unwrap();
    assert_eq!(d.state, TxnState::CompleteCommit);
    assert_eq!(d.producer_epoch, 20);
}
