//! Cancelling an async acquire — with a token, with any future as the
//! signal, or by dropping the acquire future — while it is queued behind
//! another holder in this process, or parked at the OS lock behind another
//! process (a child running this test binary, or util-linux `flock(1)`).
//!
//! In every case the acquire returns promptly, holds nothing, and leaves
//! nothing queued: once the holder lets go, the lock is free again, which
//! also proves that a pool job left parked in the kernel released the lock
//! as soon as it got it. Also measures the cancel latency and checks that
//! many cancels leave no threads and no kernel waiters behind, on every
//! executor (tokio multi-thread and current-thread, smol, async-std,
//! `futures_lite::future::block_on`).

// Some imports serve only the Linux tests (flock(1), /proc).
#![cfg_attr(not(target_os = "linux"), allow(unused_imports))]

mod common;

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Child, ChildArgs, assert_cancelled, assert_free, open, release, temp_dir, wait_until_free,
    wait_until_parked,
};
use futures_lite::future;
use packlock::{CancelSignal, CancellationToken, PackLock, PackLockErrorOrCancelled, PackLockHold};

/// How soon after `cancel()` a single cancelled acquire must return. The
/// design promises well under a millisecond; this bound only catches a
/// cancel that is not acted on, without flaking on a loaded CI machine.
const PROMPT: Duration = Duration::from_millis(250);

type Acquired = Result<PackLockHold, PackLockErrorOrCancelled>;

#[test]
fn child_process_entry() {
    common::child_process_entry(|args: &ChildArgs| match args.role.as_str() {
        "hold" => common::hold_until_told(&common::open(&args.dir)),
        "hold_every_subdir" => hold_every_subdir(&args.dir),
        #[cfg(target_os = "linux")]
        "count_threads" => count_threads_over_cancels(&args.dir),
        "abandon_waits" => abandoned_waits_leave_the_pool_alone(&args.dir),
        other => panic!("unknown role {other}"),
    });
}

/// Child role: lock the sidecar of every subdirectory of `dir`, say
/// "locked", keep them until the parent says go on, release, say "released".
fn hold_every_subdir(dir: &Path) {
    let holds: Vec<PackLockHold> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.is_dir())
        .map(|sub| open(&sub).acquire().expect("acquire"))
        .collect();
    common::tell_parent("locked");
    common::wait_for_parent();
    for hold in holds {
        hold.release().expect("release");
    }
    common::tell_parent("released");
}

/// Abandoned waits on lock files held for a long time cost one parked
/// thread per file and nothing else: with the `blocking` pool cut to 4
/// threads, four abandoned waits leave the pool free for the
/// application's jobs and for the next lock's wait.
#[test]
fn abandoned_waits_never_starve_the_blocking_pool() {
    let dir = common::temp_dir();
    let env = [("BLOCKING_MAX_THREADS", "4")];
    let child = common::Child::spawn_with_env("abandon_waits", dir.path(), &env);
    child.expect("ok");
    child.join();
}

/// Child role (its own process, whose pool has 4 threads): see
/// [`abandoned_waits_never_starve_the_blocking_pool`].
fn abandoned_waits_leave_the_pool_alone(dir: &Path) {
    const POOL: usize = 4;
    /// How long an abandoned wait waits, and how long the next lock is
    /// held by its other owner.
    const SHORT: Duration = Duration::from_millis(50);
    // Each lock file is held by another open file: another owner, as
    // another process would be.
    let hold_elsewhere = |lock: &PackLock| {
        let file = std::fs::File::open(lock.path()).expect("open the lock file");
        file.lock().expect("lock it elsewhere");
        file
    };
    let mut held_elsewhere = Vec::new();
    for i in 0..POOL {
        let lock = open(&dir.join(format!("long-held-{i}")));
        held_elsewhere.push(hold_elsewhere(&lock));
        let gave_up = future::block_on(lock.acquire_until(after(SHORT)));
        assert_cancelled(&gave_up);
    }
    let job = common::within(common::DEADLINE, || future::block_on(blocking::unblock(|| 42)));
    assert_eq!(job, 42, "the pool ran the application's job");

    let soon = open(&dir.join("soon"));
    let held = hold_elsewhere(&soon);
    thread::scope(|scope| {
        scope.spawn(move || {
            thread::sleep(SHORT); // how long the other holder keeps it
            drop(held);
        });
        let got = future::block_on(soon.acquire_until(after(common::DEADLINE)));
        drop(got.expect("the next lock's wait ran although four waits were abandoned"));
    });
    #[cfg(target_os = "linux")]
    assert_eq!(threads_named("packlock-wait"), POOL, "one parked thread per lock file");
    drop(held_elsewhere);
    common::tell_parent("ok");
}

