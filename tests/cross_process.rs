//! Exclusion between real processes: many processes, each with threads and
//! async tasks, never overlap and lose no update; a killed holder frees the
//! lock at once; a process sends at most one waiter per lock file to the
//! kernel.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::thread;

use common::{Child, ChildArgs, open, section, temp_dir};
use packlock::PackLockError;

const THREADS: usize = 3;
const TASKS: usize = 3;
const ROUNDS: u64 = 40;
const PROCESSES: usize = 3;

#[test]
fn child_process_entry() {
    common::child_process_entry(|args: &ChildArgs| match args.role.as_str() {
        "hold" => common::hold_until_told(&common::open(&args.dir)),
        "count" => count(&args.dir),
        other => panic!("unknown role {other}"),
    });
}

/// Child role: threads and async tasks all incrementing the shared counter.
fn count(dir: &Path) {
    common::wait_for_parent(); // start all processes together
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let dir = dir.to_path_buf();
            thread::spawn(move || increment_from_thread(&dir))
        })
        .collect();
    increment_from_tasks(dir);
    for thread in threads {
        thread.join().expect("counting thread panicked");
    }
}

/// A fresh `PackLock` per round: opening and locking both race.
fn increment_from_thread(dir: &Path) {
    for _ in 0..ROUNDS {
        let hold = open(dir).acquire().expect("acquire");
        let seen = section::enter(dir);
        thread::yield_now();
        section::leave(dir, seen);
        drop(hold);
    }
}

/// One `PackLock` shared by tasks on a two-worker tokio runtime.
fn increment_from_tasks(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let lock = Arc::new(open(dir));
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (lock, dir) = (Arc::clone(&lock), dir.to_path_buf());
                tokio::spawn(async move {
                    for _ in 0..ROUNDS {
                        let hold = lock.acquire_async().await.expect("acquire_async");
                        let seen = section::enter(&dir);
                        tokio::task::yield_now().await;
                        section::leave(&dir, seen);
                        drop(hold);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("counting task panicked");
        }
    });
}

#[test]
fn processes_threads_and_tasks_never_overlap_and_lose_no_update() {
    let dir = temp_dir();
    let mut children: Vec<Child> =
        (0..PROCESSES).map(|_| Child::spawn("count", dir.path())).collect();
    for child in &mut children {
        child.proceed();
    }
    for child in children {
        child.join();
    }
    let expected = PROCESSES as u64 * (THREADS + TASKS) as u64 * ROUNDS;
    assert_eq!(section::count(dir.path()), expected, "updates were lost");
}

#[test]
fn kill_9_of_a_holder_frees_the_lock_at_once() {
    let dir = temp_dir();
    let child = Child::spawn("hold", dir.path());
    child.expect("locked");
    let lock = open(dir.path());
    assert!(matches!(lock.try_acquire(), Err(PackLockError::Busy { .. })));
    child.kill();
    let _hold = lock.try_acquire().expect("the kernel releases a dead holder's lock");
}

#[test]
fn a_waiter_gets_the_lock_when_the_holder_is_killed() {
    let dir = temp_dir();
    let child = Child::spawn("hold", dir.path());
    child.expect("locked");
    let lock = open(dir.path());
    thread::scope(|scope| {
        let waiter = scope.spawn(|| lock.acquire().map(drop));
        common::wait_until_parked(lock.path());
        assert!(!waiter.is_finished(), "acquired while a live process held the lock");
        child.kill();
        waiter.join().expect("waiter panicked").expect("acquire after the holder died");
    });
}

/// Threads and tasks of this process queue in user space: at most one of
/// them waits in the kernel at any moment.
#[cfg(target_os = "linux")]
#[test]
fn a_process_sends_at_most_one_waiter_per_lock_file_to_the_kernel() {
    use common::proc_locks::waiters_of;

    let dir = temp_dir();
    let mut child = Child::spawn("hold", dir.path());
    child.expect("locked");
    let shared = Arc::new(open(dir.path()));
    let path = shared.path().to_path_buf();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let lock = Arc::clone(&shared);
            runtime.spawn(async move { lock.acquire_async().await.map(drop) })
        })
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let dir = dir.path().to_path_buf();
            thread::spawn(move || packlock::PackLock::open(dir)?.acquire().map(drop))
        })
        .collect();
    let me = std::process::id();
    common::wait_until("someone waits in the kernel", || waiters_of(&path, me) >= 1);
    for _ in 0..200 {
        assert!(waiters_of(&path, me) <= 1, "more than one waiter of ours in the kernel");
    }
    child.proceed();
    child.expect("released");
    for thread in threads {
        thread.join().expect("thread panicked").expect("thread acquire");
    }
    for task in tasks {
        runtime.block_on(task).expect("task panicked").expect("task acquire");
    }
}
