//! Recovery after unclean shutdowns and damage, through the public API and the files on disk:
//! a torn tail is cut at the last whole batch; damage in data past the recovery point is cut
//! there; damage in data the recovery point says was flushed is an error naming the file and
//! position, while the rest of the broker keeps working; indexes and checkpoints are rebuilt.

mod common;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use common::{file_names, numbered, read_all, values};
use embroker::{Broker, Error, Record, TopicConfig};

/// Removes every recovery point of `topic_partition` (its own file, if a flush wrote one, and
/// the data directory's `recovery-points`, which a clean close writes): as if nothing had
/// ever been flushed.
fn forget_recovery_points(dir: &Path, topic_partition: &str) {
    let _ = std::fs::remove_file(dir.join(topic_partition).join("recovery-point"));
    std::fs::remove_file(dir.join("recovery-points")).unwrap();
}

fn segment(dir: &Path, topic_partition: &str, base: u64, ext: &str) -> PathBuf {
    dir.join(topic_partition).join(format!("{base:020}.{ext}"))
}

#[test]
fn torn_tail_is_truncated_at_the_last_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        for i in 0..10 {
            p.append(&numbered(i * 5, 5)).unwrap();
        }
        broker.close().unwrap();
    }
    // Append half a batch's worth of garbage and a torn copy of a real batch.
    let log = segment(dir.path(), "t-0", 0, "log");
    let len = std::fs::metadata(&log).unwrap().len();
    let bytes = std::fs::read(&log).unwrap();
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, &bytes[..40]).unwrap();
    drop(f);
    let broker = Broker::open(dir.path()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), 50);
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        len,
        "torn bytes cut off"
    );
    assert_eq!(read_all(&p, 0).len(), 50);
    assert_eq!(p.append(&[Record::new("next")]).unwrap(), 50);
}

#[test]
fn damage_after_the_recovery_point_is_cut_there_and_later_segments_dropped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("t", TopicConfig::default().segment_bytes(600))
            .unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        for i in 0..20 {
            p.append(&numbered(i * 5, 5)).unwrap();
        }
        broker.close().unwrap();
    }
    // Pretend nothing was ever flushed: remove the recovery point, then flip a byte in the
    // middle of the third segment.
    let pdir = dir.path().join("t-0");
    forget_recovery_points(dir.path(), "t-0");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 4, "{logs:?}");
    let mut bytes = std::fs::read(&logs[2]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&logs[2], &bytes).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let end = p.log_end_offset();
    assert!(
        end > 0 && end < 100,
        "cut inside the third segment: end {end}"
    );
    let all = read_all(&p, 0);
    assert_eq!(all.len() as i64, end, "contiguous prefix");
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
    }
    assert!(!logs[3].exists(), "segments after the cut are dropped");
}

#[test]
fn damage_in_flushed_data_is_an_error_naming_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        for p in 0..2 {
            let part = broker.topic("t").unwrap().partition(p).unwrap();
            for i in 0..10 {
                part.append(&numbered(i * 5, 5)).unwrap();
            }
            // Index files written: a clean close alone keeps a segment this small's index in
            // memory, and the open then rebuilds it by a scan (the next test).
            part.flush().unwrap();
        }
        broker.close().unwrap();
    }
    let log = segment(dir.path(), "t-0", 0, "log");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let p0 = broker.topic("t").unwrap().partition(0).unwrap();
    // Opening trusts flushed data with an index (no rescan), so the damage shows when it is
    // read.
    let mut found = None;
    let mut at_offset = 0;
    while at_offset < p0.log_end_offset() {
        match p0.read(at_offset, 100) {
            Ok(r) => at_offset = r.next_offset(),
            Err(e) => {
                found = Some(e);
                break;
            }
        }
    }
    let e = found.expect("the flipped byte must be detected");
    match &e {
        Error::Corrupt { path, position, .. } => {
            assert_eq!(path, &log);
            assert!(*position <= at as u64, "{e}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(e.to_string().contains("00000000000000000000.log"), "{e}");
    // The other partition is untouched and keeps working.
    let p1 = broker.topic("t").unwrap().partition(1).unwrap();
    assert_eq!(read_all(&p1, 0).len(), 50);
    p1.append(&[Record::new("still works")]).unwrap();
}

#[test]
fn a_log_shorter_than_its_recovery_point_keeps_only_that_partition_offline() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        for p in 0..2 {
            broker
                .topic("t")
                .unwrap()
                .partition(p)
                .unwrap()
                .append(&numbered(0, 50))
                .unwrap();
        }
        broker.close().unwrap();
    }
    let log = segment(dir.path(), "t-0", 0, "log");
    let len = std::fs::metadata(&log).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let e = broker.topic("t").unwrap().partition(0).unwrap_err();
    assert!(e.to_string().contains("00000000000000000000.log"), "{e}");
    assert!(e.to_string().contains("flushed"), "{e}");
    let d = broker.describe_topic("t").unwrap();
    assert!(d.partitions[0].error.is_some());
    assert!(d.partitions[1].error.is_none());
    assert_eq!(
        read_all(&broker.topic("t").unwrap().partition(1).unwrap(), 0).len(),
        50
    );
}

