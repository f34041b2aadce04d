//! The other process of the hand-off rows: this bench binary again, started
//! with [`ROLE_VAR`] set, holding the server lock on command — through
//! packlock or by hand.
//!
//! Protocol, one line each way: `lock packlock` or `lock raw`, answered
//! `locked` once held; `unlock`, answered `unlocked <ns>`, the wall clock
//! read just before the release began. End of input ends the child.

use std::ffi::OsStr;
use std::io::{BufRead, Write};

use packlock::PackLockHold;
use packlock::postgres::LockServer;

use super::raw::RawSession;
use crate::support::child::{Holder, wall_clock_ns};

const ROLE_VAR: &str = "PACKLOCK_BENCH_SERVER_HOLDER";
const CONN_VAR: &str = "PACKLOCK_BENCH_SERVER_CONN";

/// In the child, holds on command and exits; in the bench, returns at once.
pub fn run_child_role_if_any() {
    let Ok(name) = std::env::var(ROLE_VAR) else { return };
    let conn = std::env::var(CONN_VAR).expect("child without a connection string");
    hold_on_command(&conn, &name);
    std::process::exit(0);
}

enum Held {
    Packlock(PackLockHold),
    Raw,
}

fn hold_on_command(conn: &str, name: &str) {
    let server = LockServer::connect(conn).expect("connect");
    let lock = server.lock(name).open().expect("open");
    let raw = RawSession::connect(conn, name);
    let mut held = None;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        match line.expect("read command").trim() {
            "lock packlock" => {
                held = Some(Held::Packlock(lock.acquire().expect("acquire")));
                writeln!(out, "locked").expect("answer");
            }
            "lock raw" => {
                raw.lock();
                raw.bump();
                held = Some(Held::Raw);
                writeln!(out, "locked").expect("answer");
            }
            "unlock" => {
                let at = wall_clock_ns();
                match held.take().expect("unlock without a hold") {
                    Held::Packlock(hold) => drop(hold),
                    Held::Raw => raw.unlock(),
                }
                writeln!(out, "unlocked {at}").expect("answer");
            }
            other => panic!("unknown command {other:?}"),
        }
        out.flush().expect("flush answer");
    }
}

/// A child process holding the server lock `name` on command; lock it
/// with `lock_by("lock packlock")` or `lock_by("lock raw")`.
pub fn spawn_holder(conn: &str, name: &str) -> Holder {
    Holder::spawn_with(&[(ROLE_VAR, OsStr::new(name)), (CONN_VAR, OsStr::new(conn))])
}
