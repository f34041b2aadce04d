//! Server locks on every kind of async host: tokio (multi-thread and
//! current-thread), smol and async-std (plain threads are in
//! postgres_locks.rs). On each, a lock server is connected with
//! `connect_async`; while a child process holds the lock, an acquire gives
//! up through the host's own timer and leaves nothing on the server, and
//! another waits on the server until the child lets go. No host needs a
//! tokio runtime of its own: the client runs on packlock's thread, and
//! outlives the runtimes it was used from.

#![cfg(all(
    unix,
    feature = "postgres",
    feature = "tokio",
    feature = "smol",
    feature = "async-std"
))]

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::pg::PgCluster;
use common::server_roles::NAME;
use common::wait_until;
use packlock::postgres::LockServer;
use packlock::{PackLock, PackLockError, PackLockHold};

const GIVE_UP_AFTER: Duration = Duration::from_millis(300);

#[test]
fn child_process_entry() {
    common::child_process_entry(|args| match args.role.as_str() {
        "hold" => common::server_roles::hold(&args.dir),
        other => panic!("unknown role {other}"),
    });
}

#[derive(Clone, Copy, Debug)]
enum Host {
    TokioMultiThread,
    TokioCurrentThread,
    Smol,
    AsyncStd,
}

impl Host {
    /// Runs `future` as a task of a runtime of this kind (a new one for
    /// tokio, the global one for smol and async-std).
    fn block_on<T: Send + 'static>(self, future: impl Future<Output = T> + Send + 'static) -> T {
        let mut tokio = match self {
            Host::TokioMultiThread => tokio::runtime::Builder::new_multi_thread(),
            Host::TokioCurrentThread => tokio::runtime::Builder::new_current_thread(),
            Host::Smol => return smol::block_on(smol::spawn(future)),
            Host::AsyncStd => return async_std::task::block_on(async_std::task::spawn(future)),
        };
        let runtime = tokio.enable_all().build().expect("tokio runtime");
        runtime.block_on(runtime.spawn(future)).expect("task")
    }

    /// An acquire that gives up after `timeout` on this host's timer.
    async fn acquire_timeout(
        self,
        lock: &PackLock,
        timeout: Duration,
    ) -> Result<PackLockHold, PackLockError> {
        match self {
            Host::TokioMultiThread | Host::TokioCurrentThread => {
                packlock::rt::tokio::acquire_timeout(lock, timeout).await
            }
            Host::Smol => packlock::rt::smol::acquire_timeout(lock, timeout).await,
            Host::AsyncStd => packlock::rt::async_std::acquire_timeout(lock, timeout).await,
        }
    }
}

fn round_on(host: Host) {
    let Some(cluster) = PgCluster::start() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("conn"), cluster.admin()).expect("write conn");
    let conn = cluster.admin();
    let server = host.block_on(async move { LockServer::connect_async(&conn).await });
    let lock = Arc::new(server.expect("connect_async").lock(NAME).open().expect("open"));
    let holder = common::spawn_holder("hold", dir.path());
    let theirs: u64 = std::fs::read_to_string(dir.path().join("fence"))
        .expect("the child's fence")
        .parse()
        .expect("a fence");

    let timed = Arc::clone(&lock);
    let gave_up = host.block_on(async move {
        host.acquire_timeout(&timed, GIVE_UP_AFTER).await.map(|hold| hold.fence())
    });
    assert!(matches!(gave_up, Err(PackLockError::TimedOut { .. })), "{gave_up:?}");
    wait_until("the abandoned wait leaves the server", || cluster.advisory_waiters() == 0);

    std::thread::scope(|scope| {
        let waiting_lock = Arc::clone(&lock);
        let waiter = scope.spawn(move || {
            host.block_on(async move { waiting_lock.acquire_async().await.map(|h| h.fence()) })
        });
        wait_until("the wait reaches the server", || cluster.advisory_waiters() == 1);
        common::release(holder);
        let fence = waiter.join().expect("waiter").expect("acquire_async");
        assert!(fence > Some(theirs), "fence {fence:?} after the child's {theirs}");
    });
}

#[test]
fn on_tokio_multi_thread() {
    round_on(Host::TokioMultiThread);
}

#[test]
fn on_tokio_current_thread() {
    round_on(Host::TokioCurrentThread);
}

#[test]
fn on_smol() {
    round_on(Host::Smol);
}

#[test]
fn on_async_std() {
    round_on(Host::AsyncStd);
}

/// An async acquire never blocks its executor thread, not even when the
/// server is slow to answer: its first try, a round trip, runs on the
/// blocking pool. Here the session it tries on has gone silent; a task
/// beside it on the same thread keeps ticking until the heartbeat gives
/// that session up and the acquire gets the lock on a new one.
#[test]
fn an_async_acquire_never_blocks_its_executor_thread() {
    let Some(cluster) = PgCluster::start() else { return };
    let proxy = common::proxy::Proxy::to_local(cluster.port);
    let conn = common::pg::conn_at(proxy.port(), "postgres");
    let server = LockServer::builder(&conn).heartbeat(Duration::from_secs(1)).connect();
    let lock = server.expect("connect through the proxy").lock(NAME).open().expect("open");
    drop(lock.acquire().expect("the session and the name's row, ready"));
    proxy.freeze();

    let done = AtomicBool::new(false);
    let ticks = AtomicUsize::new(0);
    let acquire = async {
        let hold = lock.acquire_async().await;
        done.store(true, Ordering::SeqCst);
        hold
    };
    let ticker = async {
        while !done.load(Ordering::SeqCst) {
            async_io::Timer::after(Duration::from_millis(10)).await;
            ticks.fetch_add(1, Ordering::SeqCst);
        }
    };
    let (hold, ()) = futures_lite::future::block_on(futures_lite::future::zip(acquire, ticker));
    hold.expect("had on a new session").validate().expect("held");
    let ticks = ticks.load(Ordering::SeqCst);
    assert!(ticks >= 20, "the executor thread was blocked: {ticks} ticks beside the acquire");
}