/// A signal that fires after `delay`, on async-io's timer.
async fn after(delay: Duration) {
    async_io::Timer::after(delay).await;
}

/// How many of this process's threads are called `name`.
#[cfg(target_os = "linux")]
fn threads_named(name: &str) -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

// --- helpers ----------------------------------------------------------------

/// Polls `acquire` until it completes or [`is_parked`](common::is_parked): an acquire nobody
/// polls may never get as far as the kernel (it may first have to be woken
/// in the in-process queue).
async fn poll_until_parked<T>(
    mut acquire: Pin<&mut impl Future<Output = T>>,
    path: &Path,
) -> Option<T> {
    let deadline = Instant::now() + common::DEADLINE;
    loop {
        if let Some(done) = future::poll_once(acquire.as_mut()).await {
            return Some(done);
        }
        if common::is_parked(path) {
            return None;
        }
        assert!(Instant::now() < deadline, "our acquire never got to wait in the kernel");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `cancel` on a new thread once `ready` has returned, and returns
/// the instant just before it did. `cancel` runs even if `ready` panics,
/// so that a failing `ready` fails the test instead of hanging it.
fn cancel_from_thread(
    ready: impl FnOnce() + Send + 'static,
    cancel: impl FnOnce() + Send + 'static,
) -> thread::JoinHandle<Instant> {
    thread::spawn(move || {
        let ready = panic::catch_unwind(AssertUnwindSafe(ready));
        // Not needed for correctness: gives the awaiting thread time to
        // park, so that the cancel has to wake it as it would in real use.
        thread::sleep(Duration::from_millis(2));
        let cancelled_at = Instant::now();
        cancel();
        if let Err(panic) = ready {
            panic::resume_unwind(panic);
        }
        cancelled_at
    })
}

/// Polls `acquire` once — it must wait — then cancels it from another
/// thread once `ready` holds. Checks that it returned `Cancelled` and
/// returns how long after the cancel it did.
async fn cancel_pending(
    acquire: impl Future<Output = Acquired>,
    ready: impl FnOnce() + Send + 'static,
    cancel: impl FnOnce() + Send + 'static,
) -> Duration {
    let mut acquire = pin!(acquire);
    let first = future::poll_once(acquire.as_mut()).await;
    assert!(first.is_none(), "the acquire did not wait: {first:?}");
    let canceller = cancel_from_thread(ready, cancel);
    let result = acquire.await;
    let returned = Instant::now();
    assert_cancelled(&result);
    let cancelled_at = canceller.join().expect("canceller panicked");
    returned.saturating_duration_since(cancelled_at)
}

/// [`cancel_pending`] of `lock.acquire_cancellable` with a fresh token.
async fn cancel_pending_acquire(
    lock: &PackLock,
    ready: impl FnOnce() + Send + 'static,
) -> Duration {
    let token = CancellationToken::new();
    let canceller = token.clone();
    cancel_pending(lock.acquire_cancellable(&token), ready, move || canceller.cancel()).await
}

fn assert_prompt(latency: Duration) {
    assert!(latency < PROMPT, "returned {latency:?} after the cancel");
}

// --- executors --------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Runtime {
    TokioMultiThread,
    TokioCurrentThread,
    Smol,
    AsyncStd,
    BlockOn,
}

/// Runs `future` to completion on `runtime`, on a fresh thread, failing
/// (instead of hanging) if it takes longer than the deadline.
fn run_on<F>(runtime: Runtime, future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    common::within_deadline(move || run_here(runtime, future))
}

fn run_here<F>(runtime: Runtime, future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match runtime {
        Runtime::TokioMultiThread => {
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            // On a worker thread, not on the thread that blocks.
            tokio.block_on(tokio.spawn(future)).expect("task panicked")
        }
        Runtime::TokioCurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(future),
        Runtime::Smol => smol::block_on(future),
        Runtime::AsyncStd => async_std::task::block_on(future),
        Runtime::BlockOn => future::block_on(future),
    }
}

/// A test module per scenario, with one test per executor.
macro_rules! on_every_runtime {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::Runtime;

            #[test]
            fn tokio_multi_thread() {
                super::$scenario(Runtime::TokioMultiThread)
            }

            #[test]
            fn tokio_current_thread() {
                super::$scenario(Runtime::TokioCurrentThread)
            }

            #[test]
            fn smol() {
                super::$scenario(Runtime::Smol)
            }

            #[test]
            fn async_std() {
                super::$scenario(Runtime::AsyncStd)
            }

            #[test]
            fn block_on() {
                super::$scenario(Runtime::BlockOn)
            }
        }
    )*};
}

