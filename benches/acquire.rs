//! What packlock costs over the raw OS lock it is built on.
//!
//! Every scenario is a criterion group with two functions, `packlock` and
//! `baseline`, measured in the same run on the same kind of path (a sidecar
//! file in a fresh temporary directory), so that the ratio of the two is
//! meaningful on whatever machine runs it:
//!
//! 1. `open_acquire_release`: `PackLock::open(dir)?.acquire()?`, then drop
//!    both, against opening the same file with `std::fs::OpenOptions`
//!    (read + write + create, no truncate), `File::lock`, `File::unlock` and
//!    close. That is exactly what packlock does underneath, so the difference
//!    is its own bookkeeping: the identity `fstat`s, the in-process registry
//!    and slot, the allocations.
//! 2. `reuse_acquire_release`: acquire + release on a `PackLock` opened once,
//!    against `lock` + `unlock` on a `File` opened once: the per-acquire
//!    overhead when callers keep their lock around.
//! 3. `async_open_acquire_release`: scenario 1 through `acquire_async().await`,
//!    driven by `futures_lite::future::block_on`; the baseline runs the raw
//!    open + lock + unlock inside the same `block_on`, so both pay the same
//!    (tiny) executor cost and the difference is packlock's async pipeline.
//! 4. `contended_64_tasks_x100`: 64 tokio tasks on a 2-worker multi-thread
//!    runtime each acquire one shared lock 100 times and bump a shared
//!    counter inside the critical section. The baseline is the naive way to
//!    do the same from async code without packlock: each task runs raw
//!    open + lock + bump + unlock + close inside `tokio::task::spawn_blocking`,
//!    so all 64 tasks queue in the kernel's `flock`. The counter is bumped
//!    with a separate load and store (not an atomic add), so any lapse in
//!    exclusion loses updates; every round asserts the total.
//!
//! After the groups, the bench prints `packlock / baseline` per scenario,
//! from the medians criterion wrote in this run
//! (`<target>/criterion/<group>/<function>/new/estimates.json`). In
//! `--test` / `--list` mode nothing is measured and the table is skipped.

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use criterion::{Criterion, SamplingMode};
use futures_lite::future;
use packlock::{PACK_LOCK_FILE_NAME, PackLock};
use tempfile::TempDir;

const OPEN_ACQUIRE_RELEASE: &str = "open_acquire_release";
const REUSE_ACQUIRE_RELEASE: &str = "reuse_acquire_release";
const ASYNC_OPEN_ACQUIRE_RELEASE: &str = "async_open_acquire_release";
const CONTENDED: &str = "contended_64_tasks_x100";

/// Scenario 4: concurrent tasks, and acquires per task per round.
const TASKS: usize = 64;
const ACQUIRES_PER_TASK: usize = 100;

/// Scenario groups in the order the ratio table lists them.
const SCENARIOS: [&str; 4] =
    [OPEN_ACQUIRE_RELEASE, REUSE_ACQUIRE_RELEASE, ASYNC_OPEN_ACQUIRE_RELEASE, CONTENDED];

fn main() {
    let started = SystemTime::now();
    // Defaults sized so the whole bench takes about a minute on two cores;
    // command-line options (`--measurement-time`, ...) still override them.
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();

    bench_open_acquire_release(&mut criterion);
    bench_reuse_acquire_release(&mut criterion);
    bench_async_open_acquire_release(&mut criterion);
    bench_contended(&mut criterion);

    criterion.final_summary();
    print_ratio_table(started);
}

// ---------------------------------------------------------------------------
// Scenarios
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
    group.finish();
}

fn bench_reuse_acquire_release(c: &mut Criterion) {
    let dir = temp_dir();
    // Two open file descriptions of one file; they never hold the lock at
    // the same time below, so they never wait for each other.
    let lock = PackLock::open(dir.path()).expect("open");
    let file = raw_open(&dir.path().join(PACK_LOCK_FILE_NAME));
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
    group.finish();
}

fn bench_contended(c: &mut Criterion) {
    let dir = temp_dir();
    let lock = Arc::new(PackLock::open(dir.path()).expect("open"));
    let raw_path: Arc<Path> = dir.path().join(PACK_LOCK_FILE_NAME).into();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut group = c.benchmark_group(CONTENDED);
    // One round is 6,400 acquires (milliseconds to a second): few, flat
    // samples keep the run short.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("packlock", |b| {
        b.iter(|| assert_no_lost_update(runtime.block_on(packlock_round(Arc::clone(&lock)))));
    });
    group.bench_function("baseline", |b| {
        b.iter(|| assert_no_lost_update(runtime.block_on(baseline_round(Arc::clone(&raw_path)))));
    });
    group.finish();
}

