//! A child made by `fork(2)` is a process of its own: a `PackLock` it
//! inherited reopens the lock file there, so the child waits for its parent
//! like any other process, its holds end when it lets go, and nothing the
//! parent had in memory at the fork (a slot another parent thread held, the
//! blocking pool's threads) makes it wait for a holder that does not exist
//! in the child. That a child never releases its parent's lock is tested in
//! `tests/faults.rs`.
//!
//! Each test forks the test process itself; the child does only what the
//! test needs and ends with `_exit`, its exit code telling the parent
//! whether it succeeded.

#![cfg(target_os = "linux")]

mod common;

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::{DEADLINE, flock, proc_locks, wait_until};
use futures_lite::future;
use packlock::{PackLock, PackLockError};

#[test]
fn child_process_entry() {
    common::child_process_entry(|child| match child.role.as_str() {
        "hold" => common::hold_until_told(&common::open(&child.dir)),
        role => panic!("unknown role {role}"),
    });
}

/// A test thread that forks while another test thread of this binary holds
/// a mutex (inside packlock, std or the test harness) leaves that mutex
/// locked forever in the child, so the tests here take turns.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A forked child of this test process.
struct Forked {
    pid: libc::pid_t,
    /// Where the child writes its panic message, if it panics.
    report: PathBuf,
    reaped: bool,
}

/// Forks; the child runs `body` and exits with 0 when it returns, or with
/// 101 after writing its panic message to a file in `dir` when it panics.
fn fork_child(dir: &Path, body: impl FnOnce()) -> Forked {
    let report = dir.join("child-panic");
    // SAFETY: the tests take turns (`serial`), so no other thread of ours
    // holds a lock the child needs; the child runs `body` and leaves with
    // `_exit`, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = match catch_unwind(AssertUnwindSafe(body)) {
            Ok(()) => 0,
            Err(panic) => {
                let _ = std::fs::write(&report, panic_message(&*panic));
                101
            }
        };
        // SAFETY: ends the child at once, without running the parent's
        // atexit handlers, destructors or test harness.
        unsafe { libc::_exit(code) };
    }
    Forked { pid, report, reaped: false }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let text = panic.downcast_ref::<&str>().copied();
    text.or(panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("panic").to_string()
}

impl Forked {
    fn pid(&self) -> u32 {
        self.pid.try_into().expect("a child's pid is positive")
    }

