//! Tests of the compression codecs: Kafka's names, ids and levels; fixtures written by Kafka's
//! own Java classes and by the reference tools (`testdata/compression/README.md` says how each
//! was made); round trips; hostile input (garbage, truncation, bombs) against the limit.
// The tests build and pick apart LZ4 and zstd frames, which are little-endian by their specs.
#![allow(clippy::little_endian_bytes)]

use super::*;
use proptest::prelude::*;

const TEXT: &[u8] = include_bytes!("../testdata/compression/text.raw");

/// The 100,000-byte payload of the `*-big.*` fixtures, as `Gen.java` makes it: it spans four
/// xerial blocks (32 KiB) and two LZ4 blocks (64 KiB).
fn big() -> Vec<u8> {
    (0..100_000u32)
        .map(|i| ((i % 251) ^ (i / 4096)) as u8)
        .collect()
}

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn unlimited(compression: Compression, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    decompress(compression, input, &mut out, usize::MAX)?;
    Ok(out)
}

fn compressed(codec: impl Into<CompressionCodec>, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress(codec.into(), input, &mut out).unwrap();
    out
}

/// A payload records might carry: JSON-ish text with some variety.
fn records(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "{{\"user\":{},\"event\":\"page_view\",\"ts\":{}}}\n",
                i * 7919 % 10007,
                1_700_000_000_000 + i * 37
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

// ---- names, ids, levels ----

#[test]
fn ids_and_names_are_kafkas() {
    let expected = [
        (Compression::None, 0, "none"),
        (Compression::Gzip, 1, "gzip"),
        (Compression::Snappy, 2, "snappy"),
        (Compression::Lz4, 3, "lz4"),
        (Compression::Zstd, 4, "zstd"),
    ];
    for (c, id, name) in expected {
        assert_eq!(c.id(), id);
        assert_eq!(Compression::from_id(id), Some(c));
        assert_eq!(c.name(), name);
        assert_eq!(c.to_string(), name);
        assert_eq!(name.parse::<Compression>(), Ok(c));
    }
    assert_eq!(Compression::default(), Compression::None);
    for id in [5, 6, 7, -1, 8, i16::MAX, i16::MIN] {
        assert_eq!(Compression::from_id(id), None, "id {id}");
    }
}

#[test]
fn names_parse_exactly_as_the_producer_config() {
    // `CompressionType.forName` compares exactly: no case folding, no trimming. The topic's
    // "uncompressed" and "producer" are broker-side values, not codecs.
    for name in [
        "GZIP",
        "Gzip",
        " gzip",
        "gzip ",
        "",
        "uncompressed",
        "producer",
        "lz4hc",
    ] {
        let err = name.parse::<Compression>().unwrap_err();
        assert_eq!(
            err,
            CompressionError::UnknownName {
                name: name.to_string()
            }
        );
        assert!(err.to_string().contains("none, gzip, snappy, lz4 and zstd"));
        assert_eq!(err.compression(), None);
    }
}

#[test]
fn levels_are_validated_as_kafka_validates_them() {
    let cases: &[(Compression, &[i32], &[i32])] = &[
        (
            Compression::Gzip,
            &[-1, 1, 6, 9],
            &[0, -2, 10, i32::MIN, i32::MAX],
        ),
        (Compression::Lz4, &[1, 9, 17], &[0, -1, 18]),
        (
            Compression::Zstd,
            &[-131_072, -1, 0, 3, 22],
            &[-131_073, 23],
        ),
        (Compression::None, &[], &[0, 1]),
        (Compression::Snappy, &[], &[0, 1]),
    ];
    for &(c, good, bad) in cases {
        for &level in good {
            let codec = CompressionCodec::with_level(c, level).unwrap();
            assert_eq!(codec.compression(), c);
            assert_eq!(codec.level(), Some(level));
        }
        for &level in bad {
            assert_eq!(
                CompressionCodec::with_level(c, level),
                Err(CompressionError::InvalidLevel {
                    compression: c,
                    level
                })
            );
        }
    }
    assert_eq!(CompressionCodec::new(Compression::Gzip).level(), Some(-1));
    assert_eq!(CompressionCodec::new(Compression::Lz4).level(), Some(9));
    assert_eq!(CompressionCodec::new(Compression::Zstd).level(), Some(3));
    assert_eq!(CompressionCodec::new(Compression::Snappy).level(), None);
    assert_eq!(CompressionCodec::default(), CompressionCodec::NONE);
    assert_eq!(CompressionCodec::NONE.level(), None);
    assert_eq!(
        CompressionCodec::from(Compression::Zstd),
        CompressionCodec::new(Compression::Zstd)
    );
}

#[test]
fn error_messages_name_the_codec_and_the_config_key() {
    let msg = |e: CompressionError| e.to_string();
    assert_eq!(
        msg(CompressionError::InvalidLevel {
            compression: Compression::Gzip,
            level: 10
        }),
        "compression.gzip.level: 10 is out of range: gzip levels are 1 to 9, or -1 for the default"
    );
    assert_eq!(
        msg(CompressionError::InvalidLevel {
            compression: Compression::Lz4,
            level: 0
        }),
        "compression.lz4.level: 0 is out of range: lz4 levels are 1 to 17"
    );
    assert_eq!(
        msg(CompressionError::InvalidLevel {
            compression: Compression::Zstd,
            level: 23
        }),
        "compression.zstd.level: 23 is out of range: zstd levels are -131072 to 22"
    );
    assert_eq!(
        msg(CompressionError::InvalidLevel {
            compression: Compression::Snappy,
            level: 1
        }),
        "snappy has no compression level (got 1)"
    );
    assert_eq!(
        msg(CompressionError::LimitExceeded {
            compression: Compression::Snappy,
            limit: 134_217_728,
            size: Some(300_000_000)
        }),
        "snappy: decompressed size 300000000 exceeds the 134217728-byte limit"
    );
    assert_eq!(
        msg(CompressionError::LimitExceeded {
            compression: Compression::Gzip,
            limit: 1024,
            size: None
        }),
        "gzip: decompressed size exceeds the 1024-byte limit"
    );
    let err = unlimited(Compression::Gzip, b"not gzip at all").unwrap_err();
    assert_eq!(
        err.to_string(),
        "gzip: invalid header: magic 6e 6f, expected 1f 8b (at byte 0)"
    );
    assert_eq!(err.compression(), Some(Compression::Gzip));
}

#[test]
fn error_is_send_sync_static() {
    fn check<T: Send + Sync + 'static + std::error::Error>() {}
    check::<CompressionError>();
}

// ---- bytes exactly as Kafka writes them ----

#[test]
fn framing_bytes_are_kafkas() {
    // The empty input shows the framing alone; the Java fixtures are Kafka's classes' output.
    let java_empty_gzip = include_bytes!("../testdata/compression/java-empty.gzip");
    let java_empty_snappy = include_bytes!("../testdata/compression/java-empty.snappy");
    let java_empty_lz4 = include_bytes!("../testdata/compression/java-empty.lz4");
    assert_eq!(compressed(Compression::Gzip, b""), java_empty_gzip);
    assert_eq!(compressed(Compression::Snappy, b""), java_empty_snappy);
    assert_eq!(compressed(Compression::Lz4, b""), java_empty_lz4);
    assert_eq!(
        java_empty_snappy,
        b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"
    );
    assert_eq!(
        java_empty_lz4,
        &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 0, 0, 0, 0]
    );
    assert_eq!(
        &java_empty_gzip[..10],
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]
    );

    // Non-empty: the same headers, at every level.
    for level in [-1, 1, 9] {
        let out = compressed(
            CompressionCodec::with_level(Compression::Gzip, level).unwrap(),
            TEXT,
        );
        assert_eq!(out[..10], gzip::HEADER);
    }
    for level in [1, 9, 17] {
        let out = compressed(
            CompressionCodec::with_level(Compression::Lz4, level).unwrap(),
            TEXT,
        );
        assert_eq!(out[..7], lz4::HEADER);
    }
    assert_eq!(
        compressed(Compression::Snappy, TEXT)[..16],
        snappy::XERIAL_HEADER
    );
    assert_eq!(
        compressed(Compression::Zstd, TEXT)[..4],
        [0x28, 0xb5, 0x2f, 0xfd]
    );
    assert_eq!(compressed(Compression::None, TEXT), TEXT);
}

