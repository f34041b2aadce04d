//! Named locks on a lock server through the `PackLock` API
//! (`LockServer::lock`), against a throwaway PostgreSQL cluster
//! (tests/common/pg.rs), with real child processes: exclusion, shared
//! holds, fences, holders that die, and cancelled waits (lost sessions
//! are in postgres_outages.rs). Skipped with a notice where PostgreSQL is
//! not installed, except under `CI`.

#![cfg(all(feature = "postgres", unix))]

mod common;

use std::path::Path;
use std::pin::pin;
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::{Child, section, wait_until};
use futures_lite::future;
use packlock::postgres::{LockServer, ServerError};
use packlock::{CancellationToken, PackLock, PackLockError, PackLockErrorOrCancelled};

#[test]
fn child_process_entry() {
    common::child_process_entry(|args| match args.role.as_str() {
        "hammer" => hammer(&args.dir),
        "hold" => hold(&args.dir, false),
        "hold_shared" => hold(&args.dir, true),
        "try_shared" => try_shared(&args.dir),
        "cancel_200" => cancel_200(&args.dir),
        other => panic!("unknown role {other}"),
    });
}

// --- helpers ----------------------------------------------------------------

/// A directory for one test, with the connection string in `conn` for its
/// children.
fn test_dir(cluster: &PgCluster, conn: &str) -> tempfile::TempDir {
    let _ = cluster;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("conn"), conn).expect("write conn");
    dir
}

fn server_of(dir: &Path) -> LockServer {
    let conn = std::fs::read_to_string(dir.join("conn")).expect("read conn");
    LockServer::connect(&conn).expect("connect")
}

fn lock_of(dir: &Path, shared: bool) -> PackLock {
    server_of(dir).lock("packs/foo").shared(shared).open().expect("open")
}

/// What the child wrote into `dir/name` (poll: the file may not be there,
/// or not be written yet).
fn read_when_there(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let mut text = String::new();
    wait_until(&format!("{name} is written"), || {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        !text.is_empty()
    });
    text
}

/// A client of the test's own, for looking at the server's lock table.
struct Monitor {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Monitor {
    fn new(cluster: &PgCluster) -> Monitor {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = runtime.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&cluster.admin(), tokio_postgres::NoTls)
                    .await
                    .expect("monitor connects");
            tokio::spawn(connection);
            client
        });
        Monitor { runtime, client }
    }

    /// Runs on a thread of its own, so that it works from inside another
    /// runtime too.
    fn count(&self, sql: &str) -> i64 {
        let query = || self.runtime.block_on(self.client.query_one(sql, &[]));
        let row = std::thread::scope(|s| s.spawn(query).join().expect("monitor thread"));
        row.expect("monitor query").get(0)
    }

    /// Advisory locks waited for, by anyone.
    fn waiting(&self) -> i64 {
        self.count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    }

    /// Advisory locks held or waited for by sessions named `app`, and
    /// queries of theirs waiting for a lock.
    fn left_by(&self, app: &str) -> i64 {
        self.count(&format!(
            "SELECT (SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                     WHERE l.locktype = 'advisory' AND a.application_name = '{app}')
                  + (SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = '{app}' AND wait_event_type = 'Lock')"
        ))
    }
}

// --- child roles ----------------------------------------------------------------

/// Child role: `workers` threads, each taking the lock `rounds` times
/// through one acquire flavour (sync, timed, try in a loop, async,
/// cancellable, until a signal), and `tasks` async tasks on one smol
/// executor thread, each taking it `rounds` times through an async
/// flavour; every hold enters the file-based critical section and checks
/// that its fence is larger than every fence before it.
fn hammer(dir: &Path) {
    let plan = std::fs::read_to_string(dir.join("plan")).expect("plan");
    let [workers, tasks, rounds]: [usize; 3] = plan
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("workers, tasks and rounds");
    let lock = lock_of(dir, false);
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let lock = &lock;
            scope.spawn(move || {
                for _ in 0..rounds {
                    let hold = match worker % 6 {
                        0 => lock.acquire().expect("acquire"),
                        1 => lock.acquire_timeout(common::DEADLINE).expect("acquire_timeout"),
                        2 => loop {
                            match lock.try_acquire() {
                                Ok(hold) => break hold,
                                Err(PackLockError::Busy { .. }) => std::thread::yield_now(),
                                Err(e) => panic!("try_acquire: {e}"),
                            }
                        },
                        3 => future::block_on(lock.acquire_async()).expect("acquire_async"),
                        4 => {
                            let token = CancellationToken::new();
                            future::block_on(lock.acquire_cancellable(&token))
                                .expect("acquire_cancellable")
                        }
                        _ => future::block_on(lock.acquire_until(future::pending()))
                            .expect("acquire_until"),
                    };
                    critical_section(dir, &hold);
                }
            });
        }
        scope.spawn(|| hammer_tasks(dir, &lock, tasks, rounds));
    });
}

