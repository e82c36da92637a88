//! Kafka's compression codecs as pure functions over byte slices: the five values of
//! `compression.type` (none, gzip, snappy, lz4, zstd), written and read exactly as Kafka's Java
//! clients write and read them.
//!
//! Owns: the codec ids of a v2 batch's attributes bits 0-2 and Kafka's names for them
//! ([`Compression`]); a codec with its level, as `compression.type` and
//! `compression.{gzip,lz4,zstd}.level` (KIP-390) configure it ([`CompressionCodec`]); and each
//! codec's stream framing ([`compress`], [`decompress`]). It knows nothing of batches: the batch
//! code hands it a records section and gets a records section back.
//!
//! Invariants:
//! - Pure: no I/O, no clock, no global or thread-local state; every call builds what it needs.
//! - [`decompress`] never panics and never reads outside its input, whatever the input. It
//!   appends at most `limit` bytes to `out`, and never grows `out`'s capacity past its length
//!   before the call plus `limit`: a decompression bomb is refused when its output would pass
//!   the limit, before that output exists. Working memory besides `out` is bounded by a
//!   block: deflate's state for gzip, none for snappy (blocks decompress in place), for LZ4 the
//!   block's room in `out` (its maximum size, at most 4 MiB, and never more than 255 times its
//!   compressed size), and for zstd a block (128 KiB) plus a window that is never larger than
//!   the limit needs (see "zstd" below). Sizes a stream declares are checked against the limit
//!   before anything is allocated for them, and used as allocation hints only as far as the
//!   compressed input could really stand for them.
//! - Every byte of the input must belong to the stream: trailing bytes that are not another
//!   gzip member, LZ4 frame, xerial chunk or zstd frame are an error.
//! - On error, `out` is truncated back to its length before the call.
//!
//! # Wire formats
//!
//! What [`compress`] writes is what Kafka's Java producer writes (the classes named below are in
//! Kafka's `clients/src/main/java/org/apache/kafka/common/compress/`), down to the framing bytes;
//! the compressed bytes inside differ where the compressor does (zlib against miniz_oxide, and so
//! on), which no reader depends on. [`decompress`] reads all of that, and what other clients
//! write (kafka-python, librdkafka), as described per codec.
//!
//! **gzip** (`GzipCompression`: a `java.util.zip.GZIPOutputStream`). One RFC 1952 member:
//!
//! ```text
//! 1f 8b 08 00 | 00 00 00 00 | 00 | ff | raw deflate ... | crc32 (u32 LE) | size mod 2^32 (u32 LE)
//! magic  CM FLG  MTIME = 0      XFL  OS = 255 ("unknown", as the JDK writes since JDK 16)
//! ```
//!
//! Levels 1-9, or -1 for zlib's default (6). Reading accepts concatenated members, as Java's
//! `GZIPInputStream` does, and the optional header fields (FEXTRA, FNAME, FCOMMENT, FHCRC, whose
//! CRC is checked); it checks each member's CRC-32 and size. Reserved flag bits are refused (RFC
//! 1952 says a reader must), and so are trailing bytes that are not a member, which Java ignores.
//!
//! **snappy** (`SnappyCompression`: xerial snappy-java's `SnappyOutputStream`, 32 KiB blocks):
//!
//! ```text
//! 82 53 4e 41 50 50 59 00 | 00 00 00 01 | 00 00 00 01 | { length (i32 BE) | raw snappy block }*
//! "\x82SNAPPY\0"            version 1     compatible 1   one block per 32 KiB of input
//! ```
//!
//! Empty input is the 16-byte header alone. Reading follows xerial's `SnappyInputStream`: input
//! of at least 16 bytes that starts with the 8-byte magic is xerial framing (whatever the two
//! version fields say, as kafka-python, for writers that put them little-endian); a magic where a
//! block length would be starts a concatenated stream's header; anything else is one raw snappy
//! block, which is what librdkafka writes. Empty input is refused, as xerial refuses it.
//!
//! **lz4** (`Lz4Compression`: Kafka's own `Lz4BlockOutputStream`). One LZ4 frame:
//!
//! ```text
//! 04 22 4d 18 | 60 | 40 | 82 | { size (u32 LE) | block }* | 00 00 00 00
//! magic         FLG  BD   HC
//! FLG 0x60: version 01, independent blocks; no block checksum, content size or content checksum
//! BD  0x40: blocks of at most 64 KiB of input
//! HC  0x82: second byte of XXH32(FLG BD, seed 0)
//! size: bit 31 set means the block is stored uncompressed (when LZ4 would not make it smaller)
//! ```
//!
//! Reading accepts any valid LZ4 frame (python-lz4's, the `lz4` tool's): content size, block and
//! content checksums (all checked), linked blocks (which Kafka's reader refuses), block sizes up
//! to 4 MiB, concatenated and skippable frames. It refuses frames that need a dictionary, the
//! legacy format, and the wrong header checksum that Kafka 0.8-0.9 wrote (only magic v0-v1
//! message sets had it).
//!
//! **zstd** (`ZstdCompression`: zstd-jni's `ZstdOutputStream`). Standard zstd frames (RFC 8878).
//! Reading accepts concatenated and skippable frames, checks content checksums, and reads empty
//! input as empty output (zstd-jni writes nothing at all for an empty input). A frame whose
//! declared content size passes the limit is refused before decoding. A frame's declared window
//! only bounds how far back it may reach, and no frame whose output fits the limit can reach
//! further back than the limit: so when the window declared is larger than both the limit and a
//! block (128 KiB, the most a block may hold), the decoder is given the frame header with the
//! window lowered to the smallest one that holds them, and allocates no more than that (a
//! 20-byte frame may otherwise ask for a 2 GiB window); output that outgrows that window has
//! outgrown the limit.
//!
//! # Levels
//!
//! | codec | Kafka's range | default | here |
//! |---|---|---|---|
//! | gzip | 1-9, or -1 | -1 (zlib's 6) | as Kafka (miniz_oxide's levels 1-9) |
//! | lz4 | 1-17 | 9 (lz4-java's fast compressor; other levels its HC compressor) | validated; every level compresses with lz4_flex, which has one (fast) level |
//! | zstd | -131072 to 22 | 3 | validated; ruzstd compresses at its one level (about zstd's 1); with feature `zstd-native`, the C library at the level given |
//! | none, snappy | none | | |
//!
//! A level outside the range is an error that names the config key, as Kafka's config
//! validation does.

use std::fmt;
use std::str::FromStr;

