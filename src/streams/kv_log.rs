//! The bytes of a persistent key-value store: an append-only file of CRC-checked put and
//! delete entries with an in-memory index from key to the position of its live entry.
//!
//! Owns: `<dir>/data.log` (and `<dir>/data.log.compact` while compacting). The bytes
//! (docs/FORMAT.md, "Streams persistent store log"): the magic `EMBKVLG1`; then per entry
//! the CRC-32 (IEEE, u32 big-endian) of the rest of the entry, the key length (u32
//! big-endian), the value length (i32 big-endian, -1 for a delete), the key, the value.
//!
//! Invariants: the index holds every live key once, at its newest put, in `K`'s order; a
//! value is read from the file (or the write buffer) on every `get`, so memory holds keys and
//! positions, not values. Opening reads the entries in order and stops at the first that is
//! short or fails its CRC (a torn tail left by a crash), truncating the file there. When the
//! dead bytes (overwritten or deleted entries) pass the live ones and [`COMPACT_MIN_DEAD`],
//! the live entries are copied to a new file that replaces the old one atomically (written,
//! synced, renamed, directory synced). Nothing is durable before [`KvLog::flush`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::{read_at, sync_dir, write_all_at};

const MAGIC: &[u8; 8] = b"EMBKVLG1";
/// CRC, key length, value length.
const ENTRY_HEADER: u64 = 12;
/// Appends are buffered up to this many bytes before they are written to the file.
const PENDING_MAX: usize = 1 << 18;
/// No compaction before this many dead bytes: small stores are not rewritten over and over.
pub(crate) const COMPACT_MIN_DEAD: u64 = 4 << 20;
/// The log's file name inside the store's directory.
pub(crate) const FILE_NAME: &str = "data.log";

/// Where a live entry is.
#[derive(Clone, Copy, Debug)]
struct Loc {
    pos: u64,
    key_len: u32,
    value_len: u32,
}

impl Loc {
    fn size(&self) -> u64 {
        ENTRY_HEADER + u64::from(self.key_len) + u64::from(self.value_len)
    }

    fn value_pos(&self) -> u64 {
        self.pos + ENTRY_HEADER + u64::from(self.key_len)
    }
}

/// What opening a log found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Opened {
    /// The file did not exist (or was empty): the store starts empty.
    pub(crate) created: bool,
    /// Bytes cut from the end: a torn or damaged tail.
    pub(crate) truncated: u64,
}

/// An open log, its keys indexed as `K`.
pub(crate) struct KvLog<K> {
    path: PathBuf,
    file: File,
    /// Bytes in the file; `pending` follows them.
    written: u64,
    pending: Vec<u8>,
    index: BTreeMap<K, Loc>,
    /// Bytes of the entries the index points at.
    live: u64,
    /// Bytes of all entries.
    total: u64,
}

fn entry_header(key: &[u8], value: Option<&[u8]>) -> Result<(u32, i32)> {
    let too_long = |what: &str, len: usize| Error::StateStore {
        store: String::new(),
        reason: format!("a {what} of {len} bytes is longer than a store entry holds"),
    };
    let key_len = u32::try_from(key.len()).map_err(|_| too_long("key", key.len()))?;
    let value_len = match value {
        Some(v) => i32::try_from(v.len()).map_err(|_| too_long("value", v.len()))?,
        None => -1,
    };
    Ok((key_len, value_len))
}

fn crc_of(key_len: u32, value_len: i32, key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&key_len.to_be_bytes());
    h.update(&value_len.to_be_bytes());
    h.update(key);
    h.update(value);
    h.finalize()
}

