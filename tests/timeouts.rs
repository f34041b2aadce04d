//! Acquiring with a time limit: the sync `acquire_timeout`, and the async
//! timeouts of each runtime adapter (`rt::tokio`, `rt::smol`,
//! `rt::async_std`) plus the runtime-agnostic `acquire_timeout_with`.
//!
//! Each succeeds on a free lock and when the holder lets go in time; gives
//! up with `TimedOut` (naming the path, never early) behind a holder in this
//! process or in another process; and leaves nothing behind — once the
//! holder lets go the lock is free, so a pool job left parked at the OS lock
//! released it. The sync timeout also must not spin while it waits.

#[macro_use]
mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{ChildArgs, assert_free, open, release, temp_dir, wait_until_free, wait_until_parked};
use futures_lite::future;
use packlock::{PackLock, PackLockError, PackLockHold};

/// The time limit of the timeouts that are meant to expire.
const SHORT: Duration = Duration::from_millis(100);

type Acquired = Result<PackLockHold, PackLockError>;

#[test]
fn child_process_entry() {
    common::child_process_entry(|args: &ChildArgs| match args.role.as_str() {
        "hold" => common::hold_until_told(&common::open(&args.dir)),
        other => panic!("unknown role {other}"),
    });
}

// --- helpers ----------------------------------------------------------------

/// `result` is a `TimedOut` for `lock` after `timeout`, whose message names
/// the lock file.
fn assert_timed_out(result: Acquired, lock: &PackLock, timeout: Duration) {
    let error = assert_err!(result, PackLockError::TimedOut, lock.path());
    let PackLockError::TimedOut { timeout: reported, .. } = error else { unreachable!() };
    assert_eq!(reported, timeout);
}

/// Runs `acquire` and checks it timed out, not before `timeout` had passed.
fn assert_times_out(lock: &PackLock, timeout: Duration, acquire: impl FnOnce() -> Acquired) {
    let started = Instant::now();
    let result = acquire();
    let waited = started.elapsed();
    assert_timed_out(result, lock, timeout);
    assert!(waited >= timeout, "gave up after {waited:?}, before the {timeout:?} timeout");
}

// --- the scenarios every timeout must pass -----------------------------------------

/// `acquire_timeout(lock, timeout)` as one of the timeouts under test: a
/// blocking call (it runs its runtime's `block_on`).
trait Timeout: Fn(&PackLock, Duration) -> Acquired + Sync {}
impl<T: Fn(&PackLock, Duration) -> Acquired + Sync> Timeout for T {}

fn check_timeouts(acquire_timeout: impl Timeout) {
    free_lock_is_acquired(&acquire_timeout);
    times_out_behind_a_holder_in_this_process(&acquire_timeout);
    times_out_behind_another_process(&acquire_timeout);
    succeeds_when_the_holder_releases_in_time(&acquire_timeout);
    the_longest_timeout_waits_without_limit(&acquire_timeout);
}

fn free_lock_is_acquired(acquire_timeout: &impl Timeout) {
    let dir = temp_dir();
    let lock = open(dir.path());
    let hold = acquire_timeout(&lock, SHORT).expect("acquire a free lock");
    assert_eq!(hold.path(), lock.path());
    assert!(lock.try_acquire().is_err(), "the hold does not hold");
}

/// Runs `f` while another thread of this process holds `lock` (the same
/// thread would be re-entrant: an error, not a wait).
fn with_holder_on_another_thread<R>(lock: &PackLock, f: impl FnOnce() -> R) -> R {
    thread::scope(|scope| {
        let (held, is_held) = std::sync::mpsc::channel();
        let (done, is_done) = std::sync::mpsc::channel::<()>();
        let holder = scope.spawn(move || {
            let _hold = lock.acquire().expect("acquire");
            held.send(()).expect("tell the test");
            let _ = is_done.recv();
        });
        is_held.recv().expect("the holder holds");
        let result = f();
        drop(done);
        holder.join().expect("holder panicked");
        result
    })
}

/// Waits behind another `PackLock` of this process and behind the same
/// one, gives up after the timeout, and stays in no queue.
fn times_out_behind_a_holder_in_this_process(acquire_timeout: &impl Timeout) {
    let dir = temp_dir();
    let holder = open(dir.path());
    let other = open(dir.path());
    with_holder_on_another_thread(&holder, || {
        for lock in [&other, &holder] {
            assert_times_out(lock, SHORT, || acquire_timeout(lock, SHORT));
        }
    });
    assert_free(&other, "a timed-out waiter stayed queued");
}

