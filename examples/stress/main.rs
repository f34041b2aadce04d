//! `stress`: processes × threads × async tasks hammering a few lock files
//! while the lock files are deleted and replaced under them and workers are
//! killed with `kill -9`; afterwards an independent verifier checks that
//! exclusion held, that no update was lost and that no lock was leaked.
//!
//! ```text
//! cargo run --release --example stress -- --seed 42 --duration 60 \
//!     [--processes P] [--threads T] [--tasks K] [--files S] [--keep]
//! cargo run --release --example stress --features postgres -- --postgres [CONN] \
//!     --seed 42 --duration 30 [...]
//! ```
//!
//! Unix only (it reads inode numbers; on Linux it also reads `/proc`).
//! Built without the `postgres` feature, it has no server mode.
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
//!   Server mode adds `coordinator/server.rs` (the server, the chaos on
//!   its sessions, the leak check), `tests/common/proxy.rs` (the cutting
//!   proxy), `coordinator/fences.rs` (the fence checks), `storage.rs` (the
//!   fenced storage) and `worker/fenced.rs` (a worker's server locks and
//!   sections).
//! * Shared by both: `layout.rs` (the working directory), `rng.rs` (the
//!   seeded PRNG), `mode.rs`, `stats.rs` (a worker's counters and their log
//!   lines), `counter.rs` (the per-inode counters) and `procfs.rs` (what
//!   `/proc` tells).
//!
//! # Server mode
//!
//! With `--postgres` (feature `postgres`) the workers lock S **names** on a
//! PostgreSQL server instead of lock files: `--postgres` alone starts a
//! throwaway cluster (initdb and pg_ctl from the system's PostgreSQL, as
//! the `postgres` user when root, stopped at the end), `--postgres CONN`
//! uses the server of a keyword connection string (`host=... port=...
//! user=... dbname=...`; names unique to the run in its `packlock`
//! schema). The same threads and tasks take the same acquire flavours,
//! exclusive and shared; the chaos is `kill -9` of workers, cancellations,
//! timeouts and dropped futures, and **connection cuts**: the workers reach
//! the server through a loopback TCP proxy of the coordinator's, which cuts
//! a random connection (both sides at once) every 5–150 ms, and one time in
//! ten terminates a random worker backend with `pg_terminate_backend`
//! (psql) instead. Workers never reconnect by hand: the `LockServer` opens
//! a new session for the next operation. An operation failing because its
//! connection was cut counts as an expected server error.
//!
//! A cut holder's hold is lost, and its section may overlap the next
//! holder's, so each section writes its storage — a counter per name, in
//! `storage/` — only through a fence check: the storage remembers the
//! largest fence it has seen and rejects reads and writes with a smaller
//! one, under a `flock` of a guard file of its own. At the end of each
//! section the worker asks whether the hold was lost (`lost()` fired or
//! `validate()` fails). The verifier then checks: no overlap between
//! sections of holds that were not lost, no lost update among accepted
//! writes, exclusive fences unique and increasing in the order their holds
//! began, shared holds with a fence above every exclusive hold before
//! them, and no rejected access by a hold that was not lost; it reports the
//! stale accesses rejected (expected only when a cut hit a holder). The
//! leak check asks, with every worker idle, that each name be free for a
//! fresh `try_acquire` and that no worker session hold or wait for an
//! advisory lock (`pg_locks`).
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
//! and a leaked lock. In server mode the storage also stops checking
//! fences, and the run must fail with duplicate and disordered fences too.

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

/// Stress packlock with kills, cancellations and replaced lock files (or,
/// with --postgres, cut server connections), then verify exclusion
/// independently.
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
