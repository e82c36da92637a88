//! Property: for any sequence of keyed appends and tombstones, with cleaner passes and clock
//! moves in between, the compacted log's latest value per key (and that record's offset)
//! equals the uncompacted log's, after every pass and after a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use embroker::{Broker, CleanupPolicy, ManualClock, Partition, Record, TopicConfig};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u16),
    Delete(u8),
    /// Several records in one batch.
    PutBatch(Vec<(u8, Option<u16>)>),
    Clean,
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, any::<u16>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..12).prop_map(Op::Delete),
        2 => proptest::collection::vec((0u8..12, proptest::option::of(any::<u16>())), 1..6)
            .prop_map(Op::PutBatch),
        2 => Just(Op::Clean),
        1 => (0i64..300).prop_map(Op::Advance),
    ]
}

type View = BTreeMap<Vec<u8>, (i64, Vec<u8>)>;

fn view_of_log(p: &Partition) -> View {
    common::latest(&common::read_all(p, p.log_start_offset()))
}

fn record(k: u8, v: Option<u16>) -> Record {
    let key = format!("key-{k}");
    match v {
        Some(v) => Record::new(format!("value-{v}")).key(key),
        None => Record::tombstone(key),
    }
}

/// `EMBROKER_SEED` replays a run's cases; without it proptest picks its own. Either way a
/// failure's message carries the (shrunk) failing input itself.
fn rng_seed() -> proptest::test_runner::RngSeed {
    match std::env::var("EMBROKER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => proptest::test_runner::RngSeed::Fixed(seed),
        None => proptest::test_runner::RngSeed::Random,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { rng_seed: rng_seed(), ..ProptestConfig::with_cases(96) })]
    #[test]
    fn compaction_keeps_the_latest_value_of_every_key(
        ops in proptest::collection::vec(op(), 1..120),
        delete_retention_ms in 0i64..400,
        ratio in 0.0f64..0.9,
        segment_bytes in 100u32..400,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000_000);
        let open = || {
            Broker::builder()
                .log_cleaner(false)
                .clock(clock.clone())
                .open(dir.path())
                .unwrap()
        };
        let broker = open();
        let config = TopicConfig::default()
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(segment_bytes)
            .index_interval_bytes(64)
            .delete_retention_ms(delete_retention_ms)
            .min_cleanable_dirty_ratio(ratio);
        broker.create_topic("t", config).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        let mut model = View::new();
        let apply = |model: &mut View, offset: i64, k: u8, v: Option<u16>| {
            let key = format!("key-{k}").into_bytes();
            match v {
                Some(v) => model.insert(key, (offset, format!("value-{v}").into_bytes())),
                None => model.remove(&key),
            };
        };
        for op in &ops {
            match op {
                Op::Put(k, v) => {
                    let at = p.append(&[record(*k, Some(*v))]).unwrap();
                    apply(&mut model, at, *k, Some(*v));
                }
                Op::Delete(k) => {
                    let at = p.append(&[record(*k, None)]).unwrap();
                    apply(&mut model, at, *k, None);
                }
                Op::PutBatch(recs) => {
                    let batch: Vec<Record> = recs.iter().map(|(k, v)| record(*k, *v)).collect();
                    let base = p.append(&batch).unwrap();
                    for (i, (k, v)) in recs.iter().enumerate() {
                        apply(&mut model, base + i as i64, *k, *v);
                    }
                }
                Op::Clean => {
                    broker.flush().unwrap();
                    broker.run_log_cleaner().unwrap();
                    prop_assert_eq!(&view_of_log(&p), &model);
                }
                Op::Advance(ms) => clock.advance_ms(*ms),
            }
        }
        broker.flush().unwrap();
        clock.advance_ms(1_000);
        for _ in 0..3 {
            let report = broker.run_log_cleaner().unwrap();
            prop_assert!(report.partitions_failed.is_empty());
        }
        prop_assert_eq!(&view_of_log(&p), &model);
        broker.close().unwrap();
        let broker = open();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        prop_assert_eq!(&view_of_log(&p), &model);
    }
}