on_every_runtime!(
    uncontended_acquire_cancellable_succeeds,
    an_already_cancelled_token_wins_over_a_free_lock,
    cancel_while_queued_in_process,
    cancel_while_parked_at_the_os_lock,
    acquire_until_a_timer_gives_up_when_it_fires,
);

// --- scenarios run on every executor -------------------------------------------

fn uncontended_acquire_cancellable_succeeds(runtime: Runtime) {
    let dir = temp_dir();
    let path = dir.path().to_path_buf();
    let hold = run_on(runtime, async move {
        let token = CancellationToken::new();
        open(&path).acquire_cancellable(&token).await
    })
    .expect("uncontended acquire_cancellable");
    assert_eq!(hold.path(), dir.path().join(packlock::PACK_LOCK_FILE_NAME));
    assert!(open(dir.path()).try_acquire().is_err(), "the hold does not hold");
}

fn an_already_cancelled_token_wins_over_a_free_lock(runtime: Runtime) {
    let dir = temp_dir();
    let lock = Arc::new(open(dir.path()));
    let shared = Arc::clone(&lock);
    let result = run_on(runtime, async move {
        let token = CancellationToken::new();
        token.cancel();
        shared.acquire_cancellable(&token).await
    });
    assert_cancelled(&result);
    assert_free(&lock, "a cancelled acquire kept the lock");
}

/// Another `PackLock` of this process holds: the acquire waits in the
/// in-process queue, gives up at once when cancelled, and leaves the queue.
fn cancel_while_queued_in_process(runtime: Runtime) {
    let dir = temp_dir();
    let holder = Arc::new(open(dir.path()));
    let hold = holder.acquire().expect("acquire");
    let (shared, path) = (Arc::clone(&holder), dir.path().to_path_buf());
    let latencies = run_on(runtime, async move {
        // Waiting on the holder's own `PackLock`, then on another one.
        let mut latencies = vec![cancel_pending_acquire(&shared, || {}).await];
        latencies.push(cancel_pending_acquire(&open(&path), || {}).await);
        latencies
    });
    latencies.into_iter().for_each(assert_prompt);

    drop(hold);
    assert_free(&holder, "a cancelled waiter stayed queued");
    // Nor is the lock handed to a waiter that left: a new one gets it.
    let lock = Arc::clone(&holder);
    run_on(runtime, async move { lock.acquire_async().await.map(drop) })
        .expect("acquire_async after cancelled waiters");
}

