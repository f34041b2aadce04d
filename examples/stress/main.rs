//! `stress`: processes × threads × async tasks hammering a few lock files
//! while the lock files are deleted and replaced under them and workers are
//! killed with `kill -9`; afterwards an independent verifier checks that
//! exclusion held, that no update was lost and that no lock was leaked.
//!
//! ```text
//! cargo run --release --example stress -- --seed 42 --duration 60 \
//!     [--processes P] [--threads T] [--tasks K] [--files S] [--keep]
//! ```
//!
//! Unix only (it reads inode numbers; on Linux it also reads `/proc`).
//!
//! # Roles
//!
//! Run without `--worker`, the program is the **coordinator**. It makes a
//! temporary directory holding S lock files (`packs/p<i>/.pack-lock`) and
//! starts P **worker** processes by running its own executable again with
//! the hidden `--worker SLOT --generation G` flags. It talks to each worker
//! over its stdin and stdout: the line `stop` asks it to finish its current
//! acquire and hold and go idle (it answers `idle`); closing stdin makes it
//! exit.
//!
//! # Parts
//!
//! * `worker.rs`: a worker process: its threads and tasks, the sampler, the
//!   log and the line protocol; `worker/rounds.rs` acquires every way, and
//!   `worker/section.rs` is what a critical section does and logs.
//! * `coordinator.rs`: a run from start to exit code, in the order it
//!   happens; `coordinator/fleet.rs` starts, kills, stops and reaps the
//!   workers, `coordinator/chaos.rs` kills them and disturbs the lock files
//!   during the run, `coordinator/leaks.rs` looks for leaked locks,
//!   `coordinator/verify.rs` checks the logs and counters, and
//!   `coordinator/report.rs` prints the summary and decides pass or fail.
//! * Shared by both: `layout.rs` (the working directory), `rng.rs` (the
//!   seeded PRNG), `mode.rs`, `stats.rs` (a worker's counters and their log
//!   lines), `counter.rs` (the per-inode counters) and `procfs.rs` (what
//!   `/proc` tells).
//!
//! # Output and exit code
//!
//! A summary table: the parameters, acquisitions by flavour and mode,
//! busy retries, timeouts, cancellations, dropped futures, kills and file
//! disturbances, invalidated intervals, overlaps, lost updates, dirty reads,
//! leaked locks, peak threads and peak threads parked in `flock` per
//! process. Exit code 0 only if overlaps, lost updates, dirty reads, leaked
//! locks, stuck workers, worker failures and unexpected errors are all zero,
//! no process ever had more than one thread parked in `flock` per lock file,
//! and something was verified at all; 1 otherwise (the working directory,
//! with every log, is then kept and its path printed); 2 for usage errors.
//!
//! `--sabotage` checks the checker: a fifth of the shared holds then write
//! the counter as if they were exclusive, and workers forget a hold when
//! they stop; the run must fail with overlaps, lost updates, dirty reads
//! and a leaked lock.

// Off Unix only `main` is compiled in; the rest is Unix-only machinery.
#![cfg_attr(not(unix), allow(dead_code))]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[cfg(unix)]
mod coordinator;
#[cfg(unix)]
mod counter;
mod layout;
mod mode;
mod procfs;
mod rng;
mod stats;
#[cfg(all(unix, feature = "postgres"))]
mod storage;
#[cfg(unix)]
mod worker;

/// Stress packlock with kills, cancellations and replaced lock files, then
/// verify exclusion independently.
#[derive(Debug, Clone, Parser)]
#[command(name = "stress")]
struct Args {
    /// Seed for every random choice
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// How long to stress, in seconds (fractions allowed)
    #[arg(long, default_value_t = 60.0)]
    duration: f64,

    /// Worker processes
    #[arg(long, default_value_t = 4)]
    processes: usize,

    /// Threads per worker, using the sync acquires
    #[arg(long, default_value_t = 3)]
    threads: usize,

    /// Async tasks per worker, using the async acquires
    #[arg(long, default_value_t = 6)]
    tasks: usize,

    /// Lock files (lock names in server mode)
    #[arg(long, default_value_t = 4)]
    files: usize,

    /// Server mode (feature `postgres`): lock names on a PostgreSQL server
    /// instead of lock files. Alone, a throwaway cluster is started (initdb,
    /// pg_ctl); with a keyword connection string, that server is used. The
    /// workers connect through a proxy that cuts connections.
    #[arg(long, value_name = "CONN")]
    postgres: Option<Option<String>>,

    /// Keep the working directory (logs, counters) even when the run passes
    #[arg(long)]
    keep: bool,

    /// Internal: run as the worker in this slot
    #[arg(long, hide = true)]
    worker: Option<usize>,

    /// Internal: the worker's generation (restarts of its slot)
    #[arg(long, hide = true, default_value_t = 0)]
    generation: u64,

    /// Internal: the coordinator's working directory
    #[arg(long, hide = true)]
    dir: Option<std::path::PathBuf>,

    /// Self-test of the verifier: a fifth of the shared holds write the
    /// counter as if exclusive, and workers leak a hold when they stop; the
    /// run must fail
    #[arg(long)]
    sabotage: bool,
}

impl Args {
    /// Rejects parameters that make no run.
    fn check(&self) -> Result<(), String> {
        // `run` adds the duration to `Instant::now()`: it must fit.
        let fits = Duration::try_from_secs_f64(self.duration)
            .ok()
            .and_then(|duration| std::time::Instant::now().checked_add(duration));
        if !(self.duration > 0.0 && fits.is_some()) {
            return Err(format!(
                "--duration must be a positive number of seconds, not {}",
                self.duration
            ));
        }
        if self.processes == 0 || self.files == 0 {
            return Err("--processes and --files must be at least 1".to_string());
        }
        if self.threads + self.tasks == 0 {
            return Err("a worker needs at least one thread or task".to_string());
        }
        if cfg!(not(feature = "postgres")) && self.postgres.is_some() {
            return Err("--postgres needs the postgres feature: \
                 cargo run --release --example stress --features postgres -- --postgres"
                .to_string());
        }
        Ok(())
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }
}

#[cfg(unix)]
fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(problem) = args.check() {
        eprintln!("stress: {problem}");
        return ExitCode::from(2);
    }
    match args.worker {
        Some(slot) => worker::run(&args, slot),
        None => coordinator::run(&args),
    }
}

#[cfg(not(unix))]
fn main() -> ExitCode {
    let _ = Args::parse();
    eprintln!("stress: runs on Unix only (it identifies lock files by inode)");
    ExitCode::from(2)
}