/// The async side of [`hammer`]: `tasks` tasks sharing one thread, so
/// that they queue for the lock in the process's in-process queue.
fn hammer_tasks(dir: &Path, lock: &PackLock, tasks: usize, rounds: usize) {
    let executor = smol::LocalExecutor::new();
    let all = (0..tasks).map(|task| {
        executor.spawn(async move {
            for _ in 0..rounds {
                let hold = match task % 3 {
                    0 => lock.acquire_async().await.expect("acquire_async"),
                    1 => {
                        let token = CancellationToken::new();
                        lock.acquire_cancellable(&token).await.expect("acquire_cancellable")
                    }
                    _ => lock.acquire_until(future::pending()).await.expect("acquire_until"),
                };
                let seen = enter_fenced(dir, &hold);
                future::yield_now().await;
                section::leave(dir, seen);
            }
        })
    });
    let all: Vec<_> = all.collect();
    future::block_on(executor.run(async {
        for task in all {
            task.await;
        }
    }));
}

/// The section, widened by a yield.
fn critical_section(dir: &Path, hold: &packlock::PackLockHold) {
    let seen = enter_fenced(dir, hold);
    std::thread::yield_now();
    section::leave(dir, seen);
}

/// Enters the section and checks the fence: `dir/fence` holds the
/// largest fence seen so far.
fn enter_fenced(dir: &Path, hold: &packlock::PackLockHold) -> u64 {
    let seen = section::enter(dir);
    let fence = hold.fence().expect("server locks have fences");
    let last: u64 = std::fs::read_to_string(dir.join("fence"))
        .map(|text| text.trim().parse().expect("a fence"))
        .unwrap_or(0);
    assert!(fence > last, "fence {fence} after {last}");
    std::fs::write(dir.join("fence"), fence.to_string()).expect("write fence");
    seen
}

/// Child role: hold the lock (shared or not), say "locked", keep it until
/// told, release, say "released".
fn hold(dir: &Path, shared: bool) {
    let lock = lock_of(dir, shared);
    let hold = lock.acquire().expect("acquire");
    std::fs::write(dir.join("held_fence"), hold.fence().expect("fence").to_string())
        .expect("write");
    common::tell_parent("locked");
    common::wait_for_parent();
    hold.release().expect("release");
    common::tell_parent("released");
}

/// Child role: try a shared acquire once and say how it went.
fn try_shared(dir: &Path) {
    match lock_of(dir, true).try_acquire() {
        Ok(_) => common::tell_parent("had"),
        Err(PackLockError::Busy { .. }) => common::tell_parent("busy"),
        Err(e) => panic!("try_acquire: {e}"),
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("list /proc/self/task").count()
}

/// Child role (its own process, so that no other test's threads count):
/// 200 acquires, each cancelled once it waits on the server behind a
/// grandchild holder; after each, within 100 ms, this process (its
/// sessions are named `canceller`) must hold and wait for nothing on the
/// server. Writes "before after slowest_ms" to `dir/figures`.
fn cancel_200(dir: &Path) {
    let conn = std::fs::read_to_string(dir.join("conn")).expect("conn");
    let monitor_conn = std::fs::read_to_string(dir.join("monitor")).expect("monitor conn");
    let server = LockServer::connect(&format!("{conn} application_name=canceller")).expect("conn");
    let lock = server.lock("packs/foo").open().expect("open");
    let monitor = MonitorConn::new(&monitor_conn);
    let holder = common::spawn_holder("hold", dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        // Warm up the executor, the blocking pool and the lock machinery.
        blocking::unblock(|| ()).await;
        let token = CancellationToken::new();
        token.cancel();
        let _ = lock.acquire_cancellable(&token).await;
    });
    let before = threads();
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let token = CancellationToken::new();
        runtime.block_on(async {
            let mut acquire = pin!(lock.acquire_cancellable(&token));
            let deadline = Instant::now() + common::DEADLINE;
            while monitor.waiting_by("canceller") == 0 {
                if let Some(result) = future::poll_once(acquire.as_mut()).await {
                    panic!("the acquire ended while another process holds the lock: {result:?}");
                }
                assert!(Instant::now() < deadline, "the acquire never waited on the server");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            token.cancel();
            let cancelled_at = Instant::now();
            let result = acquire.await;
            assert!(matches!(result, Err(PackLockErrorOrCancelled::Cancelled)), "{result:?}");
            while monitor.left_by("canceller") != 0 {
                assert!(
                    cancelled_at.elapsed() < Duration::from_millis(100),
                    "a lock or a waiting query stayed on the server 100 ms after the cancel"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            slowest = slowest.max(cancelled_at.elapsed());
        });
    }
    let after = threads();
    std::fs::write(dir.join("figures"), format!("{before} {after} {}", slowest.as_millis()))
        .expect("write figures");
    common::release(holder);
    drop(lock.acquire().expect("free again once the holder let go"));
}

/// [`Monitor`] for a child, which has no cluster handle.
struct MonitorConn(Monitor);

impl MonitorConn {
    fn new(conn: &str) -> MonitorConn {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = runtime.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(conn, tokio_postgres::NoTls).await.expect("monitor");
            tokio::spawn(connection);
            client
        });
        MonitorConn(Monitor { runtime, client })
    }

    fn waiting_by(&self, app: &str) -> i64 {
        self.0.count(&format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = '{app}'"
        ))
    }

    fn left_by(&self, app: &str) -> i64 {
        self.0.left_by(app)
    }
}