/// A child process holds: the acquire's pool job parks in the kernel; the
/// acquire still returns at once when cancelled, and the parked job lets go
/// of the lock as soon as the child releases it.
fn cancel_while_parked_at_the_os_lock(runtime: Runtime) {
    let dir = temp_dir();
    let child = common::spawn_holder("hold", dir.path());
    let lock = Arc::new(open(dir.path()));
    let (shared, path) = (Arc::clone(&lock), lock.path().to_path_buf());
    let latency = run_on(runtime, async move {
        cancel_pending_acquire(&shared, move || wait_until_parked(&path)).await
    });
    assert_prompt(latency);
    assert!(lock.try_acquire().is_err(), "got the lock while the child holds it");
    release(child);
    wait_until_free(&lock);
}

fn acquire_until_a_timer_gives_up_when_it_fires(runtime: Runtime) {
    const AFTER: Duration = Duration::from_millis(20);
    let dir = temp_dir();
    let holder = open(dir.path());
    let hold = holder.acquire().expect("acquire");
    let path = dir.path().to_path_buf();
    let (result, waited) = run_on(runtime, async move {
        let started = Instant::now();
        let timer = async {
            async_io::Timer::after(AFTER).await;
        };
        let result = open(&path).acquire_until(timer).await;
        (result, started.elapsed())
    });
    assert_cancelled(&result);
    assert!(waited >= AFTER, "gave up after {waited:?}, before the signal fired");
    drop(hold);
    assert_free(&holder, "the lock is free after a timed-out acquire_until");
}

// --- cancel signals -------------------------------------------------------------

/// The signal is polled first, so one that is already complete wins even
/// over a free lock — and the lock is not taken.
#[test]
fn acquire_until_a_complete_signal_wins_over_a_free_lock() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let result = future::block_on(lock.acquire_until(std::future::ready(())));
    assert_cancelled(&result);
    assert_free(&lock, "a cancelled acquire kept the lock");
}

#[test]
fn acquire_until_a_signal_that_never_fires_gets_a_free_lock() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let hold = future::block_on(lock.acquire_until(future::pending())).expect("acquire_until");
    assert!(lock.try_acquire().is_err(), "the hold does not hold");
    drop(hold);
}

#[test]
fn acquire_until_a_token_future_cancelled_from_another_thread() {
    let dir = temp_dir();
    let holder = open(dir.path());
    let hold = holder.acquire().expect("acquire");
    let lock = Arc::new(open(dir.path()));
    let shared = Arc::clone(&lock);
    let latency = run_on(Runtime::BlockOn, async move {
        let token = CancellationToken::new();
        let signal = token.clone();
        let until = async move { signal.cancelled().await };
        cancel_pending(shared.acquire_until(until), || {}, move || token.cancel()).await
    });
    assert_prompt(latency);
    drop(hold);
    assert_free(&lock, "the lock is free after the cancel");
}

/// `acquire_cancellable` takes any [`CancelSignal`], not only ours.
#[test]
fn acquire_cancellable_takes_a_custom_signal() {
    struct Fixed(bool);

    impl CancelSignal for Fixed {
        async fn cancelled(&self) {
            if !self.0 {
                future::pending::<()>().await;
            }
        }
    }

    let dir = temp_dir();
    let lock = open(dir.path());
    assert_cancelled(&future::block_on(lock.acquire_cancellable(&Fixed(true))));
    let hold = future::block_on(lock.acquire_cancellable(&Fixed(false))).expect("acquire");
    drop(hold);
}

// --- util-linux flock(1) ----------------------------------------------------------

#[cfg(target_os = "linux")]
#[test]
fn cancel_while_parked_behind_util_linux_flock() {
    let dir = temp_dir();
    let lock = Arc::new(open(dir.path()));
    let flock = common::flock::Holder::start(lock.path(), "-x");

    let (shared, path) = (Arc::clone(&lock), lock.path().to_path_buf());
    let latency = run_on(Runtime::BlockOn, async move {
        cancel_pending_acquire(&shared, move || wait_until_parked(&path)).await
    });
    assert_prompt(latency);

    flock.stop(); // `cat` ends, flock exits and unlocks
    wait_until_free(&lock);
}

