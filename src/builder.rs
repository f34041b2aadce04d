//! Options for opening a [`PackLock`].

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::options::Options;
use crate::{NetworkFsPolicy, PACK_LOCK_FILE_NAME, PackLock, PackLockError, Tier};

/// Builds a [`PackLock`] with options; made by [`PackLock::builder`] or
/// [`PackLock::builder_for_file`].
///
/// # Examples
///
/// ```
/// use packlock::PackLock;
///
/// # fn main() -> Result<(), packlock::PackLockError> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let lock = PackLock::builder(dir.path()).file_name(".sync.lock").open()?;
/// assert_eq!(lock.path(), dir.path().join(".sync.lock"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `.open()` is called"]
pub struct PackLockBuilder {
    location: Location,
    options: Options,
}

#[derive(Debug, Clone)]
enum Location {
    /// A sidecar file named `file_name` inside `dir`.
    Sidecar { dir: PathBuf, file_name: OsString },
    /// An explicit lock file path.
    File(PathBuf),
}

/// Opening a lock: the constructors of [`PackLock`] build on the builder,
/// so they live beside it.
impl PackLock {
    /// Opens the lock of directory `dir`: the sidecar file
    /// `<dir>/`[`.pack-lock`](crate::PACK_LOCK_FILE_NAME). Creates `dir` and the
    /// sidecar if missing; never truncates or deletes it; does not lock.
    ///
    /// # Errors
    ///
    /// [`PackLockError::Io`], naming the path, when the directory or the
    /// file cannot be created or opened;
    /// [`PackLockError::NotARegularFile`] when the sidecar path is a
    /// directory, a FIFO, a socket or a device.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::open(dir.path())?;
    /// assert_eq!(lock.path(), dir.path().join(".pack-lock"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, PackLockError> {
        Self::builder(dir).open()
    }

    /// Opens an explicit lock file, such as `<dest>.backend.lock`, creating
    /// it and its parent directories if missing. Does not lock.
    ///
    /// # Errors
    ///
    /// [`PackLockError::NotAFile`] when `path` has no file name (such as
    /// `/`), [`PackLockError::NotARegularFile`] when it is a directory, a
    /// FIFO, a socket or a device, [`PackLockError::Io`] when it cannot be
    /// created or opened (for example because a parent is a regular file).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::open_file(dir.path().join("repo.backend.lock"))?;
    /// let _hold = lock.acquire()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_file(path: impl AsRef<Path>) -> Result<Self, PackLockError> {
        Self::builder_for_file(path).open()
    }

    /// Starts a [`PackLockBuilder`] for the sidecar lock of directory `dir`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::builder(dir.path()).file_name(".grex-lock").open()?;
    /// assert!(lock.path().ends_with(".grex-lock"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(dir: impl AsRef<Path>) -> PackLockBuilder {
        PackLockBuilder::sidecar(dir.as_ref())
    }

    /// Starts a [`PackLockBuilder`] for an explicit lock file path.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let file = dir.path().join("dest.backend.lock");
    /// let lock = packlock::PackLock::builder_for_file(&file).open()?;
    /// assert_eq!(lock.path(), file);
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder_for_file(path: impl AsRef<Path>) -> PackLockBuilder {
        PackLockBuilder::file(path.as_ref())
    }
}

impl PackLockBuilder {
    pub(crate) fn sidecar(dir: &Path) -> Self {
        let file_name = OsString::from(PACK_LOCK_FILE_NAME);
        Self {
            location: Location::Sidecar { dir: dir.to_path_buf(), file_name },
            options: Options::default(),
        }
    }

    pub(crate) fn file(path: &Path) -> Self {
        Self { location: Location::File(path.to_path_buf()), options: Options::default() }
    }

    /// Names the sidecar file inside the directory, instead of
    /// [`PACK_LOCK_FILE_NAME`]. It must be a plain file name: no path
    /// separators, not `.` or `..`; [`open`](Self::open) rejects anything
    /// else with [`PackLockError::InvalidFileName`]. Has no effect on a
    /// builder made by [`PackLock::builder_for_file`].
    ///
    /// # Examples
    ///
    /// ```
    /// use packlock::{PackLock, PackLockError};
    ///
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let err = PackLock::builder(dir.path()).file_name("../escape").open().unwrap_err();
    /// assert!(matches!(err, PackLockError::InvalidFileName { .. }));
    /// ```
    pub fn file_name(mut self, name: impl AsRef<OsStr>) -> Self {
        if let Location::Sidecar { file_name, .. } = &mut self.location {
            *file_name = name.as_ref().to_os_string();
        }
        self
    }

