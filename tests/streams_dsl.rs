//! Kafka Streams' DSL through the public API and the `TopologyTestDriver` (issue #21): the
//! seed's KStream-versus-KTable example, Kafka's own WordCount test (`WordCountDemoTest`,
//! record for record), each stateless operator, count/reduce/aggregate, KTable tombstones,
//! split and merge, repartitioning after a key change, a processor of the application's own,
//! the errors, and a proptest of `count` against a `HashMap`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embroker::streams::{
    Branched, Consumed, Grouped, InMemoryKeyValueStore, KeyValueStore, Materialized, Processor,
    ProcessorContext, Produced, ReadOnlyKeyValueStore, Record, StreamsBuilder, StreamsConfig,
    TopologyTestDriver, ValueAndTimestamp,
};
use embroker::{Builtin, Error};
use proptest::prelude::*;

type Result<T = ()> = std::result::Result<T, Error>;

fn s(text: &str) -> String {
    text.to_string()
}

fn config() -> StreamsConfig {
    StreamsConfig::new("test-app")
}

/// Java's `line.toLowerCase().split("\\W+")`, as Kafka's WordCountDemo splits lines: `\W` is
/// `[^a-zA-Z0-9_]`; a leading delimiter leaves a leading empty word, trailing empty words are
/// dropped, and a line with no delimiter is one word.
fn java_words(line: &str) -> Vec<String> {
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

/// Kafka's WordCountDemo topology.
fn word_count() -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "streams-plaintext-input",
            Consumed::<(), String>::with(Builtin, Builtin),
        )
        .flat_map_values(|line: String| java_words(&line))
        .group_by(|_, word| word.clone(), Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("counts-store"))
        .to_stream()
        .to("streams-wordcount-output", Produced::with(Builtin, Builtin));
    TopologyTestDriver::new(
        builder.build().unwrap(),
        StreamsConfig::new("streams-wordcount"),
    )
    .unwrap()
}

#[test]
fn java_split_matches_javas_rules() {
    assert_eq!(java_words("Hello"), ["hello"]);
    assert_eq!(java_words(""), [""]);
    assert_eq!(java_words(" a  b, "), ["", "a", "b"]);
    assert!(java_words(",,").is_empty());
}

#[test]
fn word_count_one_word() -> Result {
    // WordCountDemoTest.testOneWord
    let driver = word_count();
    let input =
        driver.create_input_topic::<(), String>("streams-plaintext-input", Builtin, Builtin);
    let output =
        driver.create_output_topic::<String, i64>("streams-wordcount-output", Builtin, Builtin);
    input.pipe_value(s("Hello"))?;
    assert_eq!(output.read_key_value()?, Some((s("hello"), 1)));
    assert!(output.is_empty());
    Ok(())
}

#[test]
fn word_count_list_of_words() -> Result {
    // WordCountDemoTest.testCountListOfWords
    let driver = word_count();
    let input =
        driver.create_input_topic::<(), String>("streams-plaintext-input", Builtin, Builtin);
    let output =
        driver.create_output_topic::<String, i64>("streams-wordcount-output", Builtin, Builtin);
    input.pipe_values([
        s("Apache Kafka Streams Example"),
        s("Using Kafka Streams Test Utils"),
        s("Reading and Writing Kafka Topic"),
    ])?;
    let expected: HashMap<String, i64> = [
        ("apache", 1),
        ("kafka", 3),
        ("streams", 2),
        ("example", 1),
        ("using", 1),
        ("test", 1),
        ("utils", 1),
        ("reading", 1),
        ("and", 1),
        ("writing", 1),
        ("topic", 1),
    ]
    .into_iter()
    .map(|(w, n)| (s(w), n))
    .collect();
    assert_eq!(output.read_key_values_to_map()?, expected);
    // The store agrees, and the repartition topic carried every word, keyed by itself.
    let store = driver.get_key_value_store::<String, i64>("counts-store")?;
    assert_eq!(store.get(&s("kafka"))?, Some(3));
    assert_eq!(store.approximate_num_entries()?, 11);
    let repartition = driver.create_output_topic::<String, String>(
        "streams-wordcount-counts-store-repartition",
        Builtin,
        Builtin,
    );
    let words = repartition.read_key_values_to_list()?;
    assert_eq!(words.len(), 14);
    assert!(words.iter().all(|(k, v)| k == v));
    Ok(())
}

#[test]
fn word_count_updates_record_at_a_time() -> Result {
    // With no cache, every update of a count goes downstream, in processing order.
    let driver = word_count();
    let input =
        driver.create_input_topic::<(), String>("streams-plaintext-input", Builtin, Builtin);
    let output =
        driver.create_output_topic::<String, i64>("streams-wordcount-output", Builtin, Builtin);
    input.pipe_value(s("all streams lead to kafka"))?;
    input.pipe_value(s("hello kafka streams"))?;
    let expected: Vec<(String, i64)> = [
        ("all", 1),
        ("streams", 1),
        ("lead", 1),
        ("to", 1),
        ("kafka", 1),
        ("hello", 1),
        ("kafka", 2),
        ("streams", 2),
    ]
    .into_iter()
    .map(|(w, n)| (s(w), n))
    .collect();
    assert_eq!(output.read_key_values_to_list()?, expected);
    Ok(())
}

