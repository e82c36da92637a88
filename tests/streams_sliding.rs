//! Sliding windows (issue #21) through the public API and the test driver, against Kafka's
//! own `KStreamSlidingWindowAggregateTest` (the emit-every-update cases, record for record):
//! window creation at the boundaries, records earlier than the time difference, grace, and
//! the dropped-records count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embroker::streams::{
    Consumed, Grouped, Materialized, Produced, SlidingWindows, StreamsBuilder, StreamsConfig,
    TimeWindowedSerde, TopologyTestDriver, Windowed,
};
use embroker::{Builtin, Error};

type Result<T = ()> = std::result::Result<T, Error>;

/// Every update the aggregation forwarded, by window start: (aggregate, timestamp), as
/// Kafka's test gathers them (`gatherOutput`: a set per window start).
type Updates = BTreeMap<i64, BTreeSet<(String, i64)>>;

/// What reached the end of the topology: windowed key, value, timestamp.
type Seen = Arc<Mutex<Vec<(Windowed<String>, Option<String>, i64)>>>;

/// Kafka's `MockInitializer.STRING_INIT` and `MockAggregator.TOSTRING_ADDER` over sliding
/// windows of `difference` and `grace`; pipes `records` (value, timestamp) for key "A".
fn run(difference: u64, grace: u64, records: &[(&str, i64)]) -> Result<(Updates, u64)> {
    let builder = StreamsBuilder::new();
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    builder
        .stream("topic", Consumed::<String, String>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            Duration::from_millis(difference),
            Duration::from_millis(grace),
        ))
        .aggregate(
            || "0".to_string(),
            |_, v: String, agg: String| format!("{agg}+{v}"),
            Materialized::as_("store"),
        )
        .to_stream()
        .process::<(), (), _>(move || Collect(sink.clone()), &[]);
    let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("sliding"))?;
    let input = driver.create_input_topic::<String, String>("topic", Builtin, Builtin);
    for (value, ts) in records {
        input.pipe_input_with_timestamp("A".to_string(), value.to_string(), *ts)?;
    }
    let mut updates = Updates::new();
    for (key, value, ts) in seen.lock().expect("no panics while collecting").iter() {
        assert_eq!(key.window.end - key.window.start, difference as i64);
        if let Some(v) = value {
            updates
                .entry(key.window.start)
                .or_default()
                .insert((v.clone(), *ts));
        }
    }
    Ok((updates, driver.dropped_records()))
}

/// Records what reaches it, with its timestamp.
struct Collect(Seen);

impl embroker::streams::Processor<Windowed<String>, Option<String>, (), ()> for Collect {
    fn process(
        &mut self,
        r: embroker::streams::Record<Windowed<String>, Option<String>>,
        _: &mut embroker::streams::ProcessorContext<'_, (), ()>,
    ) -> Result {
        if let Ok(mut seen) = self.0.lock() {
            seen.push((r.key, r.value, r.timestamp));
        }
        Ok(())
    }
}

fn expect(entries: &[(i64, &[(&str, i64)])]) -> Updates {
    entries
        .iter()
        .map(|(start, set)| {
            (
                *start,
                set.iter().map(|(v, t)| (v.to_string(), *t)).collect(),
            )
        })
        .collect()
}

#[test]
fn aggregate_small_input_is_kafkas() -> Result {
    // KStreamSlidingWindowAggregateTest.testAggregateSmallInput (emit on every update).
    let (got, dropped) = run(
        10,
        5,
        &[
            ("1", 10),
            ("2", 10),
            ("3", 14),
            ("4", 15),
            ("5", 20),
            ("6", 22),
            ("7", 30),
        ],
    )?;
    let want = expect(&[
        (0, &[("0+1", 10), ("0+1+2", 10)]),
        (4, &[("0+1+2+3", 14)]),
        (5, &[("0+1+2+3+4", 15)]),
        (10, &[("0+1+2+3+4+5", 20)]),
        (11, &[("0+3", 14), ("0+3+4", 15), ("0+3+4+5", 20)]),
        (12, &[("0+3+4+5+6", 22)]),
        (15, &[("0+4", 15), ("0+4+5", 20), ("0+4+5+6", 22)]),
        (16, &[("0+5", 20), ("0+5+6", 22)]),
        (20, &[("0+5+6+7", 30)]),
        (21, &[("0+6", 22), ("0+6+7", 30)]),
        (23, &[("0+7", 30)]),
    ]);
    assert_eq!(got, want);
    assert_eq!(dropped, 0);
    Ok(())
}

