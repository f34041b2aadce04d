//! `packlock::CancellationToken` on its own: cancelling and observing it,
//! clones sharing one state, child tokens, its traits, and above all that
//! `cancelled()` never misses a `cancel()` racing from another thread (the
//! check–listen–check in its `poll`).

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;

use common::DEADLINE;
use futures_lite::future;
use packlock::{CancelSignal, CancellationToken, WaitForCancellation};

/// Whether `signal` is complete on its first poll.
fn ready_at_once(signal: impl Future<Output = ()>) -> bool {
    future::block_on(future::poll_once(signal)).is_some()
}

/// Blocks on `token.cancelled()`, failing after [`DEADLINE`] (as a lost
/// wake-up would) instead of hanging.
fn wait_cancelled(token: &CancellationToken) {
    let cancelled = async {
        token.cancelled().await;
        true
    };
    let gave_up = async {
        async_io::Timer::after(DEADLINE).await;
        false
    };
    // The timer goes first: once it has fired it wins, even though the
    // token is cancelled by then and a re-poll would find that.
    assert!(future::block_on(future::or(gave_up, cancelled)), "cancelled() missed the cancel");
}

/// Cancels `token` from a new thread that starts together with the
/// caller's return (it polls for the go rather than sleeping, so that no
/// wake-up latency blurs the timing) and spins `spins` times first, so that over many runs
/// the cancel lands before, during and after the caller's listener
/// registration.
fn cancel_from_thread(token: &CancellationToken, spins: usize) -> thread::JoinHandle<()> {
    let token = token.clone();
    let (ready, go) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let canceller = thread::spawn({
        let (ready, go) = (Arc::clone(&ready), Arc::clone(&go));
        move || {
            ready.store(true, Ordering::Release);
            while !go.load(Ordering::Acquire) {
                thread::yield_now();
            }
            for _ in 0..spins {
                std::hint::spin_loop();
            }
            token.cancel();
        }
    });
    while !ready.load(Ordering::Acquire) {
        thread::yield_now();
    }
    go.store(true, Ordering::Release);
    canceller
}

#[test]
fn a_new_token_is_not_cancelled() {
    let token = CancellationToken::new();
    assert!(!token.is_cancelled());
    assert!(!CancellationToken::default().is_cancelled());
    assert!(!ready_at_once(token.cancelled()), "cancelled() completed without a cancel");
}

#[test]
fn cancel_sets_the_flag_and_completes_cancelled() {
    let token = CancellationToken::new();
    token.cancel();
    assert!(token.is_cancelled());
    assert!(ready_at_once(token.cancelled()), "cancelled() pending after cancel");
}

#[test]
fn cancel_is_idempotent() {
    let token = CancellationToken::new();
    for _ in 0..3 {
        token.cancel();
        assert!(token.is_cancelled());
        assert!(ready_at_once(token.cancelled()));
    }
}

#[test]
fn a_future_created_before_the_cancel_completes_after_it() {
    let token = CancellationToken::new();
    let mut waiting = Box::pin(token.cancelled());
    assert!(future::block_on(future::poll_once(waiting.as_mut())).is_none());
    token.cancel();
    assert!(future::block_on(future::poll_once(waiting.as_mut())).is_some());
}

#[test]
fn clones_share_one_state() {
    let original = CancellationToken::new();
    let clone = original.clone();
    let clone_of_clone = clone.clone();
    clone_of_clone.cancel();
    assert!(original.is_cancelled() && clone.is_cancelled());
    assert!(ready_at_once(original.cancelled()));

    let original = CancellationToken::new();
    let clone = original.clone();
    original.cancel();
    assert!(clone.is_cancelled(), "cancelling the original must cancel its clone");
}

#[test]
fn cancelled_completes_when_cancelled_from_another_thread() {
    let token = CancellationToken::new();
    let canceller = cancel_from_thread(&token, 0);
    wait_cancelled(&token);
    canceller.join().expect("canceller panicked");
}

/// The check–listen–check: a cancel landing between the waiter's first
/// check and its listener's registration must still wake it.
#[test]
fn cancel_racing_the_listener_is_never_lost() {
    for i in 0..2_000 {
        let token = CancellationToken::new();
        let canceller = cancel_from_thread(&token, i * 7 % 500);
        wait_cancelled(&token);
        canceller.join().expect("canceller panicked");
    }
}

/// Racing a parent's cancel against a waiter on a grandchild: the cancel
/// reaches the grandchild's listeners too.
#[test]
fn cancel_of_an_ancestor_racing_the_listener_is_never_lost() {
    for i in 0..1_000 {
        let parent = CancellationToken::new();
        let child = parent.child_token(); // kept; dropping it is tested below
        let grandchild = child.child_token();
        let canceller = cancel_from_thread(&parent, i * 7 % 500);
        wait_cancelled(&grandchild);
        canceller.join().expect("canceller panicked");
    }
}

