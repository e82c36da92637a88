//! Codecs benchmark: compression and decompression through embroker's `codec::compress` and
//! `codec::decompress`, against the codec crate called directly on the same bytes, in the same
//! run, interleaved round by round; each row's figure is its median over the rounds, and each
//! embroker row is shown as a percentage of its crate row.
//!
//! Inputs: a records section as a producer batch carries it (Kafka v2 records: varint lengths
//! and deltas, a key, a JSON value, one header), of 16 KiB and 256 KiB. Each row processes 8
//! MiB of uncompressed data per round (times `EMBROKER_BENCH_SCALE`, default 1); rounds:
//! `EMBROKER_BENCH_RUNS` (default 7).
//!
//! The crate rows write what the crate writes by itself: gzip via `flate2`'s `GzEncoder` /
//! `GzDecoder`; snappy as one raw block (`snap::raw`, what librdkafka writes; embroker writes
//! xerial's framing of 32 KiB blocks, as Kafka's Java client does); LZ4 frames of independent
//! 64 KiB blocks through `lz4_flex`'s frame module (embroker writes the same format through
//! lz4_flex's block API); zstd through `ruzstd` (with feature `zstd-native`: the C library at
//! level 3, Kafka's default).
//!
//! Two more rows per codec go through the batch path the log uses: `compress_batch` (a whole
//! uncompressed batch in, its compressed twin out, CRC-32C included) and `inflate_batch` (the
//! other way, the records checked), against the same crate rows.
//!
//! With feature `zstd-native`, a last table compares the two zstd implementations themselves
//! (ratio and speed, JSON-ish and random bytes, 16 KiB and 1 MiB).
//!
//! `cargo bench --bench codecs [--features zstd-native]`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(clippy::too_many_arguments)]
#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use embroker::codec::{
    compress, compress_batch, decode_batch, decode_batch_crc_only, decompress, inflate_batch,
    BatchBuilder, Compression, CompressionCodec, HEADER_BYTES,
};
use support::{Report, Row};

/// Uncompressed bytes each row processes per round, before `EMBROKER_BENCH_SCALE`.
const PASS_BYTES: u64 = 8 << 20;
const LIMIT: usize = 1 << 30;

fn rounds() -> usize {
    std::env::var("EMBROKER_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7)
        .max(1)
}

/// A deterministic generator, so every run measures the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A records section of whole records, at most `size` bytes, and how many records it holds.
fn records_section(size: usize) -> (Vec<u8>, u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let events = ["page_view", "add_to_cart", "checkout", "login", "search"];
    let (mut section, mut n) = (Vec::with_capacity(size), 0u64);
    loop {
        let r = rng.next();
        let key = format!("user-{}", r % 100_000);
        let value = format!(
            r#"{{"user_id":{},"session":"{:016x}","event":"{}","ts":{},"url":"https://shop.example.com/p/{}","price":{}.{:02},"currency":"EUR"}}"#,
            r % 100_000,
            rng.next(),
            events[(r % 5) as usize],
            1_700_000_000_000 + n * 37,
            r % 5000,
            r % 500,
            r % 100
        );
        let trace = format!("{:016x}", rng.next());
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, (n * 3) as i64); // timestamp delta
        put_varint(&mut body, n as i64); // offset delta
        put_varint(&mut body, key.len() as i64);
        body.extend_from_slice(key.as_bytes());
        put_varint(&mut body, value.len() as i64);
        body.extend_from_slice(value.as_bytes());
        put_varint(&mut body, 1);
        put_varint(&mut body, 8);
        body.extend_from_slice(b"trace-id");
        put_varint(&mut body, trace.len() as i64);
        body.extend_from_slice(trace.as_bytes());
        let mut record = Vec::new();
        put_varint(&mut record, body.len() as i64);
        record.extend_from_slice(&body);
        if section.len() + record.len() > size {
            return (section, n);
        }
        section.extend_from_slice(&record);
        n += 1;
    }
}

