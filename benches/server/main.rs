//! What a server lock (`packlock::postgres`) costs over the PostgreSQL
//! calls it is built on, each row beside a baseline done by hand on
//! `tokio-postgres` in the same run, on a throwaway cluster this bench
//! starts (`tests/common/pg.rs`; skipped with a notice where PostgreSQL is
//! not installed, failing under `CI`):
//!
//! 1. `server_acquire_release` (criterion): `acquire()` + drop of a lock
//!    opened once, uncontended, against the round trips a fenced lock needs
//!    on one connection with statements prepared once:
//!    `pg_try_advisory_lock`, the fence `UPDATE ... RETURNING`,
//!    `pg_advisory_unlock`.
//! 2. `server_handoff`: a child process (this binary again, see
//!    [`child`]) holds the lock, a thread of this process waits in
//!    `acquire()`; from the child's release (its wall clock just before
//!    the release began) to the waiter's acquire returning. The baseline
//!    is the same by hand: the child `pg_advisory_unlock`s, the waiter's
//!    `pg_advisory_lock` returns and it bumps the fence. The two alternate
//!    hand-off by hand-off.
//! 3. `server_waiting_queries`: statements a waiter sends while it waits,
//!    counted per backend pid in the server's log (`log_statement = all`,
//!    `log_line_prefix = '%p '`) over a wait of about a second, beside a
//!    waiter polling `pg_try_advisory_lock` every 10 ms; and the sessions
//!    the waiting process has open.
//!
//! `--test` runs every row once with tiny counts and prints no table.

// The cluster starts the Unix way (tests/common/pg.rs): elsewhere the
// bench only says it skipped.
#[cfg(unix)]
#[allow(dead_code)] // the file lock bench's helpers; this bench uses a few
#[path = "../support/mod.rs"]
mod support;

#[cfg(unix)]
#[path = "../../tests/common/pg.rs"]
mod pg;

#[cfg(unix)]
mod child;
#[cfg(unix)]
mod raw;
#[cfg(unix)]
mod rows;
#[cfg(unix)]
mod run;

#[cfg(unix)]
fn main() {
    run::main();
}

#[cfg(not(unix))]
fn main() {
    eprintln!("skipped: the server bench starts its PostgreSQL cluster the Unix way");
}
