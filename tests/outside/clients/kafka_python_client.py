"""kafka-python against a Kafka broker: the scenarios of issue #18.

`python kafka_python_client.py --bootstrap HOST:PORT [--records FILE] SCENARIO`; see common.py
for the output. Scenarios:

- `codecs`: keyed records with headers (and a null key, an empty value) produced with each codec
  kafka-python supports (none, gzip, snappy, lz4, zstd) into auto-created topics
  `kp-codec-CODEC`, read back by an assigned consumer and compared.
- `group`: three members (threads) of group `kp-group` on topic `kp-group` (6 partitions, made by
  the caller or `--create`) join one by one, one leaves, all records consumed; a restarted
  member starts after the group's committed offsets.
- `admin`: KafkaAdminClient create/delete topics, create partitions, describe and alter configs
  (incrementally where the broker offers it), describe cluster, list/describe/delete groups.
- `kill_member`: three members in child processes, one SIGKILLed (common.kill_member_scenario).
- `member`: one such child.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import check, keyed, log, record, same_record, wait_until  # noqa: E402

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic  # noqa: E402
from kafka.errors import (  # noqa: E402
    CommitFailedError, KafkaError, RebalanceInProgressError, TopicAlreadyExistsError)

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def producer(args, **conf):
    return KafkaProducer(bootstrap_servers=args.bootstrap, client_id="embroker-outside-kp",
                         linger_ms=5, **conf)


def produce(args, topic, triples, **conf):
    p = producer(args, **conf)
    futures = [(p.send(topic, value=v, key=k, headers=h), (k, v, h)) for k, v, h in triples]
    out = []
    for f, (k, v, h) in futures:
        md = f.get(timeout=60)
        out.append(record(md.topic, md.partition, md.offset, k, v, h))
    p.close(timeout=10)
    return sorted(out, key=lambda r: (r["partition"], r["offset"]))


def consumer_record(m):
    return record(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers or []))


def partitions_of(args, topic, at_least=1, timeout=30):
    c = KafkaConsumer(bootstrap_servers=args.bootstrap, client_id="embroker-outside-kp-md")

    def get():
        parts = c.partitions_for_topic(topic)
        return sorted(parts) if parts and len(parts) >= at_least else None
    try:
        return wait_until(f"metadata of {topic}", get, timeout, interval=0.3)
    finally:
        c.close()


def create_topic(args, topic, partitions):
    a = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    try:
        a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    a.close()


def read_all(args, topic, partitions, expect):
    c = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", client_id="embroker-outside-kp-reader")
    tps = [TopicPartition(topic, p) for p in partitions]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    end = c.end_offsets(tps)
    out = []
    deadline = time.monotonic() + 60
    while any(c.position(tp) < end[tp] for tp in tps):
        check(time.monotonic() < deadline, f"reading {topic} stalled at {len(out)} of {expect}")
        for recs in c.poll(timeout_ms=200).values():
            out += [consumer_record(m) for m in recs]
    c.close()
    return out


def codecs(args):
    produced, per_codec = [], {}
    for codec in CODECS:
        name = codec or "none"
        topic = f"{args.topic or 'kp-codec'}-{name}"
        triples = keyed(f"kp-{name}", 40, value_len=300)
        triples.append((None, b"null key", [("h", b"x")]))
        triples.append((b"empty value", b"", []))
        triples.append((b"repeated header", b"v", [("dup", b"1"), ("dup", b"2")]))
        recs = produce(args, topic, triples, compression_type=codec, batch_size=4096)
        back = read_all(args, topic, partitions_of(args, topic), len(recs))
        by_pos = {(r["partition"], r["offset"]): r for r in back}
        for r in recs:
            got = by_pos.get((r["partition"], r["offset"]))
            check(got is not None, f"codec {name}: {r} not read back")
            check(same_record(r, got), f"codec {name}: wrote {r}, read {got}")
        check(len(back) == len(recs), f"codec {name}: read {len(back)}, produced {len(recs)}")
        per_codec[name] = len(recs)
        produced += recs
    return {"codecs": per_codec, "records": produced}


class Member:
    def __init__(self, args, name):
        self.name = name
        self.c = KafkaConsumer(
            bootstrap_servers=args.bootstrap, group_id=args.group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=args.session_timeout_ms,
            heartbeat_interval_ms=500, client_id=f"kp-member-{name}")
        self.c.subscribe([args.topic])

    def poll(self, timeout):
        out = []
        for recs in self.c.poll(timeout_ms=int(timeout * 1000)).values():
            out += [consumer_record(m) for m in recs]
        return out

    def commit(self):
        try:
            self.c.commit()
        except (CommitFailedError, RebalanceInProgressError) as e:
            log(f"member {self.name}: commit: {e}")

    def assignment(self):
        return [tp.partition for tp in self.c.assignment()]

    def close(self):
        self.c.close(autocommit=False)


def group_topic(args, default, partitions=6):
    args.topic = args.topic or default
    args.group = args.group or default
    if args.create:
        create_topic(args, args.topic, partitions)
    return partitions_of(args, args.topic)


def group(args):
    parts = group_topic(args, "kp-group")
    return common.group_scenario(
        args, "kp", lambda t, tr: produce(args, t, tr), lambda n: Member(args, n), parts)


def member(args):
    return common.member_child(args, lambda n: Member(args, n))


def kill_member(args):
    parts = group_topic(args, "kp-kill")
    return common.kill_member_scenario(args, os.path.abspath(__file__), "kp",
                                       lambda t, tr: produce(args, t, tr), parts)


def topic_configs(described, name):
    """The configs of topic `name` in describe_configs' {resource type: {name: configs}}."""
    for resource_type, by_name in described.items():
        if "topic" in str(resource_type).lower() and name in by_name:
            return by_name[name]
    raise AssertionError(f"describe_configs returned no configs of topic {name}: {str(described)[:500]}")


