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
//! # What a worker does
//!
//! T threads and K tasks (tokio, multi-threaded with 2 workers; half of the
//! tasks run inside `with_tier_scope`) loop until told to stop. Each round
//! picks a lock file, a mode (a quarter shared), a hold time (often zero,
//! else up to 3 ms), whether to use the process's long-lived `PackLock` or a
//! freshly opened one, and a way to acquire: threads use `acquire`,
//! `try_acquire` retried with short sleeps, or `acquire_timeout`; tasks use
//! `acquire_async`, `acquire_cancellable` with a token cancelled at a random
//! moment (sometimes before the call), `acquire_until` a timer,
//! `acquire_timeout_with` a timer, a poll-once-then-drop of `acquire_async`,
//! or `acquire_async` under `tokio::time::timeout` (dropped when it fires).
//! Every random choice comes from a small inline PRNG seeded from `--seed`,
//! the worker's slot and generation and the thread's or task's index, so a
//! seed fixes the mix of operations and faults; the interleaving, and with
//! it what each operation meets, is up to the machine.
//!
//! Inside each critical section the worker:
//!
//! 1. stamps the start (`SystemTime`, nanoseconds since the Unix epoch:
//!    `CLOCK_REALTIME`, one clock for every process of the machine);
//! 2. identifies the locked file: `stat` of the path, then
//!    `hold.validate()`; if the path still names the locked file, the inode
//!    from the `stat` is the locked one (the coordinator only ever puts new
//!    files at a lock path, never an old one back);
//! 3. opens the counter of that inode (`counters/<inode>`) and reads it;
//! 4. holds for the chosen time;
//! 5. exclusive: writes the counter + 1 (a fixed-width in-place write, so a
//!    `kill -9` cannot leave half a number); shared: reads it again;
//! 6. stamps the end, then calls `hold.validate()` again: if the lock file
//!    was deleted or replaced meanwhile, the section is **invalidated**
//!    (packlock documents that a holder whose file is replaced no longer
//!    excludes newcomers);
//! 7. releases, and appends one line to its own log
//!    (`logs/w<slot>-g<generation>.log`):
//!    `H file mode inode start end valid extra`, where `extra` is the
//!    counter value seen by an exclusive section, or whether a shared
//!    section saw the counter change.
//!
//! The log is buffered and flushed every 50 ms together with a line of
//! cumulative counters (acquisitions by flavour and mode, busy retries,
//! timeouts, cancellations, dropped futures, errors, peaks). A sampler thread
//! records the process's peak thread count (`/proc/self/task`) and its peak
//! number of waiters in the kernel (`->` lines of `/proc/locks` with its
//! pid: one per thread parked in `flock`), in total and per lock file —
//! packlock promises at most one per lock file per process. A `kill -9`
//! loses at most the last 50 ms of lines; a line cut short is ignored by the
//! verifier.
//!
//! # What the coordinator does meanwhile
//!
//! For `--duration` seconds it kills a random worker (`Child::kill`, which
//! is SIGKILL) every 0.2–2 s and starts a new generation in its slot, and
//! every 5–150 ms renames a new file over a random lock file (60%), deletes
//! it (25%) or renames it away (15%) — whether or not someone holds or waits
//! for it. A worker that exits on its own counts as a worker failure.
//!
//! Then it stops the workers (`stop`, wait for `idle`; a worker that does
//! not go idle within 15 s is stuck — an acquire hangs — and is killed) and,
//! while they are still alive and idle, checks for **leaked locks**: for
//! every lock file a fresh `PackLock` must get `try_acquire` and, on Linux,
//! `/proc/locks` must show no holder or waiter of the file within 3 s (a
//! pool job left parked by a cancelled acquire must let go once it gets the
//! lock), and no worker may hold or wait for any other file (a lock on a
//! deleted or replaced file). Then it closes their stdin and reaps them.
//!
//! # Verification
//!
//! From all logs of all generations:
//!
//! * **Overlaps by path**: per lock file, no exclusive interval may overlap
//!   any other interval (exclusive or shared), among intervals that were
//!   not invalidated. A valid interval's file was at the path from before
//!   the acquire returned until after the end stamp, so two valid intervals
//!   of one path that overlap were on one file, which `flock` excludes.
//! * **Overlaps by inode**: the same check per identified inode, now
//!   including invalidated intervals: whatever happened to the path,
//!   holders of one file must exclude each other.
//! * **Lost updates**: per inode, the counter values seen by exclusive
//!   sections must all differ (two sections that both saw `n` both wrote
//!   `n + 1`: one update is lost), and the counter's final value must be
//!   past the highest value seen. Counting per inode rather than per path
//!   keeps a replaced holder's late write, which is legitimate, out of the
//!   new file's count. A worker killed inside a section either wrote or did
//!   not; neither case can produce a duplicate.
//! * **Dirty reads**: a shared section that saw its file's counter change
//!   was overlapped by an exclusive one.
//!
//! Intervals use `CLOCK_REALTIME`; a step of the system clock during the
//! run (not NTP's slewing) could fake an overlap.
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

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[cfg(unix)]
mod chaos;
mod clock;
#[cfg(unix)]
mod coordinator;
#[cfg(unix)]
mod counter;
#[cfg(unix)]
mod fleet;
mod layout;
#[cfg(unix)]
mod leaks;
mod mode;
mod procfs;
#[cfg(unix)]
mod report;
mod rng;
#[cfg(unix)]
mod rounds;
#[cfg(unix)]
mod section;
mod stats;
#[cfg(unix)]
mod verify;
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

    /// Lock files
    #[arg(long, default_value_t = 4)]
    files: usize,

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
        if !(self.duration.is_finite() && self.duration > 0.0) {
            return Err(format!("--duration must be a positive number, not {}", self.duration));
        }
        if self.processes == 0 || self.files == 0 {
            return Err("--processes and --files must be at least 1".to_string());
        }
        if self.threads + self.tasks == 0 {
            return Err("a worker needs at least one thread or task".to_string());
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
