//! The basic promises of a per-directory lock: the lock file is created, a
//! held lock is `Busy` to every other taker (other `PackLock`s, the same one, aliases through
//! symlinks and hard links), holds release on drop or `release()`, a blocking
//! acquire waits for the holder, distinct locks are independent, async
//! acquires serialise within a process, and `validate` notices a lock file
//! that was deleted or replaced.

#[macro_use]
mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use packlock::{PACK_LOCK_FILE_NAME, PackLock, PackLockError};

use common::{DEADLINE, open, temp_dir, wait_until};

#[test]
fn acquire_creates_the_lock_file() {
    let tmp = temp_dir();
    let lock = open(tmp.path());
    let expected = tmp.path().join(PACK_LOCK_FILE_NAME);
    assert_eq!(lock.path(), expected);
    let hold = lock.acquire().expect("acquire");
    assert!(expected.is_file(), "the sidecar must exist while held");
    assert_eq!(hold.path(), expected);
}

#[test]
fn try_acquire_is_busy_for_another_lock_on_the_same_dir() {
    let tmp = temp_dir();
    let first = open(tmp.path());
    let _hold = first.acquire().expect("acquire");
    let second = open(tmp.path());
    assert_err!(second.try_acquire(), PackLockError::Busy, second.path());
    assert_eq!(second.path(), tmp.path().join(PACK_LOCK_FILE_NAME));
}

#[test]
fn try_acquire_is_busy_for_the_holding_lock_itself() {
    let tmp = temp_dir();
    let lock = open(tmp.path());
    let _hold = lock.try_acquire().expect("first try_acquire");
    assert_err!(lock.try_acquire(), PackLockError::Busy, lock.path());
}

#[test]
fn try_acquire_is_busy_from_another_thread() {
    let tmp = temp_dir();
    let lock = Arc::new(open(tmp.path()));
    let _hold = lock.acquire().expect("acquire");
    let shared = Arc::clone(&lock);
    let busy = move || {
        assert_err!(shared.try_acquire(), PackLockError::Busy, shared.path());
    };
    thread::spawn(busy).join().expect("shared lock thread");
    let dir = tmp.path().to_path_buf();
    let busy = move || {
        let own = open(&dir);
        assert_err!(own.try_acquire(), PackLockError::Busy, own.path());
    };
    thread::spawn(busy).join().expect("own lock thread");
}

#[cfg(unix)]
#[test]
fn try_acquire_is_busy_through_a_symlinked_dir() {
    let tmp = temp_dir();
    let pack = tmp.path().join("pack");
    let link = tmp.path().join("link-to-pack");
    let lock = open(&pack);
    std::os::unix::fs::symlink(&pack, &link).expect("symlink");
    let alias = open(&link);
    assert_eq!(alias.path(), link.join(PACK_LOCK_FILE_NAME));

    let hold = lock.acquire().expect("acquire");
    assert_err!(alias.try_acquire(), PackLockError::Busy, alias.path());
    drop(hold);

    let hold = alias.acquire().expect("acquire through the symlink");
    assert_err!(lock.try_acquire(), PackLockError::Busy, lock.path());
    drop(hold);
}

#[test]
fn try_acquire_is_busy_through_a_hard_link() {
    let tmp = temp_dir();
    let lock = open(tmp.path());
    let link = tmp.path().join("hard-link.lock");
    fs::hard_link(lock.path(), &link).expect("hard link");
    let alias = PackLock::open_file(&link).expect("open_file");

    let hold = lock.acquire().expect("acquire");
    assert_err!(alias.try_acquire(), PackLockError::Busy, alias.path());
    drop(hold);

    let hold = alias.acquire().expect("acquire through the hard link");
    assert_err!(lock.try_acquire(), PackLockError::Busy, lock.path());
    let fresh = open(tmp.path());
    assert_err!(fresh.try_acquire(), PackLockError::Busy, fresh.path());
    drop(hold);
}

#[test]
fn dropping_the_hold_releases() {
    let tmp = temp_dir();
    {
        let first = open(tmp.path());
        let _hold = first.acquire().expect("acquire");
    }
    let second = open(tmp.path());
    drop(second.try_acquire().expect("free after the first lock and hold dropped"));

    let hold = second.acquire().expect("acquire");
    drop(hold);
    drop(second.try_acquire().expect("free after the hold dropped"));
}

#[test]
fn release_returns_ok_and_frees_the_lock() {
    let tmp = temp_dir();
    let lock = open(tmp.path());
    let other = open(tmp.path());
    let hold = lock.acquire().expect("acquire");
    assert_err!(other.try_acquire(), PackLockError::Busy, other.path());
    hold.release().expect("release");
    other.try_acquire().expect("free after release").release().expect("release");
    lock.try_acquire().expect("free again").release().expect("release");
}