// --- tests ----------------------------------------------------------------------

#[test]
fn a_server_lock_opens_with_a_display_name_and_refuses_bad_names() {
    let Some(cluster) = PgCluster::start() else { return };
    let server = LockServer::connect(&cluster.admin()).expect("connect");
    let lock = server.lock("packs/foo").open().expect("open");
    let name = format!("postgres://127.0.0.1:{}/postgres/packs/foo", cluster.port);
    assert_eq!(lock.path(), Path::new(&name));
    for bad in [String::new(), "n".repeat(packlock::postgres::MAX_NAME_LEN + 1)] {
        let err = server.lock(&bad).open().unwrap_err();
        assert!(
            matches!(err, PackLockError::Server { source: ServerError::InvalidName { .. }, .. }),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("invalid lock name"), "{err}");
    }
    let hold = lock.acquire().expect("acquire");
    assert_eq!(hold.fence(), Some(1));
    assert_eq!(hold.path(), Path::new(&name));
    hold.validate().expect("held");
    let err = lock.try_acquire().unwrap_err();
    assert!(matches!(err, PackLockError::Busy { .. }), "{err:?}");
    drop(hold);
    assert_eq!(lock.try_acquire().expect("free again").fence(), Some(2));
}

#[test]
fn processes_threads_and_tasks_exclude_each_other_through_every_acquire() {
    let Some(cluster) = PgCluster::start() else { return };
    let dir = test_dir(&cluster, &cluster.admin());
    let (processes, workers, tasks, rounds) = (4, 6, 6, 15);
    let plan = format!("{workers} {tasks} {rounds}");
    std::fs::write(dir.path().join("plan"), plan).expect("plan");
    let children: Vec<Child> = (0..processes).map(|_| Child::spawn("hammer", dir.path())).collect();
    for child in children {
        child.join();
    }
    let holds = processes * (workers + tasks) * rounds;
    assert_eq!(section::count(dir.path()), holds as u64, "lost updates");
}

#[test]
fn fences_of_a_thousand_exclusive_holds_across_processes_strictly_increase() {
    let Some(cluster) = PgCluster::start() else { return };
    let dir = test_dir(&cluster, &cluster.admin());
    // Two processes, two sync workers each (flavours 0 and 1), no tasks, 250 rounds.
    std::fs::write(dir.path().join("plan"), "2 0 250").expect("plan");
    let children: Vec<Child> = (0..2).map(|_| Child::spawn("hammer", dir.path())).collect();
    for child in children {
        child.join();
    }
    assert_eq!(section::count(dir.path()), 1000);
    // Every section saw a fence larger than the one before (checked inside);
    // the last one is the 1000th.
    assert_eq!(std::fs::read_to_string(dir.path().join("fence")).expect("fence"), "1000");
}

