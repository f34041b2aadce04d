//! The lock operations against a throwaway server (see tests/common/pg.rs;
//! skipped with a notice where PostgreSQL is not installed, failing under
//! `CI`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::LockServer;
use super::cancel::WaitCancel;

#[path = "../../tests/common/pg.rs"]
mod pg;

use pg::PgCluster;

const DEADLINE: Duration = Duration::from_secs(30);

fn connect(cluster: &PgCluster) -> LockServer {
    LockServer::connect(&cluster.admin()).expect("connect")
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn two_connections_exclude_each_other() {
    let Some(cluster) = PgCluster::start() else { return };
    let (a, b) = (connect(&cluster), connect(&cluster));
    let first = a.try_lock("pack/α", false).expect("try").expect("free");
    assert_eq!(b.try_lock("pack/α", false).expect("try"), None, "held by a");
    assert_eq!(b.try_lock("pack/α", true).expect("try"), None, "no shared under exclusive");
    assert!(b.try_lock("pack/β", false).expect("try").is_some(), "other names are free");
    a.unlock("pack/α").expect("unlock");
    let second = b.try_lock("pack/α", false).expect("try").expect("free again");
    assert!(second > first, "fences grow: {first} then {second}");
}

/// Every grant, shared ones too, gets a fence larger than all before it:
/// a reader's fence shuts out the writer that held the lock before it.
#[test]
fn shared_holds_coexist_and_each_gets_a_new_fence() {
    let Some(cluster) = PgCluster::start() else { return };
    let (a, b, c) = (connect(&cluster), connect(&cluster), connect(&cluster));
    let writer = a.try_lock("readers", false).expect("try").expect("free");
    a.unlock("readers").expect("unlock");
    let first = a.try_lock("readers", true).expect("try").expect("shared");
    let second = b.try_lock("readers", true).expect("try").expect("shared");
    assert!(writer < first && first < second, "{writer} {first} {second}");
    assert_eq!(c.try_lock("readers", false).expect("try"), None);
    assert_eq!(c.fence("readers").expect("fence"), second);
    a.unlock("readers").expect("unlock");
    b.unlock("readers").expect("unlock");
    let next_writer = c.try_lock("readers", false).expect("try").expect("free");
    assert!(next_writer > second, "{second} {next_writer}");
}

#[test]
fn a_process_holds_a_name_once() {
    let Some(cluster) = PgCluster::start() else { return };
    let server = connect(&cluster);
    server.try_lock("once", false).expect("try").expect("free");
    let err = server.try_lock("once", true).unwrap_err();
    assert!(err.to_string().contains("already held by this process"), "{err}");
    let err = server.clone().lock_wait("once", false, &WaitCancel::new()).unwrap_err();
    assert!(err.to_string().contains("already held"), "{err}");
}

#[test]
fn bad_names_are_refused_before_the_server_sees_them() {
    let Some(cluster) = PgCluster::start() else { return };
    let server = connect(&cluster);
    for name in [String::new(), "n".repeat(super::MAX_NAME_LEN + 1), "nul\0".into()] {
        let err = server.try_lock(&name, false).unwrap_err().to_string();
        assert!(err.starts_with("invalid lock name"), "{err}");
    }
    let longest = "n".repeat(super::MAX_NAME_LEN);
    assert!(server.try_lock(&longest, false).expect("longest name").is_some());
    let quote = "'; DROP TABLE packlock.names; --";
    assert!(server.try_lock(quote, false).expect("a name is only a parameter").is_some());
    assert_eq!(server.fence(quote).expect("fence"), 1);
}

#[test]
fn fences_increase_strictly_across_connections_and_a_restart() {
    let Some(mut cluster) = PgCluster::start() else { return };
    let run = |servers: Vec<LockServer>, rounds: usize| {
        let threads: Vec<_> = servers
            .into_iter()
            .map(|server| {
                std::thread::spawn(move || {
                    let mut fences = Vec::new();
                    while fences.len() < rounds {
                        let cancel = WaitCancel::new();
                        fences.push(server.lock_wait("fenced", false, &cancel).expect("lock"));
                        server.unlock("fenced").expect("unlock");
                    }
                    fences
                })
            })
            .collect();
        let mut all: Vec<u64> =
            threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
        all.sort_unstable();
        let count = all.len();
        all.dedup();
        assert_eq!(all.len(), count, "no fence was handed out twice");
        all
    };
    let servers = vec![connect(&cluster), connect(&cluster)];
    let before = run(servers.clone(), 500);
    assert_eq!(before.len(), 1000);
    cluster.restart();
    // The same servers reconnect on their own.
    let after = run(servers, 50);
    let last_before = before.last().copied().unwrap_or_default();
    assert!(after[0] > last_before, "fences go on growing after a restart");
}

#[test]
fn a_wait_gets_the_lock_when_it_is_released() {
    let Some(cluster) = PgCluster::start() else { return };
    let (a, b) = (connect(&cluster), connect(&cluster));
    a.try_lock("queue", false).expect("try").expect("free");
    let got = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (b, got) = (b.clone(), got.clone());
        std::thread::spawn(move || {
            let fence = b.lock_wait("queue", false, &WaitCancel::new());
            got.store(true, Ordering::SeqCst);
            fence
        })
    };
    let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
    wait_until("b waits on the server", || cluster.psql(waiting) == "1");
    assert!(!got.load(Ordering::SeqCst), "b must wait while a holds");
    a.unlock("queue").expect("unlock");
    let fence = waiter.join().expect("thread").expect("lock");
    assert_eq!(fence, 2);
    assert_eq!(b.open_sessions(), 2, "the main session and the one that waited");
    b.unlock("queue").expect("unlock");
    assert_eq!(b.open_sessions(), 2, "the waiting session is kept idle for the next wait");
}

