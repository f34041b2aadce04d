//! One lock shared by the tasks of an async-std program.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example async_std --features async-std
//! ```
//!
//! async-std is discontinued (RUSTSEC-2025-0052); the `async-std` feature
//! gives programs still running on it an async timeout without adding
//! async-std to their build. Here it is only a dev-dependency, to run this
//! example on its executor.
//!
//! Tasks spawned with `async_std::task::spawn` share an `Arc<PackLock>`. A
//! holder task owns the lock (a [`PackLockHold`](packlock::PackLockHold)
//! can be moved into a task) while:
//!
//! 1. a waiter queues in [`PackLock::acquire_async`];
//! 2. another task waits in [`PackLock::acquire_until`] with a shutdown
//!    notice — any future works as the cancel signal; here, a channel
//!    receive that completes when a third task sends `shutdown` after
//!    100 ms. The acquire gives up at once, and the program prints how long
//!    it took to return after the send;
//! 3. [`packlock::rt::async_std::acquire_timeout`] gives up after 150 ms
//!    with [`PackLockError::TimedOut`].
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

use async_std::{channel, task};
use packlock::{PackLock, PackLockError, PackLockErrorOrCancelled};

/// When the shutdown notice is sent.
const SHUTDOWN_AFTER: Duration = Duration::from_millis(100);
/// How long `rt::async_std::acquire_timeout` may wait.
const TIMEOUT: Duration = Duration::from_millis(150);
/// Worker tasks, and locked increments per worker.
const WORKERS: u64 = 4;
const ROUNDS: u64 = 25;

fn main() -> Result<(), Box<dyn Error>> {
    task::block_on(run())
}

async fn run() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let lock = Arc::new(PackLock::open(dir.path())?);
    println!("lock file: {}", lock.path().display());

    // The holder: a task that owns the hold until it is told to let go.
    let hold = lock.acquire_async().await?;
    let (release, released) = channel::bounded::<()>(1);
    let holder = task::spawn(async move {
        let _ = released.recv().await;
        println!("[holder]   releasing");
        hold.release()
    });
    println!("[holder]   holding the lock");

    // A plain waiter: queues behind the holder until it lets go.
    let waiter = task::spawn({
        let lock = Arc::clone(&lock);
        async move {
            let start = Instant::now();
            let hold = lock.acquire_async().await?;
            let waited = start.elapsed();
            hold.release()?;
            Ok::<_, PackLockError>(waited)
        }
    });
    println!("[waiter]   waiting in acquire_async()");

    // A waiter that gives up on a shutdown notice, and the task sending it.
    let (shutdown, shutdown_notice) = channel::bounded::<()>(1);
    let sender = task::spawn(async move {
        task::sleep(SHUTDOWN_AFTER).await;
        let sent_at = Instant::now();
        shutdown.send(()).await.map(|()| sent_at)
    });
    let until = task::spawn({
        let lock = Arc::clone(&lock);
        async move {
            // Completes on the notice, or if the sender is dropped.
            let signal = async {
                let _ = shutdown_notice.recv().await;
            };
            let start = Instant::now();
            let outcome = lock.acquire_until(signal).await;
            (outcome, start, Instant::now())
        }
    });
    let (outcome, start, returned_at) = until.await;
    let sent_at = sender.await?;
    match outcome {
        Err(PackLockErrorOrCancelled::Cancelled) => println!(
            "[shutdown] acquire_until(): gave up after {:.0?}, {:.1?} after the notice",
            returned_at - start,
            returned_at.saturating_duration_since(sent_at)
        ),
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("acquire_until() got a lock that is held".into()),
    }

    // An async timeout on async-io's timer, the one async-std uses.
    let start = Instant::now();
    match packlock::rt::async_std::acquire_timeout(&lock, TIMEOUT).await {
        Err(PackLockError::TimedOut { .. }) => println!(
            "[timeout]  rt::async_std::acquire_timeout({TIMEOUT:?}): timed out after {:.0?}",
            start.elapsed()
        ),
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("acquire_timeout() got a lock that is held".into()),
    }

    // Let go: the waiter gets the lock.
    release.send(()).await?;
    holder.await?;
    let waited = waiter.await?;
    println!("[waiter]   got the lock after {waited:.0?}");

    // Workers take turns: each increment is a read and a write split by an
    // await, so only mutual exclusion keeps the count exact.
    let counter = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let lock = Arc::clone(&lock);
            let counter = Arc::clone(&counter);
            task::spawn(async move {
                for _ in 0..ROUNDS {
                    let hold = lock.acquire_async().await?;
                    let value = counter.load(Ordering::Relaxed);
                    task::yield_now().await;
                    counter.store(value + 1, Ordering::Relaxed);
                    hold.release()?;
                }
                Ok::<_, PackLockError>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    println!(
        "[workers]  {WORKERS} tasks x {ROUNDS} locked increments: counter = {}",
        counter.load(Ordering::Relaxed)
    );

    lock.try_acquire()?.release()?;
    println!("done: the lock is free again");
    Ok(())
}
