"""Shared helpers of the outside client scripts (tests/outside/clients/*.py).

Every script is run as `python SCRIPT --bootstrap HOST:PORT [options] SCENARIO`. It prints one
JSON summary on stdout (`{"scenario": ..., "ok": true, ...}`), writes the records it produced or
expects to `--records FILE` as JSON when asked, and exits 0; on any failure it prints
`{"ok": false, "error": ...}` and exits non-zero. A watchdog thread ends every scenario after
`--timeout` seconds (it prints the failure and exits 3, killing the children it started), so no
scenario can hang whatever the broker does. tests/server_clients.rs runs these scripts.

Records in the JSON are `{"topic", "partition", "offset", "key", "value", "headers"}` with keys,
values and header values in hex (`null` for null), headers as `[name, hex-or-null]` pairs.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

# Child processes a scenario started: the watchdog kills them before it exits.
CHILDREN = []


def hexb(b):
    """Bytes (or str) as hex, None as None."""
    if b is None:
        return None
    if isinstance(b, str):
        b = b.encode()
    return bytes(b).hex()


def headers_json(headers):
    """A client's headers (list of (name, value) pairs, or None) as JSON pairs."""
    return [[k, hexb(v)] for k, v in (headers or [])]


def record(topic, partition, offset, key, value, headers=None, **extra):
    r = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": hexb(key),
        "value": hexb(value),
        "headers": headers_json(headers),
    }
    r.update(extra)
    return r


def same_record(a, b):
    """Whether two records (as `record` makes them) carry the same key, value and headers."""
    return a["key"] == b["key"] and a["value"] == b["value"] and a["headers"] == b["headers"]


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def log(*args):
    """Progress for a person reading the test's output: stderr, never stdout."""
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_until(what, cond, timeout, interval=0.05):
    """Polls `cond` until it is true; raises after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def kill_children():
    for child in CHILDREN:
        try:
            child.kill()
        except OSError:
            pass


def watchdog(seconds, scenario):
    def fire():
        time.sleep(seconds)
        kill_children()
        emit({"scenario": scenario, "ok": False, "error": f"watchdog: scenario did not finish in {seconds}s"})
        os._exit(3)

    threading.Thread(target=fire, daemon=True, name="watchdog").start()


def arg_parser(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    ap.add_argument("--records", help="write the records produced (or expected) here as JSON")
    ap.add_argument("--timeout", type=float, default=150.0, help="hard limit of the scenario, seconds")
    ap.add_argument("--create", action="store_true",
                    help="create the topics the scenario needs with the client's own admin API "
                         "(tests/server_clients.rs creates them in-process instead)")
    ap.add_argument("--topic", help="topic (scenario-specific default)")
    ap.add_argument("--group", help="consumer group (scenario-specific default)")
    ap.add_argument("--count", type=int, default=0, help="records (scenario-specific default)")
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("scenario")
    return ap


def main(scenarios, description):
    """Runs the scenario named on the command line from `scenarios` (name -> fn(args) -> dict).

    The function returns its summary; a `records` entry in it goes to `--records` instead of
    stdout. Exits the process with `os._exit` so no client library's shutdown can hang it.
    """
    args = arg_parser(description).parse_args()
    if args.scenario not in scenarios:
        emit({"scenario": args.scenario, "ok": False,
              "error": f"unknown scenario; known: {sorted(scenarios)}"})
        os._exit(2)
    watchdog(args.timeout, args.scenario)
    started = time.monotonic()
    try:
        summary = scenarios[args.scenario](args) or {}
    except BaseException as e:  # noqa: BLE001 - every failure is reported as JSON
        kill_children()
        emit({"scenario": args.scenario, "ok": False, "error": f"{type(e).__name__}: {e}",
              "traceback": traceback.format_exc()})
        os._exit(1)
    records = summary.pop("records", None)
    if args.records and records is not None:
        with open(args.records, "w") as f:
            json.dump(records, f)
    summary.update({"scenario": args.scenario, "ok": True,
                    "seconds": round(time.monotonic() - started, 3)})
    if records is not None:
        summary["record_count"] = len(records)
    emit(summary)
    os._exit(0)


def keyed(prefix, n, value_len=24):
    """`n` (key, value, headers) triples: keys `prefix-00000`..., values of `value_len` bytes."""
    out = []
    for i in range(n):
        key = f"{prefix}-{i:05d}".encode()
        value = (f"value {prefix} {i} ".encode() * value_len)[:value_len]
        headers = [("h-index", str(i).encode()), ("h-prefix", prefix.encode())]
        out.append((key, value, headers))
    return out


class GroupWatch:
    """What the members of a group consumed and were assigned, shared between their threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.consumed = []  # (member, record dict)
        self.assignments = {}  # member -> sorted partition list
        self.history = []  # (seconds, member, partitions)
        self.revocations = []  # (member, partitions revoked)
        self.errors = []
        self.t0 = time.monotonic()

    def add(self, member, records):
        with self.lock:
            self.consumed.extend((member, r) for r in records)

    def assigned(self, member, partitions):
        partitions = sorted(partitions)
        with self.lock:
            if self.assignments.get(member) != partitions:
                self.assignments[member] = partitions
                self.history.append((round(time.monotonic() - self.t0, 3), member, partitions))
                log(f"member {member} assigned {partitions}")

    def keys(self, members=None):
        with self.lock:
            return {r["key"] for m, r in self.consumed if members is None or m in members}

    def balanced(self, members, partitions):
        """Every member in `members` has partitions, they are disjoint and cover `partitions`."""
        if self.errors:
            raise AssertionError("; ".join(self.errors))
        with self.lock:
            got = [self.assignments.get(m, []) for m in members]
        flat = [p for ps in got for p in ps]
        return all(got) and len(flat) == len(set(flat)) and set(flat) == set(partitions)


