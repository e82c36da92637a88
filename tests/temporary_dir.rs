//! Where a temporary broker makes its directory: `BrokerBuilder::temporary_dir_in` when set,
//! else `TMPDIR` when set, else `/dev/shm` when it is a writable directory with 1 GiB free, else
//! the system's temporary directory; and that the directory is gone once the broker drops.
//! Also what a temporary broker keeps on disk: its partitions' segments only (no `.lock`, no
//! `topics/`), with topic configs in memory, and a persistent open of its live directory
//! refused. The environment is only read, never set, so these run beside each other safely.

mod common;

use std::path::Path;

use common::file_names;

use embroker::{Broker, Error, Record, TopicConfig};

fn use_broker(broker: &Broker) {
    broker
        .create_topic("t", TopicConfig::default().partitions(1))
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    p.append(&[Record::new("v")]).unwrap();
    assert_eq!(p.read(0, 1 << 20).unwrap().iter().count(), 1);
}

#[test]
fn temporary_dir_in_decides_where_the_directory_goes_and_it_is_removed_on_drop() {
    let parent = tempfile::tempdir().unwrap();
    let broker = Broker::builder()
        .temporary_dir_in(parent.path())
        .open_temporary()
        .unwrap();
    let path = broker.path().to_path_buf();
    assert_eq!(path.parent(), Some(parent.path()));
    use_broker(&broker);
    drop(broker);
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn a_missing_parent_is_an_error_naming_it() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("no-such-dir");
    let err = Broker::builder()
        .temporary_dir_in(&missing)
        .open_temporary()
        .unwrap_err();
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[test]
fn without_a_setting_the_default_parent_is_tmpdir_or_dev_shm_or_the_system_temp_dir() {
    let broker = Broker::temporary().unwrap();
    let path = broker.path().to_path_buf();
    let parent = path.parent().unwrap().to_path_buf();
    let tmpdir_set = std::env::var_os("TMPDIR").is_some_and(|t| !t.is_empty());
    let shm = Path::new("/dev/shm");
    let shm_writable = shm.is_dir() && tempfile::tempdir_in(shm).is_ok();
    let shm_roomy = shm_free_bytes().is_some_and(|free| free >= 1 << 30);
    let expected = if tmpdir_set || !shm_writable || !shm_roomy {
        std::env::temp_dir()
    } else {
        shm.to_path_buf()
    };
    assert_eq!(parent, expected);
    use_broker(&broker);
    drop(broker);
    assert!(!path.exists(), "{} left behind", path.display());
}

#[cfg(target_os = "linux")]
fn shm_free_bytes() -> Option<u64> {
    let stat = rustix::fs::statvfs("/dev/shm").ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(target_os = "linux"))]
fn shm_free_bytes() -> Option<u64> {
    None
}

#[test]
fn a_temporary_broker_keeps_only_segments_on_disk_and_its_topic_configs_in_memory() {
    let broker = Broker::temporary().unwrap();
    let path = broker.path().to_path_buf();
    assert_eq!(
        file_names(&path),
        Vec::<String>::new(),
        "no .lock, no topics/"
    );
    use_broker(&broker);
    assert_eq!(file_names(&path), ["t-0"]);
    assert_eq!(file_names(&path.join("t-0")), ["00000000000000000000.log"]);
    // No lock file, but the directory is still refused to a persistent open while it lives.
    let e = Broker::open(&path).unwrap_err();
    assert!(matches!(e, Error::DirectoryLocked { .. }), "{e}");
    // Topic changes that a persistent broker commits in its topic file work in memory.
    broker
        .alter_topic_config("t", &[("retention.ms", "1234")])
        .unwrap();
    assert_eq!(
        broker.describe_topic("t").unwrap().config.retention_ms,
        1234
    );
    broker.create_partitions("t", 3).unwrap();
    let d = broker.describe_topic("t").unwrap();
    assert_eq!(d.partitions.len(), 3);
    assert_eq!(d.config.retention_ms, 1234);
    assert_eq!(d.partitions[0].log_end_offset, 1);
    let p2 = broker.topic("t").unwrap().partition(2).unwrap();
    assert_eq!(p2.append(&[Record::new("x")]).unwrap(), 0);
    assert_eq!(file_names(&path), ["t-0", "t-1", "t-2"]);
    // Deleted and made again: fresh offsets, as on a persistent broker.
    drop(p2);
    broker.delete_topic("t").unwrap();
    assert_eq!(file_names(&path), Vec::<String>::new());
    assert!(broker.describe_topic("t").is_err());
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let p = broker.topic("t").unwrap().partition(1).unwrap();
    assert_eq!(p.log_end_offset(), 0);
    assert_eq!(p.append(&[Record::new("y")]).unwrap(), 0);
    drop(p);
    drop(broker);
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn a_temporary_directory_holding_files_the_broker_did_not_note_is_still_removed() {
    let broker = Broker::temporary().unwrap();
    let path = broker.path().to_path_buf();
    // Rolled segments (their index files are written when they are sealed) in one topic, a
    // stray file in a partition directory and one at the root.
    broker
        .create_topic("rolled", TopicConfig::default().segment_bytes(16 * 1024))
        .unwrap();
    let p = broker.topic("rolled").unwrap().partition(0).unwrap();
    let value = vec![b'v'; 1024];
    for _ in 0..64 {
        p.append(&[Record::new(value.clone())]).unwrap();
    }
    drop(p);
    broker
        .create_topic("other", TopicConfig::default())
        .unwrap();
    std::fs::write(path.join("other-0").join("stray"), b"x").unwrap();
    std::fs::write(path.join("stray"), b"x").unwrap();
    std::fs::create_dir(path.join("stray-dir")).unwrap();
    assert!(
        file_names(&path.join("rolled-0")).len() > 2,
        "segments rolled"
    );
    drop(broker);
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn a_persistent_broker_still_takes_its_lock_and_writes_topic_files() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    use_broker(&broker);
    assert_eq!(file_names(dir.path()), [".lock", "t-0", "topics"]);
    assert_eq!(file_names(&dir.path().join("topics")), ["t"]);
    let e = Broker::open(dir.path()).unwrap_err();
    assert!(matches!(e, Error::DirectoryLocked { .. }), "{e}");
}
