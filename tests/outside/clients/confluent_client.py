"""confluent-kafka (librdkafka) against a Kafka broker: the scenarios of issue #18.

`python confluent_client.py --bootstrap HOST:PORT [--records FILE] SCENARIO`; see common.py for
the output. Scenarios:

- `codecs`: keyed records with headers (and a null key, an empty value, a null header value)
  produced with each codec (none, gzip, snappy, lz4, zstd) into auto-created topics
  `cf-codec-CODEC`, read back by an assigned consumer and compared.
- `group`: three members (threads) of group `cf-group` on topic `cf-group` (6 partitions, made
  by the caller or `--create`) join one by one, one leaves, all records consumed; a restarted
  member starts after the group's committed offsets.
- `cooperative`: the same with `partition.assignment.strategy=cooperative-sticky`; checks that
  a join revokes only the partitions that move (an eager rebalance revokes all).
- `transactions`: an idempotent producer; a transactional one (commit, abort, commit);
  read_committed sees only committed records, read_uncommitted sees all; then
  consume-transform-produce with `send_offsets_to_transaction`.
- `admin`: AdminClient create/delete topics, create partitions, describe and incrementally alter
  configs, describe cluster, list/describe/delete consumer groups.
- `kill_member`: three members in child processes, one SIGKILLed (common.kill_member_scenario).
- `member`: one such child.
- `acked_produce`: produces `--count` records with acks=all, printing each acknowledged record as
  a JSON line `{"acked": record}` as it is acknowledged (for the server-kill test).
- `dump`: every record of `--topic`, from the start to the high watermark, to `--records`.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import check, keyed, log, record, same_record, wait_until  # noqa: E402

from confluent_kafka import (  # noqa: E402
    OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import (  # noqa: E402
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
# Commit errors that a rebalance makes normal: the records are then redelivered (at least once).
BENIGN_COMMIT = {KafkaError._NO_OFFSET, KafkaError.REBALANCE_IN_PROGRESS,
                 KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID,
                 KafkaError._ASSIGNMENT_LOST, KafkaError._STATE}


# Errors librdkafka reports outside any one request (fatal idempotence errors, a broker that
# does not support an API), as strings: produce() fails with them.
CLIENT_ERRORS = []


def on_error(err):
    log(f"librdkafka error: {err}")
    if err.fatal() or err.code() in (KafkaError._UNSUPPORTED_FEATURE, KafkaError._FATAL):
        CLIENT_ERRORS.append(str(err))


def base(args, **extra):
    conf = {"bootstrap.servers": args.bootstrap, "client.id": "embroker-outside-confluent",
            "log_level": 6, "error_cb": on_error}
    conf.update(extra)
    return conf


def message_record(msg, **extra):
    return record(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                  msg.headers(), **extra)


def produce(args, topic, triples, flush_before=None, producer=None, **conf):
    """Produces (key, value, headers) triples; returns their records from the delivery reports
    (partition and offset from the broker). Raises on any delivery error."""
    p = producer or Producer(base(args, **{"linger.ms": 5, **conf}))
    out, errors = [], []

    def report(triple):
        def cb(err, msg):
            if err is not None:
                errors.append(f"{triple[0]}: {err}")
            else:
                key, value, headers = triple
                out.append(record(msg.topic(), msg.partition(), msg.offset(), key, value, headers))
        return cb

    for triple in triples:
        key, value, headers = triple
        while True:
            try:
                p.produce(topic, value=value, key=key, headers=headers, on_delivery=report(triple))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    try:
        left = p.flush(60)
    except SystemError as e:
        # confluent-kafka 2.16 raises this from flush after a fatal librdkafka error (such as
        # "Idempotent producer not supported by any of the connected brokers"), which its log
        # on stderr names.
        raise AssertionError(f"flush failed after a fatal client error {CLIENT_ERRORS} "
                             f"(librdkafka's FATAL log line on stderr says which): {e}") from e
    check(not CLIENT_ERRORS, f"client errors: {CLIENT_ERRORS[:5]}")
    check(left == 0, f"{left} records not delivered in 60 s")
    check(not errors, f"delivery errors: {errors[:5]}")
    return sorted(out, key=lambda r: (r["partition"], r["offset"]))


def partitions_of(args, topic, at_least=1, timeout=30):
    """The topic's partition ids, once its metadata lists `at_least` of them."""
    admin = AdminClient(base(args))

    def get():
        md = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        if md is None or md.error is not None or len(md.partitions) < at_least:
            return None
        return sorted(md.partitions)
    return wait_until(f"metadata of {topic}", get, timeout, interval=0.2)


