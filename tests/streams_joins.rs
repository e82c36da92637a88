//! Kafka Streams' joins through the public API and the `TopologyTestDriver` (issue #21): the
//! join-semantics tables of Kafka's developer guide (`streams/developer-guide/dsl-api.html`,
//! "Joining": the sequence of left and right records with their timestamps and the expected
//! results of inner, left and outer joins), ported record for record for KStream-KStream,
//! KStream-KTable, KTable-KTable and KStream-GlobalKTable; Kafka's own integration tests of
//! the same sequence (`StreamStreamJoinIntegrationTest`, `TableTableJoinIntegrationTest`,
//! out-of-order records included); Kafka's `KStreamKStreamOuterJoinTest` cases (duplicates,
//! ordering, grace, asymmetric windows); window boundaries and grace; co-partitioning; the
//! build errors; and a proptest of the stream-stream joins against a brute-force oracle.
//!
//! The guide's tables omit keys (every record has the same key) and write a null value as
//! `null`. A stream record with a null value is skipped by Kafka's stream joins; here the
//! inputs are declared `Option<String>` and the nulls removed with `flat_map_values` before
//! the join (a Rust value cannot be null unless its type says so). A table's null is a
//! tombstone, as in Kafka.

use std::time::Duration;

use embroker::streams::{
    Consumed, JoinWindows, KStream, KTable, Materialized, Produced, StreamsBuilder, StreamsConfig,
    TestInputTopic, TestOutputTopic, TopologyTestDriver,
};
use embroker::{Builtin, Error};

type Result<T = ()> = std::result::Result<T, Error>;

const KEY: i64 = 0;

/// Which input a row of a table goes to.
#[derive(Clone, Copy, Debug)]
enum Side {
    L,
    R,
}

/// One row of a guide table: timestamp, side, value (`None` is null), and the results
/// expected right after it as (value, timestamp), `None` a tombstone.
type Row = (
    i64,
    Side,
    Option<&'static str>,
    Vec<(Option<&'static str>, i64)>,
);

fn joined(l: Option<&String>, r: Option<&String>) -> String {
    let show = |v: Option<&String>| v.map_or("null".to_string(), |s| s.clone());
    format!("{}-{}", show(l), show(r))
}

/// The guide's sequence: left and right records at 1..=15 with their values.
fn guide_inputs() -> Vec<(i64, Side, Option<&'static str>)> {
    use Side::{L, R};
    vec![
        (1, L, None),
        (2, R, None),
        (3, L, Some("A")),
        (4, R, Some("a")),
        (5, L, Some("B")),
        (6, R, Some("b")),
        (7, L, None),
        (8, R, None),
        (9, L, Some("C")),
        (10, R, Some("c")),
        (11, R, None),
        (12, L, None),
        (13, R, None),
        (14, R, Some("d")),
        (15, L, Some("D")),
    ]
}

struct Harness {
    _driver: TopologyTestDriver,
    left: TestInputTopic<i64, Option<String>>,
    right: TestInputTopic<i64, Option<String>>,
    out: TestOutputTopic<i64, Option<String>>,
}

impl Harness {
    fn new(builder: &StreamsBuilder) -> Result<Harness> {
        let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("joins"))?;
        Ok(Harness {
            left: driver.create_input_topic("left", Builtin, Builtin),
            right: driver.create_input_topic("right", Builtin, Builtin),
            out: driver.create_output_topic("out", Builtin, Builtin),
            _driver: driver,
        })
    }

    /// Pipe each row and compare what came out right after it with the row's expectation.
    fn run(&self, rows: &[Row]) -> Result {
        for (ts, side, value, expected) in rows {
            let input = match side {
                Side::L => &self.left,
                Side::R => &self.right,
            };
            input.pipe_input_with_timestamp(KEY, value.map(str::to_string), *ts)?;
            let got: Vec<(Option<String>, i64)> = self
                .out
                .read_records_to_list()?
                .into_iter()
                .map(|r| {
                    assert_eq!(r.key, KEY);
                    (r.value, r.timestamp)
                })
                .collect();
            let want: Vec<(Option<String>, i64)> = expected
                .iter()
                .map(|(v, t)| (v.map(str::to_string), *t))
                .collect();
            assert_eq!(got, want, "after {side:?} {value:?} at {ts}");
        }
        Ok(())
    }
}

fn streams(builder: &StreamsBuilder) -> (KStream<i64, String>, KStream<i64, String>) {
    let input = |topic| {
        builder
            .stream(
                topic,
                Consumed::<i64, Option<String>>::with(Builtin, Builtin),
            )
            .flat_map_values(|v| v)
    };
    (input("left"), input("right"))
}

