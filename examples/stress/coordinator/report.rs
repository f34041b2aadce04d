//! The final summary table.

use std::time::Duration;

use super::chaos::Chaos;
use super::fleet::Tally;
use super::leaks::Leaks;
use super::verify::Verification;
use crate::Args;
use crate::mode::Mode;
use crate::stats::{Event, Flavour, Peak, Totals};

pub struct Outcome {
    pub chaos: Chaos,
    pub fleet: Tally,
    pub leaks: Leaks,
    pub verification: Verification,
    /// Server mode: the server, and how many connections the proxy made.
    pub server: Option<(String, u64)>,
}

/// Prints the table; true if the run passed.
pub fn print(args: &Args, outcome: &Outcome, elapsed: Duration) -> bool {
    let v = &outcome.verification;
    print_parameters(args, elapsed, outcome);
    print_acquisitions(&v.totals);
    print_other_outcomes(&v.totals);
    match &outcome.server {
        Some((_, connections)) => print_server_chaos(&outcome.chaos, &outcome.fleet, *connections),
        None => print_chaos(&outcome.chaos, &outcome.fleet),
    }
    print_verification(outcome);
    if outcome.server.is_some() {
        print_fences(v);
    }
    print_peaks(args, &v.totals);
    let failures = failures(outcome);
    for failure in &failures {
        println!("FAIL: {failure}");
    }
    println!("result: {}", if failures.is_empty() { "PASS" } else { "FAIL" });
    failures.is_empty()
}

fn row(name: &str, value: impl std::fmt::Display) {
    println!("  {name:<44} {value:>12}");
}

fn total(totals: &Totals, key: &str) -> u64 {
    totals.get(key).copied().unwrap_or(0)
}

fn print_parameters(args: &Args, elapsed: Duration, outcome: &Outcome) {
    println!("packlock stress");
    row("seed", args.seed);
    row("duration (s)", args.duration);
    row("wall time (s)", format!("{:.1}", elapsed.as_secs_f64()));
    let shape = format!("{} x {} x {}", args.processes, args.threads, args.tasks);
    row("processes x threads x tasks", shape);
    match &outcome.server {
        Some((server, _)) => {
            row("lock names on the server", args.files);
            println!("  server: {server}");
        }
        None => row("lock files", args.files),
    }
}

fn print_acquisitions(totals: &Totals) {
    println!("acquisitions                                       exclusive       shared");
    let mut sums = [0; 2];
    for flavour in Flavour::ALL {
        let counts = Mode::ALL.map(|mode| total(totals, &flavour.key(mode)));
        println!("  {:<44} {:>12} {:>12}", flavour.name(), counts[0], counts[1]);
        sums[0] += counts[0];
        sums[1] += counts[1];
    }
    println!("  {:<44} {:>12} {:>12}", "total", sums[0], sums[1]);
}

fn print_other_outcomes(totals: &Totals) {
    println!("acquires that did not get the lock");
    row("try_acquire busy (retried)", total(totals, Event::BusyRetry.key()));
    row("try_acquire gave up", total(totals, Event::TryGaveUp.key()));
    row("timeouts (sync and async)", total(totals, Event::TimedOut.key()));
    row("cancellations (token, acquire_until)", total(totals, Event::Cancelled.key()));
    row("dropped futures (poll once, tokio timeout)", total(totals, Event::Dropped.key()));
    row("server errors (connection cuts; expected)", total(totals, Event::ServerError.key()));
    row("unexpected errors", total(totals, Event::Error.key()));
}

fn print_server_chaos(chaos: &Chaos, fleet: &Tally, connections: u64) {
    println!("faults");
    row("kill -9 of a worker", chaos.kills);
    row("worker processes started", fleet.started);
    row("connections through the proxy", connections);
    row("connections cut by the proxy", chaos.cuts);
    row("backends terminated (pg_terminate_backend)", chaos.terminations);
}

fn print_fences(v: &Verification) {
    println!("fences (server mode)");
    row("fenced sections logged", v.fenced);
    row("  of holds lost by their end", v.lost_holds);
    row("stale reads/writes rejected by the storage", v.rejected);
    row("  of holds not lost (must be 0)", v.rejected_kept);
    row("duplicate exclusive fences", v.duplicate_fences);
    row("exclusive fences out of order", v.fence_disorder);
    row("shared fences not above the exclusive ones before", v.shared_fence_mismatches);
    row("changes seen by shared, from lost holds", v.explained_dirty_reads);
    for note in &v.fence_notes {
        println!("  fence: {note}");
    }
}