#[test]
fn a_wait_is_cancelled_from_another_thread_and_leaves_nothing() {
    let Some(cluster) = PgCluster::start() else { return };
    let (a, b) = (connect(&cluster), connect(&cluster));
    a.try_lock("cancel", false).expect("try").expect("free");
    let cancel = WaitCancel::new();
    let waiter = {
        let (b, cancel) = (b.clone(), cancel.clone());
        std::thread::spawn(move || b.lock_wait("cancel", false, &cancel))
    };
    let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
    wait_until("b waits", || cluster.psql(waiting) == "1");
    cancel.cancel();
    let err = waiter.join().expect("thread").unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(cluster.psql(waiting), "0", "no wait is left on the server");
    // A late cancel request could still reach the session that waited:
    // it is closed, not kept for the next wait.
    assert_eq!(b.open_sessions(), 1, "only the main session stays open");
    a.unlock("cancel").expect("unlock");
    assert!(b.try_lock("cancel", false).expect("try").is_some(), "b holds nothing");
}

#[test]
fn a_cancel_before_the_wait_starts_is_not_lost() {
    let Some(cluster) = PgCluster::start() else { return };
    let (a, b) = (connect(&cluster), connect(&cluster));
    a.try_lock("early", false).expect("try").expect("free");
    let cancel = WaitCancel::new();
    cancel.cancel();
    let err = b.lock_wait("early", false, &cancel).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
}

#[test]
fn a_dropped_async_wait_releases_what_it_got() {
    let Some(cluster) = PgCluster::start() else { return };
    let (a, b) = (connect(&cluster), connect(&cluster));
    a.try_lock("dropped", false).expect("try").expect("free");
    let cancel = WaitCancel::new();
    let wait = b.lock_async("dropped", false, &cancel);
    let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
    wait_until("b waits", || cluster.psql(waiting) == "1");
    drop(wait);
    wait_until("the abandoned wait is gone", || cluster.psql(waiting) == "0");
    a.unlock("dropped").expect("unlock");
    wait_until("b's slot is free again", || b.holder_pid("dropped").is_none());
    assert!(a.try_lock("dropped", false).expect("try").is_some(), "nothing was left held");
}

#[test]
fn async_waits_work_without_a_tokio_runtime() {
    let Some(cluster) = PgCluster::start() else { return };
    let server = futures_lite::future::block_on(LockServer::connect_async(&cluster.admin()))
        .expect("connect");
    let fence =
        futures_lite::future::block_on(server.lock_async("async", false, &WaitCancel::new()))
            .expect("lock");
    assert_eq!(fence, 1);
}

