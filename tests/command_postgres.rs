//! `packlock --postgres CONN NAME -- COMMAND`: the command holds a lock
//! server's named lock, gets its fence as `PACKLOCK_FENCE`, and the
//! conflict, `--status` and bad-input paths behave as for lock files.

#![cfg(all(feature = "cli", feature = "postgres", unix))] // the server starts the Unix way

mod common;

use std::fs;
use std::process::{Command, Output};

use common::pg::PgCluster;
use packlock::postgres::LockServer;

fn packlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_packlock")).args(args).output().expect("run packlock")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_command_gets_a_growing_fence_in_its_environment() {
    let Some(cluster) = PgCluster::start() else { return };
    let dir = common::temp_dir();
    let out = dir.path().join("fences");
    let script = format!("echo \"$PACKLOCK_FENCE\" >> {}", out.display());
    let conn = cluster.admin();
    for _ in 0..3 {
        let run = packlock(&["--postgres", &conn, "jobs/nightly", "--", "sh", "-c", &script]);
        assert!(run.status.success(), "{}", text(&run.stderr));
    }
    let fences: Vec<u64> = fs::read_to_string(&out)
        .expect("the command ran")
        .lines()
        .map(|line| line.parse().expect("a fence"))
        .collect();
    assert_eq!(fences, [1, 2, 3]);
}

/// `--status` only looks: run again and again, it moves no fence, makes
/// no name's row and never makes the lock busy.
#[test]
fn status_changes_nothing_on_the_server() {
    let Some(cluster) = PgCluster::start() else { return };
    let conn = cluster.admin();
    let fence = || cluster.psql("SELECT coalesce(max(fence), 0) FROM packlock.names");
    let server = LockServer::connect(&conn).expect("connect");
    drop(server.lock("jobs/seen").open().expect("open").acquire().expect("acquire"));
    let before = fence();
    for name in ["jobs/seen", "jobs/never"] {
        for _ in 0..5 {
            let status = packlock(&["--status", "--postgres", &conn, name]);
            assert_eq!(status.status.code(), Some(0), "{}", text(&status.stdout));
        }
    }
    assert_eq!(fence(), before, "--status moved a fence");
    let rows = cluster.psql("SELECT count(*) FROM packlock.names WHERE name = 'jobs/never'");
    assert_eq!(rows, "0", "--status made a name's row");
}

#[test]
fn a_held_server_lock_is_a_conflict_and_status_names_it() {
    let Some(cluster) = PgCluster::start() else { return };
    let conn = cluster.admin();
    let server = LockServer::connect(&conn).expect("connect");
    let lock = server.lock("jobs/busy").label("test holder").open().expect("open");
    let hold = lock.acquire().expect("acquire");

    let run = packlock(&["-n", "-E", "75", "--postgres", &conn, "jobs/busy", "--", "true"]);
    assert_eq!(run.status.code(), Some(75), "{}", text(&run.stderr));
    let stderr = text(&run.stderr);
    assert!(stderr.contains("postgres://") && stderr.contains("jobs/busy"), "{stderr}");

    let status = packlock(&["--status", "--postgres", &conn, "jobs/busy"]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status.stderr));
    let stdout = text(&status.stdout);
    assert!(stdout.starts_with("held: postgres://"), "{stdout}");
    assert!(stdout.contains("test holder"), "{stdout}");

    drop(hold);
    let status = packlock(&["--status", "--postgres", &conn, "jobs/busy"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stdout));
}

#[test]
fn an_unreachable_server_or_a_bad_name_is_a_clear_error() {
    let Some(cluster) = PgCluster::start() else { return };
    let port = cluster.port;
    drop(cluster); // stopped: nothing listens on its port now
    let conn = format!("host=127.0.0.1 port={port} user=nobody password=hunter2 dbname=x");
    let run = packlock(&["--postgres", &conn, "jobs/x", "--", "true"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = text(&run.stderr);
    assert!(stderr.contains(&port.to_string()), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");

    let Some(cluster) = PgCluster::start() else { return };
    let too_long = "n".repeat(packlock::postgres::MAX_NAME_LEN + 1);
    let run = packlock(&["--postgres", &cluster.admin(), &too_long, "--", "true"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(text(&run.stderr).contains("invalid lock name"), "{}", text(&run.stderr));
    // An empty name is a usage error, caught before any connection.
    let run = packlock(&["--postgres", &cluster.admin(), "", "--", "true"]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
}
