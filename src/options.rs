//! What a lock does besides locking: the options a
//! [`PackLockBuilder`](crate::PackLockBuilder) sets and a
//! [`PackLock`](crate::PackLock) keeps.

use std::time::Duration;

use crate::Tier;

/// What a lock does besides locking its file: set by the builder, kept by
/// the [`PackLock`].
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) shared: bool,
    pub(crate) tier: Option<Tier>,
    pub(crate) label: Option<String>,
    pub(crate) log_wait_after: Duration,
    pub(crate) network_fs: NetworkFsPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            shared: false,
            tier: None,
            label: None,
            log_wait_after: Duration::from_secs(1),
            network_fs: NetworkFsPolicy::Warn,
        }
    }
}

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
    /// Refuse to open the lock: [`PackLockError::UnreliableFileSystem`](crate::PackLockError::UnreliableFileSystem).
    Refuse,
}