#[test]
fn the_seeds_example_kstream_sums_3_ktable_keeps_2() -> Result {
    let builder = StreamsBuilder::new();
    builder
        .stream("stream-in", Consumed::<String, i64>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .reduce(|a, b| a + b, Materialized::as_("stream-sum"))
        .to_stream()
        .to("stream-out", Produced::with(Builtin, Builtin));
    builder
        .table(
            "table-in",
            Consumed::<String, i64>::with(Builtin, Builtin),
            Materialized::as_("table-store"),
        )
        .to_stream()
        .to("table-out", Produced::with(Builtin, Builtin));
    let topology = builder.build()?;
    assert!(topology.repartition_topics().is_empty());
    let driver = TopologyTestDriver::new(topology, config())?;
    for topic in ["stream-in", "table-in"] {
        let input = driver.create_input_topic::<String, i64>(topic, Builtin, Builtin);
        input.pipe_input(s("key1"), 1)?;
        input.pipe_input(s("key1"), 2)?;
    }
    let stream_out = driver.create_output_topic::<String, i64>("stream-out", Builtin, Builtin);
    let table_out = driver.create_output_topic::<String, i64>("table-out", Builtin, Builtin);
    assert_eq!(stream_out.read_key_values_to_map()?[&s("key1")], 3);
    assert_eq!(table_out.read_key_values_to_map()?[&s("key1")], 2);
    let sum = driver.get_key_value_store::<String, i64>("stream-sum")?;
    let table = driver.get_key_value_store::<String, i64>("table-store")?;
    assert_eq!(sum.get(&s("key1"))?, Some(3));
    assert_eq!(table.get(&s("key1"))?, Some(2));
    Ok(())
}

#[test]
fn stateless_operators() -> Result {
    let builder = StreamsBuilder::new();
    let input = builder.stream("in", Consumed::<String, i64>::with(Builtin, Builtin));
    let p = |_topic: &str| Produced::<String, i64>::with(Builtin, Builtin);
    input.filter(|_, v| v % 2 == 0).to("even", p("even"));
    input.filter_not(|_, v| v % 2 == 0).to("odd", p("odd"));
    input
        .map(|k, v| (format!("{k}{v}"), v * 100))
        .to("map", p("map"));
    input
        .map_values(|v| v + 1)
        .to("map-values", p("map-values"));
    input
        .select_key(|k, _| k.to_uppercase())
        .to("select-key", p("select-key"));
    input
        .flat_map(|k, v| (0..v).map(move |i| (format!("{k}-{i}"), i)))
        .to("flat-map", p("flat-map"));
    input
        .flat_map_values(|v| vec![v; usize::try_from(v).unwrap_or(0)])
        .to("flat-map-values", p("flat-map-values"));
    let peeked = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let counter = peeked.clone();
    let sink = seen.clone();
    input
        .peek(move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .foreach(move |k, v| sink.lock().unwrap().push((k.clone(), *v)));
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let topic = driver.create_input_topic::<String, i64>("in", Builtin, Builtin);
    topic.pipe_input_with_timestamp(s("a"), 1, 1000)?;
    topic.pipe_input_with_timestamp(s("b"), 2, 2000)?;
    let read = |name: &str| {
        driver
            .create_output_topic::<String, i64>(name, Builtin, Builtin)
            .read_key_values_to_list()
            .unwrap()
    };
    let kv = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
        pairs.iter().map(|&(k, v)| (s(k), v)).collect()
    };
    assert_eq!(read("even"), kv(&[("b", 2)]));
    assert_eq!(read("odd"), kv(&[("a", 1)]));
    assert_eq!(read("map"), kv(&[("a1", 100), ("b2", 200)]));
    assert_eq!(read("map-values"), kv(&[("a", 2), ("b", 3)]));
    assert_eq!(read("select-key"), kv(&[("A", 1), ("B", 2)]));
    assert_eq!(read("flat-map"), kv(&[("a-0", 0), ("b-0", 0), ("b-1", 1)]));
    assert_eq!(read("flat-map-values"), kv(&[("a", 1), ("b", 2), ("b", 2)]));
    assert_eq!(peeked.load(Ordering::Relaxed), 2);
    assert_eq!(*seen.lock().unwrap(), kv(&[("a", 1), ("b", 2)]));
    // Timestamps travel with the records.
    let out = driver.create_output_topic::<String, i64>("flat-map-values", Builtin, Builtin);
    assert!(out.is_empty());
    topic.pipe_input_with_timestamp(s("c"), 1, 7777)?;
    let record = out.read_record()?.unwrap();
    assert_eq!(
        (record.key, record.value, record.timestamp),
        (s("c"), 1, 7777)
    );
    Ok(())
}

#[test]
fn split_and_merge() -> Result {
    let builder = StreamsBuilder::new();
    let branches = builder
        .stream("in", Consumed::<String, i64>::with(Builtin, Builtin))
        .split_named("sign-")
        .branch(|_, v| *v < 0, Branched::as_("negative"))
        .branch(|_, v| *v == 0, Branched::default())
        .default_branch(Branched::default());
    let mut names: Vec<&String> = branches.keys().collect();
    names.sort();
    assert_eq!(names, ["sign-0", "sign-2", "sign-negative"]);
    let p = || Produced::<String, i64>::with(Builtin, Builtin);
    branches["sign-negative"].to("negative", p());
    branches["sign-2"].to("zero", p());
    branches["sign-0"].to("positive", p());
    branches["sign-negative"]
        .merge(&branches["sign-0"])
        .to("non-zero", p());
    // No default branch: records no predicate takes are dropped.
    let only_big = builder
        .stream("other", Consumed::<String, i64>::with(Builtin, Builtin))
        .split()
        .branch(|_, v| *v > 100, Branched::default())
        .no_default_branch();
    assert_eq!(only_big.len(), 1);
    let (name, big) = only_big.into_iter().next().unwrap();
    assert!(
        name.starts_with("KSTREAM-BRANCH-") && name.ends_with('1'),
        "{name}"
    );
    big.to("big", p());

    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let input = driver.create_input_topic::<String, i64>("in", Builtin, Builtin);
    input.pipe_key_values([(s("a"), -1), (s("b"), 0), (s("c"), 5), (s("d"), -7)])?;
    let other = driver.create_input_topic::<String, i64>("other", Builtin, Builtin);
    other.pipe_key_values([(s("x"), 1), (s("y"), 101)])?;
    let values = |name: &str| {
        driver
            .create_output_topic::<String, i64>(name, Builtin, Builtin)
            .read_values_to_list()
            .unwrap()
    };
    assert_eq!(values("negative"), [-1, -7]);
    assert_eq!(values("zero"), [0]);
    assert_eq!(values("positive"), [5]);
    assert_eq!(values("non-zero"), [-1, 5, -7]);
    assert_eq!(values("big"), [101]);
    Ok(())
}

#[test]
fn count_reduce_aggregate_emit_every_update_with_the_newest_timestamp() -> Result {
    let builder = StreamsBuilder::new();
    let input = builder.stream("in", Consumed::<String, i64>::with(Builtin, Builtin));
    let g = || Grouped::<String, i64>::with(Builtin, Builtin);
    input
        .group_by_key(g())
        .count(Materialized::as_("count"))
        .to_stream()
        .to("count", Produced::with(Builtin, Builtin));
    input
        .group_by_key(g())
        .reduce(i64::max, Materialized::as_("max"))
        .to_stream()
        .to("max", Produced::with(Builtin, Builtin));
    input
        .group_by_key(g())
        .aggregate(
            String::new,
            |_, v, agg| format!("{agg}{v},"),
            Materialized::default(),
        )
        .to_stream()
        .to("concat", Produced::with(Builtin, Builtin));
    let topology = builder.build()?;
    assert_eq!(topology.state_stores().len(), 3);
    assert!(topology
        .state_stores()
        .iter()
        .any(|s| s.starts_with("KSTREAM-AGGREGATE-STATE-STORE-")));
    let driver = TopologyTestDriver::new(topology, config())?;
    let topic = driver.create_input_topic::<String, i64>("in", Builtin, Builtin);
    topic.pipe_input_with_timestamp(s("k"), 3, 50)?;
    topic.pipe_input_with_timestamp(s("k"), 9, 20)?; // out of order: the aggregate keeps 50
    topic.pipe_input_with_timestamp(s("j"), 4, 60)?;
    let count = driver.create_output_topic::<String, i64>("count", Builtin, Builtin);
    let got: Vec<(String, i64, i64)> = count
        .read_records_to_list()?
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    assert_eq!(got, [(s("k"), 1, 50), (s("k"), 2, 50), (s("j"), 1, 60)]);
    let max = driver.create_output_topic::<String, i64>("max", Builtin, Builtin);
    assert_eq!(max.read_values_to_list()?, [3, 9, 4]);
    let concat = driver.create_output_topic::<String, String>("concat", Builtin, Builtin);
    assert_eq!(concat.read_values_to_list()?, ["3,", "3,9,", "4,"]);
    let stamped = driver.get_timestamped_key_value_store::<String, i64>("count")?;
    assert_eq!(stamped.get(&s("k"))?, Some(ValueAndTimestamp::make(2, 50)));
    let max_store = driver.get_key_value_store::<String, i64>("max")?;
    assert_eq!(max_store.all()?, [(s("j"), 4), (s("k"), 9)]);
    assert_eq!(max_store.range(&s("a"), &s("j"))?, [(s("j"), 4)]);
    Ok(())
}

#[test]
fn ktable_tombstones_delete_and_flow_downstream() -> Result {
    let builder = StreamsBuilder::new();
    let table = builder.table(
        "users",
        Consumed::<String, String>::with(Builtin, Builtin),
        Materialized::as_("users-store"),
    );
    assert_eq!(table.queryable_store_name(), Some("users-store"));
    table
        .to_stream()
        .to("changes", Produced::with(Builtin, Builtin));
    table
        .filter(|_, name| name.starts_with('A'))
        .map_values(|name| name.len() as i64)
        .to_stream()
        .to("a-lengths", Produced::with(Builtin, Builtin));
    table
        .filter_not(|_, name| name.starts_with('A'))
        .to_stream()
        .to("not-a", Produced::with(Builtin, Builtin));
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let users = driver.create_input_topic::<String, Option<String>>("users", Builtin, Builtin);
    users.pipe_input(s("1"), Some(s("Ann")))?;
    users.pipe_input(s("2"), Some(s("Bob")))?;
    users.pipe_input(s("1"), Some(s("Alexandra")))?;
    users.pipe_input(s("2"), None)?;
    users.pipe_input(s("3"), None)?; // a tombstone for a key never seen still goes downstream
    let store = driver.get_key_value_store::<String, String>("users-store")?;
    assert_eq!(store.all()?, [(s("1"), s("Alexandra"))]);
    let changes = driver.create_output_topic::<String, Option<String>>("changes", Builtin, Builtin);
    assert_eq!(
        changes.read_key_values_to_list()?,
        [
            (s("1"), Some(s("Ann"))),
            (s("2"), Some(s("Bob"))),
            (s("1"), Some(s("Alexandra"))),
            (s("2"), None),
            (s("3"), None),
        ]
    );
    let lengths = driver.create_output_topic::<String, Option<i64>>("a-lengths", Builtin, Builtin);
    assert_eq!(
        lengths.read_key_values_to_list()?,
        [
            (s("1"), Some(3)),
            (s("2"), None), // Bob fails the filter: a tombstone, as Kafka forwards
            (s("1"), Some(9)),
            (s("2"), None),
            (s("3"), None),
        ]
    );
    let not_a = driver.create_output_topic::<String, Option<String>>("not-a", Builtin, Builtin);
    assert_eq!(
        not_a.read_values_to_list()?,
        [None, Some(s("Bob")), None, None, None]
    );
    Ok(())
}

#[test]
fn repartitioning_follows_kafkas_rule() -> Result {
    let builder = StreamsBuilder::new();
    let input = builder.stream("in", Consumed::<String, String>::with(Builtin, Builtin));
    // No key change: no repartition topic.
    input
        .map_values(|v| v.len() as i64)
        .group_by_key(Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("by-key"));
    // A key change then group_by_key: repartitioned, named after the Grouped name.
    input
        .map(|k, v| (v, k))
        .group_by_key(Grouped::with(Builtin, Builtin).with_name("by-value"))
        .count(Materialized::as_("by-value-store"));
    // group_by always repartitions, named after the store.
    input
        .group_by(|_, v| v.len() as i64, Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("by-length"));
    let topology = builder.build()?;
    assert_eq!(
        topology.repartition_topics(),
        ["by-length-repartition", "by-value-repartition"]
    );
    assert_eq!(
        topology.source_topics(),
        ["by-length-repartition", "by-value-repartition", "in"]
    );
    let description = topology.to_string();
    assert!(
        description.contains("Sink: by-value-repartition-sink (topic: by-value-repartition)"),
        "{description}"
    );
    assert!(
        description.contains("Source: KSTREAM-SOURCE-0000000000 (topics: [in])"),
        "{description}"
    );
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new("rp"))?;
    let topic = driver.create_input_topic::<String, String>("in", Builtin, Builtin);
    topic.pipe_input(s("k1"), s("x"))?;
    topic.pipe_input(s("k2"), s("x"))?;
    topic.pipe_input(s("k1"), s("yy"))?;
    let by_value = driver.get_key_value_store::<String, i64>("by-value-store")?;
    assert_eq!(by_value.all()?, [(s("x"), 2), (s("yy"), 1)]);
    let by_length = driver.get_key_value_store::<i64, i64>("by-length")?;
    assert_eq!(by_length.all()?, [(1, 2), (2, 1)]);
    let by_key = driver.get_key_value_store::<String, i64>("by-key")?;
    assert_eq!(by_key.all()?, [(s("k1"), 2), (s("k2"), 1)]);
    assert!(driver
        .produced_topic_names()
        .contains("rp-by-value-repartition"));
    assert!(driver
        .produced_topic_names()
        .contains("rp-by-length-repartition"));
    Ok(())
}

