//! Acquiring a lock file the same thread (sync) or the same tier scope
//! (async) already holds fails with `Reentrant` naming the path instead of
//! hanging; other threads and tasks still wait normally.

#[macro_use]
mod common;

use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use common::{open, temp_dir, within_deadline};
use futures_lite::future;
use packlock::{
    CancellationToken, PACK_LOCK_FILE_NAME, PackLock, PackLockError, PackLockErrorOrCancelled,
    with_tier_scope,
};

#[test]
fn sync_reacquire_on_the_same_thread_is_an_error_not_a_hang() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let _hold = lock.acquire().expect("acquire");
    assert_err!(lock.acquire(), PackLockError::Reentrant, lock.path());
    assert_err!(
        lock.acquire_timeout(Duration::from_secs(60)),
        PackLockError::Reentrant,
        lock.path()
    );
    assert_err!(open(dir.path()).acquire(), PackLockError::Reentrant, lock.path());
    assert!(matches!(lock.try_acquire(), Err(PackLockError::Busy { .. })), "try never waits");
}

#[test]
fn an_alias_of_a_held_file_is_reentrant_too() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let link = dir.path().join("link.lock");
    std::fs::hard_link(lock.path(), &link).expect("hard link");
    let alias = PackLock::open_file(&link).expect("open alias");
    let _hold = lock.acquire().expect("acquire");
    assert!(matches!(alias.acquire(), Err(PackLockError::Reentrant { .. })));
}

#[test]
fn after_release_the_same_thread_acquires_again() {
    let dir = temp_dir();
    let lock = open(dir.path());
    lock.acquire().expect("first").release().expect("release");
    drop(lock.acquire().expect("second"));
    let _third = lock.acquire().expect("third");
}

#[test]
fn other_threads_still_wait_normally() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let released = std::sync::atomic::AtomicBool::new(false);
    let hold = lock.acquire().expect("acquire");
    thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let result = lock.acquire().map(drop);
            (result, released.load(std::sync::atomic::Ordering::SeqCst))
        });
        thread::yield_now();
        released.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(hold);
        let (result, after_release) = waiter.join().expect("waiter panicked");
        result.expect("another thread waits, then acquires");
        assert!(after_release, "the other thread acquired while we held the lock");
    });
}

#[test]
fn a_hold_dropped_on_another_thread_is_no_longer_ours() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let hold = lock.acquire().expect("acquire");
    thread::spawn(move || drop(hold)).join().expect("drop thread");
    let _again = lock.acquire().expect("re-acquire after the hold was dropped elsewhere");
}

#[test]
fn async_reacquire_in_the_same_scope_is_an_error() {
    let dir = temp_dir();
    let lock = open(dir.path());
    future::block_on(with_tier_scope(async {
        let _hold = lock.acquire_async().await.expect("acquire");
        assert_err!(lock.acquire_async().await, PackLockError::Reentrant, lock.path());
        let token = CancellationToken::new();
        match lock.acquire_cancellable(&token).await {
            Err(PackLockErrorOrCancelled::Lock(PackLockError::Reentrant { .. })) => {}
            other => panic!("expected Lock(Reentrant), got {other:?}"),
        }
        // Sync code inside the scope runs against the task's record too.
        assert_err!(lock.acquire(), PackLockError::Reentrant, lock.path());
    }));
}

#[test]
fn other_scopes_on_the_same_thread_still_wait_normally() {
    let dir = temp_dir();
    let lock = Arc::new(open(dir.path()));
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    runtime.block_on(async {
        let hold = lock.acquire_async().await.expect("acquire");
        let other = tokio::spawn(with_tier_scope({
            let lock = Arc::clone(&lock);
            async move { lock.acquire_async().await.map(drop) }
        }));
        tokio::task::yield_now().await; // let it start waiting
        drop(hold);
        other.await.expect("task").expect("another scope waits, then acquires");
    });
}

/// Outside a scope async code has no task identity: two tasks polled by one
/// thread must not be mistaken for one (no false `Reentrant`).
#[test]
fn tasks_outside_scopes_on_one_thread_are_not_mistaken_for_each_other() {
    let dir = temp_dir();
    let lock = Arc::new(open(dir.path()));
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    runtime.block_on(async {
        let hold = lock.acquire_async().await.expect("acquire");
        let other = tokio::spawn({
            let lock = Arc::clone(&lock);
            async move { lock.acquire_async().await.map(drop) }
        });
        tokio::task::yield_now().await;
        drop(hold);
        other.await.expect("task").expect("the other task waits, then acquires");
    });
}

/// An acquire counts as the task's from its first poll, while it waits: a
/// second acquire of the same file joined into the same task fails at once
/// rather than queue behind the first, whose hold the task would only drop
/// after both finished (a deadlock).
#[test]
fn a_second_acquire_while_the_first_waits_in_the_same_scope_is_an_error() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let elsewhere = lock.acquire().expect("acquire on the main thread's own record");
    let second = within_deadline(move || {
        future::block_on(with_tier_scope(async {
            let mut first = std::pin::pin!(lock.acquire_async());
            assert!(future::poll_once(&mut first).await.is_none(), "the main thread holds it");
            let second = lock.acquire_async().await.map(drop);
            drop(elsewhere);
            let hold = first.await.expect("the first acquire still gets the lock");
            drop(hold);
            drop(lock.acquire_async().await.expect("and the scope may take it again"));
            second
        }))
    });
    assert_err!(second, PackLockError::Reentrant, dir.path().join(PACK_LOCK_FILE_NAME));
}

