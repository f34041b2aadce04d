//! Shared mode (`PackLock::builder(dir).shared(true)`): shared holds coexist
//! — in one process and across processes, and with util-linux `flock -s` —
//! and exclude exclusive holds both ways, whichever acquire flavour takes
//! them. In one process all shared holds of a file share one OS lease: one
//! `flock(LOCK_SH)` taken by the first and released by the last, with at
//! most one waiter in the kernel; cancelling shared acquires leaves nothing
//! behind; and re-entrant waiting acquires fail instead of hanging.

#[macro_use]
mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use common::open as exclusive;
use common::{Child, ChildArgs, DEADLINE, hold_until_told, section, temp_dir, wait_for_parent};
use futures_lite::future;
use packlock::{
    CancellationToken, PackLock, PackLockError, PackLockErrorOrCancelled, PackLockHold,
    with_tier_scope,
};

/// Gives a waiter that would wrongly be let in a moment to show itself
/// before the next step. Only makes the tests more sensitive: no assertion
/// depends on it passing or not.
const CHANCE: Duration = Duration::from_millis(20);

/// How quickly a cancelled acquire must return. Cancelling is immediate;
/// this only has to be far below [`DEADLINE`] on a slow machine.
#[cfg(target_os = "linux")]
const PROMPT: Duration = Duration::from_secs(5);

#[test]
fn child_process_entry() {
    common::child_process_entry(|args: &ChildArgs| match args.role.as_str() {
        "hold-shared" => hold_until_told(&shared(&args.dir)),
        "hold-exclusive" => hold_until_told(&exclusive(&args.dir)),
        "readers-writers" => readers_writers_child(&args.dir),
        #[cfg(target_os = "linux")]
        "cancel-many" => cancel_many(&args.dir),
        other => panic!("unknown role {other}"),
    });
}

fn shared(dir: &Path) -> PackLock {
    PackLock::builder(dir).shared(true).open().expect("open shared")
}

/// Every way to acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Acquire,
    TryAcquire,
    AcquireTimeout,
    AcquireAsync,
    AcquireCancellable,
    AcquireUntil,
}

const ALL: [Flavour; 6] = [
    Flavour::Acquire,
    Flavour::TryAcquire,
    Flavour::AcquireTimeout,
    Flavour::AcquireAsync,
    Flavour::AcquireCancellable,
    Flavour::AcquireUntil,
];

/// The flavours that wait for the lock.
const WAITING: [Flavour; 5] = [
    Flavour::Acquire,
    Flavour::AcquireTimeout,
    Flavour::AcquireAsync,
    Flavour::AcquireCancellable,
    Flavour::AcquireUntil,
];

impl Flavour {
    /// Acquires `lock` this way on the calling thread (the async flavours
    /// on `future::block_on`), never giving up before [`DEADLINE`].
    fn take(self, lock: &PackLock) -> Result<PackLockHold, PackLockError> {
        match self {
            Flavour::Acquire => lock.acquire(),
            Flavour::TryAcquire => lock.try_acquire(),
            Flavour::AcquireTimeout => lock.acquire_timeout(DEADLINE),
            Flavour::AcquireAsync => future::block_on(lock.acquire_async()),
            Flavour::AcquireCancellable => {
                let token = CancellationToken::new();
                future::block_on(lock.acquire_cancellable(&token)).map_err(not_cancelled)
            }
            Flavour::AcquireUntil => {
                future::block_on(lock.acquire_until(future::pending())).map_err(not_cancelled)
            }
        }
    }
}

fn not_cancelled(err: PackLockErrorOrCancelled) -> PackLockError {
    match err {
        PackLockErrorOrCancelled::Lock(err) => err,
        other => panic!("an acquire nobody cancelled returned {other:?}"),
    }
}

/// The async ways to acquire, for tasks (with the `tokio` feature, also
/// tokio-util's token and the tokio timeout).
#[derive(Clone, Copy, Debug)]
enum TaskFlavour {
    Async,
    Cancellable,
    Until,
    #[cfg(feature = "tokio")]
    TokioCancellable,
    #[cfg(feature = "tokio")]
    TokioTimeout,
}

const TASK_FLAVOURS: &[TaskFlavour] = &[
    TaskFlavour::Async,
    TaskFlavour::Cancellable,
    TaskFlavour::Until,
    #[cfg(feature = "tokio")]
    TaskFlavour::TokioCancellable,
    #[cfg(feature = "tokio")]
    TaskFlavour::TokioTimeout,
];