#[test]
fn damaged_indexes_and_checkpoint_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic(
                "t",
                TopicConfig::default()
                    .segment_bytes(4000)
                    .index_interval_bytes(200),
            )
            .unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        for i in 0..300 {
            p.append(&[Record::new(format!("value {i}"))]).unwrap();
        }
        broker.close().unwrap();
    }
    let pdir = dir.path().join("t-0");
    // Garbage in every index, a torn time index, a damaged checkpoint.
    for entry in std::fs::read_dir(&pdir).unwrap() {
        let path = entry.unwrap().path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("index") => std::fs::write(&path, [0xffu8; 24]).unwrap(),
            Some("timeindex") => std::fs::write(&path, [1u8; 13]).unwrap(),
            _ => {}
        }
    }
    std::fs::write(pdir.join("recovery-point"), b"not a checkpoint").unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), 300);
    for from in [0, 1, 150, 299] {
        assert_eq!(
            p.read(from, 10).unwrap().iter().next().unwrap().offset,
            from
        );
    }
    assert_eq!(values(&read_all(&p, 298)), ["value 298", "value 299"]);
}

#[test]
fn a_wrong_but_plausible_index_entry_is_not_reported_as_log_damage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("t", TopicConfig::default().index_interval_bytes(100))
            .unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        for i in 0..200 {
            p.append(&[Record::new(format!("value {i}"))]).unwrap();
        }
        // Writes the index files (a clean close alone keeps a log this small's in memory).
        p.flush().unwrap();
        broker.close().unwrap();
    }
    // Shift every entry's position by one byte: still increasing and inside the log, so it
    // loads, but no entry lands on a batch boundary any more.
    let index = segment(dir.path(), "t-0", 0, "index");
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(bytes.len() >= 16, "the test needs index entries");
    for entry in bytes.chunks_exact_mut(8) {
        let pos = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]) + 1;
        entry[4..8].copy_from_slice(&pos.to_be_bytes());
    }
    std::fs::write(&index, &bytes).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for from in [0, 57, 123, 199] {
        let r = p.read(from, 10).unwrap();
        assert_eq!(r.iter().next().unwrap().offset, from);
    }
}

#[test]
fn a_missing_index_file_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        let cfg = TopicConfig::default()
            .segment_bytes(2000)
            .index_interval_bytes(100);
        broker.create_topic("t", cfg).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        for i in 0..200 {
            p.append(&[Record::new(format!("value {i}"))]).unwrap();
        }
        // Writes the index files (a clean close alone keeps a log this small's in memory).
        p.flush().unwrap();
        broker.close().unwrap();
    }
    let index = segment(dir.path(), "t-0", 0, "index");
    std::fs::remove_file(&index).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    assert!(index.exists(), "rebuilt at open");
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(values(&read_all(&p, 198)), ["value 198", "value 199"]);
}

