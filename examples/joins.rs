//! Every join of Kafka Streams on one small shop, run through the `TopologyTestDriver`, each
//! printing what it emits:
//!
//! - KStream-KStream (inner, left, outer) in `JoinWindows`: orders and payments of the same
//!   order id at most 10 s apart; a left/outer result for an order never paid comes out only
//!   once its window (plus 2 s of grace) has closed;
//! - KStream-KTable (inner, left): orders enriched with the customer's current region;
//! - KTable-KTable (inner, left, outer): customers' regions and credit limits as one table;
//! - KStream-GlobalKTable (inner, left): orders enriched with the product's name, looked up by
//!   the product id inside the order; then the same join under `KafkaStreams` on a temporary
//!   broker, two stream threads, the global table's topic of more partitions than the
//!   orders', and a product added while it runs;
//! - a sliding-window count of each customer's orders within 10 s of each other.
//!
//! It also shows the co-partition groups the runtime checks before start.
//!
//! `cargo run --example joins`

use std::time::Duration;

use embroker::streams::{
    Consumed, Grouped, JoinWindows, KStream, KafkaStreams, Materialized, Produced,
    ReadOnlyKeyValueStore, SlidingWindows, StreamsBuilder, StreamsConfig, TimeWindowedSerde,
    TopologyTestDriver, Windowed,
};
use embroker::{
    Broker, Builtin, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicConfig,
    TopicPartition,
};

fn show(value: Option<&String>) -> String {
    value.cloned().unwrap_or_else(|| "null".to_string())
}

/// Orders and payments keyed by order id, joined three ways.
fn stream_stream() -> embroker::Result<()> {
    let windows =
        JoinWindows::of_time_difference_and_grace(Duration::from_secs(10), Duration::from_secs(2));
    let builder = StreamsBuilder::new();
    let orders = builder.stream("orders", Consumed::<String, String>::with(Builtin, Builtin));
    let payments = builder.stream(
        "payments",
        Consumed::<String, String>::with(Builtin, Builtin),
    );
    let out =
        |s: KStream<String, String>, topic: &str| s.to(topic, Produced::with(Builtin, Builtin));
    out(
        orders.join(&payments, |o, p| format!("{o} paid by {p}"), windows),
        "inner",
    );
    out(
        orders.left_join(
            &payments,
            |o, p| format!("{o} paid by {}", show(p)),
            windows,
        ),
        "left",
    );
    out(
        orders.outer_join(
            &payments,
            |o, p| format!("{} paid by {}", show(o), show(p)),
            windows,
        ),
        "outer",
    );
    let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("shop"))?;
    let o = driver.create_input_topic::<String, String>("orders", Builtin, Builtin);
    let p = driver.create_input_topic::<String, String>("payments", Builtin, Builtin);
    o.pipe_input_with_timestamp("o1".into(), "tea".into(), 1_000)?;
    p.pipe_input_with_timestamp("o1".into(), "card".into(), 4_000)?;
    o.pipe_input_with_timestamp("o2".into(), "cake".into(), 5_000)?; // never paid
    p.pipe_input_with_timestamp("o9".into(), "cash".into(), 6_000)?; // no such order
                                                                     // Stream time passes 5 s + 10 s + 2 s (and 6 s + 10 s + 2 s): the windows close.
    o.pipe_input_with_timestamp("o3".into(), "jam".into(), 18_001)?;
    p.pipe_input_with_timestamp("o3".into(), "card".into(), 18_500)?;
    println!("KStream-KStream joins (10 s apart, 2 s grace):");
    for kind in ["inner", "left", "outer"] {
        let results = driver.create_output_topic::<String, String>(kind, Builtin, Builtin);
        for r in results.read_records_to_list()? {
            println!("  {kind:5} {} -> {} at {} ms", r.key, r.value, r.timestamp);
        }
    }
    Ok(())
}

