//! A lock server going away under holds and waits, against a throwaway
//! PostgreSQL cluster (tests/common/pg.rs) and a loopback proxy the tests
//! break (tests/common/proxy.rs): connections cut or gone silent, the
//! session terminated, the server restarted or stopped. Holds learn they are lost, waits ride the
//! outage out until their deadline, and fences keep growing. Skipped with
//! a notice where PostgreSQL is not installed, except under `CI`.

#![cfg(all(feature = "postgres", unix))]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::proxy::Proxy;
use common::server_roles::NAME;
use common::{Child, wait_until};
use futures_lite::future;
use packlock::postgres::{LockServer, ServerError};
use packlock::{PackLock, PackLockError, PackLockHold};

/// How soon `lost()` completes once the connection is closed under it:
/// the client hears of it at once.
const LOST_WITHIN: Duration = Duration::from_secs(1);

/// The heartbeat of the silent-connection test; a silent session must be
/// found lost within two of them.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Slack for a loaded machine on top of the documented bound.
const SLACK: Duration = Duration::from_millis(700);

#[test]
fn child_process_entry() {
    common::child_process_entry(|args| match args.role.as_str() {
        "wait_and_report" => wait_and_report(&args.dir),
        "hold" => common::server_roles::hold(&args.dir),
        other => panic!("unknown role {other}"),
    });
}

// --- helpers ----------------------------------------------------------------

/// A directory for one test, with the connection string for its children
/// (straight to the server, never through the proxy).
fn test_dir(cluster: &PgCluster) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("conn"), cluster.admin()).expect("write conn");
    dir
}

/// The superuser's connection string through `proxy`.
fn through(proxy: &Proxy) -> String {
    common::pg::conn_at(proxy.port(), "postgres")
}

fn open(server: &LockServer) -> PackLock {
    server.lock(NAME).open().expect("open")
}

/// The fence the child wrote (poll: it writes once it holds).
fn their_fence(dir: &Path) -> u64 {
    let path = dir.join("fence");
    let mut text = String::new();
    wait_until("the child holds the lock", || {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        !text.is_empty()
    });
    text.parse().expect("a fence")
}

/// Asserts that `hold.lost()` completes within `limit`, and that the hold
/// then says it is lost.
fn assert_lost_within(hold: &PackLockHold, limit: Duration) {
    let started = Instant::now();
    let lost = future::block_on(future::or(
        async {
            hold.lost().await;
            true
        },
        async {
            async_io::Timer::after(limit).await;
            false
        },
    ));
    assert!(lost, "lost() did not complete within {limit:?}");
    eprintln!("lost() completed after {:?}", started.elapsed());
    let err = hold.validate().unwrap_err();
    assert!(matches!(err, PackLockError::Lost { .. }), "{err:?}");
    assert!(err.to_string().contains(NAME), "{err}");
}

/// A hold of ours, with a child process waiting for the same lock on a
/// session straight to the server.
struct Scene {
    lock: PackLock,
    hold: PackLockHold,
    ours: u64,
    waiter: Child,
    dir: tempfile::TempDir,
}

impl Scene {
    fn set(cluster: &PgCluster, server: LockServer) -> Scene {
        let dir = test_dir(cluster);
        let lock = open(&server);
        let hold = lock.acquire().expect("acquire");
        let ours = hold.fence().expect("fence");
        let waiter = Child::spawn("wait_and_report", dir.path());
        wait_until("the child waits on the server", || cluster.advisory_waiters() == 1);
        Scene { lock, hold, ours, waiter, dir }
    }

    /// After our hold was lost: the child has the lock with a larger
    /// fence; once it lets go, our next acquire (on a new session) gets a
    /// larger one still.
    fn handed_over(self) {
        let Scene { lock, hold, ours, mut waiter, dir } = self;
        let theirs = their_fence(dir.path());
        assert!(theirs > ours, "the next holder's fence {theirs} after ours {ours}");
        drop(hold); // releasing a lost hold is quiet and harmless
        waiter.proceed();
        waiter.join();
        let again = lock.acquire().expect("our next acquire opens a new session");
        assert!(again.fence() > Some(theirs));
    }
}