/// One round of scenario 4 with packlock; returns the counter.
async fn packlock_round(lock: Arc<PackLock>) -> usize {
    let counter = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (lock, counter) = (Arc::clone(&lock), Arc::clone(&counter));
            tokio::spawn(async move {
                for _ in 0..ACQUIRES_PER_TASK {
                    let hold = lock.acquire_async().await.expect("acquire");
                    bump(&counter);
                    drop(hold);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    counter.load(Ordering::Acquire)
}

/// One round of scenario 4 done naively: raw blocking `flock` calls moved
/// onto tokio's blocking pool. Returns the counter.
async fn baseline_round(path: Arc<Path>) -> usize {
    let counter = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (path, counter) = (Arc::clone(&path), Arc::clone(&counter));
            tokio::spawn(async move {
                for _ in 0..ACQUIRES_PER_TASK {
                    let (path, counter) = (Arc::clone(&path), Arc::clone(&counter));
                    tokio::task::spawn_blocking(move || {
                        let file = raw_open(&path);
                        file.lock().expect("lock");
                        bump(&counter);
                        file.unlock().expect("unlock");
                    })
                    .await
                    .expect("blocking task");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    counter.load(Ordering::Acquire)
}

/// The critical section: a read-modify-write that is only correct under
/// mutual exclusion (a separate load and store, not `fetch_add`).
fn bump(counter: &AtomicUsize) {
    let seen = counter.load(Ordering::Acquire);
    counter.store(seen + 1, Ordering::Release);
}

fn assert_no_lost_update(total: usize) {
    assert_eq!(total, TASKS * ACQUIRES_PER_TASK, "lost updates: exclusion failed");
}

// ---------------------------------------------------------------------------
// Raw std::fs baseline
// ---------------------------------------------------------------------------

fn raw_open(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open lock file")
}

fn raw_open_lock_unlock(path: &Path) {
    let file = raw_open(path);
    file.lock().expect("lock");
    file.unlock().expect("unlock");
    drop(black_box(file));
}

fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

// ---------------------------------------------------------------------------
// Ratio table, from the estimates criterion wrote in this run
// ---------------------------------------------------------------------------

fn print_ratio_table(started: SystemTime) {
    let listing_or_testing =
        std::env::args().any(|arg| matches!(arg.as_str(), "--list" | "--test" | "--profile-time"));
    if listing_or_testing {
        return;
    }
    let root = criterion_home();
    let rows: Vec<_> = SCENARIOS
        .iter()
        .filter_map(|&group| {
            let packlock = median_ns(&root, group, "packlock", started)?;
            let baseline = median_ns(&root, group, "baseline", started)?;
            Some((group, packlock, baseline))
        })
        .collect();
    if rows.is_empty() {
        println!("\n(no estimates measured in this run under {}: no ratio table)", root.display());
        return;
    }
    println!("\nMedian time per iteration, packlock vs baseline (this run):\n");
    println!("| scenario | packlock | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    for (group, packlock, baseline) in rows {
        println!(
            "| {group} | {} | {} | {:.2}x |",
            format_ns(packlock),
            format_ns(baseline),
            packlock / baseline
        );
    }
}

/// Where criterion writes its results, found the way criterion finds it:
/// `$CRITERION_HOME`, else `<target dir>/criterion`. The target directory is
/// `$CARGO_TARGET_DIR`, else the nearest ancestor of this executable that
/// holds cargo's `CACHEDIR.TAG`.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or_else(|| {
        let exe = std::env::current_exe().ok()?;
        exe.ancestors().find(|dir| dir.join("CACHEDIR.TAG").is_file()).map(Path::to_path_buf)
    });
    target.unwrap_or_else(|| PathBuf::from("target")).join("criterion")
}

/// The median point estimate (ns per iteration) of `group/function`, if
/// criterion wrote it during this run (older files are ignored).
fn median_ns(root: &Path, group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let path = root.join(group).join(function).join("new").join("estimates.json");
    let modified = fs::metadata(&path).ok()?.modified().ok()?;
    // Allow for coarse file-system timestamps.
    if modified + Duration::from_secs(2) < since {
        return None;
    }
    parse_median(&fs::read_to_string(path).ok()?)
}

/// Finds `"median":{...,"point_estimate":X` in criterion's compact JSON.
fn parse_median(json: &str) -> Option<f64> {
    const KEY: &str = "\"point_estimate\":";
    let median = &json[json.find("\"median\"")?..];
    let value = &median[median.find(KEY)? + KEY.len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

fn format_ns(ns: f64) -> String {
    match ns {
        ns if ns >= 1e9 => format!("{:.3} s", ns / 1e9),
        ns if ns >= 1e6 => format!("{:.3} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.3} µs", ns / 1e3),
        ns => format!("{ns:.1} ns"),
    }
}
