//! What packlock costs over the OS lock it is built on and over the naive
//! async design, every performance row beside its baseline,
//! measured in the same run so that the ratios mean something on whatever
//! (noisy) machine runs them.
//!
//! Criterion groups, each with `packlock` and a baseline function:
//!
//! 1. `open_acquire_release`: `PackLock::open(dir)?.acquire()?`, then drop
//!    both, against opening the same file with `std::fs::OpenOptions`
//!    (read + write + create, no truncate), `File::lock`, `File::unlock` and
//!    close: the lock alone, with none of packlock's checks; and `naive`,
//!    the naive design from sync code (a map from path to an async mutex,
//!    that mutex, then the open and `flock` on a helper thread:
//!    `support::naive::naive_open_lock_unlock`). Two more functions show
//!    where the floor is: `floor_path_stat` makes packlock's own system
//!    calls raw (a read-only open that cannot wait, an `fstat` for the
//!    registry key, the identity `stat(path)` after locking, and the three
//!    `getpid`s of fork safety), `floor_fstat` those of a cheaper check (one
//!    `fstat` after locking, for the key and `nlink > 0`, instead of
//!    `fstat` and `stat(path)`).
//! 2. `reuse_acquire_release`: acquire + release on a `PackLock` opened once,
//!    against `lock` + `unlock` on a `File` opened once; the floors add the
//!    identity `stat(path)` (or an `fstat`) and the `getpid`s at acquire
//!    and at release.
//! 3. `async_open_acquire_release`: scenario 1 through `acquire_async().await`,
//!    driven by `futures_lite::future::block_on`; the baseline and the
//!    floors run the raw calls inside the same `block_on`.
//! 4. `contended_64_tasks_x100`: 64 tokio tasks on a 2-worker multi-thread
//!    runtime each acquire one lock 100 times and bump a shared counter
//!    inside the critical section. The baseline is the naive design
//!    (`support::naive`): a `tokio::sync::Mutex` in front, then
//!    `spawn_blocking` to open and `flock` the file, per acquire. The
//!    counter is bumped with a separate load and store, so any lapse in
//!    exclusion loses updates; every round asserts the total.
//! 5. `contended_scaling`: the same with 1, 8, 64 and 512 tasks sharing
//!    `SCALING_ACQUIRES` acquires per round (4096 × 1 ... 8 × 512), for
//!    packlock and the naive design; reported per acquire.
//!
//! Then, in plain code (`support::plain`), the rows that are not "time a
//! closure": cross-process hand-off latency to a sync and an async waiter
//! (against a child process, this binary again), threads left by cancelled
//! acquires, and memory left by 100 000 distinct lock files.
//!
//! At the end the bench prints one table of every row with its ratio and
//! target, from the medians criterion wrote in this run
//! (`<target>/criterion/<group>/<function>/new/estimates.json`), and writes
//! the per-acquire costs of row 5 to `<target>/criterion/packlock-scaling.csv`
//! for `cargo run --example bench_chart`.
//!
//! `--test` runs every scenario once (plain rows with tiny counts) and
//! prints no ratio table; `--list` and `--profile-time` leave out the plain
//! rows. A filter argument (`cargo bench -- handoff`) selects criterion
//! groups as usual and plain rows whose name contains it.

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use futures_lite::future;
use packlock::{PACK_LOCK_FILE_NAME, PackLock};

use support::naive::{NaiveLock, naive_open_lock_unlock};
use support::report::{Estimates, Row, print_table, write_scaling_csv};
use support::{
    RunMode, floor_fstat, floor_path_stat, format_ns, raw_open, raw_open_lock_unlock, temp_dir,
    tokio_runtime,
};

const OPEN_ACQUIRE_RELEASE: &str = "open_acquire_release";
const REUSE_ACQUIRE_RELEASE: &str = "reuse_acquire_release";
const ASYNC_OPEN_ACQUIRE_RELEASE: &str = "async_open_acquire_release";
const CONTENDED: &str = "contended_64_tasks_x100";
const SCALING: &str = "contended_scaling";

/// Scenario 4: concurrent tasks, and acquires per task per round.
const TASKS: usize = 64;
const ACQUIRES_PER_TASK: usize = 100;

/// Scenario 5: numbers of contending tasks, and acquires per round, shared
/// equally among the tasks.
const TASK_COUNTS: [usize; 4] = [1, 8, 64, 512];
const SCALING_ACQUIRES: usize = 4096;

