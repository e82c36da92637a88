//! Read-only memory maps of segment files: the only module with `unsafe` code.
//!
//! Readers get record bytes straight from the page cache through a shared map, so a read costs
//! no copy and no system call.
//!
//! Why it is sound (memmap2's `map` is `unsafe` because another party changing or truncating the
//! file under the map is undefined behaviour, or a SIGBUS):
//! - The data directory is locked by one `Broker`; embroker's contract (documented on
//!   `Broker::open`) is that nothing else modifies files in a locked data directory.
//! - Within the process, a mapped segment file is never truncated or rewritten: bytes below a
//!   segment's published size are immutable; recovery truncates only at open, before any map
//!   exists; retention and topic deletion unlink files, which keeps the inode (and the map)
//!   alive until the last map drops; compaction writes new files.
//! - Readers touch only bytes below the published size, which never exceeds the file length,
//!   so the part of a map that lies past the end of the file is never accessed.

#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, Result};

/// A read-only map of the first `len` bytes of a file (`len` may exceed the file's length).
#[derive(Debug)]
pub(crate) struct SegmentMap {
    map: Mmap,
}

impl SegmentMap {
    pub(crate) fn new(file: &File, len: usize, path: &Path) -> Result<Arc<SegmentMap>> {
        // SAFETY: see the module documentation: the file is never truncated or modified below
        // its published size while mapped, and no byte at or past the file's length is read.
        let map = unsafe { MmapOptions::new().len(len).map(file) }
            .map_err(|e| Error::io("memory-mapping", path, e))?;
        Ok(Arc::new(SegmentMap { map }))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The bytes `start..end`; the caller keeps `end` within the published size.
    pub(crate) fn slice(&self, start: usize, end: usize) -> &[u8] {
        &self.map[start..end]
    }
}

struct MapSlice {
    map: Arc<SegmentMap>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        self.map.slice(self.start, self.end)
    }
}

/// Shares `start..end` of a map as `Bytes` without copying; the map lives as long as any slice.
pub(crate) fn share(map: &Arc<SegmentMap>, start: usize, end: usize) -> Bytes {
    debug_assert!(start <= end && end <= map.len());
    Bytes::from_owner(MapSlice {
        map: map.clone(),
        start,
        end,
    })
}
