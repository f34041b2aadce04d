//! Driving the acquire pipeline on the calling thread, for the sync
//! acquires.
//!
//! [`block_on_until`] is how [`PackLock::acquire_timeout`](crate::PackLock::acquire_timeout)
//! waits: the thread parks until the future's waker unparks it or the
//! deadline passes, so it never spins; a spurious unpark only costs one
//! extra poll. [`run_here`] serves the acquires that wait, if at all, by
//! blocking inside the future, so one poll finishes them.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

/// Runs a future that blocks instead of returning `Pending` (the pipeline
/// with `Wait::Never` or `Wait::Thread`): one poll, with no waker to set up.
pub(crate) fn run_here<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        // Not expected; still correct, just slower.
        Poll::Pending => futures_lite::future::block_on(future),
    }
}

/// Polls `future` to completion on this thread, or gives up (dropping it)
/// at `deadline` and returns `None`.
pub(crate) fn block_on_until<F: Future>(future: F, deadline: Instant) -> Option<F::Output> {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unparker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        thread::park_timeout(left);
    }
}

struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::block_on_until;
    use std::time::{Duration, Instant};

    #[test]
    fn ready_future_completes_even_past_its_deadline() {
        assert_eq!(block_on_until(async { 7 }, Instant::now()), Some(7));
    }

    #[test]
    fn pending_future_gives_up_at_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(block_on_until(std::future::pending::<()>(), deadline), None);
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn wakes_when_another_thread_completes_the_future() {
        let token = crate::CancellationToken::new();
        let canceller = token.clone();
        std::thread::spawn(move || canceller.cancel());
        let deadline = Instant::now() + Duration::from_secs(30);
        assert_eq!(block_on_until(token.cancelled(), deadline), Some(()));
    }
}
