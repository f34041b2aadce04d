//! Lock-ordering tiers, and the record of what each thread or task holds,
//! which both checks the order and catches re-entrant acquires.
//!
//! Every thread has a context of its own. [`with_tier_scope`] gives a task a
//! context of its own: a future wrapper that installs it around each poll,
//! so the record follows the task to whichever worker thread polls it. A
//! scope first polled inside another one links to it as its parent: it
//! checks against everything up its chain of parents, and records in its
//! own context, so that what it takes and drops never touches the
//! parent's; whatever it still holds when it completes (a hold it returns)
//! passes to the parent.
//! Each registration — a [`TierGuard`], or an acquire from its first poll
//! until its hold is dropped — remembers the context it went into and
//! removes exactly its own entry when dropped, so guards dropped out of
//! order or on another thread never corrupt a record.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};

use crate::PackLockError;
use crate::lock::Target;

/// A rank in a program's global lock order. Locks must be taken in strictly
/// increasing rank: holding a tier, a thread or task may only take higher
/// ones. Two code paths that take the same locks in opposite orders can
/// deadlock; ranks make the order explicit and checked.
///
/// # Example
///
/// ```
/// use packlock::Tier;
///
/// const WORKSPACE: Tier = Tier::new(0, "workspace-sync");
/// const PER_PACK: Tier = Tier::new(2, "per-pack");
/// assert!(WORKSPACE.rank() < PER_PACK.rank());
/// assert_eq!(PER_PACK.to_string(), "`per-pack` (rank 2)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tier {
    rank: u32,
    name: &'static str,
}

impl Tier {
    /// A tier of rank `rank`, named `name` in messages.
    ///
    /// # Example
    ///
    /// ```
    /// const BACKEND: packlock::Tier = packlock::Tier::new(3, "backend");
    /// assert_eq!(BACKEND.name(), "backend");
    /// ```
    pub const fn new(rank: u32, name: &'static str) -> Self {
        Self { rank, name }
    }

    /// The rank: locks are taken in strictly increasing rank.
    ///
    /// # Example
    ///
    /// ```
    /// assert_eq!(packlock::Tier::new(4, "manifest").rank(), 4);
    /// ```
    pub const fn rank(&self) -> u32 {
        self.rank
    }

    /// The name used in messages.
    ///
    /// # Example
    ///
    /// ```
    /// assert_eq!(packlock::Tier::new(4, "manifest").name(), "manifest");
    /// ```
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` (rank {})", self.name, self.rank)
    }
}

/// What happens when a tier is taken out of order.
///
/// # Example
///
/// ```
/// use packlock::{TierPolicy, set_tier_policy, tier_policy};
///
/// set_tier_policy(TierPolicy::Log);
/// assert_eq!(tier_policy(), TierPolicy::Log);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TierPolicy {
    /// Panic with a message naming both tiers and both locks: the default
    /// in debug builds, so tests find ordering bugs.
    Panic,
    /// Log the same message with `log::error!` and go on: the default in
    /// release builds, so a production program keeps running.
    Log,
}

const DEFAULT_POLICY: u8 = if cfg!(debug_assertions) { 0 } else { 1 };
static POLICY: AtomicU8 = AtomicU8::new(DEFAULT_POLICY);

/// Sets what happens on a tier violation, for the whole process.
///
/// # Example
///
/// ```
/// packlock::set_tier_policy(packlock::TierPolicy::Panic);
/// ```
pub fn set_tier_policy(policy: TierPolicy) {
    let value = match policy {
        TierPolicy::Panic => 0,
        TierPolicy::Log => 1,
    };
    POLICY.store(value, Ordering::Relaxed);
}

/// The current tier violation policy: [`TierPolicy::Panic`] in debug builds
/// and [`TierPolicy::Log`] in release builds unless [`set_tier_policy`]
/// changed it.
///
/// # Example
///
/// ```
/// let expected = if cfg!(debug_assertions) {
///     packlock::TierPolicy::Panic
/// } else {
///     packlock::TierPolicy::Log
/// };
/// assert_eq!(packlock::tier_policy(), expected);
/// ```
pub fn tier_policy() -> TierPolicy {
    match POLICY.load(Ordering::Relaxed) {
        0 => TierPolicy::Panic,
        _ => TierPolicy::Log,
    }
}

/// Runs `f` with `tier` held by the current thread (or task, inside
/// [`with_tier_scope`]).
///
/// # Panics
///
/// Under [`TierPolicy::Panic`], when the thread or task already holds a
/// tier of equal or higher rank.
///
/// # Example
///
/// ```
/// use packlock::{Tier, with_tier};
///
/// const WORKSPACE: Tier = Tier::new(0, "workspace-sync");
/// const PER_PACK: Tier = Tier::new(2, "per-pack");
/// let answer = with_tier(WORKSPACE, || with_tier(PER_PACK, || 42));
/// assert_eq!(answer, 42);
/// ```
pub fn with_tier<R>(tier: Tier, f: impl FnOnce() -> R) -> R {
    let _guard = TierGuard::push(tier);
    f()
}

