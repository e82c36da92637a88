//! The async API (issue #19): `SendFuture` as a `Future`, `Consumer::recv` and (feature
//! `stream`) `Consumer::stream`, on tokio's multi-thread and current-thread runtimes and on
//! `futures::executor`. Wake-ups come from the append through the task's waker: counting
//! wakers show none happens without an append, a dropped future leaves no waker behind, and
//! thousands of pending receives cost no thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use embroker::{
    Broker, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Record, TopicConfig,
    TopicPartition,
};

const N: i64 = 200;

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<Counter>, Waker) {
    let counter = Arc::new(Counter::default());
    (counter.clone(), Waker::from(counter))
}

fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

fn broker_with(topic: &str) -> Broker {
    let broker = Broker::temporary().unwrap();
    broker.create_topic(topic, TopicConfig::default()).unwrap();
    broker
}

fn earliest() -> ConsumerConfig {
    ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)
}

/// The scenario every executor runs: a thread appends `N` records after a pause while the
/// consumer awaits them, then the producer sends `N` more, each awaited, and the consumer
/// receives those too.
async fn scenario(broker: Broker) {
    let mut consumer = broker.consumer(earliest()).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let log = broker.topic("t").unwrap().partition(0).unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        for i in 0..N {
            log.append(&[Record::new(format!("r{i}"))]).unwrap();
        }
    });
    let mut next = 0;
    while next < N {
        let records = consumer.recv().await.unwrap();
        assert!(!records.is_empty());
        for r in &records {
            assert_eq!(r.offset, next);
            next += 1;
        }
    }
    writer.join().unwrap();

    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for i in 0..N {
        let meta = producer
            .send(ProducerRecord::new("t", format!("s{i}")))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(meta.offset, N + i);
        assert_eq!(meta.partition, 0);
    }
    while next < 2 * N {
        for r in &consumer.recv().await.unwrap() {
            assert_eq!(r.offset, next);
            next += 1;
        }
    }
    producer.close().unwrap();
}

#[test]
fn futures_executor() {
    futures::executor::block_on(scenario(broker_with("t")));
}

#[tokio::test(flavor = "current_thread")]
async fn tokio_current_thread() {
    scenario(broker_with("t")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_multi_thread() {
    scenario(broker_with("t")).await;
}

/// On one tokio thread, a spawned task produces while another consumes: the consumer's task
/// yields the thread while it waits, so the producer's task runs.
#[tokio::test(flavor = "current_thread")]
async fn tokio_current_thread_tasks_produce_and_consume() {
    let broker = broker_with("t");
    let mut consumer = broker.consumer(earliest()).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..N {
            producer
                .send(ProducerRecord::new("t", format!("v{i}")))
                .unwrap()
                .await
                .unwrap();
        }
        producer
    });
    let mut seen = 0;
    while seen < N {
        seen += consumer.recv().await.unwrap().count() as i64;
    }
    assert_eq!(seen, N);
    task.await.unwrap().close().unwrap();
}

/// A pending receive is woken by the append and by nothing else: no polling loop.
#[test]
fn recv_is_woken_by_the_append_only() {
    let broker = broker_with("t");
    let mut consumer = broker.consumer(earliest()).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let (counter, waker) = counting_waker();
    let mut recv = consumer.recv();
    assert!(poll_once(&mut recv, &waker).is_pending());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(counter.0.load(Ordering::SeqCst), 0, "woken with no append");

    let log = broker.topic("t").unwrap().partition(0).unwrap();
    std::thread::spawn(move || log.append(&[Record::new("x")]).unwrap())
        .join()
        .unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    match poll_once(&mut recv, &waker) {
        Poll::Ready(Ok(records)) => assert_eq!(records.count(), 1),
        other => panic!("expected one record, got {other:?}"),
    }
}

