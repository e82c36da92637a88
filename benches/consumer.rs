//! Consumer benchmark: a single consumer reading 1,000,000 records of 100 bytes against a
//! direct `Partition::read` loop over the same log in the same run (target: >= 80%), and
//! end-to-end latency from `Partition::append` to `poll` returning the record with one
//! producing thread at a steady 10,000 records/s and one consumer thread.
//!
//! `cargo bench --bench consumer`; `EMBROKER_BENCH_SCALE=0.1` for a smoke run.

// The shared harness's `Report::measure` takes eight arguments; allowed here, where it is included.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::too_many_arguments)]

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig, TopicPartition};
use support::{percentiles, scaled, Contender, Report};

const VALUE_BYTES: usize = 100;
const APPEND_BATCH: usize = 1_000;
const READ_BYTES: usize = 1 << 20;

fn filled_broker(records: u64) -> Broker {
    let broker = Broker::temporary().expect("broker");
    broker
        .create_topic("bench", TopicConfig::default())
        .expect("topic");
    let p = broker.topic("bench").unwrap().partition(0).unwrap();
    let value = vec![b'x'; VALUE_BYTES];
    let mut left = records as usize;
    while left > 0 {
        let n = left.min(APPEND_BATCH);
        let batch: Vec<Record> = (0..n).map(|_| Record::new(value.clone())).collect();
        p.append(&batch).expect("append");
        left -= n;
    }
    broker
}

fn direct_read(broker: &Broker, records: u64) -> u64 {
    let p = broker.topic("bench").unwrap().partition(0).unwrap();
    let (mut at, mut n, mut bytes) = (0i64, 0u64, 0u64);
    while n < records {
        let rs = p.read(at, READ_BYTES).expect("read");
        for r in rs.iter() {
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            n += 1;
        }
        at = rs.next_offset();
    }
    assert_eq!(n, records);
    bytes
}

fn consumer(broker: &Broker, max_poll_records: u32) -> embroker::Consumer {
    let mut c = broker
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(max_poll_records),
        )
        .expect("consumer");
    c.assign(&[TopicPartition::new("bench", 0)]).unwrap();
    c
}

/// As `consume`, with `recv().await` in place of `poll`.
async fn consume_async(mut c: embroker::Consumer, records: u64) -> u64 {
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < records {
        let rs = c.recv().await.expect("recv");
        for r in &rs {
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            n += 1;
        }
    }
    assert_eq!(n, records);
    bytes
}

/// As `consume`, one record at a time from `Consumer::stream`, in the form async code
/// writes it (`while let Some(item) = stream.next().await`).
#[cfg(feature = "stream")]
async fn consume_stream(mut c: embroker::Consumer, records: u64) -> u64 {
    use futures::StreamExt;
    let mut stream = c.stream();
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Some(item) = stream.next().await {
        let r = item.expect("record");
        bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
        n += 1;
        if n == records {
            break;
        }
    }
    assert_eq!(n, records);
    bytes
}

fn consume(broker: &Broker, records: u64, max_poll_records: u32) -> u64 {
    let mut c = broker
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(max_poll_records),
        )
        .expect("consumer");
    c.assign(&[TopicPartition::new("bench", 0)]).unwrap();
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < records {
        let rs = c.poll(Duration::from_secs(1)).expect("poll");
        for r in &rs {
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            n += 1;
        }
    }
    assert_eq!(n, records);
    bytes
}

