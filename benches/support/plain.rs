//! The rows that do not fit criterion's model of "time a closure many
//! times", measured in plain code after the criterion groups:
//!
//! * `handoff_sync` / `handoff_async`: cross-process hand-off latency. A
//!   child process (this bench binary again, see [`child`](super::child))
//!   holds the lock file; a waiter of this process — packlock or its
//!   baseline — is started and left until `/proc/locks` shows it parked in
//!   the kernel's `flock` wait; then the child is told to release. Each
//!   hand-off is timed two ways:
//!   - **from the release**: the child reads the wall clock
//!     (`CLOCK_REALTIME`, one clock for all processes) just before its
//!     unlock call, the waiter reads it as soon as its acquire returns;
//!   - **from the command**: `Instant`s in this process, from just before
//!     the `unlock` command is written to the child's stdin until the
//!     acquire returns. This adds the pipe write and the child's wake-up,
//!     the same for both designs, and needs no shared clock.
//!
//!   The designs alternate hand-off by hand-off, so drift in the machine's
//!   load hits both alike. The table reports percentiles over N hand-offs.
//!   The async row has a third waiter: the naive design plus the identity
//!   `stat(path)` packlock makes once the kernel grants the lock, which
//!   shows how much of the gap to the naive design that check is.
//! * `cancelled_acquires`: while the child holds the lock, N async acquires
//!   are cancelled one after the other (each dropped by a
//!   `tokio::time::timeout` after it has started waiting); threads of this
//!   process (`/proc/self/task`) before and after.
//! * `distinct_files`: N distinct lock files (created beforehand), each
//!   opened, locked and dropped — raw, then with packlock, then with
//!   packlock again; resident memory (`VmRSS`) and open descriptors before
//!   and after each pass. A registry that kept an entry (a map slot and an
//!   allocation, ~100 bytes) per file ever locked would show as RSS growth
//!   proportional to N (megabytes here); the second packlock pass shows
//!   whether any growth is one-off (allocator arenas) or per file. (That
//!   the registry empties exactly is a unit test in `src/registry.rs`.)
//!
//! Counts come from environment variables (`PACKLOCK_BENCH_HANDOFFS`,
//! `PACKLOCK_BENCH_CANCELS`, `PACKLOCK_BENCH_FILES`); `--test` runs each row
//! with tiny counts.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use packlock::{PACK_LOCK_FILE_NAME, PackLock};

use super::child::{Holder, wall_clock_ns};
use super::naive::NaiveLock;
use super::proc::{
    fd_count, inode, rss_kib, thread_count, wait_until_no_waiter, wait_until_parked,
};
use super::report::Row;
use super::{RunMode, env_count, format_ns, raw_open, raw_open_lock_unlock, temp_dir};

pub const HANDOFF_SYNC: &str = "handoff_sync";
pub const HANDOFF_ASYNC: &str = "handoff_async";
pub const CANCELLED: &str = "cancelled_acquires";
pub const DISTINCT_FILES: &str = "distinct_files";

/// How long a cancelled acquire waits before it is dropped: long enough to
/// be waiting (queued, or parked in the kernel) when it is.
const CANCEL_AFTER: Duration = Duration::from_millis(2);

struct Counts {
    handoffs: usize,
    warmup_handoffs: usize,
    cancels: usize,
    files: usize,
}

impl Counts {
    fn for_mode(mode: RunMode) -> Self {
        if mode == RunMode::Test {
            return Self { handoffs: 3, warmup_handoffs: 1, cancels: 5, files: 200 };
        }
        Self {
            handoffs: env_count("PACKLOCK_BENCH_HANDOFFS", 400),
            warmup_handoffs: 20,
            cancels: env_count("PACKLOCK_BENCH_CANCELS", 200),
            files: env_count("PACKLOCK_BENCH_FILES", 100_000),
        }
    }
}

