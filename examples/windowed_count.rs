//! A windowed count with late records: page views counted per user in tumbling one-minute
//! windows with 10 seconds of grace. A record that arrives late but within the grace period
//! still counts in its window; one that arrives after it is dropped and counted as dropped,
//! as Kafka Streams does. Each update of a window's count is written to `views-per-minute`
//! with Kafka's windowed-key bytes (`TimeWindowedSerde`).
//!
//! `cargo run --example windowed_count`

use std::time::Duration;

use embroker::streams::{
    Consumed, Grouped, Materialized, Produced, ReadOnlyWindowStore, StreamsBuilder, StreamsConfig,
    TimeWindowedSerde, TimeWindows, TopologyTestDriver, Windowed,
};
use embroker::Builtin;

fn main() -> embroker::Result<()> {
    let minute = Duration::from_secs(60);
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "page-views",
            Consumed::<String, String>::with(Builtin, Builtin),
        )
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by(TimeWindows::of_size_and_grace(
            minute,
            Duration::from_secs(10),
        ))
        .count(Materialized::as_("views-store"))
        .to_stream()
        .to(
            "views-per-minute",
            Produced::with(TimeWindowedSerde::new(Builtin, minute), Builtin),
        );
    let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("page-views"))?;
    let views = driver.create_input_topic::<String, String>("page-views", Builtin, Builtin);
    let counts = driver.create_output_topic::<Windowed<String>, Option<i64>>(
        "views-per-minute",
        TimeWindowedSerde::new(Builtin, minute),
        Builtin,
    );

    // (user, page, seconds): stream time is the largest timestamp seen so far.
    let input = [
        ("ann", "/home", 5),
        ("bob", "/home", 20),
        ("ann", "/docs", 59),
        ("ann", "/docs", 61), // the next window; stream time 61 s
        ("bob", "/blog", 55), // late, but window [0, 60) is open until stream time 70 s
        ("ann", "/home", 75), // stream time 75 s: window [0, 60) is closed
        ("bob", "/docs", 58), // too late: dropped
    ];
    for (user, page, seconds) in input {
        views.pipe_input_with_timestamp(user.to_string(), page.to_string(), seconds * 1000)?;
    }

    println!("updates on views-per-minute:");
    for record in counts.read_records_to_list()? {
        let w = record.key.window;
        println!(
            "{:<4} [{:>3} s, {:>3} s)  {}",
            record.key.key,
            w.start / 1000,
            w.end / 1000,
            record.value.unwrap_or_default()
        );
    }
    println!("dropped as too late: {}", driver.dropped_records());

    let store = driver.get_window_store::<String, i64>("views-store")?;
    assert_eq!(store.fetch(&"ann".to_string(), 0)?, Some(2));
    assert_eq!(store.fetch(&"ann".to_string(), 60_000)?, Some(2));
    assert_eq!(store.fetch(&"bob".to_string(), 0)?, Some(2));
    assert_eq!(driver.dropped_records(), 1);
    Ok(())
}