def create_topic(args, topic, partitions):
    admin = AdminClient(base(args))
    for _, f in admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                              replication_factor=1)]).items():
        try:
            f.result(15)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def read_all(args, topic, partitions, isolation="read_uncommitted", settle=1.0, expect=None):
    """Every record of `partitions` from the start to their high watermark (or, with `expect`,
    until that many records arrived and `settle` seconds passed without more)."""
    c = Consumer(base(args, **{"group.id": "embroker-outside-reader", "enable.auto.commit": False,
                               "isolation.level": isolation, "enable.partition.eof": True}))
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out = []
    eof = set()
    deadline = time.monotonic() + 60
    last_new = time.monotonic()
    while time.monotonic() < deadline:
        msgs = c.consume(500, 0.2)
        for m in msgs:
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            out.append(message_record(m))
            last_new = time.monotonic()
            eof.discard(m.partition())
        done_eof = eof >= set(partitions)
        if expect is None and done_eof:
            break
        if expect is not None and len(out) >= expect and time.monotonic() - last_new > settle:
            break
    else:
        raise AssertionError(f"reading {topic} did not finish in 60 s ({len(out)} records)")
    c.close()
    return out


def compare(produced, consumed, what):
    by_pos = {(r["topic"], r["partition"], r["offset"]): r for r in consumed}
    missing = [r for r in produced if (r["topic"], r["partition"], r["offset"]) not in by_pos]
    check(not missing, f"{what}: {len(missing)} produced records not read back: {missing[:3]}")
    wrong = [(r, by_pos[(r["topic"], r["partition"], r["offset"])]) for r in produced
             if not same_record(r, by_pos[(r["topic"], r["partition"], r["offset"])])]
    check(not wrong, f"{what}: {len(wrong)} records read back differ: {wrong[:2]}")


def codecs(args):
    produced, per_codec = [], {}
    for codec in CODECS:
        topic = f"{args.topic or 'cf-codec'}-{codec}"
        triples = keyed(f"cf-{codec}", 40, value_len=300)
        triples.append((None, b"null key", [("h", b"x")]))
        triples.append((b"empty value", b"", []))
        triples.append((b"null header value", b"v", [("nothing", None), ("dup", b"1"), ("dup", b"2")]))
        recs = produce(args, topic, triples, **{"compression.type": codec, "batch.num.messages": 20})
        parts = partitions_of(args, topic)
        back = read_all(args, topic, parts)
        compare(recs, back, f"codec {codec}")
        check(len(back) == len(recs), f"codec {codec}: read {len(back)} records, produced {len(recs)}")
        per_codec[codec] = len(recs)
        produced += recs
    return {"codecs": per_codec, "records": produced}


