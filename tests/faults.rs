//! Failures around the critical section: a panic inside it releases the
//! lock; a child made by `fork(2)` never releases its parent's lock, even
//! when it drops the parent's hold; commands spawned while holding inherit
//! no lock file descriptor. (Failing OS lock calls are tested in
//! `src/faults.rs`, through an internal fault-injection seam.)

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{assert_free, open, temp_dir};
#[cfg(unix)] // only the Unix-only tests below name the type
use packlock::PackLock;

/// Asks the OS directly, through a new open file: another `PackLock` in
/// this process would share the in-process slot and report `Busy` anyway.
#[cfg(unix)]
fn assert_os_lock_held(lock: &PackLock, why: &str) {
    let file = std::fs::File::open(lock.path()).expect("open");
    assert!(matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)), "{why}");
}

#[test]
fn a_panic_in_the_critical_section_of_a_thread_releases_the_lock() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let _hold = lock.acquire().expect("acquire");
                panic!("failure inside the critical section");
            })
            .join()
    });
    assert!(result.is_err());
    assert_free(&lock, "the panic released the lock");
    drop(lock.acquire().expect("and the same lock can be taken again"));
}

#[test]
fn a_panic_caught_in_the_critical_section_releases_the_lock() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _hold = lock.acquire().expect("acquire");
        panic!("failure inside the critical section");
    }));
    assert!(result.is_err());
    assert_free(&lock, "the unwinding released the lock");
    drop(lock.acquire().expect("re-acquire on the same thread after the panic"));
}

#[test]
fn a_panicking_async_task_releases_the_lock() {
    let dir = temp_dir();
    let lock = std::sync::Arc::new(open(dir.path()));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    let task = runtime.spawn({
        let lock = std::sync::Arc::clone(&lock);
        async move {
            let _hold = lock.acquire_async().await.expect("acquire");
            tokio::task::yield_now().await;
            panic!("failure inside the critical section");
        }
    });
    assert!(runtime.block_on(task).is_err(), "the task panicked");
    assert_free(&lock, "the panic released the lock");
}

/// The child drops the hold it inherited and exits; the parent must still
/// hold the lock.
#[cfg(unix)]
#[test]
fn a_forked_child_never_releases_its_parents_lock() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let hold = lock.acquire().expect("acquire");
    // SAFETY: the child only drops the hold (an unlock that packlock skips
    // in a forked child, and memory glibc keeps usable after fork) and
    // exits at once with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(hold);
        // SAFETY: `_exit` ends the child without running the parent's
        // atexit handlers or test harness.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child, with a valid pointer.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid, "waitpid");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child failed");
    assert_os_lock_held(&lock, "the forked child released the parent's lock");
    drop(hold);
    assert_free(&lock, "the parent releases its own lock");
}

/// Lock files are opened close-on-exec: a command spawned while a lock is
/// held has no descriptor on the lock file, so it cannot keep the lock
/// after the holder lets go.
#[cfg(target_os = "linux")]
#[test]
fn spawned_commands_inherit_no_lock_descriptor() {
    let dir = temp_dir();
    for shared in [false, true] {
        let lock = PackLock::builder(dir.path()).shared(shared).open().expect("open");
        let _hold = lock.acquire().expect("acquire");
        let output = std::process::Command::new("sh")
            .args(["-c", "for fd in /proc/self/fd/*; do readlink \"$fd\"; done"])
            .output()
            .expect("run sh");
        let links = String::from_utf8_lossy(&output.stdout);
        assert!(links.contains("/dev/") || links.contains("pipe:"), "listing worked: {links}");
        assert!(!links.contains(&lock.path().display().to_string()), "inherited: {links}");
    }
}