fn latency(report: &mut Report) {
    let broker = Broker::temporary().expect("broker");
    broker
        .create_topic("lat", TopicConfig::default())
        .expect("topic");
    let rate: u64 = 10_000;
    let total = scaled(2 * rate);
    let base = Instant::now();
    let mut consumer = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    consumer.assign(&[TopicPartition::new("lat", 0)]).unwrap();
    consumer.position(&TopicPartition::new("lat", 0)).unwrap();
    let reader = std::thread::spawn(move || {
        let mut samples = Vec::with_capacity(total as usize);
        while (samples.len() as u64) < total {
            let rs = consumer.poll(Duration::from_secs(5)).expect("poll");
            let now = base.elapsed();
            for r in &rs {
                let v = r.value.as_ref().unwrap();
                let sent = u64::from_be_bytes(v[..8].try_into().unwrap());
                samples.push(now.saturating_sub(Duration::from_nanos(sent)));
            }
        }
        samples
    });
    let p = broker.topic("lat").unwrap().partition(0).unwrap();
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    for i in 0..total {
        let due = interval * i as u32;
        while base.elapsed() < due {
            std::hint::spin_loop();
        }
        let mut value = vec![0u8; VALUE_BYTES];
        let sent = base.elapsed().as_nanos() as u64;
        value[..8].copy_from_slice(&sent.to_be_bytes());
        p.append(&[Record::new(value)]).expect("append");
    }
    let samples = reader.join().unwrap();
    let ps = percentiles(samples, &[50.0, 99.0, 99.9]);
    report.note(
        "latency",
        &format!("append -> poll, {total} records at {rate}/s"),
        format!(
            "p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs",
            ps[0].as_secs_f64() * 1e6,
            ps[1].as_secs_f64() * 1e6,
            ps[2].as_secs_f64() * 1e6
        ),
    );
}

fn main() {
    let records = scaled(1_000_000);
    let bytes = records * VALUE_BYTES as u64;
    let broker = filled_broker(records);
    let mut report = Report::default();
    let direct = "direct Partition::read loop";
    report.measure(
        "read",
        direct,
        None,
        records,
        bytes,
        || (),
        |()| direct_read(&broker, records),
    );
    report.measure(
        "read",
        "Consumer::poll (max.poll.records=500)",
        Some(direct),
        records,
        bytes,
        || (),
        |()| consume(&broker, records, 500),
    );
    report.measure(
        "read",
        "Consumer::poll (max.poll.records=5000)",
        Some(direct),
        records,
        bytes,
        || (),
        |()| consume(&broker, records, 5000),
    );
    // The async receive next to the blocking poll, interleaved (same consumer settings).
    let blocking = "blocking Consumer::poll loop (max.poll.records=500)";
    let mut rows = vec![Contender::new(
        "async",
        blocking,
        None,
        records,
        bytes,
        || consumer(&broker, 500),
        |mut c| {
            let (mut n, mut bytes) = (0u64, 0u64);
            while n < records {
                for r in &c.poll(Duration::from_secs(1)).expect("poll") {
                    bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                    n += 1;
                }
            }
            (c, bytes)
        },
    )];
    let owning = "blocking Consumer::poll loop, owning ConsumerRecords::into_iter";
    rows.push(Contender::new(
        "async",
        owning,
        Some(blocking),
        records,
        bytes,
        || consumer(&broker, 500),
        |mut c| {
            let (mut n, mut bytes) = (0u64, 0u64);
            while n < records {
                for r in c.poll(Duration::from_secs(1)).expect("poll") {
                    bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                    n += 1;
                }
            }
            (c, bytes)
        },
    ));
    rows.push(Contender::new(
        "async",
        "Consumer::recv().await loop, futures::executor",
        Some(blocking),
        records,
        bytes,
        || consumer(&broker, 500),
        |c| futures::executor::block_on(consume_async(c, records)),
    ));
    rows.push(Contender::new(
        "async",
        "Consumer::recv().await loop, tokio current-thread",
        Some(blocking),
        records,
        bytes,
        || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            (rt, consumer(&broker, 500))
        },
        |(rt, c)| {
            let bytes = rt.block_on(consume_async(c, records));
            (rt, bytes)
        },
    ));
    #[cfg(feature = "stream")]
    rows.push(Contender::new(
        "async",
        "Consumer::stream, per record, futures::executor",
        Some(blocking),
        records,
        bytes,
        || consumer(&broker, 500),
        |c| futures::executor::block_on(consume_stream(c, records)),
    ));
    report.measure_interleaved(rows);
    // A stream of owned records next to the blocking loop that owns each record too.
    #[cfg(feature = "stream")]
    report.compare(
        "async",
        "Consumer::stream, per record, futures::executor",
        owning,
    );
    if support::selected("latency") {
        latency(&mut report);
    }
    report.print("consumer");
}