#[test]
fn a_topic_written_and_read_is_piped_back() -> Result {
    let builder = StreamsBuilder::new();
    builder
        .stream("a", Consumed::<String, i64>::with(Builtin, Builtin))
        .map_values(|v| v + 1)
        .to("b", Produced::with(Builtin, Builtin));
    builder
        .stream("b", Consumed::<String, i64>::with(Builtin, Builtin))
        .map_values(|v| v * 2)
        .to("c", Produced::with(Builtin, Builtin));
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    driver
        .create_input_topic::<String, i64>("a", Builtin, Builtin)
        .pipe_input(s("k"), 1)?;
    let c = driver.create_output_topic::<String, i64>("c", Builtin, Builtin);
    assert_eq!(c.read_value()?, Some(4));
    let b = driver.create_output_topic::<String, i64>("b", Builtin, Builtin);
    assert_eq!(b.queue_size(), 1);
    Ok(())
}

/// Counts records per key in its own store and tags each with where it was read and the
/// wall clock.
struct Tagger;

impl Processor<String, i64, String, String> for Tagger {
    fn process(
        &mut self,
        record: Record<String, i64>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result {
        let store = ctx.state_store::<InMemoryKeyValueStore<String, i64>>("seen")?;
        let n = store.get(&record.key)?.unwrap_or(0) + 1;
        store.put(record.key.clone(), n)?;
        let meta = ctx.record_metadata().cloned().unwrap();
        let tag = format!(
            "{}@{}-{}:{} n={n} wall={} stream={}",
            record.value,
            meta.topic,
            meta.partition,
            meta.offset,
            ctx.current_system_time_ms(),
            ctx.current_stream_time_ms()
        );
        ctx.forward(record.with_value(tag))
    }
}

#[test]
fn a_processor_of_the_applications_own() -> Result {
    let builder = StreamsBuilder::new();
    builder.add_state_store::<String, i64>("seen");
    builder
        .stream("in", Consumed::<String, i64>::with(Builtin, Builtin))
        .process(|| Tagger, &["seen"])
        .to("out", Produced::with(Builtin, Builtin));
    let driver = TopologyTestDriver::with_wall_clock(builder.build()?, config(), 1_000)?;
    let input = driver.create_input_topic::<String, i64>("in", Builtin, Builtin);
    let out = driver.create_output_topic::<String, String>("out", Builtin, Builtin);
    input.pipe_input_with_timestamp(s("k"), 7, 500)?;
    driver.advance_wall_clock_time(Duration::from_millis(250))?;
    input.pipe_input_with_timestamp(s("k"), 8, 400)?;
    assert_eq!(
        out.read_values_to_list()?,
        [
            "7@in-0:0 n=1 wall=1000 stream=500",
            "8@in-0:1 n=2 wall=1250 stream=500"
        ]
    );
    let seen = driver.get_key_value_store::<String, i64>("seen")?;
    assert_eq!(seen.get(&s("k"))?, Some(2));
    Ok(())
}

/// Uses a store it was not connected to.
struct Sneaky;

impl Processor<String, i64, String, i64> for Sneaky {
    fn process(
        &mut self,
        _: Record<String, i64>,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result {
        ctx.state_store::<InMemoryKeyValueStore<String, i64>>("seen")?;
        Ok(())
    }
}

#[test]
fn errors_name_the_topic_store_or_processor() -> Result {
    // A topic read by two sources.
    let builder = StreamsBuilder::new();
    builder.stream("t", Consumed::<String, String>::with(Builtin, Builtin));
    builder.stream("t", Consumed::<String, String>::with(Builtin, Builtin));
    let e = builder.build().err().unwrap();
    assert!(matches!(e, Error::InvalidTopology { .. }), "{e}");
    assert!(e.to_string().contains("\"t\""), "{e}");

    // A store name used twice.
    let builder = StreamsBuilder::new();
    let input = builder.stream("t", Consumed::<String, i64>::with(Builtin, Builtin));
    input
        .group_by_key(Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("c"));
    input
        .group_by_key(Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("c"));
    let e = builder.build().err().unwrap();
    assert!(e.to_string().contains("\"c\" is already added"), "{e}");

    // Streams of two builders merged.
    let (b1, b2) = (StreamsBuilder::new(), StreamsBuilder::new());
    let x = b1.stream("x", Consumed::<String, i64>::with(Builtin, Builtin));
    let y = b2.stream("y", Consumed::<String, i64>::with(Builtin, Builtin));
    x.merge(&y);
    assert!(b1
        .build()
        .err()
        .unwrap()
        .to_string()
        .contains("two different builders"));

    // A store the processor is not connected to.
    let builder = StreamsBuilder::new();
    builder.add_state_store::<String, i64>("seen");
    builder
        .stream("in", Consumed::<String, i64>::with(Builtin, Builtin))
        .process(|| Sneaky, &[]);
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let e = driver
        .create_input_topic::<String, i64>("in", Builtin, Builtin)
        .pipe_input(s("k"), 1)
        .unwrap_err();
    assert!(
        e.to_string().contains("\"seen\"") && e.to_string().contains("not connected"),
        "{e}"
    );
    // The driver goes on after the error: the processor was put back.
    let e2 = driver
        .create_input_topic::<String, i64>("in", Builtin, Builtin)
        .pipe_input(s("k"), 2)
        .unwrap_err();
    assert!(matches!(e2, Error::StateStore { .. }), "{e2}");

    // A topic no source reads; a null key into a String stream; a bad store lookup.
    let builder = StreamsBuilder::new();
    builder
        .stream("words", Consumed::<String, String>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("n"));
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let e = driver
        .create_input_topic::<String, String>("nope", Builtin, Builtin)
        .pipe_input(s("k"), s("v"))
        .unwrap_err();
    assert!(
        matches!(&e, Error::UnknownTopic { topic } if topic == "nope"),
        "{e}"
    );
    let e = driver
        .create_input_topic::<String, String>("words", Builtin, Builtin)
        .pipe_value(s("no key"))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Deserialization { topic, offset: 0, .. } if topic == "words"),
        "{e}"
    );
    assert!(e.to_string().contains("null where a String"), "{e}");
    let e = driver
        .get_key_value_store::<String, i64>("missing")
        .err()
        .unwrap();
    assert!(e.to_string().contains("\"missing\""), "{e}");
    let e = driver.get_key_value_store::<i64, i64>("n").err().unwrap();
    assert!(matches!(e, Error::StateStore { .. }), "{e}");
    // A bad application.id is refused before anything runs.
    let e = TopologyTestDriver::new(StreamsBuilder::new().build()?, StreamsConfig::new("a b"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("application.id"), "{e}");
    Ok(())
}

#[test]
fn input_topic_clock_advances() -> Result {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::<String, i64>::with(Builtin, Builtin))
        .to("out", Produced::with(Builtin, Builtin));
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let input = driver.create_input_topic::<String, i64>("in", Builtin, Builtin);
    let out = driver.create_output_topic::<String, i64>("out", Builtin, Builtin);
    input.pipe_input(s("a"), 1)?;
    input.advance_time(Duration::from_secs(2));
    input.pipe_input(s("b"), 2)?;
    let stamps: Vec<i64> = out
        .read_records_to_list()?
        .iter()
        .map(|r| r.timestamp)
        .collect();
    assert_eq!(stamps, [0, 2000]);
    assert_eq!(out.read_record()?, None);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `count` over any input equals a HashMap count, in the store and in the last update
    /// per key on the output topic.
    #[test]
    fn count_equals_a_hashmap_count(keys in proptest::collection::vec(0u8..20, 0..300)) {
        let builder = StreamsBuilder::new();
        builder
            .stream("in", Consumed::<String, String>::with(Builtin, Builtin))
            .group_by(|_, v| v.clone(), Grouped::with(Builtin, Builtin))
            .count(Materialized::as_("counts"))
            .to_stream()
            .to("out", Produced::with(Builtin, Builtin));
        let driver = TopologyTestDriver::new(builder.build().unwrap(), config()).unwrap();
        let input = driver.create_input_topic::<String, String>("in", Builtin, Builtin);
        let mut model: HashMap<String, i64> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            let word = format!("w{k}");
            *model.entry(word.clone()).or_default() += 1;
            input.pipe_input(format!("line{i}"), word).unwrap();
        }
        let out = driver.create_output_topic::<String, i64>("out", Builtin, Builtin);
        prop_assert_eq!(out.queue_size(), keys.len());
        prop_assert_eq!(out.read_key_values_to_map().unwrap(), model.clone());
        let store = driver.get_key_value_store::<String, i64>("counts").unwrap();
        let stored: HashMap<String, i64> = store.all().unwrap().into_iter().collect();
        prop_assert_eq!(stored, model);
    }
}

