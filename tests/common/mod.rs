//! Helpers shared by the integration tests, one definition per job:
//!
//! * here: the [`DEADLINE`] every wait is bounded by, polling
//!   ([`wait_until`], [`wait_until_parked`]), running a closure under the
//!   deadline ([`within_deadline`]), temporary directories and locks
//!   ([`temp_dir`], [`open`]), and replacing a lock file;
//! * [`assert`]: asserting error variants ([`assert_err!`]), cancellation
//!   and a free lock;
//! * [`child`]: child processes running a role of the same test binary;
//! * [`proc_locks`], [`flock`], [`tmpfs`] (Linux): `/proc/locks`,
//!   util-linux `flock(1)` as the other party, a file system of one's own;
//! * [`section`]: a critical section that detects overlap across processes;
//! * `pg` (with the `postgres` feature): a PostgreSQL server of its own.

#![allow(dead_code, unused_imports, unused_macros)] // each test binary uses a different subset

#[macro_use]
pub mod assert;
pub mod child;
#[cfg(target_os = "linux")]
pub mod flock;
#[cfg(all(unix, feature = "postgres"))]
pub mod pg;
#[cfg(all(unix, feature = "postgres"))]
pub mod pgbouncer;
#[cfg(target_os = "linux")]
pub mod proc_locks;
pub mod proxy;
pub mod section;
#[cfg(all(unix, feature = "postgres"))]
pub mod server_roles;
#[cfg(target_os = "linux")]
pub mod tmpfs;

pub use assert::{assert_cancelled, assert_free, wait_until_free};
pub use child::{
    Child, ChildArgs, child_process_entry, hold_until_told, release, spawn_holder, tell_parent,
    wait_for_parent,
};

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use packlock::PackLock;

/// How long any wait in a test may take before the test fails: generous,
/// because CI machines are slow, and never reached when things work.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A new temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The default (exclusive) lock of directory `dir`.
pub fn open(dir: &Path) -> PackLock {
    PackLock::open(dir).expect("open")
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether this process has exactly one waiter in the kernel on the file
/// at `path`: an acquire of ours (a thread in `acquire`, or the pool job
/// of an async acquire) parked in `flock`. Elsewhere than on Linux there is
/// no way to see it: says yes, since the tests work either way.
pub fn is_parked(path: &Path) -> bool {
    #[cfg(target_os = "linux")]
    return proc_locks::waiters_of(path, std::process::id()) == 1;
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        true
    }
}

/// Waits until [`is_parked`], for a caller whose acquire is being run by
/// someone else (another thread, an executor).
pub fn wait_until_parked(path: &Path) {
    wait_until("our acquire waits in the kernel", || is_parked(path));
}

/// Runs `f` on its own thread and returns what it returns, failing the
/// test (rather than hanging it) if that takes longer than [`DEADLINE`].
/// A panic in `f` is passed on.
pub fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    within(DEADLINE, f)
}

/// [`within_deadline`] with a time limit of the caller's.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, outcome) = mpsc::channel();
    let runner = std::thread::spawn(move || {
        let _ = done.send(f());
    });
    match outcome.recv_timeout(limit) {
        Ok(output) => output,
        Err(RecvTimeoutError::Timeout) => panic!("still running after {limit:?}: hung"),
        Err(RecvTimeoutError::Disconnected) => match runner.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the runner returned without sending"),
        },
    }
}

/// Replaces the lock file at `path` by renaming a new, empty file over it,
/// as a tool that rewrites files atomically would: every `PackLock` opened
/// before now has the old file, which is no longer at the path.
pub fn rename_new_file_over(path: &Path) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, b"").expect("create replacement");
    std::fs::rename(&fresh, path).expect("rename over the lock file");
}

/// Whether deleting an open file, or renaming another file over it, takes
/// its name away at once, as on Unix and on Windows 10 and later (POSIX
/// semantics). Wine keeps a deleted open file at its path until the last
/// handle closes and refuses to rename over an open file
/// (`.ci/wine/deviations/replace-open-file.c`): there a held lock file
/// cannot be replaced at all, so tests of what replacing does have nothing
/// to test.
pub fn open_files_can_be_replaced() -> bool {
    let dir = temp_dir();
    let deleted = dir.path().join("deleted");
    std::fs::write(&deleted, b"").expect("create probe");
    let _open = std::fs::File::open(&deleted).expect("open probe");
    let name_went = std::fs::remove_file(&deleted).is_ok() && !deleted.exists();

    let replaced = dir.path().join("replaced");
    std::fs::write(&replaced, b"").expect("create probe");
    let _open = std::fs::File::open(&replaced).expect("open probe");
    let fresh = dir.path().join("fresh");
    std::fs::write(&fresh, b"").expect("create replacement");
    name_went && std::fs::rename(&fresh, &replaced).is_ok()
}

/// A program running from its own file: a copy of `sleep 30` at `dir/nap`,
/// running once this returns; killed when dropped.
#[cfg(target_os = "linux")]
pub struct RunningProgram {
    pub path: std::path::PathBuf,
    child: std::process::Child,
}

#[cfg(target_os = "linux")]
impl RunningProgram {
    pub fn start(dir: &Path) -> Self {
        let path = dir.join("nap");
        std::fs::copy("/bin/sleep", &path).expect("copy sleep");
        let child = std::process::Command::new(&path).arg("30").spawn().expect("run the copy");
        let exe = format!("/proc/{}/exe", child.id());
        wait_until("the copy runs", || std::fs::read_link(&exe).is_ok_and(|p| p == path));
        Self { path, child }
    }
}

#[cfg(target_os = "linux")]
impl Drop for RunningProgram {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