    /// Waits (until [`DEADLINE`]) for the child to exit, and asserts that
    /// it succeeded.
    fn join(mut self) {
        let deadline = Instant::now() + DEADLINE;
        let mut status = 0;
        loop {
            // SAFETY: polls our own child, with a valid pointer.
            let reaped = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            assert!(reaped >= 0, "waitpid failed");
            if reaped == self.pid {
                break;
            }
            assert!(Instant::now() < deadline, "the child did not exit within {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        self.reaped = true;
        let said = std::fs::read_to_string(&self.report).unwrap_or_default();
        let succeeded = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        assert!(succeeded, "the child failed (wait status {status}): {said}");
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        // Never leave a child behind when a test fails.
        if !self.reaped {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// A thread of the parent that holds `lock` until told to release it.
struct ThreadHold {
    release: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ThreadHold {
    fn start(lock: &Arc<PackLock>) -> Self {
        let (held, is_held) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let lock = Arc::clone(lock);
        let thread = std::thread::spawn(move || {
            let hold = lock.acquire().expect("acquire");
            held.send(()).expect("tell the test");
            let _ = released.recv();
            hold.release().expect("release");
        });
        is_held.recv_timeout(DEADLINE).expect("the holding thread got the lock");
        Self { release, thread }
    }

    fn release(self) {
        self.release.send(()).expect("tell the holding thread");
        self.thread.join().expect("the holding thread finished");
    }
}

/// Another thread of the parent holds the lock (so the child's copy of the
/// in-process slot is held by a thread that does not exist there): the
/// child must find the lock busy because the parent holds it, time out
/// while the parent holds it, and get it once the parent lets go.
#[test]
fn a_forked_child_waits_for_a_lock_its_parent_holds() {
    let _serial = serial();
    let dir = common::temp_dir();
    let lock = Arc::new(common::open(dir.path()));
    let parent_hold = ThreadHold::start(&lock);
    let timed_out = dir.path().join("child-timed-out");
    let child = fork_child(dir.path(), || {
        let busy = lock.try_acquire();
        assert!(matches!(busy, Err(PackLockError::Busy { .. })), "try_acquire: {busy:?}");
        let late = lock.acquire_timeout(Duration::from_millis(50));
        assert!(matches!(late, Err(PackLockError::TimedOut { .. })), "timeout: {late:?}");
        std::fs::write(&timed_out, b"").expect("tell the parent");
        let hold =
            lock.acquire_timeout(DEADLINE).expect("the child gets the lock after the parent");
        hold.release().expect("release");
    });
    wait_until("the child timed out", || timed_out.exists());
    // A waiter stays behind from the timed-out acquire, and the child's
    // next acquire queues behind it in the child.
    wait_until("the child waits for the lock in the kernel", || {
        proc_locks::waiters_of(lock.path(), child.pid()) > 0
    });
    parent_hold.release();
    child.join();
    common::assert_free(&lock, "the child released the lock it took");
}

/// The lock a child takes is its own: once it releases and exits, another
/// process (util-linux `flock`) can take the file, although the parent
/// still has it open.
#[test]
fn a_lock_a_forked_child_releases_is_free() {
    let _serial = serial();
    for shared in [false, true] {
        let dir = common::temp_dir();
        let lock = PackLock::builder(dir.path()).shared(shared).open().expect("open");
        lock.acquire().expect("the parent takes the lock").release().expect("and releases it");
        let child = fork_child(dir.path(), || {
            lock.acquire().expect("acquire in the child").release().expect("release");
        });
        child.join();
        let code = flock::nonblocking(lock.path(), &[]);
        assert_eq!(code, 0, "the child left the lock held (shared: {shared})");
        drop(lock.try_acquire().expect("the parent can take it again"));
    }
}

/// How a child waits for a lock another process holds.
#[derive(Clone, Copy, Debug)]
enum AsyncWait {
    AcquireAsync,
    AcquireTimeout,
}

/// The `blocking` crate's thread pool counts the parent's idle threads,
/// which do not exist in a child: a job queued there would never run. With
/// the pool warm in the parent, a child's async acquire and sync acquire
/// with a timeout must still wait for another process and get the lock.
#[test]
fn a_forked_child_waits_for_another_process_off_the_parents_pool() {
    let _serial = serial();
    let dir = common::temp_dir();
    warm_the_blocking_pool(&dir.path().join("warm.lock"));
    for way in [AsyncWait::AcquireAsync, AsyncWait::AcquireTimeout] {
        let pack = dir.path().join(format!("{way:?}"));
        let lock = PackLock::open(&pack).expect("open");
        // A process started with Command, not forked: the forked child
        // inherits every descriptor of ours, so this holder is told to let
        // go by a message rather than by closing its input.
        let other = common::spawn_holder("hold", &pack);
        let child = fork_child(dir.path(), || {
            let hold = match way {
                AsyncWait::AcquireAsync => future::block_on(lock.acquire_async()),
                AsyncWait::AcquireTimeout => lock.acquire_timeout(DEADLINE),
            };
            hold.expect("the child gets the lock once the other process lets go")
                .release()
                .expect("release");
        });
        wait_until("the child waits for the lock in the kernel", || {
            proc_locks::waiters_of(lock.path(), child.pid()) > 0
        });
        common::release(other);
        child.join();
        assert_eq!(flock::nonblocking(lock.path(), &[]), 0, "{way:?}: the lock is free");
    }
}

/// Makes the parent's blocking pool have an idle thread: an async acquire
/// waits there for a `flock` process, which then lets go.
fn warm_the_blocking_pool(path: &Path) {
    let lock = PackLock::open_file(path).expect("open");
    let other = flock::Holder::start(lock.path(), "-x");
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| future::block_on(lock.acquire_async()));
        let me = std::process::id();
        wait_until("the pool waits in the kernel", || proc_locks::waiters_of(path, me) > 0);
        other.stop();
        waiter.join().expect("waiter").expect("acquire").release().expect("release");
    });
}

/// Whether another open file of `path` finds its lock held.
fn held_elsewhere(path: &Path) -> bool {
    let file = std::fs::File::open(path).expect("open");
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// A program that daemonises while holding locks: the parent forks and
/// exits, the child goes on. The child's `release()` of an inherited hold
/// fails rather than report a release that did not happen (the lock stays
/// held: the child's copy of the file keeps it), and after `take_over()`
/// its release frees the lock.
#[test]
fn a_daemon_takes_its_parents_hold_over_and_release_never_lies() {
    let _serial = serial();
    let dir = common::temp_dir();
    let (kept, taken) = (dir.path().join("kept"), dir.path().join("taken"));
    let verdict = dir.path().join("verdict");
    let parent = {
        let (kept, taken, verdict) = (kept.clone(), taken.clone(), verdict.clone());
        fork_child(dir.path(), move || {
            let (kept_lock, taken_lock) = (common::open(&kept), common::open(&taken));
            let kept_hold = kept_lock.acquire().expect("acquire");
            let mut taken_hold = taken_lock.acquire().expect("acquire");
            let parent = std::process::id();
            // SAFETY: this forked test child has one thread; the daemon
            // below only uses packlock and std, and leaves with `_exit`.
            let daemon = unsafe { libc::fork() };
            assert!(daemon >= 0, "fork failed");
            if daemon > 0 {
                // The parent exits at once, releasing nothing.
                // SAFETY: ends this forked child without running anything.
                unsafe { libc::_exit(0) };
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: getppid cannot fail. (An exited parent's children
                // are handed to init or a subreaper at once.)
                wait_until("the parent exited", || unsafe { libc::getppid() } as u32 != parent);
                let kept_path = kept_hold.path().to_path_buf();
                let refused = kept_hold.release();
                assert!(
                    matches!(refused, Err(PackLockError::InheritedHold { ref path, .. }) if *path == kept_path),
                    "{refused:?}"
                );
                assert!(held_elsewhere(&kept_path), "an inherited lock stays held");
                taken_hold.take_over();
                let taken_path = taken_hold.path().to_path_buf();
                taken_hold.release().expect("the daemon releases what it took over");
                assert!(!held_elsewhere(&taken_path), "released");
            }));
            let said = match outcome {
                Ok(()) => "ok".to_string(),
                Err(panic) => panic_message(&*panic),
            };
            let _ = std::fs::write(&verdict, said);
            // SAFETY: ends the daemon without running the harness.
            unsafe { libc::_exit(0) };
        })
    };
    parent.join();
    wait_until("the daemon's verdict", || verdict.exists());
    wait_until("the verdict is written", || {
        std::fs::read_to_string(&verdict).is_ok_and(|text| !text.is_empty())
    });
    assert_eq!(std::fs::read_to_string(&verdict).expect("verdict"), "ok");
}
