#!/usr/bin/env python3
"""The outside oracle: kafka-python's own record-batch code against embroker's bytes.

kafka-python (https://github.com/dpkp/kafka-python) is an independent implementation of
Kafka's RecordBatch v2 (magic 2). Its reader and builder, not ours, decide here what the bytes
mean. Driven by tests/oracle_kafka_python.rs; the packages are pinned in requirements.txt
beside this file and installed by .ci/run into a virtual environment.

  read [DIR_OR_LOG_FILE...] --expect EXPECTED.json
      Walks every segment file EXPECTED names (and checks that every .log under the paths
      given is among them) batch by batch with kafka-python's MemoryRecords
      and DefaultRecordBatch, checks each CRC-32C with DefaultRecordBatch.validate_crc(), and
      compares every header field and every record (offset, timestamp, key, value, headers;
      control records' type and coordinator epoch) with what the Rust side put in (EXPECTED)
      and with what `embroker dump --json --records` printed for the same file (when EXPECTED
      names a dump). Each batch's records are also re-encoded with kafka-python's
      DefaultRecordBatchBuilder: the record bytes (after decompression) must be identical.

  build OUT_DIR
      Writes batches made by kafka-python's DefaultRecordBatchBuilder (no compression and each
      codec kafka-python supports; keys, null keys, tombstones, empty keys and values, headers,
      large values, out-of-order timestamps, many records; an idempotent and a transactional
      batch) as OUT_DIR/NAME.bin, one whole batch per file, and OUT_DIR/manifest.json listing
      each batch's header fields and records.

Bytes in JSON are lower-case hex strings; null is JSON null. Exits 0 when everything agrees,
1 on any difference (each named by file, batch and field), 2 on a usage or setup error.
"""

import argparse
import json
import os
import struct
import sys
from collections import OrderedDict
from importlib.metadata import version as installed_version

try:
    import kafka
    import kafka.codec as kcodec
    from kafka.record.default_records import (
        ControlRecord,
        DefaultRecordBatch,
        DefaultRecordBatchBuilder,
    )
    from kafka.record.memory_records import MemoryRecords
