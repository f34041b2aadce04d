//! `acquire_async` on every executor: tokio (multi-thread and
//! current-thread), smol (an explicit `Executor` on several threads, and the
//! global one behind `smol::spawn`), and plain `futures_lite::future::block_on`
//! — alone and mixed with threads calling the blocking `acquire`.
//!
//! Each run has many tasks take the lock many times, on one shared
//! `PackLock` or on one `PackLock` per task, and checks the critical section
//! across an `.await`: never two holders inside at once, and no lost update
//! in a read-`.await`-write of a counter. It also checks that an uncontended
//! `acquire_async` completes on its first poll (it never leaves the caller's
//! thread) and that a contended one waits without blocking its thread.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use futures_lite::future::{self, Boxed, FutureExt};
use packlock::{PackLock, PackLockError};

/// Tasks per run.
const TASKS: usize = 16;
/// Acquires per task.
const ROUNDS: usize = 50;
/// When a run counts as hung. Passing runs take well under a second.
const HANG: Duration = Duration::from_secs(60);

type Outcome = Result<(), PackLockError>;

/// What the lock protects: who is inside, and a counter updated with a
/// read-modify-write that loses updates unless the lock excludes.
#[derive(Default)]
struct Guarded {
    inside: AtomicUsize,
    overlaps: AtomicUsize,
    counter: AtomicUsize,
}

impl Guarded {
    fn enter(&self) {
        if self.inside.fetch_add(1, Ordering::SeqCst) != 0 {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn leave(&self) {
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }

    /// The critical section of a task: yields to the executor between the
    /// read and the write.
    async fn update_async(&self) {
        self.enter();
        let seen = self.counter.load(Ordering::SeqCst);
        future::yield_now().await;
        self.counter.store(seen + 1, Ordering::SeqCst);
        self.leave();
    }

    /// The critical section of a thread.
    fn update_sync(&self) {
        self.enter();
        let seen = self.counter.load(Ordering::SeqCst);
        thread::yield_now();
        self.counter.store(seen + 1, Ordering::SeqCst);
        self.leave();
    }

    fn assert_serialised(&self, expected_updates: usize) {
        assert_eq!(self.overlaps.load(Ordering::SeqCst), 0, "holders overlapped");
        assert_eq!(self.counter.load(Ordering::SeqCst), expected_updates, "updates were lost");
    }
}

/// Whether the workers share one `PackLock` or each open their own on the
/// same directory (which must exclude just the same).
#[derive(Clone, Copy, Debug)]
enum Sharing {
    OneLock,
    LockPerWorker,
}

/// `count` locks on `dir`, shared or not as `sharing` says.
fn locks(dir: &Path, sharing: Sharing, count: usize) -> Vec<Arc<PackLock>> {
    let shared = Arc::new(PackLock::open(dir).expect("open"));
    (0..count)
        .map(|_| match sharing {
            Sharing::OneLock => Arc::clone(&shared),
            Sharing::LockPerWorker => Arc::new(PackLock::open(dir).expect("open")),
        })
        .collect()
}

async fn async_worker(lock: Arc<PackLock>, guarded: Arc<Guarded>) -> Outcome {
    for _ in 0..ROUNDS {
        let hold = lock.acquire_async().await?;
        assert_eq!(hold.path(), lock.path());
        guarded.update_async().await;
        drop(hold);
        future::yield_now().await;
    }
    Ok(())
}

fn sync_worker(lock: &PackLock, guarded: &Guarded) -> Outcome {
    for _ in 0..ROUNDS {
        let hold = lock.acquire()?;
        guarded.update_sync();
        drop(hold);
    }
    Ok(())
}

/// An executor: runs the futures concurrently and returns their outcomes.
type Runner = fn(Vec<Boxed<Outcome>>) -> Vec<Outcome>;

fn on_tokio(runtime: tokio::runtime::Runtime, futures: Vec<Boxed<Outcome>>) -> Vec<Outcome> {
    runtime.block_on(async {
        let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("task panicked"));
        }
        outcomes
    })
}

