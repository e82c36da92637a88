//! The seed's example of the stream-table duality: two records, ('key1', 1) and ('key1', 2).
//! Read as a KStream, each record is an event, and summing them gives ('key1', 3). Read as a
//! KTable, each record is an update of the row 'key1', and the table holds ('key1', 2).
//!
//! `cargo run --example kstream_vs_ktable`

use embroker::streams::{
    Consumed, Grouped, Materialized, ReadOnlyKeyValueStore, StreamsBuilder, StreamsConfig,
    TopologyTestDriver,
};
use embroker::Builtin;

fn main() -> embroker::Result<()> {
    let builder = StreamsBuilder::new();
    // The same records on two topics: one read as a stream and summed, one read as a table.
    builder
        .stream("as-stream", Consumed::<String, i64>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .reduce(|sum, value| sum + value, Materialized::as_("stream-sum"));
    builder.table(
        "as-table",
        Consumed::<String, i64>::with(Builtin, Builtin),
        Materialized::as_("table"),
    );
    let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("duality"))?;
    for topic in ["as-stream", "as-table"] {
        let input = driver.create_input_topic::<String, i64>(topic, Builtin, Builtin);
        input.pipe_input("key1".to_string(), 1)?;
        input.pipe_input("key1".to_string(), 2)?;
    }

    let key = "key1".to_string();
    let summed = driver
        .get_key_value_store::<String, i64>("stream-sum")?
        .get(&key)?;
    let latest = driver
        .get_key_value_store::<String, i64>("table")?
        .get(&key)?;
    println!("KStream, summed: ('key1', {})", summed.unwrap_or_default());
    println!("KTable, latest:  ('key1', {})", latest.unwrap_or_default());
    assert_eq!(summed, Some(3));
    assert_eq!(latest, Some(2));
    Ok(())
}
