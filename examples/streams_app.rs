//! WordCount run by `KafkaStreams` on a broker: lines written to `streams-plaintext-input`
//! are counted per word by an application with two stream threads; the counts are read
//! back with an interactive query, by key order and by range. The count store is backed by
//! the compacted changelog `streams-wordcount-counts-store-changelog`, and the grouping goes
//! through `streams-wordcount-counts-store-repartition`, as Kafka names them.
//!
//! `cargo run --example streams_app`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use embroker::streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Produced, ReadOnlyKeyValueStore, StreamsBuilder,
    StreamsConfig,
};
use embroker::{Broker, Builtin, ProducerConfig, ProducerRecord, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = Broker::temporary()?;
    broker.create_topic(
        "streams-plaintext-input",
        TopicConfig::default().partitions(2),
    )?;
    broker.create_topic(
        "streams-wordcount-output",
        TopicConfig::default().partitions(2),
    )?;

    let builder = StreamsBuilder::new();
    builder
        .stream(
            "streams-plaintext-input",
            Consumed::<(), String>::with(Builtin, Builtin),
        )
        .flat_map_values(|line: String| {
            line.to_lowercase()
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone(), Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("counts-store"))
        .to_stream()
        .to("streams-wordcount-output", Produced::with(Builtin, Builtin));
    let topology = builder.build()?;
    println!("{topology}");

    let state = tempfile::tempdir()?;
    let config = StreamsConfig::new("streams-wordcount").with_properties(&[
        ("num.stream.threads", "2"),
        ("commit.interval.ms", "100"),
        ("state.dir", &state.path().to_string_lossy()),
    ])?;
    let streams = KafkaStreams::new(topology, config, &broker)?;
    streams.set_state_listener(|new, old| println!("state: {old:?} -> {new:?}"));
    streams.start()?;
    streams.wait_until_running(Duration::from_secs(30))?;

    let producer = broker.producer(ProducerConfig::default())?;
    let lines = [
        "all streams lead to kafka",
        "hello kafka streams",
        "join kafka summit",
    ];
    for (i, line) in lines.iter().enumerate() {
        producer
            .send(ProducerRecord::new("streams-plaintext-input", *line).partition(i as i32 % 2))?
            .wait()?;
    }
    producer.flush()?;

    // Interactive query: wait until every word is counted.
    let store = streams.store::<String, i64>("counts-store")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let counts: BTreeMap<String, i64> = loop {
        let counts: BTreeMap<String, i64> = store.all()?.into_iter().collect();
        if counts.values().sum::<i64>() == 11 || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for (word, count) in &counts {
        println!("{word}: {count}");
    }
    assert_eq!(counts.get("kafka"), Some(&3));
    assert_eq!(counts.get("streams"), Some(&2));
    println!(
        "kafka..streams by range: {:?}",
        store.range(&"kafka".to_string(), &"streams".to_string())?
    );
    streams.close()?;
    println!(
        "final state: {:?}; stats: {:?}",
        streams.state(),
        streams.stats()
    );
    Ok(())
}