#[test]
fn lz4_header_checksum_is_xxh32_of_the_descriptor() {
    // HC is the second byte of XXH32(FLG BD), seed 0: 0x82 for Kafka's 0x60 0x40, as the
    // lz4 tool's frames with the same descriptor show.
    let hc = (twox_hash::XxHash32::oneshot(0, &lz4::HEADER[4..6]) >> 8) as u8;
    assert_eq!(hc, lz4::HEADER[6]);
    assert_eq!(lz4::MAGIC.to_le_bytes(), lz4::HEADER[..4]);
}

/// Walks an LZ4 frame of Kafka's shape (7-byte header, no checksums): its blocks' sizes and
/// whether each is stored uncompressed.
fn lz4_blocks(frame: &[u8]) -> Vec<(usize, bool)> {
    let mut at = 7;
    let mut blocks = Vec::new();
    loop {
        let word = u32::from_le_bytes(frame[at..at + 4].try_into().unwrap());
        at += 4;
        if word == 0 {
            assert_eq!(at, frame.len());
            return blocks;
        }
        let size = (word & 0x7fff_ffff) as usize;
        blocks.push((size, word & 0x8000_0000 != 0));
        at += size;
    }
}

/// The sizes of a xerial stream's blocks.
fn xerial_blocks(stream: &[u8]) -> Vec<usize> {
    let mut at = 16;
    let mut blocks = Vec::new();
    while at < stream.len() {
        let n = u32::from_be_bytes(stream[at..at + 4].try_into().unwrap()) as usize;
        blocks.push(n);
        at += 4 + n;
    }
    blocks
}

