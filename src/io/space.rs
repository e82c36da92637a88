//! How much room a file system has left, where the platform says.

use std::path::Path;

/// Bytes an unprivileged writer may still use on the file system holding `path`; `None` where
/// the platform or the call does not say.
#[cfg(target_os = "linux")]
pub(crate) fn available_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Bytes an unprivileged writer may still use on the file system holding `path`; `None` where
/// the platform or the call does not say.
#[cfg(not(target_os = "linux"))]
pub(crate) fn available_bytes(_path: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_directory_reports_its_room_and_a_missing_one_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        if cfg!(target_os = "linux") {
            assert!(available_bytes(dir.path()).is_some_and(|b| b > 0));
        }
        assert_eq!(available_bytes(&dir.path().join("missing")), None);
    }
}