/// The wait happens at the OS lock; the pool job parked there lets go of
/// the lock once the holder releases it.
fn times_out_behind_another_process(acquire_timeout: &impl Timeout) {
    let dir = temp_dir();
    let child = common::spawn_holder("hold", dir.path());
    let lock = open(dir.path());
    assert_times_out(&lock, SHORT, || acquire_timeout(&lock, SHORT));
    assert!(lock.try_acquire().is_err(), "got the lock while the child holds it");
    release(child);
    wait_until_free(&lock);
}

fn succeeds_when_the_holder_releases_in_time(acquire_timeout: &impl Timeout) {
    let dir = temp_dir();
    let child = common::spawn_holder("hold", dir.path());
    let lock = open(dir.path());
    thread::scope(|scope| {
        let waiter = scope.spawn(|| acquire_timeout(&lock, common::DEADLINE).map(drop));
        wait_until_parked(lock.path());
        assert!(!waiter.is_finished(), "acquired while the child held the lock");
        release(child);
        waiter.join().expect("waiter panicked").expect("acquire once the child released");
    });
    assert_free(&lock, "the hold was not released");
}

/// `Duration::MAX` puts the deadline past what `Instant` can hold: that is
/// no deadline, on a free lock and behind another process alike.
fn the_longest_timeout_waits_without_limit(acquire_timeout: &impl Timeout) {
    let dir = temp_dir();
    let lock = open(dir.path());
    drop(acquire_timeout(&lock, Duration::MAX).expect("a free lock with Duration::MAX"));
    let child = common::spawn_holder("hold", dir.path());
    thread::scope(|scope| {
        let waiter = scope.spawn(|| acquire_timeout(&lock, Duration::MAX).map(drop));
        wait_until_parked(lock.path());
        assert!(!waiter.is_finished(), "acquired while the child held the lock");
        release(child);
        waiter.join().expect("waiter panicked").expect("acquire once the child released");
    });
    assert_free(&lock, "the hold was not released");
}

// --- sync ---------------------------------------------------------------------

fn sync_timeout(lock: &PackLock, timeout: Duration) -> Acquired {
    lock.acquire_timeout(timeout)
}

#[test]
fn sync_timeout_on_a_free_lock() {
    free_lock_is_acquired(&sync_timeout);
}

#[test]
fn sync_timeout_behind_a_holder_in_this_process() {
    times_out_behind_a_holder_in_this_process(&sync_timeout);
}

#[test]
fn sync_timeout_behind_another_process() {
    times_out_behind_another_process(&sync_timeout);
}

#[test]
fn sync_timeout_succeeds_when_the_holder_releases_in_time() {
    succeeds_when_the_holder_releases_in_time(&sync_timeout);
}

#[test]
fn sync_timeout_of_duration_max_waits_without_limit() {
    the_longest_timeout_waits_without_limit(&sync_timeout);
}

/// A zero timeout still takes a free lock (it tries once) and otherwise
/// gives up at once.
#[test]
fn sync_zero_timeout_tries_once() {
    let dir = temp_dir();
    let lock = open(dir.path());
    drop(lock.acquire_timeout(Duration::ZERO).expect("a free lock with a zero timeout"));
    with_holder_on_another_thread(&lock, || {
        let started = Instant::now();
        assert_timed_out(lock.acquire_timeout(Duration::ZERO), &lock, Duration::ZERO);
        assert!(started.elapsed() < Duration::from_secs(1), "a zero timeout waited");
    });
    assert_free(&lock, "a zero-timeout acquire stayed queued");
}

/// Many timed-out acquires behind another process leave one pool job at
/// most in the kernel, and it lets go once the holder releases.
#[test]
fn repeated_sync_timeouts_leave_at_most_one_waiter() {
    let dir = temp_dir();
    let child = common::spawn_holder("hold", dir.path());
    let lock = open(dir.path());
    for _ in 0..20 {
        let timeout = Duration::from_millis(5);
        assert_times_out(&lock, timeout, || lock.acquire_timeout(timeout));
    }
    #[cfg(target_os = "linux")]
    {
        let waiters = common::proc_locks::waiters_of(lock.path(), std::process::id());
        assert!(waiters <= 1, "{waiters} waiters of ours in the kernel");
    }
    release(child);
    wait_until_free(&lock);
}

/// Time this thread has spent on a CPU (Linux: the first field of
/// `/proc/thread-self/schedstat`, in nanoseconds).
#[cfg(target_os = "linux")]
fn cpu_time_of_this_thread() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("read schedstat");
    let nanos = stat.split_whitespace().next().expect("a field").parse().expect("a number");
    Duration::from_nanos(nanos)
}