/// Kafka's codec ids: attributes bits 0-2 of a v2 batch (Kafka's `CompressionType`).
///
/// ```
/// use embroker::codec::Compression;
///
/// assert_eq!(Compression::from_id(3), Some(Compression::Lz4));
/// assert_eq!(Compression::Lz4.id(), 3);
/// assert_eq!("zstd".parse::<Compression>().unwrap(), Compression::Zstd);
/// assert_eq!(Compression::Gzip.to_string(), "gzip");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// No compression (id 0): the records section is stored as it is.
    #[default]
    None,
    /// gzip (id 1): an RFC 1952 gzip stream.
    Gzip,
    /// snappy (id 2): xerial snappy-java's framing of snappy blocks.
    Snappy,
    /// lz4 (id 3): an LZ4 frame.
    Lz4,
    /// zstd (id 4): a zstd frame.
    Zstd,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Kafka's id for the codec, 0 to 4: the value of a batch's attributes bits 0-2.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec with Kafka's id `id`; `None` for any other value (5, 6 and 7 fit the
    /// attribute bits but name no codec).
    pub fn from_id(id: i16) -> Option<Self> {
        Compression::ALL.into_iter().find(|c| c.id() == id)
    }

    /// Kafka's name for the codec: "none", "gzip", "snappy", "lz4" or "zstd", the values of
    /// the producer's `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The config key of the codec's level (`compression.gzip.level`, `compression.lz4.level`,
    /// `compression.zstd.level`); `None` for none and snappy, which have no level.
    pub fn level_config_key(self) -> Option<&'static str> {
        match self {
            Compression::Gzip => Some("compression.gzip.level"),
            Compression::Lz4 => Some("compression.lz4.level"),
            Compression::Zstd => Some("compression.zstd.level"),
            Compression::None | Compression::Snappy => None,
        }
    }

    /// Kafka's default level for the codec: -1 for gzip (zlib's default, 6), 9 for lz4, 3 for
    /// zstd; `None` for none and snappy.
    pub fn default_level(self) -> Option<i32> {
        match self {
            Compression::Gzip => Some(GZIP_LEVEL_DEFAULT),
            Compression::Lz4 => Some(LZ4_LEVEL_DEFAULT),
            Compression::Zstd => Some(ZSTD_LEVEL_DEFAULT),
            Compression::None | Compression::Snappy => None,
        }
    }

    /// The lowest and highest level Kafka accepts for the codec: 1 and 9 for gzip (which also
    /// takes -1), 1 and 17 for lz4, -131072 and 22 for zstd; `None` for none and snappy.
    pub fn level_range(self) -> Option<(i32, i32)> {
        match self {
            Compression::Gzip => Some((GZIP_LEVEL_MIN, GZIP_LEVEL_MAX)),
            Compression::Lz4 => Some((LZ4_LEVEL_MIN, LZ4_LEVEL_MAX)),
            Compression::Zstd => Some((ZSTD_LEVEL_MIN, ZSTD_LEVEL_MAX)),
            Compression::None | Compression::Snappy => None,
        }
    }

    fn accepts_level(self, level: i32) -> bool {
        match self.level_range() {
            Some((min, max)) => {
                (min..=max).contains(&level)
                    || (self == Compression::Gzip && level == GZIP_LEVEL_DEFAULT)
            }
            None => false,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses Kafka's names exactly as the producer's `compression.type` does (`CompressionType.
/// forName`): lower case only, so "GZIP" is an error.
impl FromStr for Compression {
    type Err = CompressionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| CompressionError::UnknownName {
                name: s.to_string(),
            })
    }
}

/// gzip: `java.util.zip.Deflater.BEST_SPEED`.
const GZIP_LEVEL_MIN: i32 = 1;
/// gzip: `Deflater.BEST_COMPRESSION`.
const GZIP_LEVEL_MAX: i32 = 9;
/// gzip: `Deflater.DEFAULT_COMPRESSION`, which zlib takes as 6.
const GZIP_LEVEL_DEFAULT: i32 = -1;
/// The level zlib (and miniz_oxide) use for `Deflater.DEFAULT_COMPRESSION`.
const GZIP_LEVEL_ZLIB_DEFAULT: u32 = 6;
/// lz4: lz4-java's `LZ4Constants` as Kafka's `CompressionType.LZ4` copies them.
const LZ4_LEVEL_MIN: i32 = 1;
const LZ4_LEVEL_MAX: i32 = 17;
const LZ4_LEVEL_DEFAULT: i32 = 9;
/// zstd: `ZSTD_minCLevel()` (-ZSTD_TARGETLENGTH_MAX), `ZSTD_maxCLevel()`, `ZSTD_CLEVEL_DEFAULT`.
const ZSTD_LEVEL_MIN: i32 = -131_072;
const ZSTD_LEVEL_MAX: i32 = 22;
const ZSTD_LEVEL_DEFAULT: i32 = 3;

/// A codec with its level, as Kafka's `compression.type` and `compression.gzip.level`,
/// `compression.lz4.level` and `compression.zstd.level` (KIP-390) configure it. A value of this
/// type always holds a level Kafka accepts.
///
/// ```
/// use embroker::codec::{Compression, CompressionCodec};
///
/// let codec = CompressionCodec::new(Compression::Zstd);
/// assert_eq!(codec.level(), Some(3));
/// let codec = CompressionCodec::with_level(Compression::Gzip, 9).unwrap();
/// assert_eq!(codec.level(), Some(9));
/// let err = CompressionCodec::with_level(Compression::Lz4, 18).unwrap_err();
/// assert!(err.to_string().starts_with("compression.lz4.level: 18"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CompressionCodec {
    compression: Compression,
    /// Kafka's level; 0 (and unused) for none and snappy.
    level: i32,
}

impl CompressionCodec {
    /// No compression.
    pub const NONE: CompressionCodec = CompressionCodec {
        compression: Compression::None,
        level: 0,
    };

    /// The codec at Kafka's default level ([`Compression::default_level`]).
    pub fn new(compression: Compression) -> Self {
        CompressionCodec {
            compression,
            level: compression.default_level().unwrap_or(0),
        }
    }

    /// The codec at `level`. Errors with [`CompressionError::InvalidLevel`], whose message
    /// names the config key, if Kafka would refuse the level, or if the codec (none, snappy)
    /// has no level.
    pub fn with_level(compression: Compression, level: i32) -> Result<Self, CompressionError> {
        if compression.accepts_level(level) {
            Ok(CompressionCodec { compression, level })
        } else {
            Err(CompressionError::InvalidLevel { compression, level })
        }
    }

    /// The codec.
    pub fn compression(self) -> Compression {
        self.compression
    }

    /// The level, as configured (gzip's default is -1); `None` for none and snappy.
    pub fn level(self) -> Option<i32> {
        self.compression.default_level().map(|_| self.level)
    }
}

impl From<Compression> for CompressionCodec {
    fn from(compression: Compression) -> Self {
        CompressionCodec::new(compression)
    }
}

/// Why a codec could not compress or decompress, or why a name or level is not Kafka's.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompressionError {
    /// The input is not a stream this codec reads.
    Corrupt {
        /// The codec.
        compression: Compression,
        /// Where in the compressed input the fault was found (the start of the header, block
        /// or frame that does not hold together, where the codec does not tell more).
        position: usize,
        /// What is wrong.
        reason: String,
    },
    /// Decompressing would append more than `limit` bytes. Nothing past the limit was
    /// produced or allocated.
    LimitExceeded {
        /// The codec.
        compression: Compression,
        /// The limit passed to [`decompress`].
        limit: usize,
        /// The decompressed size, when the stream declares it before its data (snappy, LZ4
        /// with a content size, zstd with a frame content size).
        size: Option<u64>,
    },
    /// A level Kafka refuses for the codec, or a level for a codec that has none.
    InvalidLevel {
        /// The codec.
        compression: Compression,
        /// The level given.
        level: i32,
    },
    /// A name that is not one of Kafka's `compression.type` names.
    UnknownName {
        /// The name given.
        name: String,
    },
    /// The compressor reported a failure. The pure-Rust compressors report none for any input
    /// that fits in memory; the C zstd library (feature `zstd-native`) may, if it cannot
    /// allocate its context.
    CompressFailed {
        /// The codec.
        compression: Compression,
        /// What the library said.
        reason: String,
    },
}

impl CompressionError {
    /// The codec the error is about; `None` for [`CompressionError::UnknownName`].
    pub fn compression(&self) -> Option<Compression> {
        match self {
            CompressionError::Corrupt { compression, .. }
            | CompressionError::LimitExceeded { compression, .. }
            | CompressionError::InvalidLevel { compression, .. }
            | CompressionError::CompressFailed { compression, .. } => Some(*compression),
            CompressionError::UnknownName { .. } => None,
        }
    }
}

