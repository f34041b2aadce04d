//! Error types.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::Holder;
use crate::holder::describe;

/// Why opening, acquiring or releasing a [`PackLock`](crate::PackLock) failed.
///
/// Every variant that concerns a file names it, so the message alone tells the
/// user which path to look at.
///
/// # Examples
///
/// ```
/// use packlock::{PackLock, PackLockError};
///
/// # fn main() -> Result<(), PackLockError> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let lock = PackLock::open(dir.path())?;
/// let _hold = lock.acquire()?;
/// match lock.try_acquire() {
///     Err(PackLockError::Busy { path, .. }) => println!("{} is busy", path.display()),
///     Err(other) => return Err(other),
///     Ok(_) => unreachable!("the lock is held"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackLockError {
    /// An operating-system call on `path` failed: creating the directory,
    /// opening the lock file, or taking or releasing the OS lock.
    #[error("lock file I/O failed on `{}`: {source}", path.display())]
    #[non_exhaustive]
    Io {
        /// The file or directory the failing call was about.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: io::Error,
    },

    /// The lock is held by someone else (another process, thread or task,
    /// or the caller itself) and the acquire was not allowed to wait.
    #[error("lock `{}` is busy: held by {}", path.display(), describe(holder.as_ref()))]
    #[non_exhaustive]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, where that can be known (see [`Holder`]).
        holder: Option<Holder>,
    },

    /// The calling thread (sync) or [scope](crate::with_tier_scope) (async)
    /// already holds this lock file, so waiting for it would wait forever.
    /// Other threads and tasks wait normally. A hold moved to another
    /// thread or task counts for the one that acquired it until the new
    /// owner calls [`PackLockHold::adopt`](crate::PackLockHold::adopt).
    #[error(
        "lock `{}` is already held by this thread or task; acquiring it again would wait \
         forever (if the hold was moved to another thread or task, call PackLockHold::adopt there)",
        path.display()
    )]
    #[non_exhaustive]
    Reentrant {
        /// The lock file.
        path: PathBuf,
    },

    /// [`PackLockHold::release`](crate::PackLockHold::release) in a child
    /// made by `fork(2)`, of a hold the child inherited: the child shares
    /// its parent's open lock file, so it cannot release the lock — it
    /// stays held as long as any process keeps that file open. A child that
    /// goes on with the lock (a daemon whose parent exits) calls
    /// [`PackLockHold::take_over`](crate::PackLockHold::take_over) first.
    #[error(
        "lock `{}` was inherited across fork and stays held: call PackLockHold::take_over in \
         the child that keeps it before releasing it there",
        path.display()
    )]
    #[non_exhaustive]
    InheritedHold {
        /// The lock file.
        path: PathBuf,
    },

    /// The sidecar name given to
    /// [`PackLockBuilder::file_name`](crate::PackLockBuilder::file_name) is
    /// not a plain file name.
    #[error("invalid lock file name `{name}`: {reason}")]
    #[non_exhaustive]
    InvalidFileName {
        /// The name as given (lossily converted to UTF-8).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The lock file path has no file name component (for example `/` or a
    /// path ending in `..`), so there is no file to lock.
    #[error("`{}` does not name a lock file", path.display())]
    #[non_exhaustive]
    NotAFile {
        /// The path as given.
        path: PathBuf,
    },

    /// The lock file path names something other than a regular file: a
    /// directory, a FIFO, a socket or a device. packlock locks only regular
    /// files (opening a FIFO, for one, could wait forever for a peer), and
    /// refuses the others before opening them.
    #[error("lock file `{}` is a {kind}, not a regular file", path.display())]
    #[non_exhaustive]
    NotARegularFile {
        /// The lock file path.
        path: PathBuf,
        /// What it is instead: `directory`, `FIFO`, `socket`,
        /// `character device`, `block device` or `special file`.
        kind: &'static str,
    },

    /// The lock was not had within the time allowed
    /// ([`PackLock::acquire_timeout`](crate::PackLock::acquire_timeout) or an
    /// async timeout). Nothing is held or queued afterwards.
    #[error("timed out after {timeout:?} waiting for lock `{}`{}", path.display(), in_parentheses(cause))]
    #[non_exhaustive]
    TimedOut {
        /// The lock file.
        path: PathBuf,
        /// The time allowed.
        timeout: Duration,
        /// What kept the wait from reaching the lock at all, when known: a
        /// lock server out of reach (its last error). `None` when the lock
        /// was simply held all along.
        ///
        /// ```
        /// # use packlock::PackLockError;
        /// # let dir = tempfile::tempdir().expect("temp dir");
        /// # let lock = packlock::PackLock::open(dir.path())?;
        /// # let _held = lock.acquire()?;
        /// # let err = std::thread::scope(|s| {
        /// #     s.spawn(|| lock.acquire_timeout(std::time::Duration::from_millis(10)).err()).join()
        /// # }).expect("thread").expect("held");
        /// if let PackLockError::TimedOut { cause, .. } = &err {
        ///     match cause {
        ///         Some(cause) => eprintln!("never reached the lock: {cause}"),
        ///         None => eprintln!("the lock stayed held"),
        ///     }
        /// }
        /// # assert!(matches!(err, PackLockError::TimedOut { cause: None, .. }));
        /// # Ok::<(), PackLockError>(())
        /// ```
        cause: Option<String>,
    },

    /// The lock file is on a network or FUSE file system, where `flock`
    /// excludes other machines only if the server supports it, and the lock
    /// was opened with [`NetworkFsPolicy::Refuse`](crate::NetworkFsPolicy::Refuse).
    #[error(
        "lock file `{}` is on a {fs_type} file system, where its lock may not exclude \
         other machines; refusing as configured",
        path.display()
    )]
    #[non_exhaustive]
    UnreliableFileSystem {
        /// The lock file.
        path: PathBuf,
        /// The file system type, as the OS names it (`nfs4`, `cifs`, `fuse.sshfs`, ...).
        fs_type: String,
    },

    /// The file a hold locked is no longer the file at its path: it was
    /// deleted or replaced while held, so the hold no longer excludes
    /// newcomers. Reported by [`PackLockHold::validate`](crate::PackLockHold::validate).
    #[error("lock file `{}` was deleted or replaced while held", path.display())]
    #[non_exhaustive]
    Replaced {
        /// The lock file path.
        path: PathBuf,
    },

    /// A hold ended without being released: the lock server dropped it
    /// because the session holding it ended (server restarted or failed
    /// over, connection cut, backend terminated). Someone else may hold the
    /// lock now. Reported by
    /// [`PackLockHold::validate`](crate::PackLockHold::validate), and by an
    /// acquire whose lock was lost before it could return;
    /// [`PackLockHold::lost`](crate::PackLockHold::lost) completes when it
    /// happens. A lock file is never lost while held.
    #[error("lock `{}` was lost while held: {reason}", path.display())]
    #[non_exhaustive]
    Lost {
        /// The lock's name, such as `postgres://db:5432/locks/packs/foo`.
        path: PathBuf,
        /// Why, as far as known.
        reason: String,
    },

    /// A lock opened with [fencing](crate::PackLockBuilder::fencing) cannot
    /// keep its fence in its fence file (`<lock file>.fence`): the file
    /// holds data packlock did not write (which it never overwrites), is
    /// not a regular file, or its counter is at its maximum. Reported by
    /// opening or by an acquire, which then leaves nothing locked and the
    /// file untouched.
    #[error("cannot keep a fence in `{}`: {reason}", path.display())]
    #[non_exhaustive]
    CannotFence {
        /// The fence file.
        path: PathBuf,
        /// Why not.
        reason: &'static str,
    },

    /// The lock server failed or refused an operation (feature
    /// `postgres`); the [`ServerError`](crate::postgres::ServerError)
    /// names the server and the lock. Acquires of a server lock report
    /// server trouble this way rather than as [`Io`](Self::Io), so that
    /// callers can tell a lock that is busy from a server that is down.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    #[error(transparent)]
    #[non_exhaustive]
    Server {
        /// What went wrong, and where.
        #[from]
        source: crate::postgres::ServerError,
    },
}