// --- child roles ----------------------------------------------------------------

/// Child role: wait for the lock, write its fence to `dir/fence`, keep it
/// until told.
fn wait_and_report(dir: &Path) {
    let conn = std::fs::read_to_string(dir.join("conn")).expect("read conn");
    let lock = open(&LockServer::connect(&conn).expect("connect"));
    let hold = lock.acquire().expect("acquire");
    std::fs::write(dir.join("fence"), hold.fence().expect("fence").to_string()).expect("write");
    common::wait_for_parent();
    drop(hold);
}

// --- tests ----------------------------------------------------------------------

#[test]
fn a_cut_connection_loses_the_hold_at_once_and_a_waiter_gets_a_larger_fence() {
    let Some(cluster) = PgCluster::start() else { return };
    let proxy = Proxy::to_local(cluster.port);
    let scene = Scene::set(
        &cluster,
        LockServer::connect(&through(&proxy)).expect("connect through the proxy"),
    );

    proxy.cut();
    assert_lost_within(&scene.hold, LOST_WITHIN);
    scene.handed_over();
}

#[test]
fn a_terminated_session_loses_its_hold_and_a_waiter_gets_a_larger_fence() {
    let Some(cluster) = PgCluster::start() else { return };
    let scene = Scene::set(&cluster, LockServer::connect(&cluster.admin()).expect("connect"));

    let backend_pid = scene.lock.holders()[0].pid;
    cluster.psql(&format!("SELECT pg_terminate_backend({backend_pid})"));
    assert_lost_within(&scene.hold, LOST_WITHIN);
    scene.handed_over();
}

#[test]
fn a_silent_connection_is_found_lost_within_two_heartbeats() {
    let Some(cluster) = PgCluster::start() else { return };
    let proxy = Proxy::to_local(cluster.port);
    let server = LockServer::builder(&through(&proxy)).heartbeat(HEARTBEAT).connect();
    let scene = Scene::set(&cluster, server.expect("connect through the proxy"));

    proxy.freeze();
    assert_lost_within(&scene.hold, 2 * HEARTBEAT + SLACK);
    // Nothing reached the server: it still holds the lock for the session
    // the client gave up. That is what the fence is for.
    assert_eq!(cluster.advisory_waiters(), 1, "the child still waits");
    // Once the network heals, the client's close reaches it.
    proxy.thaw();
    scene.handed_over();
}

#[test]
fn a_server_restart_loses_holds_and_waiters_get_the_lock_after_it() {
    let Some(mut cluster) = PgCluster::start() else { return };
    let scene = Scene::set(&cluster, LockServer::connect(&cluster.admin()).expect("connect"));

    cluster.restart();
    assert_lost_within(&scene.hold, LOST_WITHIN);
    scene.handed_over();
}