impl fmt::Display for CompressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompressionError::Corrupt {
                compression,
                position,
                reason,
            } => write!(f, "{compression}: {reason} (at byte {position})"),
            CompressionError::LimitExceeded {
                compression,
                limit,
                size: Some(size),
            } => write!(
                f,
                "{compression}: decompressed size {size} exceeds the {limit}-byte limit"
            ),
            CompressionError::LimitExceeded {
                compression,
                limit,
                size: None,
            } => write!(
                f,
                "{compression}: decompressed size exceeds the {limit}-byte limit"
            ),
            CompressionError::InvalidLevel { compression, level } => {
                match (compression.level_config_key(), compression.level_range()) {
                    (Some(key), Some((min, max))) if *compression == Compression::Gzip => write!(
                        f,
                        "{key}: {level} is out of range: {compression} levels are {min} to \
                         {max}, or {GZIP_LEVEL_DEFAULT} for the default"
                    ),
                    (Some(key), Some((min, max))) => write!(
                        f,
                        "{key}: {level} is out of range: {compression} levels are {min} to {max}"
                    ),
                    _ => write!(f, "{compression} has no compression level (got {level})"),
                }
            }
            CompressionError::UnknownName { name } => write!(
                f,
                "unknown compression type {name:?}: Kafka's are none, gzip, snappy, lz4 and zstd"
            ),
            CompressionError::CompressFailed {
                compression,
                reason,
            } => write!(f, "{compression}: compression failed: {reason}"),
        }
    }
}

impl std::error::Error for CompressionError {}

/// Compresses `input` with `codec`, appending the compressed stream to `out`: the framing
/// Kafka's Java producer writes for the codec (see the module docs).
///
/// ```
/// use embroker::codec::{compress, decompress, Compression, CompressionCodec};
///
/// let records = b"a records section, a records section, a records section".repeat(100);
/// let mut compressed = Vec::new();
/// compress(CompressionCodec::new(Compression::Lz4), &records, &mut compressed).unwrap();
/// assert!(compressed.len() < records.len() / 10);
/// assert_eq!(compressed[..4], [0x04, 0x22, 0x4d, 0x18]); // the LZ4 frame's magic
///
/// let mut back = Vec::new();
/// decompress(Compression::Lz4, &compressed, &mut back, 1 << 20).unwrap();
/// assert_eq!(back, records);
/// ```
pub fn compress(
    codec: CompressionCodec,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    let base = out.len();
    let result = match codec.compression {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => gzip::compress(codec.level, input, out),
        Compression::Snappy => snappy::compress(input, out, snappy::XERIAL_BLOCK_BYTES),
        Compression::Lz4 => lz4::compress(input, out),
        Compression::Zstd => zstandard::compress(codec.level, input, out),
    };
    if result.is_err() {
        out.truncate(base);
    }
    result
}

/// Decompresses `input`, a whole stream of `compression`, appending what it holds to `out`.
///
/// Appends at most `limit` bytes: a stream that holds more is refused with
/// [`CompressionError::LimitExceeded`] before its output passes the limit, and `out`'s capacity
/// never grows past its length before the call plus `limit`. Any input that is not a valid
/// stream is a [`CompressionError::Corrupt`], never a panic. On error `out` is left as it was.
///
/// ```
/// use embroker::codec::{decompress, Compression, CompressionError};
///
/// // Kafka's snappy (xerial framing) of "hello": the 16-byte header, then one block.
/// let stream = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x07\x05\x10hello";
/// let mut out = Vec::new();
/// decompress(Compression::Snappy, stream, &mut out, 1024).unwrap();
/// assert_eq!(out, b"hello");
///
/// // The same stream with a 4-byte limit.
/// let mut out = Vec::new();
/// let err = decompress(Compression::Snappy, stream, &mut out, 4).unwrap_err();
/// assert!(matches!(err, CompressionError::LimitExceeded { size: Some(5), .. }));
/// assert_eq!(err.to_string(), "snappy: decompressed size 5 exceeds the 4-byte limit");
/// assert!(out.is_empty());
/// ```
pub fn decompress(
    compression: Compression,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), CompressionError> {
    let base = out.len();
    let mut sink = Sink {
        out,
        ceiling: base.saturating_add(limit),
        limit,
        compression,
    };
    let result = match compression {
        Compression::None if input.len() > limit => {
            Err(sink.over_limit(Some(u64_from(input.len()))))
        }
        Compression::None => sink.append(input),
        Compression::Gzip => gzip::decompress(input, &mut sink),
        Compression::Snappy => snappy::decompress(input, &mut sink),
        Compression::Lz4 => lz4::decompress(input, &mut sink),
        Compression::Zstd => zstandard::decompress(input, &mut sink),
    };
    // The limit is the module's promise; a breach is a bug here, not bad input.
    assert!(
        sink.out.len() <= sink.ceiling,
        "decompress passed its limit"
    );
    if result.is_err() {
        sink.out.truncate(base);
    }
    result
}

/// The output of one [`decompress`] call and its limit.
struct Sink<'a> {
    out: &'a mut Vec<u8>,
    /// `out.len()` may not pass this: its length before the call plus the limit.
    ceiling: usize,
    limit: usize,
    compression: Compression,
}

impl Sink<'_> {
    /// Bytes that may still be appended.
    fn room(&self) -> usize {
        self.ceiling.saturating_sub(self.out.len())
    }

    fn over_limit(&self, size: Option<u64>) -> CompressionError {
        CompressionError::LimitExceeded {
            compression: self.compression,
            limit: self.limit,
            size,
        }
    }

    /// Makes room for `additional` more bytes (which must fit the limit), growing the capacity
    /// geometrically as `Vec` does but never past the ceiling.
    fn reserve(&mut self, additional: usize) {
        let needed = self.out.len().saturating_add(additional);
        debug_assert!(needed <= self.ceiling);
        if needed <= self.out.capacity() {
            return;
        }
        let target = self
            .out
            .capacity()
            .saturating_mul(2)
            .clamp(needed, self.ceiling.max(needed));
        self.out.reserve_exact(target - self.out.len());
    }

    /// Appends `bytes` whole, or refuses them if they do not fit the limit.
    fn append(&mut self, bytes: &[u8]) -> Result<(), CompressionError> {
        if bytes.len() > self.room() {
            return Err(self.over_limit(None));
        }
        self.reserve(bytes.len());
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Zero-fills `len` more bytes (which must fit the limit) for a codec to write into, and
    /// returns where they start.
    fn extend_zeroed(&mut self, len: usize) -> usize {
        let at = self.out.len();
        self.reserve(len);
        self.out.resize(at + len, 0);
        at
    }
}

fn corrupt(
    compression: Compression,
    position: usize,
    reason: impl Into<String>,
) -> CompressionError {
    CompressionError::Corrupt {
        compression,
        position,
        reason: reason.into(),
    }
}

fn compress_failed(compression: Compression, reason: impl fmt::Display) -> CompressionError {
    CompressionError::CompressFailed {
        compression,
        reason: reason.to_string(),
    }
}