#[test]
fn blocks_are_cut_where_kafka_cuts_them() {
    let big = big();
    // xerial: one block per 32 KiB of input, each decompressing to exactly that.
    let ours = compressed(Compression::Snappy, &big);
    let java = include_bytes!("../testdata/compression/java-big.snappy");
    assert_eq!(xerial_blocks(&ours).len(), 4);
    assert_eq!(xerial_blocks(java).len(), 4);
    assert_eq!(ours[..16], java[..16]);
    // The blocks inside are snap's, not the C++ snappy's that snappy-java wraps: the same
    // format, and here the same sizes, but the two choose some matches differently.
    assert_eq!(
        unlimited(Compression::Snappy, &compressed(Compression::Snappy, TEXT)).unwrap(),
        unlimited(
            Compression::Snappy,
            include_bytes!("../testdata/compression/java-text.snappy")
        )
        .unwrap()
    );

    // LZ4: one block per 64 KiB of input; an incompressible block is stored as it is.
    let ours = compressed(Compression::Lz4, &big);
    let java = include_bytes!("../testdata/compression/java-big.lz4");
    assert_eq!(lz4_blocks(&ours).len(), 2);
    assert_eq!(lz4_blocks(java).len(), 2);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..70_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let blocks = lz4_blocks(&compressed(Compression::Lz4, &noise));
    assert_eq!(blocks, vec![(65_536, true), (70_000 - 65_536, true)]);
}

// ---- fixtures from outside ----

#[test]
fn reads_what_kafkas_java_classes_write() {
    // Written by GZIPOutputStream, SnappyOutputStream, Kafka's Lz4BlockOutputStream (default
    // level 9 and level 12, which uses lz4-java's HC compressor) and zstd-jni's
    // ZstdOutputStreamNoFinalizer, with the arguments Kafka's *Compression classes pass.
    let big = big();
    let fixtures: &[(Compression, &[u8], &[u8])] = &[
        (
            Compression::Gzip,
            include_bytes!("../testdata/compression/java-text.gzip"),
            TEXT,
        ),
        (
            Compression::Gzip,
            include_bytes!("../testdata/compression/java-big.gzip"),
            &big,
        ),
        (
            Compression::Gzip,
            include_bytes!("../testdata/compression/java-empty.gzip"),
            b"",
        ),
        (
            Compression::Snappy,
            include_bytes!("../testdata/compression/java-text.snappy"),
            TEXT,
        ),
        (
            Compression::Snappy,
            include_bytes!("../testdata/compression/java-big.snappy"),
            &big,
        ),
        (
            Compression::Snappy,
            include_bytes!("../testdata/compression/java-empty.snappy"),
            b"",
        ),
        (
            Compression::Lz4,
            include_bytes!("../testdata/compression/java-text.lz4"),
            TEXT,
        ),
        (
            Compression::Lz4,
            include_bytes!("../testdata/compression/java-big.lz4"),
            &big,
        ),
        (
            Compression::Lz4,
            include_bytes!("../testdata/compression/java-text.lz4hc"),
            TEXT,
        ),
        (
            Compression::Lz4,
            include_bytes!("../testdata/compression/java-big.lz4hc"),
            &big,
        ),
        (
            Compression::Lz4,
            include_bytes!("../testdata/compression/java-empty.lz4"),
            b"",
        ),
        (
            Compression::Zstd,
            include_bytes!("../testdata/compression/java-text.zstd"),
            TEXT,
        ),
        (
            Compression::Zstd,
            include_bytes!("../testdata/compression/java-big.zstd"),
            &big,
        ),
        // zstd-jni writes nothing at all for an empty input.
        (Compression::Zstd, b"", b""),
    ];
    for (i, &(c, stream, expected)) in fixtures.iter().enumerate() {
        assert_eq!(unlimited(c, stream).unwrap(), expected, "fixture {i} ({c})");
    }
}

/// kafka-python's `test/test_codec.py` (`test_snappy_encode_xerial`): SNAPPY*50 then XERIAL*50
/// in xerial framing with 300-byte blocks.
const KAFKA_PYTHON_XERIAL: &[u8] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\
\x00\x00\x00\x18\
\xac\x02\x14SNAPPY\xfe\x06\x00\xfe\x06\x00\xfe\x06\x00\xfe\x06\x00\x96\x06\x00\
\x00\x00\x00\x18\
\xac\x02\x14XERIAL\xfe\x06\x00\xfe\x06\x00\xfe\x06\x00\xfe\x06\x00\x96\x06\x00";

#[test]
fn reads_and_writes_kafka_pythons_xerial_example() {
    let expected = [b"SNAPPY".repeat(50), b"XERIAL".repeat(50)].concat();
    assert_eq!(
        unlimited(Compression::Snappy, KAFKA_PYTHON_XERIAL).unwrap(),
        expected
    );
    // Byte for byte what kafka-python (python-snappy) writes with 300-byte blocks.
    let mut ours = Vec::new();
    snappy::compress(&expected, &mut ours, 300).unwrap();
    assert_eq!(ours, KAFKA_PYTHON_XERIAL);
    // Its blocks alone are raw snappy, as librdkafka writes: read without the framing.
    let raw = &KAFKA_PYTHON_XERIAL[20..44];
    assert_eq!(
        unlimited(Compression::Snappy, raw).unwrap(),
        b"SNAPPY".repeat(50)
    );
    // A header whose version fields are little-endian (redpanda's, kafka-python issue 2414).
    let mut swapped = KAFKA_PYTHON_XERIAL.to_vec();
    swapped[8..16].copy_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(unlimited(Compression::Snappy, &swapped).unwrap(), expected);
}