#[test]
fn while_the_server_is_down_waits_end_at_their_timeout_and_succeed_once_it_is_back() {
    let Some(cluster) = PgCluster::start() else { return };
    // Through the proxy only to count connection attempts.
    let proxy = Proxy::to_local(cluster.port);
    let lock = open(&LockServer::connect(&through(&proxy)).expect("connect"));
    let before = lock.acquire().expect("acquire").fence().expect("fence");
    cluster.stop();

    // Not waiting: at once, naming the server.
    let err = lock.try_acquire().unwrap_err();
    let PackLockError::Server { source, .. } = &err else { panic!("{err:?}") };
    assert!(matches!(source, ServerError::Unavailable { .. }), "{source:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{}", proxy.port())), "{err}");

    // Waiting: until the deadline, and no longer.
    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    let err = lock.acquire_timeout(timeout).unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, PackLockError::TimedOut { .. }), "{err:?}");
    assert!(waited >= timeout && waited < timeout + SLACK, "gave up after {waited:?}");
    // It says why it never reached the lock.
    assert!(err.to_string().contains("is unavailable"), "{err}");

    // A wait without a deadline gets the lock once the server is back.
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| lock.acquire().map(|hold| hold.fence()));
        let attempts = proxy.accepted();
        wait_until("the wait tries twice while the server is down", || {
            proxy.accepted() >= attempts + 2
        });
        assert!(!waiter.is_finished(), "the wait ended while the server was down");
        cluster.start_again();
        let fence = waiter.join().expect("waiter").expect("had once the server is back");
        assert!(fence > Some(before), "fence {fence:?} after {before}");
    });

    // Once the server is back and an acquire reached it (here a try: the
    // lock is free), a timeout behind a holder names no outage.
    cluster.stop();
    let err = lock.acquire_timeout(Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, PackLockError::TimedOut { cause: Some(_), .. }), "{err:?}");
    cluster.start_again();
    let _held = lock.acquire().expect("acquire");
    let err = std::thread::scope(|scope| {
        scope.spawn(|| lock.acquire_timeout(Duration::from_millis(200)).err()).join()
    });
    let err = err.expect("thread").expect("held by this thread");
    assert!(matches!(err, PackLockError::TimedOut { cause: None, .. }), "{err:?}");
}

/// The shared holds of a name in one process share one server lock: once
/// its session is lost, a new shared acquire cannot join it and says so,
/// until the lost holds are released; then it takes the lock anew.
#[test]
fn a_shared_acquire_beside_a_lost_shared_hold_fails_until_that_is_released() {
    let Some(cluster) = PgCluster::start() else { return };
    let server = LockServer::connect(&cluster.admin()).expect("connect");
    let readers = server.lock(NAME).shared(true).open().expect("open");
    let first = readers.acquire().expect("acquire");
    let backend_pid = readers.holders()[0].pid;
    cluster.psql(&format!("SELECT pg_terminate_backend({backend_pid})"));
    assert_lost_within(&first, LOST_WITHIN);

    // Another thread (this one may not take a lock it holds).
    let beside = std::thread::scope(|scope| scope.spawn(|| readers.acquire().err()).join());
    let err = beside.expect("thread").expect("no hold beside a lost one");
    assert!(matches!(err, PackLockError::Lost { .. }), "{err:?}");
    drop(first);
    let again = readers.acquire().expect("a new server lock once the lost hold is gone");
    again.validate().expect("held");
}

/// Timeouts a role or database may carry (managed services often do)
/// would end a long wait, or an idle session holding a lock: packlock's
/// sessions turn them off.
#[test]
fn a_roles_timeouts_end_neither_waits_nor_idle_holds() {
    let Some(cluster) = PgCluster::start() else { return };
    cluster.psql(
        "ALTER ROLE postgres SET statement_timeout = '300ms';
         ALTER ROLE postgres SET lock_timeout = '300ms';
         ALTER ROLE postgres SET idle_session_timeout = '300ms'",
    );
    let Scene { lock, hold, ours, mut waiter, dir } =
        Scene::set(&cluster, LockServer::connect(&cluster.admin()).expect("connect"));
    // Longer than every timeout: the child waits, we hold and idle.
    std::thread::sleep(Duration::from_millis(1200));
    hold.validate().expect("an idle hold outlives idle_session_timeout");
    assert_eq!(
        cluster.advisory_waiters(),
        1,
        "the wait outlives statement_timeout and lock_timeout"
    );
    drop(hold);
    let theirs = their_fence(dir.path());
    assert!(theirs > ours, "the waiter's fence {theirs} after ours {ours}");
    waiter.proceed();
    waiter.join();
    drop(lock);
}