impl<K: Ord + Clone> KvLog<K> {
    /// Open (or create) the log in `dir`, indexing its keys with `decode_key`.
    pub(crate) fn open(
        dir: &Path,
        mut decode_key: impl FnMut(&[u8]) -> Result<K>,
    ) -> Result<(KvLog<K>, Opened)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let path = dir.join(FILE_NAME);
        // A compaction that did not finish: the log it would have replaced is whole.
        let leftover = path.with_extension("log.compact");
        match std::fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", &leftover, e)),
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading the size of", &path, e))?
            .len();
        let mut opened = Opened::default();
        let mut log = KvLog {
            path,
            file,
            written: 0,
            pending: Vec::new(),
            index: BTreeMap::new(),
            live: 0,
            total: 0,
        };
        let mut magic = [0u8; 8];
        if len < MAGIC.len() as u64 {
            opened.created = true;
        } else {
            read_at(&log.file, &mut magic, 0, &log.path)?;
            if &magic != MAGIC {
                return Err(Error::StateStore {
                    store: log.path.display().to_string(),
                    reason: "not a store log (its magic is not EMBKVLG1)".to_string(),
                });
            }
        }
        let end = if opened.created {
            write_all_at(&log.file, MAGIC, 0, &log.path)?;
            MAGIC.len() as u64
        } else {
            log.scan(len, &mut decode_key)?
        };
        if end < len {
            opened.truncated = len - end;
            log::warn!(
                "{}: {} bytes at offset {end} are not whole entries (a torn tail); truncated",
                log.path.display(),
                opened.truncated
            );
        }
        if end != len {
            log.file
                .set_len(end)
                .map_err(|e| Error::io("truncating", &log.path, e))?;
        }
        log.written = end;
        Ok((log, opened))
    }

    /// Index the entries of a file of `len` bytes; the offset after the last whole entry.
    fn scan(&mut self, len: u64, decode_key: &mut impl FnMut(&[u8]) -> Result<K>) -> Result<u64> {
        let mut reader = BufReader::with_capacity(1 << 20, &self.file);
        let mut skip = [0u8; 8];
        reader
            .read_exact(&mut skip)
            .map_err(|e| Error::io("reading", &self.path, e))?;
        let mut pos = MAGIC.len() as u64;
        let mut key = Vec::new();
        let mut value = Vec::new();
        loop {
            if len - pos < ENTRY_HEADER {
                return Ok(pos);
            }
            let mut header = [0u8; ENTRY_HEADER as usize];
            reader
                .read_exact(&mut header)
                .map_err(|e| Error::io("reading", &self.path, e))?;
            let crc = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
            let key_len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let value_len = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
            let value_bytes = u64::try_from(value_len).unwrap_or(0);
            if value_len < -1
                || len - pos - ENTRY_HEADER < u64::from(key_len).saturating_add(value_bytes)
            {
                return Ok(pos);
            }
            key.resize(key_len as usize, 0);
            value.resize(value_bytes as usize, 0);
            reader
                .read_exact(&mut key)
                .and_then(|()| reader.read_exact(&mut value))
                .map_err(|e| Error::io("reading", &self.path, e))?;
            if crc_of(key_len, value_len, &key, &value) != crc {
                return Ok(pos);
            }
            let loc = Loc {
                pos,
                key_len,
                value_len: value_bytes as u32,
            };
            let k = decode_key(&key)?;
            if value_len >= 0 {
                self.live += loc.size();
                if let Some(old) = self.index.insert(k, loc) {
                    self.live -= old.size();
                }
            } else if let Some(old) = self.index.remove(&k) {
                self.live -= old.size();
            }
            self.total += loc.size();
            pos += loc.size();
        }
    }

    /// How many keys are live.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether `key` is live.
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.index.contains_key(key)
    }

    fn read_value(&self, loc: Loc) -> Result<Vec<u8>> {
        let mut value = vec![0u8; loc.value_len as usize];
        let at = loc.value_pos();
        if at >= self.written {
            // Still in the write buffer (an entry is never split between file and buffer).
            let start = (at - self.written) as usize;
            let slice = self
                .pending
                .get(start..start + value.len())
                .ok_or_else(|| Error::StateStore {
                    store: self.path.display().to_string(),
                    reason: format!("no entry at offset {}", loc.pos),
                })?;
            value.copy_from_slice(slice);
        } else {
            read_at(&self.file, &mut value, at, &self.path)?;
        }
        Ok(value)
    }

    /// The value bytes of `key`, if live.
    pub(crate) fn get(&self, key: &K) -> Result<Option<Vec<u8>>> {
        match self.index.get(key) {
            Some(loc) => self.read_value(*loc).map(Some),
            None => Ok(None),
        }
    }

    /// The live entries with `from <= key <= to` (either end unbounded when `None`), in key
    /// order, with their value bytes.
    pub(crate) fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, Vec<u8>)>> {
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Ok(Vec::new());
            }
        }
        let lower = from.map_or(Bound::Unbounded, Bound::Included);
        let upper = to.map_or(Bound::Unbounded, Bound::Included);
        self.index
            .range((lower, upper))
            .map(|(k, loc)| Ok((k.clone(), self.read_value(*loc)?)))
            .collect()
    }

    /// Append an entry: `key` (as `key_bytes`) set to `value`, or deleted (`None`).
    pub(crate) fn write(&mut self, key: K, key_bytes: &[u8], value: Option<&[u8]>) -> Result<()> {
        let (key_len, value_len) = entry_header(key_bytes, value).map_err(|e| match e {
            Error::StateStore { reason, .. } => Error::StateStore {
                store: self.path.display().to_string(),
                reason,
            },
            other => other,
        })?;
        let value_bytes = value.unwrap_or(&[]);
        let loc = Loc {
            pos: self.written + self.pending.len() as u64,
            key_len,
            value_len: value_bytes.len() as u32,
        };
        self.pending
            .extend_from_slice(&crc_of(key_len, value_len, key_bytes, value_bytes).to_be_bytes());
        self.pending.extend_from_slice(&key_len.to_be_bytes());
        self.pending.extend_from_slice(&value_len.to_be_bytes());
        self.pending.extend_from_slice(key_bytes);
        self.pending.extend_from_slice(value_bytes);
        self.total += loc.size();
        let old = if value.is_some() {
            self.live += loc.size();
            self.index.insert(key, loc)
        } else {
            self.index.remove(&key)
        };
        if let Some(old) = old {
            self.live -= old.size();
        }
        if self.pending.len() >= PENDING_MAX {
            self.write_pending()?;
        }
        let dead = self.total - self.live;
        if dead >= COMPACT_MIN_DEAD && dead > self.live {
            self.compact()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        write_all_at(&self.file, &self.pending, self.written, &self.path)?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Write the buffered entries and fsync the file: everything written so far survives a
    /// crash.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.write_pending()?;
        crate::io::sync::data(&self.file, &self.path)
            .map_err(|e| Error::io("syncing", &self.path, e))
    }

    /// The file's size with what is buffered, and the bytes of its live entries.
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (u64, u64) {
        (
            self.written + self.pending.len() as u64,
            MAGIC.len() as u64 + self.live,
        )
    }

    /// Copy the live entries to a new file that replaces this one.
    pub(crate) fn compact(&mut self) -> Result<()> {
        self.write_pending()?;
        let tmp = self.path.with_extension("log.compact");
        let out = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Error::io("creating", &tmp, e))?;
        let mut buf = Vec::with_capacity(PENDING_MAX * 2);
        buf.extend_from_slice(MAGIC);
        let mut at = 0u64;
        let mut moved = Vec::with_capacity(self.index.len());
        let mut pos = MAGIC.len() as u64;
        let mut entry = Vec::new();
        for loc in self.index.values() {
            entry.resize(loc.size() as usize, 0);
            read_at(&self.file, &mut entry, loc.pos, &self.path)?;
            buf.extend_from_slice(&entry);
            moved.push(pos);
            pos += loc.size();
            if buf.len() >= PENDING_MAX {
                write_all_at(&out, &buf, at, &tmp)?;
                at += buf.len() as u64;
                buf.clear();
            }
        }
        write_all_at(&out, &buf, at, &tmp)?;
        crate::io::sync::data(&out, &tmp).map_err(|e| Error::io("syncing", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io("renaming", &tmp, e))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        self.file = out;
        for (loc, pos) in self.index.values_mut().zip(moved) {
            loc.pos = pos;
        }
        self.written = pos;
        self.total = self.live;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(bytes.to_vec())
    }

    fn open(dir: &Path) -> (KvLog<Vec<u8>>, Opened) {
        KvLog::open(dir, key).unwrap()
    }

    #[test]
    fn entries_survive_a_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, opened) = open(dir.path());
        assert!(opened.created);
        log.write(b"a".to_vec(), b"a", Some(b"1")).unwrap();
        log.write(b"b".to_vec(), b"b", Some(b"2")).unwrap();
        log.write(b"a".to_vec(), b"a", None).unwrap();
        log.flush().unwrap();
        log.write(b"c".to_vec(), b"c", Some(b"3")).unwrap();
        log.flush().unwrap();
        drop(log);
        let file = dir.path().join(FILE_NAME);
        let len = std::fs::metadata(&file).unwrap().len();
        // A crash in the middle of the last entry.
        let f = OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(len - 1).unwrap();
        drop(f);
        let (log, opened) = open(dir.path());
        assert_eq!(
            opened,
            Opened {
                created: false,
                truncated: ENTRY_HEADER + 1
            }
        );
        assert_eq!(log.get(&b"a".to_vec()).unwrap(), None);
        assert_eq!(log.get(&b"b".to_vec()).unwrap(), Some(b"2".to_vec()));
        assert_eq!(log.get(&b"c".to_vec()).unwrap(), None);
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn a_flipped_byte_cuts_the_log_there_and_another_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path());
        log.write(b"a".to_vec(), b"a", Some(b"1")).unwrap();
        log.write(b"b".to_vec(), b"b", Some(b"2")).unwrap();
        log.flush().unwrap();
        drop(log);
        let file = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let (log, opened) = open(dir.path());
        assert_eq!(opened.truncated, ENTRY_HEADER + 2);
        assert_eq!(
            log.range(None, None).unwrap(),
            vec![(b"a".to_vec(), b"1".to_vec())]
        );
        drop(log);
        std::fs::write(&file, b"NOTALOG!").unwrap();
        assert!(KvLog::open(dir.path(), key).is_err());
    }

    #[test]
    fn compaction_keeps_the_live_entries_and_shrinks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path());
        let value = vec![7u8; 1000];
        // Enough overwrites of 100 keys to pass COMPACT_MIN_DEAD several times.
        for round in 0..100u32 {
            for k in 0..100u32 {
                let mut v = value.clone();
                v[0] = round as u8;
                log.write(k.to_be_bytes().to_vec(), &k.to_be_bytes(), Some(&v))
                    .unwrap();
            }
        }
        let (size, live) = log.sizes();
        assert!(
            size < 2 * live + COMPACT_MIN_DEAD,
            "{size} bytes for {live} live"
        );
        assert_eq!(
            log.get(&5u32.to_be_bytes().to_vec()).unwrap().unwrap()[0],
            99
        );
        log.compact().unwrap();
        assert_eq!(log.sizes().0, log.sizes().1);
        log.flush().unwrap();
        drop(log);
        let (log, _) = open(dir.path());
        assert_eq!(log.len(), 100);
        assert_eq!(
            log.get(&99u32.to_be_bytes().to_vec()).unwrap().unwrap()[0],
            99
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(u8, Vec<u8>),
        Delete(u8),
        Range(u8, u8),
        Reopen,
        Compact,
        /// Reopen after losing what was not flushed and `cut` bytes of the file's end.
        Crash(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..32, proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(k, v)| Op::Put(k, v)),
            2 => (0u8..32).prop_map(Op::Delete),
            1 => (0u8..32, 0u8..32).prop_map(|(a, b)| Op::Range(a, b)),
            1 => Just(Op::Reopen),
            1 => Just(Op::Compact),
            1 => (0u8..30).prop_map(Op::Crash),
        ]
    }

    proptest! {
        #[test]
        fn the_log_is_a_map_across_reopens_and_crashes(ops in proptest::collection::vec(op(), 0..120)) {
            let dir = tempfile::tempdir().unwrap();
            let (mut log, _) = open(dir.path());
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            // The model as of the last flush, and the entries written since, in order.
            let mut durable = model.clone();
            let mut since: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        log.write(vec![k], &[k], Some(&v)).unwrap();
                        model.insert(vec![k], v.clone());
                        since.push((vec![k], Some(v)));
                    }
                    Op::Delete(k) => {
                        log.write(vec![k], &[k], None).unwrap();
                        model.remove(&vec![k]);
                        since.push((vec![k], None));
                    }
                    Op::Range(a, b) => {
                        let want: Vec<(Vec<u8>, Vec<u8>)> = if a <= b {
                            model.range(vec![a]..=vec![b]).map(|(k, v)| (k.clone(), v.clone())).collect()
                        } else {
                            Vec::new()
                        };
                        prop_assert_eq!(log.range(Some(&vec![a]), Some(&vec![b])).unwrap(), want);
                    }
                    Op::Reopen => {
                        log.flush().unwrap();
                        drop(log);
                        log = open(dir.path()).0;
                        durable = model.clone();
                        since.clear();
                    }
                    Op::Compact => {
                        log.compact().unwrap();
                    }
                    Op::Crash(cut) => {
                        // Without a flush the buffer may be lost; what reached the file, less
                        // a torn tail, is a prefix of the writes.
                        drop(log);
                        let file = dir.path().join(FILE_NAME);
                        let len = std::fs::metadata(&file).unwrap().len();
                        let f = OpenOptions::new().write(true).open(&file).unwrap();
                        f.set_len(len.saturating_sub(u64::from(cut)).max(8)).unwrap();
                        drop(f);
                        log = open(dir.path()).0;
                        // The store now equals `durable` plus some prefix of `since`.
                        let got: BTreeMap<Vec<u8>, Vec<u8>> = log.range(None, None).unwrap().into_iter().collect();
                        let mut state = durable.clone();
                        let mut matched = state == got;
                        for (k, v) in &since {
                            match v {
                                Some(v) => { state.insert(k.clone(), v.clone()); }
                                None => { state.remove(k); }
                            }
                            matched |= state == got;
                        }
                        // A cut reaching below the last flush loses flushed entries too, as a
                        // damaged disk would: then only a consistent prefix is asked for.
                        if u64::from(cut) == 0 { prop_assert!(matched); }
                        model = got;
                        durable = model.clone();
                        since.clear();
                    }
                }
                prop_assert_eq!(log.len(), model.len());
            }
            let all: Vec<(Vec<u8>, Vec<u8>)> = model.into_iter().collect();
            prop_assert_eq!(log.range(None, None).unwrap(), all);
        }
    }
}
