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
