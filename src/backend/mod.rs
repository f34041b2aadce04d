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
//!   the caller's thread — except for async callers of a backend that
//!   [is remote](LockBackend::is_remote) (a round trip to a server), where
//!   it runs on the `blocking` pool — so a local backend's try must not
//!   block.
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
//!   Right after a grant the pipeline asks [`LockBackend::confirm`]
//!   instead, which is `is_current` unless the backend knows cheaper.
//! * **Why a wait is stuck** ([`LockBackend::wait_trouble`]): what kept
//!   waits from reaching the lock at all (a server out of reach), for the
//!   `cause` of a `TimedOut`.
//! * **Holders** ([`LockBackend::holders`]) and the **holder record**
//!   ([`LockBackend::record_holder`]): diagnostics only, best effort, for
//!   `Busy`, the slow-wait log line and `PackLock::holders`.
//!
//! * **Grants** ([`Grant`]): what `try_lock` and `lock` return with the
//!   lock — its fence, if the backend hands out fences, and the signal
//!   that it was lost, if it can be. The claim keeps it; shared holds that
//!   join the process's shared lock get a copy of the one that took it.
//! * **Interrupting a wait** ([`Interrupt`]): the pipeline gives every
//!   blocking `lock` an interrupt, fired when the caller of an async (or
//!   timed) acquire went away while the wait ran on the pool. A backend
//!   that can stop its wait (a server query can be cancelled) returns an
//!   error at once, and the claim is released; one that cannot (`flock`)
//!   ignores it and lets go as soon as it is granted.
//!
//! The lock server backend (`postgres::backend`, feature `postgres`) has a
//! name instead of a path as key, advisory locks on a session for
//! try-lock and lock, the session's liveness for validate (as
//! [`PackLockError::Lost`], never `Ok(false)`: a name is never replaced),
//! and fences. A lock file has fences too when opened with fencing: a
//! counter kept in the file, read and written by the holder right after
//! the OS lock is granted (see `lock_file::record`).

pub(crate) mod lock_file;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use event_listener::Event;

pub(crate) use crate::options::Mode;
use crate::sys::FileKey;
use crate::{Holder, PackLockError};

/// Which lock a backend locks, for the in-process registry: equal keys are
/// one lock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum LockKey {
    /// A lock file, known by its identity on disk.
    File(FileKey),
    /// A named lock on a lock server: the server (`host:port/dbname`, as
    /// every client of it names it), the schema of its lock tables, and
    /// the name.
    #[cfg(feature = "postgres")]
    Server { server: String, schema: String, name: String },
}

/// What a backend hands over with a granted lock.
#[derive(Clone, Debug, Default)]
pub(crate) struct Grant {
    /// The lock's fence, larger than any an earlier grant got, exclusive or
    /// shared.
    /// `None` where the backend has no fences (files opened without fencing).
    pub(crate) fence: Option<u64>,
    /// Set when the lock is known to be gone; `None` where a lock cannot
    /// be lost while held (files).
    pub(crate) lost: Option<Arc<LostSignal>>,
}

impl Grant {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))] // only server locks are lost or interrupted
    /// Whether the lock is known to be gone.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.as_ref().is_some_and(|lost| lost.is_set())
    }
}

/// Set, once, when locks held through something (a server session) are
/// gone; awaitable on any executor.
#[derive(Debug, Default)]
pub(crate) struct LostSignal {
    lost: AtomicBool,
    event: Event,
}

impl LostSignal {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))] // only server locks are lost or interrupted
    /// Records the loss and wakes everyone waiting for it.
    pub(crate) fn set(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Completes once [`set`](Self::set) was called.
    pub(crate) async fn wait(self: Arc<Self>) {
        loop {
            if self.is_set() {
                return;
            }
            let listener = self.event.listen();
            if self.is_set() {
                return;
            }
            listener.await;
        }
    }
}

/// Stops one blocking [`LockBackend::lock`] from another thread: fired by
/// the pipeline when nobody waits for that lock any more.
#[derive(Clone, Debug, Default)]
pub(crate) struct Interrupt(Arc<Mutex<InterruptState>>);