#[test]
fn reads_what_the_reference_tools_write() {
    // lz4 1.9.4 and zstd 1.5.4 command-line tools, GNU gzip (testdata README).
    let big = big();
    let text_big = [TEXT, big.as_slice()].concat();
    let fixtures: &[(Compression, &[u8], &[u8])] = &[
        // `lz4 -c`: a content checksum.
        (
            Compression::Lz4,
            include_bytes!("../testdata/compression/cli-text.lz4"),
            TEXT,
        ),
        // `lz4 -BX --content-size`: block checksums, the content size, a content checksum.
        (
            Compression::Lz4,
            include_bytes!("../testdata/compression/cli-text-checksums-size.lz4"),
            TEXT,
        ),
        // `lz4 -BD`: linked blocks, which reach back into the previous block.
        (
            Compression::Lz4,
            include_bytes!("../testdata/compression/cli-big-linked.lz4"),
            &big,
        ),
        // `zstd -19` from a pipe: no content size, an 8 MiB window.
        (
            Compression::Zstd,
            include_bytes!("../testdata/compression/cli-text-19.zstd"),
            TEXT,
        ),
        // `zstd -3` from a file: content size and checksum.
        (
            Compression::Zstd,
            include_bytes!("../testdata/compression/cli-text-checksum.zstd"),
            TEXT,
        ),
        // `zstd --long=27` from a pipe: a 128 MiB window for 100 KB of data.
        (
            Compression::Zstd,
            include_bytes!("../testdata/compression/cli-big-window128m.zstd"),
            &big,
        ),
        // `gzip -9 -n`.
        (
            Compression::Gzip,
            include_bytes!("../testdata/compression/cli-text.gzip"),
            TEXT,
        ),
        // Two members, the first with FNAME.
        (
            Compression::Gzip,
            include_bytes!("../testdata/compression/cli-text-big-2members.gzip"),
            &text_big,
        ),
    ];
    for (i, &(c, stream, expected)) in fixtures.iter().enumerate() {
        assert_eq!(unlimited(c, stream).unwrap(), expected, "fixture {i} ({c})");
        // The exact size is enough as a limit, one byte less is not.
        let mut out = Vec::new();
        decompress(c, stream, &mut out, expected.len()).unwrap();
        if !expected.is_empty() {
            let err = decompress(c, stream, &mut Vec::new(), expected.len() - 1).unwrap_err();
            assert!(
                matches!(err, CompressionError::LimitExceeded { .. }),
                "fixture {i}: {err}"
            );
        }
    }
}

#[test]
fn zstd_frames_with_a_large_window_get_a_window_the_size_of_the_limit() {
    // The `--long=27` fixture declares a 128 MiB window (descriptor 0x88).
    let stream = include_bytes!("../testdata/compression/cli-big-window128m.zstd");
    let header = zstandard_header(stream);
    assert_eq!(header.window, 128 << 20);
    // Lowered to the smallest window that holds the limit: 2^17 + 5 * 2^14 = 212,992 bytes
    // for 200,000.
    let (patched, lowered) = header.with_window_for(stream, 0, 200_000).unwrap();
    assert!(lowered);
    assert_eq!(patched[5], (7 << 3) | 5);
    assert_eq!(patched[..5], stream[..5]);
    // Never below a block (128 KiB): a block may be that large whatever the limit.
    let (patched, _) = header.with_window_for(stream, 0, 10).unwrap();
    assert_eq!(patched[5], 7 << 3);
    // Left alone when the limit is larger than the window.
    let (same, lowered) = header.with_window_for(stream, 0, 1 << 30).unwrap();
    assert!(!lowered);
    assert_eq!(same, stream[..header.len]);
    for (bytes, window) in [
        (1u64, 1024u64),
        (1024, 1024),
        (1025, 1024 + 128),
        (2047, 2048),
        (2048, 2048),
        (1 << 20, 1 << 20),
        ((1 << 20) + 1, (1 << 20) + (1 << 17)),
        (3 << 29, 3 << 29),
    ] {
        let (byte, got) = zstandard::window_descriptor(bytes);
        assert_eq!(got, window, "{bytes}");
        let base = 1u64 << (10 + (byte >> 3));
        assert_eq!(base + base / 8 * u64::from(byte & 7), window, "{bytes}");
    }
}

fn zstandard_header(stream: &[u8]) -> zstandard::Header {
    zstandard::Header::parse(stream, 0).unwrap()
}