/// Found by fuzzing (open_partition_dir): an index entry that points at the wrong batch
/// (offset 0 -> the second batch) must not make offset 0 disappear, on the first open or after
/// a close and reopen, and the rebuilt index must replace the stale file.
#[test]
fn a_stale_index_entry_never_hides_records_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let second_batch_at;
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        p.append(&[Record::new("zero")]).unwrap();
        second_batch_at = std::fs::metadata(segment(dir.path(), "t-0", 0, "log"))
            .unwrap()
            .len();
        p.append(&[Record::new("one")]).unwrap();
        broker.close().unwrap();
    }
    let index = segment(dir.path(), "t-0", 0, "index");
    let mut entry = 0u32.to_be_bytes().to_vec();
    entry.extend_from_slice(&(second_batch_at as u32).to_be_bytes());
    std::fs::write(&index, &entry).unwrap();
    forget_recovery_points(dir.path(), "t-0");
    for _ in 0..2 {
        let broker = Broker::open(dir.path()).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        assert_eq!(values(&read_all(&p, 0)), ["zero", "one"]);
        broker.close().unwrap();
    }
    assert_ne!(
        std::fs::read(&index).unwrap(),
        entry,
        "the stale index was rewritten"
    );
}

#[test]
fn a_clean_close_writes_one_recovery_points_file_for_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(3))
            .unwrap();
        for p in 0..3 {
            let part = broker.topic("t").unwrap().partition(p).unwrap();
            part.append(&numbered(0, 10)).unwrap();
        }
        broker.close().unwrap();
    }
    assert!(dir.path().join("recovery-points").is_file());
    for p in 0..3 {
        // No per-partition point, no producer snapshot saying "no producers", and no index
        // files for an active segment this small (rebuilt at open, FORMAT.md §11).
        assert_eq!(
            file_names(&dir.path().join(format!("t-{p}"))),
            ["00000000000000000000.log"]
        );
    }
    // Trusted at open: a byte flipped in flushed data is reported by the read that reaches
    // it, not taken for a torn tail (which would cut the records after it).
    let log = segment(dir.path(), "t-1", 0, "log");
    let mut bytes = std::fs::read(&log).unwrap();
    // In the last record's value: inside its batch's CRC.
    let at = bytes.len() - 5;
    bytes[at] ^= 0x20;
    std::fs::write(&log, &bytes).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    for p in [0, 2] {
        let part = broker.topic("t").unwrap().partition(p).unwrap();
        assert_eq!(values(&read_all(&part, 0)).len(), 10);
    }
    let part = broker.topic("t").unwrap().partition(1).unwrap();
    assert_eq!(part.log_end_offset(), 10, "not cut at open");
}

#[test]
fn a_topic_created_again_under_its_name_never_takes_the_old_topics_entry() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(300);
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        for _ in 0..3 {
            p.append(&[Record::new(big.clone())]).unwrap();
        }
        broker.close().unwrap();
    }
    // The old topic's entry, as a crash (or an older embroker, which does not know the file)
    // would leave it beside the new topic.
    let stale = std::fs::read(dir.path().join("recovery-points")).unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.delete_topic("t").unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        for i in 0..10 {
            p.append(&[Record::new(format!("new-{i}"))]).unwrap();
        }
        broker.close().unwrap();
    }
    std::fs::write(dir.path().join("recovery-points"), stale).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), 10);
    let got = values(&read_all(&p, 0));
    let want: Vec<String> = (0..10).map(|i| format!("new-{i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn a_data_directory_without_recovery_points_opens_and_gets_one() {
    // A data directory of the previous format: per-partition `recovery-point` files and
    // producer snapshots, topic files without an id.
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        p.append(&numbered(0, 10)).unwrap();
        broker.flush().unwrap();
        broker.close().unwrap();
    }
    std::fs::remove_file(dir.path().join("recovery-points")).unwrap();
    let topic_file = dir.path().join("topics").join("t");
    let text = std::fs::read_to_string(&topic_file).unwrap();
    assert!(text.contains("# topic id: "), "{text}");
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("# topic id: "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&topic_file, old).unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        assert_eq!(values(&read_all(&p, 0)).len(), 10);
        p.append(&numbered(10, 5)).unwrap();
        broker.close().unwrap();
    }
    assert!(std::fs::read_to_string(&topic_file)
        .unwrap()
        .contains("# topic id: "));
    assert!(dir.path().join("recovery-points").is_file());
    let broker = Broker::open(dir.path()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(values(&read_all(&p, 0)).len(), 15);
}