/// Kafka's `WordCountProcessorDemo`: counts words into its store and, on a stream-time
/// punctuation every second, forwards every count; a wall-clock punctuation every 100 ms
/// forwards a tick, and cancels itself after three.
struct WordCountProcessor {
    ticks: i64,
    ticker: Option<embroker::streams::ScheduleId>,
}

impl Processor<(), String, String, String> for WordCountProcessor {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result {
        use embroker::streams::PunctuationType;
        ctx.schedule(Duration::from_secs(1), PunctuationType::StreamTime)?;
        self.ticker =
            Some(ctx.schedule(Duration::from_millis(100), PunctuationType::WallClockTime)?);
        assert!(ctx
            .schedule(Duration::ZERO, PunctuationType::StreamTime)
            .is_err());
        Ok(())
    }

    fn process(
        &mut self,
        record: Record<(), String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result {
        let store = ctx.state_store::<InMemoryKeyValueStore<String, i64>>("words")?;
        for word in record.value.split_whitespace() {
            let n = store.get(&word.to_string())?.unwrap_or(0);
            store.put(word.to_string(), n + 1)?;
        }
        Ok(())
    }

    fn punctuate(
        &mut self,
        schedule: embroker::streams::ScheduleId,
        timestamp: i64,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result {
        assert!(ctx.record_metadata().is_none());
        if Some(schedule) == self.ticker {
            self.ticks += 1;
            if self.ticks == 3 {
                ctx.cancel(schedule);
            }
            return ctx.forward(Record::new(s("tick"), format!("{timestamp}"), timestamp));
        }
        let counts = ctx
            .state_store::<InMemoryKeyValueStore<String, i64>>("words")?
            .all()?;
        for (word, n) in counts {
            ctx.forward(Record::new(word, format!("{n}@{timestamp}"), timestamp))?;
        }
        Ok(())
    }
}

#[test]
fn punctuators_on_stream_time_and_wall_clock_time() -> Result {
    let builder = StreamsBuilder::new();
    builder.add_state_store::<String, i64>("words");
    builder
        .stream("lines", Consumed::<(), String>::with(Builtin, Builtin))
        .process(
            || WordCountProcessor {
                ticks: 0,
                ticker: None,
            },
            &["words"],
        )
        .to("out", Produced::with(Builtin, Builtin));
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let lines = driver.create_input_topic::<(), String>("lines", Builtin, Builtin);
    let out = driver.create_output_topic::<String, String>("out", Builtin, Builtin);
    let read = || -> Vec<(String, String)> { out.read_key_values_to_list().unwrap() };
    let kv = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|&(k, v)| (s(k), s(v))).collect()
    };