/// A wait whose connection goes silent still ends at its deadline, and
/// the cancel of its query gives up within two heartbeats by closing the
/// connection, rather than sending cancel requests for ever.
#[test]
fn a_timed_out_wait_on_a_silent_connection_is_closed_within_two_heartbeats() {
    let Some(cluster) = PgCluster::start() else { return };
    let proxy = Proxy::to_local(cluster.port);
    let dir = test_dir(&cluster);
    let server = LockServer::builder(&through(&proxy)).heartbeat(HEARTBEAT).connect();
    let lock = open(&server.expect("connect through the proxy"));
    let holder = common::spawn_holder("hold", dir.path());

    let timeout = Duration::from_secs(2);
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| lock.acquire_timeout(timeout).map(drop));
        wait_until("we wait on the server", || cluster.advisory_waiters() == 1);
        proxy.freeze();
        let waited = waiter.join().expect("waiter");
        assert!(matches!(waited, Err(PackLockError::TimedOut { .. })), "{waited:?}");
    });
    // Cancel requests go out on new connections, fewer and fewer, and
    // stop once the silent one is closed: within two heartbeats.
    let deadline = Instant::now() + 2 * HEARTBEAT + SLACK + Duration::from_secs(1);
    loop {
        let before = proxy.accepted();
        std::thread::sleep(Duration::from_millis(1200));
        if proxy.accepted() == before {
            break;
        }
        assert!(Instant::now() < deadline, "cancel requests still go out: {before} connections");
    }
    proxy.thaw();
    common::release(holder);
    let hold = lock.acquire_timeout(common::DEADLINE).expect("free once the child let go");
    hold.validate().expect("held");
}

/// An async shared acquire dropped while its first try is still on the
/// server (a slow one: its session went silent) keeps the process's other
/// readers from trying beside it until that try is over: the next shared
/// acquire gets the lock, rather than find the name busy in its own
/// process.
#[test]
fn a_dropped_shared_acquire_keeps_others_out_until_its_try_is_over() {
    let Some(cluster) = PgCluster::start() else { return };
    let proxy = Proxy::to_local(cluster.port);
    let server = LockServer::builder(&through(&proxy)).heartbeat(HEARTBEAT).connect();
    let readers = server.expect("connect through the proxy").lock(NAME).shared(true).open();
    let readers = readers.expect("open");
    drop(readers.acquire().expect("the session and the name's row, ready"));
    proxy.freeze();

    let mut dropped = Box::pin(readers.acquire_async());
    let first_poll = future::block_on(future::poll_once(dropped.as_mut()));
    assert!(first_poll.is_none(), "the try on a silent session cannot be done yet");
    wait_until("the try went out into the silence", || proxy.held_back() > 0);
    drop(dropped);
    let next = future::block_on(readers.acquire_async());
    next.expect("the next shared acquire gets the lock").validate().expect("held");
}

/// Fences must survive a crash whatever the server, database or role say
/// about durability: with `synchronous_commit = off` (and a WAL writer that
/// waits 10 s, so nothing acknowledged is on disk yet) and a crash right
/// after 40 grants, the next fence is still larger than every one before.
#[test]
fn fences_survive_a_crash_with_synchronous_commit_off() {
    let conf = ["synchronous_commit = off", "wal_writer_delay = 10000ms"];
    let Some(mut cluster) = PgCluster::start_with(&conf, None) else { return };
    cluster.psql("ALTER ROLE postgres SET synchronous_commit = off");
    let mut last = 0;
    {
        let server = LockServer::connect(&cluster.admin()).expect("connect");
        let lock = open(&server);
        for _ in 0..40 {
            last = lock.acquire().expect("acquire").fence().expect("fence");
        }
    }
    cluster.restart(); // pg_ctl stop -m immediate: a crash
    let server = LockServer::connect(&cluster.admin()).expect("connect");
    let after = open(&server).acquire().expect("acquire").fence().expect("fence");
    assert!(after > last, "fence {after} after the crash, {last} before it");
}