fn tables(builder: &StreamsBuilder) -> (KTable<i64, String>, KTable<i64, String>) {
    let table = |topic| {
        builder.table(
            topic,
            Consumed::<i64, String>::with(Builtin, Builtin),
            Materialized::default(),
        )
    };
    (table("left"), table("right"))
}

fn to_out(stream: KStream<i64, String>) {
    stream.map_values(Some).to(
        "out",
        Produced::<i64, Option<String>>::with(Builtin, Builtin),
    );
}

/// The guide's rows with the results of each, in seconds as the guide's windows are (the
/// guide's stream-stream table assumes a time difference of 15 s and a grace of 5 s).
fn rows_in_seconds(results: Vec<Vec<(Option<&'static str>, i64)>>) -> Vec<Row> {
    guide_inputs()
        .into_iter()
        .zip(results)
        .map(|((t, side, v), r)| {
            let r = r.into_iter().map(|(v, t)| (v, t * 1_000)).collect();
            (t * 1_000, side, v, r)
        })
        .collect()
}

/// The results of rows 1..=15 of the stream-stream table: identical for inner, left and
/// outer joins (every record finds a partner within 15 s, and left/outer results wait for
/// the window to close).
fn stream_stream_first_rows() -> Vec<Vec<(Option<&'static str>, i64)>> {
    vec![
        vec![],
        vec![],
        vec![],
        vec![(Some("A-a"), 4)],
        vec![(Some("B-a"), 5)],
        vec![(Some("A-b"), 6), (Some("B-b"), 6)],
        vec![],
        vec![],
        vec![(Some("C-a"), 9), (Some("C-b"), 9)],
        vec![(Some("A-c"), 10), (Some("B-c"), 10), (Some("C-c"), 10)],
        vec![],
        vec![],
        vec![],
        vec![(Some("A-d"), 14), (Some("B-d"), 14), (Some("C-d"), 14)],
        vec![
            (Some("D-a"), 15),
            (Some("D-b"), 15),
            (Some("D-c"), 15),
            (Some("D-d"), 15),
        ],
    ]
}

/// The guide's rows after "...": E at 40 s, F at 60 s, f at 80 s, G at 100 s. Kafka closes
/// a window once stream time is *past* its end plus grace (`KStreamKStreamJoin`:
/// `minTime + after + grace >= streamTime` keeps it open), so at exactly 60 s E's window
/// (40 + 15 + 5) is still open; the guide's rounded times sit on that boundary, and here each
/// row after the gap comes 1 ms later than the one before it (60.001 s, 80.002 s, 100.003 s)
/// so that they fall past it, as the guide's "..." allows.
fn stream_stream_late_rows(left: bool, outer: bool) -> Vec<Row> {
    use Side::{L, R};
    let when = |yes: bool, v: Vec<(Option<&'static str>, i64)>| if yes { v } else { vec![] };
    vec![
        (40_000, L, Some("E"), vec![]),
        (
            60_001,
            L,
            Some("F"),
            when(left, vec![(Some("E-null"), 40_000)]),
        ),
        (
            80_002,
            R,
            Some("f"),
            when(left, vec![(Some("F-null"), 60_001)]),
        ),
        (
            100_003,
            L,
            Some("G"),
            when(outer, vec![(Some("null-f"), 80_002)]),
        ),
    ]
}

fn guide_windows() -> JoinWindows {
    JoinWindows::of_time_difference_and_grace(Duration::from_secs(15), Duration::from_secs(5))
}

#[test]
fn kstream_kstream_inner_join_is_the_guides_table() -> Result {
    let builder = StreamsBuilder::new();
    let (left, right) = streams(&builder);
    to_out(left.join(&right, |l, r| joined(Some(l), Some(r)), guide_windows()));
    let h = Harness::new(&builder)?;
    h.run(&rows_in_seconds(stream_stream_first_rows()))?;
    h.run(&stream_stream_late_rows(false, false))
}

#[test]
fn kstream_kstream_left_join_is_the_guides_table() -> Result {
    let builder = StreamsBuilder::new();
    let (left, right) = streams(&builder);
    to_out(left.left_join(&right, |l, r| joined(Some(l), r), guide_windows()));
    let h = Harness::new(&builder)?;
    h.run(&rows_in_seconds(stream_stream_first_rows()))?;
    h.run(&stream_stream_late_rows(true, false))
}

#[test]
fn kstream_kstream_outer_join_is_the_guides_table() -> Result {
    let builder = StreamsBuilder::new();
    let (left, right) = streams(&builder);
    to_out(left.outer_join(&right, joined, guide_windows()));
    let h = Harness::new(&builder)?;
    h.run(&rows_in_seconds(stream_stream_first_rows()))?;
    h.run(&stream_stream_late_rows(true, true))
}

/// The stream-table table: only stream records produce results, with the table's row as it
/// is when they arrive.
fn stream_table_rows(left: bool) -> Vec<Row> {
    let l = |v: Vec<(Option<&'static str>, i64)>| if left { v } else { vec![] };
    let results = vec![
        vec![],
        vec![],
        l(vec![(Some("A-null"), 3)]),
        vec![],
        vec![(Some("B-a"), 5)],
        vec![],
        vec![],
        vec![],
        l(vec![(Some("C-null"), 9)]),
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![(Some("D-d"), 15)],
    ];
    guide_inputs()
        .into_iter()
        .zip(results)
        .map(|((t, s, v), r)| (t, s, v, r))
        .collect()
}

fn stream_and_table(builder: &StreamsBuilder) -> (KStream<i64, String>, KTable<i64, String>) {
    let (stream, _) = streams_left_only(builder);
    let table = builder.table(
        "right",
        Consumed::<i64, String>::with(Builtin, Builtin),
        Materialized::default(),
    );
    (stream, table)
}

fn streams_left_only(builder: &StreamsBuilder) -> (KStream<i64, String>, ()) {
    let stream = builder
        .stream(
            "left",
            Consumed::<i64, Option<String>>::with(Builtin, Builtin),
        )
        .flat_map_values(|v| v);
    (stream, ())
}

#[test]
fn kstream_ktable_inner_join_is_the_guides_table() -> Result {
    let builder = StreamsBuilder::new();
    let (stream, table) = stream_and_table(&builder);
    to_out(stream.join_table(&table, |l, r| joined(Some(l), Some(r))));
    Harness::new(&builder)?.run(&stream_table_rows(false))
}

#[test]
fn kstream_ktable_left_join_is_the_guides_table() -> Result {
    let builder = StreamsBuilder::new();
    let (stream, table) = stream_and_table(&builder);
    to_out(stream.left_join_table(&table, |l, r| joined(Some(l), r)));
    Harness::new(&builder)?.run(&stream_table_rows(true))
}

#[test]
fn kstream_global_ktable_joins_are_the_guides_stream_table_table() -> Result {
    for left in [false, true] {
        let builder = StreamsBuilder::new();
        let (stream, _) = streams_left_only(&builder);
        let global = builder.global_table(
            "right",
            Consumed::<i64, String>::with(Builtin, Builtin),
            Materialized::default(),
        );
        let result = if left {
            stream.left_join_global(&global, |k, _| *k, |l, r| joined(Some(l), r))
        } else {
            stream.join_global(&global, |k, _| *k, |l, r| joined(Some(l), Some(r)))
        };
        to_out(result);
        let topology = builder.build()?;
        assert_eq!(topology.global_topics(), ["right"]);
        assert!(topology.copartition_groups().is_empty());
        Harness::new(&builder)?.run(&stream_table_rows(left))?;
    }
    Ok(())
}

/// The table-table table, with Kafka's result timestamps (the later of the two rows').
fn table_table_rows(kind: &str) -> Vec<Row> {
    let (inner, left, outer) = (kind == "inner", kind == "left", kind == "outer");
    let pick = |i: Vec<(Option<&'static str>, i64)>,
                l: Vec<(Option<&'static str>, i64)>,
                o: Vec<(Option<&'static str>, i64)>| {
        if inner {
            i
        } else if left {
            l
        } else {
            debug_assert!(outer);
            o
        }
    };
    let results = vec![
        pick(vec![], vec![], vec![]),
        pick(vec![], vec![], vec![]),
        pick(vec![], vec![(Some("A-null"), 3)], vec![(Some("A-null"), 3)]),
        pick(
            vec![(Some("A-a"), 4)],
            vec![(Some("A-a"), 4)],
            vec![(Some("A-a"), 4)],
        ),
        pick(
            vec![(Some("B-a"), 5)],
            vec![(Some("B-a"), 5)],
            vec![(Some("B-a"), 5)],
        ),
        pick(
            vec![(Some("B-b"), 6)],
            vec![(Some("B-b"), 6)],
            vec![(Some("B-b"), 6)],
        ),
        pick(vec![(None, 7)], vec![(None, 7)], vec![(Some("null-b"), 7)]),
        pick(vec![], vec![], vec![(None, 8)]),
        pick(vec![], vec![(Some("C-null"), 9)], vec![(Some("C-null"), 9)]),
        pick(
            vec![(Some("C-c"), 10)],
            vec![(Some("C-c"), 10)],
            vec![(Some("C-c"), 10)],
        ),
        pick(
            vec![(None, 11)],
            vec![(Some("C-null"), 11)],
            vec![(Some("C-null"), 11)],
        ),
        pick(vec![], vec![(None, 12)], vec![(None, 12)]),
        pick(vec![], vec![], vec![]),
        pick(vec![], vec![], vec![(Some("null-d"), 14)]),
        pick(
            vec![(Some("D-d"), 15)],
            vec![(Some("D-d"), 15)],
            vec![(Some("D-d"), 15)],
        ),
    ];
    guide_inputs()
        .into_iter()
        .zip(results)
        .map(|((t, s, v), r)| (t, s, v, r))
        .collect()
}

fn table_out(table: KTable<i64, String>) {
    table.to_stream().to(
        "out",
        Produced::<i64, Option<String>>::with(Builtin, Builtin),
    );
}

#[test]
fn ktable_ktable_inner_join_is_the_guides_table() -> Result {
    let builder = StreamsBuilder::new();
    let (left, right) = tables(&builder);
    table_out(left.join(&right, |l, r| joined(Some(l), Some(r))));
    Harness::new(&builder)?.run(&table_table_rows("inner"))
}

#[test]
fn ktable_ktable_left_join_is_the_guides_table() -> Result {
    let builder = StreamsBuilder::new();
    let (left, right) = tables(&builder);
    table_out(left.left_join(&right, |l, r| joined(Some(l), r)));
    Harness::new(&builder)?.run(&table_table_rows("left"))
}

#[test]
fn ktable_ktable_outer_join_is_the_guides_table() -> Result {
    let builder = StreamsBuilder::new();
    let (left, right) = tables(&builder);
    table_out(left.outer_join(&right, joined));
    Harness::new(&builder)?.run(&table_table_rows("outer"))
}

/// Kafka's `AbstractJoinIntegrationTest.input`: the guide's sequence (in milliseconds) and
/// then out-of-order records, some of them tombstones.
fn integration_inputs() -> Vec<(i64, Side, Option<&'static str>)> {
    use Side::{L, R};
    let mut rows = guide_inputs();
    rows.truncate(13);
    rows.extend([
        (7, R, Some("d")),
        (6, L, Some("D")),
        (2, L, None),
        (3, R, None),
        (14, R, Some("e")),
        (15, L, Some("E")),
        (10, L, None),
        (9, R, None),
        (4, L, Some("F")),
        (3, R, Some("f")),
    ]);
    rows
}

fn with_results(
    inputs: Vec<(i64, Side, Option<&'static str>)>,
    results: Vec<Vec<(Option<&'static str>, i64)>>,
) -> Vec<Row> {
    assert_eq!(inputs.len(), results.len());
    inputs
        .into_iter()
        .zip(results)
        .map(|((t, s, v), r)| (t, s, v, r))
        .collect()
}

#[test]
fn ktable_ktable_joins_with_out_of_order_records_are_kafkas_integration_tests() -> Result {
    // TableTableJoinIntegrationTest.testInner/testLeft/testOuter, cache disabled.
    let n = |t| vec![(None, t)];
    let v = |s, t| vec![(Some(s), t)];
    let e = Vec::new;
    let inner = vec![
        e(),
        e(),
        e(),
        v("A-a", 4),
        v("B-a", 5),
        v("B-b", 6),
        n(7),
        e(),
        e(),
        v("C-c", 10),
        n(11),
        e(),
        e(),
        e(),
        v("D-d", 7),
        n(7),
        e(),
        e(),
        v("E-e", 15),
        n(14),
        e(),
        e(),
        v("F-f", 4),
    ];
    let left = vec![
        e(),
        e(),
        v("A-null", 3),
        v("A-a", 4),
        v("B-a", 5),
        v("B-b", 6),
        n(7),
        e(),
        v("C-null", 9),
        v("C-c", 10),
        v("C-null", 11),
        n(12),
        e(),
        e(),
        v("D-d", 7),
        n(7),
        e(),
        e(),
        v("E-e", 15),
        n(14),
        e(),
        v("F-null", 4),
        v("F-f", 4),
    ];
    let outer = vec![
        e(),
        e(),
        v("A-null", 3),
        v("A-a", 4),
        v("B-a", 5),
        v("B-b", 6),
        v("null-b", 7),
        n(8),
        v("C-null", 9),
        v("C-c", 10),
        v("C-null", 11),
        n(12),
        e(),
        v("null-d", 7),
        v("D-d", 7),
        v("null-d", 7),
        n(3),
        v("null-e", 14),
        v("E-e", 15),
        v("null-e", 14),
        n(9),
        v("F-null", 4),
        v("F-f", 4),
    ];
    for (kind, results) in [("inner", inner), ("left", left), ("outer", outer)] {
        let builder = StreamsBuilder::new();
        let (l, r) = tables(&builder);
        table_out(match kind {
            "inner" => l.join(&r, |l, r| joined(Some(l), Some(r))),
            "left" => l.left_join(&r, |l, r| joined(Some(l), r)),
            _ => l.outer_join(&r, joined),
        });
        Harness::new(&builder)?.run(&with_results(integration_inputs(), results))?;
    }
    Ok(())
}

#[test]
fn kstream_ktable_joins_with_out_of_order_records_are_kafkas_integration_tests() -> Result {
    // StreamTableJoinIntegrationTest.testInner/testLeft.
    let v = |s, t| vec![(Some(s), t)];
    let e = Vec::new;
    let inner = vec![
        e(),
        e(),
        e(),
        e(),
        v("B-a", 5),
        e(),
        e(),
        e(),
        e(),
        e(),
        e(),
        e(),
        e(),
        e(),
        v("D-d", 6),
        e(),
        e(),
        e(),
        v("E-e", 15),
        e(),
        e(),
        e(),
        e(),
    ];
    let left = vec![
        e(),
        e(),
        v("A-null", 3),
        e(),
        v("B-a", 5),
        e(),
        e(),
        e(),
        v("C-null", 9),
        e(),
        e(),
        e(),
        e(),
        e(),
        v("D-d", 6),
        e(),
        e(),
        e(),
        v("E-e", 15),
        e(),
        e(),
        v("F-null", 4),
        e(),
    ];
    for (is_left, results) in [(false, inner), (true, left)] {
        let builder = StreamsBuilder::new();
        let (stream, table) = stream_and_table(&builder);
        to_out(if is_left {
            stream.left_join_table(&table, |l, r| joined(Some(l), r))
        } else {
            stream.join_table(&table, |l, r| joined(Some(l), Some(r)))
        });
        Harness::new(&builder)?.run(&with_results(integration_inputs(), results))?;
    }
    Ok(())
}

#[test]
fn kstream_kstream_joins_in_milliseconds_are_kafkas_integration_tests() -> Result {
    // StreamStreamJoinIntegrationTest.testInner/testLeft/testOuter on
    // `inputWithoutOutOfOrderData` (10 s difference, 24 h grace: no window closes, so left
    // and outer joins emit what the inner join does), without its two null-key rows.
    let rows = || with_results(guide_inputs(), stream_stream_first_rows());
    let windows = JoinWindows::of_time_difference_and_grace(
        Duration::from_secs(10),
        Duration::from_secs(86_400),
    );
    for kind in ["inner", "left", "outer"] {
        let builder = StreamsBuilder::new();
        let (l, r) = streams(&builder);
        to_out(match kind {
            "inner" => l.join(&r, |l, r| joined(Some(l), Some(r)), windows),
            "left" => l.left_join(&r, |l, r| joined(Some(l), r), windows),
            _ => l.outer_join(&r, joined, windows),
        });
        Harness::new(&builder)?.run(&rows())?;
    }
    Ok(())
}

#[test]
fn an_unmatched_record_waits_until_stream_time_passes_its_window_end_plus_grace() -> Result {
    use Side::{L, R};
    // Difference 15 s, grace 5 s: E at 40 s is held while stream time is at most 60 s (the
    // window is open at exactly end + grace), and comes out, at its own timestamp, with the
    // first record past it. A record from either side moves the join's stream time.
    let builder = StreamsBuilder::new();
    let (l, r) = streams(&builder);
    to_out(l.outer_join(&r, joined, guide_windows()));
    let h = Harness::new(&builder)?;
    h.run(&[
        (40_000, L, Some("E"), vec![]),
        (60_000, R, Some("x"), vec![]),
        (60_001, R, Some("y"), vec![(Some("E-null"), 40_000)]),
        // An out-of-order record whose window has already passed: emitted at once.
        (100, L, Some("old"), vec![(Some("old-null"), 100)]),
    ])?;
    // A record that finds a partner is never emitted unmatched, however late it joins.
    let builder = StreamsBuilder::new();
    let (l, r) = streams(&builder);
    to_out(l.left_join(&r, |l, r| joined(Some(l), r), guide_windows()));
    let h = Harness::new(&builder)?;
    h.run(&[
        (1_000, L, Some("A"), vec![]),
        (21_000, R, Some("late"), vec![]),
        (16_000, R, Some("a"), vec![(Some("A-a"), 16_000)]),
        (21_001, R, Some("b"), vec![]),
    ])
}

#[test]
fn joins_record_their_copartition_groups_and_the_check_names_the_topics() -> Result {
    let builder = StreamsBuilder::new();
    let (l, r) = streams(&builder);
    let t = builder.table(
        "table",
        Consumed::<i64, String>::with(Builtin, Builtin),
        Materialized::default(),
    );
    to_out(
        l.join(&r, |l, r| joined(Some(l), Some(r)), guide_windows())
            .join_table(&t, |v, t| format!("{v}/{t}")),
    );
    let other = builder.stream("other", Consumed::<i64, String>::with(Builtin, Builtin));
    let u = builder.table(
        "users",
        Consumed::<i64, String>::with(Builtin, Builtin),
        Materialized::default(),
    );
    to_out(other.join_table(&u, |a, b| format!("{a}{b}")));
    let topology = builder.build()?;
    assert_eq!(
        topology.copartition_groups(),
        vec![
            vec!["left".to_string(), "right".to_string(), "table".to_string()],
            vec!["other".to_string(), "users".to_string()],
        ]
    );
    topology.check_copartitioning(|_| Ok(4))?;
    let e = topology
        .check_copartitioning(|t| Ok(if t == "users" { 2 } else { 4 }))
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotCopartitioned { topics } if topics == &[("other".to_string(), 4), ("users".to_string(), 2)])
    );
    assert!(
        e.to_string()
            .contains("other (4 partitions), users (2 partitions)"),
        "{e}"
    );
    // An unknown topic is the callback's own error.
    let e = topology
        .check_copartitioning(|t| {
            Err(Error::UnknownTopic {
                topic: t.to_string(),
            })
        })
        .unwrap_err();
    assert!(matches!(e, Error::UnknownTopic { .. }));
    Ok(())
}

#[test]
fn joins_refuse_unrepartitioned_keys_and_unmaterialized_tables_at_build() -> Result {
    let builder = StreamsBuilder::new();
    let (l, r) = streams(&builder);
    let rekeyed = l.select_key(|k, _| k + 1);
    rekeyed.join(&r, |a, b| joined(Some(a), Some(b)), guide_windows());
    let e = builder
        .build()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("call repartition() on it before the join"),
        "{e}"
    );

    let builder = StreamsBuilder::new();
    let (l, _) = streams(&builder);
    let t = builder.table(
        "t",
        Consumed::<i64, String>::with(Builtin, Builtin),
        Materialized::default(),
    );
    l.join_table(&t.filter(|_, _| true), |a, b| joined(Some(a), Some(b)));
    let e = builder
        .build()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("not materialized"), "{e}");

    let one = StreamsBuilder::new();
    let two = StreamsBuilder::new();
    let (a, _) = streams(&one);
    let (_, b) = streams(&two);
    a.join(&b, |x, y| joined(Some(x), Some(y)), guide_windows());
    let e = one.build().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("two different builders"), "{e}");

    // A repartitioned stream joins.
    let builder = StreamsBuilder::new();
    let (l, r) = streams(&builder);
    let rekeyed = l
        .select_key(|k, _| *k)
        .repartition(embroker::streams::Repartitioned::with(Builtin, Builtin));
    to_out(rekeyed.join(&r, |a, b| joined(Some(a), Some(b)), guide_windows()));
    let topology = builder.build()?;
    assert_eq!(
        topology.copartition_groups(),
        vec![vec![
            "KSTREAM-REPARTITION-0000000005-repartition".to_string(),
            "right".to_string()
        ]]
    );
    Ok(())
}

/// One input record of the property test: left side or not, key, timestamp, value.
type Arrival = (bool, i64, i64, u32);

/// What a join of `arrivals` (timestamps non-decreasing from their gaps) must emit, by brute
/// force: every pair of one key within the windows, then for left/outer joins every record
/// that has no partner at all, with `None` for the missing side.
fn oracle(
    arrivals: &[(bool, i64, i64, u32)],
    before: i64,
    after: i64,
    left: bool,
    outer: bool,
) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let lefts: Vec<_> = arrivals.iter().filter(|a| a.0).collect();
    let rights: Vec<_> = arrivals.iter().filter(|a| !a.0).collect();
    let pairs =
        |l: &&Arrival, r: &&Arrival| l.1 == r.1 && r.2 >= l.2 - before && r.2 <= l.2 + after;
    for l in &lefts {
        for r in &rights {
            if pairs(l, r) {
                out.push((format!("{}-{}", l.3, r.3), l.2.max(r.2)));
            }
        }
    }
    if left || outer {
        for l in &lefts {
            if !rights.iter().any(|r| pairs(l, r)) {
                out.push((format!("{}-null", l.3), l.2));
            }
        }
    }
    if outer {
        for r in &rights {
            if !lefts.iter().any(|l| pairs(l, r)) {
                out.push((format!("null-{}", r.3), r.2));
            }
        }
    }
    out.sort();
    out
}

proptest::proptest! {
    #[test]
    fn stream_stream_joins_emit_exactly_the_pairs_and_the_unmatched(
        records in proptest::collection::vec((proptest::bool::ANY, 0i64..3, 0i64..6, 0u32..1000), 0..40),
        before in 0i64..8,
        after in 0i64..8,
        grace in 0i64..4,
        kind in 0u8..3,
    ) {
        let (left, outer) = (kind >= 1, kind == 2);
        // Timestamps from the gaps: in order, so every record is within the stores' retention.
        let mut ts = 0;
        let arrivals: Vec<Arrival> = records
            .iter()
            .map(|&(side, key, gap, v)| {
                ts += gap;
                (side, key, ts, v)
            })
            .collect();
        let builder = StreamsBuilder::new();
        let l = builder.stream("left", Consumed::<i64, String>::with(Builtin, Builtin));
        let r = builder.stream("right", Consumed::<i64, String>::with(Builtin, Builtin));
        let windows = JoinWindows::of_time_difference_and_grace(
            Duration::from_millis(before as u64),
            Duration::from_millis(grace as u64),
        )
        .after(Duration::from_millis(after as u64));
        let joined_stream = match kind {
            0 => l.join(&r, |a, b| format!("{a}-{b}"), windows),
            1 => l.left_join(&r, |a, b| joined(Some(a), b), windows),
            _ => l.outer_join(&r, joined, windows),
        };
        joined_stream.to("out", Produced::with(Builtin, Builtin));
        let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("prop"))?;
        let li = driver.create_input_topic::<i64, String>("left", Builtin, Builtin);
        let ri = driver.create_input_topic::<i64, String>("right", Builtin, Builtin);
        for (side, key, ts, v) in &arrivals {
            let input = if *side { &li } else { &ri };
            input.pipe_input_with_timestamp(*key, v.to_string(), *ts)?;
        }
        // A record of another key far enough ahead closes every window.
        li.pipe_input_with_timestamp(99, "end".to_string(), ts + before + after + grace + 1)?;
        let out = driver.create_output_topic::<i64, String>("out", Builtin, Builtin);
        let mut got: Vec<(String, i64)> = out
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.value, r.timestamp))
            .collect();
        got.sort();
        proptest::prop_assert_eq!(got, oracle(&arrivals, before, after, left, outer));
    }
}

