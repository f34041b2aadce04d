//! What an acquire holds: the in-process slot and, once granted, a lease on
//! the OS lock.

use std::fmt;
use std::sync::Arc;

use crate::PackLockError;
use crate::lock::Target;
use crate::registry::{SharedLease, SlotGuard};
use crate::sidecar::{Mode, Sidecar};

/// The slot, and once granted the OS lock. Dropping it — for example when
/// the caller of an async acquire went away while a pool thread waited in
/// the OS lock — releases whatever it holds: the OS lock first (if this was
/// its last lease), then the slot, then (with the last reference) the file.
#[derive(Debug)]
pub(crate) struct Claim {
    // Field order is drop order.
    lease: Option<Arc<Lease>>,
    /// The lease is another shared hold's (so its holder record is too).
    joined: bool,
    slot: SlotGuard,
    target: Arc<Target>,
}

impl Claim {
    pub(crate) fn new(slot: SlotGuard, target: Arc<Target>) -> Self {
        Self { lease: None, joined: false, slot, target }
    }

    pub(crate) fn mode(&self) -> Mode {
        match self.slot {
            SlotGuard::Exclusive(_) => Mode::Exclusive,
            SlotGuard::Shared(_) => Mode::Shared,
        }
    }

    /// The file whose OS lock this claim has or will have.
    pub(crate) fn sidecar(&self) -> &Sidecar {
        match &self.lease {
            Some(lease) => &lease.target.sidecar,
            None => &self.target.sidecar,
        }
    }

    /// The process's shared lease slot for this file (shared claims only
    /// use it).
    pub(crate) fn shared_lease(&self) -> SharedLease {
        let entry = match &self.slot {
            SlotGuard::Exclusive(guard) => &**guard,
            SlotGuard::Shared(guard) => &**guard,
        };
        Arc::clone(&entry.shared_lease)
    }

    pub(crate) fn lease(&self) -> Option<&Arc<Lease>> {
        self.lease.as_ref()
    }

    /// Joins the process's existing shared lease.
    pub(crate) fn join(&mut self, lease: Arc<Lease>) {
        self.lease = Some(lease);
        self.joined = true;
    }

    /// Whether this claim joined another shared hold's lease.
    pub(crate) fn joined(&self) -> bool {
        self.joined
    }

    /// The lock file as opened by the acquiring `PackLock`.
    pub(crate) fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// Takes the OS lock if it is free; `Ok(false)` when busy.
    pub(crate) fn try_lock(&mut self) -> Result<bool, PackLockError> {
        let locked = self.target.sidecar.try_lock(self.mode())?;
        if locked {
            self.lease = Some(Lease::new(&self.target, self.mode()));
        }
        Ok(locked)
    }

    /// Blocks the calling thread until the OS lock is granted.
    pub(crate) fn lock_blocking(mut self) -> Result<Self, PackLockError> {
        self.target.sidecar.lock(self.mode())?;
        self.lease = Some(Lease::new(&self.target, self.mode()));
        Ok(self)
    }

    /// Gives up this claim's share of the OS lock now, reporting failure
    /// when it was the last one; the slot and file follow when `self` drops.
    pub(crate) fn release(mut self) -> Result<(), PackLockError> {
        match self.lease.take().and_then(Arc::into_inner) {
            Some(lease) => lease.release(),
            None => Ok(()),
        }
    }
}

/// A granted OS lock, unlocked when dropped. An exclusive claim has its own;
/// all shared claims of a process on one file share one, so the first to
/// arrive locks and the last to leave unlocks (the OS lock belongs to the
/// open file, not to each claim).
pub(crate) struct Lease {
    target: Arc<Target>,
    mode: Mode,
    unlocked: bool,
}

impl Lease {
    fn new(target: &Arc<Target>, mode: Mode) -> Arc<Self> {
        Arc::new(Self { target: Arc::clone(target), mode, unlocked: false })
    }

    fn release(mut self) -> Result<(), PackLockError> {
        self.unlocked = true;
        self.target.sidecar.unlock()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.unlocked {
            return;
        }
        if let Err(e) = self.target.sidecar.unlock() {
            // Unlocking fails only for a broken descriptor; there is
            // nothing better to do in a destructor than to say so.
            log::warn!("cannot release: {e}");
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("path", &self.target.sidecar.path())
            .field("mode", &self.mode)
            .finish()
    }
}
