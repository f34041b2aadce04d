//! The process-wide registry of in-process slots, one per lock file.
//!
//! Every [`PackLock`](crate::PackLock) on one file — whatever path, symlink or
//! hard link it was opened through — shares one slot, an `async-lock`
//! read-write lock: exclusive acquires take it for writing, shared ones for
//! reading. Only the slot's writer, or the one reader that takes the
//! process's [`SharedLease`], goes on to the OS lock, so a process sends at
//! most one waiter per lock file to the kernel, and waiters inside the
//! process queue fairly in user space.
//!
//! The registry holds only `Weak` references, and a slot removes its own
//! entry when its last user drops it, so the registry holds exactly the
//! lock files that are open now, however many were ever locked.
//!
//! Slots are also keyed by the process that opened the file. A child made
//! by `fork(2)` inherits a copy of its parent's registry, whose slots may be
//! held by parent threads that do not exist in the child and so would never
//! be released there; the child's own opens get slots of their own.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};

use async_lock::{RwLockReadGuardArc, RwLockWriteGuardArc};

use crate::backend::LockKey;
use crate::shared_lease::SharedLease;

/// The in-process lock for one lock. Its value is the slot's state: its
/// registry key, so that dropping the last slot can remove it, and the
/// process's shared lease on the lock.
pub(crate) type Slot = async_lock::RwLock<SlotState>;

/// A held slot, owned (no borrow), so it can move onto a pool thread.
#[derive(Debug)]
pub(crate) enum SlotGuard {
    Exclusive(RwLockWriteGuardArc<SlotState>),
    Shared(RwLockReadGuardArc<SlotState>),
}

type Map = HashMap<SlotKey, Weak<Slot>>;

/// Which slot: the lock, and the process whose slot it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SlotKey {
    lock: LockKey,
    process: u32,
}

static REGISTRY: LazyLock<Mutex<Map>> = LazyLock::new(Mutex::default);

/// What a slot guards: its registry key, which unregisters itself when the
/// slot is dropped, and the process's shared lease on the lock.
#[derive(Debug)]
pub(crate) struct SlotState {
    key: SlotKey,
    pub(crate) shared_lease: Arc<SharedLease>,
}

impl Drop for SlotState {
    fn drop(&mut self) {
        let mut map = registry();
        // A newer slot may already sit under this key (it was created after
        // our last strong reference went away): leave that one alone.
        if map.get(&self.key).is_some_and(|weak| weak.strong_count() == 0) {
            map.remove(&self.key);
        }
    }
}

/// Process `process`'s slot for the lock `lock`, created on first use.
pub(crate) fn slot_for(lock: &LockKey, process: u32) -> Arc<Slot> {
    let key = SlotKey { lock: lock.clone(), process };
    let mut map = registry();
    if let Some(slot) = map.get(&key).and_then(Weak::upgrade) {
        return slot;
    }
    let entry = SlotState { key: key.clone(), shared_lease: Arc::default() };
    let slot = Arc::new(async_lock::RwLock::new(entry));
    map.insert(key, Arc::downgrade(&slot));
    slot
}

/// How many lock files have a live slot in this process.
#[cfg(test)]
pub(crate) fn live_slots() -> usize {
    registry().len()
}

/// The registry map. A panic while it was locked cannot leave it
/// inconsistent (every update is a single insert or remove), so poisoning
/// is ignored rather than spread to every later lock user.
fn registry() -> MutexGuard<'static, Map> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}
