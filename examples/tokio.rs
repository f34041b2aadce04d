//! One lock shared by the tasks of a multi-threaded tokio program.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example tokio --features tokio
//! ```
//!
//! The tasks share an `Arc<PackLock>`. A holder task owns the lock (a
//! [`PackLockHold`](packlock::PackLockHold) can be moved into a task) while:
//!
//! 1. a waiter queues in [`PackLock::acquire_async`];
//! 2. another task waits in [`PackLock::acquire_cancellable`] with a
//!    `tokio_util::sync::CancellationToken`, which a third task cancels
//!    after 100 ms: the acquire gives up at once, and the program prints
//!    how long it took to return after `cancel()`;
//! 3. [`packlock::rt::tokio::acquire_timeout`] gives up after 150 ms with
//!    [`PackLockError::TimedOut`].
//!
//! Then the holder releases, the waiter gets the lock, and four worker
//! tasks take turns incrementing a counter under the lock.
//!
//! Events are ordered with channels and by awaiting tasks, never by
//! sleeping, so the output is the same on every run except for the
//! measured times and the temp path.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use packlock::{PackLock, PackLockError, PackLockErrorOrCancelled};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// When the canceller task cancels the token.
const CANCEL_AFTER: Duration = Duration::from_millis(100);
/// How long `rt::tokio::acquire_timeout` may wait.
const TIMEOUT: Duration = Duration::from_millis(150);
/// Worker tasks, and locked increments per worker.
const WORKERS: u64 = 4;
const ROUNDS: u64 = 25;

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let lock = Arc::new(PackLock::open(dir.path())?);
    println!("lock file: {}", lock.path().display());

    // The holder: a task that owns the hold until it is told to let go.
    let hold = lock.acquire_async().await?;
    let (release, released) = oneshot::channel::<()>();
    let holder = tokio::spawn(async move {
        let _ = released.await;
        println!("[holder]  releasing");
        hold.release()
    });
    println!("[holder]  holding the lock");

    // A plain waiter: queues behind the holder until it lets go.
    let waiter = tokio::spawn({
        let lock = Arc::clone(&lock);
        async move {
            let start = Instant::now();
            let hold = lock.acquire_async().await?;
            let waited = start.elapsed();
            hold.release()?;
            Ok::<_, PackLockError>(waited)
        }
    });
    println!("[waiter]  waiting in acquire_async()");

    // A cancellable waiter, and a task that cancels its token.
    let token = CancellationToken::new();
    let canceller = tokio::spawn({
        let token = token.clone();
        async move {
            tokio::time::sleep(CANCEL_AFTER).await;
            let cancelled_at = Instant::now();
            token.cancel();
            cancelled_at
        }
    });
    let cancellable = tokio::spawn({
        let lock = Arc::clone(&lock);
        async move {
            let start = Instant::now();
            let outcome = lock.acquire_cancellable(&token).await;
            (outcome, start, Instant::now())
        }
    });
    let (outcome, start, returned_at) = cancellable.await?;
    let cancelled_at = canceller.await?;
    match outcome {
        Err(PackLockErrorOrCancelled::Cancelled) => println!(
            "[cancel]  acquire_cancellable(): gave up after {:.0?}, {:.1?} after cancel()",
            returned_at - start,
            returned_at.saturating_duration_since(cancelled_at)
        ),
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("acquire_cancellable() got a lock that is held".into()),
    }

    // An async timeout on tokio's timer.
    let start = Instant::now();
    match packlock::rt::tokio::acquire_timeout(&lock, TIMEOUT).await {
        Err(PackLockError::TimedOut { .. }) => println!(
            "[timeout] rt::tokio::acquire_timeout({TIMEOUT:?}): timed out after {:.0?}",
            start.elapsed()
        ),
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("acquire_timeout() got a lock that is held".into()),
    }

    // Let go: the waiter gets the lock.
    release.send(()).map_err(|()| "the holder task is gone")?;
    holder.await??;
    let waited = waiter.await??;
    println!("[waiter]  got the lock after {waited:.0?}");

    // Workers take turns: each increment is a read and a write split by an
    // await, so only mutual exclusion keeps the count exact.
    let counter = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let lock = Arc::clone(&lock);
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let hold = lock.acquire_async().await?;
                    let value = counter.load(Ordering::Relaxed);
                    tokio::task::yield_now().await;
                    counter.store(value + 1, Ordering::Relaxed);
                    hold.release()?;
                }
                Ok::<_, PackLockError>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    println!(
        "[workers] {WORKERS} tasks x {ROUNDS} locked increments: counter = {}",
        counter.load(Ordering::Relaxed)
    );

    lock.try_acquire()?.release()?;
    println!("done: the lock is free again");
    Ok(())
}
