//! The record of what each thread or task holds, or is acquiring — lock
//! files and tiers — which catches re-entrant acquires and checks the tier
//! order.
//!
//! A thread's record is its own; a [`with_tier_scope`](crate::with_tier_scope)
//! task's is installed around each of its polls ([`Entered`]). Each
//! registration — a [`TierGuard`](crate::TierGuard), or an acquire from its
//! first poll until its hold is dropped — remembers the record it went into
//! and removes exactly its own entry when dropped, so guards dropped out of
//! order or on another thread never corrupt a record.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::backend::LockBackend;
use crate::tier::report_violation;
use crate::{PackLockError, Tier};

thread_local! {
    /// The context of the scope being polled on this thread, if any.
    static SCOPE: RefCell<Option<Arc<HeldContext>>> = const { RefCell::new(None) };
    /// This thread's own context, used outside scopes.
    static THREAD: Arc<HeldContext> = Arc::default();
}

/// Installs a scope's context for one poll; restores the previous one when
/// dropped, also when the poll panics.
pub(crate) struct Entered {
    previous: Option<Arc<HeldContext>>,
}

impl Entered {
    pub(crate) fn enter(context: Arc<HeldContext>) -> Self {
        Self { previous: SCOPE.with(|scope| scope.replace(Some(context))) }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        SCOPE.with(|scope| *scope.borrow_mut() = previous);
    }
}

/// What one thread or task holds, or is acquiring: tiers and lock files.
#[derive(Default)]
pub(crate) struct HeldContext {
    record: Mutex<Entries>,
    /// A scope's enclosing scope, set at its first poll (`None` when there
    /// is none, and for threads).
    parent: OnceLock<Option<Arc<HeldContext>>>,
}

/// The entries of a [`HeldContext`], each with an id of its own (unique in
/// the process, since entries can move to a parent) so that a
/// [`Registration`] removes exactly its entry.
#[derive(Default)]
struct Entries {
    entries: Vec<Held>,
    /// Where this scope's entries went when it completed: its parent.
    handed_to: Option<Arc<HeldContext>>,
}

static NEXT_ENTRY_ID: AtomicU64 = AtomicU64::new(0);

/// A tier guard (a tier, no lock) or an acquire (a lock, and its tier if
/// it has one).
struct Held {
    id: u64,
    tier: Option<Tier>,
    lock: Option<Arc<dyn LockBackend>>,
}

/// What [`HeldContext::enter_lock`] checks before it records a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Checks {
    /// Nothing: an acquire that cannot wait cannot deadlock.
    Nothing,
    /// Only that the lock file is not held here already.
    Reentry,
    /// That, and the tier order.
    ReentryAndOrder,
}

impl HeldContext {
    /// The record sync code runs against: the task's, inside a scope being
    /// polled; the thread's own otherwise.
    pub(crate) fn for_thread() -> Arc<Self> {
        Self::for_task().unwrap_or_else(|| THREAD.with(Arc::clone))
    }

    /// The record async code runs against: the task's, inside a scope; none
    /// outside, where a thread's record would mix up the tasks it polls.
    pub(crate) fn for_task() -> Option<Arc<Self>> {
        SCOPE.with(|scope| scope.borrow().clone())
    }

    /// Records `target` (of `tier`) as held here from now on. An acquire
    /// enters before it tries the lock, so that while it waits, its own
    /// thread or task cannot wait for the same file a second time, nor take
    /// a lower tier. `checks` says what to check first: a lock file held
    /// here already fails with `Reentrant`, since waiting would wait for
    /// ourselves; a tier out of order is reported. One lock of the record
    /// for all of it: this runs on every acquire.
    pub(crate) fn enter_lock(
        self: Arc<Self>,
        target: Arc<dyn LockBackend>,
        tier: Option<Tier>,
        checks: Checks,
    ) -> Result<Registration, PackLockError> {
        let mut record = self.record();
        let held_up_the_chain = || self.ancestors().any(|a| a.record().holds(&*target));
        if checks != Checks::Nothing && (record.holds(&*target) || held_up_the_chain()) {
            let path = target.path().to_path_buf();
            return Err(PackLockError::Reentrant { path });
        }
        let violation = match (checks, tier) {
            (Checks::ReentryAndOrder, Some(tier)) => self.violation(&record, tier, Some(&*target)),
            _ => None,
        };
        let id = record.push(tier, Some(target));
        drop(record);
        Ok(self.registered(id, violation))
    }

    /// Records `tier` as held here, reporting it if it is out of order.
    pub(crate) fn enter_tier(self: Arc<Self>, tier: Tier) -> Registration {
        let mut record = self.record();
        let violation = self.violation(&record, tier, None);
        let id = record.push(Some(tier), None);
        drop(record);
        self.registered(id, violation)
    }

