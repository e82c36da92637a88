//! A segment's transaction index (`<base>.txnindex`): the aborted transactions whose ABORT
//! marker lies in the segment, in marker order. Kafka's `TransactionIndex` and `AbortedTxn`
//! (`storage/src/main/java/org/apache/kafka/storage/internals/log/`).
//!
//! Entry (34 bytes, big-endian): `version i16 (0) | producer_id i64 | first_offset i64 |
//! last_offset i64 | last_stable_offset i64`.
//!
//! Invariants:
//! - Entries are in the order their markers were appended: `last_offset` strictly increases.
//! - The file exists only once an abort landed in the segment; it is rewritten whole
//!   (through a `.tmp` file) when the segment's indexes are persisted, so it is either the
//!   old or the new list, never a torn one.
//! - Decoding never panics: a file that is not whole entries of version 0 is an error.

/// Where and why an index file does not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Damage {
    pub position: usize,
    pub reason: String,
}

fn damage(position: usize, reason: String) -> Damage {
    Damage { position, reason }
}

/// Bytes of one entry.
pub(crate) const ENTRY_BYTES: usize = 34;
const _: () = assert!(ENTRY_BYTES == 2 + 8 + 8 + 8 + 8);

/// The version Kafka writes (`AbortedTxn.CURRENT_VERSION`).
const VERSION: i16 = 0;

/// An aborted transaction (Kafka's `AbortedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// The offset of the transaction's first batch.
    pub first_offset: i64,
    /// The offset of the ABORT marker.
    pub last_offset: i64,
    /// The last stable offset when the marker was written: the first offset of the next open
    /// transaction of another producer, or the offset after the marker.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// The entry's bytes.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }
}

/// Encodes a whole index.
pub(crate) fn encode(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for e in entries {
        e.encode(&mut out);
    }
    out
}

/// Decodes a whole index file.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<AbortedTxn>, Damage> {
    if !bytes.len().is_multiple_of(ENTRY_BYTES) {
        return Err(damage(
            bytes.len() - bytes.len() % ENTRY_BYTES,
            format!(
                "{} bytes is not a whole number of {ENTRY_BYTES}-byte entries",
                bytes.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    for (i, e) in bytes.chunks_exact(ENTRY_BYTES).enumerate() {
        let at = i * ENTRY_BYTES;
        let version = i16::from_be_bytes([e[0], e[1]]);
        if version != VERSION {
            return Err(damage(
                at,
                format!("aborted transaction entry of version {version}"),
            ));
        }
        let i64_at = |p: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&e[p..p + 8]);
            i64::from_be_bytes(b)
        };
        let entry = AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        if entry.first_offset > entry.last_offset
            || out
                .last()
                .is_some_and(|p: &AbortedTxn| p.last_offset >= entry.last_offset)
        {
            return Err(damage(
                at,
                format!("aborted transaction entry out of order: {entry:?}"),
            ));
        }
        out.push(entry);
    }
    Ok(out)
}

/// What a search of one segment's index found (Kafka's `TxnIndexSearchResult`).
pub(crate) struct Search {
    /// Whether no later segment can hold an entry that overlaps (Kafka's `isComplete`).
    pub complete: bool,
}

/// Adds to `out` the entries overlapping `[from, upper)`: a marker at or after `from` and a
/// first offset below `upper` (Kafka's `TransactionIndex.collectAbortedTxns`).
pub(crate) fn collect(
    entries: &[AbortedTxn],
    from: i64,
    upper: i64,
    out: &mut Vec<AbortedTxn>,
) -> Search {
    for e in entries {
        if e.last_offset >= from && e.first_offset < upper {
            out.push(*e);
        }
        if e.last_stable_offset >= upper {
            return Search { complete: true };
        }
    }
    Search { complete: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bytes_are_kafkas() {
        let e = AbortedTxn {
            producer_id: 5,
            first_offset: 10,
            last_offset: 20,
            last_stable_offset: 21,
        };
        let bytes = encode(&[e]);
        assert_eq!(bytes.len(), ENTRY_BYTES);
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &5i64.to_be_bytes());
        assert_eq!(&bytes[10..18], &10i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &20i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &21i64.to_be_bytes());
        assert_eq!(decode(&bytes).unwrap(), vec![e]);
    }

    #[test]
    fn damaged_files_are_errors() {
        let e = AbortedTxn {
            producer_id: 5,
            first_offset: 10,
            last_offset: 20,
            last_stable_offset: 21,
        };
        let bytes = encode(&[
            e,
            AbortedTxn {
                last_offset: 30,
                ..e
            },
        ]);
        assert!(decode(&bytes[..40]).is_err());
        let mut bad = bytes.clone();
        bad[1] = 1;
        assert!(decode(&bad).is_err());
        let backwards = encode(&[
            AbortedTxn {
                last_offset: 30,
                ..e
            },
            e,
        ]);
        assert!(decode(&backwards).is_err());
        assert_eq!(decode(&[]).unwrap(), vec![]);
    }

    #[test]
    fn collect_stops_at_the_first_entry_whose_lso_reaches_the_bound() {
        let a = AbortedTxn {
            producer_id: 1,
            first_offset: 0,
            last_offset: 5,
            last_stable_offset: 6,
        };
        let b = AbortedTxn {
            producer_id: 2,
            first_offset: 7,
            last_offset: 12,
            last_stable_offset: 13,
        };
        let mut out = Vec::new();
        assert!(collect(&[a, b], 6, 10, &mut out).complete);
        assert_eq!(out, vec![b]);
        out.clear();
        assert!(!collect(&[a, b], 0, 20, &mut out).complete);
        assert_eq!(out, vec![a, b]);
    }

    proptest! {
        #[test]
        fn round_trip(raw in proptest::collection::vec((any::<i64>(), 0i64..1000, 0i64..1000, any::<i64>()), 0..20)) {
            let mut last = 0i64;
            let entries: Vec<AbortedTxn> = raw.iter().map(|&(pid, gap, len, lso)| {
                let first = last + gap;
                last = first + len + 1;
                AbortedTxn { producer_id: pid, first_offset: first, last_offset: first + len, last_stable_offset: lso }
            }).collect();
            prop_assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        }

        #[test]
        fn decoding_never_panics(bytes: Vec<u8>) {
            let _ = decode(&bytes);
        }
    }
}