#[test]
fn path_is_inside_the_pack() {
    let tmp = temp_dir();
    let lock = open(tmp.path());
    assert!(lock.path().starts_with(tmp.path()));
    assert_eq!(lock.path().file_name().and_then(|n| n.to_str()), Some(PACK_LOCK_FILE_NAME));
}

#[test]
fn distinct_paths_do_not_contend() {
    let (a, b) = (temp_dir(), temp_dir());
    let la = open(a.path());
    let _ha = la.acquire().expect("acquire a");
    let lb = open(b.path());
    let _hb = lb.try_acquire().expect("b is independent of a");

    // Two sidecar names in one directory are two locks as well.
    let named = PackLock::builder(a.path()).file_name("other.lock").open().expect("open");
    let _hn = named.try_acquire().expect("another file name is another lock");
}

/// A thread holds the lock; a waiter blocks in `acquire` (through `waiter`)
/// and must not get the lock before the holder lets go.
fn blocking_acquire_waits_for_the_holder(holder: &PackLock, waiter: Arc<PackLock>) {
    let held = Arc::new(AtomicBool::new(true));
    let hold = holder.acquire().expect("holder acquire");

    let (started_tx, started_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let waiter_thread = {
        let (held, done) = (Arc::clone(&held), Arc::clone(&done));
        thread::spawn(move || {
            started_tx.send(()).expect("send started");
            let hold = waiter.acquire().expect("waiter acquire");
            // The assertion that matters: the holder had let go by now.
            let holder_still_held = held.load(Ordering::SeqCst);
            done.store(true, Ordering::SeqCst);
            done_tx.send(holder_still_held).expect("send done");
            drop(hold);
        })
    };

    started_rx.recv_timeout(DEADLINE).expect("waiter thread started");
    // Give the waiter time to reach the lock and (wrongly) get it.
    let window = Instant::now() + Duration::from_millis(50);
    while Instant::now() < window {
        assert!(!done.load(Ordering::SeqCst), "the waiter got the lock while it was held");
        thread::yield_now();
    }
    held.store(false, Ordering::SeqCst);
    drop(hold);

    let holder_still_held = done_rx.recv_timeout(DEADLINE).expect("the waiter never got the lock");
    assert!(!holder_still_held, "the waiter got the lock while it was held");
    waiter_thread.join().expect("waiter thread");
}

#[test]
fn blocking_acquire_waits_for_a_holder_on_another_lock() {
    let tmp = temp_dir();
    blocking_acquire_waits_for_the_holder(&open(tmp.path()), Arc::new(open(tmp.path())));
}

#[test]
fn blocking_acquire_waits_for_a_holder_on_the_same_lock() {
    let tmp = temp_dir();
    let lock = Arc::new(open(tmp.path()));
    blocking_acquire_waits_for_the_holder(&lock, Arc::clone(&lock));
}

#[test]
fn waiters_all_get_the_lock_in_turn() {
    let tmp = temp_dir();
    let holder = open(tmp.path());
    let hold = holder.acquire().expect("acquire");
    let inside = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let (dir, inside, finished) =
                (tmp.path().to_path_buf(), Arc::clone(&inside), Arc::clone(&finished));
            thread::spawn(move || {
                let _hold = open(&dir).acquire().expect("acquire");
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                thread::yield_now();
                inside.fetch_sub(1, Ordering::SeqCst);
                finished.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    drop(hold);
    wait_until("all waiters finished", || finished.load(Ordering::SeqCst) == 8);
    for waiter in waiters {
        waiter.join().expect("waiter");
    }
}

/// Tasks that each open their own lock on one directory, or share one lock,
/// take turns: never two inside at once, and a read-modify-write across an
/// `.await` loses no update.
async fn async_acquires_serialise(share_one_lock: bool) {
    const TASKS: usize = 8;
    const ROUNDS: usize = 25;
    let tmp = temp_dir();
    let shared = Arc::new(open(tmp.path()));
    let inside = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(Mutex::new(0_usize));
    let counter_file = tmp.path().join("counter");
    fs::write(&counter_file, "0").expect("write counter");

    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let lock =
                if share_one_lock { Arc::clone(&shared) } else { Arc::new(open(tmp.path())) };
            let (inside, counter, counter_file) =
                (Arc::clone(&inside), Arc::clone(&counter), counter_file.clone());
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let hold = lock.acquire_async().await.expect("acquire_async");
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                    let seen = *counter.lock().expect("counter");
                    let in_file: usize =
                        fs::read_to_string(&counter_file).expect("read").parse().expect("number");
                    tokio::task::yield_now().await;
                    *counter.lock().expect("counter") = seen + 1;
                    fs::write(&counter_file, (in_file + 1).to_string()).expect("write");
                    inside.store(false, Ordering::SeqCst);
                    drop(hold);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(*counter.lock().expect("counter"), TASKS * ROUNDS, "lost updates");
    assert_eq!(fs::read_to_string(&counter_file).expect("read"), (TASKS * ROUNDS).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_acquires_serialise_in_process_with_own_locks() {
    async_acquires_serialise(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_acquires_serialise_in_process_with_a_shared_lock() {
    async_acquires_serialise(true).await;
}

#[tokio::test]
async fn async_acquire_waits_for_a_held_lock() {
    let tmp = temp_dir();
    let lock = Arc::new(open(tmp.path()));
    let hold = lock.acquire_async().await.expect("acquire_async");
    let held = Arc::new(AtomicBool::new(true));
    let waiter = {
        let (lock, held) = (Arc::clone(&lock), Arc::clone(&held));
        tokio::spawn(async move {
            let _hold = lock.acquire_async().await.expect("waiter acquire_async");
            held.load(Ordering::SeqCst)
        })
    };
    // Let the waiter run on this single-threaded runtime until it waits.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!waiter.is_finished(), "the waiter got the lock while it was held");
    held.store(false, Ordering::SeqCst);
    drop(hold);
    let got_it_while_held =
        tokio::time::timeout(DEADLINE, waiter).await.expect("hang").expect("task");
    assert!(!got_it_while_held);
}

#[test]
fn validate_is_ok_while_the_file_stays() {
    let tmp = temp_dir();
    let lock = open(tmp.path());
    let hold = lock.acquire().expect("acquire");
    hold.validate().expect("validate");
    // Touching the contents is not replacing the file.
    fs::write(lock.path(), "scribble").expect("write");
    hold.validate().expect("validate after a write");
}

/// After the held file is gone from the path, the hold reports it, and the
/// same `PackLock` locks the file now at the path once the hold is dropped.
fn check_replacement(replace: impl FnOnce(&Path)) {
    let tmp = temp_dir();
    let lock = open(tmp.path());
    let hold = lock.acquire().expect("acquire");
    replace(lock.path());
    assert_err!(hold.validate(), PackLockError::Replaced, lock.path());

    // A newcomer locks the file now at the path: the old hold no longer
    // excludes anyone, which is what `validate` warns about.
    let newcomer = open(tmp.path());
    let new_hold = newcomer.try_acquire().expect("the new file is free");
    new_hold.validate().expect("the newcomer holds the file at the path");
    drop(new_hold);

    drop(hold);
    let again = lock.acquire().expect("acquire after replacement");
    again.validate().expect("the lock reopened the file at the path");
    assert!(lock.path().is_file());
    assert_err!(newcomer.try_acquire(), PackLockError::Busy, newcomer.path());
}

#[test]
fn validate_reports_a_removed_lock_file() {
    if !common::open_files_can_be_replaced() {
        eprintln!("skipped: this system cannot take a held file's name away (Wine)");
        return;
    }
    check_replacement(|path| fs::remove_file(path).expect("remove"));
}

#[test]
fn validate_reports_a_lock_file_renamed_over() {
    if !common::open_files_can_be_replaced() {
        eprintln!("skipped: this system cannot take a held file's name away (Wine)");
        return;
    }
    check_replacement(|path| {
        let other = path.with_file_name("replacement");
        fs::write(&other, "").expect("write replacement");
        fs::rename(&other, path).expect("rename over");
    });
}

#[test]
fn validate_reports_a_lock_file_renamed_away() {
    let tmp = temp_dir();
    let lock = open(tmp.path());
    let hold = lock.acquire().expect("acquire");
    fs::rename(lock.path(), tmp.path().join("moved")).expect("rename");
    assert_err!(hold.validate(), PackLockError::Replaced, lock.path());
}

/// A lock file that still has a name elsewhere (renamed away, or hard-linked
/// and then deleted at the path) would pass a mere `nlink > 0` check, so an
/// uncontended acquire must compare the path with the open file, or the
/// `PackLock` keeps locking the old file while newcomers lock the new one.
#[test]
fn acquire_after_rename_away_locks_the_file_at_the_path() {
    check_replacement(|path| fs::rename(path, path.with_file_name("moved")).expect("rename"));
}

#[test]
fn acquire_after_deleting_one_of_two_links_locks_the_file_at_the_path() {
    if !common::open_files_can_be_replaced() {
        eprintln!("skipped: this system cannot take a held file's name away (Wine)");
        return;
    }
    check_replacement(|path| {
        fs::hard_link(path, path.with_file_name("second-link")).expect("hard link");
        fs::remove_file(path).expect("remove");
    });
}
