//! The public ways to hold tiers ([`with_tier`], [`TierGuard`]) and to give
//! an async task a record of its own ([`with_tier_scope`]).
//!
//! Every thread has a record of its own. [`with_tier_scope`] gives a task a
//! record of its own: a future wrapper that installs it around each poll,
//! so the record follows the task to whichever worker thread polls it. A
//! scope first polled inside another one links to it as its parent: it
//! checks against everything up its chain of parents, and records in its
//! own context, so that what it takes and drops never touches the
//! parent's; whatever it still holds when it completes (a hold it returns)
//! passes to the parent.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::Tier;
use crate::held::{Entered, HeldContext, Registration};

/// Runs `f` with `tier` held by the current thread (or task, inside
/// [`with_tier_scope`]).
///
/// # Panics
///
/// Under [`TierPolicy::Panic`](crate::TierPolicy::Panic), when the thread or task already holds a
/// tier of equal or higher rank.
///
/// # Examples
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
/// # Examples
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
    /// Under [`TierPolicy::Panic`](crate::TierPolicy::Panic), when the thread or task already holds a
    /// tier of equal or higher rank.
    ///
    /// # Examples
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
/// # Examples
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
    /// # Examples
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
        this.context.link_to_enclosing_scope();
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