#[cfg(feature = "zstd-native")]
fn random_bytes(size: usize) -> Vec<u8> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    (0..size).map(|_| (rng.next() >> 24) as u8).collect()
}

/// One row: its labels and one timed pass.
struct Contender<'a> {
    group: String,
    name: String,
    baseline: Option<String>,
    records: u64,
    bytes: u64,
    pass: Box<dyn FnMut() -> Duration + 'a>,
}

/// A row that runs `op` on `input` `n` times per pass.
fn contender<'a, T>(
    group: &str,
    name: &str,
    baseline: Option<&str>,
    records: u64,
    input: &'a [u8],
    uncompressed: usize,
    mut op: impl FnMut(&[u8]) -> T + 'a,
) -> Contender<'a> {
    let n = (support::scaled(PASS_BYTES) / uncompressed as u64).max(1);
    Contender {
        group: group.into(),
        name: name.into(),
        baseline: baseline.map(str::to_string),
        records: records * n,
        bytes: uncompressed as u64 * n,
        pass: Box::new(move || {
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(op(std::hint::black_box(input)));
            }
            start.elapsed()
        }),
    }
}

/// Runs pass `k` of every row before pass `k + 1` of any, then reports each row's median.
fn measure_interleaved(report: &mut Report, mut rows: Vec<Contender<'_>>) {
    let mut samples = vec![Vec::new(); rows.len()];
    for _ in 0..rounds() {
        for (row, samples) in rows.iter_mut().zip(&mut samples) {
            samples.push((row.pass)());
        }
    }
    for (row, mut samples) in rows.into_iter().zip(samples) {
        samples.sort_unstable();
        report.push(Row {
            group: row.group,
            name: row.name,
            records: row.records,
            bytes: row.bytes,
            elapsed: samples[samples.len() / 2],
            baseline: row.baseline,
            note: String::new(),
            rounds: Vec::new(),
        });
    }
}

fn ours_compress(codec: CompressionCodec) -> impl FnMut(&[u8]) -> Vec<u8> {
    move |input| {
        let mut out = Vec::new();
        compress(codec, input, &mut out).expect("compress");
        out
    }
}

fn ours_decompress(c: Compression) -> impl FnMut(&[u8]) -> Vec<u8> {
    move |input| {
        let mut out = Vec::new();
        decompress(c, input, &mut out, LIMIT).expect("decompress");
        out
    }
}

/// An uncompressed v2 batch holding `section` (`records` records): a real header in front.
fn plain_batch(section: &[u8], records: u64) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.push(1_700_000_000_000, None, Some(b"x"), &[]).unwrap();
    let mut batch = b.finish()[..HEADER_BYTES].to_vec();
    batch.extend_from_slice(section);
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[23..27].copy_from_slice(&(records as i32 - 1).to_be_bytes());
    batch[57..61].copy_from_slice(&(records as i32).to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    decode_batch(&batch).expect("the bench's plain batch decodes");
    batch
}

fn ours_compress_batch(codec: CompressionCodec) -> impl FnMut(&[u8]) -> Vec<u8> {
    move |plain| {
        let batch = decode_batch_crc_only(plain).expect("plain batch");
        let mut out = Vec::new();
        compress_batch(&batch, codec, &mut out).expect("compress_batch");
        out
    }
}

fn ours_inflate_batch(compressed: &[u8]) -> Vec<u8> {
    let batch = decode_batch_crc_only(compressed).expect("compressed batch");
    let mut out = Vec::new();
    inflate_batch(&batch, &mut out).expect("inflate_batch");
    out
}