// ---- round trips ----

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2_000),
        // Compressible, spanning several 32 KiB and 64 KiB blocks.
        (0usize..70_000, 1usize..300, any::<u8>()).prop_map(|(n, period, salt)| {
            (0..n)
                .map(|i| ((i % period) as u8).wrapping_add(salt) ^ (i / 5000) as u8)
                .collect()
        }),
        (0usize..70_000).prop_map(records),
    ]
}

fn codecs_with_levels() -> Vec<CompressionCodec> {
    let mut codecs = vec![
        CompressionCodec::NONE,
        CompressionCodec::new(Compression::Snappy),
    ];
    for level in [-1, 1, 5, 9] {
        codecs.push(CompressionCodec::with_level(Compression::Gzip, level).unwrap());
    }
    for level in [1, 9, 17] {
        codecs.push(CompressionCodec::with_level(Compression::Lz4, level).unwrap());
    }
    for level in [-5, 1, 3, 19] {
        codecs.push(CompressionCodec::with_level(Compression::Zstd, level).unwrap());
    }
    codecs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn round_trip_every_codec_and_level(input in payload()) {
        for codec in codecs_with_levels() {
            let c = codec.compression();
            let mut out = b"prefix".to_vec();
            compress(codec, &input, &mut out).unwrap();
            prop_assert_eq!(&out[..6], b"prefix");
            let stream = &out[6..];
            let mut back = b"kept".to_vec();
            decompress(c, stream, &mut back, input.len()).unwrap();
            prop_assert_eq!(&back[..4], b"kept");
            prop_assert!(back[4..] == input[..], "{:?} round trip of {} bytes", codec, input.len());
            if !input.is_empty() {
                let mut short = b"kept".to_vec();
                let err = decompress(c, stream, &mut short, input.len() - 1).unwrap_err();
                prop_assert!(matches!(err, CompressionError::LimitExceeded { .. }), "{}", err);
                prop_assert_eq!(&short, b"kept");
                prop_assert!(short.capacity() <= 4 + input.len(), "capacity {}", short.capacity());
            }
        }
    }

    #[test]
    fn lz4_frames_interoperate_with_lz4_flex_frames(input in payload(), variant in 0usize..6) {
        use std::io::{Read, Write};
        use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};
        // Ours, read by lz4_flex.
        let ours = compressed(Compression::Lz4, &input);
        let mut back = Vec::new();
        FrameDecoder::new(&ours[..]).read_to_end(&mut back).unwrap();
        prop_assert!(back == input);
        // lz4_flex's, with every option, read by ours.
        let mut info = FrameInfo::new();
        match variant {
            0 => {}
            1 => info = info.block_mode(BlockMode::Linked),
            2 => info = info.block_checksums(true).content_checksum(true),
            3 => info = info.block_size(BlockSize::Max256KB).content_size(Some(input.len() as u64)),
            4 => info = info.block_size(BlockSize::Max4MB).block_mode(BlockMode::Linked),
            _ => info = info.block_size(BlockSize::Max1MB).content_checksum(true),
        }
        let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(&input).unwrap();
        let theirs = encoder.finish().unwrap();
        prop_assert!(unlimited(Compression::Lz4, &theirs).unwrap() == input);
    }

    #[test]
    fn gzip_interoperates_with_flate2_gzip(input in payload(), level in 0u32..=9) {
        use std::io::{Read, Write};
        let ours = compressed(Compression::Gzip, &input);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&ours[..]).read_to_end(&mut back).unwrap();
        prop_assert!(back == input);
        let mut encoder = flate2::GzBuilder::new()
            .filename("records")
            .comment("a comment")
            .extra(vec![1, 2, 3])
            .mtime(1_700_000_000)
            .write(Vec::new(), flate2::Compression::new(level));
        encoder.write_all(&input).unwrap();
        let theirs = encoder.finish().unwrap();
        prop_assert!(unlimited(Compression::Gzip, &theirs).unwrap() == input);
    }

    #[test]
    fn zstd_interoperates_with_the_other_implementation(input in payload()) {
        use std::io::Read;
        let ours = compressed(Compression::Zstd, &input);
        // ruzstd's own streaming decoder reads what we write.
        let mut back = Vec::new();
        ruzstd::decoding::StreamingDecoder::new(&ours[..]).unwrap().read_to_end(&mut back).unwrap();
        prop_assert!(back == input);
        // With the C library built in, each side reads the other's frames.
        #[cfg(feature = "zstd-native")]
        {
            let mut theirs = Vec::new();
            ruzstd::encoding::compress(&input[..], &mut theirs, ruzstd::encoding::CompressionLevel::Fastest);
            prop_assert!(unlimited(Compression::Zstd, &theirs).unwrap() == input);
            let back = zstd::stream::decode_all(&ours[..]).unwrap();
            prop_assert!(back == input);
        }
    }
}