impl TaskFlavour {
    async fn take(self, lock: &PackLock) -> Result<PackLockHold, PackLockError> {
        match self {
            TaskFlavour::Async => lock.acquire_async().await,
            TaskFlavour::Cancellable => {
                let token = CancellationToken::new();
                lock.acquire_cancellable(&token).await.map_err(not_cancelled)
            }
            #[cfg(feature = "tokio")]
            TaskFlavour::TokioCancellable => {
                let token = tokio_util::sync::CancellationToken::new();
                lock.acquire_cancellable(&token).await.map_err(not_cancelled)
            }
            TaskFlavour::Until => {
                lock.acquire_until(future::pending()).await.map_err(not_cancelled)
            }
            #[cfg(feature = "tokio")]
            TaskFlavour::TokioTimeout => packlock::rt::tokio::acquire_timeout(lock, DEADLINE).await,
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// What a waiter reports: how it acquired, the result, and what a flag
/// said at the moment it got the lock.
type Report = (String, Result<PackLockHold, PackLockError>, usize);

/// Receives `n` reports, failing the test if one does not come in time.
fn collect(reports: &mpsc::Receiver<Report>, n: usize) -> Vec<Report> {
    (0..n)
        .map(|i| {
            reports
                .recv_timeout(DEADLINE)
                .unwrap_or_else(|e| panic!("only {i} of {n} acquires finished: {e}"))
        })
        .collect()
}

/// Starts a thread that acquires `lock` with `flavour` and reports the
/// hold (still held) with the value of `flag` when it got it.
fn spawn_thread_waiter(
    lock: Arc<PackLock>,
    flavour: Flavour,
    flag: Arc<AtomicUsize>,
    reports: &mpsc::Sender<Report>,
) {
    let reports = reports.clone();
    thread::spawn(move || {
        let result = flavour.take(&lock);
        let seen = flag.load(SeqCst);
        let _ = reports.send((format!("thread {flavour:?}"), result, seen));
    });
}

/// Starts a task that acquires `lock` with `flavour` and reports like
/// [`spawn_thread_waiter`].
fn spawn_task_waiter(
    runtime: &tokio::runtime::Runtime,
    lock: Arc<PackLock>,
    flavour: TaskFlavour,
    flag: Arc<AtomicUsize>,
    reports: &mpsc::Sender<Report>,
) {
    let reports = reports.clone();
    runtime.spawn(async move {
        let result = flavour.take(&lock).await;
        let seen = flag.load(SeqCst);
        let _ = reports.send((format!("task {flavour:?}"), result, seen));
    });
}

// ---------------------------------------------------------------------------
// 1. In one process
// ---------------------------------------------------------------------------

/// Shared holds taken every way, by threads and tasks, on one `PackLock`
/// or on one each, are all held at once.
#[test]
fn shared_holds_coexist_in_every_flavour_from_threads_and_tasks() {
    let runtime = runtime();
    for separate in [false, true] {
        let dir = temp_dir();
        let one = Arc::new(shared(dir.path()));
        let lock_for = || if separate { Arc::new(shared(dir.path())) } else { Arc::clone(&one) };
        let first = one.try_acquire().expect("the first shared hold");
        let flag = Arc::new(AtomicUsize::new(0));
        let (send, reports) = mpsc::channel();
        for flavour in WAITING {
            spawn_thread_waiter(lock_for(), flavour, Arc::clone(&flag), &send);
        }
        for &flavour in TASK_FLAVOURS {
            spawn_task_waiter(&runtime, lock_for(), flavour, Arc::clone(&flag), &send);
        }
        let mut holds = vec![first];
        for (how, result, _) in collect(&reports, WAITING.len() + TASK_FLAVOURS.len()) {
            let hold = result.unwrap_or_else(|e| panic!("{how} while shared holds live: {e}"));
            holds.push(hold);
        }
        // try_acquire never waits: on this thread, while all of them live.
        holds.push(one.try_acquire().expect("try_acquire beside shared holds"));
        holds.push(lock_for().try_acquire().expect("try_acquire of another shared lock"));
        let writer = exclusive(dir.path());
        assert_err!(
            writer.try_acquire(),
            PackLockError::Busy,
            writer.path(),
            "exclusive try_acquire beside shared holds"
        );
        drop(holds);
        drop(writer.try_acquire().expect("exclusive once every shared hold is gone"));
    }
}

/// Tasks hold shared holds across `.await` points and meet at a barrier
/// while holding, which only works if they all hold at once.
#[test]
fn tasks_hold_shared_holds_together_across_awaits() {
    const TASKS: usize = 6;
    let dir = temp_dir();
    let lock = Arc::new(shared(dir.path()));
    let runtime = runtime();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let (lock, barrier) = (Arc::clone(&lock), Arc::clone(&barrier));
                let separate = shared(dir.path());
                tokio::spawn(with_tier_scope(async move {
                    let lock = if i % 2 == 0 { &*lock } else { &separate };
                    let flavour = TASK_FLAVOURS[i % TASK_FLAVOURS.len()];
                    let hold = flavour.take(lock).await.expect("shared acquire");
                    tokio::task::yield_now().await;
                    barrier.wait().await;
                    drop(hold);
                }))
            })
            .collect();
        let all = async {
            for task in tasks {
                task.await.expect("task panicked");
            }
        };
        tokio::time::timeout(DEADLINE, all).await.expect("tasks never all held at once");
    });
    drop(exclusive(dir.path()).try_acquire().expect("free after the tasks"));
}

/// While shared holds live an exclusive `try_acquire` is `Busy`, and an
/// exclusive acquire of every waiting flavour gets the lock only after the
/// last of them is dropped — whichever order they go in.
#[test]
fn an_exclusive_acquire_waits_for_the_last_shared_hold() {
    let runtime = runtime();
    for (round, flavour) in WAITING.into_iter().enumerate() {
        let dir = temp_dir();
        let readers = Arc::new(shared(dir.path()));
        let other_readers = shared(dir.path());
        let mut holds = vec![
            readers.acquire().expect("shared acquire"),
            other_readers.try_acquire().expect("shared try_acquire"),
            {
                let readers = Arc::clone(&readers);
                thread::spawn(move || readers.acquire().expect("shared acquire on a thread"))
                    .join()
                    .expect("thread")
            },
            runtime.block_on(readers.acquire_async()).expect("shared acquire_async"),
        ];
        // Shared holds live: counted down *before* each is dropped, so a
        // writer that sees a non-zero count got in while one still lived.
        let live = Arc::new(AtomicUsize::new(holds.len()));
        let writer = Arc::new(exclusive(dir.path()));
        assert_err!(
            writer.try_acquire(),
            PackLockError::Busy,
            writer.path(),
            "exclusive try_acquire beside shared holds"
        );
        let (send, reports) = mpsc::channel();
        spawn_thread_waiter(Arc::clone(&writer), flavour, Arc::clone(&live), &send);
        // A task waiter as well, on every other round.
        let task_flavour = TASK_FLAVOURS[round % TASK_FLAVOURS.len()];
        if round % 2 == 0 {
            spawn_task_waiter(
                &runtime,
                Arc::clone(&writer),
                task_flavour,
                Arc::clone(&live),
                &send,
            );
        }
        // Release in a different order each round.
        let by = round % holds.len();
        holds.rotate_left(by);
        while let Some(hold) = holds.pop() {
            thread::sleep(CHANCE);
            assert!(
                reports.try_recv().is_err(),
                "{flavour:?}: an exclusive acquire returned while {} shared holds lived",
                holds.len() + 1
            );
            live.fetch_sub(1, SeqCst);
            drop(hold);
        }
        let waiters = if round % 2 == 0 { 2 } else { 1 };
        for _ in 0..waiters {
            let (how, result, seen) = reports.recv_timeout(DEADLINE).expect("an exclusive waiter");
            let hold = result.unwrap_or_else(|e| panic!("{how} after the shared holds: {e}"));
            assert_eq!(seen, 0, "{how} got the lock while {seen} shared holds lived");
            // The other exclusive waiter, if any, is still waiting: drop
            // this one so it can go on.
            drop(hold);
        }
    }
}

