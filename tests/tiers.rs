//! Lock-ordering tiers on threads and tasks: nested tiers in increasing
//! rank pass; out-of-order ones are violations (under the default policy of
//! the build, which tests/tier_policy.rs covers); records follow tasks
//! across worker threads; guards dropped out of order or elsewhere remove
//! only their own entry.

// Most of this file checks the debug-build policy (violations panic); a
// release build runs only the tests that hold under any policy.
#![cfg_attr(not(debug_assertions), allow(unused))]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::thread;

use futures_lite::future;
use packlock::{PackLock, Tier, TierGuard, with_tier, with_tier_scope};

const WORKSPACE: Tier = Tier::new(0, "workspace-sync");
const SEMAPHORE: Tier = Tier::new(1, "semaphore");
const PER_PACK: Tier = Tier::new(2, "per-pack");
const BACKEND: Tier = Tier::new(3, "backend");
const MANIFEST: Tier = Tier::new(4, "manifest");

/// Whether pushing `tier` now is accepted. Only meaningful under the
/// default policy of debug builds (panic); in release builds violations
/// only log, which tests/tier_policy.rs checks.
fn accepts(tier: Tier) -> bool {
    catch_unwind(|| drop(TierGuard::push(tier))).is_ok()
}

#[test]
fn strictly_increasing_nested_tiers_pass() {
    let reached = with_tier(WORKSPACE, || {
        with_tier(SEMAPHORE, || {
            with_tier(PER_PACK, || with_tier(BACKEND, || with_tier(MANIFEST, || "innermost")))
        })
    });
    assert_eq!(reached, "innermost");
}

#[test]
fn tiers_are_free_again_after_their_scope() {
    with_tier(PER_PACK, || {});
    with_tier(WORKSPACE, || {}); // lower than before, but nothing is held now
    let _guard = TierGuard::push(SEMAPHORE);
}

#[cfg(debug_assertions)]
mod violations {
    use super::*;

    #[test]
    fn reversed_ranks_panic_in_debug() {
        let result = catch_unwind(|| with_tier(PER_PACK, || with_tier(SEMAPHORE, || {})));
        let message = panic_message(result.expect_err("reversed tiers must panic"));
        assert!(message.contains("`semaphore` (rank 1)"), "{message}");
        assert!(message.contains("`per-pack` (rank 2)"), "{message}");
    }

    #[test]
    fn equal_ranks_panic_in_debug() {
        let result = catch_unwind(|| with_tier(PER_PACK, || with_tier(PER_PACK, || {})));
        assert!(result.is_err(), "an equal tier must panic");
    }

    #[test]
    fn a_violation_leaves_the_record_intact() {
        let _pack = TierGuard::push(PER_PACK);
        assert!(!accepts(WORKSPACE));
        assert!(accepts(BACKEND), "the failed push must not have been recorded");
    }