    /// Makes every acquire of this lock take a **shared** hold: any number
    /// of shared holds coexist, in this process and in others (including
    /// `flock -s`), while exclusive holds exclude them and are excluded by
    /// them. Default: exclusive.
    ///
    /// A lock is either shared or exclusive for its whole life: there is no
    /// upgrade or downgrade, because the OS cannot convert a `flock` lock
    /// atomically (it releases the old lock first, letting others in). To
    /// change mode, release and acquire a lock opened the other way.
    ///
    /// # Examples
    ///
    /// ```
    /// use packlock::PackLock;
    ///
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let readers = PackLock::builder(dir.path()).shared(true).open()?;
    /// let first = readers.acquire()?;
    /// let second = readers.try_acquire()?; // shared holds coexist
    /// let writer = PackLock::open(dir.path())?;
    /// assert!(writer.try_acquire().is_err()); // an exclusive one must wait
    /// # drop((first, second));
    /// # Ok(())
    /// # }
    /// ```
    pub fn shared(mut self, shared: bool) -> Self {
        self.options.shared = shared;
        self
    }

    /// Labels this lock's holds, for people asking who holds the lock. A
    /// hold of a labelled lock records its pid, the label and the time into
    /// the lock file, where [`PackLock::holders`], `Busy` errors and the
    /// wait log line of other processes find them. Unlabelled locks record
    /// nothing, which keeps their acquires to the fewest system calls.
    ///
    /// A label is at most 1,024 bytes on one line: a longer one is cut at
    /// the last character boundary that fits, and line breaks become
    /// spaces, so every label recorded can be read back.
    ///
    /// The record is the lock file's whole content (after the fence line of
    /// a [fencing](Self::fencing) lock, which it keeps): it is written only
    /// into a lock file that is empty or holds nothing but packlock's own
    /// lines.
    /// A lock file holding anything else (a data file you lock, a log you
    /// append to while holding the lock) is never written; its holders just
    /// go unlabelled. Nor is a lock file that cannot be written (read-only
    /// file or file system). The record is diagnostics only: failing to
    /// write or read it changes nothing about who gets the lock. (On Windows
    /// a locked file cannot be read by other processes, so they see no
    /// record.)
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::builder(dir.path()).label("sync worker").open()?;
    /// let _hold = lock.acquire()?;
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(lock.holders()[0].label.as_deref(), Some("sync worker"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.options.label = Some(crate::options::clamp_label(&label.into()));
        self
    }

    /// How long an acquire waits before it logs, once, at `info` level:
    /// "waiting for lock on PATH held by pid N ("label", for 3s)". Default:
    /// one second. Waits that end sooner log nothing at `info`. Any
    /// duration works: [`Duration::MAX`] (or any threshold past what an
    /// [`Instant`](std::time::Instant) can hold) means never.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::builder(dir.path())
    ///     .log_wait_after(std::time::Duration::from_secs(5))
    ///     .open()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn log_wait_after(mut self, threshold: Duration) -> Self {
        self.options.log_wait_after = threshold;
        self
    }

    /// Puts the lock in a [`Tier`] of the lock order: every hold of it then
    /// holds the tier too, so taking it while holding a tier of equal or
    /// higher rank is a violation (see [`TierPolicy`](crate::TierPolicy)).
    ///
    /// # Examples
    ///
    /// ```
    /// use packlock::{PackLock, Tier};
    ///
    /// const WORKSPACE: Tier = Tier::new(0, "workspace-sync");
    /// const PER_PACK: Tier = Tier::new(2, "per-pack");
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let root = tempfile::tempdir().expect("temp dir");
    /// let ws = PackLock::builder(root.path()).file_name(".sync.lock").tier(WORKSPACE).open()?;
    /// let pack = PackLock::builder(root.path().join("foo")).tier(PER_PACK).open()?;
    /// let _w = ws.acquire()?;
    /// let _p = pack.acquire()?; // 0 then 2: in order
    /// # Ok(())
    /// # }
    /// ```
    pub fn tier(mut self, tier: Tier) -> Self {
        self.options.tier = Some(tier);
        self
    }

    /// What to do when the lock file is on a network or FUSE file system
    /// (NFS, CIFS/SMB, sshfs, ...), where `flock` excludes other machines
    /// only if the server supports locking. Default: [`NetworkFsPolicy::Warn`]
    /// — lock anyway and log one warning per file system. packlock never
    /// skips locking silently. Detected on Linux; elsewhere every file
    /// system is taken as local.
    ///
    /// # Examples
    ///
    /// ```
    /// use packlock::{NetworkFsPolicy, PackLock};
    ///
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = PackLock::builder(dir.path()).network_fs(NetworkFsPolicy::Refuse).open()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn network_fs(mut self, policy: NetworkFsPolicy) -> Self {
        self.options.network_fs = policy;
        self
    }

