//! A round of a worker's thread or task: pick, acquire one way, hold,
//! release, log.

use std::thread;
use std::time::Duration;

use packlock::{
    CancellationToken, PackLock, PackLockError, PackLockErrorOrCancelled, PackLockHold,
};

use super::Ctx;
use super::section::Entered;
use crate::mode::Mode;
use crate::rng::Rng;
use crate::stats::{Event, Flavour};

/// How often `try_acquire` is tried before giving up.
const TRY_ATTEMPTS: u32 = 20;

impl Ctx {
    pub fn sync_round(&self, rng: &mut Rng) {
        let op = self.draw(rng);
        let flavour = Flavour::SYNC[rng.index(Flavour::SYNC.len())];
        let Some(lock) = self.lock_for(&op) else { return };
        if let Some(hold) = self.acquire_sync(&lock, flavour, op.mode, rng) {
            let section = self.enter(&op, &hold);
            if !op.hold.is_zero() {
                thread::sleep(op.hold);
            }
            self.finish(section, hold);
        }
        if rng.percent(30) {
            thread::sleep(rng.micros(0, 500));
        }
    }

    pub async fn async_round(&self, rng: &mut Rng) {
        let op = self.draw(rng);
        let flavour = Flavour::ASYNC[rng.index(Flavour::ASYNC.len())];
        if let Some(lock) = self.lock_for(&op)
            && let Some(hold) = self.acquire_async(&lock, flavour, op.mode, rng).await
        {
            let section = self.enter(&op, &hold);
            pause(op.hold, rng.percent(50)).await;
            self.finish(section, hold);
        }
        tokio::task::yield_now().await;
    }

    /// Leaves the section, releases and logs the interval.
    fn finish(&self, section: Entered, hold: PackLockHold) {
        let line = section.leave(self, &hold);
        if let Err(e) = hold.release() {
            self.failed("release", &e);
        }
        self.log(&line);
    }

    fn acquire_sync(
        &self,
        lock: &PackLock,
        flavour: Flavour,
        mode: Mode,
        rng: &mut Rng,
    ) -> Option<PackLockHold> {
        match flavour {
            Flavour::Acquire => self.outcome(flavour, mode, lock.acquire()),
            Flavour::TryAcquire => self.try_with_retries(lock, mode, rng),
            Flavour::Timeout => {
                let timeout = rng.micros(0, 10_000);
                self.outcome(flavour, mode, lock.acquire_timeout(timeout))
            }
            _ => unreachable!("{} is not a sync flavour", flavour.name()),
        }
    }

    fn try_with_retries(&self, lock: &PackLock, mode: Mode, rng: &mut Rng) -> Option<PackLockHold> {
        for _ in 0..TRY_ATTEMPTS {
            match lock.try_acquire() {
                Ok(hold) => return self.outcome(Flavour::TryAcquire, mode, Ok(hold)),
                Err(PackLockError::Busy { .. }) => self.stats.event(Event::BusyRetry),
                Err(e) => return self.outcome(Flavour::TryAcquire, mode, Err(e)),
            }
            if self.stopping() {
                return None;
            }
            thread::sleep(rng.micros(20, 500));
        }
        self.stats.event(Event::TryGaveUp);
        None
    }

    async fn acquire_async(
        &self,
        lock: &PackLock,
        flavour: Flavour,
        mode: Mode,
        rng: &mut Rng,
    ) -> Option<PackLockHold> {
        let wait = rng.micros(0, 5_000);
        match flavour {
            Flavour::Async => self.outcome(flavour, mode, lock.acquire_async().await),
            Flavour::Cancellable => self.cancellable(lock, mode, rng.percent(10), wait).await,
            Flavour::Until => {
                let acquired = lock.acquire_until(tokio::time::sleep(wait)).await;
                self.cancel_outcome(flavour, mode, acquired)
            }
            Flavour::AsyncTimeout => {
                let acquired = lock.acquire_timeout_with(wait, tokio::time::sleep(wait)).await;
                self.outcome(flavour, mode, acquired)
            }
            Flavour::PollOnce => self.poll_once(lock, mode).await,
            Flavour::TokioTimeout => match tokio::time::timeout(wait, lock.acquire_async()).await {
                Ok(acquired) => self.outcome(flavour, mode, acquired),
                Err(_elapsed) => self.dropped(),
            },
            _ => unreachable!("{} is not an async flavour", flavour.name()),
        }
    }

    /// `acquire_cancellable` with a token cancelled before the call
    /// (`early`) or by another task after `after`.
    async fn cancellable(
        &self,
        lock: &PackLock,
        mode: Mode,
        early: bool,
        after: Duration,
    ) -> Option<PackLockHold> {
        let token = CancellationToken::new();
        let canceller = if early {
            token.cancel();
            None
        } else {
            let token = token.clone();
            Some(tokio::spawn(async move {
                tokio::time::sleep(after).await;
                token.cancel();
            }))
        };
        let acquired = lock.acquire_cancellable(&token).await;
        if let Some(canceller) = canceller {
            canceller.abort();
        }
        self.cancel_outcome(Flavour::Cancellable, mode, acquired)
    }

    /// Polls `acquire_async` once and drops it if it is not done.
    async fn poll_once(&self, lock: &PackLock, mode: Mode) -> Option<PackLockHold> {
        let mut acquire = Box::pin(lock.acquire_async());
        match futures_lite::future::poll_once(&mut acquire).await {
            Some(acquired) => self.outcome(Flavour::PollOnce, mode, acquired),
            None => self.dropped(),
        }
    }

    fn dropped(&self) -> Option<PackLockHold> {
        self.stats.event(Event::Dropped);
        None
    }

    /// Counts how an acquire ended; the hold if it got one.
    fn outcome(
        &self,
        flavour: Flavour,
        mode: Mode,
        acquired: Result<PackLockHold, PackLockError>,
    ) -> Option<PackLockHold> {
        match acquired {
            Ok(hold) => {
                self.stats.acquired(flavour, mode);
                Some(hold)
            }
            Err(PackLockError::TimedOut { .. }) => {
                self.stats.event(Event::TimedOut);
                None
            }
            Err(e) => {
                self.failed(flavour.name(), &e);
                None
            }
        }
    }

    fn cancel_outcome(
        &self,
        flavour: Flavour,
        mode: Mode,
        acquired: Result<PackLockHold, PackLockErrorOrCancelled>,
    ) -> Option<PackLockHold> {
        match acquired {
            Ok(hold) => self.outcome(flavour, mode, Ok(hold)),
            Err(e) if e.is_cancelled() => {
                self.stats.event(Event::Cancelled);
                None
            }
            Err(PackLockErrorOrCancelled::Lock(e)) => self.outcome(flavour, mode, Err(e)),
            Err(e) => {
                self.error(flavour.name(), &e);
                None
            }
        }
    }
}

/// Holds for `hold` (tokio's timer rounds up to a millisecond); a zero
/// hold sometimes yields, so the hold may move to another thread.
async fn pause(hold: Duration, yield_if_zero: bool) {
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    } else if yield_if_zero {
        tokio::task::yield_now().await;
    }
}
