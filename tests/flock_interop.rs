//! Interoperation with util-linux `flock(1)`, in both directions: each
//! excludes the other on the same lock file.

// Linux only: the other side is util-linux flock(1).
#![cfg(target_os = "linux")]

mod common;

use std::process::{Command, Stdio};
use std::thread;

use common::flock;
use common::proc_locks::waiters_of;
use packlock::PackLockError;

#[test]
fn flock_cannot_take_a_lock_packlock_holds() {
    let dir = common::temp_dir();
    let lock = common::open(dir.path());
    let hold = lock.acquire().expect("acquire");
    assert_eq!(flock::nonblocking(lock.path(), &[]), 1, "flock -x got a held lock");
    assert_eq!(flock::nonblocking(lock.path(), &["-s"]), 1, "flock -s got a held lock");
    hold.release().expect("release");
    assert_eq!(flock::nonblocking(lock.path(), &[]), 0, "flock -x after release");
}

#[test]
fn flock_waits_for_a_packlock_holder() {
    let dir = common::temp_dir();
    let lock = common::open(dir.path());
    let hold = lock.acquire().expect("acquire");
    let mut flock = Command::new("flock")
        .arg(lock.path())
        .args(["echo", "got it"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run util-linux flock");
    common::wait_until("flock waits in the kernel", || waiters_of(lock.path(), flock.id()) == 1);
    assert!(flock.try_wait().expect("poll flock").is_none(), "flock ran while we held");
    drop(hold);
    let output = flock.wait_with_output().expect("flock output");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "got it");
}

#[test]
fn packlock_waits_for_a_flock_holder() {
    let dir = common::temp_dir();
    let lock = common::open(dir.path());
    let flock = flock::Holder::start(lock.path(), "-x");
    assert!(matches!(lock.try_acquire(), Err(PackLockError::Busy { .. })));

    thread::scope(|scope| {
        let waiter = scope.spawn(|| lock.acquire().map(drop));
        common::wait_until_parked(lock.path());
        assert!(!waiter.is_finished(), "acquired while flock held the lock");
        flock.stop();
        waiter.join().expect("waiter panicked").expect("acquire after flock exits");
    });
}