#[test]
fn records_earlier_than_the_difference_share_the_window_at_zero() -> Result {
    // KStreamSlidingWindowAggregateTest.testEarlyRecordsSmallInput.
    let (got, _) = run(
        50,
        0,
        &[
            ("1", 0),
            ("2", 5),
            ("3", 6),
            ("4", 3),
            ("5", 13),
            ("6", 10),
            ("7", 70),
        ],
    )?;
    let want = expect(&[
        (
            0,
            &[
                ("0+1", 0),
                ("0+1+2", 5),
                ("0+1+2+3", 6),
                ("0+1+2+3+4", 6),
                ("0+1+2+3+4+5", 13),
                ("0+1+2+3+4+5+6", 13),
            ],
        ),
        (
            1,
            &[
                ("0+2", 5),
                ("0+2+3", 6),
                ("0+2+3+4", 6),
                ("0+2+3+4+5", 13),
                ("0+2+3+4+5+6", 13),
            ],
        ),
        (4, &[("0+2+3", 6), ("0+2+3+5", 13), ("0+2+3+5+6", 13)]),
        (6, &[("0+3", 6), ("0+3+5", 13), ("0+3+5+6", 13)]),
        (7, &[("0+5", 13), ("0+5+6", 13)]),
        (11, &[("0+5", 13)]),
        (20, &[("0+7", 70)]),
    ]);
    assert_eq!(got, want);
    Ok(())
}

#[test]
fn records_past_the_grace_period_are_dropped_and_counted() -> Result {
    // KStreamSlidingWindowAggregateTest.shouldLogAndMeterWhenSkippingExpiredWindowByGrace:
    // difference 10, grace 90; after the record at 200, windows ending before 110 are closed.
    let builder = StreamsBuilder::new();
    let size = Duration::from_millis(10);
    builder
        .stream("topic", Consumed::<String, String>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            size,
            Duration::from_millis(90),
        ))
        .aggregate(
            || "0".to_string(),
            |_, v: String, agg: String| format!("{agg}+{v}"),
            Materialized::as_("store"),
        )
        .to_stream()
        .to(
            "output",
            Produced::with(TimeWindowedSerde::new(Builtin, size), Builtin),
        );
    let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("sliding"))?;
    let input = driver.create_input_topic::<String, String>("topic", Builtin, Builtin);
    for (value, ts) in [
        ("100", 200),
        ("0", 100),
        ("1", 101),
        ("2", 102),
        ("3", 103),
        ("4", 104),
        ("5", 105),
        ("6", 15),
        ("101", 300),
        ("102", 400),
    ] {
        input.pipe_input_with_timestamp("k".to_string(), value.to_string(), ts)?;
    }
    // Kafka's lateness metrics: 7 records dropped (the left windows of 100..=105, and 15
    // whole).
    assert_eq!(driver.dropped_records(), 7);
    let out = driver.create_output_topic::<Windowed<String>, Option<String>>(
        "output",
        TimeWindowedSerde::new(Builtin, size),
        Builtin,
    );
    let got: Vec<(i64, Option<String>, i64)> = out
        .read_records_to_list()?
        .into_iter()
        .map(|r| (r.key.window.start, r.value, r.timestamp))
        .collect();
    // Nothing else: 100..=105 find no open window (their left windows end before 110, and
    // no record before them is left to make right windows from), and 15 is dropped whole.
    assert_eq!(
        got,
        vec![
            (190, Some("0+100".to_string()), 200),
            (290, Some("0+101".to_string()), 300),
            (390, Some("0+102".to_string()), 400),
        ]
    );
    Ok(())
}

#[test]
fn a_window_is_updated_up_to_its_end_plus_grace_and_not_after() -> Result {
    // Difference 10, no grace; after a record at 30 windows ending before 30 are closed.
    // A record at 20 still joins [20, 30] (a's left window: its end 30 is not before 30) and
    // makes its right window [21, 31], but its own left window [10, 20] is closed: one drop.
    let (got, dropped) = run(10, 0, &[("a", 30), ("b", 20)])?;
    assert_eq!(dropped, 1);
    assert_eq!(
        got,
        expect(&[(20, &[("0+a", 30), ("0+a+b", 30)]), (21, &[("0+a", 30)]),])
    );
    // A record at 19: even its latest window, ending at 29, is closed: dropped whole, once.
    let (got, dropped) = run(10, 0, &[("a", 30), ("b", 19)])?;
    assert_eq!(dropped, 1);
    assert_eq!(got, expect(&[(20, &[("0+a", 30)])]));
    // One millisecond of grace keeps [19, 29] open: the record at 29 makes it, joins a's
    // [20, 30], and makes its right window [30, 40] holding a.
    let (got, dropped) = run(10, 1, &[("a", 30), ("b", 29)])?;
    assert_eq!(dropped, 0);
    assert_eq!(
        got,
        expect(&[
            (19, &[("0+b", 29)]),
            (20, &[("0+a", 30), ("0+a+b", 30)]),
            (30, &[("0+a", 30)]),
        ])
    );
    Ok(())
}
