//! `Partition::append_batches`: whole Kafka v2 batches as a client encodes them, checked as
//! Kafka's broker checks a produce request, written whole or not at all.

use embroker::codec::{decode_batch, BatchBuilder, ProducerFields};
use embroker::{Broker, CleanupPolicy, Error, Header, Partition, TimestampType, TopicConfig};

const T0: i64 = 1_700_000_000_000;

fn partition(broker: &Broker, config: TopicConfig) -> Partition {
    broker.create_topic("t", config).unwrap();
    broker.topic("t").unwrap().partition(0).unwrap()
}

/// A batch of `n` keyed records stamped `T0 + i`.
fn batch(n: usize, tag: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        let key = format!("{tag}-k{i}");
        let value = format!("{tag}-v{i}");
        let headers = [Header::new("h", tag.as_bytes().to_vec())];
        b.push(
            T0 + i as i64,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &headers,
        )
        .unwrap();
    }
    b.finish()
}

fn recrc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn values(p: &Partition) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut at = p.log_start_offset();
    while at < p.log_end_offset() {
        let records = p.read(at, 1 << 20).unwrap();
        for r in records.iter() {
            let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            out.push((r.offset, value));
        }
        at = records.next_offset();
    }
    out
}

#[test]
fn batches_get_consecutive_offsets_and_read_back_as_sent() {
    let broker = Broker::temporary().unwrap();
    let p = partition(&broker, TopicConfig::default());
    p.append(&[embroker::Record::new("first")]).unwrap();
    let mut bytes = batch(3, "a");
    bytes.extend_from_slice(&batch(2, "b"));
    let appended = p.append_batches(&bytes).unwrap();
    assert_eq!((appended.base_offset, appended.last_offset), (1, 5));
    assert_eq!(appended.log_append_time, None);
    assert_eq!(appended.log_start_offset, 0);
    let got = values(&p);
    let want: Vec<(i64, String)> = [
        (0, "first"),
        (1, "a-v0"),
        (2, "a-v1"),
        (3, "a-v2"),
        (4, "b-v0"),
        (5, "b-v1"),
    ]
    .iter()
    .map(|(o, v)| (*o, v.to_string()))
    .collect();
    assert_eq!(got, want);
    let records = p.read(1, 1 << 20).unwrap();
    let r = records.iter().next().unwrap();
    assert_eq!(r.timestamp, T0);
    assert_eq!(r.key.as_deref(), Some(&b"a-k0"[..]));
    assert_eq!(r.headers, vec![Header::new("h", b"a".to_vec())]);
}

#[test]
fn producer_fields_are_kept_and_the_leader_epoch_is_stamped() {
    let broker = Broker::temporary().unwrap();
    let p = partition(&broker, TopicConfig::default());
    let mut b = BatchBuilder::new();
    b.set_producer(ProducerFields {
        producer_id: 77,
        producer_epoch: 2,
        base_sequence: 10,
    });
    b.set_transactional(true);
    b.push(T0, Some(b"k"), Some(b"v"), &[]).unwrap();
    let mut bytes = b.finish();
    bytes[12..16].copy_from_slice(&5i32.to_be_bytes()); // a client's leader epoch
    p.append_batches(&bytes).unwrap();
    let records = p.read(0, 1 << 20).unwrap();
    let h = records.batches().next().unwrap().header;
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (77, 2, 10)
    );
    assert!(h.is_transactional());
    assert_eq!(h.partition_leader_epoch, -1);
}

/// Every way a batch can be bad, each as the second of three: the call must write nothing.
#[test]
fn a_bad_batch_refuses_the_whole_call_and_says_what_is_wrong() {
    type Spoil = fn(&mut Vec<u8>);
    type Kind = fn(&Error) -> bool;
    let cases: Vec<(&str, Spoil, Kind, &str)> = vec![
        (
            "flipped value byte",
            |b| {
                let n = b.len();
                b[n - 3] ^= 1
            },
            |e| matches!(e, Error::CorruptRecord { .. }),
            "CRC",
        ),
        (
            "cut short",
            |b| b.truncate(b.len() - 1),
            |e| matches!(e, Error::InvalidRecord { .. } | Error::CorruptRecord { .. }),
            "batch 1",
        ),
        (
            "magic 1",
            |b| b[16] = 1,
            |e| matches!(e, Error::CorruptRecord { .. }),
            "magic",
        ),
        (
            "control bit",
            |b| {
                b[22] |= 0x20;
                recrc(b)
            },
            |e| matches!(e, Error::InvalidRecord { .. }),
            "control",
        ),
        (
            "count above last offset delta",
            |b| {
                b[60] += 1;
                recrc(b)
            },
            |e| matches!(e, Error::InvalidRecord { .. } | Error::CorruptRecord { .. }),
            "batch 1",
        ),
        (
            "gap in offsets",
            |b| {
                b[26] += 1;
                recrc(b)
            },
            |e| matches!(e, Error::InvalidRecord { .. }),
            "record count",
        ),
        (
            "unknown codec",
            |b| {
                b[22] |= 0x07;
                recrc(b)
            },
            |e| matches!(e, Error::CorruptRecord { .. }),
            "codec",
        ),
        (
            "producer id without sequence",
            |b| {
                b[43..51].copy_from_slice(&9i64.to_be_bytes());
                recrc(b)
            },
            |e| matches!(e, Error::InvalidRecord { .. }),
            "sequence",
        ),
        (
            "negative timestamp",
            |b| {
                b[27..35].copy_from_slice(&(-100i64).to_be_bytes());
                recrc(b)
            },
            |e| matches!(e, Error::InvalidTimestamp { .. }),
            "epoch",
        ),
    ];
    for (name, spoil, kind, words) in cases {
        let broker = Broker::temporary().unwrap();
        let p = partition(&broker, TopicConfig::default());
        let mut bad = batch(3, "bad");
        spoil(&mut bad);
        let mut bytes = batch(2, "ok");
        bytes.extend_from_slice(&bad);
        if name != "cut short" {
            bytes.extend_from_slice(&batch(1, "after"));
        }
        let err = p.append_batches(&bytes).unwrap_err();
        assert!(kind(&err), "{name}: unexpected error kind: {err}");
        let text = err.to_string();
        assert!(
            text.contains(words),
            "{name}: {text:?} does not say {words:?}"
        );
        assert!(
            text.contains("t-0"),
            "{name}: {text:?} does not name the partition"
        );
        assert_eq!(
            p.log_end_offset(),
            0,
            "{name}: part of a refused call was written"
        );
    }
}