/// Kafka's `KStreamKStreamOuterJoinTest` harness: left values strings, right values longs,
/// integer keys, `MockValueJoiner.TOSTRING_JOINER` (`left + "+" + right`, a missing side as
/// `null`).
struct OuterTest {
    _driver: TopologyTestDriver,
    left: TestInputTopic<i64, String>,
    right: TestInputTopic<i64, i64>,
    out: TestOutputTopic<i64, String>,
}

impl OuterTest {
    fn new(windows: JoinWindows) -> Result<OuterTest> {
        let builder = StreamsBuilder::new();
        let l = builder.stream("topic1", Consumed::<i64, String>::with(Builtin, Builtin));
        let r = builder.stream("topic2", Consumed::<i64, i64>::with(Builtin, Builtin));
        l.outer_join(
            &r,
            |a, b| {
                format!(
                    "{}+{}",
                    a.map_or("null".to_string(), String::clone),
                    b.map_or("null".to_string(), i64::to_string)
                )
            },
            windows,
        )
        .to("out", Produced::with(Builtin, Builtin));
        let topology = builder.build()?;
        assert_eq!(topology.copartition_groups(), [["topic1", "topic2"]]);
        let driver = TopologyTestDriver::new(topology, StreamsConfig::new("outer"))?;
        Ok(OuterTest {
            left: driver.create_input_topic("topic1", Builtin, Builtin),
            right: driver.create_input_topic("topic2", Builtin, Builtin),
            out: driver.create_output_topic("out", Builtin, Builtin),
            _driver: driver,
        })
    }