/// While an exclusive hold lives a shared `try_acquire` is `Busy`, and
/// shared acquires of every waiting flavour, from threads and tasks, get
/// the lock after it is dropped — all of them together.
#[test]
fn shared_acquires_wait_for_an_exclusive_hold_then_hold_together() {
    let runtime = runtime();
    let dir = temp_dir();
    let writer = exclusive(dir.path());
    let one = Arc::new(shared(dir.path()));
    let held = writer.acquire().expect("exclusive acquire");
    assert_err!(
        one.try_acquire(),
        PackLockError::Busy,
        one.path(),
        "shared try_acquire beside an exclusive hold"
    );
    assert_err!(
        shared(dir.path()).try_acquire(),
        PackLockError::Busy,
        one.path(),
        "shared try_acquire of another lock"
    );
    let writer_live = Arc::new(AtomicUsize::new(1));
    let (send, reports) = mpsc::channel();
    for (i, flavour) in WAITING.into_iter().enumerate() {
        let lock = if i % 2 == 0 { Arc::clone(&one) } else { Arc::new(shared(dir.path())) };
        spawn_thread_waiter(lock, flavour, Arc::clone(&writer_live), &send);
    }
    for (i, &flavour) in TASK_FLAVOURS.iter().enumerate() {
        let lock = if i % 2 == 1 { Arc::clone(&one) } else { Arc::new(shared(dir.path())) };
        spawn_task_waiter(&runtime, lock, flavour, Arc::clone(&writer_live), &send);
    }
    thread::sleep(CHANCE);
    assert!(reports.try_recv().is_err(), "a shared acquire returned beside an exclusive hold");
    writer_live.store(0, SeqCst);
    drop(held);
    let mut holds = Vec::new();
    for (how, result, seen) in collect(&reports, WAITING.len() + TASK_FLAVOURS.len()) {
        holds.push(result.unwrap_or_else(|e| panic!("{how} after the exclusive hold: {e}")));
        assert_eq!(seen, 0, "{how} got the lock while the exclusive hold lived");
    }
    // All of them at once, and they keep exclusive holds out.
    assert_err!(
        writer.try_acquire(),
        PackLockError::Busy,
        writer.path(),
        "exclusive try_acquire beside shared holds"
    );
    drop(holds);
    drop(writer.try_acquire().expect("exclusive once the shared holds are gone"));
}

/// Rounds per thread of the two churn tests below on Windows. Every acquire
/// opens the lock file once more to check it is still at its path; Wine keeps
/// the Unix descriptor of each such handle, closed or not, while the process
/// holds any lock on the file, and these tests always hold one: more rounds
/// exhaust Wine's descriptors (`.ci/wine/deviations/close-while-locked.c`).
const WINE_ROUNDS: usize = 2_000;

/// Shared `try_acquire`s beside a live shared hold must all succeed, even
/// when many threads make them at once: nothing but an exclusive holder
/// makes a shared lock busy. (Stops at the first `Busy`.)
#[test]
fn concurrent_shared_try_acquires_beside_a_shared_hold_all_succeed() {
    const THREADS: usize = 4;
    const ROUNDS: usize = if cfg!(windows) { WINE_ROUNDS } else { 50_000 };
    let dir = temp_dir();
    let lock = shared(dir.path());
    let _anchor = lock.acquire().expect("shared acquire");
    let busy = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| try_until_busy(&lock, ROUNDS, &busy));
        }
    });
    assert_eq!(busy.load(SeqCst), 0, "a shared try_acquire beside only shared holds was Busy");
}

/// Takes and drops `lock` with `try_acquire` up to `rounds` times, counting
/// a `Busy` in `busy` and stopping at the first one any thread found.
fn try_until_busy(lock: &PackLock, rounds: usize, busy: &AtomicUsize) {
    for _ in 0..rounds {
        if busy.load(SeqCst) > 0 {
            return; // found one: enough
        }
        match lock.try_acquire() {
            Ok(hold) => drop(hold),
            Err(PackLockError::Busy { .. }) => {
                busy.fetch_add(1, SeqCst);
            }
            Err(e) => panic!("shared try_acquire: {e}"),
        }
    }
}

/// Shared `try_acquire`s on a free lock must all succeed too, even while
/// another one is taking the OS lock for the process: they wait for its
/// non-blocking attempt and join, rather than report a conflict that does
/// not exist. One thread per `PackLock`, so that the OS lock is taken on
/// one open file and joined through another. (Stops at the first `Busy`.)
#[test]
fn concurrent_shared_try_acquires_on_a_free_lock_are_never_busy() {
    const THREADS: usize = 2;
    const ROUNDS: usize = 20_000;
    let dir = temp_dir();
    let locks: Vec<PackLock> = (0..THREADS).map(|_| shared(dir.path())).collect();
    let busy = AtomicUsize::new(0);
    thread::scope(|scope| {
        for lock in &locks {
            let busy = &busy;
            scope.spawn(move || try_until_busy(lock, ROUNDS, busy));
        }
    });
    assert_eq!(busy.load(SeqCst), 0, "a shared try_acquire on a free lock was Busy");
    drop(exclusive(dir.path()).try_acquire().expect("free after the rounds"));
}

/// A shared `try_acquire` is still `Busy` beside an exclusive lock that is
/// not packlock's (a std `File` lock on another open file), also while a
/// shared acquire of this process waits in the kernel for that lock to go —
/// and it says so at once instead of waiting with it. Once the exclusive
/// lock goes, the waiter holds and the try joins it.
#[test]
fn a_shared_try_acquire_is_busy_beside_an_exclusive_file_lock() {
    let dir = temp_dir();
    let readers = shared(dir.path());
    let file = fs::File::open(readers.path()).expect("open the lock file");
    file.lock().expect("exclusive std lock");
    assert_err!(
        readers.try_acquire(),
        PackLockError::Busy,
        readers.path(),
        "shared try_acquire beside an exclusive lock"
    );
    thread::scope(|scope| {
        let waiter = scope.spawn(|| readers.acquire().expect("shared acquire"));
        common::wait_until_parked(readers.path());
        // Not scoped, so that a try that hangs fails the test.
        let (tried, outcome) = mpsc::channel();
        let other_readers = shared(dir.path());
        thread::spawn(move || tried.send(other_readers.try_acquire()).expect("report"));
        let outcome = outcome.recv_timeout(DEADLINE).expect("the try waited for the waiter");
        let what = "shared try_acquire beside an exclusive lock and a waiter";
        assert_err!(outcome, PackLockError::Busy, readers.path(), what);
        drop(file); // closing releases the lock (and never trips Wine's unlock)
        let held = waiter.join().expect("waiter panicked");
        drop(readers.try_acquire().expect("a shared try_acquire joins the shared hold"));
        drop(held);
    });
    drop(exclusive(dir.path()).try_acquire().expect("free at the end"));
}