fn main() {
    support::child::run_child_role_if_any();
    let started = SystemTime::now();
    let load_before = support::proc::load_average();
    let mode = RunMode::from_args();
    let mut criterion = support::criterion();

    bench_open_acquire_release(&mut criterion);
    bench_reuse_acquire_release(&mut criterion);
    bench_async_open_acquire_release(&mut criterion);
    bench_contended(&mut criterion);
    bench_scaling(&mut criterion);
    criterion.final_summary();

    if mode == RunMode::CriterionOnly {
        return;
    }
    let filter = support::name_filter();
    let plain_rows = support::plain::run(mode, filter.as_deref());
    if mode == RunMode::Test {
        println!("\n(--test: every scenario ran once with tiny counts; no ratio table)");
        return;
    }
    let estimates = Estimates::new(started);
    let mut rows = criterion_rows(&estimates);
    rows.extend(plain_rows);
    if !print_table(
        "Every scenario beside its baseline, same run (medians; ratio = packlock / baseline):",
        &rows,
    ) {
        return;
    }
    print_floor(&estimates);
    print_elapsed(started, load_before);
}

// ---------------------------------------------------------------------------
// Scenarios 1-3: uncontended
// ---------------------------------------------------------------------------

fn bench_open_acquire_release(c: &mut Criterion) {
    let dir = temp_dir();
    let raw_path = dir.path().join(PACK_LOCK_FILE_NAME);
    let mut group = c.benchmark_group(OPEN_ACQUIRE_RELEASE);
    group.bench_function("packlock", |b| {
        b.iter(|| {
            let lock = PackLock::open(dir.path()).expect("open");
            let hold = lock.acquire().expect("acquire");
            drop(black_box(hold));
            drop(lock);
        });
    });
    group.bench_function("baseline", |b| b.iter(|| raw_open_lock_unlock(&raw_path)));
    group.bench_function("naive", |b| b.iter(|| naive_open_lock_unlock(&raw_path)));
    group.bench_function("floor_path_stat", |b| b.iter(|| floor_path_stat(&raw_path)));
    group.bench_function("floor_fstat", |b| b.iter(|| floor_fstat(&raw_path)));
    group.finish();
}

fn bench_reuse_acquire_release(c: &mut Criterion) {
    let dir = temp_dir();
    let path = dir.path().join(PACK_LOCK_FILE_NAME);
    // Separate open file descriptions of one file; they never hold the lock
    // at the same time below, so they never wait for each other.
    let lock = PackLock::open(dir.path()).expect("open");
    let file = raw_open(&path);
    let mut group = c.benchmark_group(REUSE_ACQUIRE_RELEASE);
    group.bench_function("packlock", |b| {
        b.iter(|| drop(black_box(lock.acquire().expect("acquire"))));
    });
    group.bench_function("baseline", |b| {
        b.iter(|| {
            file.lock().expect("lock");
            file.unlock().expect("unlock");
        });
    });
    group.bench_function("floor_path_stat", |b| {
        b.iter(|| {
            black_box(std::process::id());
            file.lock().expect("lock");
            black_box(std::fs::metadata(&path).expect("stat"));
            black_box(std::process::id());
            file.unlock().expect("unlock");
        });
    });
    group.bench_function("floor_fstat", |b| {
        b.iter(|| {
            black_box(std::process::id());
            file.lock().expect("lock");
            black_box(file.metadata().expect("fstat"));
            black_box(std::process::id());
            file.unlock().expect("unlock");
        });
    });
    group.finish();
}

