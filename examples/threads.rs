//! One lock shared by plain threads, with no async runtime.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example threads
//! ```
//!
//! The main thread holds the lock ([`PackLock::acquire`]) while other
//! threads, sharing a `&PackLock` through `std::thread::scope`:
//!
//! 1. fail at once with [`PackLock::try_acquire`] ([`PackLockError::Busy`]);
//! 2. queue in the blocking [`PackLock::acquire`];
//! 3. wait in [`PackLock::acquire_cancellable`], driven by
//!    `futures_lite::future::block_on`, with a
//!    [`packlock::CancellationToken`] that another thread cancels after
//!    100 ms: the acquire gives up at once, and the program prints how long
//!    it took to return after `cancel()`;
//! 4. give up after 150 ms in [`PackLock::acquire_timeout`]
//!    ([`PackLockError::TimedOut`]).
//!
//! Then the main thread releases, the waiter gets the lock, and four
//! worker threads take turns incrementing a counter under the lock.
//!
//! Events are ordered by joining threads, never by sleeping, so the output
//! is the same on every run except for the measured times and the temp
//! path. Do not call a blocking acquire on a thread that already holds the
//! same lock: it would wait for itself.

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

use futures_lite::future;
use packlock::{CancellationToken, PackLock, PackLockError, PackLockErrorOrCancelled};

/// When the canceller thread cancels the token.
const CANCEL_AFTER: Duration = Duration::from_millis(100);
/// How long `acquire_timeout` may wait.
const TIMEOUT: Duration = Duration::from_millis(150);
/// Worker threads, and locked increments per worker.
const WORKERS: u64 = 4;
const ROUNDS: u64 = 25;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let lock = PackLock::open(dir.path())?;
    println!("lock file: {}", lock.path().display());
    let lock = &lock;

    thread::scope(|scope| {
        // Taken inside the scope, so that an early error return releases
        // it before the scope waits for the other threads.
        let hold = lock.acquire()?;
        println!("[main]    holding the lock");

        // try_acquire never waits.
        match join(scope.spawn(|| lock.try_acquire()))? {
            Err(PackLockError::Busy { .. }) => println!("[try]     try_acquire(): busy"),
            Err(other) => return Err(other.into()),
            Ok(_) => return Err("try_acquire() got a lock that is held".into()),
        }

        // A plain waiter: blocks its thread until the main thread lets go.
        let waiter = scope.spawn(|| {
            let start = Instant::now();
            let hold = lock.acquire()?;
            let waited = start.elapsed();
            hold.release()?;
            Ok::<_, PackLockError>(waited)
        });
        println!("[waiter]  waiting in acquire()");

        // A cancellable waiter, and a thread that cancels its token.
        let token = CancellationToken::new();
        let canceller = scope.spawn({
            let token = token.clone();
            move || {
                thread::sleep(CANCEL_AFTER);
                let cancelled_at = Instant::now();
                token.cancel();
                cancelled_at
            }
        });
        let cancellable = scope.spawn(move || {
            let start = Instant::now();
            let outcome = future::block_on(lock.acquire_cancellable(&token));
            (outcome, start, Instant::now())
        });
        let (outcome, start, returned_at) = join(cancellable)?;
        let cancelled_at = join(canceller)?;
        match outcome {
            Err(PackLockErrorOrCancelled::Cancelled) => println!(
                "[cancel]  acquire_cancellable(): gave up after {:.0?}, {:.1?} after cancel()",
                returned_at - start,
                returned_at.saturating_duration_since(cancelled_at)
            ),
            Err(other) => return Err(other.into()),
            Ok(_) => return Err("acquire_cancellable() got a lock that is held".into()),
        }

        // A bounded blocking wait.
        let timed = scope.spawn(|| {
            let start = Instant::now();
            (lock.acquire_timeout(TIMEOUT), start.elapsed())
        });
        match join(timed)? {
            (Err(PackLockError::TimedOut { .. }), elapsed) => {
                println!("[timeout] acquire_timeout({TIMEOUT:?}): timed out after {elapsed:.0?}")
            }
            (Err(other), _) => return Err(other.into()),
            (Ok(_), _) => return Err("acquire_timeout() got a lock that is held".into()),
        }

        // Let go: the waiter gets the lock.
        println!("[main]    releasing");
        hold.release()?;
        let waited = join(waiter)??;
        println!("[waiter]  got the lock after {waited:.0?}");
        Ok::<_, Box<dyn Error>>(())
    })?;

    // Workers take turns: each increment is a read and a write with a
    // yield between them, so only mutual exclusion keeps the count exact.
    let counter = AtomicU64::new(0);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..ROUNDS {
                        let hold = lock.acquire()?;
                        let value = counter.load(Ordering::Relaxed);
                        thread::yield_now();
                        counter.store(value + 1, Ordering::Relaxed);
                        hold.release()?;
                    }
                    Ok::<_, PackLockError>(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| Ok::<_, Box<dyn Error>>(join(worker)??))
    })?;
    println!(
        "[workers] {WORKERS} threads x {ROUNDS} locked increments: counter = {}",
        counter.load(Ordering::Relaxed)
    );

    lock.try_acquire()?.release()?;
    println!("done: the lock is free again");
    Ok(())
}

/// Waits for a thread, turning a panic into an error.
fn join<T>(handle: ScopedJoinHandle<'_, T>) -> Result<T, Box<dyn Error>> {
    handle.join().map_err(|_| "a thread panicked".into())
}