    /// The seed's motivating case: a per-pack lock held, then the
    /// workspace lock taken. The message names both tiers and both files.
    #[test]
    fn taking_a_lower_tier_lock_names_both_tiers_and_both_locks() {
        let root = tempfile::tempdir().expect("temp dir");
        let ws = PackLock::builder(root.path())
            .file_name(".sync.lock")
            .tier(WORKSPACE)
            .open()
            .expect("open workspace lock");
        let pack = PackLock::builder(root.path().join("foo"))
            .tier(PER_PACK)
            .open()
            .expect("open pack lock");
        let _pack_hold = pack.acquire().expect("acquire pack");
        let result = catch_unwind(AssertUnwindSafe(|| ws.acquire()));
        let message = panic_message(result.expect_err("must panic"));
        for part in ["`workspace-sync` (rank 0)", "`per-pack` (rank 2)"] {
            assert!(message.contains(part), "{message}");
        }
        for path in [ws.path(), pack.path()] {
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        assert!(ws.try_acquire().is_ok(), "the refused acquire must leave the lock free");
    }

    /// An acquire still waiting counts too: taking a lower tier meanwhile
    /// (say in another branch of a `join!`) is the same deadlock hazard as
    /// taking it while holding.
    #[test]
    fn a_lower_tier_while_an_acquire_waits_is_a_violation() {
        let root = tempfile::tempdir().expect("temp dir");
        let ws = PackLock::builder(root.path()).file_name(".sync.lock").tier(WORKSPACE).open();
        let pack = PackLock::builder(root.path().join("foo")).tier(PER_PACK).open();
        let (ws, pack) = (ws.expect("open workspace lock"), pack.expect("open pack lock"));
        let elsewhere = pack.acquire().expect("held by the thread's own record");
        let result = catch_unwind(AssertUnwindSafe(|| {
            future::block_on(with_tier_scope(async {
                let mut waiting = std::pin::pin!(pack.acquire_async());
                assert!(future::poll_once(&mut waiting).await.is_none(), "held elsewhere");
                ws.acquire_async().await.map(drop)
            }))
        }));
        let message = panic_message(result.expect_err("must panic"));
        assert!(message.contains("acquiring"), "{message}");
        assert!(message.contains(&pack.path().display().to_string()), "{message}");
        drop(elsewhere);
        assert!(ws.try_acquire().is_ok() && pack.try_acquire().is_ok(), "nothing stays held");
    }

    #[test]
    fn guards_dropped_out_of_order_remove_only_their_own_entry() {
        let workspace = TierGuard::push(WORKSPACE);
        let pack = TierGuard::push(PER_PACK);
        let manifest = TierGuard::push(MANIFEST);
        drop(pack); // the middle one first
        assert!(!accepts(BACKEND), "manifest (4) is still held");
        drop(workspace);
        assert!(!accepts(BACKEND), "manifest (4) is still held");
        drop(manifest);
        assert!(accepts(WORKSPACE), "nothing is held any more");
    }

    #[test]
    fn a_guard_dropped_on_another_thread_leaves_its_own_record() {
        let backend = TierGuard::push(BACKEND);
        assert!(!accepts(SEMAPHORE));
        thread::spawn(move || {
            // This thread's own record is empty: any tier is fine here.
            let _ws = TierGuard::push(WORKSPACE);
            drop(backend);
        })
        .join()
        .expect("thread");
        assert!(accepts(SEMAPHORE), "the guard removed its entry from our record");
    }

    #[test]
    fn each_thread_has_its_own_record() {
        let _pack = TierGuard::push(PER_PACK);
        let other = thread::spawn(|| accepts(WORKSPACE)).join().expect("thread");
        assert!(other, "another thread holds nothing");
    }

    #[test]
    fn scopes_check_per_task_and_restore_the_thread_record_after_a_panic() {
        let _pack = TierGuard::push(PER_PACK);
        // A scope is a task of its own: the thread's tiers do not apply.
        future::block_on(with_tier_scope(async {
            let _ws = TierGuard::push(WORKSPACE);
            future::yield_now().await;
            assert!(!accepts(WORKSPACE), "the task holds workspace-sync");
        }));
        let panicked = catch_unwind(|| {
            future::block_on(with_tier_scope(async {
                let _ws = TierGuard::push(WORKSPACE);
                panic!("inside the scope");
            }))
        });
        assert!(panicked.is_err());
        // Back on the thread's record: per-pack is held, workspace is not ok.
        assert!(!accepts(WORKSPACE), "the thread record was restored");
        assert!(accepts(BACKEND));
    }

    /// Deterministic migration: the task is polled on one thread, then
    /// moved to another and polled there; its record goes with it.
    #[test]
    fn a_task_keeps_its_record_when_moved_to_another_thread() {
        let mut task: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(with_tier_scope(async {
            let _ws = TierGuard::push(WORKSPACE);
            let _pack = TierGuard::push(PER_PACK);
            yield_once().await; // moved to another thread here
            assert!(!accepts(SEMAPHORE), "per-pack is still held after the move");
            let _backend = TierGuard::push(BACKEND);
        }));
        assert!(future::block_on(future::poll_once(&mut task)).is_none());
        assert!(accepts(WORKSPACE), "the task's tiers never touched this thread's record");
        thread::spawn(move || future::block_on(task)).join().expect("task panicked");
    }

    /// A scope nested in another (a library wrapping its futures in a
    /// scope, say) checks against what the enclosing scope holds: taking a
    /// lower tier there is a violation, not a fresh start.
    #[test]
    fn a_nested_scope_checks_the_tiers_of_the_enclosing_scope() {
        let result = catch_unwind(|| {
            future::block_on(with_tier_scope(async {
                let _backend = TierGuard::push(BACKEND);
                with_tier_scope(async { drop(TierGuard::push(SEMAPHORE)) }).await;
            }))
        });
        let message = panic_message(result.expect_err("a lower tier in a nested scope"));
        assert!(message.contains("`semaphore` (rank 1)"), "{message}");
        assert!(message.contains("`backend` (rank 3)"), "{message}");
        // Two levels down, and through a lock's tier.
        let root = tempfile::tempdir().expect("temp dir");
        let ws = PackLock::builder(root.path()).file_name(".sync.lock").tier(WORKSPACE).open();
        let ws = ws.expect("open workspace lock");
        let result = catch_unwind(AssertUnwindSafe(|| {
            future::block_on(with_tier_scope(async {
                let _pack = TierGuard::push(PER_PACK);
                with_tier_scope(with_tier_scope(async { ws.acquire_async().await.map(drop) })).await
            }))
        }));
        let message = panic_message(result.expect_err("a lower tier two scopes down"));
        assert!(message.contains(&ws.path().display().to_string()), "{message}");
        assert!(ws.try_acquire().is_ok(), "nothing stays held");
    }

    /// A nested scope records its own tiers: once dropped there they are
    /// gone from the enclosing scope's view, and sibling scopes do not see
    /// each other's.
    #[test]
    fn a_nested_scope_keeps_its_own_tiers() {
        future::block_on(with_tier_scope(async {
            let _ws = TierGuard::push(WORKSPACE);
            with_tier_scope(async {
                let _manifest = TierGuard::push(MANIFEST);
                yield_once().await;
                assert!(!accepts(BACKEND), "manifest (4) is held in here");
            })
            .await;
            assert!(accepts(PER_PACK), "the nested scope's tier is gone");
            let first = with_tier_scope(async {
                let _pack = TierGuard::push(PER_PACK);
                yield_once().await;
            });
            let second = with_tier_scope(async {
                let _pack = TierGuard::push(PER_PACK);
                yield_once().await;
            });
            future::zip(first, second).await;
            assert!(!accepts(WORKSPACE), "the enclosing scope still holds its own");
        }));
    }

    fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
        match payload.downcast::<String>() {
            Ok(message) => *message,
            Err(payload) => {
                payload.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default()
            }
        }
    }
}