/// Runs the rows selected by `filter` (all without one) and returns their
/// lines of the results table, in table order; prints the details.
pub fn run(mode: RunMode, filter: Option<&str>) -> Vec<Row> {
    let counts = Counts::for_mode(mode);
    let selected = |name: &str| filter.is_none_or(|f| name.contains(f));
    let mut rows = Vec::new();

    let needs_holder = [HANDOFF_SYNC, HANDOFF_ASYNC, CANCELLED].iter().any(|name| selected(name));
    if needs_holder {
        let dir = temp_dir();
        let path = dir.path().join(PACK_LOCK_FILE_NAME);
        drop(raw_open(&path));
        let mut holder = Holder::spawn(&path);
        // Cancellations first: they need the `blocking` pool as the
        // criterion rows left it, without idle threads from the async
        // hand-offs.
        let cancelled =
            selected(CANCELLED).then(|| cancelled_acquires(&path, &mut holder, &counts));
        if selected(HANDOFF_SYNC) {
            rows.push(handoff_sync(&path, &mut holder, &counts));
        }
        if selected(HANDOFF_ASYNC) {
            rows.push(handoff_async(&path, &mut holder, &counts));
        }
        rows.extend(cancelled);
    }
    if selected(DISTINCT_FILES) {
        rows.push(distinct_files(&counts));
    }
    rows
}

// ---------------------------------------------------------------------------
// Hand-offs
// ---------------------------------------------------------------------------

/// When a waiter's acquire returned, on both clocks.
struct Stamp {
    instant: Instant,
    wall_ns: i128,
}

impl Stamp {
    fn now() -> Self {
        Self { instant: Instant::now(), wall_ns: wall_clock_ns() }
    }
}

/// Something that, once started, acquires the lock (waiting as long as it
/// takes), stamps the moment it has it, releases and reports the stamp.
struct Waiter {
    name: &'static str,
    start: Box<dyn FnMut()>,
    done: Receiver<Stamp>,
}

/// A waiter on its own thread, acquiring with `acquire` (whose result is
/// the hold, released by dropping it).
fn thread_waiter<H>(name: &'static str, mut acquire: impl FnMut() -> H + Send + 'static) -> Waiter {
    let (go, gone) = mpsc::channel::<()>();
    let (report, done) = mpsc::channel();
    std::thread::spawn(move || {
        for () in gone {
            let hold = acquire();
            let stamp = Stamp::now();
            drop(hold);
            if report.send(stamp).is_err() {
                break;
            }
        }
    });
    Waiter { name, start: Box::new(move || go.send(()).expect("waiter thread")), done }
}

/// A waiter that spawns a tokio task running the future `acquire` makes.
fn task_waiter<F, H>(
    name: &'static str,
    runtime: tokio::runtime::Handle,
    acquire: impl Fn() -> F + 'static,
) -> Waiter
where
    F: Future<Output = H> + Send + 'static,
    H: Send + 'static,
{
    let (report, done) = mpsc::channel();
    let start = move || {
        let (acquiring, report) = (acquire(), report.clone());
        runtime.spawn(async move {
            let hold = acquiring.await;
            let stamp = Stamp::now();
            drop(hold);
            let _ = report.send(stamp);
        });
    };
    Waiter { name, start: Box::new(start), done }
}

/// Hand-off latencies of one waiter, in ns.
#[derive(Default)]
struct Latencies {
    from_release: Vec<f64>,
    from_command: Vec<f64>,
}

/// `counts.handoffs` hand-offs from the child to each waiter in turn
/// (after `counts.warmup_handoffs` unrecorded ones); the order alternates
/// round by round.
fn measure_handoffs(
    path: &Path,
    holder: &mut Holder,
    waiters: &mut [Waiter],
    counts: &Counts,
) -> Vec<Latencies> {
    let ino = inode(path);
    let mut latencies: Vec<Latencies> = waiters.iter().map(|_| Latencies::default()).collect();
    for round in 0..counts.warmup_handoffs + counts.handoffs {
        for k in 0..waiters.len() {
            let i = if round % 2 == 0 { k } else { waiters.len() - 1 - k };
            holder.lock();
            (waiters[i].start)();
            wait_until_parked(ino);
            let commanded = holder.release();
            let got = waiters[i].done.recv().expect("waiter report");
            let released = holder.released_at();
            if round >= counts.warmup_handoffs {
                let from_release = (got.wall_ns - released) as f64;
                let from_command = got.instant.duration_since(commanded).as_nanos() as f64;
                latencies[i].from_release.push(from_release);
                latencies[i].from_command.push(from_command);
            }
        }
    }
    for latencies in &mut latencies {
        latencies.from_release.sort_by(f64::total_cmp);
        latencies.from_command.sort_by(f64::total_cmp);
    }
    latencies
}

