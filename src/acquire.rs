//! The acquire pipeline, shared by every way of waiting, and the async
//! acquire that runs on it.
//!
//! 0. record the lock file in the caller's thread's or task's record of
//!    what it holds (failing a re-entrant acquire, reporting a tier out of
//!    order);
//! 1. take the in-process slot of the lock file;
//! 2. fast path: try the OS lock without blocking, on the caller's thread;
//! 3. slow path: block in the OS lock — on the caller's thread for sync
//!    callers, on the `blocking` pool for async ones;
//! 4. check the locked file is still the one the path names; if not (it
//!    was deleted, renamed away or renamed over), reopen and start again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;

use crate::claim::Claim;
use crate::held::{Checks, HeldContext, Registration};
use crate::holder::most_telling;
use crate::lock::Target;
use crate::offload;
use crate::registry::SlotGuard;
use crate::shared::Now;
use crate::sidecar::{Mode, Sidecar};
use crate::wait_log::WaitWatch;
use crate::{CancelSignal, PackLock, PackLockError, PackLockErrorOrCancelled, PackLockHold};

/// How an acquire may wait for the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all: report [`PackLockError::Busy`] instead.
    Never,
    /// By blocking the calling thread.
    Thread,
    /// By awaiting, without ever blocking the executor thread.
    Task,
}

impl PackLock {
    /// Acquires the lock from async code, on any executor (tokio, smol,
    /// `futures_lite::future::block_on`, ...), without blocking an executor
    /// thread.
    ///
    /// An uncontended acquire completes on the caller's thread with one
    /// non-blocking OS call. When another process holds the lock, the
    /// blocking OS wait runs on the `blocking` crate's thread pool; at most
    /// one such thread per lock file per process waits at a time, because
    /// the others queue in the in-process slot first.
    ///
    /// # Errors
    ///
    /// [`PackLockError::Reentrant`] when, inside
    /// [`with_tier_scope`](crate::with_tier_scope), this task already holds
    /// the lock file; [`PackLockError::Io`] when the OS lock call fails.
    ///
    /// # Example
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = packlock::PackLock::open(dir.path())?;
    /// let hold = lock.acquire_async().await?;
    /// // ... exclusive work, across .await points ...
    /// drop(hold);
    /// # Ok::<(), packlock::PackLockError>(())
    /// # }).unwrap();
    /// ```
    pub async fn acquire_async(&self) -> Result<PackLockHold, PackLockError> {
        run(self, Wait::Task, HeldContext::for_task()).await
    }

    /// Like [`acquire_async`](Self::acquire_async), but gives up as soon as
    /// `token` is cancelled — also if it already is. Takes a
    /// [`CancellationToken`](crate::CancellationToken), with the `tokio`
    /// feature a `tokio_util::sync::CancellationToken`, or anything else
    /// that implements [`CancelSignal`].
    ///
    /// When it gives up, nothing is held and nothing stays queued for the
    /// caller: see [`acquire_until`](Self::acquire_until) for the details.
    ///
    /// # Errors
    ///
    /// [`PackLockErrorOrCancelled::Cancelled`] when the token fired first,
    /// [`PackLockErrorOrCancelled::Lock`] when the acquire failed.
    ///
    /// # Example
    ///
    /// ```
    /// use packlock::{CancellationToken, PackLock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = PackLock::open(dir.path())?;
    /// let token = CancellationToken::new();
    /// let hold = lock.acquire_cancellable(&token).await?;
    /// # drop(hold);
    /// # Ok::<(), packlock::PackLockErrorOrCancelled>(())
    /// # }).unwrap();
    /// ```
    pub async fn acquire_cancellable(
        &self,
        token: &impl CancelSignal,
    ) -> Result<PackLockHold, PackLockErrorOrCancelled> {
        self.acquire_until(token.cancelled()).await
    }

    /// Acquires from async code unless `signal` completes first: any future
    /// works as a cancel signal (a timer, a channel, a shutdown notice).
    /// `signal` is polled before each attempt, so one that is already
    /// complete wins even over a free lock.
    ///
    /// Giving up is prompt and leaves nothing behind: a caller queued in
    /// the process returns at once and leaves the queue; a caller whose OS
    /// wait runs on the blocking pool returns at once too, and that pool
    /// thread — the only one for this lock file in this process — releases
    /// the lock the moment the kernel grants it. Dropping the returned
    /// future at any point has the same effect.
    ///
    /// # Errors
    ///
    /// [`PackLockErrorOrCancelled::Cancelled`] when `signal` completed first,
    /// [`PackLockErrorOrCancelled::Lock`] when the acquire failed.
    ///
    /// # Example
    ///
    /// ```
    /// use packlock::{PackLock, PackLockErrorOrCancelled};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = PackLock::open(dir.path())?;
    /// let _held = lock.acquire_async().await?;
    /// let (stop, stopped) = async_channel_stub();
    /// stop();
    /// let err = lock.acquire_until(stopped).await.unwrap_err();
    /// assert!(matches!(err, PackLockErrorOrCancelled::Cancelled));
    /// # Ok::<(), packlock::PackLockError>(())
    /// # }).unwrap();
    /// # fn async_channel_stub() -> (impl FnOnce(), impl std::future::Future<Output = ()>) {
    /// #     let token = packlock::CancellationToken::new();
    /// #     let signal = token.clone();
    /// #     (move || token.cancel(), async move { signal.cancelled().await })
    /// # }
    /// ```
    pub async fn acquire_until(
        &self,
        signal: impl Future<Output = ()>,
    ) -> Result<PackLockHold, PackLockErrorOrCancelled> {
        match self.acquire_unless(signal).await {
            Some(acquired) => Ok(acquired?),
            None => Err(PackLockErrorOrCancelled::Cancelled),
        }
    }