/// A shared `try_acquire` never waits for another acquire, whatever state
/// that one is in — here an async shared acquire that was queued, woken
/// and refused, and then never polled again on this very thread (which
/// leaves an async mutex it queued on refusing `try_lock` for good). Tries
/// are `Busy` at once while a waiter of ours waits in the kernel behind an
/// exclusive lock, and succeed at once when the lock is free. (Linux: the
/// states are set up by seeing the waiter parked in `/proc/locks`.)
#[cfg(target_os = "linux")]
#[test]
fn a_shared_try_acquire_never_waits_for_other_acquires() {
    let dir = temp_dir();
    let readers = shared(dir.path());
    let try_elsewhere = |outcome: &str| {
        let (tried, tried_rx) = mpsc::channel();
        let other_readers = shared(dir.path());
        // Not scoped, so that a try that hangs fails the test.
        thread::spawn(move || tried.send(other_readers.try_acquire()).expect("report"));
        let tried = tried_rx.recv_timeout(DEADLINE);
        tried.unwrap_or_else(|_| panic!("a shared try_acquire waited ({outcome})"))
    };
    // Another process's exclusive lock, and a reader of ours waiting in
    // the kernel for it.
    let blocker = || {
        let file = fs::File::open(readers.path()).expect("open the lock file");
        file.lock().expect("exclusive std lock");
        file
    };
    let wait_behind = |file: fs::File| {
        thread::scope(|scope| {
            let waiter = scope.spawn(|| readers.acquire().expect("shared acquire"));
            common::wait_until_parked(readers.path());
            let what = "a shared try_acquire beside a reader waiting in the kernel";
            assert_err!(try_elsewhere("held"), PackLockError::Busy, readers.path(), what);
            drop(file); // the exclusive lock goes
            waiter.join().expect("waiter panicked")
        })
    };
    let mut queued = Box::pin(readers.acquire_async());
    let held = thread::scope(|scope| {
        let file = blocker();
        let waiter = scope.spawn(|| readers.acquire().expect("shared acquire"));
        common::wait_until_parked(readers.path());
        assert!(future::block_on(future::poll_once(&mut queued)).is_none());
        // Setup, not a check: let the queued acquire age past async-lock's
        // 0.5 ms, after which a refused wake-up makes it "starved".
        thread::sleep(Duration::from_millis(2));
        drop(file);
        waiter.join().expect("waiter panicked")
    });
    drop(held);
    // Woken, but refused: another reader waits in the kernel now.
    let file = blocker();
    thread::scope(|scope| {
        let waiter = scope.spawn(|| readers.acquire().expect("shared acquire"));
        common::wait_until_parked(readers.path());
        assert!(future::block_on(future::poll_once(&mut queued)).is_none());
        drop(file);
        drop(waiter.join().expect("waiter panicked"));
    });
    // `queued` is never polled again: the lock is free.
    drop(try_elsewhere("free").expect("a free lock"));
    drop(readers.try_acquire().expect("a free lock, on this thread"));
    // (Waiting acquires queue behind `queued`, fairly, until it goes.)
    drop(queued);
    drop(wait_behind(blocker()));
    drop(exclusive(dir.path()).try_acquire().expect("free at the end"));
}

/// Within a process writers go first: while an exclusive acquire of this
/// process waits, a shared `try_acquire` is `Busy` although only shared
/// holds exist (and another process's `flock -s -n` gets the lock), and
/// the writer gets the lock when the last shared hold goes.
#[test]
fn a_waiting_writer_of_this_process_makes_shared_try_acquires_busy() {
    let dir = temp_dir();
    let readers = shared(dir.path());
    let writer = exclusive(dir.path());
    let reading = readers.try_acquire().expect("a free lock");
    let mut writing = Box::pin(writer.acquire_async());
    assert!(future::block_on(future::poll_once(&mut writing)).is_none(), "a reader holds it");
    let what = "a shared try_acquire while a writer of this process waits";
    assert_err!(readers.try_acquire(), PackLockError::Busy, readers.path(), what);
    #[cfg(target_os = "linux")]
    assert_eq!(common::flock::nonblocking(readers.path(), &["-s"]), 0, "flock -s -n");
    drop(reading);
    let written = future::block_on(writing).expect("the writer gets the lock");
    drop(written);
    drop(readers.try_acquire().expect("free again"));
}

/// A live shared hold means the OS lock is held: another open file of the
/// same lock file can never take it exclusively, however quickly shared
/// holds on one `PackLock` come and go around it. (Stops at the first hold
/// found without the OS lock.)
#[test]
fn the_os_lock_is_held_whenever_a_shared_hold_lives() {
    const THREADS: usize = 6;
    const ROUNDS: usize = if cfg!(windows) { WINE_ROUNDS } else { 60_000 };
    let dir = temp_dir();
    let lock = shared(dir.path());
    let unprotected = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                let probe = fs::File::open(lock.path()).expect("open probe");
                for _ in 0..ROUNDS {
                    if unprotected.load(SeqCst) > 0 {
                        break;
                    }
                    let hold = lock.acquire().expect("shared acquire");
                    match probe.try_lock() {
                        Ok(()) => {
                            unprotected.fetch_add(1, SeqCst);
                            probe.unlock().expect("unlock probe");
                        }
                        Err(fs::TryLockError::WouldBlock) => {}
                        Err(fs::TryLockError::Error(e)) => panic!("probe: {e}"),
                    }
                    drop(hold);
                }
            });
        }
    });
    let unprotected = unprotected.load(SeqCst);
    assert_eq!(unprotected, 0, "a shared hold lived without the OS lock");
}

// ---------------------------------------------------------------------------
// 2. The shared OS lease
// ---------------------------------------------------------------------------

