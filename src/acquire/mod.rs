//! The acquire pipeline, shared by every way of waiting: the sync and
//! async acquires of [`PackLock`](crate::PackLock) only choose how it
//! waits ([`Wait`]) and how it is driven (polled once, parked until a
//! deadline, or awaited).
//!
//! 0. record the lock in the caller's thread's or task's record of what it
//!    holds (failing a re-entrant acquire, reporting a tier out of order);
//! 1. take the lock's in-process slot;
//! 2. fast path: try the backend's lock without waiting for it, on the
//!    caller's thread (for an async caller of a remote backend, on the
//!    `blocking` pool); a backend out of reach sends an acquire that may
//!    wait on to step 3;
//! 3. slow path: block in the backend's lock — on the caller's thread for
//!    sync callers, on the `blocking` pool for async ones;
//! 4. confirm the grant (for a file: the lock is still the one the path
//!    names; it may have been deleted, renamed away or renamed over); if
//!    not, reopen and start again.

pub(crate) mod claim;
pub(crate) mod drive;
mod offload;
mod wait_log;

pub(crate) use offload::note_process;

use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Interrupt, LockBackend, Mode};
use crate::held::{Checks, HeldContext, Registration};
use crate::holder::most_telling;
use crate::options::Options;
use crate::registry::SlotGuard;
use crate::shared_lease::Taking;
use crate::target::{CurrentTarget, Target};
use crate::{PackLockError, PackLockHold};
use claim::Claim;
use wait_log::WaitWatch;

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

/// The one acquire pipeline. With [`Wait::Never`] and [`Wait::Thread`] the
/// future never returns `Pending`, so sync callers can poll it once.
/// `held` is the caller's record of held tiers and locks (none for async
/// code outside a tier scope).
pub(crate) async fn run(
    current: &CurrentTarget,
    options: &Options,
    wait: Wait,
    mut held: Option<Arc<HeldContext>>,
) -> Result<PackLockHold, PackLockError> {
    let mut waiter =
        Waiter { wait, log_after: options.log_wait_after, watch: WaitWatch::default() };
    let mode = options.mode();
    let mut target = current.get()?;
    // Step 0: record the lock file as the caller's (a `try_acquire` cannot
    // deadlock, so it is not checked).
    let mut checks = if wait == Wait::Never { Checks::Nothing } else { Checks::ReentryAndOrder };
    loop {
        let registration = match held.take() {
            Some(held) => {
                Some(held.enter_lock(Arc::clone(&target.backend), options.tier, checks)?)
            }
            None => None,
        };
        let claim = take_slot(Arc::clone(&target), mode, &mut waiter).await?;
        let claim = match mode {
            Mode::Exclusive => lock_os(claim, &mut waiter).await?,
            Mode::Shared => share_os_lock(claim, &mut waiter).await?,
        };
        let backend = Arc::clone(&target.backend);
        if claim.confirm()? {
            if let Some(since) = waiter.watch.since() {
                let path = backend.path().display();
                log::debug!("acquired lock on {path} after {:?}", since.elapsed());
            }
            // Shared holds write nothing: holders of other processes may
            // be writing at the same moment.
            if let (Mode::Exclusive, Some(label)) = (mode, &options.label) {
                record_holder(&backend, label, wait).await;
            }
            return Ok(PackLockHold::new(claim, registration, options.tier));
        }
        log::debug!("lock {} was replaced while we waited; reopening", backend.path().display());
        drop(claim);
        // The entry names the old file: give it up, so that the next pass
        // records the new one, and checks that the caller does not hold the
        // new one already. The tier order was checked (and reported) once.
        held = registration.map(Registration::leave);
        if checks == Checks::ReentryAndOrder {
            checks = Checks::Reentry;
        }
        current.reopen(&target)?;
        target = current.get()?;
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
            return Err(busy(&*target.backend));
        }
        self.watch.waiting(&target.backend, self.log_after);
        Ok(())
    }
}

