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

// Off Unix only `main` is compiled in; the rest is Unix-only machinery.
#![cfg_attr(not(unix), allow(dead_code))]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

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

/// A tiny deterministic PRNG: xorshift64* seeded through splitmix64.
mod rng {
    use std::time::Duration;

    pub struct Rng(u64);

    impl Rng {
        /// A generator for `seed` and a stream (who is drawing: slot,
        /// generation, thread index...), independent of other streams.
        pub fn new(seed: u64, stream: &[u64]) -> Self {
            let mut state = splitmix(seed);
            for &part in stream {
                state = splitmix(state ^ splitmix(part));
            }
            Self(if state == 0 { 0x9E37_79B9_7F4A_7C15 } else { state })
        }

        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in `0..n` (`n > 0`).
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }

        /// Uniform in `0..n` as an index.
        pub fn index(&mut self, n: usize) -> usize {
            // usize -> u64 is lossless on every supported platform.
            usize::try_from(self.below(n as u64)).expect("an index below a usize fits a usize")
        }

        /// True with probability `percent`/100.
        pub fn percent(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }

        /// Uniform in `lo..=hi` microseconds.
        pub fn micros(&mut self, lo: u64, hi: u64) -> Duration {
            Duration::from_micros(lo + self.below(hi - lo + 1))
        }

        /// Uniform in `lo..=hi` milliseconds.
        pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
            Duration::from_millis(lo + self.below(hi - lo + 1))
        }
    }

    fn splitmix(z: u64) -> u64 {
        let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Where everything lives in the working directory.
mod layout {
    use std::io;
    use std::path::{Path, PathBuf};

    pub struct Layout {
        root: PathBuf,
    }

    impl Layout {
        pub fn new(root: &Path) -> Self {
            Self { root: root.to_path_buf() }
        }

        pub fn root(&self) -> &Path {
            &self.root
        }

        pub fn create_dirs(&self) -> io::Result<()> {
            for dir in ["packs", "counters", "logs", "staging", "graveyard"] {
                std::fs::create_dir_all(self.root.join(dir))?;
            }
            Ok(())
        }

        /// The pack directory whose sidecar is lock file `file`.
        pub fn pack_dir(&self, file: usize) -> PathBuf {
            self.root.join("packs").join(format!("p{file}"))
        }

        pub fn lock_path(&self, file: usize) -> PathBuf {
            self.pack_dir(file).join(packlock::PACK_LOCK_FILE_NAME)
        }

        /// The counter of the lock file with inode `ino`.
        pub fn counter_path(&self, ino: u64) -> PathBuf {
            self.root.join("counters").join(ino.to_string())
        }

        pub fn logs(&self) -> PathBuf {
            self.root.join("logs")
        }

        pub fn log_path(&self, slot: usize, generation: u64) -> PathBuf {
            self.logs().join(format!("w{slot}-g{generation}.log"))
        }

        /// Where the coordinator prepares a file to rename over a lock file.
        pub fn staging(&self, serial: u64) -> PathBuf {
            self.root.join("staging").join(serial.to_string())
        }

        /// Where the coordinator renames lock files away to.
        pub fn graveyard(&self, serial: u64) -> PathBuf {
            self.root.join("graveyard").join(serial.to_string())
        }
    }
}

/// The clock every process shares.
mod clock {
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
    pub fn now_ns() -> u64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
        u64::try_from(since.as_nanos()).expect("nanoseconds since 1970 fit a u64 until 2554")
    }
}

/// Exclusive and shared, as written in the logs.
mod mode {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Mode {
        Exclusive,
        Shared,
    }

    impl Mode {
        pub const ALL: [Mode; 2] = [Mode::Exclusive, Mode::Shared];

        pub fn code(self) -> &'static str {
            match self {
                Mode::Exclusive => "X",
                Mode::Shared => "S",
            }
        }

        pub fn from_code(code: &str) -> Option<Self> {
            match code {
                "X" => Some(Mode::Exclusive),
                "S" => Some(Mode::Shared),
                _ => None,
            }
        }

        pub fn index(self) -> usize {
            self as usize
        }
    }
}

/// A worker's counters, and their cumulative snapshot lines in the logs.
mod stats {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::mode::Mode;