/// Three shared holds — on two `PackLock`s, one taken on another thread —
/// share one OS lock, which stays held until the last of them is dropped,
/// in whatever order they go.
#[cfg(target_os = "linux")]
#[test]
fn one_os_lease_is_held_until_the_last_shared_hold_is_dropped() {
    let me = std::process::id();
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1]] {
        let dir = temp_dir();
        let first = Arc::new(shared(dir.path()));
        let second = shared(dir.path());
        let path = first.path().to_path_buf();
        let mut holds: Vec<Option<PackLockHold>> = vec![
            Some(first.acquire().expect("shared acquire")),
            Some(second.try_acquire().expect("shared try_acquire of another lock")),
            Some({
                let first = Arc::clone(&first);
                thread::spawn(move || future::block_on(first.acquire_async()))
                    .join()
                    .expect("thread")
                    .expect("shared acquire_async on a thread")
            }),
        ];
        // The holds own what they need: the locks themselves may go.
        drop((first, second));
        assert_eq!(
            common::proc_locks::holders_of(&path, me),
            1,
            "one OS lock for all shared holds"
        );
        assert_eq!(common::proc_locks::waiters_of(&path, me), 0);
        assert_eq!(
            common::flock::nonblocking(&path, &["-s"]),
            0,
            "flock -s beside our shared holds"
        );
        for (n, &i) in order.iter().enumerate() {
            assert_eq!(
                common::flock::nonblocking(&path, &["-x"]),
                1,
                "flock -x beside shared holds"
            );
            drop(holds[i].take());
            let left = order.len() - n - 1;
            if left > 0 {
                assert_eq!(
                    common::proc_locks::holders_of(&path, me),
                    1,
                    "{left} shared holds left"
                );
            }
        }
        assert_eq!(
            common::proc_locks::holders_of(&path, me),
            0,
            "the last shared hold released the OS lock"
        );
        assert_eq!(
            common::flock::nonblocking(&path, &["-x"]),
            0,
            "flock -x once the shared holds are gone"
        );
    }
}

/// `release()` of a shared hold that is not the last keeps the OS lock;
/// of the last one, unlocks it.
#[cfg(target_os = "linux")]
#[test]
fn release_of_a_shared_hold_unlocks_only_when_it_is_the_last() {
    let dir = temp_dir();
    let lock = shared(dir.path());
    let a = lock.acquire().expect("shared acquire");
    let b = lock.try_acquire().expect("shared try_acquire");
    a.release().expect("release one of two");
    assert_eq!(common::flock::nonblocking(lock.path(), &["-x"]), 1, "one shared hold still lives");
    b.release().expect("release the last");
    assert_eq!(common::flock::nonblocking(lock.path(), &["-x"]), 0, "no shared hold lives");
}

// ---------------------------------------------------------------------------
// 3. Across processes
// ---------------------------------------------------------------------------

#[test]
fn shared_holds_of_children_and_parent_coexist() {
    let dir = temp_dir();
    let mut children: Vec<Child> =
        (0..2).map(|_| Child::spawn("hold-shared", dir.path())).collect();
    for child in &children {
        child.expect("locked");
    }
    let lock = shared(dir.path());
    for flavour in ALL {
        let hold = flavour.take(&lock).unwrap_or_else(|e| panic!("{flavour:?}: {e}"));
        drop(hold);
    }
    let runtime = runtime();
    for &flavour in TASK_FLAVOURS {
        let hold = runtime.block_on(flavour.take(&lock));
        drop(hold.unwrap_or_else(|e| panic!("{flavour:?}: {e}")));
    }
    let hold = lock.acquire().expect("shared acquire beside shared children");
    let writer = exclusive(dir.path());
    for child in &mut children {
        child.proceed();
        child.expect("released");
        assert_err!(
            writer.try_acquire(),
            PackLockError::Busy,
            writer.path(),
            "exclusive while our shared hold lives"
        );
    }
    drop(hold);
    drop(writer.try_acquire().expect("exclusive once every shared hold is gone"));
    for child in children {
        child.join();
    }
}

#[test]
fn a_shared_child_blocks_exclusive_acquires_of_the_parent() {
    let dir = temp_dir();
    let mut child = Child::spawn("hold-shared", dir.path());
    child.expect("locked");
    let writer = exclusive(dir.path());
    assert_err!(
        writer.try_acquire(),
        PackLockError::Busy,
        writer.path(),
        "exclusive try_acquire beside a shared child"
    );
    match writer.acquire_timeout(Duration::from_millis(100)) {
        Err(PackLockError::TimedOut { .. }) => {}
        other => panic!("expected TimedOut, got {other:?}"),
    }
    let token = CancellationToken::new();
    token.cancel();
    let cancelled = future::block_on(writer.acquire_cancellable(&token));
    assert!(matches!(cancelled, Err(PackLockErrorOrCancelled::Cancelled)), "{cancelled:?}");
    let may_acquire = AtomicBool::new(false);
    thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let hold = writer.acquire();
            (hold.map(drop), may_acquire.load(SeqCst))
        });
        common::wait_until_parked(writer.path());
        assert!(!waiter.is_finished(), "exclusive acquired beside a shared child");
        may_acquire.store(true, SeqCst);
        child.proceed();
        child.expect("released");
        let (result, allowed) = waiter.join().expect("waiter panicked");
        result.expect("exclusive acquire once the child released");
        assert!(allowed, "exclusive acquired before the child released");
    });
    child.join();
}

#[test]
fn an_exclusive_child_blocks_shared_acquires_of_the_parent() {
    let dir = temp_dir();
    let mut child = Child::spawn("hold-exclusive", dir.path());
    child.expect("locked");
    let readers = Arc::new(shared(dir.path()));
    assert_err!(
        readers.try_acquire(),
        PackLockError::Busy,
        readers.path(),
        "shared try_acquire beside an exclusive child"
    );
    match readers.acquire_timeout(Duration::from_millis(100)) {
        Err(PackLockError::TimedOut { .. }) => {}
        other => panic!("expected TimedOut, got {other:?}"),
    }
    let child_live = Arc::new(AtomicUsize::new(1));
    let (send, reports) = mpsc::channel();
    for (i, flavour) in WAITING.into_iter().enumerate() {
        let lock = if i % 2 == 0 { Arc::clone(&readers) } else { Arc::new(shared(dir.path())) };
        spawn_thread_waiter(lock, flavour, Arc::clone(&child_live), &send);
    }
    common::wait_until_parked(readers.path());
    thread::sleep(CHANCE);
    assert!(reports.try_recv().is_err(), "shared acquired beside an exclusive child");
    child_live.store(0, SeqCst);
    child.proceed();
    child.expect("released");
    let mut holds = Vec::new();
    for (how, result, seen) in collect(&reports, WAITING.len()) {
        holds.push(result.unwrap_or_else(|e| panic!("{how} once the child released: {e}")));
        assert_eq!(seen, 0, "{how} got the lock before the child released");
    }
    drop(holds);
    child.join();
}