// --- latency and resources -----------------------------------------------------------

fn median_and_max(latencies: &mut [Duration]) -> (Duration, Duration) {
    latencies.sort();
    (latencies[latencies.len() / 2], latencies[latencies.len() - 1])
}

/// 30 cancels, half of acquires parked at the OS lock (each behind its own
/// lock file that a child holds, so each has its own pool job in the
/// kernel), half queued behind a holder in this process.
#[test]
fn cancel_latency_is_small() {
    const PER_KIND: usize = 15;
    let parked_dir = temp_dir();
    let paths: Vec<PathBuf> = (0..PER_KIND)
        .map(|i| open(&parked_dir.path().join(format!("trial-{i}"))).path().to_path_buf())
        .collect();
    let child = common::spawn_holder("hold_every_subdir", parked_dir.path());
    let queued_dir = temp_dir();
    let holder = open(queued_dir.path());
    let hold = holder.acquire().expect("acquire");

    let queued_path = queued_dir.path().to_path_buf();
    let parked_paths = paths.clone();
    let (mut parked, mut queued) = run_on(Runtime::TokioMultiThread, async move {
        let (mut parked, mut queued) = (Vec::new(), Vec::new());
        for path in parked_paths {
            let lock = PackLock::open_file(&path).expect("open");
            parked.push(cancel_pending_acquire(&lock, move || wait_until_parked(&path)).await);
            queued.push(cancel_pending_acquire(&open(&queued_path), || {}).await);
        }
        (parked, queued)
    });
    let mut all = [parked.clone(), queued.clone()].concat();
    for (kind, latencies) in [("parked", &mut parked), ("queued", &mut queued), ("all", &mut all)] {
        let (median, max) = median_and_max(latencies);
        eprintln!("cancel latency, {kind}: median {median:?}, max {max:?}");
    }
    let (median, max) = median_and_max(&mut all);
    assert!(median < Duration::from_millis(5), "median cancel latency {median:?}");
    assert!(max < PROMPT, "max cancel latency {max:?}");

    drop(hold);
    release(child);
    for path in &paths {
        wait_until_free(&PackLock::open_file(path).expect("open"));
    }
}

/// The number of threads of this process.
#[cfg(target_os = "linux")]
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("list /proc/self/task").count()
}

/// Child role (its own process, so no other test's threads are counted):
/// 200 cancels of acquires waiting behind a grandchild holder — the first
/// parked at the OS lock, the others queued behind its pool job — counting
/// this process's threads and kernel waiters before and after. Writes
/// "before after waiters" to `dir/figures`.
#[cfg(target_os = "linux")]
fn count_threads_over_cancels(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let holder = common::spawn_holder("hold", dir);
    let lock = open(dir);
    runtime.block_on(async {
        // Warm up the executor, the blocking pool and the lock machinery.
        blocking::unblock(|| ()).await;
        let warm = open(&dir.join("warm-up"));
        drop(warm.acquire_async().await.expect("uncontended acquire"));
    });
    let before = threads();
    for _ in 0..200 {
        runtime.block_on(async {
            let token = CancellationToken::new();
            let mut acquire = pin!(lock.acquire_cancellable(&token));
            // The first acquire's pool job parks in the kernel and stays
            // there after the cancel; the later ones queue behind it.
            let first = poll_until_parked(acquire.as_mut(), lock.path()).await;
            assert!(first.is_none(), "got the lock the grandchild holds: {first:?}");
            token.cancel();
            assert_cancelled(&acquire.await);
        });
    }
    let after = threads();
    let waiters = common::proc_locks::waiters_of(lock.path(), std::process::id());
    std::fs::write(dir.join("figures"), format!("{before} {after} {waiters}")).expect("write");
    release(holder);
    wait_until_free(&lock);
}

