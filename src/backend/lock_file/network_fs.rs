//! File systems where `flock` may not exclude other machines: network file
//! systems (NFS, CIFS/SMB, ...) and FUSE file systems, whose locks work
//! only when the server or the FUSE daemon implements them.
//!
//! packlock never skips locking on them (cargo does, and its users lose
//! exclusion without knowing): by default it locks and warns once per file
//! system; with [`NetworkFsPolicy::Refuse`] opening fails instead. The OS
//! tells the file system type on Linux (see `sys`); elsewhere nothing is
//! detected.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use std::path::Path;

use crate::sys::{self, FileKey};
use crate::{NetworkFsPolicy, PackLockError};

/// Applies `policy` to the file system of the lock file `path`, whose
/// identity is `key`.
pub(crate) fn check(
    path: &Path,
    key: &FileKey,
    policy: NetworkFsPolicy,
) -> Result<(), PackLockError> {
    match unreliable_fs_type(key.device()) {
        Some(fs_type) => apply(path, key.device(), &fs_type, policy),
        None => Ok(()),
    }
}

/// Whether the lock file whose identity is `key` is on a network or FUSE
/// file system (as far as the OS tells).
pub(crate) fn is_on_unreliable_fs(key: &FileKey) -> bool {
    unreliable_fs_type(key.device()).is_some()
}

fn apply(
    path: &Path,
    device: u64,
    fs_type: &str,
    policy: NetworkFsPolicy,
) -> Result<(), PackLockError> {
    match policy {
        NetworkFsPolicy::Refuse => Err(PackLockError::UnreliableFileSystem {
            path: path.to_path_buf(),
            fs_type: fs_type.to_string(),
        }),
        NetworkFsPolicy::Warn => {
            if first_warning_for(device) {
                log::warn!(
                    "lock file {} is on a {fs_type} file system: its lock excludes other \
                     machines only if the server supports file locking",
                    path.display()
                );
            }
            Ok(())
        }
    }
}

/// Whether a file system type is one where `flock` depends on a server or
/// daemon.
fn is_unreliable(fs_type: &str) -> bool {
    const NETWORK: &[&str] =
        &["nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "ceph", "lustre", "gpfs"];
    NETWORK.contains(&fs_type)
        || fs_type == "fuse"
        || fs_type.starts_with("fuse.")
        || fs_type == "fuseblk"
}

/// Per device: its file system type if unreliable, and whether we warned.
type Seen = HashMap<u64, (Option<String>, bool)>;

static SEEN: LazyLock<Mutex<Seen>> = LazyLock::new(Mutex::default);

fn seen() -> MutexGuard<'static, Seen> {
    SEEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The type of the file system on `device` if it is unreliable, looked up
/// once per device.
fn unreliable_fs_type(device: u64) -> Option<String> {
    if let Some((fs_type, _)) = seen().get(&device) {
        return fs_type.clone();
    }
    let fs_type = sys::file_system_type(device).filter(|t| is_unreliable(t));
    seen().entry(device).or_insert((fs_type.clone(), false));
    fs_type
}

/// True the first time it is asked about `device`.
fn first_warning_for(device: u64) -> bool {
    let mut seen = seen();
    let (_, warned) = seen.entry(device).or_insert((None, false));
    !std::mem::replace(warned, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_and_fuse_file_systems_are_unreliable() {
        for fs in ["nfs", "nfs4", "cifs", "smb3", "fuse", "fuse.sshfs", "fuseblk", "9p"] {
            assert!(is_unreliable(fs), "{fs}");
        }
        for fs in ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs"] {
            assert!(!is_unreliable(fs), "{fs}");
        }
    }

    #[test]
    fn refuse_fails_with_the_type_and_warn_locks_anyway() {
        let path = Path::new("/mnt/share/.pack-lock");
        let refused = apply(path, 1, "nfs4", NetworkFsPolicy::Refuse).expect_err("refused");
        let message = refused.to_string();
        assert!(message.contains("nfs4") && message.contains("lock"), "{message}");
        assert!(apply(path, 1, "nfs4", NetworkFsPolicy::Warn).is_ok());
    }

    #[test]
    fn local_file_systems_pass_even_when_refusing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("lock");
        std::fs::write(&path, "").expect("create");
        let key = FileKey::at_path(&path).expect("stat");
        // The test machine keeps its temp dir on a local file system.
        assert!(check(&path, &key, NetworkFsPolicy::Refuse).is_ok());
    }
}
