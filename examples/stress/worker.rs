//! A worker process: threads and tasks taking the locks, a sampler, and
//! the line protocol with the coordinator.
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
//! Every random choice comes from a small PRNG (`rng.rs`) seeded from
//! `--seed`, the worker's slot and generation and the thread's or task's
//! index, so a seed fixes the mix of operations and faults; the
//! interleaving, and with it what each operation meets, is up to the
//! machine.
//!
//! What a critical section does, and the line it logs: `worker/section.rs`.
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

#[cfg(feature = "postgres")]
mod fenced;
mod rounds;
mod section;

use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use packlock::{PackLock, PackLockError};

use crate::layout::Layout;
use crate::mode::Mode;
use crate::rng::Rng;
use crate::stats::{Event, Peak, Stats};
use crate::{Args, procfs};

/// Thread and task streams of the worker's PRNG.
const THREAD_STREAM: u64 = 1;
const TASK_STREAM: u64 = 2;
/// How often the sampler looks, and how many looks between log flushes.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);
const SAMPLES_PER_FLUSH: u32 = 10;
/// How many unexpected errors a worker prints (all are counted).
const ERRORS_SHOWN: u64 = 5;

/// Everything the threads and tasks of a worker share.
pub struct Ctx {
    layout: Layout,
    files: usize,
    sabotage: bool,
    locks: Vec<[Arc<PackLock>; 2]>,
    /// Server mode: the lock server, reached through the coordinator's
    /// proxy.
    #[cfg(feature = "postgres")]
    server: Option<packlock::postgres::LockServer>,
    pub stats: Stats,
    log: Mutex<BufWriter<File>>,
    stop: AtomicBool,
    errors_shown: AtomicU64,
}

/// One round: which file, how, for how long.
pub struct Op {
    pub file: usize,
    /// How the lock is taken.
    pub mode: Mode,
    /// How the critical section behaves: as `mode`, except for the
    /// shared holds that `--sabotage` turns into writers.
    pub section_mode: Mode,
    pub hold: Duration,
    fresh: bool,
}

impl Op {
    fn draw(rng: &mut Rng, files: usize, sabotage: bool) -> Self {
        let mode = if rng.percent(25) { Mode::Shared } else { Mode::Exclusive };
        let section_mode = if sabotage && rng.percent(20) { Mode::Exclusive } else { mode };
        let hold = if rng.percent(40) { Duration::ZERO } else { rng.micros(1, 3_000) };
        Self { file: rng.index(files), mode, section_mode, hold, fresh: rng.percent(10) }
    }
}

