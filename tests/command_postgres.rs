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

/// A command of `packlock --postgres` runs guarded: its pid is written to
/// `dir/pid`; it traps TERM, writing `dir/got`, and exits 7.
fn spawn_guarded(
    conn: &str,
    name: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> std::process::Child {
    let script = "echo $$ > \"$1/pid.tmp\"; mv \"$1/pid.tmp\" \"$1/pid\"; \
                  trap 'echo got > \"$1/got\"; exit 7' TERM; \
                  while :; do sleep 0.05; done";
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["--postgres", conn, name, "--", "sh", "-c", script, "sh"]);
    Command::new(env!("CARGO_BIN_EXE_packlock")).args(&args).arg(dir).spawn().expect("run packlock")
}

fn command_pid(dir: &std::path::Path) -> u32 {
    common::wait_until("the command runs", || dir.join("pid").exists());
    fs::read_to_string(dir.join("pid")).expect("pid").trim().parse().expect("a pid")
}

fn is_alive(pid: u32) -> bool {
    // A zombie has no command line left.
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| !cmdline.is_empty())
}

/// SIGTERM to packlock reaches the command, and packlock waits for it —
/// holding the lock all along — before it exits with the command's code.
#[test]
fn a_signal_to_packlock_is_passed_on_and_the_command_never_runs_unguarded() {
    let Some(cluster) = PgCluster::start() else { return };
    let conn = cluster.admin();
    let dir = common::temp_dir();
    let mut wrapper = spawn_guarded(&conn, "jobs/guarded", dir.path(), &[]);
    let pid = command_pid(dir.path());
    let busy = packlock(&["-n", "--postgres", &conn, "jobs/guarded", "--", "true"]);
    assert_eq!(busy.status.code(), Some(1), "the lock is held while the command runs");
    let killed = Command::new("kill").args(["-TERM", &wrapper.id().to_string()]).status();
    assert!(killed.expect("kill").success());
    let status = common::within_deadline(move || wrapper.wait().expect("wait"));
    assert_eq!(status.code(), Some(7), "packlock exits with the command's code");
    assert!(dir.path().join("got").exists(), "the command got the TERM");
    assert!(!is_alive(pid), "the command outlived packlock");
    let free = packlock(&["-n", "--postgres", &conn, "jobs/guarded", "--", "true"]);
    assert_eq!(free.status.code(), Some(0), "{}", text(&free.stderr));
}

/// SIGKILL to packlock ends its session and so the lock: the command is
/// killed with it (Linux's parent-death signal), never left running.
#[cfg(target_os = "linux")]
#[test]
fn killing_packlock_kills_the_command() {
    let Some(cluster) = PgCluster::start() else { return };
    let dir = common::temp_dir();
    let mut wrapper = spawn_guarded(&cluster.admin(), "jobs/killed", dir.path(), &[]);
    let pid = command_pid(dir.path());
    wrapper.kill().expect("SIGKILL packlock");
    wrapper.wait().expect("reap packlock");
    common::wait_until("the command dies with packlock", || !is_alive(pid));
}

/// A hold lost while the command runs (its session terminated) sends the
/// command the `--on-lost` signal.
#[test]
fn a_lost_hold_signals_the_command() {
    let Some(cluster) = PgCluster::start() else { return };
    let dir = common::temp_dir();
    let mut wrapper =
        spawn_guarded(&cluster.admin(), "jobs/lost", dir.path(), &["--on-lost", "TERM"]);
    command_pid(dir.path());
    cluster.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_locks \
         WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()",
    );
    let status = common::within_deadline(move || wrapper.wait().expect("wait"));
    assert!(dir.path().join("got").exists(), "the command got no signal");
    assert_eq!(status.code(), Some(7), "packlock exits with the command's code");
}
