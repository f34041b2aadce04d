//! Where exclusion between processes lives: the seam between the acquire
//! pipeline and a lock's backend.
//!
//! Everything above this module — the in-process slots, the fast and slow
//! paths, cancellation and timeouts, shared leases, tiers and re-entrancy,
//! the slow-wait log, `Busy` naming the holder — is written once against
//! [`LockBackend`]. The first backend is [`lock_file`]: an OS lock
//! (`flock(2)`, `LockFileEx`) on a file.
//!
//! # What a backend provides
//!
//! * **Identity** ([`LockBackend::key`]): one [`LockKey`] per lock, equal
//!   for every way of naming the same lock (a file's aliases; a lock
//!   server's name), so that all acquires of one lock in a process share
//!   one in-process slot. [`LockBackend::path`] is what errors and logs
//!   name.
//! * **Try-lock** ([`LockBackend::try_lock`]): take the lock in a [`Mode`]
//!   without waiting; `Ok(false)` when someone else holds it. It runs on
//!   the caller's thread, also for async callers, so it must not block for
//!   long (a file lock call; one round trip to a server).
//! * **Blocking lock** ([`LockBackend::lock`]): wait until granted,
//!   blocking the calling thread. The pipeline calls it on the caller's
//!   thread for sync acquires and on the `blocking` pool for async ones;
//!   only the holder of the in-process slot ever calls it, so a process
//!   has at most one waiter per lock here. A waiter whose caller went away
//!   is left to finish and then unlocks at once, so a backend whose wait
//!   can be interrupted (a server query can be cancelled) should offer
//!   that to keep cancelled waits short.
//! * **Unlock** ([`LockBackend::unlock`]): give the lock back; errors are
//!   reported by `PackLockHold::release` and logged on drop. Shared holds
//!   of one process share one backend lock, taken by the first and given
//!   back by the last ([`crate::shared_lease`]), so a backend sees one
//!   lock per process and mode.
//! * **Validate** ([`LockBackend::is_current`]): is a granted lock still
//!   the lock of this name? `Ok(false)` means the lock now lives elsewhere
//!   (the file at the path was replaced): the pipeline then calls
//!   [`LockBackend::reopen`] and tries again. A backend whose holds can be
//!   *lost* (a server session that ends) reports that as an error here.
//! * **Holders** ([`LockBackend::holders`]) and the **holder record**
//!   ([`LockBackend::record_holder`]): diagnostics only, best effort, for
//!   `Busy`, the slow-wait log line and `PackLock::holders`.
//!
//! A lock server backend (named locks on PostgreSQL) fits this shape: a
//! name instead of a path as key, `pg_try_advisory_lock` and
//! `pg_advisory_lock` on a session for try-lock and lock, the session's
//! liveness for validate, `pg_locks` for holders. It will add what files
//! do not have: a fence (a number that grows with every exclusive hold)
//! taken before the lock is reported granted, and a signal that a hold was
//! lost.

pub(crate) mod lock_file;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub(crate) use crate::options::Mode;
use crate::sys::FileKey;
use crate::{Holder, PackLockError};

/// Which lock a backend locks, for the in-process registry: equal keys are
/// one lock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum LockKey {
    /// A lock file, known by its identity on disk.
    File(FileKey),
}

/// Where exclusion between processes lives for one open lock; see the
/// module docs for what each method must do.
pub(crate) trait LockBackend: fmt::Debug + Send + Sync + 'static {
    /// The lock's identity: equal for every alias of the same lock.
    fn key(&self) -> &LockKey;

    /// The name errors and log lines give the lock.
    fn path(&self) -> &Path;

    /// Takes the lock in `mode` if nobody holds it in a conflicting mode:
    /// `Ok(false)` when busy. Never waits for another holder.
    fn try_lock(&self, mode: Mode) -> Result<bool, PackLockError>;

    /// Blocks the calling thread until the lock is granted in `mode`.
    fn lock(&self, mode: Mode) -> Result<(), PackLockError>;

    /// Gives the lock back.
    fn unlock(&self) -> Result<(), PackLockError>;

    /// Whether this is still the lock of its name; `Ok(false)` when it was
    /// replaced and must be reopened.
    fn is_current(&self) -> Result<bool, PackLockError>;

    /// Who holds the lock now, as far as can be known.
    fn holders(&self) -> Vec<Holder>;

    /// Records this process, labelled `label`, as the holder (best effort).
    fn record_holder(&self, label: &str);

    /// Opens the lock of the same name anew, after [`is_current`] said it
    /// was replaced.
    ///
    /// [`is_current`]: LockBackend::is_current
    fn reopen(&self) -> Result<Arc<dyn LockBackend>, PackLockError>;
}