/// util-linux `flock(1)` sees our shared holds as shared and our exclusive
/// holds as exclusive.
#[cfg(target_os = "linux")]
#[test]
fn flock_sees_our_shared_and_exclusive_holds() {
    let dir = temp_dir();
    let readers = shared(dir.path());
    let writer = exclusive(dir.path());
    let path = readers.path();
    let hold = readers.acquire().expect("shared acquire");
    assert_eq!(common::flock::nonblocking(path, &["-s"]), 0, "flock -s beside our shared hold");
    assert_eq!(common::flock::nonblocking(path, &["-x"]), 1, "flock -x beside our shared hold");
    drop(hold);
    let hold = writer.acquire().expect("exclusive acquire");
    assert_eq!(common::flock::nonblocking(path, &["-s"]), 1, "flock -s beside our exclusive hold");
    assert_eq!(common::flock::nonblocking(path, &["-x"]), 1, "flock -x beside our exclusive hold");
    drop(hold);
    assert_eq!(common::flock::nonblocking(path, &["-s"]), 0, "flock -s with no hold");
    assert_eq!(common::flock::nonblocking(path, &["-x"]), 0, "flock -x with no hold");
}

#[cfg(target_os = "linux")]
#[test]
fn our_try_acquires_against_flock_holders() {
    let dir = temp_dir();
    let readers = shared(dir.path());
    let writer = exclusive(dir.path());
    let path = readers.path().to_path_buf();

    let flock = common::flock::Holder::start(&path, "-s");
    let hold = readers.try_acquire().expect("shared try_acquire beside flock -s");
    assert_err!(
        writer.try_acquire(),
        PackLockError::Busy,
        writer.path(),
        "exclusive try_acquire beside flock -s"
    );
    drop(hold);
    assert_err!(
        writer.try_acquire(),
        PackLockError::Busy,
        writer.path(),
        "exclusive try_acquire beside flock -s"
    );
    flock.stop();
    drop(writer.try_acquire().expect("exclusive once flock -s exited"));

    let flock = common::flock::Holder::start(&path, "-x");
    assert_err!(
        readers.try_acquire(),
        PackLockError::Busy,
        readers.path(),
        "shared try_acquire beside flock -x"
    );
    assert_err!(
        writer.try_acquire(),
        PackLockError::Busy,
        writer.path(),
        "exclusive try_acquire beside flock -x"
    );
    flock.stop();
    drop(readers.try_acquire().expect("shared once flock -x exited"));
    drop(writer.try_acquire().expect("exclusive once flock -x exited"));
}

// ---------------------------------------------------------------------------
// 4. Readers and writers across processes
// ---------------------------------------------------------------------------

const RW_THREADS: usize = 3;
const RW_TASKS: usize = 2;
const RW_ROUNDS: usize = 40;
/// Out of 100: how many sections are exclusive.
const WRITE_PERCENT: u64 = 30;

/// What one process saw.
#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    writes: u64,
    reads: u64,
    overlaps: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.writes += other.writes;
        self.reads += other.reads;
        self.overlaps += other.overlaps;
    }
}

/// A small deterministic generator, seeded differently per worker.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn percent(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 100
    }
}

fn readers_inside(dir: &Path) -> bool {
    fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("dir entry").file_name())
        .any(|name| name.to_string_lossy().starts_with("reader-"))
}

fn writer_inside(dir: &Path) -> bool {
    dir.join("occupied").exists()
}

/// A reader's critical section: announce itself with a marker file, check
/// twice (around a yield) that no writer is inside, take the marker away.
fn read_section(dir: &Path, id: &str, tally: &mut Tally) {
    let marker = dir.join(format!("reader-{id}"));
    fs::write(&marker, b"").expect("create reader marker");
    tally.overlaps += u64::from(writer_inside(dir));
    thread::yield_now();
    tally.overlaps += u64::from(writer_inside(dir));
    fs::remove_file(&marker).expect("remove reader marker");
    tally.reads += 1;
}

/// A writer's critical section: the occupancy marker (which fails on a
/// second writer) and the counter, checking twice that no reader is inside.
fn write_section(dir: &Path, tally: &mut Tally) {
    let seen = section::enter(dir);
    tally.overlaps += u64::from(readers_inside(dir));
    thread::yield_now();
    tally.overlaps += u64::from(readers_inside(dir));
    section::leave(dir, seen);
    tally.writes += 1;
}

/// One process's share of the readers/writers run: threads with locks of
/// their own (one of each mode, plus a fresh one now and then), and tasks
/// sharing two locks.
fn readers_writers(dir: &Path) -> Tally {
    let pid = u64::from(std::process::id());
    let threads: Vec<_> = (0..RW_THREADS)
        .map(|worker| {
            let dir = dir.to_path_buf();
            thread::spawn(move || {
                let (readers, writers) = (shared(&dir), exclusive(&dir));
                let mut random = XorShift::new(pid * 100 + worker as u64);
                let mut tally = Tally::default();
                for round in 0..RW_ROUNDS {
                    let write = random.percent() < WRITE_PERCENT;
                    let fresh = round % 5 == 0;
                    let lock = match (write, fresh) {
                        (true, true) => &exclusive(&dir),
                        (true, false) => &writers,
                        (false, true) => &shared(&dir),
                        (false, false) => &readers,
                    };
                    let hold = lock.acquire().expect("acquire");
                    if write {
                        write_section(&dir, &mut tally);
                    } else {
                        read_section(&dir, &format!("{pid}-t{worker}-{round}"), &mut tally);
                    }
                    drop(hold);
                }
                tally
            })
        })
        .collect();
    let readers = Arc::new(shared(dir));
    let writers = Arc::new(exclusive(dir));
    let tasks: Vec<_> = (0..RW_TASKS)
        .map(|worker| {
            let (readers, writers) = (Arc::clone(&readers), Arc::clone(&writers));
            let dir = dir.to_path_buf();
            async move {
                let mut random = XorShift::new(pid * 100 + 50 + worker as u64);
                let mut tally = Tally::default();
                for round in 0..RW_ROUNDS {
                    let write = random.percent() < WRITE_PERCENT;
                    let lock = if write { &writers } else { &readers };
                    let hold = lock.acquire_async().await.expect("acquire_async");
                    tokio::task::yield_now().await;
                    if write {
                        write_section(&dir, &mut tally);
                    } else {
                        read_section(&dir, &format!("{pid}-a{worker}-{round}"), &mut tally);
                    }
                    drop(hold);
                }
                tally
            }
        })
        .collect();
    let runtime = runtime();
    let mut total = Tally::default();
    runtime.block_on(async {
        let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
        for handle in handles {
            total.add(handle.await.expect("task panicked"));
        }
    });
    for thread in threads {
        total.add(thread.join().expect("thread panicked"));
    }
    total
}