#[test]
fn shared_holds_coexist_and_exclude_exclusive_ones() {
    let Some(cluster) = PgCluster::start() else { return };
    let dir = test_dir(&cluster, &cluster.admin());
    let server = server_of(dir.path());
    let writer = server.lock("packs/foo").open().expect("open");
    let readers = server.lock("packs/foo").shared(true).open().expect("open");
    drop(writer.acquire().expect("a first exclusive hold: fence 1"));

    // Every grant gets a new fence, shared ones too; holds joined to one
    // process's shared lock share it.
    let other = common::spawn_holder("hold_shared", dir.path());
    assert_eq!(read_when_there(dir.path(), "held_fence"), "2", "a reader's own fence");
    let err = writer.try_acquire().unwrap_err();
    assert!(matches!(err, PackLockError::Busy { .. }), "{err:?}");
    let a = readers.acquire().expect("shared beside another process's");
    let b = readers.try_acquire().expect("and beside our own");
    assert_eq!((a.fence(), b.fence()), (Some(3), Some(3)));
    common::release(other);
    assert!(matches!(writer.try_acquire(), Err(PackLockError::Busy { .. })));
    drop((a, b));

    let exclusive = writer.try_acquire().expect("free once the shared holds are gone");
    assert_eq!(exclusive.fence(), Some(4));
    let child = Child::spawn("try_shared", dir.path());
    child.expect("busy");
    child.join();
    drop(exclusive);
    let child = Child::spawn("try_shared", dir.path());
    child.expect("had");
    child.join();
}

#[test]
fn a_killed_holder_frees_the_lock_within_a_second() {
    let Some(cluster) = PgCluster::start() else { return };
    let dir = test_dir(&cluster, &cluster.admin());
    let lock = lock_of(dir.path(), false);
    let monitor = Monitor::new(&cluster);
    let holder = common::spawn_holder("hold", dir.path());
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let hold = lock.acquire().expect("acquire after the holder died");
            (Instant::now(), hold.fence())
        });
        wait_until("we wait on the server", || monitor.waiting() == 1);
        let killed_at = Instant::now();
        holder.kill();
        let (had_at, fence) = waiter.join().expect("waiter");
        let after = had_at.duration_since(killed_at);
        assert!(after < Duration::from_secs(1), "had the lock {after:?} after the kill");
        assert_eq!(fence, Some(2));
    });
}

#[test]
fn two_hundred_cancelled_acquires_leave_nothing_on_the_server_and_no_threads() {
    let Some(cluster) = PgCluster::start() else { return };
    let dir = test_dir(&cluster, &cluster.admin());
    std::fs::write(dir.path().join("monitor"), cluster.admin()).expect("monitor conn");
    Child::spawn("cancel_200", dir.path()).join();
    let figures = std::fs::read_to_string(dir.path().join("figures")).expect("figures");
    let [before, after, slowest]: [usize; 3] = figures
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("three figures");
    eprintln!("threads before 200 cancels: {before}, after: {after}; slowest cleanup {slowest} ms");
    // The same bound as for lock files (tests/cancellation.rs).
    assert!(after <= before + 2, "threads grew from {before} to {after} over 200 cancels");
}

/// A role whose `search_path` puts a schema it owns before `pg_catalog`
/// cannot shadow the advisory lock functions (nor operators) that
/// packlock's statements call: the second of two holders is still refused.
#[test]
fn a_roles_search_path_cannot_shadow_the_lock_functions() {
    let Some(cluster) = PgCluster::start() else { return };
    // One role shadows the functions, one the `=` operator too.
    for (role, operator) in [("shadow", false), ("shadow_op", true)] {
        let schema = format!("{role}_schema");
        let mut sql = format!(
            "CREATE ROLE {role} LOGIN SUPERUSER;
             CREATE SCHEMA {schema} AUTHORIZATION {role};
             CREATE FUNCTION {schema}.pg_try_advisory_lock(integer, integer) RETURNS boolean
                 LANGUAGE sql AS 'SELECT true';
             CREATE FUNCTION {schema}.pg_advisory_lock(integer, integer) RETURNS void
                 LANGUAGE sql AS 'SELECT';
             CREATE FUNCTION {schema}.pg_try_advisory_lock_shared(integer, integer)
                 RETURNS boolean LANGUAGE sql AS 'SELECT true';
             ALTER ROLE {role} SET search_path = {schema}, pg_catalog, public;"
        );
        if operator {
            sql.push_str(&format!(
                "CREATE FUNCTION {schema}.always(integer, integer) RETURNS boolean
                     LANGUAGE sql AS 'SELECT true';
                 CREATE OPERATOR {schema}.= (LEFTARG = integer, RIGHTARG = integer,
                     FUNCTION = {schema}.always);"
            ));
        }
        cluster.psql(&sql);
        let conn = cluster.conn(role);
        let a = LockServer::connect(&conn).expect("connect");
        let b = LockServer::connect(&conn).expect("connect");
        let held = a.lock("x").open().expect("open").try_acquire().expect("a free lock");
        let second = b.lock("x").open().expect("open").try_acquire();
        assert!(matches!(second, Err(PackLockError::Busy { .. })), "{role}: {second:?}");
        held.validate().expect("still held");
        drop(held);
        drop(b.lock("x").open().expect("open").try_acquire().expect("free again"));
    }
}

