//! What an acquire holds: the in-process slot and, once granted, the OS
//! lock (its own for an exclusive claim, a share of the process's for a
//! shared one).

use std::sync::Arc;

use crate::PackLockError;
use crate::backend::{Grant, Interrupt, LockBackend, Mode};
use crate::registry::SlotGuard;
use crate::shared_lease::{Attempt, Share, SharedLease, Taking};
use crate::target::Target;

/// The slot, and once granted the OS lock. Dropping it — for example when
/// the caller of an async acquire went away while a pool thread waited in
/// the OS lock — releases whatever it holds: the OS lock first, then the
/// slot, then (with the last reference) the file.
///
/// The OS lock is given back in one place, [`OsLock::give_back`]: by
/// [`Claim::release`], which reports a failure, or else by `Drop`, which
/// can only log it. Taking it out of `os` is what makes that happen once.
#[derive(Debug)]
pub(crate) struct Claim {
    // Field order is drop order (after `Drop::drop` gave back `os`).
    os: Option<OsLock>,
    slot: SlotGuard,
    target: Arc<Target>,
}

/// A granted OS lock.
#[derive(Debug)]
enum OsLock {
    /// Ours alone, on our own file.
    Exclusive(Grant),
    /// Our part of the process's shared lock.
    Shared(Share),
}

impl OsLock {
    fn grant(&self) -> &Grant {
        match self {
            Self::Exclusive(grant) => grant,
            Self::Shared(share) => share.grant(),
        }
    }

    /// Unlocks (exclusive) or leaves the process's shared lock.
    fn give_back(self, target: &Target) -> Result<(), PackLockError> {
        match self {
            Self::Exclusive(_) => target.backend.unlock(),
            Self::Shared(share) => share.leave(),
        }
    }
}

impl Claim {
    pub(crate) fn new(slot: SlotGuard, target: Arc<Target>) -> Self {
        Self { os: None, slot, target }
    }

    pub(crate) fn mode(&self) -> Mode {
        match self.slot {
            SlotGuard::Exclusive(_) => Mode::Exclusive,
            SlotGuard::Shared(_) => Mode::Shared,
        }
    }

    /// The lock file as the acquiring `PackLock` opened it: its path is the
    /// one to check and report, whichever open file holds the OS lock.
    pub(crate) fn backend(&self) -> &dyn LockBackend {
        &*self.target.backend
    }

    pub(crate) fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// The process's shared lock on this file.
    pub(crate) fn shared_lease(&self) -> &Arc<SharedLease> {
        let entry = match &self.slot {
            SlotGuard::Exclusive(guard) => &**guard,
            SlotGuard::Shared(guard) => &**guard,
        };
        &entry.shared_lease
    }

    /// Joins the process's shared lock if a shared hold has it now.
    pub(crate) fn try_join(&mut self) -> bool {
        let share = self.shared_lease().join();
        let joined = share.is_some();
        if let Some(share) = share {
            self.joined(share);
        }
        joined
    }

    /// Records `share` of the process's shared lock as this claim's.
    fn joined(&mut self, share: Share) {
        self.os = Some(OsLock::Shared(share));
    }

    /// Takes the OS lock on our file if it is free, or for a shared claim
    /// joins the process's shared lock; `Ok(false)` when busy. A shared
    /// claim holding `taking` goes on to wait in the kernel when refused
    /// (see [`SharedLease::attempt`]).
    pub(crate) fn try_lock(&mut self, taking: Option<&Taking>) -> Result<bool, PackLockError> {
        if self.mode() == Mode::Shared {
            let lease = Arc::clone(self.shared_lease());
            return Ok(match lease.attempt(&self.target.backend, taking)? {
                Attempt::Had(share) => {
                    self.joined(share);
                    true
                }
                Attempt::Refused => false,
            });
        }
        let grant = self.target.backend.try_lock(Mode::Exclusive)?;
        let locked = grant.is_some();
        if let Some(grant) = grant {
            self.os = Some(OsLock::Exclusive(grant));
        }
        Ok(locked)
    }

    /// Blocks the calling thread until the OS lock on our file is granted,
    /// or until `interrupt` fires (where the backend can stop its wait).
    pub(crate) fn lock_blocking(mut self, interrupt: &Interrupt) -> Result<Self, PackLockError> {
        let grant = self.target.backend.lock(self.mode(), interrupt)?;
        self.os = Some(match self.mode() {
            Mode::Exclusive => OsLock::Exclusive(grant),
            Mode::Shared => {
                OsLock::Shared(self.shared_lease().granted(&self.target.backend, grant))
            }
        });
        Ok(self)
    }

    /// What the backend granted: the claim's own lock's, or for a shared
    /// claim that of the process's shared lock. Default (no fence, never
    /// lost) before the lock is granted.
    pub(crate) fn grant(&self) -> Grant {
        self.os.as_ref().map(|os| os.grant().clone()).unwrap_or_default()
    }

    /// Whether the lock granted is still current (see
    /// [`LockBackend::is_current`]).
    pub(crate) fn is_current(&self) -> Result<bool, PackLockError> {
        self.target.backend.is_current(self.os_grant())
    }

    /// Confirms the grant just got or joined (see [`LockBackend::confirm`]).
    pub(crate) fn confirm(&self) -> Result<bool, PackLockError> {
        self.target.backend.confirm(self.os_grant())
    }

    fn os_grant(&self) -> &Grant {
        static NONE: Grant = Grant { fence: None, lost: None };
        self.os.as_ref().map_or(&NONE, OsLock::grant)
    }

    /// Gives up this claim's OS lock now, reporting a failed unlock; the
    /// slot and file follow when `self` drops. In a forked child that did
    /// not take the lock over, nothing can be released: that is an error.
    pub(crate) fn release(mut self) -> Result<(), PackLockError> {
        let os = self.os.take();
        let owned = self.target.backend.is_owned_here();
        let released = os.map_or(Ok(()), |os| os.give_back(&self.target));
        if !owned {
            let path = self.target.backend.path().to_path_buf();
            return Err(PackLockError::InheritedHold { path });
        }
        released
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(os) = self.os.take() else { return };
        if let Err(e) = os.give_back(&self.target) {
            // Unlocking fails only for a broken descriptor; there is
            // nothing better to do in a destructor than to say so.
            log::warn!("cannot release: {e}");
        }
    }
}