    // Stream time: aligned to 0, so the first record makes the first punctuation due.
    lines.pipe_input_with_timestamp((), s("a b"), 0)?;
    assert_eq!(read(), kv(&[("a", "1@0"), ("b", "1@0")]));
    lines.pipe_input_with_timestamp((), s("a"), 500)?;
    assert_eq!(read(), kv(&[]));
    // A jump past two intervals punctuates once, at the stream time, and skips to 3000.
    lines.pipe_input_with_timestamp((), s("c"), 2500)?;
    assert_eq!(
        read(),
        kv(&[("a", "2@2500"), ("b", "1@2500"), ("c", "1@2500")])
    );
    lines.pipe_input_with_timestamp((), s("c"), 2999)?;
    lines.pipe_input_with_timestamp((), s("c"), 1000)?; // late: stream time stays 2999
    assert_eq!(read(), kv(&[]));
    lines.pipe_input_with_timestamp((), s("d"), 3000)?;
    assert_eq!(
        read(),
        kv(&[
            ("a", "2@3000"),
            ("b", "1@3000"),
            ("c", "3@3000"),
            ("d", "1@3000")
        ])
    );

    // Wall-clock time: first due 100 ms after scheduling (the clock started at 0).
    driver.advance_wall_clock_time(Duration::from_millis(50))?;
    assert_eq!(read(), kv(&[]));
    driver.advance_wall_clock_time(Duration::from_millis(50))?;
    assert_eq!(read(), kv(&[("tick", "100")]));
    driver.advance_wall_clock_time(Duration::from_millis(1000))?; // once, not ten times
    assert_eq!(read(), kv(&[("tick", "1100")]));
    driver.advance_wall_clock_time(Duration::from_millis(100))?;
    assert_eq!(read(), kv(&[("tick", "1200")])); // the third: it cancels itself
    driver.advance_wall_clock_time(Duration::from_secs(10))?;
    assert_eq!(read(), kv(&[]));
    Ok(())
}

#[test]
fn tumbling_windows_count_at_boundaries_with_grace_and_drop_late_records() -> Result {
    use embroker::streams::{ReadOnlyWindowStore, TimeWindowedSerde, TimeWindows, Windowed};
    let size = Duration::from_millis(100);
    let builder = StreamsBuilder::new();
    builder
        .stream("events", Consumed::<String, String>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by(TimeWindows::of_size_and_grace(
            size,
            Duration::from_millis(50),
        ))
        .count(Materialized::as_("per-window"))
        .to_stream()
        .to(
            "counts",
            Produced::with(TimeWindowedSerde::new(Builtin, size), Builtin),
        );
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let events = driver.create_input_topic::<String, String>("events", Builtin, Builtin);
    let counts = driver.create_output_topic::<Windowed<String>, Option<i64>>(
        "counts",
        TimeWindowedSerde::new(Builtin, size),
        Builtin,
    );
    let pipe = |ts: i64| events.pipe_input_with_timestamp(s("k"), s("e"), ts);
    pipe(0)?; // [0, 100)
    pipe(99)?; // [0, 100): the last millisecond
    pipe(100)?; // [100, 200): a window's end belongs to the next one
    pipe(149)?; // stream time 149: [0, 100) closes at 100 + 50 grace
    pipe(50)?; // late but within grace: counted in [0, 100)
    pipe(150)?; // stream time 150: [0, 100) is closed now
    pipe(60)?; // too late: dropped
    assert_eq!(driver.dropped_records(), 1);
    let got: Vec<(i64, i64, Option<i64>, i64)> = counts
        .read_records_to_list()?
        .into_iter()
        .map(|r| (r.key.window.start, r.key.window.end, r.value, r.timestamp))
        .collect();
    assert_eq!(
        got,
        [
            (0, 100, Some(1), 0),
            (0, 100, Some(2), 99),
            (100, 200, Some(1), 100),
            (100, 200, Some(2), 149),
            (0, 100, Some(3), 99), // the newest timestamp of the window's records
            (100, 200, Some(3), 150),
        ]
    );
    let store = driver.get_window_store::<String, i64>("per-window")?;
    assert_eq!(store.fetch(&s("k"), 0)?, Some(3));
    assert_eq!(store.fetch_range(&s("k"), 0, 1000)?, [(0, 3), (100, 3)]);
    // Retention is size + grace (150 ms): once stream time reaches 300, window 0 is gone
    // (the store's own clock moves with the window starts it is given).
    pipe(300)?;
    assert_eq!(store.fetch(&s("k"), 0)?, None);
    assert_eq!(store.fetch(&s("k"), 300)?, Some(1));
    Ok(())
}

#[test]
fn hopping_windows_put_a_record_in_every_window_that_contains_it() -> Result {
    use embroker::streams::{ReadOnlyWindowStore, TimeWindows};
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::<String, i64>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by(
            TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
                .advance_by(Duration::from_millis(5)),
        )
        .reduce(|a, b| a + b, Materialized::as_("sums"));
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let input = driver.create_input_topic::<String, i64>("in", Builtin, Builtin);
    input.pipe_input_with_timestamp(s("k"), 1, 3)?; // [0, 10)
    input.pipe_input_with_timestamp(s("k"), 10, 7)?; // [0, 10) and [5, 15)
    input.pipe_input_with_timestamp(s("k"), 100, 12)?; // [5, 15) and [10, 20)
    let store = driver.get_window_store::<String, i64>("sums")?;
    // Retention is size + grace = 10 ms: window [0, 10) left the store when the store saw
    // window 10 (Kafka's in-memory window store: a start <= observed - retention expires).
    assert_eq!(store.fetch_range(&s("k"), 0, 20)?, [(5, 110), (10, 100)]);
    let all: Vec<(i64, i64)> = store
        .all()?
        .into_iter()
        .map(|(w, v)| (w.window.end, v))
        .collect();
    assert_eq!(all, [(15, 110), (20, 100)]);
    // No grace: at stream time 12, window [0, 10) is closed, [5, 15) is open.
    input.pipe_input_with_timestamp(s("k"), 1000, 9)?;
    assert_eq!(store.fetch(&s("k"), 0)?, None);
    assert_eq!(store.fetch(&s("k"), 5)?, Some(1110));
    assert_eq!(driver.dropped_records(), 1);
    // Before window 10 exists, window 0 holds both records of its 10 ms.
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::<String, i64>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by(
            TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
                .advance_by(Duration::from_millis(5)),
        )
        .reduce(|a, b| a + b, Materialized::as_("sums"));
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let input = driver.create_input_topic::<String, i64>("in", Builtin, Builtin);
    input.pipe_input_with_timestamp(s("k"), 1, 3)?;
    input.pipe_input_with_timestamp(s("k"), 10, 7)?;
    let store = driver.get_window_store::<String, i64>("sums")?;
    assert_eq!(store.fetch_range(&s("k"), 0, 20)?, [(0, 11), (5, 10)]);
    // Invalid windows are a topology error.
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::<String, i64>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by(
            TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
                .advance_by(Duration::from_millis(11)),
        )
        .count(Materialized::default());
    let e = builder.build().err().unwrap();
    assert!(e.to_string().contains("advance (11 ms)"), "{e}");
    Ok(())
}

#[test]
fn suppress_until_window_closes_emits_each_windows_final_result_once() -> Result {
    use embroker::streams::{Suppressed, TimeWindowedSerde, TimeWindows, Windowed};
    let size = Duration::from_millis(100);
    let builder = StreamsBuilder::new();
    builder
        .stream("events", Consumed::<String, String>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by(TimeWindows::of_size_and_grace(
            size,
            Duration::from_millis(50),
        ))
        .count(Materialized::as_("per-window"))
        .map_values(|n| n * 10) // still a windowed table: the grace travels with it
        .suppress(Suppressed::until_window_closes())
        .to_stream()
        .to(
            "final",
            Produced::with(TimeWindowedSerde::new(Builtin, size), Builtin),
        );
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let events = driver.create_input_topic::<String, String>("events", Builtin, Builtin);
    let out = driver.create_output_topic::<Windowed<String>, Option<i64>>(
        "final",
        TimeWindowedSerde::new(Builtin, size),
        Builtin,
    );
    let pipe = |key: &str, ts: i64| events.pipe_input_with_timestamp(s(key), s("e"), ts);
    let read = || -> Vec<(String, i64, Option<i64>, i64)> {
        out.read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| (r.key.key, r.key.window.start, r.value, r.timestamp))
            .collect()
    };
    pipe("a", 10)?;
    pipe("b", 20)?;
    pipe("a", 90)?;
    pipe("a", 120)?;
    pipe("b", 60)?; // late, within grace
    pipe("a", 149)?;
    assert_eq!(read(), []); // window [0, 100) closes at stream time 150
    pipe("c", 150)?;
    // Both keys' final counts of [0, 100), in key order, with their newest timestamps.
    assert_eq!(
        read(),
        [(s("a"), 0, Some(20), 90), (s("b"), 0, Some(20), 60)]
    );
    pipe("a", 30)?; // past grace: dropped, nothing more for [0, 100)
    assert_eq!(driver.dropped_records(), 1);
    pipe("z", 250)?; // closes [100, 200)
    assert_eq!(
        read(),
        [(s("a"), 100, Some(20), 149), (s("c"), 100, Some(10), 150)]
    );
    assert!(out.is_empty());

    // A table that is not a windowed aggregation's cannot be suppressed until its windows
    // close: there are no windows to close.
    let builder = StreamsBuilder::new();
    builder
        .table(
            "windowed-in",
            Consumed::<Windowed<String>, i64>::with(TimeWindowedSerde::new(Builtin, size), Builtin),
            Materialized::default(),
        )
        .suppress(Suppressed::until_window_closes());
    let e = builder.build().err().unwrap();
    assert!(
        e.to_string()
            .contains("needs a table made by a windowed aggregation"),
        "{e}"
    );
    Ok(())
}

#[test]
fn ktable_group_by_aggregates_follow_rows_as_they_change() -> Result {
    let builder = StreamsBuilder::new();
    // user -> (region, amount) as "region:amount"; totals per region.
    let accounts = builder.table(
        "accounts",
        Consumed::<String, String>::with(Builtin, Builtin),
        Materialized::default(),
    );
    let by_region = |_: &String, v: &String| {
        let (region, amount) = v.split_once(':').unwrap();
        (region.to_string(), amount.parse::<i64>().unwrap())
    };
    accounts
        .group_by(by_region, Grouped::with(Builtin, Builtin))
        .aggregate(
            || 0i64,
            |_, amount, total| total + amount,
            |_, amount, total| total - amount,
            Materialized::as_("totals"),
        )
        .to_stream()
        .to("totals", Produced::with(Builtin, Builtin));
    accounts
        .group_by(
            by_region,
            Grouped::with(Builtin, Builtin).with_name("counting"),
        )
        .count(Materialized::as_("accounts-per-region"));
    accounts
        .group_by(by_region, Grouped::with(Builtin, Builtin))
        .reduce(|a, b| a.max(b), |a, _| a, Materialized::as_("largest"));
    let topology = builder.build()?;
    assert!(topology
        .repartition_topics()
        .contains(&s("counting-repartition")));
    assert!(topology
        .repartition_topics()
        .contains(&s("totals-repartition")));
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new("bank"))?;
    let input = driver.create_input_topic::<String, Option<String>>("accounts", Builtin, Builtin);
    let totals = driver.create_output_topic::<String, Option<i64>>("totals", Builtin, Builtin);
    input.pipe_input(s("ann"), Some(s("eu:10")))?;
    input.pipe_input(s("bob"), Some(s("eu:5")))?;
    input.pipe_input(s("ann"), Some(s("eu:30")))?; // same group: one record, old and new
    input.pipe_input(s("bob"), Some(s("us:5")))?; // moves: leaves eu, joins us
    input.pipe_input(s("ann"), None)?; // deleted: leaves eu
    assert_eq!(
        totals.read_key_values_to_list()?,
        [
            (s("eu"), Some(10)),
            (s("eu"), Some(15)),
            (s("eu"), Some(35)), // 15 - 10 + 30 in one step
            (s("eu"), Some(30)), // bob's 5 subtracted
            (s("us"), Some(5)),  // bob's 5 added
            (s("eu"), Some(0)),  // ann's 30 subtracted
        ]
    );
    let counts = driver.get_key_value_store::<String, i64>("accounts-per-region")?;
    assert_eq!(counts.all()?, [(s("eu"), 0), (s("us"), 1)]);
    let largest = driver.get_key_value_store::<String, i64>("largest")?;
    assert_eq!(largest.get(&s("us"))?, Some(5));
    // The repartition topic carries Kafka's change layout: ann's same-group update is one
    // record with both values (flag 2), bob's move two (flag 0, then flag 1).
    let raw =
        driver.create_output_topic::<String, Vec<u8>>("bank-totals-repartition", Builtin, Builtin);
    let flags: Vec<u8> = raw
        .read_values_to_list()?
        .iter()
        .map(|v| *v.last().unwrap())
        .collect();
    assert_eq!(flags, [1, 1, 2, 0, 1, 0]);
    Ok(())
}