    /// Gives every hold of this lock a **fence** ([`PackLockHold::fence`](crate::PackLockHold::fence)),
    /// kept as a counter in a file beside the lock file. Default: off.
    ///
    /// Every grant, exclusive or shared, raises the counter before the
    /// acquire returns and gets the new value, so each fence is larger than
    /// every fence handed out before for that path: across processes,
    /// restarts, and the lock file being deleted or replaced. (The shared
    /// holds of one process share one OS lock, and so one fence.) Send the
    /// fence with your writes — readers with their reads — and have the
    /// storage refuse fences smaller than the largest it has seen: a holder
    /// that was paused past the end of its hold then cannot overwrite the
    /// work of the next one.
    ///
    /// The counter is the line `packlock-fence N` in `<lock file>.fence`
    /// (created when the lock is opened), raised under that file's own
    /// exclusive lock — one read, one positioned write and a `sync_data`, so
    /// it survives a crash of the machine — which shared holders of several
    /// processes take in turn. Each new fence is at least the time in
    /// microseconds since 1970, so that fences start above the old ones even
    /// if the fence file is lost (unless the system clock was set back in
    /// between). The lock file itself is never written for fences: a data
    /// file you lock can be fenced.
    ///
    /// A fence file holding anything but packlock's counter is never
    /// written: the acquire fails with [`PackLockError::CannotFence`],
    /// naming it, with nothing locked. Opening fails with
    /// [`PackLockError::Io`] naming the fence file when it cannot be
    /// created (a read-only file system). Processes that lock the same file
    /// without fencing (or with `flock(1)`) exclude and are excluded as
    /// usual, but take no fence.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::builder(dir.path()).fencing(true).open()?;
    /// let first = lock.acquire()?.fence().expect("fencing locks have fences");
    /// let second = lock.acquire()?.fence().expect("fencing locks have fences");
    /// assert!(second > first);
    /// # Ok(())
    /// # }
    /// ```
    pub fn fencing(mut self, fencing: bool) -> Self {
        self.options.fencing = fencing;
        self
    }

    /// Creates any missing directories and the lock file (never truncating
    /// or deleting it) and returns the lock, not yet held.
    ///
    /// # Errors
    ///
    /// [`PackLockError::InvalidFileName`] for a bad sidecar name,
    /// [`PackLockError::UnreliableFileSystem`] under [`NetworkFsPolicy::Refuse`],
    /// [`PackLockError::CannotFence`] with [fencing](Self::fencing) when the
    /// fence file is not a regular file (and [`PackLockError::Io`] naming it
    /// when it cannot be created),
    /// [`PackLockError::NotAFile`] for a lock file path without a file name,
    /// [`PackLockError::NotARegularFile`] for a lock path that is a
    /// directory, a FIFO, a socket or a device, and [`PackLockError::Io`]
    /// naming the path when the directory or file cannot be created or
    /// opened (a parent that is a regular file, a NUL byte, no permission).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let pack = dir.path().join("packs/foo");
    /// let lock = packlock::PackLock::builder(&pack).open()?;
    /// assert!(pack.join(packlock::PACK_LOCK_FILE_NAME).is_file());
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(self) -> Result<PackLock, PackLockError> {
        let options = self.options.clone();
        PackLock::with_options(self.lock_file_path()?, options)
    }

    fn lock_file_path(self) -> Result<PathBuf, PackLockError> {
        let path = match self.location {
            Location::Sidecar { dir, file_name } => {
                check_file_name(&file_name)?;
                dir.join(file_name)
            }
            Location::File(path) if path.file_name().is_none() => {
                return Err(PackLockError::NotAFile { path });
            }
            Location::File(path) => path,
        };
        // Absolute, so the identity check still finds the file if the
        // process changes its working directory while holding the lock.
        std::path::absolute(&path).map_err(|e| PackLockError::io(&path, e))
    }
}

/// Accepts exactly one normal path component.
fn check_file_name(name: &OsStr) -> Result<(), PackLockError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "it refers to a directory"
    } else if name.as_encoded_bytes().contains(&0) {
        "it contains a NUL byte"
    } else if Path::new(name).components().count() != 1 || Path::new(name).file_name() != Some(name)
    {
        "it must be a bare file name, without path separators"
    } else {
        return Ok(());
    };
    Err(PackLockError::InvalidFileName { name: name.to_string_lossy().into_owned(), reason })
}

#[cfg(test)]
mod tests {
    use super::check_file_name;

    #[test]
    fn accepts_plain_names() {
        for name in [".pack-lock", "lock", ".grex-lock", "a.b.c", "with space"] {
            assert!(check_file_name(name.as_ref()).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_names_that_are_not_a_single_component() {
        for name in ["", ".", "..", "a/b", "/abs", "../up", "dir/", "nul\0byte"] {
            assert!(check_file_name(name.as_ref()).is_err(), "{name:?}");
        }
    }
}
