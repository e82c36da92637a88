//! Placeholder until the codec module lands (branch `codecs`): refuses every codec.

use std::fmt;

/// Kafka's codec ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// None.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Kafka's id.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        ["none", "gzip", "snappy", "lz4", "zstd"][self.id() as usize]
    }

    /// Kafka's default level.
    pub fn default_level(self) -> Option<i32> {
        match self {
            Compression::Gzip => Some(-1),
            Compression::Lz4 => Some(9),
            Compression::Zstd => Some(3),
            _ => None,
        }
    }

    /// The codec Kafka numbers `id`.
    pub fn from_id(id: i16) -> Option<Self> {
        Some(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }
}

impl std::str::FromStr for Compression {
    type Err = CompressionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        (0..5)
            .filter_map(Compression::from_id)
            .find(|c| c.name() == s)
            .ok_or(CompressionError(Compression::None))
    }
}

/// Why a stream does not decompress.
#[derive(Debug)]
pub struct CompressionError(Compression);

impl fmt::Display for CompressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: not built", self.0)
    }
}

/// Decompresses `input`.
pub fn decompress(
    compression: Compression,
    _input: &[u8],
    _out: &mut Vec<u8>,
    _limit: usize,
) -> Result<(), CompressionError> {
    Err(CompressionError(compression))
}

/// A codec with its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CompressionCodec {
    compression: Compression,
    level: i32,
}

impl CompressionCodec {
    /// No compression.
    pub const NONE: CompressionCodec = CompressionCodec {
        compression: Compression::None,
        level: 0,
    };

    /// The codec at its default level.
    pub fn new(compression: Compression) -> Self {
        CompressionCodec {
            compression,
            level: 0,
        }
    }

    /// The codec.
    pub fn compression(self) -> Compression {
        self.compression
    }

    /// The codec at `level`.
    pub fn with_level(compression: Compression, level: i32) -> Result<Self, CompressionError> {
        Ok(CompressionCodec { compression, level })
    }

    /// The level.
    pub fn level(self) -> Option<i32> {
        self.compression.default_level().map(|_| self.level)
    }
}

/// Compresses `input`.
pub fn compress(
    codec: CompressionCodec,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    if codec.compression == Compression::None {
        out.extend_from_slice(input);
        return Ok(());
    }
    Err(CompressionError(codec.compression))
}