#[test]
fn the_processor_api_builds_a_topology_by_name() -> Result {
    use embroker::streams::Topology;
    // Kafka's WordCountProcessorDemo, wired by hand.
    let mut topology = Topology::new();
    topology
        .add_source(
            "Source",
            "lines",
            Consumed::<(), String>::with(Builtin, Builtin),
        )?
        .add_processor(
            "Process",
            || WordCountProcessor {
                ticks: 0,
                ticker: None,
            },
            &["Source"],
        )?
        .add_state_store::<String, i64>("words", &["Process"])?
        .add_sink(
            "Sink",
            "out",
            Produced::<String, String>::with(Builtin, Builtin),
            &["Process"],
        )?;
    assert_eq!(topology.source_topics(), ["lines"]);
    assert_eq!(topology.sink_topics(), ["out"]);
    assert_eq!(topology.state_stores(), ["words"]);
    let driver = TopologyTestDriver::new(topology, config())?;
    let lines = driver.create_input_topic::<(), String>("lines", Builtin, Builtin);
    let out = driver.create_output_topic::<String, String>("out", Builtin, Builtin);
    lines.pipe_input_with_timestamp((), s("hello world hello"), 0)?;
    assert_eq!(
        out.read_key_values_to_list()?,
        [(s("hello"), s("2@0")), (s("world"), s("1@0"))]
    );

    // What is checked when adding.
    let mut t = Topology::new();
    t.add_source("S", "in", Consumed::<String, i64>::with(Builtin, Builtin))?;
    let e = t.add_processor("P", || Tagger, &["nope"]).err().unwrap();
    assert!(
        e.to_string()
            .contains("\"P\" refers to \"nope\", which is not added"),
        "{e}"
    );
    let e = t
        .add_source("S2", "in", Consumed::<String, i64>::with(Builtin, Builtin))
        .err()
        .unwrap();
    assert!(e.to_string().contains("already been registered"), "{e}");
    t.add_sink(
        "K",
        "out",
        Produced::<String, i64>::with(Builtin, Builtin),
        &["S"],
    )?;
    let e = t
        .add_state_store::<String, i64>("st", &["K"])
        .err()
        .unwrap();
    assert!(e.to_string().contains("K is not a processor"), "{e}");
    let e = t
        .connect_processor_and_state_store("missing", &["S"])
        .err()
        .unwrap();
    assert!(matches!(e, Error::StateStore { .. }), "{e}");

    // What is checked when records flow: Tagger takes i64 values, the source makes Strings.
    let mut t = Topology::new();
    t.add_source(
        "S",
        "in",
        Consumed::<String, String>::with(Builtin, Builtin),
    )?
    .add_processor("Tagger", || Tagger, &["S"])?;
    let driver = TopologyTestDriver::new(t, config())?;
    let e = driver
        .create_input_topic::<String, String>("in", Builtin, Builtin)
        .pipe_input(s("k"), s("v"))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidTopology { .. }), "{e}");
    assert!(e.to_string().contains("processor Tagger"), "{e}");
    Ok(())
}