    fn l(&self, key: i64, value: &str, ts: i64) -> Result {
        self.left
            .pipe_input_with_timestamp(key, value.to_string(), ts)
    }

    fn r(&self, key: i64, value: i64, ts: i64) -> Result {
        self.right.pipe_input_with_timestamp(key, value, ts)
    }

    /// Kafka's `checkAndClearProcessResult`: (key, value, timestamp) in order.
    fn check(&self, want: &[(i64, &str, i64)]) -> Result {
        let got: Vec<(i64, String, i64)> = self
            .out
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect();
        let want: Vec<(i64, String, i64)> = want
            .iter()
            .map(|(k, v, t)| (*k, v.to_string(), *t))
            .collect();
        assert_eq!(got, want);
        Ok(())
    }
}

#[test]
fn outer_join_duplicates_are_kafkas() -> Result {
    // KStreamKStreamOuterJoinTest.testOuterJoinDuplicates.
    let t = OuterTest::new(JoinWindows::of_time_difference_and_grace(
        Duration::from_millis(100),
        Duration::from_millis(10),
    ))?;
    t.l(0, "A0", 0)?;
    t.l(0, "A0-0", 0)?;
    t.r(1, 11, 0)?;
    t.r(1, 12, 0)?;
    t.r(1, 10, 111)?;
    t.r(3, 100, 211)?;
    t.check(&[
        (1, "null+11", 0),
        (1, "null+12", 0),
        (0, "A0+null", 0),
        (0, "A0-0+null", 0),
    ])?;
    t.l(2, "A2", 200)?;
    t.l(2, "A2-0", 200)?;
    t.r(2, 13, 201)?;
    t.r(2, 14, 201)?;
    t.check(&[
        (2, "A2+13", 201),
        (2, "A2-0+13", 201),
        (2, "A2+14", 201),
        (2, "A2-0+14", 201),
    ])?;
    t.r(3, 100, 1500)?;
    t.check(&[(1, "null+10", 111), (3, "null+100", 211)])
}

