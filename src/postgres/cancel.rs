//! [`WaitCancel`]: stops a blocking wait for a server lock from another
//! thread or task, by the protocol's cancel request (a second, short
//! connection that asks the server to cancel the waiting query).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_postgres::CancelToken;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How often a cancel request is repeated while the wait has not ended: a
/// request that reaches the server before the waiting query does cancels
/// nothing.
const RESEND_EVERY: Duration = Duration::from_millis(25);

/// A cancel switch for one wait ([`LockServer::lock`](super::LockServer)).
/// Cheap to clone; `cancel` works from any thread, before or during the
/// wait, and makes the wait end with `ServerError::Cancelled` with nothing
/// held.
#[derive(Clone, Debug, Default)]
pub(crate) struct WaitCancel(Arc<State>);

#[derive(Debug, Default)]
struct State {
    cancelled: AtomicBool,
    armed: Mutex<Option<Armed>>,
    /// Wakes a wait that is between attempts ([`WaitCancel::sleep`]).
    woken: Notify,
}

struct Armed {
    token: CancelToken,
    tls: MakeRustlsConnect,
    handle: Handle,
    done: Arc<AtomicBool>,
}

impl std::fmt::Debug for Armed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Armed").field("done", &self.done).finish_non_exhaustive()
    }
}

/// While alive, cancel requests go to the armed session's query.
pub(crate) struct Disarm<'a> {
    state: &'a State,
    done: Arc<AtomicBool>,
}

impl WaitCancel {
    pub(crate) fn new() -> WaitCancel {
        WaitCancel::default()
    }

    /// Cancels the wait, now or as soon as it starts.
    pub(crate) fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        self.0.woken.notify_waiters();
        let armed = self.0.armed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(armed) = armed.as_ref() {
            let (token, tls, done) = (armed.token.clone(), armed.tls.clone(), armed.done.clone());
            armed.handle.spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    if let Err(e) = token.cancel_query(tls.clone()).await {
                        log::debug!("lock server cancel request failed: {e}");
                    }
                    tokio::time::sleep(RESEND_EVERY).await;
                }
            });
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Sleeps for `pause` on the client thread, or less if cancelled
    /// meanwhile; returns whether the wait goes on (not cancelled).
    pub(crate) async fn sleep(&self, pause: Duration) -> bool {
        let woken = self.0.woken.notified(); // registered before the check
        if self.is_cancelled() {
            return false;
        }
        let slept = async {
            tokio::time::sleep(pause).await;
            true
        };
        let cancelled = async {
            woken.await;
            false
        };
        futures_lite::future::or(slept, cancelled).await && !self.is_cancelled()
    }

    /// Points cancel requests at the session about to wait (call on the
    /// client thread). Check [`is_cancelled`](Self::is_cancelled) after
    /// this and before waiting: a cancel before arming sent no request.
    pub(crate) fn arm(&self, token: CancelToken, tls: MakeRustlsConnect) -> Disarm<'_> {
        let done = Arc::new(AtomicBool::new(false));
        let armed = Armed { token, tls, handle: Handle::current(), done: done.clone() };
        *self.0.armed.lock().unwrap_or_else(PoisonError::into_inner) = Some(armed);
        Disarm { state: &self.0, done }
    }
}

impl Drop for Disarm<'_> {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        *self.state.armed.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}