#[test]
fn a_lost_session_is_noticed_and_replaced() {
    let Some(cluster) = PgCluster::start() else { return };
    let server = connect(&cluster);
    server.try_lock("lease", false).expect("try").expect("free");
    assert!(server.is_current("lease").expect("check"));
    let pid = server.holder_pid("lease").expect("held");
    cluster.psql(&format!("SELECT pg_terminate_backend({pid})"));
    wait_until("the hold is no longer current", || !server.is_current("lease").expect("check"));
    server.unlock("lease").expect("releasing a lost hold is not an error");
    let fence = server.try_lock("lease", false).expect("a new session").expect("free");
    assert_eq!(fence, 2);
    assert!(server.is_current("lease").expect("check"));
}

#[test]
fn holders_name_the_session_and_its_full_label() {
    let Some(cluster) = PgCluster::start() else { return };
    let (a, b) = (connect(&cluster), connect(&cluster));
    a.try_lock("labelled", true).expect("try").expect("free");
    b.try_lock("labelled", true).expect("try").expect("free");
    let label = format!("nightly sync {}", "x".repeat(100));
    a.record_holder("labelled", &label).expect("label");
    let holders = b.holders("labelled").expect("holders");
    assert_eq!(holders.len(), 2, "{holders:?}");
    let a_pid = a.holder_pid("labelled").expect("held");
    let mine = holders.iter().find(|h| h.backend_pid == a_pid).expect("a is listed");
    assert_eq!(mine.label.as_deref(), Some(label.as_str()), "labels are not cut");
    assert!(mine.shared);
    assert_eq!(mine.client_addr, Some("127.0.0.1".parse().expect("ip")));
    assert!(mine.since.is_some());
    assert!(mine.to_holder().to_string().contains("nightly sync"));
    a.unlock("labelled").expect("unlock");
    assert_eq!(b.holders("labelled").expect("holders").len(), 1);
}

/// The ids of names are kept for at most a few thousand names: a process
/// that goes through ever new names does not grow for ever.
#[test]
fn the_name_cache_is_bounded() {
    let Some(cluster) = PgCluster::start() else { return };
    let server = connect(&cluster);
    for i in 0..4200 {
        let name = format!("names/{i}");
        server.try_lock(&name, false).expect("try").expect("free");
        server.unlock(&name).expect("unlock");
        assert!(server.cached_ids() <= 4096, "{} ids after {i} names", server.cached_ids());
    }
}

/// The README's recipe for removing names: it never removes a name that
/// is held, and locks keep working afterwards — a process that had the id
/// of a removed name fails once, saying so, and then uses the name anew.
#[test]
fn removing_unused_names_spares_held_ones() {
    let Some(cluster) = PgCluster::start() else { return };
    let (a, b) = (connect(&cluster), connect(&cluster));
    a.try_lock("held", false).expect("try").expect("free");
    b.try_lock("idle", false).expect("try").expect("free");
    b.unlock("idle").expect("unlock");
    // Every name qualifies by age here; only the lock check spares one.
    cluster.psql(&REMOVE_UNUSED_NAMES.replace("now() - interval '30 days'", "now()"));
    let names = cluster.psql("SELECT string_agg(name, ',' ORDER BY name) FROM packlock.names");
    assert_eq!(names, "held", "the held name stays, the idle one goes");
    let err = b.try_lock("idle", false).expect_err("the cached id is gone");
    assert!(err.to_string().contains("made anew"), "{err}");
    b.try_lock("idle", false).expect("try").expect("the name is made again");
    assert_eq!(b.try_lock("held", false).expect("try"), None, "still held by a");
}

/// The README's recipe, word for word.
const REMOVE_UNUSED_NAMES: &str = "
    DELETE FROM packlock.names n
     WHERE n.created < now() - interval '30 days'
       AND pg_try_advisory_xact_lock(
             ((('packlock.names'::regclass::oid::bigint + 2147483648) % 4294967296)
               - 2147483648)::integer,
             n.id)";
