//! What a lock does besides locking: the options a
//! [`PackLockBuilder`](crate::PackLockBuilder) sets and a
//! [`PackLock`](crate::PackLock) keeps.

use std::time::Duration;

use crate::Tier;

/// How a lock is held: by one holder, or by any number of shared holders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Exclusive,
    Shared,
}

/// What a lock does besides locking its file: set by the builder, kept by
/// the [`PackLock`].
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) shared: bool,
    pub(crate) tier: Option<Tier>,
    pub(crate) label: Option<String>,
    pub(crate) log_wait_after: Duration,
    pub(crate) network_fs: NetworkFsPolicy,
    pub(crate) fencing: bool,
}

impl Options {
    /// How acquires hold the lock.
    pub(crate) fn mode(&self) -> Mode {
        if self.shared { Mode::Shared } else { Mode::Exclusive }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            shared: false,
            tier: None,
            label: None,
            log_wait_after: Duration::from_secs(1),
            network_fs: NetworkFsPolicy::Warn,
            fencing: false,
        }
    }
}

/// What to do when a lock file is on a network or FUSE file system, where
/// `flock` excludes other machines only if the server supports it.
///
/// # Examples
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

/// The longest label recorded, in bytes: longer ones are cut, on a
/// character boundary, when set (see [`clamp_label`]).
pub(crate) const MAX_LABEL_LEN: usize = 1024;

/// `label`, on one line and at most [`MAX_LABEL_LEN`] bytes: line breaks
/// become spaces (a label cannot break the record's format) and a longer
/// label is cut at the last character boundary that fits.
pub(crate) fn clamp_label(label: &str) -> String {
    let mut end = label.len().min(MAX_LABEL_LEN);
    while !label.is_char_boundary(end) {
        end -= 1;
    }
    label[..end].replace(['\n', '\r'], " ")
}
