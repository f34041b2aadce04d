//! [`PackLock`] and every way to acquire it, sync and async: each picks how
//! the one acquire pipeline waits and how it is driven.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;

use crate::acquire::drive::{block_on_until, run_here};
use crate::acquire::{self, Wait};
use crate::backend::lock_file::LockFile;
use crate::backend::{LockBackend, Mode};
use crate::held::HeldContext;
use crate::options::Options;
use crate::target::CurrentTarget;
use crate::{CancelSignal, Holder, PackLockError, PackLockErrorOrCancelled, PackLockHold, Tier};

/// A lock on a directory (a "pack") or on any file path, excluding other
/// processes, threads and async tasks.
///
/// Opening creates the lock file but does not lock it; each acquire returns
/// a [`PackLockHold`], and the lock is held until that hold is dropped or
/// [released](PackLockHold::release). Acquire methods take `&self`, so one
/// `PackLock` can be shared (for example in an `Arc`) by many threads and
/// tasks, which then take turns.
///
/// # Examples
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
    options: Options,
    /// The lock as opened now; replaced when it must be opened anew (the
    /// file at `path` turned out to be another one, or in a forked child).
    current: CurrentTarget,
}

impl PackLock {
    pub(crate) fn with_options(path: PathBuf, options: Options) -> Result<Self, PackLockError> {
        let records = options.label.is_some();
        let lock_file = LockFile::open(&path, options.network_fs, options.fencing, records)?;
        let opened_by = lock_file.opened_by();
        Ok(Self::opened_by(Arc::new(lock_file), options, opened_by))
    }

    /// A lock on `backend`, opened already by this process.
    #[cfg(feature = "postgres")]
    pub(crate) fn with_backend(backend: Arc<dyn LockBackend>, options: Options) -> Self {
        Self::opened_by(backend, options, std::process::id())
    }

    /// A lock on `backend`, which process `opened_by` (this one) opened:
    /// told rather than asked again, since opening is on the hot path.
    fn opened_by(backend: Arc<dyn LockBackend>, options: Options, opened_by: u32) -> Self {
        let path = backend.path().to_path_buf();
        acquire::note_process(opened_by);
        let current = CurrentTarget::new(backend, opened_by);
        Self { path, options, current }
    }

