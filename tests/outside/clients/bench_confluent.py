"""confluent-kafka (librdkafka) timings for benches/server.rs: embroker against librdkafka's
own mock cluster (`test.mock.num.brokers=1`, in this process, keeping nothing on disk).

Modes (one JSON line on stdout each; times in seconds, measured here so Python's start-up and
imports never count):

- `throughput --bootstrap HOST:PORT|mock --count N --acks 1|-1`: produce N records of 100 bytes
  round-robin to the 4 partitions of topic `bench` (the mock cluster auto-creates topics with 4
  partitions; the caller creates it so on embroker), the producer connected and the topic's
  metadata known before the clock starts, then flush; then a new consumer assigned to the 4
  partitions from the start reads all N. Prints `{"produce_s", "consume_s", "consume_first_s"}`:
  the consume time runs from the first record received to the last, since librdkafka's new
  consumer takes about half a second to its first record whatever the broker
  (`consume_first_s`, the start-up modes measure it). (The mock keeps
  only about 43,000 such records per partition: past that its log start moves and a reader from
  the start gets fewer than N, so N stays under 170,000.)
- `startup-mock`: from creating the mock cluster to the first record a new consumer reads
  (a new producer sends it). Prints `{"first_record_s"}`.
- `startup-stdin`: prints `ready`, reads a bootstrap address from stdin, then does what
  `startup-mock` does after the cluster exists, and prints `{"first_record_s"}` (from reading the
  address); the caller times from before it starts its broker to this line.
"""

import argparse
import json
import os
import sys
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

VALUE = b"x" * 100


def watchdog(seconds):
    def fire():
        time.sleep(seconds)
        print(json.dumps({"ok": False, "error": f"watchdog: no result in {seconds}s"}), flush=True)
        os._exit(3)
    threading.Thread(target=fire, daemon=True).start()


def mock_cluster():
    """A mock cluster of one broker; returns (the producer that owns it, its bootstrap)."""
    owner = Producer({"test.mock.num.brokers": 1, "log_level": 0})
    broker = list(owner.list_topics(timeout=10).brokers.values())[0]
    return owner, f"{broker.host}:{broker.port}"


def connected_producer(bootstrap, topic, **conf):
    p = Producer({"bootstrap.servers": bootstrap, "log_level": 3, **conf})
    # Connect and learn the topic (auto-created on both brokers) before any clock starts.
    deadline = time.monotonic() + 30
    while True:
        md = p.list_topics(topic=topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None and len(md.partitions) >= PARTITIONS:
            return p
        if time.monotonic() > deadline:
            raise RuntimeError(f"no metadata for {topic}: {md}")
        time.sleep(0.05)


PARTITIONS = 4


def consume(bootstrap, topic, n, partitions=PARTITIONS):
    """Reads `n` records from the start of `partitions`; returns the seconds from the
    consumer's creation to its first record and from its first record to its last."""
    start = time.perf_counter()
    conf = {"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
            "log_level": 3}
    # EMBROKER_BENCH_FETCH_WAIT_MS sets the consumer's fetch.wait.max.ms (librdkafka's default
    # is 500): a long poll on partitions already read to their end holds the connection, as
    # Kafka's in-order connection does, while the mock cluster sends its delayed empty answers
    # out of order; see docs/ARCHITECTURE.md (issue #18's figures).
    if os.environ.get("EMBROKER_BENCH_FETCH_WAIT_MS"):
        conf["fetch.wait.max.ms"] = int(os.environ["EMBROKER_BENCH_FETCH_WAIT_MS"])
    # EMBROKER_BENCH_QUEUE_BACKOFF_MS sets fetch.queue.backoff.ms (default 1000): how long
    # librdkafka waits before fetching a partition again once its local queue passed its
    # thresholds, which a broker answering large fetches makes it do.
    if os.environ.get("EMBROKER_BENCH_QUEUE_BACKOFF_MS"):
        conf["fetch.queue.backoff.ms"] = int(os.environ["EMBROKER_BENCH_QUEUE_BACKOFF_MS"])
    c = Consumer(conf)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = 0
    first = None
    while got < n:
        # One record first, so its arrival is timed; then batches.
        for m in c.consume(1 if first is None else min(10000, n - got), 1.0):
            if m.error():
                raise RuntimeError(str(m.error()))
            got += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    c.close()
    return first - start, end - first


def throughput(bootstrap, n, acks):
    owner = None
    if bootstrap == "mock":
        owner, bootstrap = mock_cluster()
    topic = "bench"
    errors = []

    def cb(err, _msg):
        if err is not None:
            errors.append(str(err))

    p = connected_producer(bootstrap, topic, acks=acks, **{"enable.idempotence": False})
    start = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, VALUE, partition=i % PARTITIONS, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
    left = p.flush(120)
    produce_s = time.perf_counter() - start
    if left or errors:
        raise RuntimeError(f"{left} undelivered, errors {errors[:3]}")
    first_s, consume_s = consume(bootstrap, topic, n)
    del owner
    return {"produce_s": produce_s, "consume_s": consume_s, "consume_first_s": first_s}


def first_record(bootstrap):
    topic = "first"
    p = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    p.produce(topic, VALUE, partition=0)
    p.flush(30)
    consume(bootstrap, topic, 1, partitions=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["throughput", "startup-mock", "startup-stdin"])
    ap.add_argument("--bootstrap", default="mock")
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--acks", default="1")
    args = ap.parse_args()
    watchdog(300)
    if args.mode == "throughput":
        out = throughput(args.bootstrap, args.count, args.acks)
    elif args.mode == "startup-mock":
        start = time.perf_counter()
        owner, bootstrap = mock_cluster()
        first_record(bootstrap)
        out = {"first_record_s": time.perf_counter() - start}
        del owner
    else:
        print("ready", flush=True)
        bootstrap = sys.stdin.readline().strip()
        start = time.perf_counter()
        first_record(bootstrap)
        out = {"first_record_s": time.perf_counter() - start}
    out["ok"] = True
    print(json.dumps(out), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