#[cfg(target_os = "linux")]
#[test]
fn two_hundred_cancels_leave_no_threads_or_waiters_behind() {
    let dir = temp_dir();
    Child::spawn("count_threads", dir.path()).join();
    let figures = std::fs::read_to_string(dir.path().join("figures")).expect("figures");
    let [before, after, waiters]: [usize; 3] = figures
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("three figures");
    eprintln!("threads before 200 cancels: {before}, after: {after}; kernel waiters: {waiters}");
    assert!(after <= before + 2, "threads grew from {before} to {after} over 200 cancels");
    assert!(waiters <= 1, "{waiters} waiters of one process in the kernel");
}

// --- dropping acquire futures ------------------------------------------------------

/// How [`poll_and_drop`] polls before it drops.
#[derive(Clone, Copy)]
enum Polls<'a> {
    Once,
    /// Twice, with a yield between.
    Twice,
    /// Until it is parked in the kernel on this file, so that its pool job
    /// outlives it.
    UntilParked(&'a Path),
}

/// Polls `acquire` as `polls` says and drops it; returns whether it had
/// got the lock (the hold is dropped too).
fn poll_and_drop<T, E: std::fmt::Debug>(
    acquire: impl Future<Output = Result<T, E>>,
    polls: Polls<'_>,
) -> bool {
    let mut acquire = pin!(acquire);
    let polled = future::block_on(async {
        match polls {
            Polls::UntilParked(path) => poll_until_parked(acquire.as_mut(), path).await,
            Polls::Once | Polls::Twice => {
                let polled = future::poll_once(acquire.as_mut()).await;
                if polled.is_some() || matches!(polls, Polls::Once) {
                    return polled;
                }
                thread::yield_now();
                future::poll_once(acquire.as_mut()).await
            }
        }
    });
    match polled {
        None => false,
        Some(Ok(_hold)) => true,
        Some(Err(e)) => panic!("acquire failed: {e:?}"),
    }
}

/// Hundreds of acquires of every kind dropped after one or two polls,
/// while a holder in this process comes and goes and, at times, a child
/// process holds the lock.
#[test]
fn dropping_acquire_futures_mid_acquire_leaves_nothing_behind() {
    const ROUNDS: usize = 600;
    let dir = temp_dir();
    let holder = open(dir.path());
    let waiter = open(dir.path());
    let token = CancellationToken::new();
    let (mut held, mut child, mut acquired) = (None, None, 0);
    for i in 0..ROUNDS {
        match i {
            150 | 450 => {
                held = None;
                child = Some(common::spawn_holder("hold", dir.path()));
            }
            300 | 550 => {
                release(child.take().expect("a holding child"));
                // The pool job left parked lets go (nothing else holds:
                // the holder here cannot take the lock while a child has it).
                assert!(held.is_none());
                wait_until_free(&waiter);
            }
            _ if i % 5 == 0 => held = if held.is_some() { None } else { holder.try_acquire().ok() },
            _ => {}
        }
        let lock = if i % 7 == 0 { &holder } else { &waiter };
        let polls = match i {
            // Right after a child took the lock: leave a pool job parked.
            151 | 451 => Polls::UntilParked(lock.path()),
            _ if i % 3 == 0 => Polls::Twice,
            _ => Polls::Once,
        };
        let got = match i % 4 {
            0 => poll_and_drop(lock.acquire_async(), polls),
            1 => poll_and_drop(lock.acquire_cancellable(&token), polls),
            2 => poll_and_drop(lock.acquire_until(future::pending()), polls),
            _ => poll_and_drop(
                lock.acquire_timeout_with(Duration::from_secs(3600), future::pending()),
                polls,
            ),
        };
        acquired += usize::from(got);
    }
    assert!(acquired > 0, "no acquire ever got the free lock");
    drop(held);
    wait_until_free(&waiter);
    waiter.acquire().expect("blocking acquire at the end").release().expect("release");
    drop(future::block_on(holder.acquire_async()).expect("async acquire at the end"));
}