/// Dropping a pending receive removes its waker: the append wakes nothing and the waker's
/// last clone is gone.
#[test]
fn dropped_recv_deregisters_its_waker() {
    let broker = broker_with("t");
    let mut consumer = broker.consumer(earliest()).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let (counter, waker) = counting_waker();
    let mut recv = consumer.recv();
    assert!(poll_once(&mut recv, &waker).is_pending());
    // Polled again with the same waker: still one registration.
    assert!(poll_once(&mut recv, &waker).is_pending());
    assert_eq!(
        Arc::strong_count(&counter),
        3,
        "the test's two and one registered"
    );
    drop(recv);
    assert_eq!(Arc::strong_count(&counter), 2);
    broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[Record::new("x")])
        .unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    // The consumer is usable again and the record was not skipped.
    let records = futures::executor::block_on(consumer.recv()).unwrap();
    assert_eq!(records.iter().next().map(|r| r.offset), Some(0));
}

/// `flush_async` sends lingering batches and completes once they are: on every executor.
async fn flush_scenario(broker: Broker) {
    // A long linger: without the flush the records would wait a minute.
    let producer = broker
        .producer(ProducerConfig::default().linger_ms(60_000))
        .unwrap();
    let sent: Vec<_> = (0..N)
        .map(|i| {
            producer
                .send(ProducerRecord::new("t", format!("f{i}")))
                .unwrap()
        })
        .collect();
    producer.flush_async().await.unwrap();
    for (i, mut f) in sent.into_iter().enumerate() {
        // Complete already: ready at the first poll, with no wake-up.
        let (_, waker) = counting_waker();
        match poll_once(&mut f, &waker) {
            Poll::Ready(Ok(meta)) => assert_eq!(meta.offset, i as i64),
            other => panic!("record {i} not complete after flush_async: {other:?}"),
        }
    }
    // Nothing pending: ready at once.
    producer.flush_async().await.unwrap();
    producer.close().unwrap();
}

#[test]
fn flush_async_futures_executor() {
    futures::executor::block_on(flush_scenario(broker_with("t")));
}