#[test]
fn an_output_record_that_does_not_deserialize_stays_and_is_named() -> Result {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::<String, i64>::with(Builtin, Builtin))
        .to("out", Produced::with(Builtin, Builtin));
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let input = driver.create_input_topic::<String, i64>("in", Builtin, Builtin);
    input.pipe_input(s("a"), 1)?;
    input.pipe_input(s("b"), 2)?;
    let right = driver.create_output_topic::<String, i64>("out", Builtin, Builtin);
    assert_eq!(right.read_key_value()?, Some((s("a"), 1)));
    // Read as i32: the 8-byte value is refused, naming topic and offset; it stays first.
    let wrong = driver.create_output_topic::<String, i32>("out", Builtin, Builtin);
    let e = wrong.read_value().unwrap_err();
    assert!(
        matches!(&e, Error::Deserialization { topic, offset: 1, .. } if topic == "out"),
        "{e}"
    );
    assert_eq!(right.read_key_value()?, Some((s("b"), 2)));
    assert!(wrong.is_empty());
    Ok(())
}

#[test]
fn a_timestamp_extractor_sets_event_time() -> Result {
    let builder = StreamsBuilder::new();
    // Values "<event time>:<payload>"; a bad time falls back to the partition time + 1,
    // a time of "-" is negative: dropped and counted.
    let consumed = Consumed::<String, String>::with(Builtin, Builtin).with_timestamp_extractor(
        |record: &Record<String, String>, partition_time| match record
            .value
            .split_once(':')
            .map(|(t, _)| t)
        {
            Some("-") => -1,
            Some(t) => t.parse().unwrap_or(partition_time + 1),
            None => partition_time + 1,
        },
    );
    builder
        .stream("events", consumed)
        .to("out", Produced::with(Builtin, Builtin));
    builder
        .table(
            "rows",
            Consumed::<String, String>::with(Builtin, Builtin)
                .with_timestamp_extractor(|r: &Record<String, String>, _| r.value.len() as i64),
            Materialized::as_("rows"),
        )
        .to_stream()
        .to("row-changes", Produced::with(Builtin, Builtin));
    builder
        .stream("plain", Consumed::<String, String>::with(Builtin, Builtin))
        .to("plain-out", Produced::with(Builtin, Builtin));
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let events = driver.create_input_topic::<String, String>("events", Builtin, Builtin);
    let out = driver.create_output_topic::<String, String>("out", Builtin, Builtin);
    events.pipe_input_with_timestamp(s("k"), s("500:a"), 9)?;
    events.pipe_input_with_timestamp(s("k"), s("junk"), 9)?; // partition time 500 + 1
    events.pipe_input_with_timestamp(s("k"), s("-:c"), 9)?; // dropped
    let stamps: Vec<(String, i64)> = out
        .read_records_to_list()?
        .into_iter()
        .map(|r| (r.value, r.timestamp))
        .collect();
    assert_eq!(stamps, [(s("500:a"), 500), (s("junk"), 501)]);
    assert_eq!(driver.dropped_records(), 1);

    let rows = driver.create_input_topic::<String, Option<String>>("rows", Builtin, Builtin);
    let changes =
        driver.create_output_topic::<String, Option<String>>("row-changes", Builtin, Builtin);
    rows.pipe_input_with_timestamp(s("r"), Some(s("abcd")), 7)?;
    rows.pipe_input_with_timestamp(s("r"), None, 7)?; // a tombstone keeps its own time
    let stamps: Vec<i64> = changes
        .read_records_to_list()?
        .iter()
        .map(|r| r.timestamp)
        .collect();
    assert_eq!(stamps, [4, 7]);

    // Without an extractor, a negative record timestamp is an error naming topic and offset.
    let plain = driver.create_input_topic::<String, String>("plain", Builtin, Builtin);
    plain.pipe_input_with_timestamp(s("k"), s("ok"), 1)?;
    let e = plain
        .pipe_input_with_timestamp(s("k"), s("v"), -5)
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidRecord { topic, .. } if topic == "plain"),
        "{e}"
    );
    assert!(
        e.to_string().contains("offset 1") && e.to_string().contains("-5"),
        "{e}"
    );
    Ok(())
}

#[test]
fn explicit_repartition_and_a_topic_extractor() -> Result {
    use embroker::streams::Repartitioned;
    let builder = StreamsBuilder::new();
    let input = builder.stream("in", Consumed::<String, i64>::with(Builtin, Builtin));
    // Re-keyed, then repartitioned explicitly: the grouping after it needs no topic of its own.
    input
        .map(|k, v| (k.to_uppercase(), v))
        .repartition(Repartitioned::with(Builtin, Builtin).with_name("by-upper"))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("upper-counts"));
    // Unnamed: Kafka's generated name.
    input.repartition(Repartitioned::with(Builtin, Builtin));
    // Each record to a topic chosen by its value; "loop" is also read back.
    input.to_dynamic(
        |_, v| if *v < 0 { s("negative") } else { s("loop") },
        Produced::with(Builtin, Builtin),
    );
    builder
        .stream("loop", Consumed::<String, i64>::with(Builtin, Builtin))
        .map_values(|v| v * 100)
        .to("looped", Produced::with(Builtin, Builtin));
    let topology = builder.build()?;
    let repartitions = topology.repartition_topics();
    assert_eq!(repartitions.len(), 2, "{repartitions:?}");
    let generated = repartitions[0]
        .strip_prefix("KSTREAM-REPARTITION-")
        .and_then(|rest| rest.strip_suffix("-repartition"))
        .unwrap();
    assert!(
        generated.len() == 10 && generated.bytes().all(|b| b.is_ascii_digit()),
        "{generated}"
    );
    assert_eq!(repartitions[1], "by-upper-repartition");
    assert!(topology.to_string().contains("(topic extractor)"));
    // A sink with a topic extractor writes topics known only per record: not listed.
    assert_eq!(
        topology.sink_topics(),
        [
            repartitions[0].clone(),
            s("by-upper-repartition"),
            s("looped")
        ]
    );
    let driver = TopologyTestDriver::new(topology, config())?;
    let topic = driver.create_input_topic::<String, i64>("in", Builtin, Builtin);
    topic.pipe_key_values([(s("a"), 1), (s("A"), -2), (s("b"), 3)])?;
    let counts = driver.get_key_value_store::<String, i64>("upper-counts")?;
    assert_eq!(counts.all()?, [(s("A"), 2), (s("B"), 1)]);
    let through = driver.create_output_topic::<String, i64>(
        "test-app-by-upper-repartition",
        Builtin,
        Builtin,
    );
    assert_eq!(
        through.read_key_values_to_list()?,
        [(s("A"), 1), (s("A"), -2), (s("B"), 3)]
    );
    let negative = driver.create_output_topic::<String, i64>("negative", Builtin, Builtin);
    assert_eq!(negative.read_values_to_list()?, [-2]);
    let looped = driver.create_output_topic::<String, i64>("looped", Builtin, Builtin);
    assert_eq!(looped.read_values_to_list()?, [100, 300]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A windowed count over any sequence of (key, timestamp) equals a model of Kafka's rule:
    /// a record counts in each hopping window containing it whose end is after stream time
    /// (including this record) minus the grace; the others are dropped, one count each.
    #[test]
    fn windowed_count_equals_a_model(
        records in proptest::collection::vec((0u8..3, 0i64..400), 0..120),
        size in 1i64..60,
        advance_pick in 1i64..60,
        grace in 0i64..80,
    ) {
        use embroker::streams::{ReadOnlyWindowStore, TimeWindows};
        let advance = advance_pick.min(size);
        let windows = TimeWindows::of_size_and_grace(
            Duration::from_millis(size as u64),
            Duration::from_millis(grace as u64),
        )
        .advance_by(Duration::from_millis(advance as u64));
        let builder = StreamsBuilder::new();
        builder
            .stream("in", Consumed::<String, String>::with(Builtin, Builtin))
            .group_by_key(Grouped::with(Builtin, Builtin))
            .windowed_by(windows)
            .count(Materialized::as_("w"));
        let driver = TopologyTestDriver::new(builder.build().unwrap(), config()).unwrap();
        let input = driver.create_input_topic::<String, String>("in", Builtin, Builtin);
        let mut model: std::collections::BTreeMap<(String, i64), i64> = Default::default();
        let mut dropped = 0u64;
        let mut stream_time = i64::MIN;
        for (k, t) in &records {
            let key = format!("k{k}");
            stream_time = stream_time.max(*t);
            let first = (t - size + advance).max(0) / advance * advance;
            let mut start = first;
            while start <= *t {
                if start + size > stream_time - grace {
                    *model.entry((key.clone(), start)).or_default() += 1;
                } else {
                    dropped += 1;
                }
                start += advance;
            }
            input.pipe_input_with_timestamp(key, s("x"), *t).unwrap();
        }
        prop_assert_eq!(driver.dropped_records(), dropped);
        // Every window the store still keeps (retention size + grace, by the largest window
        // start) holds the model's count.
        let store = driver.get_window_store::<String, i64>("w").unwrap();
        let kept: Vec<((String, i64), i64)> = store
            .all()
            .unwrap()
            .into_iter()
            .map(|(w, n)| ((w.key, w.window.start), n))
            .collect();
        let max_start = model.keys().map(|(_, start)| *start).max();
        let expected: Vec<((String, i64), i64)> = model
            .into_iter()
            .filter(|((_, start), _)| max_start.is_some_and(|m| *start > m - (size + grace)))
            .collect();
        let mut kept_sorted = kept.clone();
        kept_sorted.sort();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        prop_assert_eq!(kept_sorted, expected_sorted);
    }
}