def admin(args):
    a = KafkaAdminClient(bootstrap_servers=args.bootstrap, client_id="embroker-outside-kp-admin")
    name = args.topic or "kp-admin"
    kept, gone = f"{name}-kept", f"{name}-deleted"
    done = {}
    a.create_topics([NewTopic(kept, num_partitions=3, replication_factor=1),
                     NewTopic(gone, num_partitions=2, replication_factor=1)])
    check(len(partitions_of(args, kept)) == 3, "created topic does not have 3 partitions")
    try:
        a.create_topics([NewTopic(kept, num_partitions=3, replication_factor=1)])
        raise AssertionError("creating an existing topic succeeded")
    except TopicAlreadyExistsError:
        pass
    done["create_topics"] = True
    a.create_partitions({kept: 5})
    check(len(partitions_of(args, kept, at_least=5)) == 5, "create_partitions did not give 5")
    done["create_partitions"] = True

    described = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, kept)],
                                   config_filter="all")
    configs = topic_configs(described, kept)
    log(f"describe_configs: {str(configs)[:300]}")
    check("retention.ms" in configs and "cleanup.policy" in configs,
          f"describe_configs lacks retention.ms or cleanup.policy: {str(configs)[:500]}")
    done["describe_configs"] = True
    result = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, kept,
                                             configs={"retention.ms": "7200000"})])
    log(f"alter_configs: {result}")
    after = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, kept)], config_filter="all")
    after = topic_configs(after, kept)
    value = after["retention.ms"]
    value = value.get("value") if isinstance(value, dict) else value
    check(str(value) == "7200000", f"retention.ms after alter_configs: {after['retention.ms']}")
    done["alter_configs"] = True

    cluster = a.describe_cluster()
    log(f"describe_cluster: {cluster}")
    done["describe_cluster"] = True

    group_id = f"{name}-group"
    produce(args, kept, keyed("kpadm", 10))
    c = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=group_id, enable_auto_commit=False,
                      auto_offset_reset="earliest", client_id="kp-admin-member")
    c.subscribe([kept])
    got = 0
    deadline = time.monotonic() + 30
    while got < 10 and time.monotonic() < deadline:
        got += sum(len(v) for v in c.poll(timeout_ms=300).values())
    check(got == 10, f"the admin group's member read {got} of 10")
    c.commit()
    groups = a.list_groups()
    log(f"list_groups: {groups}")
    ids = {g["group_id"] if isinstance(g, dict) else g[0] for g in groups}
    check(group_id in ids, f"list_groups lacks {group_id}: {ids}")
    desc = a.describe_groups([group_id])
    log(f"describe_groups: {str(desc)[:600]}")
    d = desc[group_id] if isinstance(desc, dict) else desc[0]
    members = d["members"] if isinstance(d, dict) else d.members
    check(len(members) == 1, f"describe_groups: {len(members)} members")
    state = d.get("group_state", d.get("state")) if isinstance(d, dict) else d.state
    done["describe_groups"] = {"state": str(state), "members": len(members)}
    offsets = a.list_group_offsets({group_id: None})
    log(f"list_group_offsets: {str(offsets)[:400]}")
    done["list_group_offsets"] = True
    c.close(autocommit=False)
    a.delete_groups([group_id])
    ids = {g["group_id"] if isinstance(g, dict) else g[0] for g in a.list_groups()}
    check(group_id not in ids, f"{group_id} still listed after delete_groups")
    done["delete_groups"] = True

    a.delete_topics([gone])
    wait_until(f"{gone} to leave the topic list", lambda: gone not in a.list_topics(), 15, interval=0.2)
    done["delete_topics"] = True
    a.close()
    return {"kept": kept, "deleted": gone, "done": done, "records": []}


if __name__ == "__main__":
    common.main({"codecs": codecs, "group": group, "admin": admin, "kill_member": kill_member,
                 "member": member}, __doc__.splitlines()[0])