/// The `q` quantile (0..=1) of sorted `values` (nearest rank).
fn quantile(values: &[f64], q: f64) -> f64 {
    let rank = ((values.len() - 1) as f64 * q).round() as usize;
    values[rank]
}

fn handoff_sync(path: &Path, holder: &mut Holder, counts: &Counts) -> Row {
    let lock = PackLock::open_file(path).expect("open");
    let file = Arc::new(raw_open(path));
    let mut waiters = [
        thread_waiter("packlock `acquire()`", move || lock.acquire().expect("acquire")),
        thread_waiter("raw thread in `File::lock`", move || {
            file.lock().expect("lock");
            Unlocker(Arc::clone(&file))
        }),
    ];
    let latencies = measure_handoffs(path, holder, &mut waiters, counts);
    print_handoffs("cross-process hand-off, sync waiter", &waiters, &latencies, counts);
    handoff_row(
        "cross-process hand-off, sync waiter: child releases, `acquire()` returns (p50)",
        "raw thread parked in `File::lock`",
        &latencies,
        1.5,
    )
}

fn handoff_async(path: &Path, holder: &mut Holder, counts: &Counts) -> Row {
    let runtime = super::tokio_runtime();
    let lock = Arc::new(PackLock::open_file(path).expect("open"));
    let naive = Arc::new(NaiveLock::new(path));
    let mut waiters = [
        task_waiter("packlock `acquire_async()`", runtime.handle().clone(), move || {
            let lock = Arc::clone(&lock);
            async move { lock.acquire_async().await.expect("acquire") }
        }),
        task_waiter("naive (tokio mutex + spawn_blocking)", runtime.handle().clone(), {
            let naive = Arc::clone(&naive);
            move || {
                let naive = Arc::clone(&naive);
                async move { naive.acquire().await }
            }
        }),
        // The naive design plus the identity check packlock makes once the
        // kernel grants the lock.
        task_waiter("naive + `stat(path)` after the grant", runtime.handle().clone(), {
            let path = path.to_path_buf();
            move || {
                let (naive, path) = (Arc::clone(&naive), path.clone());
                async move {
                    let hold = naive.acquire().await;
                    std::hint::black_box(std::fs::metadata(&path).expect("stat"));
                    hold
                }
            }
        }),
    ];
    let latencies = measure_handoffs(path, holder, &mut waiters, counts);
    print_handoffs(
        "cross-process hand-off, async waiter (tokio, 2 workers)",
        &waiters,
        &latencies,
        counts,
    );
    handoff_row(
        "cross-process hand-off, async waiter: `acquire_async()` on tokio (p50)",
        "naive design",
        &latencies,
        1.0,
    )
}

/// Unlocks a raw file when dropped.
struct Unlocker(Arc<File>);

impl Drop for Unlocker {
    fn drop(&mut self) {
        self.0.unlock().expect("unlock");
    }
}

/// The row for packlock (the first waiter) against the baseline (the
/// second); a third waiter, if any, is the baseline plus packlock's
/// identity check, named in the baseline cell with packlock's ratio to it.
fn handoff_row(scenario: &str, baseline: &str, latencies: &[Latencies], at_most: f64) -> Row {
    let [packlock, base, checked @ ..] = latencies else { unreachable!("packlock and a baseline") };
    let p50 = |l: &Latencies| quantile(&l.from_release, 0.5);
    let cell = |l: &Latencies| {
        format!("{} (p90 {})", format_ns(p50(l)), format_ns(quantile(&l.from_release, 0.9)))
    };
    let checked = checked.first().map_or(String::new(), |checked| {
        let (at, ratio) = (format_ns(p50(checked)), p50(packlock) / p50(checked));
        format!("; plus packlock's identity `stat`: {at} (packlock {ratio:.2}x of it)")
    });
    Row::ratio(
        scenario,
        cell(packlock),
        format!("{baseline}: {}{checked}", cell(base)),
        p50(packlock) / p50(base),
        Some(at_most),
    )
}

