//! [`PackLock`]: opening a lock file and the sync ways to acquire it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::acquire::{self, Wait};
use crate::drive::{block_on_until, run_here};
use crate::held::HeldContext;
use crate::options::Options;
use crate::registry::{self, Slot};
use crate::sidecar::{Mode, Sidecar};
use crate::{Holder, PackLockError, PackLockHold, Tier};
use crate::{filesystem, offload};

/// A lock on a directory (a "pack") or on any file path, excluding other
/// processes, threads and async tasks.
///
/// Opening creates the lock file but does not lock it; each acquire returns
/// a [`PackLockHold`], and the lock is held until that hold is dropped or
/// [released](PackLockHold::release). Acquire methods take `&self`, so one
/// `PackLock` can be shared (for example in an `Arc`) by many threads and
/// tasks, which then take turns.
///
/// # Example
///
/// ```
/// use packlock::PackLock;
///
/// # fn main() -> Result<(), packlock::PackLockError> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let lock = PackLock::open(dir.path())?;      // creates <dir>/.pack-lock
/// let hold = lock.acquire()?;                   // blocks until it is ours
/// // ... exclusive work on the directory ...
/// hold.release()?;                              // or just drop it
/// # Ok(())
/// # }
/// ```
pub struct PackLock {
    path: PathBuf,
    mode: Mode,
    options: Options,
    /// The lock file as opened now; replaced when the file at `path` turns
    /// out to be another one (see [`PackLock::reopen`]).
    current: Mutex<Arc<Target>>,
}

/// An opened lock file together with its in-process slot.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) sidecar: Sidecar,
    pub(crate) slot: Arc<Slot>,
}

impl Target {
    fn open(path: &Path, options: &Options) -> Result<Self, PackLockError> {
        let sidecar = Sidecar::open(path)?;
        filesystem::check(&sidecar, options.network_fs)?;
        offload::note_process(sidecar.opened_by());
        let slot = registry::slot_for(sidecar.key(), sidecar.opened_by());
        Ok(Self { sidecar, slot })
    }
}

impl PackLock {
    pub(crate) fn with_options(path: PathBuf, options: Options) -> Result<Self, PackLockError> {
        let target = Target::open(&path, &options)?;
        let mode = if options.shared { Mode::Shared } else { Mode::Exclusive };
        Ok(Self { path, mode, options, current: Mutex::new(Arc::new(target)) })
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    /// The lock file's path (absolute).
    ///
    /// # Example
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::open(dir.path())?;
    /// assert_eq!(lock.path().file_name().unwrap(), packlock::PACK_LOCK_FILE_NAME);
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this lock takes shared holds ([`PackLockBuilder::shared`](crate::PackLockBuilder::shared)).
    ///
    /// # Example
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// assert!(!packlock::PackLock::open(dir.path())?.is_shared());
    /// assert!(packlock::PackLock::builder(dir.path()).shared(true).open()?.is_shared());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_shared(&self) -> bool {
        self.mode == Mode::Shared
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// The lock's [`Tier`], if it was [given one](crate::PackLockBuilder::tier).
    ///
    /// # Example
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// assert_eq!(packlock::PackLock::open(dir.path())?.tier(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn tier(&self) -> Option<Tier> {
        self.options.tier
    }

    /// Who holds this lock now, as far as can be known: on Linux every
    /// `flock` holder of the file from `/proc/locks` (packlock or not, this
    /// process included), with the label and start time of packlock holders
    /// that set a [label](crate::PackLockBuilder::label); elsewhere only the record
    /// of the last labelled holder, which may be stale. Empty when the lock
    /// is free or nothing can be known.
    ///
    /// # Example
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::builder(dir.path()).label("backup").open()?;
    /// assert!(lock.holders().is_empty());
    /// let _hold = lock.acquire()?;
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(lock.holders()[0].pid, std::process::id());
    /// # Ok(())
    /// # }
    /// ```
    pub fn holders(&self) -> Vec<Holder> {
        let target = Arc::clone(&self.current());
        target.sidecar.holders()
    }

    /// Blocks the calling thread until the lock is held.
    ///
    /// Waits behind other threads and tasks of this process in a fair
    /// queue, then for other processes in the OS lock. Do not call it from
    /// async code (it would block an executor thread): use
    /// [`acquire_async`](Self::acquire_async) there.
    ///
    /// # Errors
    ///
    /// [`PackLockError::Reentrant`] when this thread (or, inside
    /// [`with_tier_scope`](crate::with_tier_scope), this task) already holds
    /// the lock file; [`PackLockError::Io`] when the OS lock call fails.
    ///
    /// # Example
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::open(dir.path())?;
    /// let hold = lock.acquire()?;
    /// assert_eq!(hold.path(), lock.path());
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire(&self) -> Result<PackLockHold, PackLockError> {
        run_here(acquire::run(self, Wait::Thread, Some(HeldContext::for_thread())))
    }