    /// The lock file's path (absolute); for a lock on a lock server, its
    /// display name, such as `postgres://db:5432/locks/packs/foo`.
    ///
    /// # Examples
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
    /// # Examples
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
        self.options.mode() == Mode::Shared
    }

    /// The lock's [`Tier`], if it was [given one](crate::PackLockBuilder::tier).
    ///
    /// # Examples
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
    /// # Examples
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
        self.current.peek().backend.holders()
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
    /// # Panics
    ///
    /// Under [`TierPolicy::Panic`](crate::TierPolicy::Panic) (the default in
    /// debug builds), when the lock has a [tier](crate::PackLockBuilder::tier)
    /// at or below one the caller already holds or is acquiring; see
    /// [`Tier`].
    ///
    /// # Examples
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
        run_here(self.run(Wait::Thread, Some(HeldContext::for_thread())))
    }

    /// Blocks the calling thread until the lock is held or `timeout` has
    /// passed.
    ///
    /// There is no OS call that waits for a file lock with a timeout, so
    /// this runs the async acquire on the calling thread, parked until it
    /// is woken or the deadline passes (never spinning): the OS wait, if
    /// any, happens on a thread of its own, and on timeout that thread
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
    /// # Panics
    ///
    /// Under [`TierPolicy::Panic`](crate::TierPolicy::Panic) (the default in
    /// debug builds), when the lock has a [tier](crate::PackLockBuilder::tier)
    /// at or below one the caller already holds or is acquiring; see
    /// [`Tier`].
    ///
    /// # Examples
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
        let acquire = self.run(Wait::Task, Some(HeldContext::for_thread()));
        block_on_until(acquire, deadline).unwrap_or_else(|| Err(self.timed_out(timeout)))
    }

    /// Takes the lock only if it is free right now; never waits.
    ///
    /// # Errors
    ///
    /// [`PackLockError::Busy`] when anyone holds the lock — another
    /// process, another thread or task, or the caller itself. For a
    /// [shared](crate::PackLockBuilder::shared) lock, exactly when an
    /// exclusive lock is in the way (other shared holds never make it
    /// busy): held by anyone, waited for by an exclusive acquire of this
    /// process (writers go first within a process), or waited out in the
    /// kernel by a shared acquire of this process.
    /// [`PackLockError::Io`] when the OS lock call fails.
    ///
    /// It never waits: not for another process, nor for another thread's or
    /// task's hold or acquire, whatever state that acquire is in.
    ///
    /// # Examples
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
        run_here(self.run(Wait::Never, Some(HeldContext::for_thread())))
    }

    /// Acquires the lock from async code, on any executor (tokio, smol,
    /// `futures_lite::future::block_on`, ...), without blocking an executor
    /// thread.
    ///
    /// An uncontended acquire completes on the caller's thread with one
    /// non-blocking OS call. When another process holds the lock, the
    /// blocking OS wait runs on the `blocking` crate's thread pool; at most
    /// one such thread per lock file per process waits at a time, because
    /// the others queue in the in-process slot first.
    ///
    /// # Errors
    ///
    /// [`PackLockError::Reentrant`] when, inside
    /// [`with_tier_scope`](crate::with_tier_scope), this task already holds
    /// the lock file; [`PackLockError::Io`] when the OS lock call fails.
    ///
    /// # Panics
    ///
    /// Under [`TierPolicy::Panic`](crate::TierPolicy::Panic) (the default in
    /// debug builds), when the lock has a [tier](crate::PackLockBuilder::tier)
    /// at or below one the caller already holds or is acquiring; see
    /// [`Tier`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives up: nothing stays held or
    /// queued, and a wait for another process that was already under way
    /// releases the lock the moment it is granted.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::open(dir.path())?;
    /// let hold = lock.acquire_async().await?;
    /// // ... exclusive work, across .await points ...
    /// drop(hold);
    /// # Ok::<(), packlock::PackLockError>(())
    /// # }).unwrap();
    /// ```
    pub async fn acquire_async(&self) -> Result<PackLockHold, PackLockError> {
        self.run(Wait::Task, HeldContext::for_task()).await
    }

    /// Like [`acquire_async`](Self::acquire_async), but gives up as soon as
    /// `token` is cancelled — also if it already is. Takes a
    /// [`CancellationToken`](crate::CancellationToken), with the `tokio`
    /// feature a `tokio_util::sync::CancellationToken`, or anything else
    /// that implements [`CancelSignal`].
    ///
    /// When it gives up, nothing is held and nothing stays queued for the
    /// caller: see [`acquire_until`](Self::acquire_until) for the details.
    ///
    /// # Errors
    ///
    /// [`PackLockErrorOrCancelled::Cancelled`] when the token fired first,
    /// [`PackLockErrorOrCancelled::Lock`] when the acquire failed.
    ///
    /// # Panics
    ///
    /// Under [`TierPolicy::Panic`](crate::TierPolicy::Panic) (the default in
    /// debug builds), when the lock has a [tier](crate::PackLockBuilder::tier)
    /// at or below one the caller already holds or is acquiring; see
    /// [`Tier`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives up: nothing stays held or
    /// queued, and a wait for another process that was already under way
    /// releases the lock the moment it is granted.
    ///
    /// # Examples
    ///
    /// ```
    /// use packlock::{CancellationToken, PackLock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = PackLock::open(dir.path())?;
    /// let token = CancellationToken::new();
    /// let hold = lock.acquire_cancellable(&token).await?;
    /// # drop(hold);
    /// # Ok::<(), packlock::PackLockErrorOrCancelled>(())
    /// # }).unwrap();
    /// ```
    pub async fn acquire_cancellable(
        &self,
        token: &impl CancelSignal,
    ) -> Result<PackLockHold, PackLockErrorOrCancelled> {
        self.acquire_until(token.cancelled()).await
    }

    /// Acquires from async code unless `signal` completes first: any future
    /// works as a cancel signal (a timer, a channel, a shutdown notice).
    /// `signal` is polled before each attempt, so one that is already
    /// complete wins even over a free lock.
    ///
    /// Giving up is prompt and leaves nothing behind: a caller queued in
    /// the process returns at once and leaves the queue; a caller whose OS
    /// wait runs on a thread of its own returns at once too, and that
    /// thread — the only one for this lock file in this process — releases
    /// the lock the moment the kernel grants it. Dropping the returned
    /// future at any point has the same effect.
    ///
    /// # Errors
    ///
    /// [`PackLockErrorOrCancelled::Cancelled`] when `signal` completed first,
    /// [`PackLockErrorOrCancelled::Lock`] when the acquire failed.
    ///
    /// # Panics
    ///
    /// Under [`TierPolicy::Panic`](crate::TierPolicy::Panic) (the default in
    /// debug builds), when the lock has a [tier](crate::PackLockBuilder::tier)
    /// at or below one the caller already holds or is acquiring; see
    /// [`Tier`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives up: nothing stays held or
    /// queued, and a wait for another process that was already under way
    /// releases the lock the moment it is granted.
    ///
    /// # Examples
    ///
    /// ```
    /// use packlock::{PackLock, PackLockErrorOrCancelled};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = PackLock::open(dir.path())?;
    /// let _held = lock.acquire_async().await?;
    /// let (stop, stopped) = async_channel_stub();
    /// stop();
    /// let err = lock.acquire_until(stopped).await.unwrap_err();
    /// assert!(matches!(err, PackLockErrorOrCancelled::Cancelled));
    /// # Ok::<(), packlock::PackLockError>(())
    /// # }).unwrap();
    /// # fn async_channel_stub() -> (impl FnOnce(), impl std::future::Future<Output = ()>) {
    /// #     let token = packlock::CancellationToken::new();
    /// #     let signal = token.clone();
    /// #     (move || token.cancel(), async move { signal.cancelled().await })
    /// # }
    /// ```
    pub async fn acquire_until(
        &self,
        signal: impl Future<Output = ()>,
    ) -> Result<PackLockHold, PackLockErrorOrCancelled> {
        match self.acquire_unless(signal).await {
            Some(acquired) => Ok(acquired?),
            None => Err(PackLockErrorOrCancelled::Cancelled),
        }
    }

    /// Acquires from async code, giving up after `timeout`; `sleep` is your
    /// runtime's timer for that duration (for example
    /// `tokio::time::sleep(timeout)` or `async_io::Timer::after(timeout)`).
    /// The `tokio`, `smol` and `async-std` features wrap this for you:
    #[cfg_attr(
        any(feature = "tokio", feature = "smol", feature = "async-std"),
        doc = "see [`rt`](crate::rt)."
    )]
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "async-std")),
        doc = "see the `rt` module."
    )]
    ///
    /// # Errors
    ///
    /// [`PackLockError::TimedOut`] when `sleep` completed first; giving up
    /// leaves nothing behind, as with [`acquire_until`](Self::acquire_until).
    ///
    /// # Panics
    ///
    /// Under [`TierPolicy::Panic`](crate::TierPolicy::Panic) (the default in
    /// debug builds), when the lock has a [tier](crate::PackLockBuilder::tier)
    /// at or below one the caller already holds or is acquiring; see
    /// [`Tier`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives up: nothing stays held or
    /// queued, and a wait for another process that was already under way
    /// releases the lock the moment it is granted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use packlock::{PackLock, PackLockError};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = PackLock::open(dir.path())?;
    /// let _held = lock.acquire_async().await?;
    /// let timeout = Duration::from_millis(10);
    /// let expired = std::future::ready(()); // stands in for a runtime timer
    /// let err = lock.acquire_timeout_with(timeout, expired).await.unwrap_err();
    /// assert!(matches!(err, PackLockError::TimedOut { .. }));
    /// # Ok::<(), PackLockError>(())
    /// # }).unwrap();
    /// ```
    pub async fn acquire_timeout_with(
        &self,
        timeout: Duration,
        sleep: impl Future<Output = ()>,
    ) -> Result<PackLockHold, PackLockError> {
        match self.acquire_unless(sleep).await {
            Some(acquired) => acquired,
            None => Err(self.timed_out(timeout)),
        }
    }

    /// The async pipeline raced against `stop`, which is polled first;
    /// `None` when `stop` won (the pipeline future is then dropped, which
    /// is what makes giving up leave nothing behind).
    async fn acquire_unless(
        &self,
        stop: impl Future<Output = ()>,
    ) -> Option<Result<PackLockHold, PackLockError>> {
        let stopped = async {
            stop.await;
            None
        };
        let acquire = async { Some(self.run(Wait::Task, HeldContext::for_task()).await) };
        future::or(stopped, acquire).await
    }

    pub(crate) fn timed_out(&self, timeout: Duration) -> PackLockError {
        let cause = self.current.peek().backend.wait_trouble();
        PackLockError::TimedOut { path: self.path().to_path_buf(), timeout, cause }
    }

    /// The one acquire pipeline, waiting as `wait` says, recording in
    /// `held` (the caller's record of held tiers and locks, if any).
    fn run(
        &self,
        wait: Wait,
        held: Option<Arc<HeldContext>>,
    ) -> impl Future<Output = Result<PackLockHold, PackLockError>> + '_ {
        acquire::run(&self.current, &self.options, wait, held)
    }

    /// The lock as currently opened, for the crate's own tests.
    #[cfg(test)]
    pub(crate) fn target(&self) -> Arc<crate::target::Target> {
        self.current.peek()
    }
}