fn print_handoffs(title: &str, waiters: &[Waiter], latencies: &[Latencies], counts: &Counts) {
    println!(
        "\n{title}: {} hand-offs each (after {} warm-up)\n",
        counts.handoffs, counts.warmup_handoffs
    );
    println!("| waiter | measured from | p10 | p50 | p90 | p99 |");
    println!("|---|---|---:|---:|---:|---:|");
    for (waiter, latencies) in waiters.iter().zip(latencies) {
        for (from, values) in [
            ("holder's unlock call", &latencies.from_release),
            ("`unlock` command to the child", &latencies.from_command),
        ] {
            let [p10, p50, p90, p99] =
                [0.1, 0.5, 0.9, 0.99].map(|q| format_ns(quantile(values, q)));
            println!("| {} | {from} | {p10} | {p50} | {p90} | {p99} |", waiter.name);
        }
    }
    let Some((first, others)) = latencies.split_first() else { return };
    println!();
    for (waiter, other) in waiters[1..].iter().zip(others) {
        let ratio = |pick: fn(&Latencies) -> &Vec<f64>| {
            quantile(pick(first), 0.5) / quantile(pick(other), 0.5)
        };
        println!(
            "p50 ratio {} / {}: {:.2}x from the unlock call, {:.2}x from the command",
            waiters[0].name,
            waiter.name,
            ratio(|l| &l.from_release),
            ratio(|l| &l.from_command),
        );
    }
}

// ---------------------------------------------------------------------------
// Cancelled acquires
// ---------------------------------------------------------------------------

/// Threads of this process before and after the cancellations.
struct ThreadCounts {
    before: Option<usize>,
    after: Option<usize>,
}

impl ThreadCounts {
    fn growth(&self) -> Option<i64> {
        Some(self.after? as i64 - self.before? as i64)
    }

    fn cell(&self) -> String {
        match (self.before, self.after, self.growth()) {
            (Some(before), Some(after), Some(growth)) => {
                let threads = if growth.abs() == 1 { "thread" } else { "threads" };
                format!("{growth:+} {threads} ({before} → {after})")
            }
            _ => "n/a (no /proc/self/task)".to_string(),
        }
    }
}

fn cancelled_acquires(path: &Path, holder: &mut Holder, counts: &Counts) -> Row {
    holder.lock();
    let lock = Arc::new(PackLock::open_file(path).expect("open"));
    let packlock = count_threads_around_cancels(counts.cancels, move || {
        let lock = Arc::clone(&lock);
        async move { drop(lock.acquire_async().await.expect("acquire")) }
    });
    let naive = Arc::new(NaiveLock::new(path));
    let baseline = count_threads_around_cancels(counts.cancels, move || {
        let naive = Arc::clone(&naive);
        async move { drop(naive.acquire().await) }
    });
    // The child still holds the lock: let it go, so the parked threads of
    // both designs get it, release it and end.
    holder.release();
    holder.released_at();
    wait_until_no_waiter(inode(path));

    println!(
        "\n{} async acquires cancelled while another process holds the lock \
         (threads of this process, /proc/self/task):\n",
        counts.cancels
    );
    println!("| design | threads before | threads after | growth |");
    println!("|---|---:|---:|---:|");
    for (name, threads) in [("packlock", &packlock), ("naive", &baseline)] {
        let show = |n: Option<usize>| n.map_or_else(|| "n/a".to_string(), |n| n.to_string());
        let growth = threads.growth().map_or_else(|| "n/a".to_string(), |g| format!("{g:+}"));
        println!("| {name} | {} | {} | {growth} |", show(threads.before), show(threads.after));
    }

    Row {
        scenario: format!(
            "{} `acquire_async()`s cancelled while another process holds the lock",
            counts.cancels
        ),
        packlock: packlock.cell(),
        baseline: format!("naive: {}", baseline.cell()),
        ratio: None,
        target: "<= +2 threads".to_string(),
        met: packlock.growth().map(|growth| growth <= 2),
    }
}

