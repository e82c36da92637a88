//! The classic asynchronous producer: fire records with a callback each and let the producer
//! batch them (Kafka's `producer.send(record, callback)`), then flush and close.
//!
//! Run with `cargo run --example async_producer`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use embroker::{Broker, ProducerConfig, ProducerRecord, TopicConfig};

fn main() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("clicks", TopicConfig::default().partitions(4))?;

    // A little linger lets batches fill even when the log is idle.
    let producer = broker.producer(ProducerConfig::default().linger_ms(5))?;
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    const N: u64 = 100_000;
    for i in 0..N {
        let record =
            ProducerRecord::new("clicks", format!("click {i}")).key(format!("page-{}", i % 50));
        let (acked, failed) = (Arc::clone(&acked), Arc::clone(&failed));
        producer.send_with_callback(record, move |result| match result {
            Ok(meta) => {
                if meta.offset == 0 {
                    println!("first record in {}-{}", meta.topic, meta.partition);
                }
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("send failed: {e}");
                failed.fetch_add(1, Ordering::Relaxed);
            }
        })?;
    }
    println!("{N} sends returned after {:?}; flushing", start.elapsed());
    producer.flush()?;
    println!(
        "flushed after {:?}: {} acknowledged, {} failed",
        start.elapsed(),
        acked.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    producer.close()?;

    let total: i64 = (0..4)
        .map(|p| {
            broker
                .topic("clicks")
                .and_then(|t| t.partition(p))
                .map(|p| p.log_end_offset())
        })
        .sum::<embroker::Result<i64>>()?;
    println!("the topic holds {total} records");
    if total != N as i64 {
        return Err(embroker::Error::IllegalState {
            reason: format!("expected {N} records, found {total}"),
        });
    }
    Ok(())
}