#[test]
fn one_cancel_wakes_every_waiter() {
    let token = CancellationToken::new();
    let (started, all_started) = mpsc::channel();
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let (token, started) = (token.clone(), started.clone());
            thread::spawn(move || {
                started.send(()).expect("report start");
                wait_cancelled(&token);
            })
        })
        .collect();
    for _ in 0..8 {
        all_started.recv_timeout(DEADLINE).expect("waiter started");
    }
    token.cancel();
    for waiter in waiters {
        waiter.join().expect("a waiter missed the cancel");
    }
}

#[test]
fn cancelling_the_parent_cancels_its_children_and_grandchildren() {
    let parent = CancellationToken::new();
    let child = parent.child_token();
    let sibling = parent.child_token();
    let grandchild = child.child_token();
    let mut waiting = Box::pin(grandchild.cancelled());
    assert!(future::block_on(future::poll_once(waiting.as_mut())).is_none());

    parent.cancel();
    for token in [&child, &sibling, &grandchild] {
        assert!(token.is_cancelled(), "a descendant was not cancelled with its ancestor");
    }
    assert!(
        future::block_on(future::poll_once(waiting.as_mut())).is_some(),
        "a grandchild's pending cancelled() was not woken by its grandparent"
    );
}

#[test]
fn cancelling_a_child_leaves_the_parent_and_siblings_alone() {
    let parent = CancellationToken::new();
    let child = parent.child_token();
    let sibling = parent.child_token();
    let grandchild = child.child_token();
    child.cancel();
    assert!(child.is_cancelled() && grandchild.is_cancelled());
    assert!(!parent.is_cancelled(), "a child cancelled its parent");
    assert!(!sibling.is_cancelled(), "a child cancelled its sibling");
    assert!(!ready_at_once(parent.cancelled()));
}

/// As with tokio-util's token, the chain of cancellation must not depend
/// on the intermediate token staying alive: `parent.child_token().child_token()`
/// is a natural way to write a grandchild.
#[test]
fn dropping_an_intermediate_token_keeps_grandchildren_attached() {
    let parent = CancellationToken::new();
    let child = parent.child_token();
    let grandchild = child.child_token();
    drop(child);
    parent.cancel();
    assert!(grandchild.is_cancelled(), "the grandchild lost its grandparent");
    assert!(ready_at_once(grandchild.cancelled()));

    let parent = CancellationToken::new();
    let grandchild = parent.child_token().child_token();
    parent.cancel();
    assert!(grandchild.is_cancelled(), "a grandchild made through a temporary child");
}

#[test]
fn a_child_of_a_cancelled_parent_is_born_cancelled() {
    let parent = CancellationToken::new();
    parent.cancel();
    let child = parent.child_token();
    assert!(child.is_cancelled());
    assert!(child.child_token().is_cancelled());
    assert!(ready_at_once(child.cancelled()));
}

#[test]
fn a_child_of_a_clone_follows_the_shared_state() {
    let parent = CancellationToken::new();
    let child = parent.clone().child_token();
    parent.cancel();
    assert!(child.is_cancelled());
}

#[test]
fn a_child_created_while_the_parent_is_being_cancelled_is_cancelled() {
    for _ in 0..500 {
        let parent = CancellationToken::new();
        let canceller = cancel_from_thread(&parent, 0);
        let child = parent.child_token();
        canceller.join().expect("canceller panicked");
        assert!(child.is_cancelled(), "a child created during the cancel was missed");
    }
}

#[test]
fn many_dropped_children_do_not_break_the_parent() {
    let parent = CancellationToken::new();
    for _ in 0..10_000 {
        drop(parent.child_token());
    }
    let survivor = parent.child_token();
    parent.cancel();
    assert!(survivor.is_cancelled());
}

#[test]
fn cancel_signal_trait_agrees_with_the_inherent_methods() {
    fn via_trait(signal: &impl CancelSignal) -> bool {
        ready_at_once(signal.cancelled())
    }
    let token = CancellationToken::new();
    assert_eq!((token.is_cancelled(), via_trait(&token)), (false, false));
    token.cancel();
    assert_eq!((token.is_cancelled(), via_trait(&token)), (true, true));
}

#[test]
fn debug_shows_the_state() {
    let token = CancellationToken::new();
    assert!(format!("{token:?}").contains("cancelled: false"), "{token:?}");
    token.cancel();
    assert!(format!("{token:?}").contains("cancelled: true"), "{token:?}");
    assert!(format!("{:?}", token.cancelled()).contains("WaitForCancellation"));
}

/// Compile-time: the token can be shared across threads and tasks, and
/// the future can be held across `.await` in a task spawned on a
/// multi-thread executor.
#[test]
fn token_and_future_have_the_expected_traits() {
    fn token_traits<T: Clone + Default + Send + Sync + std::fmt::Debug + 'static>() {}
    fn future_traits<T: Send>(_: &T) {}
    token_traits::<CancellationToken>();
    let token = CancellationToken::new();
    let waiting: WaitForCancellation<'_> = token.cancelled();
    future_traits(&waiting);
}