/// Child role: run [`readers_writers`] when the parent says go, and leave
/// the tally in a file for the parent.
fn readers_writers_child(dir: &Path) {
    wait_for_parent();
    let tally = readers_writers(dir);
    let text = format!("{} {} {}", tally.writes, tally.reads, tally.overlaps);
    fs::write(dir.join(format!("tally-{}", std::process::id())), text).expect("write tally");
}

fn read_tally(path: &Path) -> Tally {
    let text = fs::read_to_string(path).expect("read tally");
    let numbers: Vec<u64> = text.split(' ').map(|n| n.parse().expect("a number")).collect();
    Tally { writes: numbers[0], reads: numbers[1], overlaps: numbers[2] }
}

#[test]
fn readers_and_writers_across_processes_never_overlap_and_lose_no_update() {
    let dir = temp_dir();
    let mut children: Vec<Child> =
        (0..2).map(|_| Child::spawn("readers-writers", dir.path())).collect();
    for child in &mut children {
        child.proceed();
    }
    let mut total = readers_writers(dir.path());
    let ids: Vec<u32> = children.iter().map(Child::id).collect();
    for child in children {
        child.join();
    }
    for id in ids {
        total.add(read_tally(&dir.path().join(format!("tally-{id}"))));
    }
    assert_eq!(total.overlaps, 0, "readers and writers overlapped: {total:?}");
    assert_eq!(total.writes + total.reads, 3 * ((RW_THREADS + RW_TASKS) * RW_ROUNDS) as u64);
    assert!(total.writes > 0 && total.reads > 0, "both kinds ran: {total:?}");
    assert_eq!(section::count(dir.path()), total.writes, "updates were lost: {total:?}");
}

// ---------------------------------------------------------------------------
// 5. Cancellation in shared mode
// ---------------------------------------------------------------------------

#[cfg(target_os = "linux")]
fn thread_count() -> usize {
    fs::read_dir("/proc/self/task").expect("read /proc/self/task").count()
}

/// Child role (its own process, so that its thread count is its own):
/// while another process holds the lock exclusively, 50 shared
/// `acquire_cancellable`s — the first parked in the kernel, the others
/// behind it — are cancelled; each returns promptly, and they leave at most
/// one waiter in the kernel and two more threads. Once the parent says the
/// holder released, the lock must come free.
#[cfg(target_os = "linux")]
fn cancel_many(dir: &Path) {
    use common::proc_locks::waiters_of;
    use std::pin::pin;
    use std::time::Instant;
    let me = std::process::id();
    let lock = shared(dir);
    let path = lock.path().to_path_buf();
    let threads_before = thread_count();
    for i in 0..50 {
        let fresh;
        let lock = if i % 2 == 0 {
            &lock
        } else {
            fresh = shared(dir);
            &fresh
        };
        let token = CancellationToken::new();
        let mut acquiring = pin!(lock.acquire_cancellable(&token));
        let first_poll = future::block_on(future::poll_once(&mut acquiring));
        assert!(first_poll.is_none(), "acquired beside an exclusive holder: {first_poll:?}");
        if i == 0 {
            common::wait_until_parked(&path);
        }
        token.cancel();
        let cancelled_at = Instant::now();
        let result = future::block_on(acquiring);
        let took = cancelled_at.elapsed();
        assert!(matches!(result, Err(PackLockErrorOrCancelled::Cancelled)), "{i}: {result:?}");
        assert!(took < PROMPT, "{i}: cancelling took {took:?}");
        assert!(waiters_of(&path, me) <= 1, "{i}: more than one waiter of ours in the kernel");
        let threads = thread_count();
        assert!(threads <= threads_before + 2, "{i}: {threads_before} threads grew to {threads}");
    }
    // A sync timeout behind it gives up as well, leaving nothing.
    match lock.acquire_timeout(Duration::from_millis(50)) {
        Err(PackLockError::TimedOut { .. }) => {}
        other => panic!("expected TimedOut, got {other:?}"),
    }
    assert!(waiters_of(&path, me) <= 1);
    common::tell_parent("cancelled");
    wait_for_parent(); // the holder has released
    let writer = exclusive(dir);
    common::wait_until("the lock is free again", || writer.try_acquire().is_ok());
    assert_eq!(waiters_of(&path, me), 0, "a waiter of ours stayed in the kernel");
    assert!(thread_count() <= threads_before + 2);
    drop(lock.try_acquire().expect("shared try_acquire once free"));
    common::tell_parent("free");
}

#[cfg(target_os = "linux")]
#[test]
fn cancelled_shared_acquires_leave_nothing_behind() {
    let dir = temp_dir();
    let mut holder = Child::spawn("hold-exclusive", dir.path());
    holder.expect("locked");
    let mut canceller = Child::spawn("cancel-many", dir.path());
    canceller.expect("cancelled");
    holder.proceed();
    holder.expect("released");
    holder.join();
    canceller.proceed();
    canceller.expect("free");
    canceller.join();
    let path = dir.path().join(packlock::PACK_LOCK_FILE_NAME);
    assert_eq!(common::flock::nonblocking(&path, &["-x"]), 0, "the lock is free");
}