#[test]
fn outer_join_emits_the_closed_unmatched_record_before_the_join_result() -> Result {
    // KStreamKStreamOuterJoinTest.testOrdering.
    let t = OuterTest::new(JoinWindows::of_time_difference_with_no_grace(
        Duration::from_millis(100),
    ))?;
    t.l(0, "A0", 0)?;
    t.l(1, "A1", 100)?;
    t.check(&[])?;
    t.r(1, 11, 110)?;
    t.check(&[(0, "A0+null", 0), (1, "A1+11", 110)])
}

#[test]
fn outer_join_waits_for_the_grace_period() -> Result {
    // KStreamKStreamOuterJoinTest.testGracePeriod.
    let t = OuterTest::new(JoinWindows::of_time_difference_and_grace(
        Duration::from_millis(100),
        Duration::from_millis(10),
    ))?;
    t.l(0, "A0", 0)?;
    t.r(1, 11, 0)?;
    t.check(&[])?;
    t.l(1, "A1", 101)?;
    t.r(0, 10, 101)?;
    t.check(&[])?;
    t.r(0, 100, 112)?;
    t.check(&[(1, "null+11", 0), (0, "A0+null", 0)])
}

#[test]
fn outer_join_with_an_asymmetric_window_closes_each_side_by_its_bound() -> Result {
    // KStreamKStreamOuterJoinTest.testEmitAllNonJoinedResultsForAsymmetricWindow.
    let t = OuterTest::new(
        JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(5))
            .after(Duration::from_millis(20)),
    )?;
    t.l(0, "A0", 29)?;
    t.l(1, "A1", 30)?;
    t.r(2, 12, 31)?;
    t.r(3, 13, 36)?;
    t.check(&[])?;
    t.r(4, 14, 37)?;
    t.check(&[(2, "null+12", 31)])?;
    t.r(5, 15, 50)?;
    t.check(&[(0, "A0+null", 29), (3, "null+13", 36), (4, "null+14", 37)])
}
