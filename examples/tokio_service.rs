//! A plain tokio service over embroker: a task consumes the `requests` topic with the async
//! receive (`Consumer::recv`), computes an answer for each request, and produces it to the
//! `responses` topic, awaiting each `SendFuture`, then commits durably with
//! `Consumer::commit().await`; a client task sends requests and awaits
//! their answers the same way. No thread per consumer: the service's receive is woken by the
//! append. The service stops by itself once every request is answered, so CI can run it.
//!
//! Run with `cargo run --example tokio_service`.

use std::time::Duration;

use embroker::{
    Broker, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicConfig,
    TopicPartition,
};

const REQUESTS: u64 = 1_000;

/// The service: reads `n` from each request and answers with `n * n`, keyed like the request.
async fn serve(broker: Broker, expected: u64) -> embroker::Result<u64> {
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .group_id("squarer")
            .auto_offset_reset(OffsetReset::Earliest),
    )?;
    consumer.subscribe(&["requests"])?;
    let producer = broker.producer(ProducerConfig::default())?;
    let mut served = 0;
    while served < expected {
        // A group member bounds its receive, so the group's timed steps run.
        let Ok(records) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await
        else {
            continue;
        };
        let mut pending = Vec::new();
        for request in &records? {
            let n: u64 = std::str::from_utf8(request.value.as_deref().unwrap_or_default())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let mut answer = ProducerRecord::new("responses", (n * n).to_string());
            if let Some(key) = request.key.clone() {
                answer = answer.key(key);
            }
            pending.push(producer.send(answer)?);
        }
        // Answers first, then the commit: at-least-once. `commit().await` is durable (fsynced
        // by the broker's syncer thread while this task waits, no runtime thread blocked); a
        // failed commit (a rebalance, say) is reported and the next one catches up.
        for answer in pending {
            answer.await?;
            served += 1;
        }
        if let Err(e) = consumer.commit().await {
            eprintln!("commit failed: {e}");
        }
    }
    producer.close()?;
    consumer.close()?;
    Ok(served)
}

/// The client: sends the requests, then reads every answer back and checks it.
async fn client(broker: Broker) -> embroker::Result<()> {
    let producer = broker.producer(ProducerConfig::default().linger_ms(1))?;
    for n in 0..REQUESTS {
        producer
            .send(ProducerRecord::new("requests", n.to_string()).key(format!("req-{n}")))?
            .await?;
    }
    producer.close()?;

    let mut consumer =
        broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))?;
    consumer.assign(&[TopicPartition::new("responses", 0)])?;
    let mut answered = 0;
    while answered < REQUESTS {
        for response in &consumer.recv().await? {
            let key = String::from_utf8_lossy(response.key.as_deref().unwrap_or_default());
            let n: u64 = key.trim_start_matches("req-").parse().unwrap_or(u64::MAX);
            let value = String::from_utf8_lossy(response.value.as_deref().unwrap_or_default());
            if value != (n * n).to_string() {
                return Err(embroker::Error::IllegalState {
                    reason: format!("{key} answered {value}, expected {}", n * n),
                });
            }
            answered += 1;
        }
    }
    println!("client: {answered} answers checked");
    Ok(())
}

#[tokio::main]
async fn main() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("requests", TopicConfig::default().partitions(2))?;
    broker.create_topic("responses", TopicConfig::default())?;

    let service = tokio::spawn(serve(broker.clone(), REQUESTS));
    let client = tokio::spawn(client(broker.clone()));
    let served = service.await.map_err(|e| embroker::Error::IllegalState {
        reason: format!("the service task failed: {e}"),
    })??;
    client.await.map_err(|e| embroker::Error::IllegalState {
        reason: format!("the client task failed: {e}"),
    })??;
    println!("service: {served} requests served");
    broker.close()
}