pub fn run(args: &Args, slot: usize) -> ExitCode {
    let Some(dir) = &args.dir else {
        eprintln!("stress worker: --dir is required");
        return ExitCode::from(2);
    };
    let ctx = match Ctx::open(Layout::new(dir), args, slot) {
        Ok(ctx) => Arc::new(ctx),
        Err(e) => {
            eprintln!("stress worker {slot}: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seed = |stream, index| Rng::new(args.seed, &[slot as u64, args.generation, stream, index]);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = spawn_sampler(Arc::clone(&ctx), Arc::clone(&sampling));
    let threads: Vec<_> = (0..args.threads)
        .map(|i| spawn_thread(Arc::clone(&ctx), seed(THREAD_STREAM, i as u64)))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("build the tokio runtime");
    let tasks: Vec<_> = (0..args.tasks)
        .map(|i| spawn_task(&runtime, Arc::clone(&ctx), seed(TASK_STREAM, i as u64), i))
        .collect();
    wait_for_coordinator();
    ctx.stop.store(true, Ordering::Relaxed);
    let finished = join_all(threads, &runtime, tasks);
    if ctx.sabotage {
        ctx.leak_a_hold();
    }
    tell_coordinator("idle");
    wait_for_coordinator();
    sampling.store(false, Ordering::Relaxed);
    let sampled = sampler.join().is_ok();
    ctx.checkpoint();
    if finished && sampled { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn spawn_thread(ctx: Arc<Ctx>, mut rng: Rng) -> JoinHandle<()> {
    thread::spawn(move || {
        while !ctx.stopping() {
            ctx.sync_round(&mut rng);
        }
    })
}

fn spawn_task(
    runtime: &tokio::runtime::Runtime,
    ctx: Arc<Ctx>,
    mut rng: Rng,
    index: usize,
) -> tokio::task::JoinHandle<()> {
    let rounds = async move {
        while !ctx.stopping() {
            ctx.async_round(&mut rng).await;
        }
    };
    // Half the tasks get a task identity for re-entrancy and tier checks.
    if index.is_multiple_of(2) {
        runtime.spawn(packlock::with_tier_scope(rounds))
    } else {
        runtime.spawn(rounds)
    }
}

fn spawn_sampler(ctx: Arc<Ctx>, sampling: Arc<AtomicBool>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut samples: u32 = 0;
        while sampling.load(Ordering::Relaxed) {
            ctx.sample();
            samples += 1;
            if samples.is_multiple_of(SAMPLES_PER_FLUSH) {
                ctx.checkpoint();
            }
            thread::sleep(SAMPLE_EVERY);
        }
    })
}

/// Waits for every thread and task; false if one panicked.
fn join_all(
    threads: Vec<JoinHandle<()>>,
    runtime: &tokio::runtime::Runtime,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> bool {
    let mut finished = true;
    for thread in threads {
        finished &= thread.join().is_ok();
    }
    for task in tasks {
        finished &= runtime.block_on(task).is_ok();
    }
    finished
}

fn tell_coordinator(message: &str) {
    let mut out = std::io::stdout().lock();
    // A coordinator that went away will close our stdin too.
    let _ = writeln!(out, "{message}").and_then(|()| out.flush());
}

/// Blocks until the coordinator writes a line or closes stdin.
fn wait_for_coordinator() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

impl Ctx {
    fn open(layout: Layout, args: &Args, slot: usize) -> Result<Self, String> {
        let log_path = layout.log_path(slot, args.generation);
        let log = File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        #[cfg(feature = "postgres")]
        let server = match &args.postgres {
            Some(Some(conn)) => Some(fenced::connect(conn)?),
            Some(None) => return Err("a server mode worker needs --postgres CONN".to_string()),
            None => None,
        };
        let locks = (0..args.files)
            .map(|file| {
                #[cfg(feature = "postgres")]
                if let Some(server) = &server {
                    return fenced::open_locks(server, &layout, file, slot);
                }
                open_locks(&layout, file, slot)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            layout,
            files: args.files,
            sabotage: args.sabotage,
            locks,
            #[cfg(feature = "postgres")]
            server,
            stats: Stats::default(),
            log: Mutex::new(BufWriter::with_capacity(1 << 16, log)),
            stop: AtomicBool::new(false),
            errors_shown: AtomicU64::new(0),
        })
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn draw(&self, rng: &mut Rng) -> Op {
        Op::draw(rng, self.files, self.sabotage)
    }

    /// The process's long-lived lock for the round's file and mode, or a
    /// freshly opened one.
    pub fn lock_for(&self, op: &Op) -> Option<Arc<PackLock>> {
        if !op.fresh {
            return Some(Arc::clone(&self.locks[op.file][op.mode.index()]));
        }
        let shared = op.mode == Mode::Shared;
        #[cfg(feature = "postgres")]
        if let Some(server) = &self.server {
            let name = self.layout.lock_name(op.file);
            return match server.lock(&name).shared(shared).open() {
                Ok(lock) => Some(Arc::new(lock)),
                Err(e) => {
                    self.error("open", &e);
                    None
                }
            };
        }
        let path = self.layout.lock_path(op.file);
        let builder = PackLock::builder_for_file(path).shared(shared);
        match builder.open() {
            Ok(lock) => Some(Arc::new(lock)),
            Err(e) => {
                self.error("open", &e);
                None
            }
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether the locks are names on a lock server.
    pub fn server_mode(&self) -> bool {
        #[cfg(feature = "postgres")]
        return self.server.is_some();
        #[cfg(not(feature = "postgres"))]
        false
    }

    #[cfg(feature = "postgres")]
    pub fn sabotage(&self) -> bool {
        self.sabotage
    }

    /// Counts a failed packlock call: a failed connection or query, or a
    /// lost session (connection cuts are part of the run) as expected,
    /// anything else as unexpected.
    pub fn failed(&self, what: &str, error: &PackLockError) {
        if self.server_mode() && is_cut(error) {
            self.stats.event(Event::ServerError);
        } else {
            self.error(what, error);
        }
    }

    /// Counts an unexpected error and prints the first few.
    pub fn error(&self, what: &str, error: &dyn std::fmt::Display) {
        self.stats.event(Event::Error);
        if self.errors_shown.fetch_add(1, Ordering::Relaxed) < ERRORS_SHOWN {
            eprintln!("stress worker {}: {what}: {error}", std::process::id());
        }
    }

    /// Appends one line to the log (flushed by the sampler).
    pub fn log(&self, line: &str) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = writeln!(log, "{line}") {
            drop(log);
            self.error("write log", &e);
        }
    }

    /// Writes the counters' snapshot and flushes the log.
    fn checkpoint(&self) {
        let snapshot = self.stats.snapshot();
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = writeln!(log, "{snapshot}").and_then(|()| log.flush()) {
            drop(log);
            self.error("flush log", &e);
        }
    }

    /// `--sabotage`: keeps lock file 0 locked for good, if it is free,
    /// so that the leak check has something to find.
    fn leak_a_hold(&self) {
        if let Ok(hold) = self.locks[0][Mode::Exclusive.index()].try_acquire() {
            std::mem::forget(hold);
        }
    }

    /// Notes the process's thread count and kernel waiters.
    fn sample(&self) {
        if let Some(threads) = procfs::thread_count() {
            self.stats.peak(Peak::Threads, threads);
        }
        // Server mode has no lock files; its storage's guard files are
        // `flock`ed by every thread, which is not packlock's doing.
        if self.server_mode() {
            return;
        }
        if let Some((waiters, per_file)) = procfs::own_waiters() {
            self.stats.peak(Peak::Waiters, waiters);
            self.stats.peak(Peak::WaitersPerFile, per_file);
        }
    }
}

/// Whether `error` is what a cut connection or terminated backend makes.
fn is_cut(error: &PackLockError) -> bool {
    #[cfg(feature = "postgres")]
    {
        use packlock::postgres::ServerError;
        matches!(
            error,
            PackLockError::Lost { .. }
                | PackLockError::Server {
                    source: ServerError::Unavailable { .. } | ServerError::Operation { .. },
                    ..
                }
        )
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = error;
        false
    }
}

/// The long-lived exclusive and shared locks of one file, opened the
/// ways users open them: sidecar of a directory (some labelled), or an
/// explicit file.
fn open_locks(
    layout: &Layout,
    file: usize,
    slot: usize,
) -> Result<[Arc<PackLock>; 2], PackLockError> {
    let dir = layout.pack_dir(file);
    let exclusive = match file % 2 {
        0 => PackLock::builder(&dir).label(format!("stress worker {slot}")).open()?,
        _ => PackLock::open(&dir)?,
    };
    let shared = PackLock::builder_for_file(layout.lock_path(file)).shared(true).open()?;
    Ok([Arc::new(exclusive), Arc::new(shared)])
}
