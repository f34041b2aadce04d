//! [`PackLockHold`], the guard every acquire returns.

use std::fmt;
use std::future::Future;
use std::path::Path;

use crate::acquire::claim::Claim;
use crate::backend::Grant;
use crate::held::{HeldContext, Registration};
use crate::{PackLockError, Tier};

/// Proof that the lock is held, returned by every acquire method. The lock
/// is held until the hold is dropped or [released](Self::release).
///
/// It owns everything it needs (no borrow of the [`PackLock`](crate::PackLock)),
/// so it can be stored, sent to another thread, or held across `.await`.
/// Dropping it releases the OS lock, then the in-process slot, then closes
/// the file if nothing else uses it.
///
/// A hold counts as held by the thread that acquired it (or, inside
/// [`with_tier_scope`](crate::with_tier_scope), the task): that thread
/// cannot wait for the same lock file again
/// ([`PackLockError::Reentrant`]), and its [tier](crate::Tier) counts for
/// its lock order. Moving the hold elsewhere cannot be observed, so it keeps
/// counting for the acquiring thread until the thread that now owns it
/// calls [`adopt`](Self::adopt).
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), packlock::PackLockError> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let lock = packlock::PackLock::open(dir.path())?;
/// {
///     let _hold = lock.acquire()?;
///     // ... exclusive work ...
/// } // released here
/// assert!(lock.try_acquire().is_ok());
/// # Ok(())
/// # }
/// ```
#[must_use = "the lock is released as soon as the hold is dropped"]
pub struct PackLockHold {
    claim: Claim,
    /// What the backend granted: fence and lost signal.
    grant: Grant,
    /// The entry in the owning thread's or task's record of held tiers
    /// and locks; dropped (wherever the hold is) after the lock is released.
    held: Option<Registration>,
    /// The lock's tier, for [`adopt`](Self::adopt).
    tier: Option<Tier>,
}

impl PackLockHold {
    pub(crate) fn new(claim: Claim, held: Option<Registration>, tier: Option<Tier>) -> Self {
        let grant = claim.grant();
        Self { claim, grant, held, tier }
    }

    /// Makes this hold count as held by the calling thread (or, inside
    /// [`with_tier_scope`](crate::with_tier_scope), the calling task)
    /// instead of the one that acquired it. Call it where a hold arrives
    /// after being moved to another thread or task.
    ///
    /// From then on the acquiring thread may wait for the lock again (it
    /// waits until the hold is dropped, instead of failing with
    /// [`PackLockError::Reentrant`]), and the adopting thread may not (it
    /// would wait for itself); the lock's tier, if it has one, counts for
    /// the adopting thread's lock order. Nothing is checked: adopting
    /// cannot make anyone wait. The lock itself is untouched.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use packlock::{PackLock, PackLockError};
    ///
    /// # fn main() -> Result<(), PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = PackLock::open(dir.path())?;
    /// let hold = lock.acquire()?;
    /// let (adopted, is_adopted) = mpsc::channel();
    /// let worker = std::thread::spawn(move || {
    ///     let mut hold = hold;
    ///     hold.adopt(); // this thread owns it now
    ///     adopted.send(()).expect("tell the main thread");
    ///     // ... work under the lock ...
    ///     drop(hold);
    /// });
    /// is_adopted.recv().expect("adopted");
    /// // Without `adopt`, this would fail with `Reentrant`; now it waits
    /// // for the worker to drop the hold.
    /// let _again = lock.acquire()?;
    /// worker.join().expect("worker");
    /// # Ok(())
    /// # }
    /// ```
    pub fn adopt(&mut self) {
        drop(self.held.take()); // leaves the old record first
        let target = std::sync::Arc::clone(&self.claim.target().backend);
        self.held = Some(HeldContext::for_thread().adopt(target, self.tier));
    }