/// The same by aborting tokio tasks that are acquiring.
#[test]
fn aborting_tokio_tasks_mid_acquire_leaves_nothing_behind() {
    const ROUNDS: usize = 300;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let dir = temp_dir();
    let holder = open(dir.path());
    let lock = Arc::new(open(dir.path()));
    let (mut held, mut child) = (None, None);
    for i in 0..ROUNDS {
        match i {
            100 => {
                held = None;
                child = Some(common::spawn_holder("hold", dir.path()));
            }
            200 => {
                release(child.take().expect("a holding child"));
                assert!(held.is_none());
                wait_until_free(&lock);
            }
            _ if i % 5 == 0 => held = if held.is_some() { None } else { holder.try_acquire().ok() },
            _ => {}
        }
        let shared = Arc::clone(&lock);
        let task = runtime.spawn(async move { shared.acquire_async().await.map(drop) });
        if i == 101 {
            // Let this one's pool job park in the kernel before the abort.
            wait_until_parked(lock.path());
        } else if i % 2 == 0 {
            thread::yield_now();
        }
        task.abort();
        match runtime.block_on(task) {
            Ok(result) => result.expect("acquire_async failed"),
            Err(e) => assert!(e.is_cancelled(), "task panicked: {e}"),
        }
    }
    drop(held);
    wait_until_free(&lock);
    let shared = Arc::clone(&lock);
    let last = runtime.block_on(async move { shared.acquire_async().await });
    drop(last.expect("acquire at the end"));
}

// --- tokio-util's token --------------------------------------------------------------

#[cfg(feature = "tokio")]
mod tokio_util_token {
    use super::*;
    use tokio_util::sync::CancellationToken as TokioToken;

    async fn cancel_pending_tokio(
        lock: &PackLock,
        ready: impl FnOnce() + Send + 'static,
    ) -> Duration {
        let token = TokioToken::new();
        let canceller = token.clone();
        cancel_pending(lock.acquire_cancellable(&token), ready, move || canceller.cancel()).await
    }

    #[test]
    fn an_already_cancelled_token_wins() {
        let dir = temp_dir();
        let lock = open(dir.path());
        let token = TokioToken::new();
        token.cancel();
        assert_cancelled(&future::block_on(lock.acquire_cancellable(&token)));
        assert_free(&lock, "a cancelled acquire kept the lock");
        let token = TokioToken::new();
        drop(future::block_on(lock.acquire_cancellable(&token)).expect("uncancelled token"));
    }

    #[test]
    fn cancel_while_queued_in_process() {
        let dir = temp_dir();
        let holder = open(dir.path());
        let hold = holder.acquire().expect("acquire");
        let path = dir.path().to_path_buf();
        let latency = run_on(Runtime::TokioMultiThread, async move {
            cancel_pending_tokio(&open(&path), || {}).await
        });
        assert_prompt(latency);
        drop(hold);
        assert_free(&holder, "a cancelled waiter stayed queued");
    }

    #[test]
    fn cancel_while_parked_at_the_os_lock() {
        let dir = temp_dir();
        let child = common::spawn_holder("hold", dir.path());
        let lock = Arc::new(open(dir.path()));
        let (shared, path) = (Arc::clone(&lock), lock.path().to_path_buf());
        let latency = run_on(Runtime::TokioCurrentThread, async move {
            cancel_pending_tokio(&shared, move || wait_until_parked(&path)).await
        });
        assert_prompt(latency);
        release(child);
        wait_until_free(&lock);
    }
}

// --- the seed's cancellation tests, ported -----------------------------------------------

/// An uncontended cancellable acquire returns the hold.
#[tokio::test]
async fn seed_acquire_cancellable_happy_path() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let token = CancellationToken::new();
    let hold = lock.acquire_cancellable(&token).await.expect("uncontended acquire");
    assert_eq!(hold.path(), lock.path());
}