fn u64_from(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn usize_from(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// `input[at..at + len]`, or `None` past the end.
fn bytes_at(input: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    input.get(at..at.checked_add(len)?)
}

fn be_u32_at(input: &[u8], at: usize) -> Option<u32> {
    let b = bytes_at(input, at, 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

// gzip's trailer, LZ4's frames and zstd's frames are little-endian by their specifications
// (RFC 1952, the LZ4 frame format, RFC 8878): these helpers are the only places that read or
// write them, and the crate otherwise denies little-endian conversions.
#[allow(clippy::little_endian_bytes)]
fn le_u32_at(input: &[u8], at: usize) -> Option<u32> {
    let b = bytes_at(input, at, 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[allow(clippy::little_endian_bytes)]
fn le_u16_at(input: &[u8], at: usize) -> Option<u16> {
    let b = bytes_at(input, at, 2)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// A little-endian unsigned integer of 1 to 8 bytes.
fn le_uint_at(input: &[u8], at: usize, len: usize) -> Option<u64> {
    let b = bytes_at(input, at, len)?;
    Some(
        b.iter()
            .rev()
            .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte)),
    )
}

#[allow(clippy::little_endian_bytes)]
fn le_u32_bytes(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// gzip: RFC 1952 members around raw deflate (flate2 with miniz_oxide), as Java's
/// `GZIPOutputStream` writes them and `GZIPInputStream` reads them.
mod gzip {
    use super::{compress_failed, corrupt, le_u16_at, le_u32_at, le_u32_bytes, usize_from, Sink};
    use super::{Compression, CompressionError, GZIP_LEVEL_ZLIB_DEFAULT};
    use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

    /// The header the JDK's `GZIPOutputStream` writes (JDK 16 and later; earlier JDKs wrote OS
    /// 0): no flags, no modification time, XFL 0, OS 255.
    pub(super) const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    const TRAILER_BYTES: usize = 8;
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    const FRESERVED: u8 = 0xe0;
    /// Output room asked for at a time, at least.
    const GROW_BYTES: usize = 32 * 1024;
    /// The most output one byte of deflate data can stand for (a 258-byte match in fewer than
    /// two bits, with the blocks' overhead): about 1032.
    const DEFLATE_RATIO_MAX: usize = 1032;

    fn bad(position: usize, reason: impl Into<String>) -> CompressionError {
        corrupt(Compression::Gzip, position, reason)
    }

    pub(super) fn compress(
        level: i32,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CompressionError> {
        // -1 is zlib's default; 1-9 pass through (the codec was validated when it was made).
        let level = u32::try_from(level).unwrap_or(GZIP_LEVEL_ZLIB_DEFAULT);
        out.extend_from_slice(&HEADER);
        // Deflated records are usually several times smaller than the input; grow from there.
        out.reserve(input.len() / 2 + 64);
        let mut deflate = Compress::new(flate2::Compression::new(level), false);
        loop {
            let rest = input
                .get(usize_from(deflate.total_in())..)
                .unwrap_or_default();
            if out.capacity() - out.len() < GROW_BYTES {
                out.reserve(GROW_BYTES.max(rest.len() / 2));
            }
            let before = (deflate.total_in(), deflate.total_out());
            let status = deflate
                .compress_vec(rest, out, FlushCompress::Finish)
                .map_err(|e| compress_failed(Compression::Gzip, e))?;
            if status == Status::StreamEnd {
                break;
            }
            if (deflate.total_in(), deflate.total_out()) == before {
                // With room to write, deflate always moves; this only keeps a broken backend
                // from looping forever.
                return Err(compress_failed(
                    Compression::Gzip,
                    "deflate made no progress",
                ));
            }
        }
        out.extend_from_slice(&le_u32_bytes(crc32fast::hash(input)));
        // ISIZE: the input's size modulo 2^32.
        out.extend_from_slice(&le_u32_bytes((input.len() as u64 & 0xffff_ffff) as u32));
        Ok(())
    }

    pub(super) fn decompress(input: &[u8], sink: &mut Sink<'_>) -> Result<(), CompressionError> {
        if input.is_empty() {
            return Err(bad(0, "empty input: a gzip stream has at least one member"));
        }
        // The last member's ISIZE is the size of a one-member stream: a hint, taken no further
        // than the limit and deflate's best ratio allow, since the input is not trusted yet.
        if let Some(size) = input
            .len()
            .checked_sub(4)
            .and_then(|at| le_u32_at(input, at))
        {
            let possible = input.len().saturating_mul(DEFLATE_RATIO_MAX);
            sink.reserve((size as usize).min(possible).min(sink.room()));
        }
        let mut at = 0;
        while at < input.len() {
            at = member(input, at, sink)?;
        }
        Ok(())
    }

    /// Decompresses the member that starts at `start`; returns where it ends.
    fn member(input: &[u8], start: usize, sink: &mut Sink<'_>) -> Result<usize, CompressionError> {
        let body = start + header_len(input, start)?;
        let data = input.get(body..).unwrap_or_default();
        let out_start = sink.out.len();
        let mut inflate = Decompress::new(false);
        loop {
            let consumed = usize_from(inflate.total_in());
            let rest = data.get(consumed..).unwrap_or_default();
            let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
            let invalid = |e: flate2::DecompressError| {
                bad(body + consumed, format!("invalid deflate data ({e})"))
            };
            let spare = sink.out.len() < sink.out.capacity();
            let status = if spare {
                inflate
                    .decompress_vec(rest, sink.out, FlushDecompress::None)
                    .map_err(invalid)?
            } else if sink.room() > 0 {
                sink.reserve(sink.room().min(GROW_BYTES));
                continue;
            } else {
                // At the limit: only the end of the stream may follow. A one-byte probe on the
                // stack tells whether more output would.
                let mut probe = [0u8; 1];
                let status = inflate
                    .decompress(rest, &mut probe, FlushDecompress::None)
                    .map_err(invalid)?;
                if inflate.total_out() > out_before {
                    return Err(sink.over_limit(None));
                }
                status
            };
            if status == Status::StreamEnd {
                break;
            }
            if inflate.total_in() == in_before && inflate.total_out() == out_before {
                // Room to write and nothing written or read: the input has run out.
                return Err(bad(
                    body + consumed,
                    "deflate data ends before its final block",
                ));
            }
        }
        let end = body + usize_from(inflate.total_in());
        let (Some(crc), Some(size)) = (le_u32_at(input, end), le_u32_at(input, end + 4)) else {
            return Err(bad(end, "member ends without its 8-byte trailer"));
        };
        let output = sink.out.get(out_start..).unwrap_or_default();
        let actual = crc32fast::hash(output);
        if crc != actual {
            return Err(bad(
                end,
                format!("CRC-32 mismatch: trailer says {crc:#010x}, data has {actual:#010x}"),
            ));
        }
        if u64::from(size) != output.len() as u64 & 0xffff_ffff {
            return Err(bad(
                end + 4,
                format!(
                    "size mismatch: trailer says {size} (mod 2^32), data has {}",
                    output.len()
                ),
            ));
        }
        Ok(end + TRAILER_BYTES)
    }

    /// The length of the member header that starts at `start` (RFC 1952 section 2.3).
    fn header_len(input: &[u8], start: usize) -> Result<usize, CompressionError> {
        let h = input.get(start..).unwrap_or_default();
        let truncated = |what: &str| bad(start, format!("truncated header: {what}"));
        let fixed = h
            .get(..HEADER.len())
            .ok_or_else(|| truncated("fewer than its 10 fixed bytes"))?;
        if fixed[..2] != HEADER[..2] {
            return Err(bad(
                start,
                format!(
                    "invalid header: magic {:02x} {:02x}, expected 1f 8b",
                    fixed[0], fixed[1]
                ),
            ));
        }
        if fixed[2] != 8 {
            return Err(bad(
                start + 2,
                format!(
                    "invalid header: compression method {} (only 8, deflate, exists)",
                    fixed[2]
                ),
            ));
        }
        let flags = fixed[3];
        if flags & FRESERVED != 0 {
            return Err(bad(
                start + 3,
                format!("invalid header: reserved flag bits set ({flags:#04x})"),
            ));
        }
        let mut at = HEADER.len();
        if flags & FEXTRA != 0 {
            let xlen = le_u16_at(h, at).ok_or_else(|| truncated("FEXTRA length"))?;
            at += 2 + usize::from(xlen);
            if at > h.len() {
                return Err(truncated("FEXTRA field"));
            }
        }
        for (flag, what) in [(FNAME, "FNAME"), (FCOMMENT, "FCOMMENT")] {
            if flags & flag != 0 {
                let rest = h.get(at..).unwrap_or_default();
                let nul = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| truncated(what))?;
                at += nul + 1;
            }
        }
        if flags & FHCRC != 0 {
            let stored = le_u16_at(h, at).ok_or_else(|| truncated("FHCRC"))?;
            let actual = (crc32fast::hash(h.get(..at).unwrap_or_default()) & 0xffff) as u16;
            if stored != actual {
                return Err(bad(
                    start + at,
                    format!("header CRC mismatch: {stored:#06x} stored, {actual:#06x} computed"),
                ));
            }
            at += 2;
        }
        Ok(at)
    }
}

/// snappy: xerial snappy-java's stream format around raw snappy blocks (the `snap` crate).
mod snappy {
    use super::{be_u32_at, bytes_at, compress_failed, corrupt, u64_from, Sink};
    use super::{Compression, CompressionError};

    /// `SnappyCodec.MAGIC_HEADER`.
    pub(super) const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    /// The magic, then `SnappyCodec.DEFAULT_VERSION` and `MINIMUM_COMPATIBLE_VERSION` (both 1)
    /// as big-endian i32s: `SnappyCodec.currentHeader`.
    pub(super) const XERIAL_HEADER: [u8; 16] = [
        0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
    ];
    /// `SnappyOutputStream.DEFAULT_BLOCK_SIZE`: the input each block holds.
    pub(super) const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
    /// The magic's first four bytes as a big-endian i32, where a block length would be: the
    /// start of a concatenated stream (`SnappyCodec.MAGIC_HEADER_HEAD`).
    const MAGIC_HEAD: u32 = 0x8253_4e41;
    /// The most output a byte of a raw block can stand for: a copy of 64 bytes takes a 3-byte
    /// element, so no block holds more than 64/3 times its size.
    const RATIO_MAX: usize = 22;

    fn bad(position: usize, reason: impl Into<String>) -> CompressionError {
        corrupt(Compression::Snappy, position, reason)
    }

    /// Writes the xerial stream of `input` in blocks of `block_bytes` of input (Kafka: 32 KiB).
    pub(super) fn compress(
        input: &[u8],
        out: &mut Vec<u8>,
        block_bytes: usize,
    ) -> Result<(), CompressionError> {
        out.extend_from_slice(&XERIAL_HEADER);
        let mut encoder = snap::raw::Encoder::new();
        for block in input.chunks(block_bytes) {
            let at = out.len();
            out.resize(at + 4 + snap::raw::max_compress_len(block.len()), 0);
            let n = encoder
                .compress(block, &mut out[at + 4..])
                .map_err(|e| compress_failed(Compression::Snappy, e))?;
            out.truncate(at + 4 + n);
            let length = u32::try_from(n).map_err(|e| compress_failed(Compression::Snappy, e))?;
            out[at..at + 4].copy_from_slice(&length.to_be_bytes());
        }
        Ok(())
    }

    pub(super) fn decompress(input: &[u8], sink: &mut Sink<'_>) -> Result<(), CompressionError> {
        if input.is_empty() {
            // As xerial's `SnappyInputStream`: "Cannot decompress empty stream".
            return Err(bad(0, "empty input"));
        }
        let xerial =
            input.len() >= XERIAL_HEADER.len() && input[..XERIAL_MAGIC.len()] == XERIAL_MAGIC;
        // Every raw block starts with its decompressed length: the blocks' total is known, and
        // checked against the limit, before anything is decompressed.
        let mut total = 0usize;
        blocks(input, xerial, |at, block| {
            total = total.saturating_add(declared_size(at, block)?);
            Ok(())
        })?;
        if total > sink.room() {
            return Err(sink.over_limit(Some(u64_from(total))));
        }
        sink.reserve(total);
        let mut decoder = snap::raw::Decoder::new();
        blocks(input, xerial, |at, block| {
            let size = declared_size(at, block)?;
            let start = sink.extend_zeroed(size);
            let written = decoder
                .decompress(block, &mut sink.out[start..])
                .map_err(|e| bad(at, format!("invalid block ({e})")))?;
            if written == size {
                Ok(())
            } else {
                Err(bad(
                    at,
                    format!("block declares {size} bytes but holds {written}"),
                ))
            }
        })
    }

    /// Calls `each(position, block)` for every raw block: the whole input when it is not
    /// `xerial`, else each block of the xerial stream.
    fn blocks(
        input: &[u8],
        xerial: bool,
        mut each: impl FnMut(usize, &[u8]) -> Result<(), CompressionError>,
    ) -> Result<(), CompressionError> {
        if !xerial {
            // One raw block, as librdkafka writes.
            return each(0, input);
        }
        let mut at = XERIAL_HEADER.len();
        while at < input.len() {
            let length = be_u32_at(input, at).ok_or_else(|| {
                bad(
                    at,
                    format!("{} bytes where a block length needs 4", input.len() - at),
                )
            })?;
            if length == MAGIC_HEAD {
                // A concatenated stream: its 16-byte header, whose version fields, as for the
                // first header, are not checked.
                match bytes_at(input, at, XERIAL_HEADER.len()) {
                    Some(h) if h[..XERIAL_MAGIC.len()] == XERIAL_MAGIC => {
                        at += XERIAL_HEADER.len();
                        continue;
                    }
                    _ => return Err(bad(at, "invalid header of a concatenated stream")),
                }
            }
            let Ok(length) = i32::try_from(length) else {
                return Err(bad(at, format!("negative block length {}", length as i32)));
            };
            let block = bytes_at(input, at + 4, length as usize).ok_or_else(|| {
                bad(
                    at,
                    format!(
                        "block of {length} bytes but only {} remain",
                        input.len() - at - 4
                    ),
                )
            })?;
            each(at + 4, block)?;
            at += 4 + block.len();
        }
        Ok(())
    }

    /// The decompressed size a raw block declares, refused if the block could not hold it.
    fn declared_size(at: usize, block: &[u8]) -> Result<usize, CompressionError> {
        let size = snap::raw::decompress_len(block)
            .map_err(|e| bad(at, format!("invalid block length header ({e})")))?;
        if size > block.len().saturating_mul(RATIO_MAX) {
            return Err(bad(
                at,
                format!(
                    "block of {} bytes declares {size} bytes, more than it can hold",
                    block.len()
                ),
            ));
        }
        Ok(size)
    }
}

/// lz4: the LZ4 frame format (lz4_flex's block codec inside), as Kafka's
/// `Lz4BlockOutputStream` writes it.
mod lz4 {
    use super::{bytes_at, compress_failed, corrupt, le_u32_at, le_u32_bytes, le_uint_at};
    use super::{u64_from, Compression, CompressionError, Sink};
    use lz4_flex::block::{self, CompressTable, DecompressError};
    use twox_hash::XxHash32;

    pub(super) const MAGIC: u32 = 0x184d_2204;
    /// The frame header Kafka writes: magic (little-endian), FLG, BD, HC.
    pub(super) const HEADER: [u8; 7] = [0x04, 0x22, 0x4d, 0x18, FLG_KAFKA, BD_KAFKA, 0x82];
    /// Version 01, independent blocks, no checksums, no content size (`Lz4BlockOutputStream.FLG`
    /// with `blockChecksum` false).
    const FLG_KAFKA: u8 = 0x60;
    /// Blocks of at most 64 KiB (`BLOCKSIZE_64KB`, value 4).
    const BD_KAFKA: u8 = 0x40;
    const BLOCK_BYTES_KAFKA: usize = 64 * 1024;
    const FLG_VERSION_MASK: u8 = 0xc0;
    const FLG_VERSION_01: u8 = 0x40;
    const FLG_INDEPENDENT: u8 = 0x20;
    const FLG_BLOCK_CHECKSUM: u8 = 0x10;
    const FLG_CONTENT_SIZE: u8 = 0x08;
    const FLG_CONTENT_CHECKSUM: u8 = 0x04;
    const FLG_RESERVED: u8 = 0x02;
    const FLG_DICT_ID: u8 = 0x01;
    const BD_RESERVED: u8 = 0x8f;
    /// Bit 31 of a block size: the block is stored uncompressed.
    const UNCOMPRESSED: u32 = 0x8000_0000;
    const SKIPPABLE_MAGIC_MASK: u32 = 0xffff_fff0;
    const SKIPPABLE_MAGIC: u32 = 0x184d_2a50;
    const LEGACY_MAGIC: u32 = 0x184c_2102;
    /// How far back a linked block may reach.
    const WINDOW_BYTES: usize = 64 * 1024;
    /// The most output a byte of a compressed block can stand for: each 255 in a match
    /// length's extension bytes adds 255 bytes.
    const RATIO_MAX: usize = 255;
    /// What a block's fixed costs can add to that (a first match of 19 bytes, the last
    /// literals).
    const RATIO_SLACK_BYTES: usize = 64;

    fn bad(position: usize, reason: impl Into<String>) -> CompressionError {
        corrupt(Compression::Lz4, position, reason)
    }

    fn truncated(position: usize, what: &str) -> CompressionError {
        bad(position, format!("truncated {what}"))
    }

    pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
        out.extend_from_slice(&HEADER);
        let mut table = CompressTable::default();
        for chunk in input.chunks(BLOCK_BYTES_KAFKA) {
            let at = out.len();
            out.resize(at + 4 + block::get_maximum_output_size(chunk.len()), 0);
            let n = block::compress_into_with_table(chunk, &mut out[at + 4..], &mut table)
                .map_err(|e| compress_failed(Compression::Lz4, e))?;
            // As Kafka: a block that LZ4 does not make smaller is stored as it is. Sizes are at
            // most 64 KiB, so the casts are exact.
            let size = if n < chunk.len() {
                out.truncate(at + 4 + n);
                n as u32
            } else {
                out.truncate(at + 4);
                out.extend_from_slice(chunk);
                chunk.len() as u32 | UNCOMPRESSED
            };
            out[at..at + 4].copy_from_slice(&le_u32_bytes(size));
        }
        out.extend_from_slice(&le_u32_bytes(0));
        Ok(())
    }

    pub(super) fn decompress(input: &[u8], sink: &mut Sink<'_>) -> Result<(), CompressionError> {
        if input.is_empty() {
            return Err(bad(0, "empty input: an LZ4 stream has at least one frame"));
        }
        let mut at = 0;
        while at < input.len() {
            at = frame(input, at, sink)?;
        }
        Ok(())
    }

    /// Reads the frame (or skippable frame) that starts at `start`; returns where it ends.
    fn frame(input: &[u8], start: usize, sink: &mut Sink<'_>) -> Result<usize, CompressionError> {
        let magic = le_u32_at(input, start).ok_or_else(|| truncated(start, "frame magic"))?;
        if magic & SKIPPABLE_MAGIC_MASK == SKIPPABLE_MAGIC {
            let size = le_u32_at(input, start + 4)
                .and_then(|size| bytes_at(input, start + 8, size as usize).map(<[u8]>::len))
                .ok_or_else(|| truncated(start, "skippable frame"))?;
            return Ok(start + 8 + size);
        }
        if magic != MAGIC {
            let reason = if magic == LEGACY_MAGIC {
                "the legacy LZ4 frame format is not supported".to_string()
            } else {
                format!("invalid frame magic {magic:#010x}, expected {MAGIC:#010x}")
            };
            return Err(bad(start, reason));
        }
        let descriptor = start + 4;
        let (Some(&flg), Some(&bd)) = (input.get(descriptor), input.get(descriptor + 1)) else {
            return Err(truncated(descriptor, "frame descriptor"));
        };
        if flg & FLG_VERSION_MASK != FLG_VERSION_01 {
            return Err(bad(
                descriptor,
                format!("unsupported frame version {}", flg >> 6),
            ));
        }
        if flg & FLG_RESERVED != 0 || bd & BD_RESERVED != 0 {
            return Err(bad(descriptor, "reserved descriptor bits set"));
        }
        if flg & FLG_DICT_ID != 0 {
            return Err(bad(descriptor, "the frame needs a dictionary"));
        }
        let block_max = match (bd >> 4) & 7 {
            code @ 4..=7 => 1usize << (2 * code + 8),
            code => {
                return Err(bad(
                    descriptor + 1,
                    format!("invalid block maximum size code {code}"),
                ))
            }
        };
        let mut at = descriptor + 2;
        let content_size = if flg & FLG_CONTENT_SIZE != 0 {
            let size = le_uint_at(input, at, 8).ok_or_else(|| truncated(at, "content size"))?;
            at += 8;
            Some(size)
        } else {
            None
        };
        let hc = *input
            .get(at)
            .ok_or_else(|| truncated(at, "header checksum"))?;
        let expected = (XxHash32::oneshot(0, &input[descriptor..at]) >> 8) as u8;
        if hc != expected {
            return Err(bad(
                at,
                format!("header checksum {hc:#04x}, expected {expected:#04x}"),
            ));
        }
        at += 1;
        if let Some(size) = content_size {
            if size > u64_from(sink.room()) {
                return Err(sink.over_limit(Some(size)));
            }
            // A hint, taken no further than the frame's data could stand for.
            let possible = (input.len() - at).saturating_mul(RATIO_MAX);
            sink.reserve((size as usize).min(possible));
        }
        let frame_out = sink.out.len();
        loop {
            let word = le_u32_at(input, at).ok_or_else(|| truncated(at, "block size"))?;
            if word == 0 {
                at += 4;
                break;
            }
            let size = (word & !UNCOMPRESSED) as usize;
            if size > block_max {
                return Err(bad(
                    at,
                    format!("block of {size} bytes exceeds the frame's {block_max}-byte maximum"),
                ));
            }
            let data = bytes_at(input, at + 4, size)
                .ok_or_else(|| truncated(at, &format!("block of {size} bytes")))?;
            let mut next = at + 4 + size;
            if flg & FLG_BLOCK_CHECKSUM != 0 {
                let stored =
                    le_u32_at(input, next).ok_or_else(|| truncated(next, "block checksum"))?;
                if stored != XxHash32::oneshot(0, data) {
                    return Err(bad(at, "block checksum mismatch"));
                }
                next += 4;
            }
            if word & UNCOMPRESSED != 0 {
                sink.append(data)?;
            } else {
                let linked = flg & FLG_INDEPENDENT == 0;
                block_into(data, at, block_max, linked, frame_out, sink)?;
            }
            at = next;
        }
        let output = sink.out.get(frame_out..).unwrap_or_default();
        if flg & FLG_CONTENT_CHECKSUM != 0 {
            let stored = le_u32_at(input, at).ok_or_else(|| truncated(at, "content checksum"))?;
            if stored != XxHash32::oneshot(0, output) {
                return Err(bad(at, "content checksum mismatch"));
            }
            at += 4;
        }
        if let Some(size) = content_size {
            if size != u64_from(output.len()) {
                return Err(bad(
                    descriptor + 2,
                    format!("frame declares {size} bytes but holds {}", output.len()),
                ));
            }
        }
        Ok(at)
    }

    /// Decompresses one compressed block (at `at` in the input) onto the end of the output;
    /// a linked block may reach back into the frame's output so far.
    fn block_into(
        data: &[u8],
        at: usize,
        block_max: usize,
        linked: bool,
        frame_out: usize,
        sink: &mut Sink<'_>,
    ) -> Result<(), CompressionError> {
        let possible = data
            .len()
            .saturating_mul(RATIO_MAX)
            .saturating_add(RATIO_SLACK_BYTES)
            .min(block_max);
        let room = possible.min(sink.room());
        let start = sink.extend_zeroed(room);
        let (before, after) = sink.out.split_at_mut(start);
        let result = if linked {
            let window = &before[frame_out.max(start.saturating_sub(WINDOW_BYTES))..];
            block::decompress_into_with_dict(data, after, window)
        } else {
            block::decompress_into(data, after)
        };
        match result {
            Ok(written) => {
                sink.out.truncate(start + written);
                Ok(())
            }
            Err(DecompressError::OutputTooSmall { .. }) if room < possible => {
                Err(sink.over_limit(None))
            }
            Err(DecompressError::OutputTooSmall { .. }) => Err(bad(
                at,
                format!("block decompresses past the frame's {block_max}-byte maximum"),
            )),
            Err(e) => Err(bad(at, format!("invalid block ({e})"))),
        }
    }
}

/// zstd: ruzstd, or the C library with feature `zstd-native`; the frame walking (skippable
/// frames, the window) is shared.
mod zstandard {
    use super::{bytes_at, corrupt, le_u32_at, le_uint_at, u64_from, Sink};
    use super::{Compression, CompressionError};

    const MAGIC: u32 = 0xfd2f_b528;
    const SKIPPABLE_MAGIC_MASK: u32 = 0xffff_fff0;
    const SKIPPABLE_MAGIC: u32 = 0x184d_2a50;
    /// The largest frame header: magic, descriptor, window, 4-byte dictionary id, 8-byte size.
    const HEADER_BYTES_MAX: usize = 18;
    /// The largest block's output (`Block_Maximum_Size`, when the window is at least that).
    const BLOCK_BYTES_MAX: u64 = 128 * 1024;
    /// The largest window accepted, after lowering it to the limit: zstd's own maximum on
    /// 64-bit machines (`ZSTD_WINDOWLOG_MAX_64`).
    const WINDOW_BYTES_MAX: u64 = 1 << 31;
    /// Output taken from the decoder at a time, at least.
    const STEP_BYTES: usize = 128 * 1024;
    /// How far a frame's declared content size is trusted for reserving output, as a multiple
    /// of its compressed size.
    const HINT_RATIO: usize = 64;

    fn bad(position: usize, reason: impl Into<String>) -> CompressionError {
        corrupt(Compression::Zstd, position, reason)
    }

    pub(super) fn compress(
        level: i32,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CompressionError> {
        #[cfg(feature = "zstd-native")]
        {
            native::compress(level, input, out)
        }
        #[cfg(not(feature = "zstd-native"))]
        {
            // ruzstd compresses at one level, "Fastest" (about zstd's level 1): every Kafka
            // level, validated when the codec was made, maps to it. Its other levels are not
            // implemented (they panic).
            let _ = level;
            ruzstd::encoding::compress(
                input,
                &mut *out,
                ruzstd::encoding::CompressionLevel::Fastest,
            );
            Ok(())
        }
    }

    pub(super) fn decompress(input: &[u8], sink: &mut Sink<'_>) -> Result<(), CompressionError> {
        // Empty input is empty output: zstd-jni writes nothing for an empty input, and reads
        // nothing back from it.
        let mut at = 0;
        while at < input.len() {
            let magic = le_u32_at(input, at).ok_or_else(|| bad(at, "truncated frame magic"))?;
            if magic & SKIPPABLE_MAGIC_MASK == SKIPPABLE_MAGIC {
                let size = le_u32_at(input, at + 4)
                    .and_then(|size| bytes_at(input, at + 8, size as usize).map(<[u8]>::len))
                    .ok_or_else(|| bad(at, "truncated skippable frame"))?;
                at += 8 + size;
                continue;
            }
            if magic != MAGIC {
                return Err(bad(
                    at,
                    format!("invalid frame magic {magic:#010x}, expected {MAGIC:#010x}"),
                ));
            }
            let header = Header::parse(input, at)?;
            if let Some(size) = header.content_size {
                if size > u64_from(sink.room()) {
                    return Err(sink.over_limit(Some(size)));
                }
                // A hint, within the limit; RLE blocks let a few bytes stand for 128 KiB, so
                // the input's size bounds nothing useful, and the hint stops at a plausible
                // ratio instead (growth takes over past it).
                let plausible = (input.len() - at)
                    .saturating_mul(HINT_RATIO)
                    .max(STEP_BYTES);
                sink.reserve((size as usize).min(plausible));
            }
            let (patched, lowered) = header.with_window_for(input, at, sink.room())?;
            let body = input.get(at + header.len..).unwrap_or_default();
            let consumed = decode_frame(&patched, lowered, body, at, sink)?;
            at += header.len + consumed;
        }
        Ok(())
    }

    /// What decoding needs of a frame header (RFC 8878 section 3.1.1.1).
    pub(super) struct Header {
        pub(super) len: usize,
        /// Where the window descriptor is, relative to the frame; `None` for a single-segment
        /// frame, whose window is its content size.
        window_at: Option<usize>,
        pub(super) window: u64,
        content_size: Option<u64>,
    }

    impl Header {
        pub(super) fn parse(input: &[u8], start: usize) -> Result<Header, CompressionError> {
            let truncated = || bad(start, "truncated frame header");
            let descriptor = *input.get(start + 4).ok_or_else(truncated)?;
            if descriptor & 0x08 != 0 {
                return Err(bad(start + 4, "reserved frame header bit set"));
            }
            let single_segment = descriptor & 0x20 != 0;
            let mut len = 5;
            let window_at = (!single_segment).then_some(len);
            if !single_segment {
                len += 1;
            }
            len += [0, 1, 2, 4][usize::from(descriptor & 3)];
            let size_bytes = match descriptor >> 6 {
                0 if single_segment => 1,
                0 => 0,
                1 => 2,
                2 => 4,
                _ => 8,
            };
            let content_size = if size_bytes == 0 {
                None
            } else {
                let size = le_uint_at(input, start + len, size_bytes).ok_or_else(truncated)?;
                Some(if size_bytes == 2 { size + 256 } else { size })
            };
            len += size_bytes;
            let header = bytes_at(input, start, len).ok_or_else(truncated)?;
            let window = match window_at {
                Some(w) => {
                    let byte = header[w];
                    let base = 1u64 << (10 + (byte >> 3));
                    base + (base / 8) * u64::from(byte & 7)
                }
                None => content_size.unwrap_or(0),
            };
            Ok(Header {
                len,
                window_at,
                window,
                content_size,
            })
        }

        /// The header's bytes, and whether its window was lowered: when the frame declares a
        /// window larger than both `room` and a block (128 KiB), it is lowered to the smallest
        /// that holds them. No frame whose output fits in `room` reaches back further than
        /// `room`, and keeping a block's worth keeps every block within the window, as the
        /// format requires of a block (its size is at most the smaller of the window and 128
        /// KiB).
        pub(super) fn with_window_for(
            &self,
            input: &[u8],
            start: usize,
            room: usize,
        ) -> Result<(Vec<u8>, bool), CompressionError> {
            let mut header = input[start..start + self.len].to_vec();
            debug_assert!(header.len() <= HEADER_BYTES_MAX);
            let needed = u64_from(room).max(BLOCK_BYTES_MAX);
            let mut window = self.window;
            let mut lowered = false;
            if let Some(w) = self.window_at {
                if window > needed {
                    let (byte, smaller) = window_descriptor(needed);
                    header[w] = byte;
                    window = smaller;
                    lowered = true;
                }
            }
            if window > WINDOW_BYTES_MAX {
                return Err(bad(
                    start,
                    format!(
                        "window of {window} bytes exceeds zstd's {WINDOW_BYTES_MAX}-byte maximum"
                    ),
                ));
            }
            Ok((header, lowered))
        }
    }

    /// The smallest window descriptor whose window holds `bytes` (1 KiB to 2^41 bytes), and
    /// that window.
    pub(super) fn window_descriptor(bytes: u64) -> (u8, u64) {
        let mut log: u32 = 10;
        while log < 41 && (1u64 << (log + 1)) <= bytes {
            log += 1;
        }
        let base = 1u64 << log;
        let step = base / 8;
        let mantissa = bytes.saturating_sub(base).div_ceil(step).min(8);
        if mantissa == 8 {
            (((log + 1 - 10) << 3) as u8, base * 2)
        } else {
            (
                (((log - 10) << 3) as u64 | mantissa) as u8,
                base + step * mantissa,
            )
        }
    }

    /// Decodes one frame whose header is `header` (its window `lowered` to the limit, or not)
    /// and whose blocks start at `body`; returns how many bytes of `body` it took. `start`:
    /// the frame's position in the input.
    #[cfg(not(feature = "zstd-native"))]
    fn decode_frame(
        header: &[u8],
        lowered: bool,
        body: &[u8],
        start: usize,
        sink: &mut Sink<'_>,
    ) -> Result<usize, CompressionError> {
        use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
        let mut decoder = FrameDecoder::new();
        decoder.set_max_window_size(WINDOW_BYTES_MAX);
        decoder
            .reset(header)
            .map_err(|e| bad(start, format!("invalid frame header ({e})")))?;
        let mut rest = body;
        loop {
            let position = start + header.len() + (body.len() - rest.len());
            let finished = decoder
                .decode_blocks(&mut rest, BlockDecodingStrategy::UptoBytes(STEP_BYTES))
                .map_err(|e| bad(position, format!("invalid frame ({e})")))?;
            // Until the frame ends, ruzstd holds back a window's worth of output. A lowered
            // window holds the whole limit: output past it is output past the limit.
            let ready = decoder.can_collect();
            if ready > sink.room() || (lowered && !finished && ready > 0) {
                return Err(sink.over_limit(None));
            }
            sink.reserve(ready);
            decoder
                .collect_to_writer(&mut *sink.out)
                .map_err(|e| bad(position, format!("invalid frame ({e})")))?;
            if finished {
                break;
            }
        }
        let consumed = body.len() - rest.len();
        if let (Some(stored), Some(actual)) = (
            decoder.get_checksum_from_data(),
            decoder.get_calculated_checksum(),
        ) {
            if stored != actual {
                let position = (start + header.len() + consumed).saturating_sub(4);
                return Err(bad(position, "content checksum mismatch"));
            }
        }
        Ok(consumed)
    }

    #[cfg(feature = "zstd-native")]
    use native::decode_frame;

    /// The C zstd library through the `zstd` crate.
    #[cfg(feature = "zstd-native")]
    mod native {
        use super::super::{compress_failed, Compression, CompressionError, Sink};
        use super::{bad, STEP_BYTES, WINDOW_BYTES_MAX};
        use zstd::stream::raw::{DParameter, Decoder, Encoder, InBuffer, Operation, OutBuffer};

        pub(in super::super) fn compress(
            level: i32,
            input: &[u8],
            out: &mut Vec<u8>,
        ) -> Result<(), CompressionError> {
            let failed = |e: std::io::Error| compress_failed(Compression::Zstd, e);
            let mut encoder = Encoder::new(level).map_err(failed)?;
            // The content size goes into the frame header, for readers to size their output.
            encoder
                .set_pledged_src_size(Some(input.len() as u64))
                .map_err(failed)?;
            out.reserve(input.len() / 2 + 64);
            let mut source = InBuffer::around(input);
            loop {
                if out.capacity() - out.len() < STEP_BYTES / 4 {
                    out.reserve(STEP_BYTES);
                }
                let pos = out.len();
                let mut target = OutBuffer::around_pos(out, pos);
                if source.pos() < input.len() {
                    encoder.run(&mut source, &mut target).map_err(failed)?;
                } else if encoder.finish(&mut target, true).map_err(failed)? == 0 {
                    return Ok(());
                }
            }
        }

        pub(in super::super) fn decode_frame(
            header: &[u8],
            _lowered: bool,
            body: &[u8],
            start: usize,
            sink: &mut Sink<'_>,
        ) -> Result<usize, CompressionError> {
            let invalid = |at: usize, e: std::io::Error| bad(at, format!("invalid frame ({e})"));
            let mut decoder = Decoder::new().map_err(|e| invalid(start, e))?;
            decoder
                .set_parameter(DParameter::WindowLogMax(WINDOW_BYTES_MAX.trailing_zeros()))
                .map_err(|e| invalid(start, e))?;
            // The header first (it produces no output), then the blocks.
            let mut header_in = InBuffer::around(header);
            while header_in.pos() < header.len() {
                let before = header_in.pos();
                let mut nothing = [0u8; 0];
                let mut target = OutBuffer::around(&mut nothing[..]);
                decoder
                    .run(&mut header_in, &mut target)
                    .map_err(|e| invalid(start, e))?;
                if header_in.pos() == before {
                    return Err(bad(start, "invalid frame header"));
                }
            }
            let mut source = InBuffer::around(body);
            loop {
                let position = start + header.len() + source.pos();
                let (in_before, out_before) = (source.pos(), sink.out.len());
                let hint = if sink.out.len() < sink.out.capacity() {
                    let pos = sink.out.len();
                    let mut target = OutBuffer::around_pos(&mut *sink.out, pos);
                    decoder
                        .run(&mut source, &mut target)
                        .map_err(|e| invalid(position, e))?
                } else if sink.room() > 0 {
                    sink.reserve(sink.room().min(STEP_BYTES));
                    continue;
                } else {
                    // At the limit: a one-byte probe tells whether more output would follow.
                    let mut probe = [0u8; 1];
                    let mut target = OutBuffer::around(&mut probe[..]);
                    let hint = decoder
                        .run(&mut source, &mut target)
                        .map_err(|e| invalid(position, e))?;
                    if target.pos() > 0 {
                        return Err(sink.over_limit(None));
                    }
                    hint
                };
                if hint == 0 {
                    return Ok(source.pos());
                }
                if source.pos() == in_before && sink.out.len() == out_before {
                    return Err(bad(position, "frame ends before its last block"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
