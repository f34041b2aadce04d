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

#[allow(dead_code)] // the file lock bench's helpers; this bench uses a few
#[path = "../support/mod.rs"]
mod support;

#[path = "../../tests/common/pg.rs"]
mod pg;

mod child;
mod raw;
mod rows;

use std::time::{Duration, SystemTime};

use criterion::Criterion;
use packlock::postgres::LockServer;

use pg::PgCluster;
use raw::RawSession;
use support::report::{Estimates, Row, print_table};
use support::{RunMode, format_ns};

const ACQUIRE_RELEASE: &str = "server_acquire_release";

fn main() {
    child::run_child_role_if_any();
    let started = SystemTime::now();
    let mode = RunMode::from_args();
    let Some(cluster) = PgCluster::start_with(&["log_line_prefix = '%p '"], None) else {
        return;
    };
    let conn = cluster.admin();
    // Creates the lock tables for the raw sessions too.
    let server = LockServer::connect(&conn).expect("connect");

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .without_plots()
        .configure_from_args();
    bench_acquire_release(&mut criterion, &server, &conn);
    criterion.final_summary();
    if mode == RunMode::CriterionOnly {
        return;
    }

    let filter = support::name_filter();
    let plain_rows = rows::run(&cluster, &server, mode, filter.as_deref());
    if mode == RunMode::Test {
        println!("\n(--test: every row ran once with tiny counts; no ratio table)");
        return;
    }
    let mut table = acquire_release_row(&Estimates::new(started)).into_iter().collect::<Vec<_>>();
    table.extend(plain_rows);
    if table.is_empty() {
        println!("\n(nothing measured in this run: no table)");
        return;
    }
    print_table(
        "Server locks beside the same work done by hand, same run (ratio = packlock / baseline):",
        &table,
    );
    if let Ok(elapsed) = started.elapsed() {
        println!("\nbench run took {:.0} s", elapsed.as_secs_f64());
    }
}

fn bench_acquire_release(c: &mut Criterion, server: &LockServer, conn: &str) {
    let lock = server.lock("bench/uncontended").open().expect("open");
    let raw = RawSession::connect(conn, "bench/uncontended-raw");
    let mut group = c.benchmark_group(ACQUIRE_RELEASE);
    group.bench_function("packlock", |b| {
        b.iter(|| drop(lock.acquire().expect("acquire")));
    });
    group.bench_function("baseline", |b| {
        b.iter(|| {
            assert!(raw.try_lock(), "uncontended");
            std::hint::black_box(raw.bump());
            raw.unlock();
        });
    });
    group.finish();
}

fn acquire_release_row(estimates: &Estimates) -> Option<Row> {
    let packlock = estimates.median_ns(&[ACQUIRE_RELEASE, "packlock"])?;
    let base = estimates.median_ns(&[ACQUIRE_RELEASE, "baseline"])?;
    Some(Row::ratio(
        "server lock, uncontended: `acquire()` + release",
        format_ns(packlock),
        format!(
            "by hand on one connection, prepared: try-lock + fence `UPDATE` + unlock: {}",
            format_ns(base)
        ),
        packlock / base,
        Some(1.3),
    ))
}
