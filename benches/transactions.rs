//! Idempotence and transactions benchmark (issue #17), every row interleaved with its baseline
//! in the same run:
//!
//! 1. Idempotent against plain `acks=all`: 200,000 records of 100 bytes sent from one thread,
//!    then one flush; the plain producer sets `enable.idempotence=false`. Target: ≥ 0.95x.
//! 2. Transactions: the same records in transactions of 100, 1,000 and 10,000 records
//!    (`begin`, sends, `commit_transaction`), against the same sends with `acks=all` and a
//!    flush every 100, 1,000 and 10,000 records (what a commit must do anyway). Target: ≥ 0.8x
//!    at 1,000 records per transaction.
//!
//! `cargo bench --bench transactions`; `EMBROKER_BENCH_SCALE=0.1` for a quick run.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(clippy::too_many_arguments)]
#[path = "support/mod.rs"]
mod support;

use embroker::{Acks, Broker, Bytes, Producer, ProducerConfig, ProducerRecord, TopicConfig};
use support::{scaled, Contender, Report};

const VALUE_BYTES: usize = 100;

/// A broker in a scratch directory, not a temporary one: a temporary broker fsyncs nothing
/// (issue #20), and what these rows compare is what the fsyncs cost.
/// A round's state: the scratch directory lives as long as its broker.
type Setup = (tempfile::TempDir, Broker, Producer);

fn setup(config: ProducerConfig) -> Setup {
    let dir = tempfile::tempdir().expect("scratch directory");
    let broker = Broker::open(dir.path()).expect("broker");
    broker
        .create_topic("bench", TopicConfig::default().partitions(1))
        .expect("topic");
    let producer = broker.producer(config).expect("producer");
    (dir, broker, producer)
}

fn main() {
    let mut report = Report::default();
    let value = Bytes::from(vec![b'x'; VALUE_BYTES]);
    let n = scaled(200_000);
    let bytes = n * VALUE_BYTES as u64;

    let plain = "acks=all, enable.idempotence=false: send all, flush";
    let value_ref = &value;
    let send_all = move |(dir, broker, producer): Setup| {
        for _ in 0..n {
            drop(
                producer
                    .send(ProducerRecord::new("bench", value_ref.clone()))
                    .expect("send"),
            );
        }
        producer.flush().expect("flush");
        (dir, broker, producer)
    };
    let rows = vec![
        Contender::new(
            "idempotence",
            plain,
            None,
            n,
            bytes,
            || {
                setup(
                    ProducerConfig::default()
                        .acks(Acks::All)
                        .enable_idempotence(false),
                )
            },
            send_all,
        ),
        Contender::new(
            "idempotence",
            "acks=all, idempotent (the default): send all, flush",
            Some(plain),
            n,
            bytes,
            || setup(ProducerConfig::default().acks(Acks::All)),
            send_all,
        ),
    ];
    report.measure_interleaved(rows);

    for per in [100u64, 1_000, 10_000] {
        let per = per.min(n);
        let baseline = format!("acks=all idempotent, flush every {per}");
        let rows = vec![
            Contender::new(
                "transactions",
                &baseline,
                None,
                n,
                bytes,
                || setup(ProducerConfig::default().acks(Acks::All)),
                move |(dir, broker, producer): Setup| {
                    for i in 0..n {
                        drop(
                            producer
                                .send(ProducerRecord::new("bench", value_ref.clone()))
                                .expect("send"),
                        );
                        if (i + 1) % per == 0 {
                            producer.flush().expect("flush");
                        }
                    }
                    producer.flush().expect("flush");
                    (dir, broker, producer)
                },
            ),
            Contender::new(
                "transactions",
                &format!("transactional, commit every {per}"),
                Some(&baseline),
                n,
                bytes,
                || {
                    let (dir, broker, producer) = setup(
                        ProducerConfig::default()
                            .acks(Acks::All)
                            .transactional_id("bench"),
                    );
                    producer.init_transactions().expect("init");
                    (dir, broker, producer)
                },
                move |(dir, broker, producer): Setup| {
                    producer.begin_transaction().expect("begin");
                    for i in 0..n {
                        drop(
                            producer
                                .send(ProducerRecord::new("bench", value_ref.clone()))
                                .expect("send"),
                        );
                        if (i + 1) % per == 0 {
                            producer.commit_transaction().expect("commit");
                            producer.begin_transaction().expect("begin");
                        }
                    }
                    producer.commit_transaction().expect("commit");
                    (dir, broker, producer)
                },
            ),
        ];
        report.measure_interleaved(rows);
    }
    report.print("Idempotence and transactions");
}