/// Two `PackLock`s opened the lock file before it was replaced. The first
/// reopens and holds the new file; the second finds out only after locking
/// the old one, and must then see that this thread holds the new file
/// instead of waiting for itself.
#[test]
fn reentry_is_caught_after_reopening_a_replaced_file() {
    if !common::open_files_can_be_replaced() {
        eprintln!("skipped: this system cannot take a held file's name away (Wine)");
        return;
    }
    let dir = temp_dir();
    let (first, second) = (open(dir.path()), open(dir.path()));
    common::rename_new_file_over(first.path());
    let (hold, again, second) = within_deadline(move || {
        let hold = first.acquire();
        let again = second.acquire();
        (hold.map(|hold| hold.validate()), again.map(drop), second)
    });
    hold.expect("first acquire").expect("it holds the file now at the path");
    assert_err!(again, PackLockError::Reentrant, second.path());
}

/// A scope nested in the one holding a lock file (a library wrapping its
/// futures in a scope, say) is part of the same task: acquiring the file
/// there fails with `Reentrant` at once, where it used to wait for itself
/// (until its timeout, or forever).
#[test]
fn a_nested_scope_cannot_wait_for_a_lock_its_enclosing_scope_holds() {
    let dir = temp_dir();
    let lock = Arc::new(open(dir.path()));
    let outcome = within_deadline({
        let lock = Arc::clone(&lock);
        move || {
            future::block_on(with_tier_scope(async {
                let _hold = lock.acquire_async().await.expect("acquire");
                let timer = async {
                    async_io::Timer::after(common::DEADLINE).await;
                };
                let inner = lock.acquire_timeout_with(common::DEADLINE, timer);
                let timed = with_tier_scope(inner).await.map(drop);
                let forever = with_tier_scope(with_tier_scope(lock.acquire_async())).await;
                (timed, forever.map(drop))
            }))
        }
    });
    assert_err!(outcome.0, PackLockError::Reentrant, lock.path());
    assert_err!(outcome.1, PackLockError::Reentrant, lock.path());
}

/// What a nested scope acquires and drops is gone from the enclosing
/// scope's view; a hold it returns counts as the enclosing scope's.
#[test]
fn a_nested_scope_records_its_own_holds() {
    let dir = temp_dir();
    let lock = Arc::new(open(dir.path()));
    within_deadline(move || {
        future::block_on(with_tier_scope(async {
            with_tier_scope(async {
                let _hold = lock.acquire_async().await.expect("acquire in the nested scope");
                assert_err!(lock.acquire_async().await, PackLockError::Reentrant, lock.path());
            })
            .await;
            let hold = lock.acquire_async().await.expect("the nested scope's hold is gone");
            drop(hold);
            let returned = with_tier_scope(lock.acquire_async()).await.expect("acquire");
            assert_err!(lock.acquire_async().await, PackLockError::Reentrant, lock.path());
            assert_err!(
                with_tier_scope(lock.acquire_async()).await,
                PackLockError::Reentrant,
                lock.path()
            );
            drop(returned);
            drop(lock.acquire_async().await.expect("the returned hold was dropped"));
        }));
    });
}

/// A hold moved to another thread still counts as its acquirer's until the
/// new owner calls `adopt`; then the acquirer waits for it like any other
/// thread, and the adopter may not wait for it.
#[test]
fn an_adopted_hold_counts_for_the_thread_that_adopted_it() {
    let dir = temp_dir();
    let lock = Arc::new(open(dir.path()));
    let hold = lock.acquire().expect("acquire");
    let message = lock.acquire().expect_err("re-entrant").to_string();
    assert!(message.contains("PackLockHold::adopt"), "the error names the way out: {message}");
    let (adopted, is_adopted) = mpsc::channel();
    let (go_on, may_go_on) = mpsc::channel::<()>();
    let adopter = thread::spawn({
        let lock = Arc::clone(&lock);
        move || {
            let mut hold = hold;
            hold.adopt();
            let again = lock.acquire_timeout(common::DEADLINE).map(drop);
            adopted.send(again).expect("report");
            let _ = may_go_on.recv();
            drop(hold);
        }
    });
    let again = is_adopted.recv_timeout(common::DEADLINE).expect("the adopter reports");
    assert_err!(again, PackLockError::Reentrant, lock.path());
    drop(go_on);
    // Waits (for the adopter to drop the hold) instead of failing.
    let result = lock.acquire_timeout(common::DEADLINE);
    assert!(result.is_ok(), "the original thread must wait, not fail: {result:?}");
    adopter.join().expect("adopter panicked");
}

/// `adopt` inside a scope moves the hold into the scope's record, and a
/// hold acquired by async code outside any scope (recorded nowhere) can be
/// adopted too.
#[test]
fn a_scope_can_adopt_a_hold() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let mut hold = future::block_on(lock.acquire_async()).expect("acquire outside scopes");
    hold.adopt();
    assert_err!(lock.acquire(), PackLockError::Reentrant, lock.path());
    future::block_on(with_tier_scope(async {
        drop(lock.try_acquire().expect_err("held"));
        hold.adopt();
        assert_err!(lock.acquire_async().await, PackLockError::Reentrant, lock.path());
        drop(hold);
        drop(lock.acquire_async().await.expect("free after the drop"));
    }));
    drop(lock.acquire().expect("the thread no longer holds it"));
}