/// Holds a tier until dropped: [`with_tier`] without the closure, for code
/// that holds a tier across `.await` points (inside [`with_tier_scope`]).
///
/// A guard removes its own entry when dropped — wherever and in whatever
/// order — so it never disturbs other entries.
///
/// # Example
///
/// ```
/// use packlock::{Tier, TierGuard};
///
/// let _workspace = TierGuard::push(Tier::new(0, "workspace-sync"));
/// let _pack = TierGuard::push(Tier::new(2, "per-pack"));
/// ```
#[must_use = "the tier is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct TierGuard {
    _registration: Registration,
}

impl TierGuard {
    /// Records `tier` as held by the current thread (or task, inside
    /// [`with_tier_scope`]) until the guard is dropped.
    ///
    /// # Panics
    ///
    /// Under [`TierPolicy::Panic`], when the thread or task already holds a
    /// tier of equal or higher rank.
    ///
    /// # Example
    ///
    /// ```
    /// let guard = packlock::TierGuard::push(packlock::Tier::new(1, "scheduler"));
    /// drop(guard);
    /// ```
    pub fn push(tier: Tier) -> Self {
        Self { _registration: HeldContext::for_thread().enter_tier(tier) }
    }
}

/// Runs `future` as a task with a tier and lock record of its own.
///
/// Inside it, [`TierGuard`]s, [`with_tier`] and every acquire (sync or
/// async) check and record against the task's record, even when the task
/// moves between the worker threads of a work-stealing executor. Wrap each
/// task's top-level future. Async acquires outside any scope have no task
/// identity: their tiers are not checked and re-entrancy is not detected.
///
/// # Nested scopes
///
/// A scope that is first polled while another scope is being polled — a
/// library's scoped future awaited by a scoped caller, say — is part of
/// that caller's task: it checks its acquires and tiers against what every
/// enclosing scope holds (re-acquiring a lock file the caller holds fails
/// with [`Reentrant`](crate::PackLockError::Reentrant), a tier at or below
/// the caller's is a violation), while recording its own holds apart, so
/// that those it drops are gone from the caller's view and sibling scopes
/// do not see each other's. Holds still alive when it completes (returned
/// to the caller, typically) then count as the caller's.
///
/// The link is made at the first poll, not at creation: the scope that
/// polls a future is the one that waits for it (a scope created in one task
/// and awaited in another belongs to the second), while a scope handed to
/// an executor as a task of its own is polled by the executor, outside any
/// scope, and so checks only its own holds.
///
/// # Example
///
/// ```
/// use packlock::{PackLock, Tier, with_tier_scope};
///
/// const WORKSPACE: Tier = Tier::new(0, "workspace-sync");
/// const PER_PACK: Tier = Tier::new(2, "per-pack");
///
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let ws = PackLock::builder(dir.path()).file_name(".sync.lock").tier(WORKSPACE).open()?;
/// let pack = PackLock::builder(dir.path().join("foo")).tier(PER_PACK).open()?;
/// with_tier_scope(async {
///     let _w = ws.acquire_async().await?;
///     let _p = pack.acquire_async().await?; // ok: 0 then 2
///     Ok::<(), packlock::PackLockError>(())
/// })
/// .await?;
/// # Ok::<(), packlock::PackLockError>(())
/// # }).unwrap();
/// ```
pub fn with_tier_scope<F: Future>(future: F) -> TierScope<F> {
    TierScope { future, context: Arc::default() }
}

pin_project_lite::pin_project! {
    /// The future returned by [`with_tier_scope`].
    ///
    /// # Example
    ///
    /// ```
    /// let scoped: packlock::TierScope<_> = packlock::with_tier_scope(async { 1 });
    /// assert_eq!(futures_lite::future::block_on(scoped), 1);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct TierScope<F> {
        #[pin]
        future: F,
        context: Arc<HeldContext>,
    }
}

impl<F: Future> Future for TierScope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Linked to the enclosing scope (if any) before ours is installed.
        this.context.parent.get_or_init(HeldContext::for_task);
        let entered = Entered::enter(Arc::clone(this.context));
        let poll = this.future.poll(cx);
        drop(entered);
        if poll.is_ready() {
            this.context.hand_over_to_parent();
        }
        poll
    }
}

impl<F> fmt::Debug for TierScope<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TierScope").field("record", &self.context).finish_non_exhaustive()
    }
}

thread_local! {
    /// The context of the scope being polled on this thread, if any.
    static SCOPE: RefCell<Option<Arc<HeldContext>>> = const { RefCell::new(None) };
    /// This thread's own context, used outside scopes.
    static THREAD: Arc<HeldContext> = Arc::default();
}