#[tokio::test(flavor = "current_thread")]
async fn flush_async_tokio_current_thread() {
    flush_scenario(broker_with("t")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_async_tokio_multi_thread() {
    flush_scenario(broker_with("t")).await;
}

/// A pending `flush_async` is woken by the sender when the batches complete, and a dropped
/// one leaves no waker behind.
#[test]
fn flush_async_is_woken_and_deregisters() {
    let broker = broker_with("t");
    let producer = broker
        .producer(ProducerConfig::default().linger_ms(60_000))
        .unwrap();
    let (counter, waker) = counting_waker();
    // Nothing sent: complete at the first poll, no waker kept.
    assert!(matches!(
        poll_once(&mut producer.flush_async(), &waker),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(Arc::strong_count(&counter), 2);
    let sent = producer.send(ProducerRecord::new("t", "a")).unwrap();
    let mut dropped = Box::pin(producer.flush_async());
    let mut flush = Box::pin(producer.flush_async());
    // Each is pending (the sender has yet to write the batch) or already done.
    let _ = poll_once(&mut dropped, &waker);
    drop(dropped);
    assert_eq!(
        Arc::strong_count(&counter),
        2,
        "a dropped flush keeps its waker"
    );
    if poll_once(&mut flush, &waker).is_pending() {
        // Woken by the completion: wait for the wake-up, then it is ready.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while counter.0.load(Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "flush_async never woken"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(matches!(poll_once(&mut flush, &waker), Poll::Ready(Ok(()))));
    }
    assert_eq!(Arc::strong_count(&counter), 2);
    assert_eq!(sent.wait().unwrap().offset, 0);
    producer.close().unwrap();
}

/// Dropping a pending `SendFuture` removes its waker from the batch's completion.
#[test]
fn dropped_send_future_deregisters_its_waker() {
    let broker = broker_with("t");
    // A long linger keeps the batch open, so the future is pending when polled.
    let producer = broker
        .producer(ProducerConfig::default().linger_ms(60_000))
        .unwrap();
    let (counter, waker) = counting_waker();
    let mut pending = producer.send(ProducerRecord::new("t", "a")).unwrap();
    let mut kept = producer.send(ProducerRecord::new("t", "b")).unwrap();
    assert!(poll_once(&mut pending, &waker).is_pending());
    assert!(poll_once(&mut kept, &waker).is_pending());
    assert_eq!(Arc::strong_count(&counter), 4);
    drop(pending);
    assert_eq!(Arc::strong_count(&counter), 3);
    producer.flush().unwrap();
    // Only the kept future's waker was woken.
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    match poll_once(&mut kept, &waker) {
        Poll::Ready(Ok(meta)) => assert_eq!(meta.offset, 1),
        other => panic!("expected the record's metadata, got {other:?}"),
    }
    drop(kept);
    assert_eq!(Arc::strong_count(&counter), 2);
    producer.close().unwrap();
}

fn os_threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// 5,000 consumers with a receive pending each use no thread of their own; one append wakes
/// each exactly once and each then returns the record.
#[test]
fn thousands_of_idle_async_consumers_use_no_threads() {
    const CONSUMERS: usize = 5_000;
    let broker = broker_with("t");
    let mut consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let mut c = broker.consumer(earliest()).unwrap();
            c.assign(&[TopicPartition::new("t", 0)]).unwrap();
            c
        })
        .collect();
    let before = os_threads();
    let (counter, waker) = counting_waker();
    let mut pending: Vec<_> = consumers.iter_mut().map(|c| c.recv()).collect();
    for recv in &mut pending {
        assert!(poll_once(recv, &waker).is_pending());
    }
    std::thread::sleep(Duration::from_millis(100));
    let during = os_threads();
    if let (Some(before), Some(during)) = (before, during) {
        println!("OS threads: {before} before, {during} with {CONSUMERS} pending receives");
        // Other tests of this binary may start threads meanwhile; none is per consumer.
        assert!(during < before + 16, "{before} -> {during}");
    }
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[Record::new("x")])
        .unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), CONSUMERS);
    for recv in &mut pending {
        match poll_once(recv, &waker) {
            Poll::Ready(Ok(records)) => assert_eq!(records.count(), 1),
            other => panic!("expected one record, got {other:?}"),
        }
    }
}

/// `WakeupHandle::wakeup` ends a pending receive with `Error::Wakeup`.
#[test]
fn wakeup_ends_a_pending_recv() {
    let broker = broker_with("t");
    let mut consumer = broker.consumer(earliest()).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let handle = consumer.wakeup_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        handle.wakeup();
    });
    let result = futures::executor::block_on(consumer.recv());
    assert!(matches!(result, Err(embroker::Error::Wakeup)), "{result:?}");
    t.join().unwrap();
}

/// A runtime's timeout bounds a receive; the consumer goes on afterwards.
#[tokio::test(flavor = "current_thread")]
async fn tokio_timeout_bounds_recv() {
    let broker = broker_with("t");
    let mut consumer = broker.consumer(earliest()).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let r = tokio::time::timeout(Duration::from_millis(30), consumer.recv()).await;
    assert!(r.is_err(), "no records: the timeout fires");
    broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[Record::new("x")])
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await;
    assert_eq!(r.unwrap().unwrap().count(), 1);
}

/// A group member receives its records asynchronously (the join runs inside the receive).
#[test]
fn group_member_recv() {
    let broker = broker_with("t");
    broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[Record::new("x")])
        .unwrap();
    let mut consumer = broker.consumer(earliest().group_id("g")).unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let records = futures::executor::block_on(consumer.recv()).unwrap();
    assert_eq!(records.count(), 1);
    consumer.commit_sync().unwrap();
}

#[cfg(feature = "stream")]
mod stream {
    use super::*;
    use futures::StreamExt;

