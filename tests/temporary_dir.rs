//! Where a temporary broker makes its directory: `BrokerBuilder::temporary_dir_in` when set,
//! else `TMPDIR` when set, else `/dev/shm` when it is a writable directory with 1 GiB free, else
//! the system's temporary directory; and that the directory is gone once the broker drops.
//! The environment is only read, never set, so these run beside each other safely.

use std::path::Path;

use embroker::{Broker, Record, TopicConfig};

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