#[test]
fn a_stream_read_as_a_table() -> Result {
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "updates",
            Consumed::<String, Option<i64>>::with(Builtin, Builtin),
        )
        .to_table(Materialized::as_("latest"))
        .to_stream()
        .to("changes", Produced::with(Builtin, Builtin));
    builder
        .stream("plain", Consumed::<String, i64>::with(Builtin, Builtin))
        .map_values(Some)
        .to_table(Materialized::default());
    let topology = builder.build()?;
    assert!(topology
        .state_stores()
        .iter()
        .any(|s| s.starts_with("KSTREAM-TOTABLE-STATE-STORE-")));
    let driver = TopologyTestDriver::new(topology, config())?;
    let updates = driver.create_input_topic::<String, Option<i64>>("updates", Builtin, Builtin);
    updates.pipe_key_values([
        (s("a"), Some(1)),
        (s("b"), Some(2)),
        (s("a"), Some(3)),
        (s("b"), None),
    ])?;
    let latest = driver.get_key_value_store::<String, i64>("latest")?;
    assert_eq!(latest.all()?, [(s("a"), 3)]);
    let changes = driver.create_output_topic::<String, Option<i64>>("changes", Builtin, Builtin);
    assert_eq!(
        changes.read_values_to_list()?,
        [Some(1), Some(2), Some(3), None]
    );
    Ok(())
}

#[test]
fn session_windows_merge_and_forward_the_sessions_they_replace() -> Result {
    use embroker::streams::{
        ReadOnlySessionStore, SessionWindowedSerde, SessionWindows, Suppressed, Windowed,
    };
    let builder = StreamsBuilder::new();
    let sessions = builder
        .stream("clicks", Consumed::<String, String>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_millis(10),
            Duration::from_millis(50),
        ))
        .aggregate(
            String::new,
            |_, page, pages| format!("{pages}{page}"),
            |_, a, b| format!("{a}{b}"),
            Materialized::as_("pages"),
        );
    sessions.to_stream().to(
        "updates",
        Produced::with(SessionWindowedSerde(Builtin), Builtin),
    );
    sessions
        .suppress(Suppressed::until_window_closes())
        .to_stream()
        .to(
            "final",
            Produced::with(SessionWindowedSerde(Builtin), Builtin),
        );
    let driver = TopologyTestDriver::new(builder.build()?, config())?;
    let clicks = driver.create_input_topic::<String, String>("clicks", Builtin, Builtin);
    let updates = driver.create_output_topic::<Windowed<String>, Option<String>>(
        "updates",
        SessionWindowedSerde(Builtin),
        Builtin,
    );
    let finals = driver.create_output_topic::<Windowed<String>, Option<String>>(
        "final",
        SessionWindowedSerde(Builtin),
        Builtin,
    );
    let read = |topic: &embroker::streams::TestOutputTopic<Windowed<String>, Option<String>>| {
        topic
            .read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| (r.key.window.start, r.key.window.end, r.value, r.timestamp))
            .collect::<Vec<_>>()
    };
    let click = |page: &str, t: i64| clicks.pipe_input_with_timestamp(s("u"), s(page), t);
    click("a", 0)?; // [0, 0]
    click("b", 30)?; // [30, 30]: more than the gap away
    click("c", 10)?; // within 10 of 0: [0, 10]
    assert_eq!(
        read(&updates),
        [
            (0, 0, Some(s("a")), 0),
            (30, 30, Some(s("b")), 30),
            (0, 0, None, 0), // [0, 0] merged away
            (0, 10, Some(s("ac")), 10),
        ]
    );
    click("d", 20)?; // within 10 of both: merges [0, 10] and [30, 30] into [0, 30]
    assert_eq!(
        read(&updates),
        [
            (0, 10, None, 10),
            (30, 30, None, 30),
            (0, 30, Some(s("acbd")), 30),
        ]
    );
    let store = driver.get_session_store::<String, String>("pages")?;
    let fetched: Vec<(i64, i64, String)> = store
        .fetch(&s("u"))?
        .into_iter()
        .map(|(w, v)| (w.window.start, w.window.end, v))
        .collect();
    assert_eq!(fetched, [(0, 30, s("acbd"))]);
    assert_eq!(store.fetch_session(&s("u"), 0, 30)?, Some(s("acbd")));
    // Stream time 100: the session [0, 30] ended before 100 - 50; a click at 25 would merge
    // into it, so it is dropped and counted.
    click("e", 100)?;
    click("f", 25)?;
    assert_eq!(driver.dropped_records(), 1);
    assert_eq!(read(&updates), [(100, 100, Some(s("e")), 100)]);
    // Final results: a session closes once stream time passes its end + gap + grace
    // (30 + 10 + 50 = 90, reached at 100); the merged-away sessions' deletions are not
    // final results.
    assert_eq!(read(&finals), [(0, 30, Some(s("acbd")), 30)]);
    // A zero gap is refused.
    let builder = StreamsBuilder::new();
    builder
        .stream("x", Consumed::<String, String>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(
            Duration::ZERO,
        ))
        .count(Materialized::default());
    assert!(builder
        .build()
        .err()
        .unwrap()
        .to_string()
        .contains("inactivity gap"));
    Ok(())
}