/// A crate's own call, named.
type CrateOp = (&'static str, Box<dyn FnMut(&[u8]) -> Vec<u8>>);

fn crate_compress(c: Compression) -> CrateOp {
    match c {
        Compression::Gzip => (
            "flate2 GzEncoder",
            Box::new(|input| {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                e.write_all(input).unwrap();
                e.finish().unwrap()
            }),
        ),
        Compression::Snappy => (
            "snap::raw, one block",
            Box::new(|input| snap::raw::Encoder::new().compress_vec(input).unwrap()),
        ),
        Compression::Lz4 => (
            "lz4_flex FrameEncoder",
            Box::new(|input| {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
                e.write_all(input).unwrap();
                e.finish().unwrap()
            }),
        ),
        #[cfg(feature = "zstd-native")]
        Compression::Zstd => (
            "zstd (C) bulk, level 3",
            Box::new(|input| zstd::bulk::compress(input, 3).unwrap()),
        ),
        #[cfg(not(feature = "zstd-native"))]
        Compression::Zstd => (
            "ruzstd compress_to_vec",
            Box::new(|input| {
                ruzstd::encoding::compress_to_vec(
                    input,
                    ruzstd::encoding::CompressionLevel::Fastest,
                )
            }),
        ),
        _ => unreachable!("no crate for {c}"),
    }
}

fn crate_decompress(c: Compression) -> CrateOp {
    match c {
        Compression::Gzip => (
            "flate2 GzDecoder",
            Box::new(|input| {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(input)
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }),
        ),
        Compression::Snappy => (
            "snap::raw, one block",
            Box::new(|input| snap::raw::Decoder::new().decompress_vec(input).unwrap()),
        ),
        Compression::Lz4 => (
            "lz4_flex FrameDecoder",
            Box::new(|input| {
                let mut out = Vec::new();
                lz4_flex::frame::FrameDecoder::new(input)
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }),
        ),
        #[cfg(feature = "zstd-native")]
        Compression::Zstd => (
            "zstd (C) decode_all",
            Box::new(|input| zstd::stream::decode_all(input).unwrap()),
        ),
        #[cfg(not(feature = "zstd-native"))]
        Compression::Zstd => (
            "ruzstd StreamingDecoder",
            Box::new(|input| {
                let mut out = Vec::new();
                ruzstd::decoding::StreamingDecoder::new(input)
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }),
        ),
        _ => unreachable!("no crate for {c}"),
    }
}

fn workload(report: &mut Report, label: &str, size: usize) {
    let (section, records) = records_section(size);
    let codecs = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    // Every stream decompressed below, made once.
    let streams: Vec<(Vec<u8>, Vec<u8>)> = codecs
        .iter()
        .map(|&c| {
            let ours = ours_compress(CompressionCodec::new(c))(&section);
            let theirs = crate_compress(c).1(&section);
            assert_eq!(ours_decompress(c)(&ours), section);
            assert_eq!(crate_decompress(c).1(&theirs), section);
            (ours, theirs)
        })
        .collect();
    let plain = plain_batch(&section, records);
    let batches: Vec<Vec<u8>> = codecs
        .iter()
        .map(|&c| {
            let compressed = ours_compress_batch(CompressionCodec::new(c))(&plain);
            assert_eq!(ours_inflate_batch(&compressed), plain);
            compressed
        })
        .collect();
    let mut rows = Vec::new();
    for ((&c, (ours, theirs)), batch) in codecs.iter().zip(&streams).zip(&batches) {
        let group = format!("{c} {label}");
        let (name, op) = crate_compress(c);
        let base = format!("compress: {name}");
        rows.push(contender(
            &group,
            &base,
            None,
            records,
            &section,
            section.len(),
            op,
        ));
        rows.push(contender(
            &group,
            "compress: embroker",
            Some(&base),
            records,
            &section,
            section.len(),
            ours_compress(CompressionCodec::new(c)),
        ));
        let (name, op) = crate_decompress(c);
        let base = format!("decompress: {name}");
        rows.push(contender(
            &group,
            &base,
            None,
            records,
            theirs,
            section.len(),
            op,
        ));
        rows.push(contender(
            &group,
            "decompress: embroker",
            Some(&base),
            records,
            ours,
            section.len(),
            ours_decompress(c),
        ));
        rows.push(contender(
            &group,
            "decompress: embroker inflate_batch",
            Some(&base),
            records,
            batch,
            section.len(),
            ours_inflate_batch,
        ));
        rows.push(contender(
            &group,
            "compress: embroker compress_batch",
            Some(&format!("compress: {}", crate_compress(c).0)),
            records,
            &plain,
            section.len(),
            ours_compress_batch(CompressionCodec::new(c)),
        ));
    }
    measure_interleaved(report, rows);
    for (&c, (ours, theirs)) in codecs.iter().zip(&streams) {
        report.note(
            &format!("{c} {label}"),
            "compression ratio",
            format!(
                "{:.2} embroker, {:.2} crate ({} -> {} / {} bytes)",
                section.len() as f64 / ours.len() as f64,
                section.len() as f64 / theirs.len() as f64,
                section.len(),
                ours.len(),
                theirs.len()
            ),
        );
    }
}

/// ruzstd against the C library, on the crates directly: what feature `zstd-native` buys.
#[cfg(feature = "zstd-native")]
fn zstd_backends(report: &mut Report) {
    // The records column counts records for the JSON inputs and inputs for the random ones.
    for (label, (input, records)) in [
        ("json 16 KiB", records_section(16 << 10)),
        ("json 1 MiB", records_section(1 << 20)),
        ("random 16 KiB", (random_bytes(16 << 10), 1)),
        ("random 1 MiB", (random_bytes(1 << 20), 1)),
    ] {
        let group = format!("zstd {label}");
        let ratio = |c: &[u8]| input.len() as f64 / c.len() as f64;
        let fastest = ruzstd::encoding::CompressionLevel::Fastest;
        let mut notes = vec![format!(
            "ruzstd {:.2}",
            ratio(&ruzstd::encoding::compress_to_vec(&input[..], fastest))
        )];
        for level in [1, 3, 9] {
            let c = zstd::bulk::compress(&input, level).unwrap();
            notes.push(format!("C level {level} {:.2}", ratio(&c)));
        }
        let level3 = zstd::bulk::compress(&input, 3).unwrap();
        let mut rows = vec![contender(
            &group,
            "compress: ruzstd (Fastest)",
            None,
            records,
            &input,
            input.len(),
            move |i| ruzstd::encoding::compress_to_vec(i, fastest),
        )];
        for level in [1, 3, 9] {
            rows.push(contender(
                &group,
                &format!("compress: zstd (C) level {level}"),
                Some("compress: ruzstd (Fastest)"),
                records,
                &input,
                input.len(),
                move |i| zstd::bulk::compress(i, level).unwrap(),
            ));
        }
        rows.push(contender(
            &group,
            "decompress level-3 frame: ruzstd",
            None,
            records,
            &level3,
            input.len(),
            |i| {
                let mut out = Vec::new();
                ruzstd::decoding::StreamingDecoder::new(i)
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap();
                out
            },
        ));
        rows.push(contender(
            &group,
            "decompress level-3 frame: zstd (C)",
            Some("decompress level-3 frame: ruzstd"),
            records,
            &level3,
            input.len(),
            |i| zstd::stream::decode_all(i).unwrap(),
        ));
        measure_interleaved(report, rows);
        report.note(&group, "compression ratio", notes.join(", "));
    }
}

fn main() {
    // `cargo test --benches` runs bench binaries without `--bench`: only run under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut report = Report::default();
    eprintln!(
        "codecs benchmark (median of {} interleaved rounds, {} uncompressed bytes per row and round)",
        rounds(),
        support::scaled(PASS_BYTES)
    );
    workload(&mut report, "16 KiB", 16 << 10);
    workload(&mut report, "256 KiB", 256 << 10);
    report.print(
        "Codecs: embroker::codec::{compress, decompress} vs the codec crates called directly",
    );
    #[cfg(feature = "zstd-native")]
    {
        let mut backends = Report::default();
        zstd_backends(&mut backends);
        backends.print("zstd: ruzstd (default build) vs the C library (feature zstd-native), crates called directly");
    }
}
