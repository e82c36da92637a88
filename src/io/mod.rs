//! File-system primitives: positioned reads and writes, fsync of files and directories, atomic
//! replacement of small files, the data-directory lock, read-only memory maps of segments
//! (`mmap`, the only module with `unsafe` code), and a file system's free room (`space`).
//!
//! Owns: every call into `std::fs` that needs care for durability. Invariants:
//! - A file replaced with [`write_atomic`] is either wholly old or wholly new after a crash:
//!   write to `NAME.tmp`, fsync it, rename over `NAME`, fsync the directory.
//! - A file or directory created or removed is made durable by fsyncing its parent directory
//!   ([`sync_dir`]) before anything that depends on it is acknowledged.
//! - Errors carry the path and the action.
//! - Every fsync goes through `sync` (files) or [`sync_dir`] (directories, which asks `sync`
//!   first): a temporary broker's directory is registered there and never fsynced.

mod file;
mod lock;
mod mmap;
mod space;
pub(crate) mod sync;

pub(crate) use file::{
    create_dir_durable, read_at, read_small, remove_dir_all_durable, sync_dir, sync_dir_steps,
    write_all_at, write_all_vectored_at, write_atomic, write_atomic_via, write_unsynced, SmallFile,
    SyncError, VECTORED_PARTS_MAX,
};
pub(crate) use lock::DirLock;
pub(crate) use mmap::{share, SegmentMap};
pub(crate) use space::available_bytes;
