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

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::PackLockError;
use crate::lock::Target;

/// One per lock file per process, in the file's registry entry.
#[derive(Debug, Default)]
pub(crate) struct SharedLease {
    state: Mutex<State>,
    /// Held by the one shared acquire that takes the OS lock.
    pub(crate) taking: Arc<async_lock::Mutex<()>>,
}

#[derive(Debug, Default)]
struct State {
    /// How many shared holds share the OS lock.
    holders: usize,
    /// The open file the OS shared lock is on, while `holders > 0`.
    locked: Option<Arc<Target>>,
}

impl SharedLease {
    /// Joins the OS shared lock if some shared hold has it now.
    pub(crate) fn join(self: &Arc<Self>) -> Option<Share> {
        let mut state = self.state();
        (state.holders > 0).then(|| {
            state.holders += 1;
            Share { lease: Arc::clone(self), left: false }
        })
    }

    /// Records the OS shared lock just taken on `target` (by the holder of
    /// `taking`) as the process's, held by one share.
    pub(crate) fn start(self: &Arc<Self>, target: Arc<Target>) -> Share {
        let mut state = self.state();
        state.holders = 1;
        state.locked = Some(target);
        Share { lease: Arc::clone(self), left: false }
    }

    fn leave(&self) -> Result<(), PackLockError> {
        let mut state = self.state();
        state.holders -= 1;
        if state.holders > 0 {
            return Ok(());
        }
        // Unlocked under the mutex: nobody can join in between.
        match state.locked.take() {
            Some(target) => target.sidecar.unlock(),
            None => Ok(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One shared hold's part of the OS shared lock; leaving drops the lock
/// with the last part.
#[derive(Debug)]
pub(crate) struct Share {
    lease: Arc<SharedLease>,
    left: bool,
}

impl Share {
    /// Leaves now, reporting a failed unlock when this was the last part.
    pub(crate) fn leave(mut self) -> Result<(), PackLockError> {
        self.left = true;
        self.lease.leave()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        if self.left {
            return;
        }
        if let Err(e) = self.lease.leave() {
            log::warn!("cannot release: {e}");
        }
    }
}