fn print_chaos(chaos: &Chaos, fleet: &Tally) {
    println!("faults");
    row("kill -9 of a worker", chaos.kills);
    row("worker processes started", fleet.started);
    row("new file renamed over a lock file", chaos.renames_over);
    row("lock file deleted", chaos.deletes);
    row("lock file renamed away", chaos.renames_away);
    row("renames/deletes in all", chaos.disturbances());
}

fn print_verification(outcome: &Outcome) {
    let v = &outcome.verification;
    println!("verification");
    row("logs read", v.logs);
    row("hold intervals logged", v.intervals);
    row("  exclusive / shared", format!("{} / {}", v.exclusive, v.shared));
    if outcome.server.is_none() {
        row("  invalidated (validate() failed at the end)", v.invalidated);
        row("  not identified (replaced before entry)", v.unidentified);
    }
    row("  lines cut by kill -9 (ignored)", v.torn);
    if outcome.server.is_some() {
        row("overlaps by name (holds not lost)", v.overlaps_by_path);
        row("counted exclusive sections (accepted writes)", v.counted);
        row("  on lock names", v.inodes);
    } else {
        row("overlaps by path (valid intervals)", v.overlaps_by_path);
        row("overlaps by inode (all identified)", v.overlaps_by_inode);
        row("counted exclusive sections", v.counted);
        row("  on lock file inodes", v.inodes);
    }
    row("lost updates", v.lost_updates);
    row("dirty shared reads", v.dirty_reads);
    row("leaked locks", outcome.leaks.count());
    row("stuck workers", outcome.fleet.stuck);
    row("worker failures", outcome.fleet.failures);
    for example in &v.examples {
        println!("  overlap: {example}");
    }
    for file in &outcome.leaks.busy_files {
        println!("  leaked: lock file {file} is still held");
    }
    for entry in &outcome.leaks.stale {
        println!("  leaked: {entry:?}");
    }
    for lock in &outcome.leaks.server_locks {
        println!("  leaked: {lock}");
    }
}

fn print_peaks(args: &Args, totals: &Totals) {
    println!("peaks per process");
    let threads = total(totals, Peak::Threads.key());
    // main + sync threads + 2 runtime workers + sampler; the rest is
    // the `blocking` pool, where waits for the OS lock park.
    let base = args.threads + 4;
    row("threads", threads);
    row("  main, sync threads, runtime, sampler", base);
    let parked = total(totals, Peak::Waiters.key());
    let parked_on_one = total(totals, Peak::WaitersPerFile.key());
    row("threads parked in flock, all lock files", parked);
    row("threads parked in flock, one file (bound 1)", parked_on_one);
}

fn failures(outcome: &Outcome) -> Vec<String> {
    let v = &outcome.verification;
    let waiters = total(&v.totals, Peak::WaitersPerFile.key());
    let errors = total(&v.totals, Event::Error.key());
    let checks = [
        (v.overlaps_by_path > 0, format!("{} overlaps by path", v.overlaps_by_path)),
        (v.overlaps_by_inode > 0, format!("{} overlaps by inode", v.overlaps_by_inode)),
        (v.lost_updates > 0, format!("{} lost updates", v.lost_updates)),
        (v.dirty_reads > 0, format!("{} dirty shared reads", v.dirty_reads)),
        (outcome.leaks.count() > 0, format!("{} leaked locks", outcome.leaks.count())),
        (outcome.fleet.stuck > 0, format!("{} stuck workers", outcome.fleet.stuck)),
        (outcome.fleet.failures > 0, format!("{} worker failures", outcome.fleet.failures)),
        (waiters > 1, format!("{waiters} threads of one process parked in flock on one file")),
        (errors > 0, format!("{errors} unexpected errors in the workers")),
        (v.malformed > 0, format!("{} malformed log lines", v.malformed)),
        (v.duplicate_fences > 0, format!("{} duplicate exclusive fences", v.duplicate_fences)),
        (v.fence_disorder > 0, format!("{} exclusive fences out of order", v.fence_disorder)),
        (
            v.shared_fence_mismatches > 0,
            format!("{} shared holds whose fence is out of order", v.shared_fence_mismatches),
        ),
        (v.rejected_kept > 0, format!("{} rejected accesses of holds not lost", v.rejected_kept)),
        (v.intervals == 0, "no hold interval was logged: nothing verified".to_string()),
    ];
    checks.into_iter().filter(|(failed, _)| *failed).map(|(_, why)| why).collect()
}