/// Returns `Pending` once (waking itself), then `Ready`.
async fn yield_once() {
    let mut yielded = false;
    future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// Many tasks on a work-stealing executor each hold tiers across `.await`
/// points; every push is checked against the task's own record, so any mix
/// up with other tasks or with worker threads would be a violation (a
/// panic in debug builds, failing the task).
async fn hold_tiers_across_awaits(
    locks: Arc<[PackLock; 2]>,
) -> std::collections::HashSet<thread::ThreadId> {
    let mut threads = std::collections::HashSet::new();
    for _ in 0..50 {
        let _ws = TierGuard::push(WORKSPACE);
        threads.insert(thread::current().id());
        future::yield_now().await;
        let _pack = locks[0].acquire_async().await.expect("pack lock");
        threads.insert(thread::current().id());
        future::yield_now().await;
        let _backend = locks[1].acquire_async().await.expect("backend lock");
        threads.insert(thread::current().id());
        future::yield_now().await;
    }
    threads
}

fn tiered_locks() -> (tempfile::TempDir, Arc<[PackLock; 2]>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pack = PackLock::builder(dir.path().join("pack")).tier(PER_PACK).open().expect("open");
    let backend = PackLock::open_file(dir.path().join("dest.backend.lock")).expect("open");
    let backend = PackLock::builder_for_file(backend.path()).tier(BACKEND).open().expect("open");
    (dir, Arc::new([pack, backend]))
}

/// Runs rounds of tasks (each returning how many of its tasks moved between
/// threads) until one round saw a task move: whether the executor moves a
/// task is up to its scheduler, and on a loaded machine one round may not.
#[cfg(debug_assertions)]
fn until_a_task_migrates(mut round: impl FnMut() -> usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while round() == 0 {
        let now = std::time::Instant::now();
        assert!(now < deadline, "no task ever moved between threads: the test proved nothing");
    }
}

#[cfg(debug_assertions)] // a corrupted record is detected by the debug panic
#[test]
fn tasks_keep_their_tiers_across_awaits_on_a_4_worker_tokio_runtime() {
    let (_dir, locks) = tiered_locks();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().expect("runtime");
    until_a_task_migrates(|| {
        let tasks: Vec<_> = (0..8)
            .map(|_| runtime.spawn(with_tier_scope(hold_tiers_across_awaits(Arc::clone(&locks)))))
            .collect();
        let mut migrated = 0;
        for task in tasks {
            let threads = runtime.block_on(task).expect("a task saw a corrupted tier record");
            migrated += usize::from(threads.len() > 1);
        }
        migrated
    });
}

#[cfg(debug_assertions)]
#[test]
fn tasks_keep_their_tiers_across_awaits_on_a_multi_threaded_smol_executor() {
    let (_dir, locks) = tiered_locks();
    let executor = smol::Executor::new();
    let (stop, stopped) = smol::channel::unbounded::<()>();
    thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| future::block_on(executor.run(stopped.recv())));
        }
        until_a_task_migrates(|| {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    executor.spawn(with_tier_scope(hold_tiers_across_awaits(Arc::clone(&locks))))
                })
                .collect();
            future::block_on(executor.run(async {
                let mut migrated = 0;
                for task in tasks {
                    migrated += usize::from(task.await.len() > 1);
                }
                migrated
            }))
        });
        drop(stop);
    });
}