except ImportError as e:  # pragma: no cover - a setup error, reported plainly
    print(f"kafka-python is not installed ({e}): pip install -r {os.path.dirname(__file__)}/requirements.txt")
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))
# Kafka's CompressionType ids (attributes bits 0-2).
CODECS = OrderedDict([(0, "none"), (1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")])
CODEC_AVAILABLE = {
    0: lambda: True,
    1: kcodec.has_gzip,
    2: kcodec.has_snappy,
    3: kcodec.has_lz4,
    4: kcodec.has_zstd,
}
# kafka-python's decoders, the ones DefaultRecordBatch._maybe_uncompress calls.
DECODERS = {
    1: lambda data: kcodec.gzip_decode(data),
    2: lambda data: kcodec.snappy_decode(bytes(data)),
    3: lambda data: kcodec.lz4_decode(bytes(data)),
    4: lambda data: kcodec.zstd_decode(bytes(data)),
}
HEADER_BYTES = DefaultRecordBatch.HEADER_STRUCT.size  # 61
LOG_OVERHEAD = 12  # base offset + length
DELETE_HORIZON_BIT = 0x40  # KIP-534; kafka-python 3.0.12 does not name it


def check_setup():
    """The pinned versions are the installed ones, and every codec kafka-python knows loads."""
    problems = []
    with open(os.path.join(HERE, "requirements.txt")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, pinned = line.split("==")
            try:
                have = installed_version(name)
            except Exception:  # noqa: BLE001 - any lookup failure means not installed
                have = None
            if have != pinned:
                problems.append(f"{name}: requirements.txt pins {pinned}, installed {have}")
    for cid, available in CODEC_AVAILABLE.items():
        if not available():
            problems.append(f"kafka-python cannot load its {CODECS[cid]} codec library")
    if problems:
        print("setup error: " + "; ".join(problems))
        sys.exit(2)


def hexb(b):
    return None if b is None else bytes(b).hex()


def header_of(batch):
    """Every header field of a v2 batch, as kafka-python reads it."""
    return OrderedDict(
        base_offset=batch.base_offset,
        batch_length=batch.size_in_bytes - LOG_OVERHEAD,
        partition_leader_epoch=batch.leader_epoch,
        magic=batch.magic,
        crc=batch.crc,
        attributes=batch.attributes,
        compression=batch.compression_type,
        timestamp_type=batch.timestamp_type,
        transactional=batch.is_transactional,
        control=batch.is_control_batch,
        last_offset_delta=batch.last_offset_delta,
        base_timestamp=batch.first_timestamp,
        max_timestamp=batch.max_timestamp,
        producer_id=batch.producer_id,
        producer_epoch=batch.producer_epoch,
        base_sequence=batch.base_sequence,
        record_count=batch.records_count,
    )


def record_of(r):
    out = OrderedDict(
        offset=r.offset,
        timestamp=r.timestamp,
        key=hexb(r.key),
        value=hexb(r.value),
        headers=[[k, hexb(v)] for k, v in r.headers],
    )
    if isinstance(r, ControlRecord):
        control = OrderedDict(version=r.version, type=r.type)
        # Kafka's EndTransactionMarker value: version i16, coordinator epoch i32.
        if r.type in (0, 1) and r.value is not None and len(r.value) >= 6:
            control["coordinator_epoch"] = struct.unpack(">hi", bytes(r.value[:6]))[1]
        out["control"] = control
    return out


class Diffs:
    def __init__(self):
        self.items = []

    def add(self, where, what):
        self.items.append(f"{where}: {what}")

    def compare(self, where, field, ours, theirs, theirs_name):
        if ours != theirs:
            self.add(where, f"{field}: kafka-python reads {ours!r}, {theirs_name} says {theirs!r}")


def uncompressed_records(raw, compression):
    """The record bytes of a batch, decompressed with kafka-python's codec functions."""
    body = memoryview(raw)[HEADER_BYTES:]
    if compression == 0:
        return bytes(body)
    return bytes(DECODERS[compression](body))


def reencode(raw, header, records):
    """kafka-python's builder's encoding of these records: (header bytes 23..61, record bytes).

    The builder takes each record's offset delta, timestamp, key, value and headers, so this
    is only meaningful when the reader reports create times relative to the first record's:
    not for LogAppendTime batches nor batches whose base timestamp is a delete horizon.
    """
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=header["transactional"],
        producer_id=header["producer_id"],
        producer_epoch=header["producer_epoch"],
        base_sequence=header["base_sequence"],
        batch_size=1 << 31,
    )
    for r in records:
        headers = [(k, None if v is None else bytes.fromhex(v)) for k, v in r["headers"]]
        key = None if r["key"] is None else bytes.fromhex(r["key"])
        value = None if r["value"] is None else bytes.fromhex(r["value"])
        if builder.append(r["offset"] - header["base_offset"], r["timestamp"], key, value, headers) is None:
            raise RuntimeError("kafka-python's builder refused a record")
    rebuilt = bytes(builder.build())
    return rebuilt[23:HEADER_BYTES], rebuilt[HEADER_BYTES:]


def read_log(path):
    """(position, raw bytes, DefaultRecordBatch or other) for every batch, and trailing bytes."""
    with open(path, "rb") as f:
        data = f.read()
    records = MemoryRecords(data)
    out = []
    position = 0
    while records.has_next():
        batch = records.next_batch()
        size = batch.size_in_bytes
        out.append((position, data[position:position + size], batch))
        position += size
    return out, len(data) - records.valid_bytes(), len(data)


# Names `embroker dump --json` gives each header field.
DUMP_FIELDS = [
    ("base_offset", "base_offset", lambda h: h["base_offset"]),
    ("batch_length", "batch_length", lambda h: h["batch_length"]),
    ("partition_leader_epoch", "partition_leader_epoch", lambda h: h["partition_leader_epoch"]),
    ("magic", "magic", lambda h: h["magic"]),
    ("crc32c", "crc", lambda h: h["crc"]),
    ("attributes", "attributes", lambda h: h["attributes"]),
    ("compression", "compression", lambda h: CODECS.get(h["compression"], str(h["compression"]))),
    ("timestamp_type", "timestamp_type", lambda h: ["CreateTime", "LogAppendTime"][h["timestamp_type"]]),
    ("transactional", "transactional", lambda h: h["transactional"]),
    ("control", "control", lambda h: h["control"]),
    ("last_offset_delta", "last_offset_delta", lambda h: h["last_offset_delta"]),
    ("last_offset", "last_offset_delta", lambda h: h["base_offset"] + h["last_offset_delta"]),
    ("base_timestamp", "base_timestamp", lambda h: h["base_timestamp"]),
    ("max_timestamp", "max_timestamp", lambda h: h["max_timestamp"]),
    ("producer_id", "producer_id", lambda h: h["producer_id"]),
    ("producer_epoch", "producer_epoch", lambda h: h["producer_epoch"]),
    ("base_sequence", "base_sequence", lambda h: h["base_sequence"]),
    ("count", "record_count", lambda h: h["record_count"]),
    ("size", "batch_length", lambda h: h["batch_length"] + LOG_OVERHEAD),
]


def compare_with_dump(diffs, where, position, header, records, dumped):
    if dumped.get("position") != position:
        diffs.add(where, f"position: kafka-python finds the batch at {position}, dump says {dumped.get('position')!r}")
    if dumped.get("crc") != "ok":
        diffs.add(where, f"dump says crc {dumped.get('crc')!r}, kafka-python validates it")
    for dump_name, _, ours in DUMP_FIELDS:
        if dump_name not in dumped:
            diffs.add(where, f"dump --json has no field {dump_name!r}")
            continue
        diffs.compare(where, f"dump field {dump_name}", ours(header), dumped[dump_name], "dump")
    dumped_records = dumped.get("records")
    if dumped_records is None:
        diffs.add(where, "dump --json has no records (run it with --records)")
        return
    if len(dumped_records) != len(records):
        diffs.add(where, f"record count: kafka-python reads {len(records)}, dump lists {len(dumped_records)}")
    for r, d in zip(records, dumped_records):
        rw = f"{where} offset {r['offset']}"
        diffs.compare(rw, "offset", r["offset"], d.get("offset"), "dump")
        diffs.compare(rw, "timestamp", r["timestamp"], d.get("timestamp"), "dump")
        diffs.compare(rw, "key", r["key"], d.get("key_hex", "<missing key_hex>"), "dump")
        diffs.compare(rw, "value", r["value"], d.get("value_hex", "<missing value_hex>"), "dump")
        dumped_headers = [[h.get("key"), h.get("value_hex")] for h in d.get("headers_hex", [])]
        diffs.compare(rw, "headers", r["headers"], dumped_headers, "dump")


def compare_records(diffs, where, ours, expected):
    if len(ours) != len(expected):
        diffs.add(where, f"record count: kafka-python reads {len(ours)}, embroker wrote {len(expected)}")
    for r, e in zip(ours, expected):
        rw = f"{where} offset {r['offset']}"
        for field in ("offset", "timestamp", "key", "value", "headers", "control"):
            if field in e or field in r:
                diffs.compare(rw, field, r.get(field), e.get(field), "embroker wrote")


def segment_files(paths):
    """The .log files among `paths` and under the directories among them."""
    found = []
    for p in paths:
        if os.path.isdir(p):
            for root, _, files in os.walk(p):
                found += [os.path.join(root, f) for f in files if f.endswith(".log")]
        else:
            found.append(p)
    return sorted(os.path.realpath(f) for f in found)


def read_mode(paths, expect_path):
    with open(expect_path) as f:
        expect = json.load(f)
    diffs = Diffs()
    # Every segment under the paths given must be covered: none is skipped silently.
    listed = {os.path.realpath(log["path"]) for log in expect["logs"]}
    for path in segment_files(paths):
        if path not in listed:
            diffs.add(path, "a segment file the expectations do not cover")
    summary = OrderedDict()  # kind -> [batches, records]
    crc_checked = 0
    for log in expect["logs"]:
        path = log["path"]
        name = os.path.relpath(path, expect.get("root", os.path.dirname(path)))
        try:
            batches, trailing, size = read_log(path)
        except Exception as e:  # noqa: BLE001 - any failure of the library is a finding
            diffs.add(name, f"kafka-python cannot walk the file: {e!r}")
            continue
        if trailing:
            diffs.add(name, f"{trailing} bytes after the last whole batch (of {size})")
        dumped = None
        if log.get("dump"):
            with open(log["dump"]) as f:
                dumped = json.load(f)
            if dumped.get("size") != size:
                diffs.add(name, f"dump says size {dumped.get('size')}, the file has {size} bytes")
            if len(dumped.get("batches", [])) != len(batches):
                diffs.add(name, f"kafka-python finds {len(batches)} batches, dump lists {len(dumped.get('batches', []))}")
        expected_batches = log.get("batches")
        if expected_batches is not None and len(expected_batches) != len(batches):
            diffs.add(name, f"kafka-python finds {len(batches)} batches, embroker wrote {len(expected_batches)}")
        all_records = []
        previous_next = None
        for i, (position, raw, batch) in enumerate(batches):
            where = f"{name} batch {i} (byte {position})"
            if not isinstance(batch, DefaultRecordBatch):
                diffs.add(where, f"not a v2 batch: kafka-python reads {type(batch).__name__}")
                continue
            if not batch.validate_crc():
                diffs.add(where, f"kafka-python's validate_crc() fails (stored {batch.crc:#010x})")
            crc_checked += 1
            header = header_of(batch)
            try:
                records = [record_of(r) for r in batch]
            except Exception as e:  # noqa: BLE001
                diffs.add(where, f"kafka-python cannot read the records: {e!r}")
                continue
            all_records.extend(records)
            if previous_next is not None and header["base_offset"] < previous_next:
                diffs.add(where, f"base offset {header['base_offset']} below the previous batch's next offset {previous_next}")
            previous_next = header["base_offset"] + header["last_offset_delta"] + 1
            kind = log.get("kind", "?")
            exp = None
            if expected_batches is not None and i < len(expected_batches):
                exp = expected_batches[i]
                kind = exp.get("kind", kind)
                for field, value in exp.get("header", {}).items():
                    diffs.compare(where, field, header.get(field, f"<no field {field}>"), value, "embroker wrote")
                compare_records(diffs, where, records, exp["records"])
            for field, value in log.get("every_batch", {}).items():
                diffs.compare(where, field, header.get(field, f"<no field {field}>"), value, "embroker wrote")
            if dumped is not None and i < len(dumped.get("batches", [])):
                compare_with_dump(diffs, where, position, header, records, dumped["batches"][i])
            # The record bytes must be the ones Kafka's encoding gives (cleaned batches too:
            # embroker's cleaner rebuilds a batch as Kafka's does, base timestamp included).
            if header["timestamp_type"] == 0 and not header["attributes"] & DELETE_HORIZON_BIT:
                try:
                    fields, body = reencode(raw, header, records)
                    if fields != raw[23:HEADER_BYTES]:
                        diffs.add(where, f"header bytes 23..61 differ from kafka-python's builder's: {raw[23:HEADER_BYTES].hex()} vs {fields.hex()}")
                    stored = uncompressed_records(raw, header["compression"])
                    if body != stored:
                        at = next((j for j, (a, b) in enumerate(zip(body, stored)) if a != b), min(len(body), len(stored)))
                        diffs.add(where, f"record bytes differ from kafka-python's builder's at byte {at} of {len(stored)} (builder: {len(body)} bytes)")
                except Exception as e:  # noqa: BLE001
                    diffs.add(where, f"re-encoding with kafka-python's builder failed: {e!r}")
            label = CODECS.get(header["compression"], "?")
            if header["attributes"] & DELETE_HORIZON_BIT:
                label += ", delete horizon"
            counts = summary.setdefault(f"{kind} ({label})", [0, 0])
            counts[0] += 1
            counts[1] += len(records)
        if "records" in log:
            compare_records(diffs, name, all_records, log["records"])
        if "written_by_offset" in log:
            # A compacted log: each record kafka-python reads is the one written at its offset,
            # and none that compaction must keep is missing.
            written = log["written_by_offset"]
            seen = set()
            for r in all_records:
                seen.add(r["offset"])
                e = written.get(str(r["offset"]))
                if e is None:
                    diffs.add(name, f"offset {r['offset']}: kafka-python reads a record where none was written")
                else:
                    compare_records(diffs, name, [r], [e])
            for offset in log.get("must_contain", []):
                if offset not in seen:
                    diffs.add(name, f"offset {offset} (the latest of its key) is missing")
    print(f"kafka-python {kafka.__version__} read {crc_checked} batches (CRC-32C validated by kafka-python):")
    for kind, (b, r) in summary.items():
        print(f"  {kind}: {b} batches, {r} records")
    return finish(diffs)


def finish(diffs):
    if diffs.items:
        print(f"{len(diffs.items)} difference(s):")
        for item in diffs.items[:100]:
            print("  " + item)
        if len(diffs.items) > 100:
            print(f"  ... and {len(diffs.items) - 100} more")
        return 1
    print("no differences")
    return 0


# ---------------------------------------------------------------------------------------------
# build

BASE_TS = 1_700_000_000_000


def standard_records():
    """One batch's worth of records covering the record layout's cases, compressible enough that
    kafka-python's builder keeps the compressed form (it sends uncompressed otherwise)."""
    recs = [
        (BASE_TS, b"key-0", b"value-0 " * 40, []),
        (BASE_TS + 1, None, b"a record without a key", []),
        (BASE_TS + 2, b"deleted-key", None, []),  # a tombstone
        (BASE_TS + 3, b"", b"", []),  # empty, not null
        (BASE_TS - 5, b"k", b"an earlier timestamp", [("h1", b"v1"), ("h2", b""), ("\u043a\u043b\u044e\u0447", b"\x00\xff\x80")]),
        (BASE_TS + 10, b"\x00\x01binary-key\xff", bytes(range(256)), [("trace-id", b"abc" * 50)]),
        (BASE_TS + 20, b"big", b"0123456789abcdef" * 1300, []),  # 20,800 bytes: 3-byte varints
    ]
    for i in range(150):  # offset deltas past 63 take two varint bytes
        recs.append((BASE_TS + 100 + i, f"key-{i % 7}".encode(), f"value-{i}".encode() * 3, [("n", str(i).encode())]))
    return recs


def build_batch(records, compression=0, transactional=False, producer_id=-1, producer_epoch=-1, base_sequence=-1):
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=transactional,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        batch_size=16 * 1024 * 1024,
    )
    for delta, (ts, key, value, headers) in enumerate(records):
        if builder.append(delta, timestamp=ts, key=key, value=value, headers=headers) is None:
            raise RuntimeError("kafka-python's builder refused a record")
    return bytes(builder.build())


def build_mode(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    cases = []
    for cid, cname in CODECS.items():
        cases.append((cname, cname, dict(compression=cid), standard_records()))
    cases += [
        ("single", "none", {}, [(BASE_TS, b"only", b"one record", [])]),
        ("tombstones", "none", dict(compression=1), [(BASE_TS + i, f"gone-{i}".encode(), None, []) for i in range(30)]),
        ("idempotent", "none", dict(producer_id=77, producer_epoch=0, base_sequence=0),
         [(BASE_TS + i, b"idem", f"v{i}".encode(), []) for i in range(3)]),
        ("transactional", "none", dict(transactional=True, producer_id=123456789012, producer_epoch=3, base_sequence=42),
         [(BASE_TS + i, b"txn", f"in a transaction {i}".encode(), [("tx", b"1")]) for i in range(4)]),
        ("transactional-zstd", "zstd", dict(compression=4, transactional=True, producer_id=123456789013, producer_epoch=1, base_sequence=7),
         [(BASE_TS + i, b"txn", b"compressible " * 20, []) for i in range(5)]),
        # Kafka's header values are nullable; embroker's Header has no null (see the test).
        ("null-header-value", "none", {}, [(BASE_TS, b"k", b"v", [("present", b"x"), ("absent", None)])]),
    ]
    manifest = {"kafka_python": kafka.__version__, "batches": []}
    summary = []
    for name, kind, opts, records in cases:
        raw = build_batch(records, **opts)
        # Read our own output back with the library: a sane batch, compressed as asked.
        batch = DefaultRecordBatch(raw)
        if not batch.validate_crc():
            raise RuntimeError(f"{name}: kafka-python's own batch fails its CRC")
        header = header_of(batch)
        want = opts.get("compression", 0)
        if header["compression"] != want:
            raise RuntimeError(f"{name}: kafka-python did not compress with {CODECS[want]} (it falls back when that does not save bytes)")
        read_back = [record_of(r) for r in batch]
        entry = OrderedDict(name=name, kind=kind, file=f"{name}.bin", size=len(raw))
        entry.update(header)
        entry["records"] = [
            OrderedDict(
                offset_delta=delta,
                timestamp=ts,
                key=hexb(key),
                value=hexb(value),
                headers=[[k, hexb(v)] for k, v in headers],
            )
            for delta, (ts, key, value, headers) in enumerate(records)
        ]
        for r, e in zip(read_back, entry["records"]):
            assert (r["offset"], r["timestamp"], r["key"], r["value"], r["headers"]) == (
                e["offset_delta"], e["timestamp"], e["key"], e["value"], e["headers"]), name
        with open(os.path.join(out_dir, entry["file"]), "wb") as f:
            f.write(raw)
        manifest["batches"].append(entry)
        summary.append(f"  {name}: {CODECS[header['compression']]}, {len(records)} records, {len(raw)} bytes")
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"kafka-python {kafka.__version__} built {len(cases)} batches in {out_dir}:")
    print("\n".join(summary))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("read", help="read segment files with kafka-python and compare")
    r.add_argument("paths", nargs="*", help="segment files or directories; each .log found must be in EXPECTED")
    r.add_argument("--expect", required=True, help="the expectations JSON the Rust test wrote")
    b = sub.add_parser("build", help="write batches built by kafka-python")
    b.add_argument("out_dir")
    args = parser.parse_args()
    check_setup()
    if args.mode == "read":
        return read_mode(args.paths, args.expect)
    return build_mode(args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