#[test]
fn concatenated_streams_read_as_one() {
    let (a, b) = (records(40_000), big());
    let ab = [a.as_slice(), b.as_slice()].concat();
    for c in CODECS {
        let stream = [compressed(c, &a), compressed(c, &b)].concat();
        assert_eq!(unlimited(c, &stream).unwrap(), ab, "{c}");
    }
    // Skippable frames (LZ4 and zstd share the range 0x184D2A50-5F) anywhere between frames.
    let skippable = [&[0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0][..], b"abc"].concat();
    for c in [Compression::Lz4, Compression::Zstd] {
        let stream = [
            skippable.clone(),
            compressed(c, &a),
            skippable.clone(),
            compressed(c, &b),
            skippable.clone(),
        ]
        .concat();
        assert_eq!(unlimited(c, &stream).unwrap(), ab, "{c}");
    }
}

#[test]
fn output_is_appended_and_the_limit_counts_only_what_is_appended() {
    for c in Compression::ALL {
        let stream = compressed(c, TEXT);
        let mut out = vec![7u8; 100];
        decompress(c, &stream, &mut out, TEXT.len()).unwrap();
        assert_eq!(out[..100], [7u8; 100]);
        assert_eq!(out[100..], *TEXT);
        // On error `out` is as it was.
        let mut out = vec![7u8; 100];
        let err = decompress(c, &stream, &mut out, TEXT.len() - 1).unwrap_err();
        assert!(
            matches!(err, CompressionError::LimitExceeded { .. }),
            "{c}: {err}"
        );
        assert_eq!(out, vec![7u8; 100]);
    }
}

// ---- hostile input ----

/// Decompresses `input` with `limit` and checks what every result must satisfy.
fn hostile(c: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let result = decompress(c, input, &mut out, limit);
    assert!(
        out.capacity() <= limit,
        "{c}: capacity {} over the limit {limit}",
        out.capacity()
    );
    match result {
        Ok(()) => Ok(out),
        Err(e) => {
            assert!(out.is_empty());
            assert_eq!(e.compression(), Some(c));
            Err(e)
        }
    }
}

