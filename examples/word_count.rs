//! Kafka Streams' canonical WordCount (`WordCountDemo`), run by the `TopologyTestDriver`:
//! lines from `streams-plaintext-input` are split into lowercase words
//! (`flat_map_values`), grouped by word (`group_by`, through a repartition topic as Kafka
//! does), counted into the store `counts-store` (`count`), and every updated count is written
//! to `streams-wordcount-output`.
//!
//! `cargo run --example word_count`

use std::collections::BTreeMap;

use embroker::streams::{
    Consumed, Grouped, Materialized, Produced, ReadOnlyKeyValueStore, StreamsBuilder,
    StreamsConfig, TopologyTestDriver,
};
use embroker::Builtin;

/// Java's `line.toLowerCase().split("\\W+")`, WordCountDemo's split: `\W` is
/// `[^a-zA-Z0-9_]`; a leading delimiter leaves an empty first word, trailing empty words are
/// dropped.
fn words(line: &str) -> Vec<String> {
    let lower = line.to_lowercase();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if lower.chars().all(is_word) {
        return vec![lower];
    }
    let mut pieces = lower.split(|c: char| !is_word(c));
    let first = pieces.next().unwrap_or("");
    let mut words: Vec<String> = std::iter::once(first)
        .chain(pieces.filter(|p| !p.is_empty()))
        .map(str::to_string)
        .collect();
    while words.last().is_some_and(String::is_empty) {
        words.pop();
    }
    words
}

fn main() -> embroker::Result<()> {
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "streams-plaintext-input",
            Consumed::<(), String>::with(Builtin, Builtin),
        )
        .flat_map_values(|line: String| words(&line))
        .group_by(|_, word| word.clone(), Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("counts-store"))
        .to_stream()
        .to("streams-wordcount-output", Produced::with(Builtin, Builtin));
    let topology = builder.build()?;
    print!("{topology}");

    let driver = TopologyTestDriver::new(topology, StreamsConfig::new("streams-wordcount"))?;
    let input =
        driver.create_input_topic::<(), String>("streams-plaintext-input", Builtin, Builtin);
    let output =
        driver.create_output_topic::<String, i64>("streams-wordcount-output", Builtin, Builtin);

    // The lines of Kafka's quickstart ("Run the WordCount demo application").
    input.pipe_values([
        "all streams lead to kafka".to_string(),
        "hello kafka streams".to_string(),
        "join kafka summit".to_string(),
    ])?;

    // Every update, as the console consumer of the quickstart shows them.
    println!("\nupdates on streams-wordcount-output:");
    let mut latest = BTreeMap::new();
    for (word, count) in output.read_key_values_to_list()? {
        println!("{word:<8} {count}");
        latest.insert(word, count);
    }

    println!("\ncounts-store:");
    let store = driver.get_key_value_store::<String, i64>("counts-store")?;
    for (word, count) in store.all()? {
        println!("{word:<8} {count}");
    }
    assert_eq!(store.get(&"kafka".to_string())?, Some(3));
    assert_eq!(store.get(&"streams".to_string())?, Some(2));
    assert_eq!(latest, store.all()?.into_iter().collect());
    Ok(())
}