/// A sync timeout parks its thread while it waits: over a 500 ms wait it
/// uses a small fraction of that on the CPU, behind a holder in this
/// process (in-process queue) and behind another process (OS lock).
#[cfg(target_os = "linux")]
#[test]
fn sync_timeout_does_not_spin() {
    const WAIT: Duration = Duration::from_millis(500);
    const CPU_BUDGET: Duration = Duration::from_millis(50);
    let dir = temp_dir();
    let lock = open(dir.path());
    let measure = |holder: &str| {
        let cpu = cpu_time_of_this_thread();
        assert_times_out(&lock, WAIT, || lock.acquire_timeout(WAIT));
        let used = cpu_time_of_this_thread() - cpu;
        eprintln!("a {WAIT:?} sync timeout behind {holder} used {used:?} of CPU");
        assert!(used < CPU_BUDGET, "used {used:?} of CPU behind {holder}: it spins");
    };

    with_holder_on_another_thread(&open(dir.path()), || measure("a holder in this process"));

    let child = common::spawn_holder("hold", dir.path());
    measure("another process");
    release(child);
    wait_until_free(&lock);
}

// --- async, with no runtime feature -----------------------------------------------------

/// `acquire_timeout_with` on async-io's timer under `futures_lite`'s
/// `block_on`: needs no feature.
#[test]
fn acquire_timeout_with_a_timer_under_block_on() {
    check_timeouts(|lock: &PackLock, timeout| {
        let sleep = async move {
            async_io::Timer::after(timeout).await;
        };
        future::block_on(lock.acquire_timeout_with(timeout, sleep))
    });
}

/// The timer is polled first: one that has already fired wins even over a
/// free lock (which is left free); one that never fires lets it be had.
#[test]
fn acquire_timeout_with_polls_the_timer_first() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let expired = lock.acquire_timeout_with(SHORT, std::future::ready(()));
    assert_timed_out(future::block_on(expired), &lock, SHORT);
    assert_free(&lock, "a timed-out acquire kept the lock");
    let never = lock.acquire_timeout_with(SHORT, future::pending());
    drop(future::block_on(never).expect("a timer that never fires"));
}

// --- async, per runtime feature ---------------------------------------------------------

#[cfg(feature = "tokio")]
mod tokio_timer {
    use super::*;

    fn on(runtime: &tokio::runtime::Runtime, lock: &PackLock, timeout: Duration) -> Acquired {
        runtime.block_on(packlock::rt::tokio::acquire_timeout(lock, timeout))
    }

    #[test]
    fn multi_thread() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("tokio runtime");
        check_timeouts(|lock: &PackLock, timeout| on(&runtime, lock, timeout));
    }

    #[test]
    fn current_thread() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime");
        check_timeouts(|lock: &PackLock, timeout| on(&runtime, lock, timeout));
    }

    /// Inside a task, as the adapter is meant to be used.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_a_task() {
        let dir = temp_dir();
        let lock = open(dir.path());
        let hold = lock.acquire().expect("acquire");
        let started = Instant::now();
        let result = packlock::rt::tokio::acquire_timeout(&lock, SHORT).await;
        assert!(started.elapsed() >= SHORT, "gave up early");
        assert_timed_out(result, &lock, SHORT);
        drop(hold);
        drop(packlock::rt::tokio::acquire_timeout(&lock, SHORT).await.expect("free lock"));
    }
}

#[cfg(feature = "smol")]
#[test]
fn smol_timer() {
    check_timeouts(|lock: &PackLock, timeout| {
        smol::block_on(packlock::rt::smol::acquire_timeout(lock, timeout))
    });
}

#[cfg(feature = "async-std")]
#[test]
fn async_std_timer() {
    check_timeouts(|lock: &PackLock, timeout| {
        async_std::task::block_on(packlock::rt::async_std::acquire_timeout(lock, timeout))
    });
}

/// With tokio's clock paused, an hour-long timeout behind a held lock
/// expires at once in wall-clock time (tokio auto-advances an idle
/// runtime's clock): the adapter sleeps on `tokio::time`. Needs tokio's
/// `test-util` feature (a dev-dependency feature here).
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn tokio_paused_clock_expires_an_hour_long_timeout_at_once() {
    const HOUR: Duration = Duration::from_secs(3600);
    /// Wall-clock limit: async-io's timer does not follow tokio's clock.
    const PROMPT: Duration = Duration::from_secs(10);
    let dir = temp_dir();
    let lock = open(dir.path());
    let check = async |holder: &str| {
        let acquire = async { Some(packlock::rt::tokio::acquire_timeout(&lock, HOUR).await) };
        let watchdog = async {
            async_io::Timer::after(PROMPT).await;
            None
        };
        match future::or(acquire, watchdog).await {
            Some(result) => assert_timed_out(result, &lock, HOUR),
            None => panic!("an hour-long timeout behind {holder} took real time"),
        }
    };
    let hold = open(dir.path()).acquire().expect("acquire");
    check("a holder in this process").await;
    drop(hold);
    let child = common::spawn_holder("hold", dir.path());
    check("another process").await;
    release(child);
    wait_until_free(&lock);
}
