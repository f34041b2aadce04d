//! [`WaitCancel`]: stops a blocking wait for a server lock from another
//! thread or task, by the protocol's cancel request (a second, short
//! connection that asks the server to cancel the waiting query) — or, if
//! the wait's connection went silent and no cancel gets through, by
//! closing that connection.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::session::Session;

/// How soon a cancel request is repeated while the wait has not ended (a
/// request that reaches the server before the waiting query does cancels
/// nothing); the pause doubles up to [`RESEND_AT_MOST`].
const RESEND_FIRST: Duration = Duration::from_millis(25);
const RESEND_AT_MOST: Duration = Duration::from_secs(1);

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
    session: Weak<Session>,
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
            let stop = stop(armed.session.clone(), armed.tls.clone(), armed.done.clone());
            armed.handle.spawn(stop);
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Runs `work` on the client thread until done, or until cancelled
    /// (then `None`, and `work` is dropped where it stands).
    pub(crate) async fn unless_cancelled<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let woken = self.0.woken.notified(); // registered before the check
        if self.is_cancelled() {
            return None;
        }
        let cancelled = async {
            woken.await;
            None
        };
        futures_lite::future::or(async { Some(work.await) }, cancelled).await
    }

    /// Sleeps for `pause` on the client thread, or less if cancelled
    /// meanwhile; returns whether the wait goes on (not cancelled).
    pub(crate) async fn sleep(&self, pause: Duration) -> bool {
        self.unless_cancelled(tokio::time::sleep(pause)).await.is_some()
    }

    /// Points cancel requests at the session about to wait (call on the
    /// client thread). Check [`is_cancelled`](Self::is_cancelled) after
    /// this and before waiting: a cancel before arming sent no request.
    pub(crate) fn arm(&self, session: &Arc<Session>, tls: MakeRustlsConnect) -> Disarm<'_> {
        let done = Arc::new(AtomicBool::new(false));
        let session = Arc::downgrade(session);
        let armed = Armed { session, tls, handle: Handle::current(), done: done.clone() };
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

/// Stops the wait on `session` until `done`: cancel requests, repeated
/// with a growing pause, for two heartbeat intervals; then, as the wait
/// has neither ended nor answered, its connection is silent, and closing
/// it ends the wait (and the session on the server, once that hears).
async fn stop(session: Weak<Session>, tls: MakeRustlsConnect, done: Arc<AtomicBool>) {
    let Some((token, patience)) = session.upgrade().map(|s| (s.cancel_token(), 2 * s.heartbeat))
    else {
        return;
    };
    let give_up_at = Instant::now() + patience;
    let mut pause = RESEND_FIRST;
    while !done.load(Ordering::SeqCst) {
        if Instant::now() >= give_up_at {
            if let Some(session) = session.upgrade() {
                log::warn!("a cancelled wait for a lock did not end; closing its session");
                session.abandon();
            }
            return;
        }
        if let Err(e) = token.cancel_query(tls.clone()).await {
            log::debug!("lock server cancel request failed: {e}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RESEND_AT_MOST);
    }
}