/// ` (text)`, or nothing.
fn in_parentheses(text: &Option<String>) -> String {
    text.as_ref().map(|text| format!(" ({text})")).unwrap_or_default()
}

impl PackLockError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// Whether the lock's backend is out of reach for now (a lock server
    /// restarting, a connection cut): a wait may outlast it.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            #[cfg(feature = "postgres")]
            Self::Server { source, .. } => source.is_unavailable(),
            _ => false,
        }
    }
}

/// Why a cancellable acquire
/// ([`PackLock::acquire_cancellable`](crate::PackLock::acquire_cancellable),
/// [`PackLock::acquire_until`](crate::PackLock::acquire_until)) returned
/// without the lock.
///
/// # Examples
///
/// ```
/// use packlock::{CancellationToken, PackLock, PackLockErrorOrCancelled};
///
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let lock = PackLock::open(dir.path()).expect("open");
/// let token = CancellationToken::new();
/// token.cancel();
/// let err = lock.acquire_cancellable(&token).await.unwrap_err();
/// assert!(matches!(err, PackLockErrorOrCancelled::Cancelled));
/// assert!(err.is_cancelled());
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
// The two variants are the whole meaning of this type ("cancelled, or
// a lock error"), so they are not `#[non_exhaustive]` each: that would make
// every match spell `Cancelled { .. }` and `Lock(e, ..)`. The enum is, so
// that a variant can still be added.
pub enum PackLockErrorOrCancelled {
    /// The cancel signal fired before the lock was had. Nothing is held or
    /// queued afterwards.
    #[error("lock acquire cancelled")]
    Cancelled,

    /// The acquire failed for another reason.
    #[error(transparent)]
    Lock(#[from] PackLockError),
}

impl PackLockErrorOrCancelled {
    /// Whether the acquire was cancelled (rather than failing).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(packlock::PackLockErrorOrCancelled::Cancelled.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }
}