/// Another process holds; the acquire waits in the blocking OS call on a
/// pool thread; a cancel from another task makes it return `Cancelled`
/// within 50 ms.
#[tokio::test]
async fn seed_cancel_during_the_blocking_os_wait_returns_cancelled_within_50_ms() {
    let dir = temp_dir();
    let child = common::spawn_holder("hold", dir.path());
    let lock = open(dir.path());
    let token = CancellationToken::new();
    let (canceller, path) = (token.clone(), lock.path().to_path_buf());
    let cancel = tokio::spawn(async move {
        tokio::task::spawn_blocking(move || wait_until_parked(&path)).await.expect("parked");
        let cancelled_at = Instant::now();
        canceller.cancel();
        cancelled_at
    });
    let result = tokio::time::timeout(common::DEADLINE, lock.acquire_cancellable(&token))
        .await
        .expect("acquire_cancellable hung after the cancel");
    let returned = Instant::now();
    assert_cancelled(&result);
    let waited = returned - cancel.await.expect("canceller panicked");
    assert!(waited < Duration::from_millis(50), "returned {waited:?} after the cancel");
    release(child);
}

/// After a cancelled acquire, the pool thread still parked in the OS call
/// releases the lock when it finally gets it: a third acquirer gets the
/// lock within 2 s of the holder letting go.
#[tokio::test]
async fn seed_the_pool_thread_releases_the_lock_when_it_finally_unblocks() {
    let dir = temp_dir();
    let child = common::spawn_holder("hold", dir.path());
    let path = dir.path().to_path_buf();
    let token = CancellationToken::new();
    let b = tokio::spawn({
        let (path, token) = (path.clone(), token.clone());
        async move { open(&path).acquire_cancellable(&token).await }
    });
    let sidecar = path.join(packlock::PACK_LOCK_FILE_NAME);
    tokio::task::spawn_blocking(move || wait_until_parked(&sidecar)).await.expect("parked");
    token.cancel();
    let b_result = tokio::time::timeout(Duration::from_millis(100), b)
        .await
        .expect("B must resolve quickly after the cancel")
        .expect("B panicked");
    assert_cancelled(&b_result);

    tokio::task::spawn_blocking(move || release(child)).await.expect("release");
    let c = open(&path);
    let c_result = tokio::time::timeout(Duration::from_secs(2), c.acquire_async())
        .await
        .expect("C never acquired: the pool thread kept the lock");
    drop(c_result.expect("C acquire"));
}

/// Another task of this process holds, so the acquire waits for the
/// in-process slot; a cancel makes it return `Cancelled` within 50 ms.
#[tokio::test]
async fn seed_cancel_during_the_in_process_wait_returns_cancelled_within_50_ms() {
    let dir = temp_dir();
    let path = dir.path().to_path_buf();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let a = tokio::spawn({
        let path = path.clone();
        async move {
            let _hold = open(&path).acquire_async().await.expect("A acquire");
            held_tx.send(()).expect("tell A holds");
            let _ = release_rx.await;
        }
    });
    held_rx.await.expect("A holds");

    let token = CancellationToken::new();
    let canceller = token.clone();
    let cancel = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let cancelled_at = Instant::now();
        canceller.cancel();
        cancelled_at
    });
    let lock = open(&path);
    let result = tokio::time::timeout(common::DEADLINE, lock.acquire_cancellable(&token))
        .await
        .expect("acquire_cancellable hung after the cancel");
    let returned = Instant::now();
    assert_cancelled(&result);
    let waited = returned - cancel.await.expect("canceller panicked");
    assert!(waited < Duration::from_millis(50), "returned {waited:?} after the cancel");

    release_tx.send(()).expect("release A");
    a.await.expect("A panicked");
    assert_free(&lock, "the lock is free after A released");
}