/// Looking a name up takes no number from the identity sequence once the
/// name exists: a fleet of short-lived processes (here, fresh servers with
/// empty caches) must never use the id space up.
#[test]
fn names_that_exist_take_no_ids() {
    let Some(cluster) = PgCluster::start() else { return };
    let first = LockServer::connect(&cluster.admin()).expect("connect");
    drop(first.lock("x").open().expect("open").acquire().expect("acquire"));
    let sequence = "SELECT last_value FROM pg_sequences WHERE sequencename = 'names_id_seq'";
    let before = cluster.psql(sequence);
    for _ in 0..20 {
        let server = LockServer::connect(&cluster.admin()).expect("connect");
        drop(server.lock("x").open().expect("open").acquire().expect("acquire"));
    }
    assert_eq!(cluster.psql(sequence), before, "ids were taken for a name that exists");
    let server = LockServer::connect(&cluster.admin()).expect("connect");
    drop(server.lock("y").open().expect("open").acquire().expect("a new name"));
    assert_ne!(cluster.psql(sequence), before, "a new name takes the next id");
}

/// Lock tables dropped and made anew while a process uses them: that
/// process's cached id of `x` is now another name's row, under a table OID
/// nobody else uses. Its acquires must fail — never a second holder of
/// `x`, never a bump of `y`'s fence.
#[test]
fn after_the_tables_are_made_anew_an_old_process_gets_no_lock() {
    let Some(cluster) = PgCluster::start() else { return };
    let old = LockServer::connect(&cluster.admin()).expect("connect");
    let old_x = old.lock("x").open().expect("open");
    let old_shared_x = old.lock("x").shared(true).open().expect("open");
    drop(old_x.acquire().expect("acquire"));
    cluster.psql("DROP TABLE packlock.names, packlock.holds");
    let new = LockServer::connect(&cluster.admin()).expect("connect");
    let y = new.lock("y").open().expect("open");
    drop(y.acquire().expect("y takes the id x had"));
    let y_fence = || cluster.psql("SELECT fence FROM packlock.names WHERE name = 'y'");
    let fence_before = y_fence();
    let held = new.lock("x").open().expect("open").acquire().expect("x, anew");
    assert!(old_x.try_acquire().is_err(), "a second holder of x");
    drop(held);
    for outcome in [old_x.try_acquire().map(drop), old_x.acquire().map(drop)] {
        let err = outcome.expect_err("an acquire under the old tables");
        assert!(err.to_string().contains("made anew"), "{err}");
    }
    let shared = old_shared_x.try_acquire().map(drop);
    assert!(shared.is_err(), "a shared acquire under the old tables: {shared:?}");
    assert_eq!(y_fence(), fence_before, "y's fence moved");
    drop(y.try_acquire().expect("y is free: nothing was left held"));
}

/// Two spellings of one server (`localhost`, `127.0.0.1`) are one server:
/// a thread holding a lock through one gets `Reentrant` through the other
/// at once, as with two paths of one lock file — never a wait for itself.
#[test]
fn two_spellings_of_one_server_are_one_server() {
    let Some(cluster) = PgCluster::start() else { return };
    let by_address = LockServer::connect(&cluster.admin()).expect("connect");
    let by_name = cluster.admin().replace("host=127.0.0.1", "host=localhost");
    let by_name = LockServer::connect(&by_name).expect("connect by name");
    let held = by_address.lock("x").open().expect("open").acquire().expect("acquire");
    let again = by_name.lock("x").open().expect("open").acquire_timeout(Duration::from_secs(5));
    assert!(matches!(again, Err(PackLockError::Reentrant { .. })), "{again:?}");
    drop(held);
    drop(by_name.lock("x").open().expect("open").acquire().expect("free again"));
}