/// Orders enriched with the customer's region (a table), inner and left.
fn stream_table() -> embroker::Result<()> {
    let builder = StreamsBuilder::new();
    let regions = builder.table(
        "regions",
        Consumed::<String, String>::with(Builtin, Builtin),
        Materialized::as_("regions"),
    );
    let orders = builder.stream(
        "customer-orders",
        Consumed::<String, String>::with(Builtin, Builtin),
    );
    orders
        .join_table(&regions, |item, region| format!("{item} to {region}"))
        .to("inner", Produced::with(Builtin, Builtin));
    orders
        .left_join_table(&regions, |item, region| {
            format!("{item} to {}", show(region))
        })
        .to("left", Produced::with(Builtin, Builtin));
    let topology = builder.build()?;
    println!(
        "KStream-KTable joins (co-partition groups {:?}):",
        topology.copartition_groups()
    );
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new("shop"))?;
    let r = driver.create_input_topic::<String, Option<String>>("regions", Builtin, Builtin);
    let o = driver.create_input_topic::<String, String>("customer-orders", Builtin, Builtin);
    o.pipe_input("ann".into(), "tea".into())?; // no region yet
    r.pipe_input("ann".into(), Some("eu".into()))?;
    o.pipe_input("ann".into(), "cake".into())?;
    r.pipe_input("ann".into(), None)?; // ann's row deleted
    o.pipe_input("ann".into(), "jam".into())?;
    for kind in ["inner", "left"] {
        let results = driver.create_output_topic::<String, String>(kind, Builtin, Builtin);
        for (k, v) in results.read_key_values_to_list()? {
            println!("  {kind:5} {k} -> {v}");
        }
    }
    Ok(())
}

/// Regions and credit limits per customer as one table, three ways.
fn table_table() -> embroker::Result<()> {
    let builder = StreamsBuilder::new();
    let regions = builder.table(
        "regions",
        Consumed::<String, String>::with(Builtin, Builtin),
        Materialized::default(),
    );
    let limits = builder.table(
        "limits",
        Consumed::<String, i64>::with(Builtin, Builtin),
        Materialized::default(),
    );
    let out = |t: embroker::streams::KTable<String, String>, topic: &str| {
        t.to_stream().to(topic, Produced::with(Builtin, Builtin));
    };
    out(regions.join(&limits, |r, l| format!("{r}/{l}")), "inner");
    out(
        regions.left_join(&limits, |r, l| {
            format!("{r}/{}", l.map_or("-".to_string(), i64::to_string))
        }),
        "left",
    );
    out(
        regions.outer_join(&limits, |r, l| {
            format!("{}/{}", show(r), l.map_or("-".to_string(), i64::to_string))
        }),
        "outer",
    );
    let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("shop"))?;
    let r = driver.create_input_topic::<String, Option<String>>("regions", Builtin, Builtin);
    let l = driver.create_input_topic::<String, Option<i64>>("limits", Builtin, Builtin);
    r.pipe_input("ann".into(), Some("eu".into()))?;
    l.pipe_input("ann".into(), Some(100))?;
    l.pipe_input("bob".into(), Some(50))?;
    r.pipe_input("ann".into(), None)?;
    println!("KTable-KTable joins (a null is a deleted row):");
    for kind in ["inner", "left", "outer"] {
        let results = driver.create_output_topic::<String, Option<String>>(kind, Builtin, Builtin);
        for (k, v) in results.read_key_values_to_list()? {
            println!("  {kind:5} {k} -> {}", show(v.as_ref()));
        }
    }
    Ok(())
}

/// Orders (keyed by customer) enriched with the product name from a global table, looked
/// up by the product id the order holds.
fn stream_global_table() -> embroker::Result<()> {
    let builder = StreamsBuilder::new();
    let products = builder.global_table(
        "products",
        Consumed::<i64, String>::with(Builtin, Builtin),
        Materialized::as_("products"),
    );
    let orders = builder.stream(
        "product-orders",
        Consumed::<String, i64>::with(Builtin, Builtin),
    );
    orders
        .join_global(&products, |_, id| *id, |_, name| name.clone())
        .to("inner", Produced::with(Builtin, Builtin));
    orders
        .left_join_global(
            &products,
            |_, id| *id,
            |id, name| format!("{id}:{}", show(name)),
        )
        .to("left", Produced::with(Builtin, Builtin));
    let topology = builder.build()?;
    println!(
        "KStream-GlobalKTable joins (global topics {:?}):",
        topology.global_topics()
    );
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new("shop"))?;
    let p = driver.create_input_topic::<i64, Option<String>>("products", Builtin, Builtin);
    let o = driver.create_input_topic::<String, i64>("product-orders", Builtin, Builtin);
    p.pipe_input(7, Some("tea".into()))?;
    o.pipe_input("ann".into(), 7)?;
    o.pipe_input("bob".into(), 8)?; // unknown product
    for kind in ["inner", "left"] {
        let results = driver.create_output_topic::<String, String>(kind, Builtin, Builtin);
        for (k, v) in results.read_key_values_to_list()? {
            println!("  {kind:5} {k} -> {v}");
        }
    }
    Ok(())
}