/// Streams of every codec, to mutate.
fn valid_streams(c: Compression) -> Vec<Vec<u8>> {
    let mut streams = vec![
        compressed(c, TEXT),
        compressed(c, &records(3000)),
        compressed(c, b"x"),
    ];
    match c {
        Compression::Gzip => {
            streams.push(
                include_bytes!("../testdata/compression/cli-text-big-2members.gzip").to_vec(),
            );
        }
        Compression::Snappy => streams.push(KAFKA_PYTHON_XERIAL.to_vec()),
        Compression::Lz4 => {
            streams.push(
                include_bytes!("../testdata/compression/cli-text-checksums-size.lz4").to_vec(),
            );
            streams.push(include_bytes!("../testdata/compression/cli-big-linked.lz4").to_vec());
        }
        Compression::Zstd => {
            streams.push(include_bytes!("../testdata/compression/cli-text-checksum.zstd").to_vec());
            streams.push(include_bytes!("../testdata/compression/java-big.zstd").to_vec());
        }
        _ => {}
    }
    streams
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_is_an_error_not_a_panic(input in proptest::collection::vec(any::<u8>(), 0..3000), limit in 0usize..200_000) {
        for c in Compression::ALL {
            let _ = hostile(c, &input, limit);
        }
    }

    #[test]
    fn garbage_after_a_valid_header_is_an_error_not_a_panic(tail in proptest::collection::vec(any::<u8>(), 0..3000), limit in 0usize..200_000) {
        let headers: [(Compression, &[u8]); 5] = [
            (Compression::Gzip, &gzip::HEADER),
            (Compression::Snappy, &snappy::XERIAL_HEADER),
            (Compression::Lz4, &lz4::HEADER),
            (Compression::Lz4, &[0x04, 0x22, 0x4d, 0x18, 0x44, 0x70, 0x00]),
            (Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
        ];
        for (c, header) in headers {
            let _ = hostile(c, &[header, &tail].concat(), limit);
        }
        // And as one raw snappy block.
        let _ = hostile(Compression::Snappy, &tail, limit);
    }

    #[test]
    fn mutated_streams_are_errors_or_within_the_limit(
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in any::<Option<usize>>(),
        limit in 0usize..120_000,
    ) {
        for c in CODECS {
            for stream in valid_streams(c) {
                let mut s = stream.clone();
                for &(at, xor) in &flips {
                    let i = at % s.len();
                    s[i] ^= xor;
                }
                if let Some(cut) = cut {
                    s.truncate(cut % (s.len() + 1));
                }
                let _ = hostile(c, &s, limit);
            }
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    // Single-member, single-frame streams: any strict prefix is incomplete.
    let two_blocks = records(70_000);
    for c in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        for stream in [compressed(c, TEXT), compressed(c, &two_blocks)] {
            for n in 0..stream.len() {
                if c == Compression::Zstd && n == 0 {
                    continue; // empty zstd input is empty output
                }
                assert!(
                    hostile(c, &stream[..n], usize::MAX).is_err(),
                    "{c} prefix {n}"
                );
            }
        }
    }
    // xerial: a prefix that ends between blocks is a valid, shorter stream; no other is.
    let payload = records(40_000);
    let stream = compressed(Compression::Snappy, &payload);
    let boundaries: Vec<usize> = xerial_blocks(&stream)
        .iter()
        .scan(16, |at, n| {
            *at += 4 + n;
            Some(*at)
        })
        .collect();
    assert_eq!(boundaries.len(), 2);
    for n in 0..stream.len() {
        let result = hostile(Compression::Snappy, &stream[..n], usize::MAX);
        if n == 16 || boundaries.contains(&n) {
            let out = result.unwrap();
            assert_eq!(out[..], payload[..out.len()]);
        } else if n > 16 {
            assert!(result.is_err(), "snappy prefix {n}");
        }
        // Shorter than the 16-byte header, it is read as a raw block (and fails).
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    for c in CODECS {
        for tail in [&b"\0"[..], b"garbage", &[0; 16]] {
            let stream = [compressed(c, TEXT).as_slice(), tail].concat();
            let err = hostile(c, &stream, usize::MAX).unwrap_err();
            assert!(
                matches!(err, CompressionError::Corrupt { .. }),
                "{c}: {err}"
            );
        }
    }
}

#[test]
fn empty_input() {
    // Nothing was ever written as nothing but zstd-jni's empty stream; the others always write
    // a header, and their Java readers refuse empty input.
    for c in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
        let err = hostile(c, b"", 100).unwrap_err();
        assert!(err.to_string().contains("empty input"), "{err}");
    }
    assert_eq!(hostile(Compression::Zstd, b"", 100).unwrap(), b"");
    assert_eq!(hostile(Compression::None, b"", 0).unwrap(), b"");
}

#[test]
fn corruption_is_named() {
    let reason = |c: Compression, stream: &[u8]| match hostile(c, stream, usize::MAX) {
        Err(CompressionError::Corrupt { reason, .. }) => reason,
        other => panic!("{c}: expected a corruption, got {other:?}"),
    };
    let mut gz = compressed(Compression::Gzip, TEXT);
    let n = gz.len();
    gz[n - 8] ^= 1;
    assert!(reason(Compression::Gzip, &gz).starts_with("CRC-32 mismatch"));
    let mut gz = compressed(Compression::Gzip, TEXT);
    gz[n - 1] ^= 1;
    assert!(reason(Compression::Gzip, &gz).starts_with("size mismatch"));
    let mut gz = compressed(Compression::Gzip, TEXT);
    gz[3] = 0x20;
    assert!(reason(Compression::Gzip, &gz).contains("reserved flag bits"));
    let mut gz = compressed(Compression::Gzip, TEXT);
    gz[3] = 0x02; // FHCRC, with the deflate data where the CRC would be
    assert!(reason(Compression::Gzip, &gz).starts_with("header CRC mismatch"));

    let mut lz = compressed(Compression::Lz4, TEXT);
    lz[6] ^= 0xff;
    assert!(reason(Compression::Lz4, &lz).starts_with("header checksum"));
    let mut lz = compressed(Compression::Lz4, TEXT);
    lz[7..11].copy_from_slice(&(1u32 << 24).to_le_bytes());
    assert!(reason(Compression::Lz4, &lz).contains("exceeds the frame's 65536-byte maximum"));
    let dict = [0x04, 0x22, 0x4d, 0x18, 0x61, 0x40, 0x00];
    assert!(reason(Compression::Lz4, &dict).contains("dictionary"));
    let legacy = [0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0];
    assert!(reason(Compression::Lz4, &legacy).contains("legacy"));
    let mut lz = include_bytes!("../testdata/compression/cli-text.lz4").to_vec();
    let n = lz.len();
    lz[n - 1] ^= 1;
    assert_eq!(reason(Compression::Lz4, &lz), "content checksum mismatch");
    let mut lz = include_bytes!("../testdata/compression/cli-text-checksums-size.lz4").to_vec();
    let n = lz.len();
    lz[n - 12] ^= 1; // the block checksum
    assert_eq!(reason(Compression::Lz4, &lz), "block checksum mismatch");

    let mut sn = compressed(Compression::Snappy, TEXT);
    sn[16] = 0x80;
    assert!(reason(Compression::Snappy, &sn).starts_with("negative block length"));
    let mut sn = compressed(Compression::Snappy, TEXT);
    sn[16..20].copy_from_slice(&[0x82, 0x53, 0x4e, 0x41]);
    assert!(reason(Compression::Snappy, &sn).contains("concatenated"));

    let mut zs = include_bytes!("../testdata/compression/cli-text-checksum.zstd").to_vec();
    let n = zs.len();
    zs[n - 1] ^= 1;
    // ruzstd's checksum is checked here; the C library checks its own ("Restored data doesn't
    // match checksum").
    assert!(reason(Compression::Zstd, &zs).contains("checksum"));
    assert!(reason(Compression::Zstd, b"\x28\xb5\x2f\xfe").starts_with("invalid frame magic"));
}

// ---- bombs: 1 GiB of zeros, never materialised ----

const GIB: usize = 1 << 30;
const MIB: usize = 1 << 20;

fn assert_refused(c: Compression, stream: &[u8], size: Option<u64>) {
    let err = hostile(c, stream, MIB).unwrap_err();
    assert_eq!(
        err,
        CompressionError::LimitExceeded {
            compression: c,
            limit: MIB,
            size
        },
        "{c}"
    );
}

#[test]
fn bomb_gzip() {
    // 1024 members of 1 MiB of zeros each: about 1 MB of input, 1 GiB of output.
    let member = compressed(Compression::Gzip, &vec![0; MIB]);
    let stream = member.repeat(GIB / MIB);
    assert!(stream.len() < 2 * MIB);
    assert_refused(Compression::Gzip, &stream, None);
    // One member that is 1 GiB all by itself (deflate's best ratio is about 1032:1): 1 MiB of
    // zeros deflated and sync-flushed (so it ends on a byte boundary, as blocks that are not
    // the last), 1024 times, then an empty final block.
    let mut deflate = flate2::Compress::new(flate2::Compression::best(), false);
    let mut chunk = Vec::with_capacity(MIB);
    deflate
        .compress_vec(&vec![0; MIB], &mut chunk, flate2::FlushCompress::Sync)
        .unwrap();
    assert_eq!(deflate.total_in(), MIB as u64);
    let mut last = Vec::with_capacity(64);
    deflate
        .compress_vec(&[], &mut last, flate2::FlushCompress::Finish)
        .unwrap();
    let stream = [&gzip::HEADER[..], &chunk.repeat(GIB / MIB), &last, &[0; 8]].concat();
    assert!(stream.len() < 2 * MIB);
    assert_refused(Compression::Gzip, &stream, None);
}

#[test]
fn bomb_snappy() {
    // A raw block that declares 4 GiB - 1 in 7 bytes: refused on its length header, as more
    // than 7 bytes of snappy can hold, before anything is allocated.
    let err = hostile(
        Compression::Snappy,
        &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0],
        usize::MAX,
    );
    assert!(
        matches!(err, Err(CompressionError::Corrupt { .. })),
        "{err:?}"
    );
    // A xerial stream of 32,768 blocks of 32 KiB of zeros: the blocks' declared sizes add up
    // to 1 GiB before anything is decompressed.
    let one = compressed(Compression::Snappy, &vec![0; 32 * 1024]);
    let block = &one[16..];
    let mut stream = snappy::XERIAL_HEADER.to_vec();
    for _ in 0..GIB / (32 * 1024) {
        stream.extend_from_slice(block);
    }
    assert_refused(Compression::Snappy, &stream, Some(GIB as u64));
}

#[test]
fn bomb_lz4() {
    // 16,384 blocks of 64 KiB of zeros in one frame, without a content size.
    let one = compressed(Compression::Lz4, &vec![0; 64 * 1024]);
    let block = &one[7..one.len() - 4];
    let mut stream = lz4::HEADER.to_vec();
    for _ in 0..GIB / (64 * 1024) {
        stream.extend_from_slice(block);
    }
    stream.extend_from_slice(&[0; 4]);
    assert_refused(Compression::Lz4, &stream, None);
    // A frame that declares 1 TiB: refused on its header.
    let mut header = vec![0x04, 0x22, 0x4d, 0x18, 0x68, 0x40];
    header.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let hc = (twox_hash::XxHash32::oneshot(0, &header[4..]) >> 8) as u8;
    header.push(hc);
    assert_refused(Compression::Lz4, &header, Some(1 << 40));
}

/// A zstd frame of 1 GiB of zeros in 8,192 RLE blocks of 128 KiB (32 KB of input), declaring
/// a window of `window_descriptor`.
fn zstd_rle_bomb(window_descriptor: u8) -> Vec<u8> {
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, window_descriptor];
    let blocks = GIB / (128 * 1024);
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = last | (1 << 1) | ((128 * 1024) << 3);
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.push(0);
    }
    frame
}

#[test]
fn bomb_zstd() {
    // A 1 GiB window (descriptor (30 - 10) << 3) and a 2 GiB - 256 MiB one: either way the
    // decoder gets a window of the limit.
    for window in [20 << 3, (20 << 3) | 7] {
        let stream = zstd_rle_bomb(window);
        assert!(stream.len() < 40 * 1024);
        assert_refused(Compression::Zstd, &stream, None);
    }
    // The same frame at a limit it fits: the window does not have to be what it declares.
    let mut small = zstd_rle_bomb(20 << 3);
    small.truncate(6 + 4 * 4);
    small[6 + 3 * 4] |= 1; // the fourth block is the last
    assert_eq!(
        hostile(Compression::Zstd, &small, 4 * 128 * 1024).unwrap(),
        vec![0; 4 * 128 * 1024]
    );
    // A frame that declares 1 TiB of content (8-byte content size): refused on its header.
    let mut header = vec![0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x58];
    header.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert_refused(Compression::Zstd, &header, Some(1 << 40));
}

#[test]
fn bomb_none() {
    assert_refused(Compression::None, &vec![0; MIB + 1], Some(MIB as u64 + 1));
}