    async fn stream_scenario(broker: Broker) {
        let mut consumer = broker.consumer(earliest()).unwrap();
        consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
        let log = broker.topic("t").unwrap().partition(0).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            for i in 0..N {
                log.append(&[Record::new(format!("r{i}"))]).unwrap();
            }
        });
        let offsets: Vec<i64> = consumer
            .record_stream()
            .take(N as usize)
            .map(|r| r.unwrap().offset)
            .collect()
            .await;
        assert_eq!(offsets, (0..N).collect::<Vec<_>>());
        writer.join().unwrap();
    }

    /// The stream of batches: every record once, in order, each item non-empty and at most
    /// `max.poll.records`.
    async fn batch_stream_scenario(broker: Broker) {
        let mut consumer = broker.consumer(earliest().max_poll_records(7)).unwrap();
        consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
        let log = broker.topic("t").unwrap().partition(0).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            for i in 0..N {
                log.append(&[Record::new(format!("r{i}"))]).unwrap();
            }
        });
        let mut offsets = Vec::new();
        let mut stream = consumer.stream();
        while let Some(records) = stream.next().await {
            let records = records.unwrap();
            assert!((1..=7).contains(&records.count()), "{}", records.count());
            for r in &records {
                assert_eq!(
                    r.value.as_deref(),
                    Some(format!("r{}", r.offset).as_bytes())
                );
                offsets.push(r.offset);
            }
            if offsets.len() as i64 == N {
                break;
            }
        }
        drop(stream);
        assert_eq!(offsets, (0..N).collect::<Vec<_>>());
        // Positions moved with each item: nothing is left to poll.
        assert!(consumer.poll(Duration::from_millis(10)).unwrap().is_empty());
        writer.join().unwrap();
    }

    #[test]
    fn stream_futures_executor() {
        futures::executor::block_on(stream_scenario(broker_with("t")));
    }

    #[test]
    fn batch_stream_futures_executor() {
        futures::executor::block_on(batch_stream_scenario(broker_with("t")));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn batch_stream_tokio_current_thread() {
        batch_stream_scenario(broker_with("t")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batch_stream_tokio_multi_thread() {
        batch_stream_scenario(broker_with("t")).await;
    }

    /// A wake-up reaches a pending stream as an item, and the stream goes on.
    #[test]
    fn batch_stream_yields_a_wakeup_and_goes_on() {
        let broker = broker_with("t");
        let mut consumer = broker.consumer(earliest()).unwrap();
        consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
        let handle = consumer.wakeup_handle();
        let log = broker.topic("t").unwrap().partition(0).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            handle.wakeup();
            std::thread::sleep(Duration::from_millis(30));
            log.append(&[Record::new("after")]).unwrap();
        });
        futures::executor::block_on(async {
            let mut stream = consumer.stream();
            let first = stream.next().await.unwrap();
            assert!(matches!(first, Err(embroker::Error::Wakeup)), "{first:?}");
            let records = stream.next().await.unwrap().unwrap();
            let values: Vec<_> = records.iter().map(|r| r.value.unwrap()).collect();
            assert_eq!(values, ["after"]);
        });
        writer.join().unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stream_tokio_current_thread() {
        stream_scenario(broker_with("t")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_tokio_multi_thread() {
        stream_scenario(broker_with("t")).await;
    }

    /// Records fetched but not yielded when the stream is dropped are not skipped.
    #[test]
    fn dropped_stream_skips_nothing() {
        let broker = broker_with("t");
        let log = broker.topic("t").unwrap().partition(0).unwrap();
        let batch: Vec<Record> = (0..10).map(|i| Record::new(format!("{i}"))).collect();
        log.append(&batch).unwrap();
        let mut consumer = broker.consumer(earliest()).unwrap();
        consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
        let first: Vec<i64> = futures::executor::block_on(
            consumer
                .record_stream()
                .take(3)
                .map(|r| r.unwrap().offset)
                .collect(),
        );
        assert_eq!(first, [0, 1, 2]);
        let records = consumer.poll(Duration::from_secs(5)).unwrap();
        assert_eq!(records.iter().next().map(|r| r.offset), Some(3));
    }
}
