//! A data directory written by embroker's format 1 (its own batches: magic 1, CRC-32) is a
//! clear error naming the file, and nothing of it is converted or truncated.
//!
//! The old files are made from new ones: every batch gets magic 1 and a CRC-32 (IEEE) of the
//! bytes the CRC covers, and the recovery point gets version 1, which is what format 1 wrote.

mod common;

use std::path::Path;

use common::numbered;
use embroker::{Broker, Error, TopicConfig};

/// Rewrites every batch of `log` as format 1 wrote it.
fn to_format_1(log: &Path) {
    let mut bytes = std::fs::read(log).unwrap();
    let mut at = 0;
    while at + 61 <= bytes.len() {
        let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let end = at + 12 + length;
        bytes[at + 16] = 1;
        let crc = crc32fast::hash(&bytes[at + 21..end]);
        bytes[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
    assert_eq!(at, bytes.len());
    std::fs::write(log, bytes).unwrap();
}

/// Writes the recovery point as format 1's version 1 (same body, version 1, CRC-32).
fn recovery_point_to_version_1(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    bytes[4..6].copy_from_slice(&1u16.to_be_bytes());
    let crc = crc32fast::hash(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

fn written_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..10 {
        p.append(&numbered(i * 5, 5)).unwrap();
    }
    // A flush writes the partition's own `recovery-point` (format 1 had only those); the
    // data directory's `recovery-points`, which the close writes, came later.
    broker.flush().unwrap();
    broker.close().unwrap();
    std::fs::remove_file(dir.path().join("recovery-points")).unwrap();
    dir
}

fn open_error(dir: &Path) -> Error {
    match Broker::open(dir) {
        Err(e) => e,
        Ok(broker) => match broker.topic("t").and_then(|t| t.partition(0)) {
            Err(e) => e,
            Ok(p) => panic!(
                "a format-1 directory opened; log end {}",
                p.log_end_offset()
            ),
        },
    }
}

#[test]
fn a_format_1_directory_is_an_error_naming_its_recovery_point() {
    let dir = written_dir();
    let log = dir.path().join("t-0").join(format!("{:020}.log", 0));
    to_format_1(&log);
    recovery_point_to_version_1(&dir.path().join("t-0").join("recovery-point"));
    let before = std::fs::read(&log).unwrap();
    let err = open_error(dir.path());
    assert!(matches!(err, Error::FormatChanged { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("recovery-point") && text.contains("format"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "the old log was changed"
    );
}

#[test]
fn format_1_batches_without_a_recovery_point_are_an_error_not_a_torn_tail() {
    let dir = written_dir();
    let log = dir.path().join("t-0").join(format!("{:020}.log", 0));
    to_format_1(&log);
    // No recovery point (as after a crash before the first checkpoint): open scans the log.
    std::fs::remove_file(dir.path().join("t-0").join("recovery-point")).unwrap();
    let before = std::fs::read(&log).unwrap();
    let err = open_error(dir.path());
    assert!(matches!(err, Error::FormatChanged { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(".log") && text.contains("magic 1"), "{text}");
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "the old log was truncated"
    );
}