/// `Busy`, naming the current holder of `lock` where it can be known.
fn busy(lock: &dyn LockBackend) -> PackLockError {
    let holder = most_telling(lock.holders());
    PackLockError::Busy { path: lock.path().to_path_buf(), holder }
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
async fn lock_os(claim: Claim, waiter: &mut Waiter) -> Result<Claim, PackLockError> {
    let (claim, _, got) = try_lock(claim, None, waiter).await?;
    if got {
        return Ok(claim);
    }
    let (claim, _) = wait_for_os_lock(claim, None, waiter).await?;
    Ok(claim)
}

/// Step 2: the backend's lock, without waiting for it: on the caller's
/// thread, unless the caller is async and the backend is remote (a round
/// trip, longer when the far end is slow or gone), which runs on the
/// blocking pool like a wait, owning the claim and `taking` (a shared
/// claim's right to wait in the kernel next, which must stay held while
/// it runs) so that a caller that goes away leaves nothing half done. A
/// backend out of reach for now (a lock server restarting, a connection
/// cut) fails an acquire that may not wait; one that may goes on to wait,
/// and its wait rides the outage out until had or until its deadline.
async fn try_lock(
    mut claim: Claim,
    taking: Option<Taking>,
    waiter: &Waiter,
) -> Result<(Claim, Option<Taking>, bool), PackLockError> {
    let (claim, taking, tried) = if waiter.wait == Wait::Task && claim.backend().is_remote() {
        let path = claim.backend().path().to_path_buf();
        let job = move || {
            let tried = claim.try_lock(taking.as_ref());
            (claim, taking, tried)
        };
        offload::unblock(job).await.map_err(|e| PackLockError::io(&path, e))?
    } else {
        let tried = claim.try_lock(taking.as_ref());
        (claim, taking, tried)
    };
    match tried {
        Ok(got) => Ok((claim, taking, got)),
        Err(e) if waiter.wait != Wait::Never && e.is_transient() => {
            log::debug!("{e}; waiting for it");
            Ok((claim, taking, false))
        }
        Err(e) => Err(e),
    }
}

/// Records the holder's label (best effort), off the executor thread for
/// an async caller of a remote backend.
async fn record_holder(backend: &Arc<dyn LockBackend>, label: &str, wait: Wait) {
    if wait == Wait::Task && backend.is_remote() {
        let (backend, label) = (Arc::clone(backend), label.to_string());
        if let Err(e) = offload::unblock(move || backend.record_holder(&label)).await {
            log::debug!("cannot record the holder: {e}");
        }
    } else {
        backend.record_holder(label);
    }
}

/// Steps 2 and 3 for a shared claim: join the process's shared OS lock if
/// another shared hold has it, or take it (see [`SharedLease`]).
///
/// An acquire that may not wait makes one attempt, which never waits for
/// another acquire: it is `Busy` only when an exclusive lock is in the way
/// (the OS refuses, or another acquire of this process waits in the kernel
/// because the OS refused it). An acquire that may wait first gets the
/// right to wait in the kernel ([`Taking`]), so that the other readers of
/// this process wait here rather than there.
///
/// [`SharedLease`]: crate::shared_lease::SharedLease
async fn share_os_lock(mut claim: Claim, waiter: &mut Waiter) -> Result<Claim, PackLockError> {
    if waiter.wait == Wait::Never {
        let (claim, _, got) = try_lock(claim, None, waiter).await?;
        return if got { Ok(claim) } else { Err(busy(claim.backend())) };
    }
    if claim.try_join() {
        return Ok(claim);
    }
    let lease = Arc::clone(claim.shared_lease());
    let taking = match lease.try_take() {
        Some(taking) => taking,
        None => {
            waiter.must_wait(claim.target())?;
            lease.take(waiter.wait == Wait::Thread).await
        }
    };
    // The attempt owns `taking`: another reader of this process must not
    // wait in the kernel while it runs, even if this acquire is dropped.
    let (claim, taking, got) = try_lock(claim, Some(taking), waiter).await?;
    if got {
        return Ok(claim);
    }
    let (claim, _taking) = wait_for_os_lock(claim, taking, waiter).await?;
    Ok(claim)
}

/// Step 3: the OS lock is busy, so wait for it as the waiter may. An async
/// wait runs on a thread of its own (see [`offload`]), and the job owns
/// the claim and `taking` (a
/// shared claim's right to wait in the kernel), so a caller that goes away
/// leaves a job that releases everything once granted — and, for a
/// backend whose wait can be stopped, fires the wait's [`Interrupt`] so
/// that the job ends at once with nothing held.
async fn wait_for_os_lock(
    claim: Claim,
    taking: Option<Taking>,
    waiter: &mut Waiter,
) -> Result<(Claim, Option<Taking>), PackLockError> {
    waiter.must_wait(claim.target())?;
    let path = claim.backend().path();
    log::debug!("waiting for lock on {}: another process holds it", path.display());
    let path = path.to_path_buf();
    let interrupt = Interrupt::default();
    let job = {
        let interrupt = interrupt.clone();
        move || claim.lock_blocking(&interrupt).map(|claim| (claim, taking))
    };
    match waiter.wait {
        Wait::Task => {
            let abandoned = InterruptOnDrop(Some(interrupt));
            let done = offload::wait(job).await;
            abandoned.disarm();
            done.map_err(|e| PackLockError::io(&path, e))?
        }
        _ => job(),
    }
}

/// Fires a wait's [`Interrupt`] if dropped before [`disarm`](Self::disarm):
/// the future awaiting the pool job was dropped before the job finished.
struct InterruptOnDrop(Option<Interrupt>);

impl InterruptOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(interrupt) = self.0.take() {
            interrupt.fire();
        }
    }
}