/// The global-table join under `KafkaStreams`: the global thread reads every partition of
/// `products` before the stream threads start, and keeps reading while they run.
fn stream_global_table_running() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("products", TopicConfig::default().partitions(3))?;
    broker.create_topic("product-orders", TopicConfig::default().partitions(2))?;
    broker.create_topic("enriched", TopicConfig::default())?;
    let producer = broker.producer(ProducerConfig::default())?;
    let product = |id: i64, name: &str| {
        ProducerRecord::new("products", name.to_string()).key(id.to_be_bytes().to_vec())
    };
    producer.send(product(7, "tea"))?.wait()?;

    let builder = StreamsBuilder::new();
    let products = builder.global_table(
        "products",
        Consumed::<i64, String>::with(Builtin, Builtin),
        Materialized::as_("products"),
    );
    builder
        .stream(
            "product-orders",
            Consumed::<String, i64>::with(Builtin, Builtin),
        )
        .left_join_global(
            &products,
            |_, id| *id,
            |id, name| format!("{id}:{}", show(name)),
        )
        .to("enriched", Produced::with(Builtin, Builtin));
    let config = StreamsConfig::new("shop-runtime")
        .with_properties(&[("num.stream.threads", "2"), ("commit.interval.ms", "20")])?;
    let streams = KafkaStreams::new(builder.build()?, config, &broker)?;
    streams.start()?;
    streams.wait_until_running(Duration::from_secs(30))?;
    let order = |customer: &str, id: i64| {
        ProducerRecord::new("product-orders", id.to_be_bytes().to_vec()).key(customer.to_string())
    };
    producer.send(order("ann", 7))?.wait()?;
    producer.send(order("bob", 8))?.wait()?;
    // A product added while running: a later order sees it.
    producer.send(product(8, "coffee"))?.wait()?;
    let store = streams.store::<i64, String>("products")?;
    for _ in 0..3000 {
        if store.get(&8)?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    producer.send(order("cid", 8))?.wait()?;

    let mut cc = ConsumerConfig::default();
    cc.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = broker.consumer(cc)?;
    consumer.assign(&[TopicPartition::new("enriched", 0)])?;
    let mut results = Vec::new();
    for _ in 0..300 {
        for r in consumer.poll(Duration::from_millis(10))? {
            let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).to_string();
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string();
            results.push((key, value));
        }
        if results.len() == 3 {
            break;
        }
    }
    results.sort();
    println!(
        "KStream-GlobalKTable left join under KafkaStreams (2 threads, {} product(s) bootstrapped):",
        streams.stats().global_restored_records
    );
    for (k, v) in &results {
        println!("  left  {k} -> {v}");
    }
    streams.close()?;
    Ok(())
}

/// How many orders of a customer fall within 10 s of each other (sliding windows).
fn sliding_count() -> embroker::Result<()> {
    let difference = Duration::from_secs(10);
    let builder = StreamsBuilder::new();
    builder
        .stream("orders", Consumed::<String, String>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(difference))
        .count(Materialized::as_("orders-within-10s"))
        .to_stream()
        .to(
            "counts",
            Produced::with(TimeWindowedSerde::new(Builtin, difference), Builtin),
        );
    let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("shop"))?;
    let o = driver.create_input_topic::<String, String>("orders", Builtin, Builtin);
    for (item, ts) in [
        ("tea", 1_000),
        ("cake", 5_000),
        ("jam", 30_000),
        ("pie", 2_000),
    ] {
        o.pipe_input_with_timestamp("ann".into(), item.into(), ts)?;
    }
    let counts = driver.create_output_topic::<Windowed<String>, Option<i64>>(
        "counts",
        TimeWindowedSerde::new(Builtin, difference),
        Builtin,
    );
    println!("Sliding windows of 10 s (the order at 2 s is too late: dropped):");
    for r in counts.read_records_to_list()? {
        let w = r.key.window;
        println!(
            "  {} [{} ms, {} ms] -> {:?}",
            r.key.key, w.start, w.end, r.value
        );
    }
    println!("  dropped records: {}", driver.dropped_records());
    Ok(())
}

fn main() -> embroker::Result<()> {
    stream_stream()?;
    stream_table()?;
    table_table()?;
    stream_global_table()?;
    stream_global_table_running()?;
    sliding_count()
}
