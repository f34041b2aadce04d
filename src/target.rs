//! A lock as this process has it open — its backend and its in-process slot
//! — and the [`CurrentTarget`] a [`PackLock`](crate::PackLock) keeps, which
//! is replaced when the lock must be opened anew.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::PackLockError;
use crate::backend::LockBackend;
use crate::registry::{self, Slot};

/// An open lock and the in-process slot that all its acquires in this
/// process queue in.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) backend: Arc<dyn LockBackend>,
    pub(crate) slot: Arc<Slot>,
    /// The process that opened it (see [`CurrentTarget::get`]).
    opened_by: u32,
}

impl Target {
    fn new(backend: Arc<dyn LockBackend>, opened_by: u32) -> Self {
        let slot = registry::slot_for(backend.key(), opened_by);
        Self { backend, slot, opened_by }
    }
}

/// The target a lock acquires now.
#[derive(Debug)]
pub(crate) struct CurrentTarget(Mutex<Arc<Target>>);

impl CurrentTarget {
    /// The target of `backend`, which process `opened_by` (this one)
    /// opened.
    pub(crate) fn new(backend: Arc<dyn LockBackend>, opened_by: u32) -> Self {
        Self(Mutex::new(Arc::new(Target::new(backend, opened_by))))
    }

    /// The target as this process opened it.
    ///
    /// A child made by `fork(2)` inherits the lock with its parent's open
    /// file (or connection), whose lock is the parent's, and with the
    /// parent's in-process slot, which a parent thread may hold forever as
    /// far as the child can tell. So in a child the first call opens the
    /// lock anew, with a slot of the child's own: the child then waits for
    /// its parent like any other process, and its holds are its own. The
    /// pid comparison costs one `getpid` per acquire.
    pub(crate) fn get(&self) -> Result<Arc<Target>, PackLockError> {
        let mut current = self.lock();
        let this_process = std::process::id();
        if current.opened_by != this_process {
            *current = Arc::new(Target::new(current.backend.reopen()?, this_process));
        }
        Ok(Arc::clone(&current))
    }

    /// The target as currently opened, maybe by a parent process: enough
    /// for diagnostics.
    pub(crate) fn peek(&self) -> Arc<Target> {
        Arc::clone(&self.lock())
    }

    /// Opens the lock anew in place of `stale`, which was found replaced.
    /// Several acquires may find the same stale target: only the first
    /// reopens.
    pub(crate) fn reopen(&self, stale: &Arc<Target>) -> Result<(), PackLockError> {
        let mut current = self.lock();
        if Arc::ptr_eq(&current, stale) {
            *current = Arc::new(Target::new(current.backend.reopen()?, std::process::id()));
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Arc<Target>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
