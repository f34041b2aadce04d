//! A lock on a file that is no longer at the path protects nothing: an
//! acquire that finds its file deleted or replaced reopens the file now at
//! the path and locks that one, so two holders never coexist.

// Unix only: the tests tell files apart by inode (and on Linux watch
// /proc/locks); under Wine a held lock file cannot be replaced anyway.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::{Child, ChildArgs, rename_new_file_over};
use packlock::PackLockError;

#[test]
fn child_process_entry() {
    common::child_process_entry(|args: &ChildArgs| match args.role.as_str() {
        "hold" => common::hold_until_told(&common::open(&args.dir)),
        other => panic!("unknown role {other}"),
    });
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").ino()
}

fn delete(path: &Path) {
    fs::remove_file(path).expect("delete the lock file");
}

/// Process A holds file F1 while we wait on it; F1 is then replaced by F2,
/// which process C locks. When A lets go of F1 we must notice that F1 is no
/// longer the lock file and wait for C on F2 instead of joining C as a
/// second holder.
#[cfg(target_os = "linux")]
fn waiter_never_joins_a_holder_of_the_new_file(replace: fn(&Path)) {
    use common::proc_locks::entries_for_inode;
    let waiting_on = |ino| {
        let me = std::process::id();
        entries_for_inode(ino).iter().filter(|e| e.blocked && e.pid == me).count() == 1
    };

    let dir = common::temp_dir();
    let mut first_holder = Child::spawn("hold", dir.path());
    first_holder.expect("locked");
    let lock = common::open(dir.path());
    let old_file = inode(lock.path());
    let acquired = AtomicBool::new(false);

    thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let hold = lock.acquire()?;
            acquired.store(true, Ordering::SeqCst);
            hold.validate()
        });
        common::wait_until("we wait on the old file", || waiting_on(old_file));
        replace(lock.path());
        let mut second_holder = Child::spawn("hold", dir.path());
        second_holder.expect("locked");
        let new_file = inode(lock.path());
        assert_ne!(old_file, new_file);

        first_holder.proceed();
        first_holder.expect("released");
        common::wait_until("we wait on the new file", || waiting_on(new_file));
        assert!(!acquired.load(Ordering::SeqCst), "held at once with the new file's holder");

        second_holder.proceed();
        second_holder.expect("released");
        waiter.join().expect("waiter panicked").expect("hold on the file at the path");
    });
}

#[cfg(target_os = "linux")]
#[test]
fn lock_file_renamed_over_while_waiting() {
    waiter_never_joins_a_holder_of_the_new_file(rename_new_file_over);
}

#[cfg(target_os = "linux")]
#[test]
fn lock_file_deleted_while_waiting() {
    waiter_never_joins_a_holder_of_the_new_file(delete);
}

/// No wait at all: the file was deleted between open and acquire. The
/// link-count check catches it and the hold is on the new file, which
/// therefore excludes newcomers.
#[test]
fn lock_file_deleted_before_acquire_is_recreated() {
    let dir = common::temp_dir();
    let lock = common::open(dir.path());
    delete(lock.path());
    let hold = lock.acquire().expect("acquire");
    hold.validate().expect("the hold is on the file at the path");
    let newcomer = common::open(dir.path());
    assert!(matches!(newcomer.try_acquire(), Err(PackLockError::Busy { .. })));
}

#[test]
fn lock_file_renamed_over_before_acquire_is_reopened() {
    let dir = common::temp_dir();
    let lock = common::open(dir.path());
    rename_new_file_over(lock.path());
    let hold = lock.acquire().expect("acquire");
    hold.validate().expect("the hold is on the file at the path");
    let newcomer = common::open(dir.path());
    assert!(matches!(newcomer.try_acquire(), Err(PackLockError::Busy { .. })));
}

#[test]
fn validate_reports_a_replaced_lock_file() {
    let dir = common::temp_dir();
    let lock = common::open(dir.path());
    let hold = lock.acquire().expect("acquire");
    rename_new_file_over(lock.path());
    assert!(matches!(hold.validate(), Err(PackLockError::Replaced { .. })));
}