/// One shared waiter parked in the kernel and five more queued behind it
/// in this process — threads and tasks, every flavour — make one waiter in
/// `/proc/locks`; when the exclusive holder releases, all six hold
/// together, on one OS lock.
#[cfg(target_os = "linux")]
#[test]
fn six_queued_shared_acquires_send_one_waiter_to_the_kernel_and_hold_together() {
    use common::proc_locks::waiters_of;
    let dir = temp_dir();
    let mut holder = Child::spawn("hold-exclusive", dir.path());
    holder.expect("locked");
    let me = std::process::id();
    let one = Arc::new(shared(dir.path()));
    let path = one.path().to_path_buf();
    let holder_live = Arc::new(AtomicUsize::new(1));
    let (send, reports) = mpsc::channel();
    spawn_thread_waiter(Arc::clone(&one), Flavour::Acquire, Arc::clone(&holder_live), &send);
    common::wait_until_parked(&path);
    let runtime = runtime();
    let others = Arc::new(shared(dir.path()));
    spawn_thread_waiter(
        Arc::clone(&others),
        Flavour::AcquireTimeout,
        Arc::clone(&holder_live),
        &send,
    );
    spawn_thread_waiter(
        Arc::clone(&one),
        Flavour::AcquireCancellable,
        Arc::clone(&holder_live),
        &send,
    );
    for (flavour, lock) in [
        (TaskFlavour::Async, &one),
        (TaskFlavour::Until, &others),
        (TaskFlavour::Cancellable, &one),
    ] {
        spawn_task_waiter(&runtime, Arc::clone(lock), flavour, Arc::clone(&holder_live), &send);
    }
    for _ in 0..200 {
        assert!(waiters_of(&path, me) <= 1, "more than one waiter of ours in the kernel");
    }
    thread::sleep(CHANCE);
    assert!(reports.try_recv().is_err(), "a shared acquire returned beside an exclusive holder");
    holder_live.store(0, SeqCst);
    holder.proceed();
    holder.expect("released");
    let mut holds = Vec::new();
    for (how, result, seen) in collect(&reports, 6) {
        holds.push(result.unwrap_or_else(|e| panic!("{how} once the holder released: {e}")));
        assert_eq!(seen, 0, "{how} got the lock before the holder released");
    }
    assert_eq!(common::proc_locks::holders_of(&path, me), 1, "six shared holds, one OS lock");
    assert_eq!(waiters_of(&path, me), 0);
    assert_eq!(common::flock::nonblocking(&path, &["-x"]), 1, "flock -x beside six shared holds");
    drop(holds);
    assert_eq!(common::flock::nonblocking(&path, &["-x"]), 0, "flock -x once they are gone");
    holder.join();
}

// ---------------------------------------------------------------------------
// 6. Re-entrancy
// ---------------------------------------------------------------------------

#[test]
fn a_thread_holding_a_shared_hold_cannot_wait_for_the_same_lock_file() {
    let dir = temp_dir();
    let lock = shared(dir.path());
    let other = shared(dir.path());
    let writer = exclusive(dir.path());
    let hold = lock.acquire().expect("shared acquire");
    assert_err!(lock.acquire(), PackLockError::Reentrant, lock.path());
    assert_err!(lock.acquire_timeout(DEADLINE), PackLockError::Reentrant, lock.path());
    assert_err!(other.acquire(), PackLockError::Reentrant, lock.path());
    assert_err!(writer.acquire(), PackLockError::Reentrant, lock.path());
    assert_err!(writer.acquire_timeout(DEADLINE), PackLockError::Reentrant, lock.path());
    // try_acquire never waits: shared ones coexist, exclusive ones are busy.
    let again = lock.try_acquire().expect("shared try_acquire on the same thread");
    let alias = other.try_acquire().expect("shared try_acquire of another lock");
    assert_err!(
        writer.try_acquire(),
        PackLockError::Busy,
        writer.path(),
        "exclusive try_acquire beside our shared holds"
    );
    // Another thread waits normally, and shares.
    thread::scope(|scope| {
        scope.spawn(|| drop(lock.acquire().expect("another thread's shared acquire")));
    });
    drop((hold, again, alias));
    drop(lock.acquire().expect("acquire again once released"));
    drop(writer.acquire().expect("exclusive once released"));
}

#[test]
fn a_thread_holding_an_exclusive_hold_cannot_wait_for_a_shared_one() {
    let dir = temp_dir();
    let lock = shared(dir.path());
    let writer = exclusive(dir.path());
    let hold = writer.acquire().expect("exclusive acquire");
    assert_err!(lock.acquire(), PackLockError::Reentrant, writer.path());
    assert_err!(lock.acquire_timeout(DEADLINE), PackLockError::Reentrant, writer.path());
    assert_err!(
        lock.try_acquire(),
        PackLockError::Busy,
        lock.path(),
        "shared try_acquire beside our exclusive hold"
    );
    drop(hold);
    drop(lock.acquire().expect("shared once released"));
}

#[test]
fn a_scope_holding_a_shared_hold_cannot_wait_for_it_again() {
    let dir = temp_dir();
    let lock = shared(dir.path());
    future::block_on(with_tier_scope(async {
        let _hold = lock.acquire_async().await.expect("shared acquire_async");
        assert_err!(lock.acquire_async().await, PackLockError::Reentrant, lock.path());
        let token = CancellationToken::new();
        match lock.acquire_cancellable(&token).await {
            Err(PackLockErrorOrCancelled::Lock(PackLockError::Reentrant { .. })) => {}
            other => panic!("expected Lock(Reentrant), got {other:?}"),
        }
        assert_err!(lock.acquire(), PackLockError::Reentrant, lock.path());
        let _again = lock.try_acquire().expect("shared try_acquire in the same scope");
    }));
}

// ---------------------------------------------------------------------------
// Aliases
// ---------------------------------------------------------------------------

/// A shared hold taken through one path of a file names that path, even
/// when another path of the same file (a hard link) took the process's OS
/// lease.
#[cfg(unix)]
#[test]
fn a_shared_hold_through_an_alias_names_its_own_path() {
    let dir = temp_dir();
    let lock = shared(dir.path());
    let link = dir.path().join("alias.lock");
    fs::hard_link(lock.path(), &link).expect("hard link");
    let alias = PackLock::builder_for_file(&link).shared(true).open().expect("open alias");
    let _first = lock.acquire().expect("shared acquire");
    let hold = alias.try_acquire().expect("shared try_acquire through the alias");
    assert_eq!(hold.path(), alias.path(), "the hold names the path it was taken through");
}

/// A shared acquire checks that *its own* path still names the file it
/// locks. Here another file was renamed over the alias path: the acquire
/// through the alias must lock the file now there, so that an exclusive
/// newcomer opening that path is kept out.
#[cfg(unix)]
#[test]
fn a_shared_acquire_through_a_replaced_alias_locks_the_file_now_there() {
    let dir = temp_dir();
    let lock = shared(dir.path());
    let link = dir.path().join("alias.lock");
    fs::hard_link(lock.path(), &link).expect("hard link");
    let alias = PackLock::builder_for_file(&link).shared(true).open().expect("open alias");
    let _first = lock.acquire().expect("shared acquire through the main path");
    let replacement = dir.path().join("replacement");
    fs::write(&replacement, b"").expect("create replacement");
    fs::rename(&replacement, &link).expect("rename over the alias");
    let hold = alias.try_acquire().expect("shared try_acquire through the alias");
    hold.validate().expect("a fresh hold is on the file at its path");
    let newcomer = PackLock::open_file(&link).expect("open the alias path afresh");
    assert_err!(
        newcomer.try_acquire(),
        PackLockError::Busy,
        newcomer.path(),
        "exclusive through the alias path beside a shared hold"
    );
}