fn on_tokio_multi_thread(futures: Vec<Boxed<Outcome>>) -> Vec<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("tokio runtime");
    on_tokio(runtime, futures)
}

fn on_tokio_current_thread(futures: Vec<Boxed<Outcome>>) -> Vec<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("tokio runtime");
    on_tokio(runtime, futures)
}

/// An `smol::Executor` run by three threads; the test thread only awaits.
fn on_smol_executor(futures: Vec<Boxed<Outcome>>) -> Vec<Outcome> {
    let executor = smol::Executor::new();
    let (stop, stopped) = smol::channel::unbounded::<()>();
    thread::scope(|scope| {
        for _ in 0..3 {
            let (executor, stopped) = (&executor, stopped.clone());
            scope.spawn(move || smol::block_on(executor.run(stopped.recv())));
        }
        let tasks: Vec<_> = futures.into_iter().map(|f| executor.spawn(f)).collect();
        let outcomes = smol::block_on(async {
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await);
            }
            outcomes
        });
        drop(stop);
        outcomes
    })
}

/// smol's global executor, through `smol::spawn` inside `smol::block_on`.
fn on_smol_global(futures: Vec<Boxed<Outcome>>) -> Vec<Outcome> {
    smol::block_on(async {
        let tasks: Vec<_> = futures.into_iter().map(smol::spawn).collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await);
        }
        outcomes
    })
}

/// No executor at all: `futures_lite::future::block_on` on several threads,
/// each driving two futures at once with `zip`.
fn on_block_on(futures: Vec<Boxed<Outcome>>) -> Vec<Outcome> {
    let mut futures = futures.into_iter();
    let mut threads = Vec::new();
    while let Some(first) = futures.next() {
        let second = futures.next().unwrap_or_else(|| async { Ok(()) }.boxed());
        threads.push(thread::spawn(move || future::block_on(future::zip(first, second))));
    }
    threads
        .into_iter()
        .flat_map(|thread| {
            let (a, b) = thread.join().expect("block_on thread panicked");
            [a, b]
        })
        .collect()
}

/// `TASKS` async workers on `runner`, with locks shared as `sharing` says.
fn check_async(runner: Runner, sharing: Sharing) {
    common::within(HANG, move || {
        let dir = common::temp_dir();
        let guarded = Arc::new(Guarded::default());
        let futures = locks(dir.path(), sharing, TASKS)
            .into_iter()
            .map(|lock| async_worker(lock, Arc::clone(&guarded)).boxed())
            .collect();
        for outcome in runner(futures) {
            outcome.expect("acquire_async");
        }
        guarded.assert_serialised(TASKS * ROUNDS);
    });
}

/// `TASKS` async workers on `runner` and as many threads calling the
/// blocking `acquire`, all on one directory.
fn check_mixed(runner: Runner, sharing: Sharing) {
    common::within(HANG, move || {
        let dir = common::temp_dir();
        let guarded = Arc::new(Guarded::default());
        let mut all_locks = locks(dir.path(), sharing, 2 * TASKS);
        let thread_locks = all_locks.split_off(TASKS);
        let threads: Vec<_> = thread_locks
            .into_iter()
            .map(|lock| {
                let guarded = Arc::clone(&guarded);
                thread::spawn(move || sync_worker(&lock, &guarded))
            })
            .collect();
        let futures = all_locks
            .into_iter()
            .map(|lock| async_worker(lock, Arc::clone(&guarded)).boxed())
            .collect();
        for outcome in runner(futures) {
            outcome.expect("acquire_async");
        }
        for thread in threads {
            thread.join().expect("sync worker panicked").expect("acquire");
        }
        guarded.assert_serialised(2 * TASKS * ROUNDS);
    });
}

#[test]
fn tokio_multi_thread_one_lock() {
    check_async(on_tokio_multi_thread, Sharing::OneLock);
}

#[test]
fn tokio_multi_thread_lock_per_task() {
    check_async(on_tokio_multi_thread, Sharing::LockPerWorker);
}

#[test]
fn tokio_current_thread_one_lock() {
    check_async(on_tokio_current_thread, Sharing::OneLock);
}