#[derive(Default)]
struct InterruptState {
    fired: bool,
    hook: Option<Box<dyn FnOnce() + Send>>,
}

impl fmt::Debug for InterruptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterruptState").field("fired", &self.fired).finish_non_exhaustive()
    }
}

impl Interrupt {
    /// Fires: runs the backend's hook, now or as soon as one is set.
    pub(crate) fn fire(&self) {
        let hook = {
            let mut state = self.state();
            state.fired = true;
            state.hook.take()
        };
        if let Some(hook) = hook {
            hook();
        }
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))] // only server locks are lost or interrupted
    /// What firing does (runs at once if it fired already).
    pub(crate) fn on_fire(&self, hook: impl FnOnce() + Send + 'static) {
        let mut state = self.state();
        if state.fired {
            drop(state);
            hook();
        } else {
            state.hook = Some(Box::new(hook));
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, InterruptState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where exclusion between processes lives for one open lock; see the
/// module docs for what each method must do.
pub(crate) trait LockBackend: fmt::Debug + Send + Sync + 'static {
    /// The lock's identity: equal for every alias of the same lock.
    fn key(&self) -> &LockKey;

    /// The name errors and log lines give the lock.
    fn path(&self) -> &Path;

    /// Takes the lock in `mode` if nobody holds it in a conflicting mode:
    /// `Ok(None)` when busy. Never waits for another holder.
    fn try_lock(&self, mode: Mode) -> Result<Option<Grant>, PackLockError>;

    /// Blocks the calling thread until the lock is granted in `mode`, or
    /// (where the backend can stop its wait) until `interrupt` fires, which
    /// fails the call with nothing held.
    fn lock(&self, mode: Mode, interrupt: &Interrupt) -> Result<Grant, PackLockError>;

    /// Gives the lock back (a no-op where [`is_owned_here`] is false).
    ///
    /// [`is_owned_here`]: LockBackend::is_owned_here
    fn unlock(&self) -> Result<(), PackLockError>;

    /// Whether this process may release the lock: false in a child made by
    /// `fork(2)` that shares its parent's lock and did not
    /// [`take_over`](LockBackend::take_over).
    fn is_owned_here(&self) -> bool {
        true
    }

    /// Makes this process (a forked child) the one whose release counts.
    fn take_over(&self) {}

    /// Why waits for this lock cannot reach it right now, when the backend
    /// knows (a lock server out of reach: its last error), for the error
    /// of a wait that timed out.
    fn wait_trouble(&self) -> Option<String> {
        None
    }

    /// Whether this backend's calls go over the network — a round trip
    /// each, longer when the far end is slow or gone — so that async
    /// acquires make them on the blocking pool rather than on an executor
    /// thread. A lock file's calls are local, non-blocking system calls,
    /// made where the caller is.
    fn is_remote(&self) -> bool {
        false
    }

    /// Checks a grant an acquire just got, or joined, before the acquire
    /// returns it: as [`is_current`](Self::is_current), which is the
    /// default, but a backend that knows cheaper says so here (a lock
    /// file's path may name another file by now; a server lock's name
    /// never does, and only its lost session can have ended the grant).
    fn confirm(&self, grant: &Grant) -> Result<bool, PackLockError> {
        self.is_current(grant)
    }

    /// Whether this, granted as `grant`, is still the lock of its name;
    /// `Ok(false)` when it was replaced and must be reopened,
    /// [`PackLockError::Lost`] when the hold ended without being released.
    fn is_current(&self, grant: &Grant) -> Result<bool, PackLockError>;

    /// Who holds the lock now, as far as can be known.
    fn holders(&self) -> Vec<Holder>;

    /// Records this process, labelled `label`, as the holder (best effort).
    fn record_holder(&self, label: &str);

    /// The open file whose OS lock this is, for backends that lock one.
    fn file(&self) -> Option<&std::fs::File> {
        None
    }

    /// Opens the lock of the same name anew, after [`is_current`] said it
    /// was replaced.
    ///
    /// [`is_current`]: LockBackend::is_current
    fn reopen(&self) -> Result<Arc<dyn LockBackend>, PackLockError>;
}
