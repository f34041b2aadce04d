//! The bench's run on Unix, where its throwaway cluster starts.

use std::time::SystemTime;

use criterion::Criterion;
use packlock::postgres::LockServer;

use crate::pg::PgCluster;
use crate::raw::RawSession;
use crate::support::report::{Estimates, Row, print_table};
use crate::support::{self, RunMode, format_ns};

const ACQUIRE_RELEASE: &str = "server_acquire_release";

pub fn main() {
    crate::child::run_child_role_if_any();
    let started = SystemTime::now();
    let mode = RunMode::from_args();
    let Some(cluster) = PgCluster::start_with(&["log_line_prefix = '%p '"], None) else {
        return;
    };
    let conn = cluster.admin();
    // Creates the lock tables for the raw sessions too.
    let server = LockServer::connect(&conn).expect("connect");

    let mut criterion = support::criterion();
    bench_acquire_release(&mut criterion, &server, &conn);
    criterion.final_summary();
    if mode == RunMode::CriterionOnly {
        return;
    }

    let filter = support::name_filter();
    let plain_rows = crate::rows::run(&cluster, &server, mode, filter.as_deref());
    if mode == RunMode::Test {
        println!("\n(--test: every row ran once with tiny counts; no ratio table)");
        return;
    }
    let mut table = acquire_release_row(&Estimates::new(started)).into_iter().collect::<Vec<_>>();
    table.extend(plain_rows);
    if !print_table(
        "Server locks beside the same work done by hand, same run (ratio = packlock / baseline):",
        &table,
    ) {
        return;
    }
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
