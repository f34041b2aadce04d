//! File systems where `flock` may not exclude other machines: network file
//! systems (NFS, CIFS/SMB, ...) and FUSE file systems, whose locks work
//! only when the server or the FUSE daemon implements them.
//!
//! packlock never skips locking on them (cargo does, and its users lose
//! exclusion without knowing): by default it locks and warns once per file
//! system; with [`NetworkFsPolicy::Refuse`] opening fails instead. The OS
//! tells the file system type on Linux, through `/proc/self/mountinfo`
//! (matched by the lock file's device number); elsewhere nothing is
//! detected.

#[cfg(target_os = "linux")]
use std::collections::HashMap;
#[cfg(target_os = "linux")]
use std::sync::{LazyLock, Mutex, PoisonError};

use crate::PackLockError;
use crate::sidecar::Sidecar;

/// What to do when a lock file is on a network or FUSE file system, where
/// `flock` excludes other machines only if the server supports it.
///
/// # Example
///
/// ```
/// use packlock::{NetworkFsPolicy, PackLock};
///
/// # fn main() -> Result<(), packlock::PackLockError> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// // Fail to open instead of warning, for tools that need hard guarantees.
/// let lock = PackLock::builder(dir.path()).network_fs(NetworkFsPolicy::Refuse).open()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkFsPolicy {
    /// Lock anyway (NFSv4 and SMB servers that support locking honour
    /// it), and log one warning per file system naming it. The default.
    #[default]
    Warn,
    /// Refuse to open the lock: [`PackLockError::UnreliableFileSystem`].
    Refuse,
}

/// Applies `policy` to the file system of `sidecar`.
pub(crate) fn check(sidecar: &Sidecar, policy: NetworkFsPolicy) -> Result<(), PackLockError> {
    match unreliable_fs_type(sidecar) {
        Some(fs_type) => apply(sidecar, &fs_type, policy),
        None => Ok(()),
    }
}

fn apply(sidecar: &Sidecar, fs_type: &str, policy: NetworkFsPolicy) -> Result<(), PackLockError> {
    let path = sidecar.path();
    match policy {
        NetworkFsPolicy::Refuse => Err(PackLockError::UnreliableFileSystem {
            path: path.to_path_buf(),
            fs_type: fs_type.to_string(),
        }),
        NetworkFsPolicy::Warn => {
            if first_warning_for(sidecar) {
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

#[cfg(target_os = "linux")]
/// Whether a file type is one where `flock` depends on a server or daemon.
fn is_unreliable(fs_type: &str) -> bool {
    const NETWORK: &[&str] =
        &["nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "ceph", "lustre", "gpfs"];
    NETWORK.contains(&fs_type)
        || fs_type == "fuse"
        || fs_type.starts_with("fuse.")
        || fs_type == "fuseblk"
}

/// Per device: its file system type if unreliable, and whether we warned.
#[cfg(target_os = "linux")]
type Seen = HashMap<u64, (Option<String>, bool)>;

#[cfg(target_os = "linux")]
static SEEN: LazyLock<Mutex<Seen>> = LazyLock::new(Mutex::default);

#[cfg(target_os = "linux")]
fn seen() -> std::sync::MutexGuard<'static, Seen> {
    SEEN.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(target_os = "linux")]
fn unreliable_fs_type(sidecar: &Sidecar) -> Option<String> {
    let dev = sidecar.key().dev();
    if let Some((fs_type, _)) = seen().get(&dev) {
        return fs_type.clone();
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let fs_type = fs_type_of(&mountinfo, dev).filter(|t| is_unreliable(t));
    seen().entry(dev).or_insert((fs_type.clone(), false));
    fs_type
}

#[cfg(not(target_os = "linux"))]
fn unreliable_fs_type(_sidecar: &Sidecar) -> Option<String> {
    None
}

/// True the first time it is asked about the sidecar's device.
#[cfg(target_os = "linux")]
fn first_warning_for(sidecar: &Sidecar) -> bool {
    let mut seen = seen();
    let (_, warned) = seen.entry(sidecar.key().dev()).or_insert((None, false));
    !std::mem::replace(warned, true)
}

#[cfg(not(target_os = "linux"))]
fn first_warning_for(_sidecar: &Sidecar) -> bool {
    true
}

/// The type of the file system mounted from device `dev`, from
/// `/proc/self/mountinfo` lines such as
/// `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw`.
#[cfg(target_os = "linux")]
fn fs_type_of(mountinfo: &str, dev: u64) -> Option<String> {
    let device = format!("{}:{}", crate::sidecar::major(dev), crate::sidecar::minor(dev));
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        (mount.split_whitespace().nth(2)? == device).then_some(())?;
        fs.split_whitespace().next().map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn network_and_fuse_file_systems_are_unreliable() {
        for fs in ["nfs", "nfs4", "cifs", "smb3", "fuse", "fuse.sshfs", "fuseblk", "9p"] {
            assert!(is_unreliable(fs), "{fs}");
        }
        for fs in ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs"] {
            assert!(!is_unreliable(fs), "{fs}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn finds_the_file_system_type_by_device() {
        let mountinfo = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                         40 27 0:52 / /mnt/share rw,relatime shared:5 - nfs4 srv:/export rw\n\
                         41 27 254:0 / / rw - ext4 /dev/vda rw\n";
        assert_eq!(fs_type_of(mountinfo, 52).as_deref(), Some("nfs4"));
        assert_eq!(fs_type_of(mountinfo, 254 << 8).as_deref(), Some("ext4"));
        assert_eq!(fs_type_of(mountinfo, 99), None);
    }

    #[test]
    fn refuse_fails_with_the_type_and_warn_locks_anyway() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sidecar = Sidecar::open(&dir.path().join("lock")).expect("open");
        let refused = apply(&sidecar, "nfs4", NetworkFsPolicy::Refuse).expect_err("refused");
        let message = refused.to_string();
        assert!(message.contains("nfs4") && message.contains("lock"), "{message}");
        assert!(apply(&sidecar, "nfs4", NetworkFsPolicy::Warn).is_ok());
    }

    #[test]
    fn local_file_systems_pass_even_when_refusing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sidecar = Sidecar::open(&dir.path().join("lock")).expect("open");
        // The test machine keeps its temp dir on a local file system.
        assert!(check(&sidecar, NetworkFsPolicy::Refuse).is_ok());
    }
}