#[test]
fn tokio_current_thread_lock_per_task() {
    check_async(on_tokio_current_thread, Sharing::LockPerWorker);
}

#[test]
fn smol_executor_one_lock() {
    check_async(on_smol_executor, Sharing::OneLock);
}

#[test]
fn smol_executor_lock_per_task() {
    check_async(on_smol_executor, Sharing::LockPerWorker);
}

#[test]
fn smol_global_one_lock() {
    check_async(on_smol_global, Sharing::OneLock);
}

#[test]
fn smol_global_lock_per_task() {
    check_async(on_smol_global, Sharing::LockPerWorker);
}

#[test]
fn block_on_one_lock() {
    check_async(on_block_on, Sharing::OneLock);
}

#[test]
fn block_on_lock_per_task() {
    check_async(on_block_on, Sharing::LockPerWorker);
}

#[test]
fn tokio_tasks_and_threads_one_lock() {
    check_mixed(on_tokio_multi_thread, Sharing::OneLock);
}

#[test]
fn tokio_tasks_and_threads_lock_per_worker() {
    check_mixed(on_tokio_multi_thread, Sharing::LockPerWorker);
}

#[test]
fn tokio_current_thread_task_and_threads_one_lock() {
    check_mixed(on_tokio_current_thread, Sharing::OneLock);
}

#[test]
fn smol_tasks_and_threads_one_lock() {
    check_mixed(on_smol_executor, Sharing::OneLock);
}

#[test]
fn smol_tasks_and_threads_lock_per_worker() {
    check_mixed(on_smol_executor, Sharing::LockPerWorker);
}

#[test]
fn block_on_futures_and_threads_lock_per_worker() {
    check_mixed(on_block_on, Sharing::LockPerWorker);
}

#[test]
fn uncontended_acquire_async_is_ready_on_the_first_poll() {
    let dir = common::temp_dir();
    let lock = common::open(dir.path());
    let other = common::open(dir.path());
    for lock in [&lock, &other, &lock] {
        let hold = future::block_on(future::poll_once(lock.acquire_async()))
            .expect("an uncontended acquire_async must not return Pending")
            .expect("acquire_async");
        hold.release().expect("release");
    }
}

#[test]
fn uncontended_acquire_async_stays_on_the_tokio_worker() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("tokio runtime");
    let dir = common::temp_dir();
    let lock = Arc::new(common::open(dir.path()));
    runtime.block_on(async {
        let task = tokio::spawn(async move {
            let before = thread::current().id();
            // Ready on the first poll, so the task cannot have moved.
            let hold = future::poll_once(lock.acquire_async())
                .await
                .expect("an uncontended acquire_async must not return Pending")
                .expect("acquire_async");
            assert_eq!(thread::current().id(), before);
            hold.release().expect("release");
        });
        task.await.expect("task");
    });
}

#[test]
fn tokio_current_thread_acquire_async_completes() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("tokio runtime");
    let dir = common::temp_dir();
    let lock = common::open(dir.path());
    let test_thread = thread::current().id();
    runtime.block_on(async {
        let hold = lock.acquire_async().await.expect("acquire_async");
        assert_eq!(thread::current().id(), test_thread);
        drop(hold);
    });
}

/// While another holder has the lock, `acquire_async` returns `Pending`
/// instead of blocking the polling thread, and dropping it gives up its
/// place: the lock is free once the holder lets go.
#[test]
fn contended_acquire_async_is_pending_and_cancellable() {
    common::within(HANG, || {
        let dir = common::temp_dir();
        let lock = common::open(dir.path());
        let other = common::open(dir.path());
        let hold = lock.acquire().expect("acquire");
        for waiter in [&lock, &other] {
            let polled = future::block_on(future::poll_once(waiter.acquire_async()));
            assert!(polled.is_none(), "acquire_async got a held lock: {polled:?}");
        }
        drop(hold);
        other
            .try_acquire()
            .expect("a dropped waiter must not keep the lock")
            .release()
            .expect("release");
    });
}
