//! Helpers shared by the integration tests: record generators and small assertions.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use embroker::{Partition, Record, StoredRecord};

/// `n` records with keys `k{i}` and values `v{i}` (i from `start`).
pub fn numbered(start: usize, n: usize) -> Vec<Record> {
    (start..start + n)
        .map(|i| Record::new(format!("v{i}")).key(format!("k{i}")))
        .collect()
}

/// Every record from `from` to the end of the partition.
pub fn read_all(p: &Partition, from: i64) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    let mut at = from;
    while at < p.log_end_offset() {
        let records = p.read(at, 64 * 1024).expect("read");
        if records.is_empty() {
            break;
        }
        out.extend(records.iter());
        at = records.next_offset();
    }
    out
}

/// The values as strings.
pub fn values(records: &[StoredRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or(b"<null>")).into_owned())
        .collect()
}
