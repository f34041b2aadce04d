//! The process's shared OS lock on one file, shared by all its shared
//! holds.
//!
//! `flock` belongs to an open file, not to a hold, so shared holds of one
//! process cannot each lock and unlock on their own: the first to arrive
//! takes the OS shared lock and the last to leave releases it. The count
//! and the unlock sit under one mutex, so a newcomer either joins a lock
//! that is still held or finds none and takes a new one after the old one
//! was released — never a lock about to be released under it. Taking a
//! new lock is serialised by a second, async mutex, held across the OS
//! wait, so that one reader at a time waits in the kernel.
//!
//! A shared `try_acquire` that finds another acquire taking the lock must
//! not give up on that account alone: shared holds never conflict, so it is
//! `Busy` only when an exclusive lock exists. The taker therefore publishes
//! what it is doing ([`Phase`]): a non-blocking attempt (microseconds; the
//! try waits for its outcome, then joins or tries itself), or a wait in the
//! kernel, which it starts only after the OS refused a non-blocking
//! attempt — another process holds the lock exclusively, and the try is
//! `Busy` at once.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use async_lock::MutexGuardArc;

use crate::PackLockError;
use crate::backend::{Grant, LockBackend};

/// One per lock file per process, in the file's registry entry.
#[derive(Debug, Default)]
pub(crate) struct SharedLease {
    state: Mutex<State>,
    /// Signalled whenever the taker's [`Phase`] changes.
    phase_changed: Condvar,
    /// Held by the one shared acquire that takes the OS lock (see [`Taking`]).
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
    /// What the holder of `taking` is doing.
    phase: Phase,
}

/// What the acquire holding `taking` is doing, for shared `try_acquire`s
/// to see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// Nothing (or it has just got `taking` and is about to try).
    #[default]
    Idle,
    /// Joining, or trying the OS lock without blocking: over in moments.
    Trying,
    /// Blocked in the OS lock, which was refused to a non-blocking attempt:
    /// another process holds it exclusively.
    WaitingInOs,
}

/// What a shared acquire that may not wait found: see
/// [`SharedLease::join_or_take_now`].
pub(crate) enum Now {
    /// Another shared hold has the OS lock: this is our part of it.
    Joined(Share),
    /// Nobody has it and nobody is taking it: our turn to try.
    Taking(Taking),
    /// Another acquire of this process waits in the kernel for an
    /// exclusive holder to let go.
    Busy,
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

    /// The right to take the OS lock, if nobody has it now.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Taking> {
        let mut state = self.state();
        let guard = self.taking.try_lock_arc()?;
        Some(self.taking(&mut state, guard))
    }

    /// The right to take the OS lock, waiting (as an acquire that may wait)
    /// for whoever has it; `blocking` waits by blocking the thread.
    pub(crate) async fn take(self: &Arc<Self>, blocking: bool) -> Taking {
        let guard =
            if blocking { self.taking.lock_arc_blocking() } else { self.taking.lock_arc().await };
        self.taking(&mut self.state(), guard)
    }

    /// For an acquire that may not wait: joins the OS shared lock, or gets
    /// the right to take it, or finds it `Busy` — waiting only while
    /// another acquire of this process makes a non-blocking attempt (or is
    /// about to), never for another process.
    pub(crate) fn join_or_take_now(self: &Arc<Self>) -> Now {
        let mut state = self.state();
        loop {
            if state.holders > 0 {
                return Now::Joined(self.joined(&mut state));
            }
            if state.phase == Phase::WaitingInOs {
                return Now::Busy;
            }
            if let Some(guard) = self.taking.try_lock_arc() {
                return Now::Taking(self.taking(&mut state, guard));
            }
            state = self.phase_changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn taking(self: &Arc<Self>, state: &mut State, guard: MutexGuardArc<()>) -> Taking {
        self.set_phase(state, Phase::Trying);
        Taking { guard: Some(guard), lease: Arc::clone(self) }
    }

    fn set_phase(&self, state: &mut State, phase: Phase) {
        state.phase = phase;
        self.phase_changed.notify_all();
    }

    /// Records the OS shared lock just taken on `target` (by the holder of
    /// `taking`), granted as `grant`, as the process's, held by one share.
    pub(crate) fn start(self: &Arc<Self>, backend: Arc<dyn LockBackend>, grant: Grant) -> Share {
        let mut state = self.state();
        state.holders = 1;
        state.locked = Some(backend);
        state.grant = grant.clone();
        Share { lease: Arc::clone(self), grant }
    }

    fn leave(&self) -> Result<(), PackLockError> {
        let mut state = self.state();
        state.holders -= 1;
        if state.holders > 0 {
            return Ok(());
        }
        // Unlocked under the mutex: nobody can join in between.
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

/// The right to take the process's shared OS lock, held by one acquire at
/// a time (across its OS wait, if any); gives it up when dropped.
#[derive(Debug)]
pub(crate) struct Taking {
    /// `None` only while dropping.
    guard: Option<MutexGuardArc<()>>,
    lease: Arc<SharedLease>,
}

impl Taking {
    /// Says that the OS refused a non-blocking attempt and the taker now
    /// blocks in the OS lock, so shared `try_acquire`s are `Busy`.
    pub(crate) fn waiting_in_os(&self) {
        self.lease.set_phase(&mut self.lease.state(), Phase::WaitingInOs);
    }
}

impl Drop for Taking {
    fn drop(&mut self) {
        // Released under the state mutex, so that a try seeing `Idle` finds
        // `taking` free (unless a newcomer has it, which then says so).
        let mut state = self.lease.state();
        drop(self.guard.take());
        self.lease.set_phase(&mut state, Phase::Idle);
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