    /// The registration of entry `id`, made before a tier violation is
    /// reported, so that a panicking report still removes the entry.
    fn registered(self: Arc<Self>, id: u64, violation: Option<String>) -> Registration {
        let registration = Registration { context: self, id };
        if let Some(message) = violation {
            report_violation(&message);
        }
        registration
    }

    /// Records the lock `target` (of `tier`) as held here, unchecked: for
    /// a hold that was acquired elsewhere and now belongs here.
    pub(crate) fn adopt(
        self: Arc<Self>,
        target: Arc<dyn LockBackend>,
        tier: Option<Tier>,
    ) -> Registration {
        let id = self.record().push(tier, Some(target));
        Registration { context: self, id }
    }

    /// The violation, if any, of taking `tier` (for the lock `target`)
    /// here, where `record` is ours, locked, and the enclosing scopes'
    /// records count too (each locked in turn, child before parent).
    fn violation(
        &self,
        record: &Entries,
        tier: Tier,
        target: Option<&dyn LockBackend>,
    ) -> Option<String> {
        let ours = record.highest_at_or_above(tier);
        let theirs = self.ancestors().filter_map(|a| a.record().highest_at_or_above(tier));
        let (held, held_lock) =
            ours.into_iter().chain(theirs).max_by_key(|(held, _)| held.rank())?;
        Some(format!(
            "lock tier violation: taking tier {tier}{} while holding (or acquiring) tier {held}{}; \
             tiers must be taken in strictly increasing rank",
            for_lock(target),
            for_lock(held_lock.as_deref()),
        ))
    }

    /// The enclosing scopes, innermost first.
    fn ancestors(&self) -> impl Iterator<Item = &HeldContext> {
        std::iter::successors(self.parent(), |context| context.parent())
    }

    fn parent(&self) -> Option<&HeldContext> {
        self.parent.get().and_then(Option::as_deref)
    }

    /// Links a scope's record to the enclosing scope's, if any, at its
    /// first poll (before the scope's own record is installed).
    pub(crate) fn link_to_enclosing_scope(&self) {
        self.parent.get_or_init(Self::for_task);
    }

    /// At the scope's completion, passes what it still holds (holds it
    /// returned, say) to its parent, which now owns them.
    pub(crate) fn hand_over_to_parent(&self) {
        let Some(parent) = self.parent.get().and_then(Option::clone) else { return };
        let mut record = self.record();
        let entries = std::mem::take(&mut record.entries);
        parent.record().entries.extend(entries);
        record.handed_to = Some(parent);
    }

    /// Removes entry `id`, from this record or, if it was handed over,
    /// from the parent's.
    fn remove(&self, id: u64) {
        let mut record = self.record();
        let before = record.entries.len();
        record.entries.retain(|e| e.id != id);
        if record.entries.len() == before
            && let Some(parent) = record.handed_to.clone()
        {
            drop(record);
            parent.remove(id);
        }
    }

    fn record(&self) -> MutexGuard<'_, Entries> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entries {
    /// Whether the lock file of `target` is held here.
    fn holds(&self, target: &dyn LockBackend) -> bool {
        let key = target.key();
        self.entries.iter().flat_map(|e| &e.lock).any(|held| held.key() == key)
    }

    /// The highest tier held (or being acquired) here of rank `tier`'s or
    /// above, with its lock if it is one's: taking `tier` is out of order
    /// if there is one.
    fn highest_at_or_above(&self, tier: Tier) -> Option<(Tier, Option<Arc<dyn LockBackend>>)> {
        self.entries
            .iter()
            .filter_map(|e| Some((e.tier?, e.lock.clone())))
            .filter(|(held, _)| held.rank() >= tier.rank())
            .max_by_key(|(held, _)| held.rank())
    }

    fn push(&mut self, tier: Option<Tier>, lock: Option<Arc<dyn LockBackend>>) -> u64 {
        let id = NEXT_ENTRY_ID.fetch_add(1, Ordering::Relaxed);
        self.entries.push(Held { id, tier, lock });
        id
    }
}

fn for_lock(target: Option<&dyn LockBackend>) -> String {
    target.map(|t| format!(" (lock `{}`)", t.path().display())).unwrap_or_default()
}

impl fmt::Debug for HeldContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = self.record();
        let tiers: Vec<_> = record.entries.iter().filter_map(|e| e.tier).collect();
        let locks: Vec<_> = record.entries.iter().flat_map(|e| &e.lock).map(|l| l.path()).collect();
        f.debug_struct("HeldContext").field("tiers", &tiers).field("locks", &locks).finish()
    }
}

/// One entry in a [`HeldContext`], removed when dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    context: Arc<HeldContext>,
    id: u64,
}

impl Registration {
    /// Removes the entry now, giving back the context it was in.
    pub(crate) fn leave(self) -> Arc<HeldContext> {
        let context = Arc::clone(&self.context);
        drop(self); // removes the entry
        context
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.context.remove(self.id);
    }
}