    /// Every way the workers acquire.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Flavour {
        Acquire,
        TryAcquire,
        Timeout,
        Async,
        Cancellable,
        Until,
        AsyncTimeout,
        PollOnce,
        TokioTimeout,
    }

    impl Flavour {
        pub const ALL: [Flavour; 9] = [
            Flavour::Acquire,
            Flavour::TryAcquire,
            Flavour::Timeout,
            Flavour::Async,
            Flavour::Cancellable,
            Flavour::Until,
            Flavour::AsyncTimeout,
            Flavour::PollOnce,
            Flavour::TokioTimeout,
        ];
        pub const SYNC: [Flavour; 3] = [Flavour::Acquire, Flavour::TryAcquire, Flavour::Timeout];
        pub const ASYNC: [Flavour; 6] = [
            Flavour::Async,
            Flavour::Cancellable,
            Flavour::Until,
            Flavour::AsyncTimeout,
            Flavour::PollOnce,
            Flavour::TokioTimeout,
        ];

        pub fn name(self) -> &'static str {
            match self {
                Flavour::Acquire => "acquire",
                Flavour::TryAcquire => "try_acquire (retried)",
                Flavour::Timeout => "acquire_timeout",
                Flavour::Async => "acquire_async",
                Flavour::Cancellable => "acquire_cancellable",
                Flavour::Until => "acquire_until(timer)",
                Flavour::AsyncTimeout => "acquire_timeout_with",
                Flavour::PollOnce => "poll once, then drop",
                Flavour::TokioTimeout => "tokio::time::timeout",
            }
        }

        fn index(self) -> usize {
            self as usize
        }

        pub fn key(self, mode: Mode) -> String {
            format!("acq.{}.{}", self.index(), mode.code())
        }
    }

    /// Outcomes other than an acquisition.
    #[derive(Clone, Copy, Debug)]
    pub enum Event {
        /// `try_acquire` found the lock busy (and will retry).
        BusyRetry,
        /// `try_acquire` found it busy every time and gave up.
        TryGaveUp,
        /// A sync or async timeout fired.
        TimedOut,
        /// A token or `acquire_until` signal cancelled an acquire.
        Cancelled,
        /// An acquire future was dropped before it completed.
        Dropped,
        /// An unexpected error from packlock or the harness's own files.
        Error,
    }

    impl Event {
        pub const ALL: [Event; 6] = [
            Event::BusyRetry,
            Event::TryGaveUp,
            Event::TimedOut,
            Event::Cancelled,
            Event::Dropped,
            Event::Error,
        ];

        pub fn key(self) -> &'static str {
            match self {
                Event::BusyRetry => "ev.busy_retry",
                Event::TryGaveUp => "ev.try_gave_up",
                Event::TimedOut => "ev.timed_out",
                Event::Cancelled => "ev.cancelled",
                Event::Dropped => "ev.dropped",
                Event::Error => "ev.error",
            }
        }
    }

    /// Maxima a worker samples.
    #[derive(Clone, Copy, Debug)]
    pub enum Peak {
        /// Threads of the process.
        Threads,
        /// Waiters of the process in the kernel, all lock files together.
        Waiters,
        /// Waiters of the process in the kernel on one lock file.
        WaitersPerFile,
    }

    impl Peak {
        pub const ALL: [Peak; 3] = [Peak::Threads, Peak::Waiters, Peak::WaitersPerFile];

        pub fn key(self) -> &'static str {
            match self {
                Peak::Threads => "peak.threads",
                Peak::Waiters => "peak.waiters",
                Peak::WaitersPerFile => "peak.waiters_per_file",
            }
        }
    }

    #[derive(Default)]
    pub struct Stats {
        acquired: [[AtomicU64; 2]; Flavour::ALL.len()],
        events: [AtomicU64; Event::ALL.len()],
        peaks: [AtomicU64; Peak::ALL.len()],
    }

    impl Stats {
        pub fn acquired(&self, flavour: Flavour, mode: Mode) {
            self.acquired[flavour.index()][mode.index()].fetch_add(1, Ordering::Relaxed);
        }

        pub fn event(&self, event: Event) {
            self.events[event as usize].fetch_add(1, Ordering::Relaxed);
        }

        pub fn peak(&self, peak: Peak, value: u64) {
            self.peaks[peak as usize].fetch_max(value, Ordering::Relaxed);
        }

        /// `C key=value ...`: every counter, cumulative.
        pub fn snapshot(&self) -> String {
            let mut line = String::from("C");
            for flavour in Flavour::ALL {
                for mode in Mode::ALL {
                    let value =
                        self.acquired[flavour.index()][mode.index()].load(Ordering::Relaxed);
                    line.push_str(&format!(" {}={value}", flavour.key(mode)));
                }
            }
            for event in Event::ALL {
                let value = self.events[event as usize].load(Ordering::Relaxed);
                line.push_str(&format!(" {}={value}", event.key()));
            }
            for peak in Peak::ALL {
                let value = self.peaks[peak as usize].load(Ordering::Relaxed);
                line.push_str(&format!(" {}={value}", peak.key()));
            }
            line
        }
    }

    /// Counters by key, as read back from snapshot lines.
    pub type Totals = BTreeMap<String, u64>;

    /// Reads the fields of a `C` line (without the `C`).
    pub fn parse_snapshot<'a>(fields: impl Iterator<Item = &'a str>) -> Option<Totals> {
        fields
            .map(|field| {
                let (key, value) = field.split_once('=')?;
                Some((key.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// Adds `from` into `into`: peaks by maximum, everything else by sum.
    pub fn merge(into: &mut Totals, from: &Totals) {
        for (key, &value) in from {
            let total = into.entry(key.clone()).or_default();
            *total = if key.starts_with("peak.") { (*total).max(value) } else { *total + value };
        }
    }
}

/// The per-inode counters the critical sections increment.
#[cfg(unix)]
mod counter {
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    /// Digits plus a newline, always written whole at offset 0.
    const WIDTH: usize = 21;

    pub struct Counter {
        file: File,
    }

    impl Counter {
        pub fn open(path: &Path) -> io::Result<Self> {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            Ok(Self { file })
        }

        /// The value; 0 for a new counter.
        pub fn read(&self) -> io::Result<u64> {
            if self.file.metadata()?.len() == 0 {
                return Ok(0);
            }
            let mut text = [0; WIDTH];
            self.file.read_exact_at(&mut text, 0)?;
            parse(&text)
        }

        /// One fixed-width write in place: never truncated, so a process
        /// killed at any moment leaves the old or the new value.
        pub fn write(&self, value: u64) -> io::Result<()> {
            let text = format!("{value:020}\n");
            debug_assert_eq!(text.len(), WIDTH);
            self.file.write_all_at(text.as_bytes(), 0)
        }
    }

    /// The value of the counter at `path`, if it exists.
    pub fn read_value(path: &Path) -> io::Result<Option<u64>> {
        match std::fs::read(path) {
            Ok(text) if text.is_empty() => Ok(Some(0)),
            Ok(text) => parse(&text).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn parse(text: &[u8]) -> io::Result<u64> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "counter is not a number");
        std::str::from_utf8(text).map_err(|_| bad())?.trim().parse().map_err(|_| bad())
    }
}

/// What `/proc` tells about threads and `flock` waiters (Linux only;
/// elsewhere nothing is known).
mod procfs {
    /// One `flock` entry of `/proc/locks`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LockEntry {
        /// A waiter (`->`) rather than a holder.
        pub blocked: bool,
        pub pid: u32,
        /// `major:minor:inode` as the kernel prints it.
        pub file: String,
        pub ino: u64,
    }

    /// How many threads this process has now.
    #[cfg(target_os = "linux")]
    pub fn thread_count() -> Option<u64> {
        let tasks = std::fs::read_dir("/proc/self/task").ok()?;
        u64::try_from(tasks.count()).ok()
    }

    #[cfg(not(target_os = "linux"))]
    pub fn thread_count() -> Option<u64> {
        None
    }

    /// Every `flock` entry, from one `read` of `/proc/locks` (the kernel
    /// walks its lock list once per `read`, so one read is one snapshot).
    #[cfg(target_os = "linux")]
    pub fn flock_entries() -> Option<Vec<LockEntry>> {
        use std::io::Read;
        let mut file = std::fs::File::open("/proc/locks").ok()?;
        let mut buffer = vec![0; 1 << 20];
        let len = file.read(&mut buffer).ok()?;
        buffer.truncate(len);
        let text = String::from_utf8_lossy(&buffer);
        Some(text.lines().filter_map(parse_line).collect())
    }

    #[cfg(not(target_os = "linux"))]
    pub fn flock_entries() -> Option<Vec<LockEntry>> {
        None
    }

    /// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`, with `->` after
    /// the number for a waiter.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn parse_line(line: &str) -> Option<LockEntry> {
        let mut fields = line.split_whitespace().skip(1).peekable();
        let blocked = fields.next_if_eq(&"->").is_some();
        if fields.next()? != "FLOCK" {
            return None;
        }
        let pid = fields.nth(2)?.parse().ok()?;
        let file = fields.next()?.to_string();
        let ino = file.rsplit(':').next()?.parse().ok()?;
        Some(LockEntry { blocked, pid, file, ino })
    }

    /// This process's waiters in the kernel: in total, and the most on one
    /// file.
    pub fn own_waiters() -> Option<(u64, u64)> {
        let pid = std::process::id();
        let mut per_file = std::collections::HashMap::<String, u64>::new();
        for entry in flock_entries()?.into_iter().filter(|e| e.blocked && e.pid == pid) {
            *per_file.entry(entry.file).or_default() += 1;
        }
        Some((per_file.values().sum(), per_file.values().copied().max().unwrap_or(0)))
    }
}

/// A worker process: threads and tasks taking the locks, a sampler, and
/// the line protocol with the coordinator.
#[cfg(unix)]
mod worker {
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
        let seed =
            |stream, index| Rng::new(args.seed, &[slot as u64, args.generation, stream, index]);
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
            let locks = (0..args.files)
                .map(|file| open_locks(&layout, file, slot))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            Ok(Self {
                layout,
                files: args.files,
                sabotage: args.sabotage,
                locks,
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
            let path = self.layout.lock_path(op.file);
            let builder = PackLock::builder_for_file(path).shared(op.mode == Mode::Shared);
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
            if let Some((waiters, per_file)) = procfs::own_waiters() {
                self.stats.peak(Peak::Waiters, waiters);
                self.stats.peak(Peak::WaitersPerFile, per_file);
            }
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
}

/// One critical section: what is stamped, identified and counted inside
/// it, and the log line it leaves.
#[cfg(unix)]
mod section {
    use std::os::unix::fs::MetadataExt;

    use packlock::{PackLockError, PackLockHold};

    use crate::clock::now_ns;
    use crate::counter::Counter;
    use crate::mode::Mode;
    use crate::worker::{Ctx, Op};

    pub struct Section {
        file: usize,
        mode: Mode,
        start: u64,
        /// The locked file's inode, when it could be identified.
        ino: Option<u64>,
        /// That inode's counter and the value read on entry.
        counter: Option<(Counter, u64)>,
    }

    /// What a section saw of its counter.
    enum Seen {
        /// Nothing: the file was not identified, or the counter failed.
        Nothing,
        /// Exclusive: the value it read (and incremented).
        Old(u64),
        /// Shared: whether the value changed while it held the lock.
        Read { changed: bool },
    }

    /// One hold interval, as logged.
    pub struct Record {
        file: usize,
        mode: Mode,
        ino: Option<u64>,
        start: u64,
        end: u64,
        valid: bool,
        seen: Seen,
    }

    impl Section {
        /// Called right after the acquire returned.
        pub fn enter(ctx: &Ctx, op: &Op, hold: &PackLockHold) -> Self {
            let start = now_ns();
            let ino = identify(hold);
            let counter = ino.and_then(|ino| open_counter(ctx, ino));
            Self { file: op.file, mode: op.section_mode, start, ino, counter }
        }

        /// Called right before the release.
        pub fn leave(self, ctx: &Ctx, hold: &PackLockHold) -> Record {
            let seen = match &self.counter {
                Some((counter, value)) => finish_counter(ctx, self.mode, counter, *value),
                None => Seen::Nothing,
            };
            let end = now_ns();
            let valid = match hold.validate() {
                Ok(()) => true,
                Err(PackLockError::Replaced { .. }) => false,
                Err(e) => {
                    ctx.error("validate", &e);
                    false
                }
            };
            let Self { file, mode, start, ino, .. } = self;
            Record { file, mode, ino, start, end, valid, seen }
        }
    }

    /// The inode of the locked file: `stat` of the path, confirmed by
    /// `validate` (the path never names an old file again, so if it names
    /// the locked file now it did at the `stat` too).
    fn identify(hold: &PackLockHold) -> Option<u64> {
        let ino = std::fs::metadata(hold.path()).ok()?.ino();
        hold.validate().ok()?;
        Some(ino)
    }

    fn open_counter(ctx: &Ctx, ino: u64) -> Option<(Counter, u64)> {
        let opened = Counter::open(&ctx.layout().counter_path(ino))
            .and_then(|counter| counter.read().map(|value| (counter, value)));
        opened.map_err(|e| ctx.error("counter", &e)).ok()
    }

    /// Exclusive: write the increment; shared: read again.
    fn finish_counter(ctx: &Ctx, mode: Mode, counter: &Counter, value: u64) -> Seen {
        let done = match mode {
            Mode::Exclusive => counter.write(value + 1).map(|()| Seen::Old(value)),
            Mode::Shared => counter.read().map(|now| Seen::Read { changed: now != value }),
        };
        done.unwrap_or_else(|e| {
            ctx.error("counter", &e);
            Seen::Nothing
        })
    }

    impl Record {
        /// `H file mode inode start end valid seen` (inode 0: unknown).
        pub fn line(&self) -> String {
            let seen = match self.seen {
                Seen::Nothing => "-".to_string(),
                Seen::Old(value) => value.to_string(),
                Seen::Read { changed: true } => "d".to_string(),
                Seen::Read { changed: false } => "c".to_string(),
            };
            format!(
                "H {} {} {} {} {} {} {seen}",
                self.file,
                self.mode.code(),
                self.ino.unwrap_or(0),
                self.start,
                self.end,
                u8::from(self.valid),
            )
        }
    }
}

/// A round of a worker's thread or task: pick, acquire one way, hold,
/// release, log.
#[cfg(unix)]
mod rounds {
    use std::thread;
    use std::time::Duration;

    use packlock::{
        CancellationToken, PackLock, PackLockError, PackLockErrorOrCancelled, PackLockHold,
    };

    use crate::mode::Mode;
    use crate::rng::Rng;
    use crate::section::Section;
    use crate::stats::{Event, Flavour};
    use crate::worker::Ctx;

    /// How often `try_acquire` is tried before giving up.
    const TRY_ATTEMPTS: u32 = 20;

    impl Ctx {
        pub fn sync_round(&self, rng: &mut Rng) {
            let op = self.draw(rng);
            let flavour = Flavour::SYNC[rng.index(Flavour::SYNC.len())];
            let Some(lock) = self.lock_for(&op) else { return };
            if let Some(hold) = self.acquire_sync(&lock, flavour, op.mode, rng) {
                let section = Section::enter(self, &op, &hold);
                if !op.hold.is_zero() {
                    thread::sleep(op.hold);
                }
                self.finish(section, hold);
            }
            if rng.percent(30) {
                thread::sleep(rng.micros(0, 500));
            }
        }

        pub async fn async_round(&self, rng: &mut Rng) {
            let op = self.draw(rng);
            let flavour = Flavour::ASYNC[rng.index(Flavour::ASYNC.len())];
            if let Some(lock) = self.lock_for(&op)
                && let Some(hold) = self.acquire_async(&lock, flavour, op.mode, rng).await
            {
                let section = Section::enter(self, &op, &hold);
                pause(op.hold, rng.percent(50)).await;
                self.finish(section, hold);
            }
            tokio::task::yield_now().await;
        }

        /// Leaves the section, releases and logs the interval.
        fn finish(&self, section: Section, hold: PackLockHold) {
            let record = section.leave(self, &hold);
            if let Err(e) = hold.release() {
                self.error("release", &e);
            }
            self.log(&record.line());
        }

        fn acquire_sync(
            &self,
            lock: &PackLock,
            flavour: Flavour,
            mode: Mode,
            rng: &mut Rng,
        ) -> Option<PackLockHold> {
            match flavour {
                Flavour::Acquire => self.outcome(flavour, mode, lock.acquire()),
                Flavour::TryAcquire => self.try_with_retries(lock, mode, rng),
                Flavour::Timeout => {
                    let timeout = rng.micros(0, 10_000);
                    self.outcome(flavour, mode, lock.acquire_timeout(timeout))
                }
                _ => unreachable!("{} is not a sync flavour", flavour.name()),
            }
        }

        fn try_with_retries(
            &self,
            lock: &PackLock,
            mode: Mode,
            rng: &mut Rng,
        ) -> Option<PackLockHold> {
            for _ in 0..TRY_ATTEMPTS {
                match lock.try_acquire() {
                    Ok(hold) => return self.outcome(Flavour::TryAcquire, mode, Ok(hold)),
                    Err(PackLockError::Busy { .. }) => self.stats.event(Event::BusyRetry),
                    Err(e) => return self.outcome(Flavour::TryAcquire, mode, Err(e)),
                }
                if self.stopping() {
                    return None;
                }
                thread::sleep(rng.micros(20, 500));
            }
            self.stats.event(Event::TryGaveUp);
            None
        }

        async fn acquire_async(
            &self,
            lock: &PackLock,
            flavour: Flavour,
            mode: Mode,
            rng: &mut Rng,
        ) -> Option<PackLockHold> {
            let wait = rng.micros(0, 5_000);
            match flavour {
                Flavour::Async => self.outcome(flavour, mode, lock.acquire_async().await),
                Flavour::Cancellable => self.cancellable(lock, mode, rng.percent(10), wait).await,
                Flavour::Until => {
                    let acquired = lock.acquire_until(tokio::time::sleep(wait)).await;
                    self.cancel_outcome(flavour, mode, acquired)
                }
                Flavour::AsyncTimeout => {
                    let acquired = lock.acquire_timeout_with(wait, tokio::time::sleep(wait)).await;
                    self.outcome(flavour, mode, acquired)
                }
                Flavour::PollOnce => self.poll_once(lock, mode).await,
                Flavour::TokioTimeout => {
                    match tokio::time::timeout(wait, lock.acquire_async()).await {
                        Ok(acquired) => self.outcome(flavour, mode, acquired),
                        Err(_elapsed) => self.dropped(),
                    }
                }
                _ => unreachable!("{} is not an async flavour", flavour.name()),
            }
        }

        /// `acquire_cancellable` with a token cancelled before the call
        /// (`early`) or by another task after `after`.
        async fn cancellable(
            &self,
            lock: &PackLock,
            mode: Mode,
            early: bool,
            after: Duration,
        ) -> Option<PackLockHold> {
            let token = CancellationToken::new();
            let canceller = if early {
                token.cancel();
                None
            } else {
                let token = token.clone();
                Some(tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    token.cancel();
                }))
            };
            let acquired = lock.acquire_cancellable(&token).await;
            if let Some(canceller) = canceller {
                canceller.abort();
            }
            self.cancel_outcome(Flavour::Cancellable, mode, acquired)
        }

        /// Polls `acquire_async` once and drops it if it is not done.
        async fn poll_once(&self, lock: &PackLock, mode: Mode) -> Option<PackLockHold> {
            let mut acquire = Box::pin(lock.acquire_async());
            match futures_lite::future::poll_once(&mut acquire).await {
                Some(acquired) => self.outcome(Flavour::PollOnce, mode, acquired),
                None => self.dropped(),
            }
        }

        fn dropped(&self) -> Option<PackLockHold> {
            self.stats.event(Event::Dropped);
            None
        }

        /// Counts how an acquire ended; the hold if it got one.
        fn outcome(
            &self,
            flavour: Flavour,
            mode: Mode,
            acquired: Result<PackLockHold, PackLockError>,
        ) -> Option<PackLockHold> {
            match acquired {
                Ok(hold) => {
                    self.stats.acquired(flavour, mode);
                    Some(hold)
                }
                Err(PackLockError::TimedOut { .. }) => {
                    self.stats.event(Event::TimedOut);
                    None
                }
                Err(e) => {
                    self.error(flavour.name(), &e);
                    None
                }
            }
        }

        fn cancel_outcome(
            &self,
            flavour: Flavour,
            mode: Mode,
            acquired: Result<PackLockHold, PackLockErrorOrCancelled>,
        ) -> Option<PackLockHold> {
            match acquired {
                Ok(hold) => self.outcome(flavour, mode, Ok(hold)),
                Err(e) if e.is_cancelled() => {
                    self.stats.event(Event::Cancelled);
                    None
                }
                Err(PackLockErrorOrCancelled::Lock(e)) => self.outcome(flavour, mode, Err(e)),
                Err(e) => {
                    self.error(flavour.name(), &e);
                    None
                }
            }
        }
    }

    /// Holds for `hold` (tokio's timer rounds up to a millisecond); a zero
    /// hold sometimes yields, so the hold may move to another thread.
    async fn pause(hold: Duration, yield_if_zero: bool) {
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        } else if yield_if_zero {
            tokio::task::yield_now().await;
        }
    }
}

/// The coordinator: starts the workers, disturbs them, stops them, checks
/// for leaks, verifies the logs and reports.
#[cfg(unix)]
mod coordinator {
    use std::process::ExitCode;
    use std::time::Instant;

    use crate::chaos::{self, Chaos};
    use crate::fleet::Fleet;
    use crate::layout::Layout;
    use crate::report::{self, Outcome};
    use crate::{Args, leaks, verify};

    pub fn run(args: &Args) -> ExitCode {
        let started = Instant::now();
        let workdir = tempfile::Builder::new()
            .prefix("packlock-stress-")
            .tempdir()
            .expect("create a temporary working directory");
        let layout = Layout::new(workdir.path());
        layout.create_dirs().expect("create the working directory's subdirectories");
        create_lock_files(&layout, args.files);
        let exe = std::env::current_exe().expect("find this program's own executable");
        let mut fleet = Fleet::start(exe, args, &layout);
        let chaos: Chaos = chaos::run(&mut fleet, &layout, args);
        fleet.stop();
        let leaks = leaks::check(&layout, args.files, &fleet.pids());
        fleet.finish();
        let verification = verify::run(&layout);
        let outcome = Outcome { chaos, fleet: fleet.tally(), leaks, verification };
        let passed = report::print(args, &outcome, started.elapsed());
        if passed && !args.keep {
            return ExitCode::SUCCESS;
        }
        let kept = workdir.keep();
        println!("working directory kept: {}", kept.display());
        if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }

    fn create_lock_files(layout: &Layout, files: usize) {
        for file in 0..files {
            packlock::PackLock::open(layout.pack_dir(file)).expect("create a lock file");
        }
    }
}

/// The worker processes, as the coordinator sees them.
#[cfg(unix)]
mod fleet {
    use std::io::{BufRead, BufReader, Write};
    use std::path::PathBuf;
    use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
    use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
    use std::time::{Duration, Instant};

    use crate::Args;
    use crate::layout::Layout;
    use crate::rng::Rng;

    /// How long workers get to go idle, and then to exit.
    const STOP_DEADLINE: Duration = Duration::from_secs(15);
    const EXIT_DEADLINE: Duration = Duration::from_secs(5);

    /// What happened to the workers, for the report.
    #[derive(Debug, Default, Clone)]
    pub struct Tally {
        pub started: u64,
        pub kills: u64,
        /// Workers that exited on their own, or unsuccessfully.
        pub failures: u64,
        /// Workers that did not go idle or exit in time (an acquire hung).
        pub stuck: u64,
    }

    pub struct Fleet<'a> {
        exe: PathBuf,
        args: &'a Args,
        layout: &'a Layout,
        workers: Vec<Worker>,
        generations: Vec<u64>,
        tally: Tally,
    }

    struct Worker {
        slot: usize,
        child: Child,
        stdin: Option<ChildStdin>,
        lines: Receiver<String>,
    }

    impl<'a> Fleet<'a> {
        pub fn start(exe: PathBuf, args: &'a Args, layout: &'a Layout) -> Self {
            let generations = vec![0; args.processes];
            let mut fleet = Self {
                exe,
                args,
                layout,
                workers: Vec::new(),
                generations,
                tally: Tally::default(),
            };
            for slot in 0..args.processes {
                let worker = fleet.spawn(slot);
                fleet.workers.push(worker);
            }
            fleet
        }

        fn spawn(&mut self, slot: usize) -> Worker {
            let generation = self.generations[slot];
            self.generations[slot] += 1;
            self.tally.started += 1;
            let args = self.args;
            let mut child = Command::new(&self.exe)
                .args(["--worker", &slot.to_string(), "--generation", &generation.to_string()])
                .arg("--dir")
                .arg(self.layout.root())
                .args(["--seed", &args.seed.to_string(), "--files", &args.files.to_string()])
                .args(["--threads", &args.threads.to_string(), "--tasks", &args.tasks.to_string()])
                .args(args.sabotage.then_some("--sabotage"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a worker process");
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().expect("worker stdout is piped");
            let (send, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
            Worker { slot, child, stdin, lines }
        }

        /// `kill -9`s a random worker and starts the next generation in its
        /// slot.
        pub fn kill_random(&mut self, rng: &mut Rng) {
            let index = rng.index(self.workers.len());
            let slot = self.workers[index].slot;
            self.workers[index].kill();
            self.tally.kills += 1;
            self.workers[index] = self.spawn(slot);
        }

        /// Restarts workers that exited on their own, counting failures.
        pub fn restart_exited(&mut self) {
            for index in 0..self.workers.len() {
                if let Some(status) = self.workers[index].exited() {
                    let slot = self.workers[index].slot;
                    eprintln!("stress: worker in slot {slot} exited on its own: {status}");
                    self.tally.failures += 1;
                    self.workers[index] = self.spawn(slot);
                }
            }
        }

        /// Asks every worker to stop and waits until each is idle; kills
        /// those that are not in time.
        pub fn stop(&mut self) {
            for worker in &mut self.workers {
                worker.send("stop");
            }
            let deadline = Instant::now() + STOP_DEADLINE;
            let mut stuck = 0;
            self.workers.retain_mut(|worker| {
                let idle = worker.wait_for("idle", deadline);
                if !idle {
                    eprintln!("stress: worker in slot {} did not stop in time", worker.slot);
                    worker.kill();
                    stuck += 1;
                }
                idle
            });
            self.tally.stuck += stuck;
        }

        /// The pids of the live workers.
        pub fn pids(&self) -> Vec<u32> {
            self.workers.iter().map(|worker| worker.child.id()).collect()
        }

        /// Lets the (idle) workers exit and reaps them.
        pub fn finish(&mut self) {
            for worker in &mut self.workers {
                drop(worker.stdin.take());
            }
            let deadline = Instant::now() + EXIT_DEADLINE;
            for worker in &mut self.workers {
                match worker.wait_exit(deadline) {
                    Some(status) if status.success() => {}
                    Some(status) => {
                        eprintln!("stress: worker in slot {} failed: {status}", worker.slot);
                        self.tally.failures += 1;
                    }
                    None => {
                        eprintln!("stress: worker in slot {} did not exit in time", worker.slot);
                        worker.kill();
                        self.tally.stuck += 1;
                    }
                }
            }
            self.workers.clear();
        }

        pub fn tally(&self) -> Tally {
            self.tally.clone()
        }
    }

    impl Worker {
        fn send(&mut self, line: &str) {
            if let Some(stdin) = &mut self.stdin {
                // A worker that died is found out by `wait_for`.
                let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
            }
        }

        /// Waits for the line `expected`, skipping others; false if the
        /// worker closed its stdout or the deadline passed.
        fn wait_for(&self, expected: &str, deadline: Instant) -> bool {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) if line == expected => return true,
                    Ok(_) => {}
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                        return false;
                    }
                }
            }
        }

        /// SIGKILL, then reap.
        fn kill(&mut self) {
            // Fails only if it already exited, which the wait then reaps.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }

        fn exited(&mut self) -> Option<ExitStatus> {
            self.child.try_wait().ok().flatten()
        }

        fn wait_exit(&mut self, deadline: Instant) -> Option<ExitStatus> {
            loop {
                if let Some(status) = self.exited() {
                    return Some(status);
                }
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    impl Drop for Worker {
        fn drop(&mut self) {
            // Never leave a worker behind, whatever happened.
            if self.exited().is_none() {
                self.kill();
            }
        }
    }
}

/// What the coordinator does to the workers and their lock files while
/// they run.
#[cfg(unix)]
mod chaos {
    use std::io;
    use std::time::{Duration, Instant};

    use crate::Args;
    use crate::fleet::Fleet;
    use crate::layout::Layout;
    use crate::rng::Rng;

    /// The coordinator's stream of the PRNG.
    const STREAM: u64 = 0xC0;
    /// How long the coordinator sleeps at most between looks.
    const TICK: Duration = Duration::from_millis(20);

    #[derive(Debug, Default, Clone)]
    pub struct Chaos {
        pub kills: u64,
        pub renames_over: u64,
        pub renames_away: u64,
        pub deletes: u64,
        /// Deletes or renames away of a lock file that was already gone.
        pub missed: u64,
    }

    enum Disturbance {
        RenameOver,
        RenameAway,
        Delete,
    }

    pub fn run(fleet: &mut Fleet<'_>, layout: &Layout, args: &Args) -> Chaos {
        let mut rng = Rng::new(args.seed, &[STREAM]);
        let mut chaos = Chaos::default();
        let end = Instant::now() + args.duration();
        let mut next_kill = Instant::now() + rng.millis(200, 2_000);
        let mut next_disturbance = Instant::now() + rng.millis(5, 150);
        let mut serial = 0;
        loop {
            let now = Instant::now();
            if now >= end {
                return chaos;
            }
            if now >= next_kill {
                fleet.kill_random(&mut rng);
                chaos.kills += 1;
                next_kill = now + rng.millis(200, 2_000);
            }
            if now >= next_disturbance {
                serial += 1;
                let file = rng.index(args.files);
                chaos.count(disturb(layout, file, serial, &mut rng));
                next_disturbance = now + rng.millis(5, 150);
            }
            fleet.restart_exited();
            let wake = next_kill.min(next_disturbance).min(end).min(now + TICK);
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        }
    }

    impl Chaos {
        fn count(&mut self, done: io::Result<Option<Disturbance>>) {
            match done {
                Ok(Some(Disturbance::RenameOver)) => self.renames_over += 1,
                Ok(Some(Disturbance::RenameAway)) => self.renames_away += 1,
                Ok(Some(Disturbance::Delete)) => self.deletes += 1,
                Ok(None) => self.missed += 1,
                Err(e) => eprintln!("stress: cannot disturb a lock file: {e}"),
            }
        }

        pub fn disturbances(&self) -> u64 {
            self.renames_over + self.renames_away + self.deletes
        }
    }

    /// Renames a new file over lock file `file` (60%), deletes it (25%) or
    /// renames it away (15%); `None` if there was nothing to delete or
    /// rename away.
    fn disturb(
        layout: &Layout,
        file: usize,
        serial: u64,
        rng: &mut Rng,
    ) -> io::Result<Option<Disturbance>> {
        let lock = layout.lock_path(file);
        let roll = rng.below(100);
        let done = if roll < 60 {
            let staged = layout.staging(serial);
            std::fs::write(&staged, b"")?;
            std::fs::rename(&staged, &lock).map(|()| Disturbance::RenameOver)
        } else if roll < 85 {
            std::fs::remove_file(&lock).map(|()| Disturbance::Delete)
        } else {
            std::fs::rename(&lock, layout.graveyard(serial)).map(|()| Disturbance::RenameAway)
        };
        match done {
            Ok(disturbance) => Ok(Some(disturbance)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Leaked locks: checked while the stopped workers are still alive.
#[cfg(unix)]
mod leaks {
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use packlock::PackLock;

    use crate::layout::Layout;
    use crate::procfs::{self, LockEntry};

    /// How long a lock may take to become free once every worker is idle:
    /// a pool job parked by a cancelled acquire lets go when granted.
    const GRACE: Duration = Duration::from_secs(3);
    const POLL: Duration = Duration::from_millis(10);

    #[derive(Debug, Default)]
    pub struct Leaks {
        /// Lock files a fresh `PackLock` could not take, or that the kernel
        /// still lists a worker holding or waiting for.
        pub busy_files: Vec<usize>,
        /// Kernel entries of the workers on any other file (a deleted or
        /// replaced lock file still held or waited for).
        pub stale: Vec<LockEntry>,
    }

    impl Leaks {
        pub fn count(&self) -> u64 {
            (self.busy_files.len() + self.stale.len()) as u64
        }
    }

    pub fn check(layout: &Layout, files: usize, workers: &[u32]) -> Leaks {
        let deadline = Instant::now() + GRACE;
        let mut ours = workers.to_vec();
        ours.push(std::process::id());
        let busy_files =
            (0..files).filter(|&file| !wait_free(&layout.lock_path(file), &ours, deadline));
        let busy_files = busy_files.collect();
        let current: Vec<u64> =
            (0..files).filter_map(|file| inode(&layout.lock_path(file))).collect();
        let stale = wait_no_entries(workers, &current, deadline);
        Leaks { busy_files, stale }
    }

    fn inode(path: &Path) -> Option<u64> {
        std::fs::metadata(path).ok().map(|meta| meta.ino())
    }

    fn wait_free(path: &Path, ours: &[u32], deadline: Instant) -> bool {
        let lock = match PackLock::open_file(path) {
            Ok(lock) => lock,
            Err(e) => {
                eprintln!("stress: leak check: {e}");
                return false;
            }
        };
        loop {
            if is_free(&lock, ours) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// A fresh `PackLock` (a new open file description) takes the lock, and
    /// the kernel lists none of our processes on the file afterwards.
    fn is_free(lock: &PackLock, ours: &[u32]) -> bool {
        match lock.try_acquire() {
            Ok(hold) => {
                if let Err(e) = hold.release() {
                    eprintln!("stress: leak check: {e}");
                }
            }
            Err(_) => return false,
        }
        let Some(ino) = inode(lock.path()) else { return false };
        let entries = procfs::flock_entries().unwrap_or_default();
        !entries.iter().any(|e| e.ino == ino && ours.contains(&e.pid))
    }

    /// Waits until the kernel lists no holder or waiter among `workers`
    /// on files other than the `current` lock files (counted already);
    /// returns what is left at the deadline.
    fn wait_no_entries(workers: &[u32], current: &[u64], deadline: Instant) -> Vec<LockEntry> {
        loop {
            let entries = procfs::flock_entries().unwrap_or_default();
            let stale = |e: &LockEntry| workers.contains(&e.pid) && !current.contains(&e.ino);
            let left: Vec<_> = entries.into_iter().filter(stale).collect();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The independent verifier: reads every worker's log back and checks the
/// intervals and the counters.
#[cfg(unix)]
mod verify {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use crate::counter;
    use crate::layout::Layout;
    use crate::mode::Mode;
    use crate::stats::{self, Totals};

    /// How many overlap examples the report shows.
    const EXAMPLES: usize = 5;

    #[derive(Debug, Default)]
    pub struct Verification {
        pub logs: usize,
        pub intervals: u64,
        pub exclusive: u64,
        pub shared: u64,
        /// Intervals whose lock file was deleted or replaced during the hold.
        pub invalidated: u64,
        /// Intervals whose file could not be identified (replaced before).
        pub unidentified: u64,
        pub overlaps_by_path: u64,
        pub overlaps_by_inode: u64,
        pub examples: Vec<String>,
        /// Exclusive sections that incremented a counter, and on how many
        /// inodes.
        pub counted: u64,
        pub inodes: usize,
        /// Two sections that saw the same counter value, or a counter that
        /// ended below a value some section wrote.
        pub lost_updates: u64,
        pub dirty_reads: u64,
        /// Counters from the workers' snapshot lines, all logs together.
        pub totals: Totals,
        /// Lines cut short by a `kill -9` (ignored), and complete lines that
        /// do not parse (a harness bug).
        pub torn: u64,
        pub malformed: u64,
    }

    /// One logged hold interval.
    #[derive(Clone, Copy, Debug)]
    struct Interval {
        file: u32,
        exclusive: bool,
        /// 0: not identified.
        ino: u64,
        start: u64,
        end: u64,
        valid: bool,
        /// Index of the log it came from.
        source: u32,
    }

    /// What the logs hold besides intervals.
    #[derive(Default)]
    struct Parsed {
        intervals: Vec<Interval>,
        /// Counter values seen by exclusive sections, per inode.
        seen: HashMap<u64, Vec<u64>>,
        dirty_reads: u64,
        totals: Totals,
        torn: u64,
        malformed: u64,
        sources: Vec<String>,
    }

    pub fn run(layout: &Layout) -> Verification {
        let parsed = parse_logs(&log_files(layout));
        let mut verification = summarize(&parsed);
        check_overlaps(&parsed, &mut verification);
        check_counters(layout, &parsed, &mut verification);
        verification
    }

    fn log_files(layout: &Layout) -> Vec<PathBuf> {
        let entries = std::fs::read_dir(layout.logs()).expect("list the workers' logs");
        let mut logs: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        logs.sort();
        logs
    }

    fn parse_logs(logs: &[PathBuf]) -> Parsed {
        let mut parsed = Parsed::default();
        for (source, path) in logs.iter().enumerate() {
            let bytes = std::fs::read(path).expect("read a worker's log");
            let source = u32::try_from(source).expect("fewer than 4 billion logs");
            parse_log(&String::from_utf8_lossy(&bytes), source, &mut parsed);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            parsed.sources.push(name.unwrap_or_default());
        }
        parsed
    }

    /// Reads one log: complete lines only (a `kill -9` may cut the last).
    fn parse_log(text: &str, source: u32, parsed: &mut Parsed) {
        let mut lines: Vec<&str> = text.split('\n').collect();
        if lines.pop().is_some_and(|last| !last.is_empty()) {
            parsed.torn += 1;
        }
        let mut last_snapshot = None;
        for line in lines {
            let mut fields = line.split(' ');
            let ok = match fields.next() {
                Some("H") => parse_interval(fields, source, parsed),
                Some("C") => {
                    last_snapshot = stats::parse_snapshot(fields);
                    last_snapshot.is_some()
                }
                _ => false,
            };
            if !ok {
                parsed.malformed += 1;
                eprintln!("stress: malformed log line: {line:?}");
            }
        }
        if let Some(snapshot) = last_snapshot {
            stats::merge(&mut parsed.totals, &snapshot);
        }
    }

    /// `H file mode inode start end valid seen`.
    fn parse_interval<'a>(
        mut fields: impl Iterator<Item = &'a str>,
        source: u32,
        parsed: &mut Parsed,
    ) -> bool {
        let mut next = || fields.next();
        let (Some(file), Some(mode), Some(ino), Some(start), Some(end), Some(valid), Some(seen)) =
            (next(), next(), next(), next(), next(), next(), next())
        else {
            return false;
        };
        let (Ok(file), Some(mode), Ok(ino), Ok(start), Ok(end)) =
            (file.parse(), Mode::from_code(mode), ino.parse(), start.parse(), end.parse())
        else {
            return false;
        };
        let exclusive = mode == Mode::Exclusive;
        let interval = Interval { file, exclusive, ino, start, end, valid: valid == "1", source };
        match (exclusive, seen) {
            (_, "-") => {}
            (false, "d") => parsed.dirty_reads += 1,
            (false, "c") => {}
            (true, value) => match value.parse() {
                Ok(value) => parsed.seen.entry(ino).or_default().push(value),
                Err(_) => return false,
            },
            (false, _) => return false,
        }
        parsed.intervals.push(interval);
        true
    }

    fn summarize(parsed: &Parsed) -> Verification {
        let intervals = &parsed.intervals;
        let count = |keep: &dyn Fn(&Interval) -> bool| intervals.iter().filter(|i| keep(i)).count();
        Verification {
            logs: parsed.sources.len(),
            intervals: intervals.len() as u64,
            exclusive: count(&|i| i.exclusive) as u64,
            shared: count(&|i| !i.exclusive) as u64,
            invalidated: count(&|i| !i.valid) as u64,
            unidentified: count(&|i| i.ino == 0) as u64,
            dirty_reads: parsed.dirty_reads,
            totals: parsed.totals.clone(),
            torn: parsed.torn,
            malformed: parsed.malformed,
            ..Verification::default()
        }
    }

    /// Per path among valid intervals, and per inode among identified ones.
    fn check_overlaps(parsed: &Parsed, verification: &mut Verification) {
        let mut by_path: HashMap<u64, Vec<Interval>> = HashMap::new();
        let mut by_inode: HashMap<u64, Vec<Interval>> = HashMap::new();
        for interval in &parsed.intervals {
            if interval.valid {
                by_path.entry(u64::from(interval.file)).or_default().push(*interval);
            }
            if interval.ino != 0 {
                by_inode.entry(interval.ino).or_default().push(*interval);
            }
        }
        let mut examples = Vec::new();
        for group in by_path.values_mut() {
            verification.overlaps_by_path += count_overlaps(group, parsed, &mut examples);
        }
        for group in by_inode.values_mut() {
            verification.overlaps_by_inode += count_overlaps(group, parsed, &mut examples);
        }
        verification.examples = examples;
    }

    /// Counts intervals that overlap an earlier-starting one where at least
    /// one of the two is exclusive: a sweep in start order that remembers
    /// the latest-ending interval so far, and the latest-ending exclusive one.
    fn count_overlaps(group: &mut [Interval], parsed: &Parsed, examples: &mut Vec<String>) -> u64 {
        group.sort_unstable_by_key(|i| (i.start, i.end));
        let mut latest: Option<Interval> = None;
        let mut latest_exclusive: Option<Interval> = None;
        let mut overlaps = 0;
        for &interval in group.iter() {
            let before = if interval.exclusive { latest } else { latest_exclusive };
            if let Some(earlier) = before.filter(|earlier| earlier.end > interval.start) {
                overlaps += 1;
                if examples.len() < EXAMPLES {
                    examples.push(describe(&earlier, &interval, parsed));
                }
            }
            if latest.is_none_or(|l| interval.end > l.end) {
                latest = Some(interval);
            }
            if interval.exclusive && latest_exclusive.is_none_or(|l| interval.end > l.end) {
                latest_exclusive = Some(interval);
            }
        }
        overlaps
    }

    fn describe(earlier: &Interval, later: &Interval, parsed: &Parsed) -> String {
        let one = |i: &Interval| {
            let mode = if i.exclusive { "exclusive" } else { "shared" };
            let validity = if i.valid { "valid" } else { "invalidated" };
            let source = &parsed.sources[i.source as usize];
            format!("{mode} {validity} [{}, {}] in {source}", i.start, i.end)
        };
        format!(
            "file {} inode {}: {} overlaps {}",
            earlier.file,
            earlier.ino,
            one(earlier),
            one(later)
        )
    }

    /// Per inode: no counter value seen twice, and the final value past
    /// every value seen.
    fn check_counters(layout: &Layout, parsed: &Parsed, verification: &mut Verification) {
        for (&ino, seen) in &parsed.seen {
            let mut seen = seen.clone();
            seen.sort_unstable();
            let duplicates = seen.windows(2).filter(|pair| pair[0] == pair[1]).count() as u64;
            let highest = seen.last().copied().unwrap_or(0);
            let last = counter::read_value(&layout.counter_path(ino)).unwrap_or_else(|e| {
                eprintln!("stress: cannot read the counter of inode {ino}: {e}");
                None
            });
            let regressed = last.is_none_or(|last| last <= highest);
            verification.lost_updates += duplicates + u64::from(regressed);
            verification.counted += seen.len() as u64;
        }
        verification.inodes = parsed.seen.len();
    }
}

/// The final summary table.
#[cfg(unix)]
mod report {
    use std::time::Duration;

    use crate::Args;
    use crate::chaos::Chaos;
    use crate::fleet::Tally;
    use crate::leaks::Leaks;
    use crate::mode::Mode;
    use crate::stats::{Event, Flavour, Peak, Totals};
    use crate::verify::Verification;

    pub struct Outcome {
        pub chaos: Chaos,
        pub fleet: Tally,
        pub leaks: Leaks,
        pub verification: Verification,
    }

    /// Prints the table; true if the run passed.
    pub fn print(args: &Args, outcome: &Outcome, elapsed: Duration) -> bool {
        let v = &outcome.verification;
        print_parameters(args, elapsed);
        print_acquisitions(&v.totals);
        print_other_outcomes(&v.totals);
        print_chaos(&outcome.chaos, &outcome.fleet);
        print_verification(outcome);
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

    fn print_parameters(args: &Args, elapsed: Duration) {
        println!("packlock stress");
        row("seed", args.seed);
        row("duration (s)", args.duration);
        row("wall time (s)", format!("{:.1}", elapsed.as_secs_f64()));
        let shape = format!("{} x {} x {}", args.processes, args.threads, args.tasks);
        row("processes x threads x tasks", shape);
        row("lock files", args.files);
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
        row("unexpected errors", total(totals, Event::Error.key()));
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
        row("  invalidated (validate() failed at the end)", v.invalidated);
        row("  not identified (replaced before entry)", v.unidentified);
        row("  lines cut by kill -9 (ignored)", v.torn);
        row("overlaps by path (valid intervals)", v.overlaps_by_path);
        row("overlaps by inode (all identified)", v.overlaps_by_inode);
        row("counted exclusive sections", v.counted);
        row("  on lock file inodes", v.inodes);
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
            (v.intervals == 0, "no hold interval was logged: nothing verified".to_string()),
        ];
        checks.into_iter().filter(|(failed, _)| *failed).map(|(_, why)| why).collect()
    }
}