    /// Acquires from async code, giving up after `timeout`; `sleep` is your
    /// runtime's timer for that duration (for example
    /// `tokio::time::sleep(timeout)` or `async_io::Timer::after(timeout)`).
    /// The `tokio`, `smol` and `async-std` features wrap this for you:
    #[cfg_attr(
        any(feature = "tokio", feature = "smol", feature = "async-std"),
        doc = "see [`rt`](crate::rt)."
    )]
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "async-std")),
        doc = "see the `rt` module."
    )]
    ///
    /// # Errors
    ///
    /// [`PackLockError::TimedOut`] when `sleep` completed first; giving up
    /// leaves nothing behind, as with [`acquire_until`](Self::acquire_until).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use packlock::{PackLock, PackLockError};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let lock = PackLock::open(dir.path())?;
    /// let _held = lock.acquire_async().await?;
    /// let timeout = Duration::from_millis(10);
    /// let expired = std::future::ready(()); // stands in for a runtime timer
    /// let err = lock.acquire_timeout_with(timeout, expired).await.unwrap_err();
    /// assert!(matches!(err, PackLockError::TimedOut { .. }));
    /// # Ok::<(), PackLockError>(())
    /// # }).unwrap();
    /// ```
    pub async fn acquire_timeout_with(
        &self,
        timeout: Duration,
        sleep: impl Future<Output = ()>,
    ) -> Result<PackLockHold, PackLockError> {
        match self.acquire_unless(sleep).await {
            Some(acquired) => acquired,
            None => Err(self.timed_out(timeout)),
        }
    }

    /// The async pipeline raced against `stop`, which is polled first;
    /// `None` when `stop` won (the pipeline future is then dropped, which
    /// is what makes giving up leave nothing behind).
    async fn acquire_unless(
        &self,
        stop: impl Future<Output = ()>,
    ) -> Option<Result<PackLockHold, PackLockError>> {
        let stopped = async {
            stop.await;
            None
        };
        let acquire = async { Some(run(self, Wait::Task, HeldContext::for_task()).await) };
        future::or(stopped, acquire).await
    }

    pub(crate) fn timed_out(&self, timeout: Duration) -> PackLockError {
        PackLockError::TimedOut { path: self.path().to_path_buf(), timeout }
    }
}

/// The one acquire pipeline. With [`Wait::Never`] and [`Wait::Thread`] the
/// future never returns `Pending`, so sync callers can poll it once.
/// `held` is the caller's record of held tiers and locks (none for async
/// code outside a tier scope).
pub(crate) async fn run(
    lock: &PackLock,
    wait: Wait,
    mut held: Option<Arc<HeldContext>>,
) -> Result<PackLockHold, PackLockError> {
    let mut waiter =
        Waiter { wait, log_after: lock.options().log_wait_after, watch: WaitWatch::default() };
    let mut target = lock.target()?;
    // Step 0: record the lock file as the caller's (a `try_acquire` cannot
    // deadlock, so it is not checked).
    let mut checks = if wait == Wait::Never { Checks::Nothing } else { Checks::ReentryAndOrder };
    loop {
        let registration = match held.take() {
            Some(held) => Some(held.enter_lock(Arc::clone(&target), lock.tier(), checks)?),
            None => None,
        };
        let claim = take_slot(Arc::clone(&target), lock.mode(), &mut waiter).await?;
        let claim = match lock.mode() {
            Mode::Exclusive => lock_os(claim, &mut waiter).await?,
            Mode::Shared => share_os_lock(claim, &mut waiter).await?,
        };
        if claim.sidecar().is_at_path()? {
            if let Some(since) = waiter.watch.since() {
                let path = lock.path().display();
                log::debug!("acquired lock on {path} after {:?}", since.elapsed());
            }
            if let (true, Some(label)) = (claim.took_the_lock(), &lock.options().label) {
                claim.sidecar().record_holder(label);
            }
            return Ok(PackLockHold::new(claim, registration, lock.tier()));
        }
        log::debug!("lock file {} was replaced while we waited; reopening", lock.path().display());
        drop(claim);
        // The entry names the old file: give it up, so that the next pass
        // records the new one, and checks that the caller does not hold the
        // new one already. The tier order was checked (and reported) once.
        held = registration.map(Registration::leave);
        if checks == Checks::ReentryAndOrder {
            checks = Checks::Reentry;
        }
        lock.reopen(&target)?;
        target = lock.target()?;
    }
}

