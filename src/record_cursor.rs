//! The bounds-checked big-endian reader that the internal topics' record codecs share
//! (`__consumer_offsets` in `group::offset_store`, `__transaction_state` in `txn::state_log`),
//! and Java's `String.hashCode`, which places a key in those topics' partitions.
//!
//! Invariant: no read passes the end of its bytes; every failure is [`Error::Corrupt`] naming
//! the internal topic, the part read (key or value) and the byte position within it.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// A bounds-checked big-endian reader over one record's key or value. Format-specific reads
/// (Kafka's strings, varints, arrays) are inherent methods in the codec modules.
pub(crate) struct Cursor<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) at: usize,
    /// The internal topic, reported as the damaged "file".
    topic: &'static str,
    /// What the record is ("offset-commit", "transaction log"), for the error's reason.
    record: &'static str,
    /// Which part: "key" or "value".
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(
        bytes: &'a [u8],
        topic: &'static str,
        record: &'static str,
        what: &'static str,
    ) -> Self {
        Cursor {
            bytes,
            at: 0,
            topic,
            record,
            what,
        }
    }

    pub(crate) fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            path: PathBuf::from(self.topic),
            position: self.at as u64,
            reason: format!("{} {}: {reason}", self.record, self.what),
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.at.checked_add(n).filter(|&e| e <= self.bytes.len()) {
            Some(end) => {
                let out = &self.bytes[self.at..end];
                self.at = end;
                Ok(out)
            }
            None => Err(self.corrupt(format!(
                "needs {n} more bytes, has {}",
                self.bytes.len() - self.at
            ))),
        }
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// `len` bytes as UTF-8.
    pub(crate) fn utf8(&mut self, len: usize) -> Result<String> {
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(self.corrupt("string is not UTF-8".into())),
        }
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(self.corrupt(format!("{} trailing bytes", self.bytes.len() - self.at)))
        }
    }
}

/// Java's `String.hashCode` over UTF-16 code units.
pub(crate) fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}
