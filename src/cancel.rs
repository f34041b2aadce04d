//! [`CancellationToken`]: a runtime-agnostic cancel signal, and
//! [`CancelSignal`], the trait that lets
//! [`PackLock::acquire_cancellable`](crate::PackLock::acquire_cancellable)
//! take other tokens too.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

/// Something that can tell an acquire to give up: [`CancellationToken`],
/// and with the `tokio` feature `tokio_util::sync::CancellationToken`.
/// Implement it for your own token type to pass it to
/// [`PackLock::acquire_cancellable`](crate::PackLock::acquire_cancellable).
///
/// # Examples
///
/// ```
/// use packlock::{CancelSignal, CancellationToken};
///
/// let token = CancellationToken::new();
/// token.cancel();
/// futures_lite::future::block_on(CancelSignal::cancelled(&token)); // ready at once
/// ```
pub trait CancelSignal {
    /// Completes once cancellation has been requested (at once if it
    /// already was). An acquire polls it before each attempt.
    fn cancelled(&self) -> impl Future<Output = ()> + Send + '_;
}

/// A cancel signal that works on any executor, built on `event-listener`.
///
/// Clones share one state: cancelling any clone cancels them all. A
/// [child token](Self::child_token) is cancelled with its parent but can be
/// cancelled alone.
///
/// # Examples
///
/// ```
/// use packlock::{CancellationToken, PackLock, PackLockErrorOrCancelled};
///
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let lock = PackLock::open(dir.path())?;
/// let _held = lock.acquire()?;
///
/// let token = CancellationToken::new();
/// let canceller = token.clone();
/// std::thread::spawn(move || canceller.cancel());
/// match lock.acquire_cancellable(&token).await {
///     Err(PackLockErrorOrCancelled::Cancelled) => println!("gave up"),
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok::<(), packlock::PackLockError>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct CancellationToken {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    cancelled: AtomicBool,
    event: Event,
    /// Children are held weakly, so dropped child tokens cost nothing...
    children: Mutex<Vec<Weak<State>>>,
    /// ...and each child holds its parent strongly, so a chain stays
    /// connected even when a token in the middle of it is dropped.
    _parent: Option<Arc<State>>,
}

impl CancellationToken {
    /// A new token, not cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!packlock::CancellationToken::new().is_cancelled());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation: wakes every waiter of this token and of its
    /// children. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// let token = packlock::CancellationToken::new();
    /// token.cancel();
    /// token.cancel();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn cancel(&self) {
        self.state.cancel();
    }

    /// Whether cancellation has been requested (of this token or of an
    /// ancestor).
    ///
    /// # Examples
    ///
    /// ```
    /// let token = packlock::CancellationToken::new();
    /// let clone = token.clone();
    /// clone.cancel();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.state.cancelled.load(Ordering::Acquire)
    }

    /// A future that completes once cancellation is requested.
    ///
    /// # Examples
    ///
    /// ```
    /// let token = packlock::CancellationToken::new();
    /// let waiter = std::thread::spawn({
    ///     let token = token.clone();
    ///     move || futures_lite::future::block_on(token.cancelled())
    /// });
    /// token.cancel();
    /// waiter.join().unwrap();
    /// ```
    pub fn cancelled(&self) -> WaitForCancellation<'_> {
        WaitForCancellation { token: self, listener: None }
    }

    /// A new token that is cancelled when this one is (now or later), and
    /// that can also be cancelled on its own without affecting this one.
    ///
    /// # Examples
    ///
    /// ```
    /// let parent = packlock::CancellationToken::new();
    /// let child = parent.child_token();
    /// child.cancel();
    /// assert!(!parent.is_cancelled());
    /// let other_child = parent.child_token();
    /// parent.cancel();
    /// assert!(other_child.is_cancelled());
    /// ```
    pub fn child_token(&self) -> CancellationToken {
        let child = Arc::new(State { _parent: Some(Arc::clone(&self.state)), ..State::default() });
        let mut children = self.state.children();
        // Checked under the children lock, which `cancel` takes after
        // setting the flag: either we see the flag or `cancel` sees the child.
        if self.is_cancelled() {
            child.cancelled.store(true, Ordering::Release);
        } else {
            children.retain(|weak| weak.strong_count() > 0);
            children.push(Arc::downgrade(&child));
        }
        CancellationToken { state: child }
    }
}

impl State {
    fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        self.event.notify(usize::MAX);
        let children = std::mem::take(&mut *self.children());
        for child in children.iter().filter_map(Weak::upgrade) {
            child.cancel();
        }
    }

    fn children(&self) -> std::sync::MutexGuard<'_, Vec<Weak<State>>> {
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken").field("cancelled", &self.is_cancelled()).finish()
    }
}

impl CancelSignal for CancellationToken {
    fn cancelled(&self) -> impl Future<Output = ()> + Send + '_ {
        CancellationToken::cancelled(self)
    }
}

/// The future returned by [`CancellationToken::cancelled`].
///
/// # Examples
///
/// ```
/// let token = packlock::CancellationToken::new();
/// let wait: packlock::WaitForCancellation<'_> = token.cancelled();
/// token.cancel();
/// futures_lite::future::block_on(wait);
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct WaitForCancellation<'a> {
    token: &'a CancellationToken,
    listener: Option<EventListener>,
}

impl Future for WaitForCancellation<'_> {
    type Output = ();

    /// Check, listen, check again: a `cancel` between the first check and
    /// the listener's registration would otherwise be missed.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.token.is_cancelled() {
                return Poll::Ready(());
            }
            match &mut self.listener {
                None => self.listener = Some(self.token.state.event.listen()),
                Some(listener) => {
                    std::task::ready!(Pin::new(listener).poll(cx));
                    self.listener = None;
                }
            }
        }
    }
}

impl fmt::Debug for WaitForCancellation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitForCancellation").field("token", self.token).finish_non_exhaustive()
    }
}
