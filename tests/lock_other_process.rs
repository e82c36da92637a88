//! The data-directory lock holds across processes: a child process that tries to open a
//! directory this process has open fails at once with `DirectoryLocked`. (Its own binary, so
//! that spawning the child cannot race the open/close of other tests in the same process.)

use embroker::{Broker, Error};

#[test]
fn second_open_from_another_process_fails() {
    // Re-run this test binary as a child that tries to open a directory we hold.
    if let Ok(dir) = std::env::var("EMBROKER_LOCK_CHILD_DIR") {
        match Broker::open(&dir) {
            Err(Error::DirectoryLocked { .. }) => std::process::exit(0),
            other => {
                eprintln!("child: expected DirectoryLocked, got {other:?}");
                std::process::exit(1)
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let _held = Broker::open(dir.path()).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "second_open_from_another_process_fails",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("EMBROKER_LOCK_CHILD_DIR", dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "the child could open a locked directory");
}