/// On a fresh 2-worker tokio runtime, starts `cancels` acquires one after
/// the other, each dropped after [`CANCEL_AFTER`]; counts threads before
/// and after (once things settled). The runtime is shut down afterwards
/// without waiting for blocking threads still parked.
fn count_threads_around_cancels<F>(cancels: usize, acquire: impl Fn() -> F) -> ThreadCounts
where
    F: Future<Output = ()>,
{
    let runtime = super::tokio_runtime();
    runtime.block_on(tokio::task::yield_now());
    // Let threads of earlier runtimes finish exiting.
    std::thread::sleep(Duration::from_millis(100));
    let before = thread_count();
    runtime.block_on(async {
        for _ in 0..cancels {
            let cancelled = tokio::time::timeout(CANCEL_AFTER, acquire()).await.is_err();
            assert!(cancelled, "an acquire succeeded while another process held the lock");
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let after = thread_count();
    runtime.shutdown_background();
    ThreadCounts { before, after }
}

// ---------------------------------------------------------------------------
// Distinct lock files
// ---------------------------------------------------------------------------

/// What one pass over distinct files left behind.
struct Pass {
    rss_kib: Option<i64>,
    fds: Option<i64>,
    elapsed: Duration,
}

impl Pass {
    fn rss_cell(&self) -> String {
        self.rss_kib
            .map_or_else(|| "n/a".to_string(), |kib| format!("{:+.2} MiB", kib as f64 / 1024.0))
    }
}

/// Opens, locks and drops each of `files` with `each`.
fn files_pass(files: &[PathBuf], each: impl Fn(&Path)) -> Pass {
    let (rss_before, fds_before) = (rss_kib(), fd_count());
    let started = Instant::now();
    for path in files {
        each(path);
    }
    let elapsed = started.elapsed();
    let growth = |before: Option<usize>, after: Option<usize>| Some(after? as i64 - before? as i64);
    let rss_kib = growth(rss_before, rss_kib());
    let fds = growth(fds_before, fd_count());
    Pass { rss_kib, fds, elapsed }
}

fn distinct_files(counts: &Counts) -> Row {
    let n = counts.files;
    // The files are created once, before the passes, and deleted once,
    // after them: on ext4, creating a file costs time proportional to the
    // inodes deleted in the last ~30 s (`recently_deleted` in
    // `__ext4_new_inode`), which would swamp what is measured here.
    let dir = temp_dir();
    let files: Vec<PathBuf> = (0..n).map(|i| dir.path().join(format!("{i}.lock"))).collect();
    let created = Instant::now();
    files.iter().for_each(|path| drop(raw_open(path)));
    let created = created.elapsed();
    let packlock_once = |path: &Path| {
        let lock = PackLock::open_file(path).expect("open");
        drop(lock.acquire().expect("acquire"));
    };
    let raw = files_pass(&files, raw_open_lock_unlock);
    let first = files_pass(&files, packlock_once);
    let second = files_pass(&files, packlock_once);
    drop(dir);

    println!(
        "\n{n} distinct lock files (created beforehand in {:.1} s) opened, locked and dropped, \
         one pass after the other:\n",
        created.as_secs_f64()
    );
    println!("| pass | RSS growth | open fds growth | time per file |");
    println!("|---|---:|---:|---:|");
    for (name, pass) in [("raw std::fs", &raw), ("packlock", &first), ("packlock again", &second)] {
        let fds = pass.fds.map_or_else(|| "n/a".to_string(), |fds| format!("{fds:+}"));
        let per_file = format_ns(pass.elapsed.as_nanos() as f64 / n.max(1) as f64);
        println!("| {name} | {} | {fds} | {per_file} |", pass.rss_cell());
    }

    // Per-file state kept by a registry would be at least a map entry and
    // a slot allocation (~100 bytes) per file: megabytes here.
    const RSS_LIMIT_KIB: i64 = 10 * 1024;
    let no_fds_kept = [&first, &second].iter().all(|p| p.fds == Some(0));
    let rss_ok = [&first, &second].iter().all(|p| p.rss_kib.is_some_and(|kib| kib < RSS_LIMIT_KIB));
    let verdict = if no_fds_kept && rss_ok { "nothing kept" } else { "memory kept per file" };
    Row {
        scenario: format!("{n} distinct lock files opened, locked, dropped"),
        packlock: format!("RSS {} (2nd pass {}), {verdict}", first.rss_cell(), second.rss_cell()),
        baseline: format!("raw `File`: RSS {}", raw.rss_cell()),
        ratio: None,
        target: "registry back to empty, RSS growth < 10 MiB".to_string(),
        met: Some(no_fds_kept && rss_ok),
    }
}