    /// The path of the locked file.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let hold = packlock::PackLock::open(dir.path())?.acquire()?;
    /// assert_eq!(hold.path(), dir.path().join(packlock::PACK_LOCK_FILE_NAME));
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        self.claim.backend().path()
    }

    /// Checks that the locked file is still the file at [`path`](Self::path).
    ///
    /// A lock protects only while its file stays in place: if someone deletes
    /// the lock file or renames another file over it while it is held, a
    /// newcomer locks the new file and does not wait for this hold.
    /// Long-running holders can call this before committing their work.
    ///
    /// For a server lock it asks the server whether the session still
    /// holds the lock (one round trip): names are never replaced, but a
    /// hold is lost when its session ends.
    ///
    /// # Errors
    ///
    /// [`PackLockError::Replaced`] when the file was deleted or replaced,
    /// [`PackLockError::Io`] when it cannot be checked;
    /// for a server lock [`PackLockError::Lost`] when the server dropped
    /// the hold, `PackLockError::Server` when the server cannot be asked.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::open(dir.path())?;
    /// let hold = lock.acquire()?;
    /// hold.validate()?;
    /// std::fs::remove_file(lock.path()).expect("remove");
    /// assert!(matches!(hold.validate(), Err(packlock::PackLockError::Replaced { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn validate(&self) -> Result<(), PackLockError> {
        if self.claim.is_current()? {
            Ok(())
        } else {
            Err(PackLockError::Replaced { path: self.path().to_path_buf() })
        }
    }

    /// The open lock file whose OS lock this hold rests on; `None` for a
    /// server lock.
    ///
    /// The OS lock belongs to this open file (its open file description),
    /// not to the process: a child process that inherits the file's
    /// descriptor holds the lock with us, and it stays held as long as any
    /// process keeps that descriptor open. That is how a program hands its
    /// lock to a command it runs, as `flock(1)` does: clear the
    /// descriptor's close-on-exec flag (std opens every file with it set),
    /// run the command, and exit without dropping the hold — dropping or
    /// [releasing](Self::release) it unlocks the file for every process
    /// that shares it. (The `packlock` command does exactly this.)
    ///
    /// Do not lock or unlock the file yourself: the hold does that.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let hold = packlock::PackLock::open(dir.path())?.acquire()?;
    /// let file: &std::fs::File = hold.lock_file().expect("a lock file's hold");
    /// assert!(file.metadata().expect("stat").is_file());
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock_file(&self) -> Option<&std::fs::File> {
        self.claim.backend().file()
    }

    /// The hold's fencing token, for locks that have one: a server lock
    /// (`postgres::LockServer::lock`, feature `postgres`) always has one,
    /// a lock file only when opened with
    /// [`fencing(true)`](crate::PackLockBuilder::fencing) (else `None`).
    ///
    /// Every grant's fence — exclusive and shared — was committed before
    /// the acquire returned (by the server; for a lock file, written into
    /// its fence file and flushed to the disk), and is larger than that of
    /// every earlier grant of the name or file, even across restarts (the
    /// shared holds of one process share one OS or server lock, and so one
    /// fence). Pass it with every write to storage that remembers the
    /// largest fence it has seen and refuses smaller ones: a holder that
    /// lost its lock without knowing it (a long pause, a cut connection)
    /// then cannot overwrite the work of the next. A reader passes its
    /// fence too (with its reads, or once when it starts): the storage then
    /// refuses the late writes of the writer that held the lock before it.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let hold = packlock::PackLock::open(dir.path())?.acquire()?;
    /// assert_eq!(hold.fence(), None); // lock files have fences only when asked
    /// drop(hold);
    /// let fenced = packlock::PackLock::builder(dir.path()).fencing(true).open()?;
    /// assert!(fenced.acquire()?.fence().is_some());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// ```no_run
    /// # #[cfg(feature = "postgres")]
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let server = packlock::postgres::LockServer::connect("host=db user=packs dbname=locks")?;
    /// let hold = server.lock("packs/foo").open()?.acquire()?;
    /// let fence: u64 = hold.fence().expect("server locks always have a fence");
    /// // storage.write_if_newer(fence, data)?;
    /// # let _ = fence;
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "postgres"))]
    /// # fn main() {}
    /// ```
    pub fn fence(&self) -> Option<u64> {
        self.grant.fence
    }

    /// Completes when packlock learns that this hold is gone without
    /// having been released: for a server lock, when the session holding
    /// it ended (server restarted or failed over, connection cut and
    /// noticed, backend terminated); [`validate`](Self::validate) then
    /// fails with [`PackLockError::Lost`]. The client learns it when the
    /// session's connection ends, at once when the server closes it or the
    /// connection is cut, and within two heartbeat intervals (10 s by
    /// default; see the `postgres` module) when the network goes silent. Works on any executor, and does not borrow the
    /// hold, so it can race the work the hold protects.
    ///
    /// A lock file cannot be lost while held (the kernel keeps it until
    /// the file is closed), so for a lock file this never completes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures_lite::future;
    /// use packlock::PackLockError;
    ///
    /// # #[cfg(feature = "postgres")]
    /// async fn compact() -> Result<(), PackLockError> {
    ///     let server = packlock::postgres::LockServer::connect_async("host=db user=packs").await?;
    ///     let lock = server.lock("nightly-compaction").open()?;
    ///     let hold = lock.acquire_async().await?;
    ///     let work = async { /* long work under the lock */ Ok::<(), PackLockError>(()) };
    ///     // Stop working as soon as the lock is gone.
    ///     future::or(work, async {
    ///         hold.lost().await;
    ///         hold.validate()
    ///     })
    ///     .await
    /// }
    /// # fn main() {}
    /// ```
    ///
    /// For a lock file, never:
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let hold = packlock::PackLock::open(dir.path())?.acquire()?;
    /// let lost = futures_lite::future::block_on(futures_lite::future::poll_once(hold.lost()));
    /// assert!(lost.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let lost = self.grant.lost.clone();
        async move {
            match lost {
                Some(lost) => lost.wait().await,
                None => std::future::pending().await,
            }
        }
    }

    /// Makes the calling process — a child made by `fork(2)` — the owner
    /// of this hold's lock, for programs that daemonise while holding a
    /// lock: the parent forks and exits, and the child goes on holding it.
    ///
    /// A child shares its parent's open lock file, and with it the lock,
    /// which stays held while any process keeps the file open. So by
    /// default a child never unlocks it: dropping an inherited hold there
    /// does nothing, and [`release`](Self::release) fails with
    /// [`PackLockError::InheritedHold`] rather than claim a release that did
    /// not happen. After `take_over`, the child's release and drop unlock
    /// it as the parent's would — for every process sharing the file, so
    /// take over only where the parent has let go of its copy without
    /// unlocking (it exited, or `exec`'d; lock files are close-on-exec).
    ///
    /// In the process that acquired the hold, and for server locks (whose
    /// session a child cannot share), it changes nothing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// # fn fork_and_exit_parent() {}
    /// let lock = packlock::PackLock::open("/srv/daemon")?;
    /// let mut hold = lock.try_acquire()?; // only one daemon at a time
    /// fork_and_exit_parent(); // the usual double fork; we are the child now
    /// hold.take_over();
    /// // ... serve ...
    /// hold.release()?; // or drop it: the lock is free again
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_over(&mut self) {
        self.claim.backend().take_over();
    }

    /// Releases the lock now and reports whether the OS unlock succeeded
    /// (dropping the hold does the same but can only log a failure).
    ///
    /// # Errors
    ///
    /// [`PackLockError::Io`] when the OS refuses to unlock, which happens
    /// only for a broken descriptor; the OS still releases the lock when the
    /// last handle to the file closes. [`PackLockError::InheritedHold`] in a
    /// child made by `fork(2)` that did not [take the hold
    /// over](Self::take_over): the lock stays held (see there).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::open(dir.path())?;
    /// lock.acquire()?.release()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn release(self) -> Result<(), PackLockError> {
        self.claim.release()
    }
}

impl fmt::Debug for PackLockHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackLockHold").field("path", &self.path()).finish_non_exhaustive()
    }
}