/// How one acquire waits, and what it notes while it does.
struct Waiter {
    wait: Wait,
    log_after: Duration,
    watch: WaitWatch,
}

impl Waiter {
    /// The acquire cannot have the lock at once: fails with `Busy` (naming
    /// the holder where known) if it may not wait; otherwise notes the wait.
    fn must_wait(&mut self, target: &Arc<Target>) -> Result<(), PackLockError> {
        if self.wait == Wait::Never {
            return Err(busy(&target.sidecar));
        }
        self.watch.waiting(target, self.log_after);
        Ok(())
    }
}

/// `Busy`, naming the current holder of `sidecar` where it can be known.
fn busy(sidecar: &Sidecar) -> PackLockError {
    let holder = most_telling(sidecar.holders());
    PackLockError::Busy { path: sidecar.path().to_path_buf(), holder }
}

/// Step 1: the in-process slot, for writing (exclusive) or reading (shared).
async fn take_slot(
    target: Arc<Target>,
    mode: Mode,
    waiter: &mut Waiter,
) -> Result<Claim, PackLockError> {
    let slot = &target.slot;
    let ready = match mode {
        Mode::Exclusive => slot.try_write_arc().map(SlotGuard::Exclusive),
        Mode::Shared => slot.try_read_arc().map(SlotGuard::Shared),
    };
    if let Some(guard) = ready {
        return Ok(Claim::new(guard, target));
    }
    waiter.must_wait(&target)?;
    let guard = match (mode, waiter.wait) {
        (Mode::Exclusive, Wait::Thread) => SlotGuard::Exclusive(slot.write_arc_blocking()),
        (Mode::Exclusive, _) => SlotGuard::Exclusive(slot.write_arc().await),
        (Mode::Shared, Wait::Thread) => SlotGuard::Shared(slot.read_arc_blocking()),
        (Mode::Shared, _) => SlotGuard::Shared(slot.read_arc().await),
    };
    Ok(Claim::new(guard, target))
}

/// Steps 2 and 3 for an exclusive claim: the OS lock, at once if free,
/// else by waiting as the waiter may.
async fn lock_os(mut claim: Claim, waiter: &mut Waiter) -> Result<Claim, PackLockError> {
    if claim.try_lock()? {
        return Ok(claim);
    }
    let (claim, ()) = wait_for_os_lock(claim, (), waiter).await?;
    Ok(claim)
}

/// Steps 2 and 3 for a shared claim: join the process's shared OS lock if
/// another shared hold has it; otherwise take it, holding the `taking`
/// mutex so that the other readers of this process wait here rather than
/// in the kernel.
///
/// An acquire that may not wait is `Busy` only when an exclusive lock
/// exists: when the OS refuses it, or when another acquire of this process
/// waits in the kernel because the OS refused it. It waits for another
/// acquire's non-blocking attempt rather than mistake it for a conflict.
async fn share_os_lock(mut claim: Claim, waiter: &mut Waiter) -> Result<Claim, PackLockError> {
    let lease = Arc::clone(claim.shared_lease());
    if claim.try_join(&lease) {
        return Ok(claim);
    }
    let taking = match (waiter.wait, lease.try_take()) {
        (_, Some(taking)) => taking,
        (Wait::Never, None) => match lease.join_or_take_now() {
            Now::Joined(share) => {
                claim.joined(share);
                return Ok(claim);
            }
            Now::Taking(taking) => taking,
            Now::Busy => return Err(busy(claim.sidecar())),
        },
        (wait, None) => {
            waiter.must_wait(claim.target())?;
            lease.take(wait == Wait::Thread).await
        }
    };
    // Another reader may have taken it while we waited for `taking`.
    if claim.try_join(&lease) || claim.try_lock()? {
        return Ok(claim);
    }
    waiter.must_wait(claim.target())?;
    taking.waiting_in_os();
    let (claim, _taking) = wait_for_os_lock(claim, taking, waiter).await?;
    Ok(claim)
}

/// Step 3: the OS lock is busy, so wait for it as the waiter may. An async
/// wait runs on the blocking pool (or, in a forked child, on a thread of
/// its own: see [`offload`]), and the job owns the claim and `passenger`
/// (whatever else must stay held while it waits), so a caller that goes
/// away leaves a job that releases everything once granted.
async fn wait_for_os_lock<P: Send + 'static>(
    claim: Claim,
    passenger: P,
    waiter: &mut Waiter,
) -> Result<(Claim, P), PackLockError> {
    waiter.must_wait(claim.target())?;
    let path = claim.sidecar().path();
    log::debug!("waiting for lock on {}: another process holds it", path.display());
    let path = path.to_path_buf();
    let job = move || claim.lock_blocking().map(|claim| (claim, passenger));
    match waiter.wait {
        Wait::Task => offload::unblock(job).await.map_err(|e| PackLockError::io(&path, e))?,
        _ => job(),
    }
}