#[test]
fn records_numbered_out_of_order_are_refused() {
    // Two batches glued into one by hand: record offset deltas 0, 0 under last delta 1.
    let one = batch(1, "x");
    let broker = Broker::temporary().unwrap();
    let p = partition(&broker, TopicConfig::default());
    let records = &one[61..];
    let mut b = one[..61].to_vec();
    b.extend_from_slice(records);
    b.extend_from_slice(records);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[23..27].copy_from_slice(&1i32.to_be_bytes());
    b[57..61].copy_from_slice(&2i32.to_be_bytes());
    recrc(&mut b);
    let err = p.append_batches(&b).unwrap_err();
    assert!(err.to_string().contains("offset delta"), "{err}");
    assert_eq!(p.log_end_offset(), 0);
}

#[test]
fn the_size_limit_applies_to_each_batch_as_sent() {
    let broker = Broker::temporary().unwrap();
    let one = batch(3, "a");
    let config = TopicConfig::default().max_message_bytes(one.len() as u32);
    let p = partition(&broker, config);
    let mut two = one.clone();
    two.extend_from_slice(&one);
    p.append_batches(&two).unwrap();
    let big = batch(4, "a");
    let err = p.append_batches(&big).unwrap_err();
    assert!(matches!(err, Error::RecordTooLarge { .. }), "{err}");
    assert_eq!(p.log_end_offset(), 6);
}

#[test]
fn compacted_topics_refuse_records_without_keys() {
    let broker = Broker::temporary().unwrap();
    let p = partition(
        &broker,
        TopicConfig::default().cleanup_policy(CleanupPolicy::Compact),
    );
    let mut b = BatchBuilder::new();
    b.push(T0, Some(b"k"), Some(b"v"), &[]).unwrap();
    b.push(T0, None, Some(b"v"), &[]).unwrap();
    let err = p.append_batches(&b.finish()).unwrap_err();
    assert!(err.to_string().contains("without a key"), "{err}");
    p.append_batches(&batch(2, "keyed")).unwrap();
}

#[test]
fn timestamps_outside_the_topics_bounds_are_refused() {
    let broker = Broker::temporary().unwrap();
    let config = TopicConfig::default()
        .message_timestamp_before_max_ms(60_000)
        .message_timestamp_after_max_ms(60_000);
    let p = partition(&broker, config);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (ts, ok) in [
        (now, true),
        (now - 3_600_000, false),
        (now + 3_600_000, false),
    ] {
        let mut b = BatchBuilder::new();
        b.push(ts, Some(b"k"), Some(b"v"), &[]).unwrap();
        let result = p.append_batches(&b.finish());
        match (result, ok) {
            (Ok(_), true) => {}
            (
                Err(Error::InvalidTimestamp {
                    timestamp, reason, ..
                }),
                false,
            ) => {
                assert_eq!(timestamp, ts);
                assert!(reason.contains("message.timestamp."), "{reason}");
            }
            (other, _) => panic!("timestamp {ts} (now {now}): {other:?}"),
        }
    }
}

#[test]
fn a_wrong_max_timestamp_is_fixed_and_log_append_time_is_stamped() {
    let broker = Broker::temporary().unwrap();
    let p = partition(&broker, TopicConfig::default());
    let mut b = batch(3, "a");
    b[35..43].copy_from_slice(&5i64.to_be_bytes()); // not the records' largest
    recrc(&mut b);
    p.append_batches(&b).unwrap();
    let records = p.read(0, 1 << 20).unwrap();
    let stored = records.batches().next().unwrap();
    assert_eq!(stored.header.max_timestamp, T0 + 2);
    assert!(
        decode_batch(stored.bytes).is_ok(),
        "the fixed batch's CRC holds"
    );

    broker
        .create_topic(
            "lat",
            TopicConfig::default().timestamp_type(TimestampType::LogAppendTime),
        )
        .unwrap();
    let lat = broker.topic("lat").unwrap().partition(0).unwrap();
    let appended = lat.append_batches(&batch(2, "a")).unwrap();
    let stamped = appended
        .log_append_time
        .expect("a LogAppendTime topic stamps the time");
    let records = lat.read(0, 1 << 20).unwrap();
    let h = records.batches().next().unwrap().header;
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp, stamped);
    assert!(records.iter().all(|r| r.timestamp == stamped));
}

#[test]
fn empty_and_garbage_calls_write_nothing_and_never_panic() {
    let broker = Broker::temporary().unwrap();
    let p = partition(&broker, TopicConfig::default());
    assert!(p.append_batches(&[]).is_err());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        assert!(
            p.append_batches(&bytes).is_err(),
            "{len} random bytes were accepted"
        );
    }
    assert_eq!(p.log_end_offset(), 0);
}