fn bench_async_open_acquire_release(c: &mut Criterion) {
    let dir = temp_dir();
    let raw_path = dir.path().join(PACK_LOCK_FILE_NAME);
    let mut group = c.benchmark_group(ASYNC_OPEN_ACQUIRE_RELEASE);
    group.bench_function("packlock", |b| {
        b.iter(|| {
            future::block_on(async {
                let lock = PackLock::open(dir.path()).expect("open");
                let hold = lock.acquire_async().await.expect("acquire");
                drop(black_box(hold));
                drop(lock);
            });
        });
    });
    group.bench_function("baseline", |b| {
        b.iter(|| future::block_on(async { raw_open_lock_unlock(&raw_path) }));
    });
    group.bench_function("floor_path_stat", |b| {
        b.iter(|| future::block_on(async { floor_path_stat(&raw_path) }));
    });
    group.bench_function("floor_fstat", |b| {
        b.iter(|| future::block_on(async { floor_fstat(&raw_path) }));
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// Scenarios 4-5: contended, packlock vs the naive design
// ---------------------------------------------------------------------------

fn bench_contended(c: &mut Criterion) {
    let dir = temp_dir();
    let lock = Arc::new(PackLock::open(dir.path()).expect("open"));
    let naive = Arc::new(NaiveLock::new(&dir.path().join(PACK_LOCK_FILE_NAME)));
    let runtime = tokio_runtime();

    let mut group = c.benchmark_group(CONTENDED);
    // One round is 6,400 acquires (tens of milliseconds): few, flat samples
    // keep the run short.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("packlock", |b| {
        b.iter(|| runtime.block_on(packlock_round(&lock, TASKS, ACQUIRES_PER_TASK)));
    });
    group.bench_function("baseline", |b| {
        b.iter(|| runtime.block_on(naive_round(&naive, TASKS, ACQUIRES_PER_TASK)));
    });
    group.finish();
}

fn bench_scaling(c: &mut Criterion) {
    let dir = temp_dir();
    let lock = Arc::new(PackLock::open(dir.path()).expect("open"));
    let naive = Arc::new(NaiveLock::new(&dir.path().join(PACK_LOCK_FILE_NAME)));
    let runtime = tokio_runtime();

    let mut group = c.benchmark_group(SCALING);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for tasks in TASK_COUNTS {
        let per_task = SCALING_ACQUIRES / tasks;
        group.bench_with_input(BenchmarkId::new("packlock", tasks), &tasks, |b, &tasks| {
            b.iter(|| runtime.block_on(packlock_round(&lock, tasks, per_task)));
        });
        group.bench_with_input(BenchmarkId::new("naive", tasks), &tasks, |b, &tasks| {
            b.iter(|| runtime.block_on(naive_round(&naive, tasks, per_task)));
        });
    }
    group.finish();
}

/// One round with packlock: `tasks` tasks, `per_task` acquires each.
async fn packlock_round(lock: &Arc<PackLock>, tasks: usize, per_task: usize) {
    let counter = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (lock, counter) = (Arc::clone(lock), Arc::clone(&counter));
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let hold = lock.acquire_async().await.expect("acquire");
                    bump(&counter);
                    drop(hold);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
    assert_no_lost_update(&counter, tasks * per_task);
}

/// One round with the naive design.
async fn naive_round(lock: &Arc<NaiveLock>, tasks: usize, per_task: usize) {
    let counter = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (lock, counter) = (Arc::clone(lock), Arc::clone(&counter));
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let hold = lock.acquire().await;
                    bump(&counter);
                    drop(hold);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
    assert_no_lost_update(&counter, tasks * per_task);
}

/// The critical section: a read-modify-write that is only correct under
/// mutual exclusion (a separate load and store, not `fetch_add`).
fn bump(counter: &AtomicUsize) {
    let seen = counter.load(Ordering::Acquire);
    counter.store(seen + 1, Ordering::Release);
}

fn assert_no_lost_update(counter: &AtomicUsize, expected: usize) {
    assert_eq!(counter.load(Ordering::Acquire), expected, "lost updates: exclusion failed");
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/// Rows 1-5 of the table, from criterion's medians in this run.
fn criterion_rows(estimates: &Estimates) -> Vec<Row> {
    let mut rows = Vec::new();
    let simple = [
        (
            OPEN_ACQUIRE_RELEASE,
            "sync open + acquire + release",
            "raw `File` open + lock + unlock",
            1.2,
        ),
        (
            REUSE_ACQUIRE_RELEASE,
            "reuse an open `PackLock`: acquire + release",
            "raw `lock` + `unlock` on an open file",
            1.5,
        ),
        (
            ASYNC_OPEN_ACQUIRE_RELEASE,
            "async uncontended open + `acquire_async` + release",
            "raw open + lock + unlock",
            1.5,
        ),
        (
            CONTENDED,
            "64 tasks x 100 acquires, one lock, tokio 2 workers (per round)",
            "naive: tokio mutex + `spawn_blocking` flock",
            0.5,
        ),
    ];
    for (group, scenario, baseline, at_most) in simple {
        let (Some(packlock), Some(base)) =
            (estimates.median_ns(&[group, "packlock"]), estimates.median_ns(&[group, "baseline"]))
        else {
            continue;
        };
        let baseline = format!("{baseline}: {}", format_ns(base));
        rows.push(Row::ratio(
            scenario,
            format_ns(packlock),
            baseline,
            packlock / base,
            Some(at_most),
        ));
    }

    let open_row = |function| estimates.median_ns(&[OPEN_ACQUIRE_RELEASE, function]);
    if let (Some(packlock), Some(naive)) = (open_row("packlock"), open_row("naive")) {
        rows.push(Row::ratio(
            "sync open + acquire + release, against the naive design",
            format_ns(packlock),
            format!(
                "naive: path map + async mutex + open/flock on a helper thread: {}",
                format_ns(naive)
            ),
            packlock / naive,
            Some(1.0),
        ));
    }

    // Scenario 5, per acquire.
    let points: Vec<(usize, f64, f64)> = TASK_COUNTS
        .iter()
        .filter_map(|&tasks| {
            let id = tasks.to_string();
            let acquires = (SCALING_ACQUIRES / tasks * tasks) as f64;
            let packlock = estimates.median_ns(&[SCALING, "packlock", &id])? / acquires;
            let naive = estimates.median_ns(&[SCALING, "naive", &id])? / acquires;
            Some((tasks, packlock, naive))
        })
        .collect();
    for &(tasks, packlock, naive) in &points {
        rows.push(Row::ratio(
            format!("{tasks} task{} contending, per acquire", if tasks == 1 { "" } else { "s" }),
            format_ns(packlock),
            format!("naive: {}", format_ns(naive)),
            packlock / naive,
            None,
        ));
    }
    let at = |n: usize| points.iter().find(|p| p.0 == n).copied();
    if let (Some((_, p8, n8)), Some((_, p512, n512))) = (at(8), at(512)) {
        rows.push(Row::ratio(
            "512 vs 8 tasks contending: packlock per acquire",
            format!("512 tasks: {}", format_ns(p512)),
            format!("8 tasks: {} (naive: 512/8 = {:.2}x)", format_ns(p8), n512 / n8),
            p512 / p8,
            Some(1.3),
        ));
    }
    if !points.is_empty() {
        let csv = estimates.root().join("packlock-scaling.csv");
        match write_scaling_csv(&csv, &points) {
            Ok(()) => println!("\nper-acquire costs by task count written to {}", csv.display()),
            Err(e) => eprintln!("cannot write {}: {e}", csv.display()),
        }
    }
    rows
}

/// packlock against the floor of its design, for the uncontended rows:
/// its own system calls made raw, and those of a cheaper identity check.
fn print_floor(estimates: &Estimates) {
    let groups = [OPEN_ACQUIRE_RELEASE, REUSE_ACQUIRE_RELEASE, ASYNC_OPEN_ACQUIRE_RELEASE];
    let rows: Vec<_> = groups
        .iter()
        .filter_map(|&group| {
            let median = |function| estimates.median_ns(&[group, function]);
            let floors = (median("floor_path_stat")?, median("floor_fstat")?);
            Some((group, median("packlock")?, median("baseline")?, floors))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    println!("\nThe floor: the same system calls made raw (ratios to the raw baseline):\n");
    println!(
        "| scenario | packlock | raw baseline | packlock's system calls, raw (with `stat(path)`) | \
         packlock / that | with one `fstat` instead (link-count check) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (group, packlock, baseline, (path_stat, fstat)) in rows {
        println!(
            "| {group} | {} ({:.2}x) | {} | {} ({:.2}x) | {:.2}x | {} ({:.2}x) |",
            format_ns(packlock),
            packlock / baseline,
            format_ns(baseline),
            format_ns(path_stat),
            path_stat / baseline,
            packlock / path_stat,
            format_ns(fstat),
            fstat / baseline,
        );
    }
}

fn print_elapsed(started: SystemTime, load_before: Option<f64>) {
    if let Ok(elapsed) = started.elapsed() {
        println!("\nbench run took {:.0} s", elapsed.as_secs_f64());
    }
    // Other work on the machine skews some rows more than others.
    if let (Some(before), Some(after)) = (load_before, support::proc::load_average()) {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        println!("load average (1 min) at start {before:.2}, at end {after:.2}, on {cores} cores");
    }
}