/// Installs a scope's context for one poll; restores the previous one when
/// dropped, also when the poll panics.
struct Entered {
    previous: Option<Arc<HeldContext>>,
}

impl Entered {
    fn enter(context: Arc<HeldContext>) -> Self {
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
    record: Mutex<Record>,
    /// A scope's enclosing scope, set at its first poll (`None` when there
    /// is none, and for threads).
    parent: OnceLock<Option<Arc<HeldContext>>>,
}

/// The entries of a [`HeldContext`], each with an id of its own (unique in
/// the process, since entries can move to a parent) so that a
/// [`Registration`] removes exactly its entry.
#[derive(Default)]
struct Record {
    entries: Vec<Entry>,
    /// Where this scope's entries went when it completed: its parent.
    handed_to: Option<Arc<HeldContext>>,
}

static NEXT_ENTRY_ID: AtomicU64 = AtomicU64::new(0);

/// A tier guard (a tier, no lock) or an acquire (a lock, and its tier if
/// it has one).
struct Entry {
    id: u64,
    tier: Option<Tier>,
    lock: Option<Arc<Target>>,
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
        target: Arc<Target>,
        tier: Option<Tier>,
        checks: Checks,
    ) -> Result<Registration, PackLockError> {
        let mut record = self.record();
        let held_up_the_chain = || self.ancestors().any(|a| a.record().holds(&target));
        if checks != Checks::Nothing && (record.holds(&target) || held_up_the_chain()) {
            let path = target.sidecar.path().to_path_buf();
            return Err(PackLockError::Reentrant { path });
        }
        let violation = match (checks, tier) {
            (Checks::ReentryAndOrder, Some(tier)) => self.violation(&record, tier, Some(&target)),
            _ => None,
        };
        let id = record.push(tier, Some(target));
        drop(record);
        Ok(self.registered(id, violation))
    }

    /// Records `tier` as held here, reporting it if it is out of order.
    fn enter_tier(self: Arc<Self>, tier: Tier) -> Registration {
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
            match tier_policy() {
                TierPolicy::Panic => panic!("{message}"),
                TierPolicy::Log => log::error!("{message}"),
            }
        }
        registration
    }

    /// Records the lock `target` (of `tier`) as held here, unchecked: for
    /// a hold that was acquired elsewhere and now belongs here.
    pub(crate) fn adopt(self: Arc<Self>, target: Arc<Target>, tier: Option<Tier>) -> Registration {
        let id = self.record().push(tier, Some(target));
        Registration { context: self, id }
    }

    /// The violation, if any, of taking `tier` (for the lock `target`)
    /// here, where `record` is ours, locked, and the enclosing scopes'
    /// records count too (each locked in turn, child before parent).
    fn violation(&self, record: &Record, tier: Tier, target: Option<&Target>) -> Option<String> {
        let ours = record.highest_at_or_above(tier);
        let theirs = self.ancestors().filter_map(|a| a.record().highest_at_or_above(tier));
        let (held, held_lock) = ours.into_iter().chain(theirs).max_by_key(|(held, _)| held.rank)?;
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

    /// At the scope's completion, passes what it still holds (holds it
    /// returned, say) to its parent, which now owns them.
    fn hand_over_to_parent(&self) {
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

    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Record {
    /// Whether the lock file of `target` is held here.
    fn holds(&self, target: &Target) -> bool {
        let key = target.sidecar.key();
        self.entries.iter().flat_map(|e| &e.lock).any(|held| held.sidecar.key() == key)
    }

    /// The highest tier held (or being acquired) here of rank `tier`'s or
    /// above, with its lock if it is one's: taking `tier` is out of order
    /// if there is one.
    fn highest_at_or_above(&self, tier: Tier) -> Option<(Tier, Option<Arc<Target>>)> {
        self.entries
            .iter()
            .filter_map(|e| Some((e.tier?, e.lock.clone())))
            .filter(|(held, _)| held.rank >= tier.rank)
            .max_by_key(|(held, _)| held.rank)
    }

    fn push(&mut self, tier: Option<Tier>, lock: Option<Arc<Target>>) -> u64 {
        let id = NEXT_ENTRY_ID.fetch_add(1, Ordering::Relaxed);
        self.entries.push(Entry { id, tier, lock });
        id
    }
}

fn for_lock(target: Option<&Target>) -> String {
    target.map(|t| format!(" (lock `{}`)", t.sidecar.path().display())).unwrap_or_default()
}

impl fmt::Debug for HeldContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = self.record();
        let tiers: Vec<_> = record.entries.iter().filter_map(|e| e.tier).collect();
        let locks: Vec<_> =
            record.entries.iter().flat_map(|e| &e.lock).map(|l| l.sidecar.path()).collect();
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