    /// Blocks the calling thread until the lock is held or `timeout` has
    /// passed.
    ///
    /// There is no OS call that waits for a file lock with a timeout, so
    /// this runs the async acquire on the calling thread, parked until it
    /// is woken or the deadline passes (never spinning): the OS wait, if
    /// any, happens on the `blocking` pool, and on timeout that pool thread
    /// releases the lock as soon as the kernel grants it, as with
    /// [`acquire_until`](Self::acquire_until). The price is a hand-off
    /// latency of one thread wake-up (tens of microseconds) over
    /// [`acquire`](Self::acquire) when the lock comes from another process.
    ///
    /// Any `timeout` works: one so long that its deadline lies past what
    /// [`Instant`] can hold (such as [`Duration::MAX`]) means no time limit,
    /// and the call waits like [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// [`PackLockError::TimedOut`] when the lock was not had in time,
    /// [`PackLockError::Reentrant`] when this thread already holds it,
    /// [`PackLockError::Io`] when the OS lock call fails.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use packlock::{PackLock, PackLockError};
    ///
    /// # fn main() -> Result<(), PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = PackLock::open(dir.path())?;
    /// let _held = lock.acquire()?; // held by this thread, so another one waits
    /// let waiter = std::thread::scope(|s| s.spawn(|| lock.acquire_timeout(Duration::from_millis(50))).join());
    /// assert!(matches!(waiter.unwrap(), Err(PackLockError::TimedOut { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<PackLockHold, PackLockError> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            // A deadline the clock cannot hold never comes.
            return self.acquire();
        };
        let acquire = acquire::run(self, Wait::Task, Some(HeldContext::for_thread()));
        block_on_until(acquire, deadline).unwrap_or_else(|| Err(self.timed_out(timeout)))
    }

    /// Takes the lock only if it is free right now; never waits.
    ///
    /// # Errors
    ///
    /// [`PackLockError::Busy`] when anyone holds the lock — another
    /// process, another thread or task, or the caller itself; for a
    /// [shared](crate::PackLockBuilder::shared) lock, only when an exclusive lock
    /// is held (other shared holds never make it busy).
    /// [`PackLockError::Io`] when the OS lock call fails.
    ///
    /// It never waits for another process, nor for another thread's or
    /// task's hold; a shared `try_acquire` that meets another acquire of
    /// this process taking the OS lock waits for that non-blocking attempt
    /// (microseconds) and then joins it or tries itself.
    ///
    /// # Example
    ///
    /// ```
    /// use packlock::{PackLock, PackLockError};
    ///
    /// # fn main() -> Result<(), PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = PackLock::open(dir.path())?;
    /// let hold = lock.try_acquire()?;
    /// assert!(matches!(lock.try_acquire(), Err(PackLockError::Busy { .. })));
    /// drop(hold);
    /// assert!(lock.try_acquire().is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire(&self) -> Result<PackLockHold, PackLockError> {
        run_here(acquire::run(self, Wait::Never, Some(HeldContext::for_thread())))
    }

    /// The lock file as this process opened it.
    ///
    /// A child made by `fork(2)` inherits the `PackLock` with its parent's
    /// open file, whose OS lock is the parent's, and with the parent's
    /// in-process slot, which a parent thread may hold forever as far as the
    /// child can tell. So in a child the first call opens the file anew,
    /// with a slot of the child's own: the child then waits for its parent
    /// like any other process, and its holds are its own. The pid
    /// comparison costs one `getpid` per acquire.
    pub(crate) fn target(&self) -> Result<Arc<Target>, PackLockError> {
        let this_process = std::process::id();
        let mut current = self.current();
        if current.sidecar.opened_by() != this_process {
            *current = Arc::new(Target::open(&self.path, &self.options)?);
        }
        Ok(Arc::clone(&current))
    }

    /// The lock file as currently opened, maybe by a parent process.
    fn current(&self) -> MutexGuard<'_, Arc<Target>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the file now at the path in place of `stale`, which was found
    /// deleted or replaced. Several acquires may find the same stale target:
    /// only the first reopens.
    pub(crate) fn reopen(&self, stale: &Arc<Target>) -> Result<(), PackLockError> {
        let mut current = self.current();
        if Arc::ptr_eq(&current, stale) {
            *current = Arc::new(Target::open(&self.path, &self.options)?);
        }
        Ok(())
    }
}

impl fmt::Debug for PackLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackLock").field("path", &self.path).finish_non_exhaustive()
    }
}