class Member:
    """A group member for common.group_scenario and common.member_child."""

    def __init__(self, args, name, strategy="range", watch=None):
        self.name, self.watch = name, watch
        self.c = Consumer(base(args, **{
            "group.id": args.group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": args.session_timeout_ms, "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": strategy, "client.id": f"cf-member-{name}"}))
        self.c.subscribe([args.topic], on_revoke=self.on_revoke)

    def on_revoke(self, consumer, partitions):
        if self.watch is not None:
            held = sorted(tp.partition for tp in consumer.assignment())
            revoked = sorted(tp.partition for tp in partitions)
            with self.watch.lock:
                self.watch.revocations.append((self.name, held, revoked))

    def poll(self, timeout):
        out = []
        for m in self.c.consume(500, timeout):
            if m.error():
                raise KafkaException(m.error())
            out.append(message_record(m))
        return out

    def commit(self):
        try:
            self.c.commit(asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() not in BENIGN_COMMIT:
                raise
            log(f"member {self.name}: commit: {e}")

    def assignment(self):
        return [tp.partition for tp in self.c.assignment()]

    def close(self):
        self.c.close()


def group_topic(args, default, partitions=6):
    args.topic = args.topic or default
    args.group = args.group or default
    if args.create:
        create_topic(args, args.topic, partitions)
    return partitions_of(args, args.topic)


def group(args):
    parts = group_topic(args, "cf-group")
    return common.group_scenario(
        args, "cf", lambda t, tr: produce(args, t, tr), lambda n: Member(args, n), parts)


def cooperative(args):
    parts = group_topic(args, "cf-coop")
    w = common.GroupWatch()

    def make(name):
        m = Member(args, name, strategy="cooperative-sticky", watch=w)
        return m

    summary = common.group_scenario(args, "coop", lambda t, tr: produce(args, t, tr), make, parts,
                                    watch=w)
    # Eager rebalancing revokes everything a member holds at every join; cooperative-sticky
    # revokes only what moves. Joins of b and c must leave a with some of its partitions.
    a_revokes = [(held, revoked) for who, held, revoked in w.revocations if who == "a"]
    partial = [x for x in a_revokes if x[1] and set(x[1]) < set(x[0])]
    check(partial, f"member a never kept part of its assignment through a rebalance: {a_revokes}")
    summary["a_revocations"] = a_revokes
    return summary


def transactions(args):
    topic = args.topic or "cf-txn"
    if args.create:
        create_topic(args, topic, 3)
        create_topic(args, f"{topic}-idem", 3)
        create_topic(args, f"{topic}-out", 3)
    produced = []
    # Idempotent, not transactional.
    idem = produce(args, f"{topic}-idem", keyed("idem", 200),
                   **{"enable.idempotence": True, "acks": "all"})
    back = read_all(args, f"{topic}-idem", partitions_of(args, f"{topic}-idem"))
    compare(idem, back, "idempotent")
    check(len(back) == len(idem), f"idempotent: read {len(back)}, produced {len(idem)} (duplicates?)")
    produced += [dict(r, txn="none") for r in idem]

    # Transactional: commit, abort, commit.
    p = Producer(base(args, **{"transactional.id": "embroker-outside-txn", "linger.ms": 5}))
    p.init_transactions(30)
    txns = [("c1", "commit"), ("a1", "abort"), ("c2", "commit")]
    by_txn = {}
    for name, end in txns:
        p.begin_transaction()
        recs = produce(args, topic, keyed(f"txn-{name}", 50), producer=p)
        if end == "commit":
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
        by_txn[name] = recs
        produced += [dict(r, txn="committed" if end == "commit" else "aborted") for r in recs]
    parts = partitions_of(args, topic)
    committed = by_txn["c1"] + by_txn["c2"]
    rc = read_all(args, topic, parts, isolation="read_committed")
    compare(committed, rc, "read_committed")
    aborted_keys = {r["key"] for r in by_txn["a1"]}
    seen_aborted = [r for r in rc if r["key"] in aborted_keys]
    check(not seen_aborted, f"read_committed returned {len(seen_aborted)} aborted records")
    check(len(rc) == len(committed), f"read_committed read {len(rc)}, committed {len(committed)}")
    ru = read_all(args, topic, parts, isolation="read_uncommitted")
    compare(committed + by_txn["a1"], ru, "read_uncommitted")

    # Consume-transform-produce: offsets committed inside the transaction.
    group_id = "cf-txn-ctp"
    c = Consumer(base(args, **{"group.id": group_id, "enable.auto.commit": False,
                               "auto.offset.reset": "earliest", "isolation.level": "read_committed"}))
    c.subscribe([topic])
    tp2 = Producer(base(args, **{"transactional.id": "embroker-outside-ctp", "linger.ms": 5}))
    tp2.init_transactions(30)
    copied = []
    deadline = time.monotonic() + 60
    while len(copied) < len(committed):
        check(time.monotonic() < deadline, f"consume-transform-produce stalled at {len(copied)}")
        msgs = [m for m in c.consume(100, 0.5) if not m.error()]
        if not msgs:
            continue
        tp2.begin_transaction()
        copied += produce(args, f"{topic}-out",
                          [(m.key(), m.value(), m.headers()) for m in msgs], producer=tp2)
        tp2.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
        tp2.commit_transaction(30)
    c.close()
    out = read_all(args, f"{topic}-out", partitions_of(args, f"{topic}-out"), isolation="read_committed")
    check(sorted(r["key"] for r in out) == sorted(r["key"] for r in committed),
          "the copied topic does not hold exactly the committed records")
    produced += [dict(r, txn="committed") for r in copied]
    # The group's offsets were committed with the transactions: a new member reads nothing.
    c = Consumer(base(args, **{"group.id": group_id, "enable.auto.commit": False,
                               "auto.offset.reset": "earliest", "isolation.level": "read_committed"}))
    c.subscribe([topic])
    again = []
    end = time.monotonic() + 4
    while time.monotonic() < end:
        again += [m for m in c.consume(100, 0.3) if not m.error()]
    c.close()
    check(not again, f"a new member of {group_id} re-read {len(again)} records after the "
                     "offsets committed in the transactions")
    return {"idempotent": len(idem), "committed": len(committed), "aborted": len(by_txn["a1"]),
            "copied": len(copied), "ctp_group": group_id, "records": produced}


def admin(args):
    a = AdminClient(base(args))
    name = args.topic or "cf-admin"
    kept, gone = f"{name}-kept", f"{name}-deleted"
    done = {}
    for t, f in a.create_topics([NewTopic(kept, num_partitions=3, replication_factor=1),
                                 NewTopic(gone, num_partitions=2, replication_factor=1)]).items():
        f.result(15)
    check(len(partitions_of(args, kept)) == 3, "created topic does not have 3 partitions")
    # Creating it again: TOPIC_ALREADY_EXISTS.
    try:
        a.create_topics([NewTopic(kept, num_partitions=3, replication_factor=1)])[kept].result(15)
        raise AssertionError("creating an existing topic succeeded")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, f"creating it again: {e}")
    done["create_topics"] = True
    a.create_partitions([NewPartitions(kept, 5)])[kept].result(15)
    check(len(partitions_of(args, kept, at_least=5)) == 5, "create_partitions did not give 5")
    done["create_partitions"] = True

    res = ConfigResource("topic", kept)
    configs = a.describe_configs([res])[res].result(15)
    check("retention.ms" in configs and "cleanup.policy" in configs,
          f"describe_configs lacks retention.ms or cleanup.policy: {sorted(configs)[:20]}")
    done["describe_configs"] = {k: configs[k].value for k in ("retention.ms", "cleanup.policy")}
    alter = ConfigResource("topic", kept, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([alter])[alter].result(15)
    after = a.describe_configs([res])[res].result(15)
    check(after["retention.ms"].value == "3600000",
          f"retention.ms after incremental_alter_configs: {after['retention.ms'].value}")
    done["incremental_alter_configs"] = True

    cluster = a.describe_cluster().result(15) if hasattr(a, "describe_cluster") else None
    if cluster is not None:
        check(len(cluster.nodes) == 1, f"describe_cluster: {cluster.nodes}")
        done["describe_cluster"] = [f"{n.host}:{n.port}" for n in cluster.nodes]

    # A live group: one member, then list / describe / delete.
    group_id = f"{name}-group"
    produce(args, kept, keyed("adm", 10))
    c = Consumer(base(args, **{"group.id": group_id, "auto.offset.reset": "earliest",
                               "enable.auto.commit": False}))
    c.subscribe([kept])
    got = 0
    deadline = time.monotonic() + 30
    while got < 10 and time.monotonic() < deadline:
        got += len([m for m in c.consume(100, 0.3) if not m.error()])
    check(got == 10, f"the admin group's member read {got} of 10")
    c.commit(asynchronous=False)
    listed = a.list_consumer_groups().result(15)
    ids = {g.group_id for g in listed.valid}
    check(group_id in ids, f"list_consumer_groups lacks {group_id}: {ids}")
    desc = a.describe_consumer_groups([group_id])[group_id].result(15)
    check(len(desc.members) == 1, f"describe_consumer_groups: {len(desc.members)} members")
    assigned = sorted(tp.partition for tp in desc.members[0].assignment.topic_partitions)
    check(assigned == [0, 1, 2, 3, 4], f"described assignment {assigned}")
    done["describe_consumer_groups"] = {"state": str(desc.state), "members": len(desc.members),
                                        "assigned": assigned}
    if hasattr(a, "list_consumer_group_offsets"):
        from confluent_kafka import ConsumerGroupTopicPartitions
        offsets = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)])[group_id].result(15)
        total = sum(tp.offset for tp in offsets.topic_partitions if tp.offset >= 0)
        check(total == 10, f"list_consumer_group_offsets: committed offsets sum to {total}, not 10")
        done["list_consumer_group_offsets"] = total
    c.close()
    a.delete_consumer_groups([group_id])[group_id].result(15)
    ids = {g.group_id for g in a.list_consumer_groups().result(15).valid}
    check(group_id not in ids, f"{group_id} still listed after delete_consumer_groups")
    done["delete_consumer_groups"] = True

    a.delete_topics([gone])[gone].result(15)
    wait_until(f"{gone} to leave the metadata",
               lambda: gone not in a.list_topics(timeout=5).topics, 15, interval=0.2)
    done["delete_topics"] = True
    return {"kept": kept, "deleted": gone, "done": done, "records": []}


def member(args):
    return common.member_child(args, lambda n: Member(args, n))


def kill_member(args):
    args.topic = args.topic or "cf-kill"
    args.group = args.group or "cf-kill"
    if args.create:
        create_topic(args, args.topic, 6)
    parts = partitions_of(args, args.topic)
    return common.kill_member_scenario(args, os.path.abspath(__file__), "cf",
                                       lambda t, tr: produce(args, t, tr), parts)


def acked_produce(args):
    topic = args.topic or "cf-acked"
    count = args.count or 1_000_000
    p = Producer(base(args, **{"acks": "all", "linger.ms": 2, "enable.idempotence": False,
                               "message.timeout.ms": 15000, "retries": 0, "log_level": 3}))
    acked, failed = [0], [0]
    lock = threading.Lock()

    def cb(err, msg):
        if err is not None:
            failed[0] += 1
            if failed[0] <= 3:
                common.emit({"failed": str(err)})
            return
        acked[0] += 1
        with lock:
            common.emit({"acked": message_record(msg)})

    for i in range(count):
        while True:
            try:
                p.produce(topic, key=f"acked-{i:07d}".encode(), value=f"value {i}".encode() * 4,
                          on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        if len(p) > 2000:
            p.poll(0.01)
        else:
            p.poll(0)
    p.flush(30)
    return {"acked": acked[0], "failed": failed[0]}


def dump(args):
    parts = partitions_of(args, args.topic)
    recs = read_all(args, args.topic, parts)
    return {"topic": args.topic, "records": recs}


if __name__ == "__main__":
    common.main({"codecs": codecs, "group": group, "cooperative": cooperative,
                 "transactions": transactions, "admin": admin, "kill_member": kill_member,
                 "member": member, "acked_produce": acked_produce, "dump": dump},
                __doc__.splitlines()[0])
