//! What the `acquire` bench needs besides criterion: the baselines (raw
//! `std::fs` locking and the naive async design), the child process that
//! holds the lock in the cross-process rows, the rows measured in plain
//! code, and the report.

pub mod child;
pub mod naive;
pub mod plain;
pub mod proc;
pub mod report;

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::path::Path;

use tempfile::TempDir;

/// How the bench binary was asked to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// A real measurement run: full counts, tables, CSV.
    Measure,
    /// `--test` (CI's smoke run): every scenario once, with tiny counts.
    Test,
    /// `--list` or `--profile-time`: criterion's business only.
    CriterionOnly,
}

impl RunMode {
    pub fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        if args.iter().any(|a| a == "--list" || a.starts_with("--profile-time")) {
            RunMode::CriterionOnly
        } else if args.iter().any(|a| a == "--test") {
            RunMode::Test
        } else {
            RunMode::Measure
        }
    }
}

/// Criterion as every bench here runs it: defaults sized so that a whole
/// bench takes minutes on two cores; command-line options
/// (`--measurement-time`, ...) still override them.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .sample_size(50)
        .without_plots()
        .configure_from_args()
}

/// The benchmark filter given on the command line (`cargo bench -- FILTER`),
/// if any. Criterion treats it as a regular expression; the rows measured
/// in plain code only run when their name contains it as a substring.
pub fn name_filter() -> Option<String> {
    // Criterion options that take a value as the next argument.
    const WITH_VALUE: &[&str] = &[
        "-s",
        "--save-baseline",
        "-b",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "-c",
        "--color",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--profile-time",
        "--plotting-backend",
        "--output-format",
        "--format",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

/// A count from the environment variable `name`, else `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => {
            value.trim().parse().unwrap_or_else(|_| panic!("{name}={value:?}: not a count"))
        }
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------
// Raw std::fs baseline
// ---------------------------------------------------------------------------

/// Opens (creating) a lock file the way packlock does: read + write +
/// create, no truncate, close-on-exec (std's default).
pub fn raw_open(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open lock file")
}

pub fn raw_open_lock_unlock(path: &Path) {
    let file = raw_open(path);
    file.lock().expect("lock");
    file.unlock().expect("unlock");
    drop(black_box(file));
}

/// The system calls packlock makes for one uncontended open + acquire +
/// release, done raw: open (read-only, `O_NONBLOCK | O_NOCTTY`: no FIFO or
/// terminal can make it wait or take it over), `fstat` for the registry
/// key (and that it is a regular file), `getpid` for the opener, `getpid`
/// at acquire (a forked child must reopen), lock, `stat(path)` for the
/// identity check, `getpid` (a forked child must not unlock), unlock,
/// close.
pub fn floor_path_stat(path: &Path) {
    let file = open_never_waiting(path);
    black_box(file.metadata().expect("fstat"));
    black_box(std::process::id());
    black_box(std::process::id());
    file.lock().expect("lock");
    black_box(std::fs::metadata(path).expect("stat"));
    black_box(std::process::id());
    file.unlock().expect("unlock");
    drop(black_box(file));
}

/// The same with a cheaper identity check: one `fstat` after
/// locking (the registry key, and `nlink > 0`) instead of `fstat` and
/// `stat(path)`.
pub fn floor_fstat(path: &Path) {
    let file = open_never_waiting(path);
    black_box(std::process::id());
    black_box(std::process::id());
    file.lock().expect("lock");
    black_box(file.metadata().expect("fstat"));
    black_box(std::process::id());
    file.unlock().expect("unlock");
    drop(black_box(file));
}

/// Opens an existing lock file as packlock does when it writes nothing.
fn open_never_waiting(path: &Path) -> File {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NONBLOCK | libc::O_NOCTTY,
    );
    options.open(path).expect("open lock file")
}

pub fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Runs `task` on a tokio multi-thread runtime with two workers, the
/// configuration every async row uses.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Formats nanoseconds with a unit that keeps 3-4 significant digits.
pub fn format_ns(ns: f64) -> String {
    match ns.abs() {
        a if a >= 1e9 => format!("{:.3} s", ns / 1e9),
        a if a >= 1e6 => format!("{:.3} ms", ns / 1e6),
        a if a >= 1e3 => format!("{:.2} µs", ns / 1e3),
        _ => format!("{ns:.0} ns"),
    }
}