impl fmt::Debug for PackLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackLock").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The registry of in-process slots, seen through the locks that use it.
#[cfg(test)]
mod registry_tests {
    use std::sync::{Mutex, MutexGuard, PoisonError};

    use crate::PackLock;
    use crate::registry::live_slots;

    /// The registry is process-wide: unit tests that open locks take turns,
    /// so that counting entries sees only its own.
    fn serial() -> MutexGuard<'static, ()> {
        static SERIAL: Mutex<()> = Mutex::new(());
        SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn registry_holds_only_open_lock_files() {
        let _serial = serial();
        let dir = tempfile::tempdir().expect("temp dir");
        let before = live_slots();
        for i in 0..2_000 {
            let lock = PackLock::open(dir.path().join(i.to_string())).expect("open");
            let hold = lock.acquire().expect("acquire");
            assert!(live_slots() <= before + 1, "a dropped lock file kept its slot");
            drop((hold, lock));
        }
        assert_eq!(live_slots(), before);
    }

    #[test]
    fn aliases_of_one_file_share_one_slot() {
        let _serial = serial();
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = PackLock::open(dir.path()).expect("open");
        let link = dir.path().join("hard-link");
        std::fs::hard_link(lock.path(), &link).expect("hard link");
        let alias = PackLock::open_file(&link).expect("open alias");
        let (target, alias) = (lock.target(), alias.target());
        assert!(std::sync::Arc::ptr_eq(&target.slot, &alias.slot));
    }
}
