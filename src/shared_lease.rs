//! The process's shared OS lock on one file, shared by all its shared
//! holds.
//!
//! `flock` belongs to an open file, not to a hold, so shared holds of one
//! process cannot each lock and unlock on their own: the first to arrive
//! takes the OS shared lock and the last to leave releases it. Everything
//! that changes who has it — joining, a non-blocking attempt, recording a
//! grant, the last one leaving — happens under one mutex, so a newcomer
//! either joins a lock that is still held or finds none and takes a new
//! one, never a lock about to be released under it. Only a wait in the
//! kernel happens outside it, and while one does, the lease says so
//! (`waiting_in_os`) and nothing else touches the OS lock: an attempt
//! beside it could succeed and be undone by the waiter's own release.
//!
//! Waiting in the kernel is serialised by a second, async mutex
//! ([`Taking`]), held across the wait, so that one reader at a time waits
//! there. A shared `try_acquire` never touches that mutex and never waits
//! for anyone: under the state mutex it joins, or finds a wait in the
//! kernel (an exclusive lock elsewhere: `Busy`), or makes its own
//! non-blocking attempt.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_lock::MutexGuardArc;

use crate::PackLockError;
use crate::backend::{Grant, LockBackend, Mode};

/// One per lock file per process, in the file's registry entry.
#[derive(Debug, Default)]
pub(crate) struct SharedLease {
    state: Mutex<State>,
    /// Held by the one shared acquire that may wait in the kernel.
    taking: Arc<async_lock::Mutex<()>>,
}

#[derive(Debug, Default)]
struct State {
    /// How many shared holds share the OS lock.
    holders: usize,
    /// The open file the OS shared lock is on, while `holders > 0`.
    locked: Option<Arc<dyn LockBackend>>,
    /// What the backend granted with it (its fence, its lost signal),
    /// which every share reports.
    grant: Grant,
    /// The holder of `taking` waits in the kernel: a non-blocking attempt
    /// was refused, so another process holds the lock exclusively.
    waiting_in_os: bool,
}

/// What one attempt at the shared lock found.
pub(crate) enum Attempt {
    /// The shared lock is ours (joined, or just taken).
    Had(Share),
    /// An exclusive lock is in the way: the OS refused, or this process
    /// already waits in the kernel for it.
    Refused,
}

impl SharedLease {
    /// Joins the OS shared lock if some shared hold has it now.
    pub(crate) fn join(self: &Arc<Self>) -> Option<Share> {
        let mut state = self.state();
        (state.holders > 0).then(|| self.joined(&mut state))
    }

    fn joined(self: &Arc<Self>, state: &mut State) -> Share {
        state.holders += 1;
        Share { lease: Arc::clone(self), grant: state.grant.clone() }
    }

    /// Joins the OS shared lock, or takes it on `backend` without waiting.
    /// Never waits for another acquire: while one of this process waits in
    /// the kernel, this is [`Attempt::Refused`] at once. With `then_wait`
    /// (the caller holds [`Taking`]), a refusal — or a failure, after which
    /// the caller may wait too (a lock server out of reach) — records that
    /// the caller now waits, in the same critical section.
    pub(crate) fn attempt(
        self: &Arc<Self>,
        backend: &Arc<dyn LockBackend>,
        then_wait: Option<&Taking>,
    ) -> Result<Attempt, PackLockError> {
        let mut state = self.state();
        if state.holders > 0 {
            return Ok(Attempt::Had(self.joined(&mut state)));
        }
        if state.waiting_in_os {
            return Ok(Attempt::Refused);
        }
        let tried = backend.try_lock(Mode::Shared);
        if let Ok(Some(grant)) = tried {
            return Ok(Attempt::Had(self.started(&mut state, backend, grant)));
        }
        state.waiting_in_os = then_wait.is_some();
        tried.map(|_| Attempt::Refused)
    }

    /// The right to wait in the kernel, if nobody has it now.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Taking> {
        let guard = self.taking.try_lock_arc()?;
        Some(Taking { guard: Some(guard), lease: Arc::clone(self) })
    }

    /// The right to wait in the kernel, waiting (as an acquire that may
    /// wait) for whoever has it; `blocking` waits by blocking the thread.
    pub(crate) async fn take(self: &Arc<Self>, blocking: bool) -> Taking {
        let guard =
            if blocking { self.taking.lock_arc_blocking() } else { self.taking.lock_arc().await };
        Taking { guard: Some(guard), lease: Arc::clone(self) }
    }

    /// Records the OS shared lock just granted on `backend` after a wait in
    /// the kernel (by the holder of [`Taking`]) as the process's.
    pub(crate) fn granted(self: &Arc<Self>, backend: &Arc<dyn LockBackend>, grant: Grant) -> Share {
        let mut state = self.state();
        state.waiting_in_os = false;
        if state.holders > 0 {
            // Nothing can start a lock while we wait; a join is still right.
            return self.joined(&mut state);
        }
        self.started(&mut state, backend, grant)
    }

    fn started(
        self: &Arc<Self>,
        state: &mut State,
        backend: &Arc<dyn LockBackend>,
        grant: Grant,
    ) -> Share {
        state.holders = 1;
        state.locked = Some(Arc::clone(backend));
        state.grant = grant.clone();
        Share { lease: Arc::clone(self), grant }
    }

    fn leave(&self) -> Result<(), PackLockError> {
        let mut state = self.state();
        state.holders -= 1;
        if state.holders > 0 {
            return Ok(());
        }
        // Unlocked under the mutex: nobody can join or attempt in between.
        state.grant = Grant::default();
        match state.locked.take() {
            Some(backend) => backend.unlock(),
            None => Ok(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The right to wait in the kernel for the process's shared OS lock, held
/// by one acquire at a time across its wait; gives it up when dropped.
#[derive(Debug)]
pub(crate) struct Taking {
    /// `None` only while dropping.
    guard: Option<MutexGuardArc<()>>,
    lease: Arc<SharedLease>,
}

impl Drop for Taking {
    fn drop(&mut self) {
        // However the wait ended (granted and recorded, failed, abandoned),
        // nobody of ours waits in the kernel any more.
        let mut state = self.lease.state();
        state.waiting_in_os = false;
        drop(state);
        drop(self.guard.take());
    }
}

/// One shared hold's part of the OS shared lock; leaving drops the lock
/// with the last part. A share is handed straight to the claim that holds
/// it, whose release (or drop) leaves.
#[derive(Debug)]
#[must_use = "a share that never leaves keeps the OS lock held"]
pub(crate) struct Share {
    lease: Arc<SharedLease>,
    /// The shared lock's grant, the same for every share of it.
    grant: Grant,
}

impl Share {
    pub(crate) fn grant(&self) -> &Grant {
        &self.grant
    }

    /// Leaves, reporting a failed unlock when this was the last part.
    pub(crate) fn leave(self) -> Result<(), PackLockError> {
        self.lease.leave()
    }
}
