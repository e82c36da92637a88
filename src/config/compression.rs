//! The compression settings producers and topics share: the level of each codec
//! (`compression.gzip.level`, `compression.lz4.level`, `compression.zstd.level`, Kafka's
//! KIP-390), kept apart from `compression.type` as Kafka keeps them, so that a level set for a
//! codec not in use is stored and written back unchanged.
//!
//! Invariant: after [`CompressionLevels::validate`], [`CompressionLevels::codec`] returns the
//! configured level for every codec.

use crate::codec::{Compression, CompressionCodec};
use crate::error::{Error, Result};

/// The config keys of the levels, in the order [`CompressionLevels::to_properties`] writes them.
pub(crate) const LEVEL_KEYS: [&str; 3] = [
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
];

/// The level each codec compresses at. Defaults are Kafka's: gzip -1 (zlib's default, 6),
/// lz4 9, zstd 3.
///
/// ```
/// use embroker::codec::Compression;
/// use embroker::CompressionLevels;
///
/// let levels = CompressionLevels { zstd: 9, ..CompressionLevels::default() };
/// assert_eq!(levels.codec(Compression::Zstd).level(), Some(9));
/// assert_eq!(levels.codec(Compression::Gzip).level(), Some(-1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompressionLevels {
    /// `compression.gzip.level`: 1 to 9, or -1 for zlib's default.
    pub gzip: i32,
    /// `compression.lz4.level`: 1 to 17.
    pub lz4: i32,
    /// `compression.zstd.level`: -131072 to 22.
    pub zstd: i32,
}

impl Default for CompressionLevels {
    fn default() -> Self {
        CompressionLevels {
            gzip: Compression::Gzip.default_level().unwrap_or(-1),
            lz4: Compression::Lz4.default_level().unwrap_or(9),
            zstd: Compression::Zstd.default_level().unwrap_or(3),
        }
    }
}

impl CompressionLevels {
    /// The configured level of `compression`.
    fn level(&self, compression: Compression) -> Option<i32> {
        match compression {
            Compression::Gzip => Some(self.gzip),
            Compression::Lz4 => Some(self.lz4),
            Compression::Zstd => Some(self.zstd),
            _ => None,
        }
    }

    /// `compression` at its configured level (its default level if the configured one is out
    /// of range, which the config's validation reports before any use).
    pub fn codec(&self, compression: Compression) -> CompressionCodec {
        self.level(compression)
            .and_then(|level| CompressionCodec::with_level(compression, level).ok())
            .unwrap_or_else(|| CompressionCodec::new(compression))
    }

    /// Checks every level against Kafka's range for its codec; the error names the key.
    pub(crate) fn validate(&self) -> Result<()> {
        for (key, compression, level) in self.entries() {
            CompressionCodec::with_level(compression, level)
                .map_err(|e| Error::config(key, level, e.to_string()))?;
        }
        Ok(())
    }

    /// Sets the level `key` names; false when `key` is not a level key.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let Some((_, compression, _)) = self.entries().into_iter().find(|(k, ..)| *k == key) else {
            return Ok(false);
        };
        let level: i32 = value
            .trim()
            .parse()
            .map_err(|_| Error::config(key, value, "not an integer"))?;
        CompressionCodec::with_level(compression, level)
            .map_err(|e| Error::config(key, value, e.to_string()))?;
        match compression {
            Compression::Gzip => self.gzip = level,
            Compression::Lz4 => self.lz4 = level,
            _ => self.zstd = level,
        }
        Ok(true)
    }

    /// The levels as Kafka's `(key, value)` pairs.
    pub(crate) fn to_properties(self) -> Vec<(&'static str, String)> {
        self.entries()
            .into_iter()
            .map(|(key, _, level)| (key, level.to_string()))
            .collect()
    }

    fn entries(&self) -> [(&'static str, Compression, i32); 3] {
        [
            (LEVEL_KEYS[0], Compression::Gzip, self.gzip),
            (LEVEL_KEYS[1], Compression::Lz4, self.lz4),
            (LEVEL_KEYS[2], Compression::Zstd, self.zstd),
        ]
    }
}