def run_member_thread(watch, name, make, stop, poll_timeout=0.3):
    """Runs one group member in a thread: polls, commits after each non-empty poll, reports its
    assignment after every poll; on `stop`, commits, closes (leaving the group) and returns."""

    def body():
        try:
            member = make(name)
            while not stop.is_set():
                records = member.poll(poll_timeout)
                if records:
                    watch.add(name, records)
                    member.commit()
                watch.assigned(name, member.assignment())
            member.commit()
            member.close()
            watch.assigned(name, [])
        except BaseException as e:  # noqa: BLE001
            watch.errors.append(f"member {name}: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            log(f"member {name} failed: {e}")

    t = threading.Thread(target=body, name=f"member-{name}", daemon=True)
    t.start()
    return t


def group_scenario(args, lib, produce, make_member, partitions, phase=120, watch=None):
    """Three members join a group one by one, one leaves, the other two finish; every record is
    consumed (at least once); then a fresh member of the same group starts after the offsets the
    group committed and sees only records produced after they closed.

    `produce(topic, triples) -> [record]`; `make_member(name) -> object with poll(timeout) ->
    [record], commit(), assignment() -> [partition], close()`; `partitions` the topic's ids.
    """
    watch = watch or GroupWatch()
    produced = []

    def members_thread(name, stop):
        return run_member_thread(watch, name, make_member, stop)

    def all_consumed(keys, members=None):
        def cond():
            if watch.errors:
                raise AssertionError("; ".join(watch.errors))
            return keys <= watch.keys(members)
        return cond

    p1 = produce(args.topic, keyed(f"{lib}-p1", phase))
    produced += p1
    stops = {m: threading.Event() for m in "abcd"}
    threads = {}
    threads["a"] = members_thread("a", stops["a"])
    wait_until("member a to own every partition", lambda: watch.balanced("a", partitions), 60)
    threads["b"] = members_thread("b", stops["b"])
    wait_until("a and b to share the partitions", lambda: watch.balanced("ab", partitions), 60)
    threads["c"] = members_thread("c", stops["c"])
    wait_until("a, b and c to share the partitions", lambda: watch.balanced("abc", partitions), 60)
    wait_until("every phase-1 record consumed", all_consumed({r["key"] for r in p1}), 60)

    log("member c leaves")
    stops["c"].set()
    threads["c"].join(30)
    check(not threads["c"].is_alive(), "member c did not close in 30 s")
    wait_until("a and b to take c's partitions", lambda: watch.balanced("ab", partitions), 60)
    p2 = produce(args.topic, keyed(f"{lib}-p2", phase))
    produced += p2
    wait_until("every phase-2 record consumed", all_consumed({r["key"] for r in p2}), 60)
    log("members a and b leave")
    for m in "ab":
        stops[m].set()
    for m in "ab":
        threads[m].join(30)
        check(not threads[m].is_alive(), f"member {m} did not close in 30 s")
    if watch.errors:
        raise AssertionError("; ".join(watch.errors))
    before_restart = watch.keys()

    p3 = produce(args.topic, keyed(f"{lib}-p3", phase // 2))
    produced += p3
    threads["d"] = members_thread("d", stops["d"])
    wait_until("the restarted member d to consume phase 3", all_consumed({r["key"] for r in p3}, "d"), 60)
    time.sleep(1.5)  # anything d would re-read from before the commits shows up by now
    stops["d"].set()
    threads["d"].join(30)
    if watch.errors:
        raise AssertionError("; ".join(watch.errors))
    d_keys = watch.keys("d")
    reread = sorted(k for k in d_keys if k not in {r["key"] for r in p3})
    check(not reread, f"the restarted member re-read {len(reread)} records the group had committed: "
                      f"{[bytes.fromhex(k).decode() for k in reread[:5]]}")

    by_key = {r["key"]: r for r in produced}
    mismatched = [r for _, r in watch.consumed if not same_record(r, by_key.get(r["key"], {"key": None, "value": None, "headers": None}))]
    check(not mismatched, f"{len(mismatched)} consumed records differ from what was produced: {mismatched[:3]}")
    missing = {r["key"] for r in p1 + p2} - before_restart
    check(not missing, f"{len(missing)} records never consumed")
    duplicates = len(watch.consumed) - len({(r["partition"], r["offset"]) for _, r in watch.consumed})
    return {
        "topic": args.topic,
        "group": args.group,
        "partitions": sorted(partitions),
        "consumed": len(watch.consumed),
        "redelivered": duplicates,
        "assignments": watch.history,
        "revocations": watch.revocations,
        "records": produced,
    }


# The SIGKILL scenario: the members are child processes (this same script, scenario `member`).

def member_child(args, make_member):
    """A group member in its own process: prints JSON lines (`assignment`, `records`) and
    commits after each poll; exits after committing and closing when its stdin closes."""
    stop = threading.Event()

    def stdin_eof():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stdin_eof, daemon=True).start()
    member = make_member(f"child-{os.getpid()}")
    last = None
    while not stop.is_set():
        records = member.poll(0.3)
        if records:
            emit({"event": "records", "keys": [r["key"] for r in records]})
            member.commit()
        assignment = sorted(member.assignment())
        if assignment != last:
            last = assignment
            emit({"event": "assignment", "partitions": assignment})
    member.commit()
    member.close()
    emit({"event": "closed"})
    return {}


class ChildMember:
    def __init__(self, script, args, name):
        cmd = [sys.executable, script, "--bootstrap", args.bootstrap, "--topic", args.topic,
               "--group", args.group, "--session-timeout-ms", str(args.session_timeout_ms),
               "--timeout", str(args.timeout), "member"]
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        CHILDREN.append(self.proc)
        self.assignment = None
        self.keys = set()
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.lines.append(event)
                if event.get("event") == "assignment":
                    self.assignment = event["partitions"]
                    log(f"child {self.name} assigned {self.assignment}")
                elif event.get("event") == "records":
                    self.keys.update(event["keys"])

    def get(self):
        with self.lock:
            return self.assignment, set(self.keys)


def kill_member_scenario(args, script, lib, produce, partitions):
    """Three members in child processes; one is SIGKILLed: the broker must evict it after its
    session timeout (not before) and hand its partitions to the two survivors, which then
    consume records produced after the kill."""
    session_s = args.session_timeout_ms / 1000.0
    p1 = produce(args.topic, keyed(f"{lib}-k1", 90))
    children = [ChildMember(script, args, n) for n in ("a", "b", "c")]

    def balanced(members):
        got = [m.get()[0] for m in members]
        if any(not g for g in got):
            return False
        flat = [p for g in got for p in g]
        return len(flat) == len(set(flat)) and set(flat) == set(partitions)

    def consumed(keys, members):
        return keys <= set().union(*(m.get()[1] for m in members))

    wait_until("three child members to share the partitions", lambda: balanced(children), 90)
    wait_until("the children to consume phase 1", lambda: consumed({r["key"] for r in p1}, children), 60)
    victim, survivors = children[2], children[:2]
    victim_partitions = victim.get()[0]
    log(f"SIGKILL child c (pid {victim.proc.pid}) holding {victim_partitions}")
    killed_at = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    p2 = produce(args.topic, keyed(f"{lib}-k2", 90))
    wait_until("the survivors to take the killed member's partitions", lambda: balanced(survivors),
               session_s + 45, interval=0.02)
    moved_after = time.monotonic() - killed_at
    wait_until("the survivors to consume phase 2", lambda: consumed({r["key"] for r in p2}, survivors), 60)
    for m in survivors:
        m.proc.stdin.close()
    for m in survivors:
        m.proc.wait(timeout=30)
    check(moved_after >= session_s * 0.8,
          f"the killed member's partitions moved after {moved_after:.2f}s, before its session "
          f"timeout of {session_s}s (Kafka evicts on the session timeout, not on disconnect)")
    return {
        "topic": args.topic,
        "group": args.group,
        "session_timeout_s": session_s,
        "killed_partitions": victim_partitions,
        "moved_after_s": round(moved_after, 3),
        "survivor_assignments": [m.get()[0] for m in survivors],
        "records": p1 + p2,
    }
