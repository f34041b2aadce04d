//! `packlock`: run a command while holding the lock of a directory — a
//! portable `flock(1)`.
//!
//! ```text
//! packlock [--shared] [--nonblock | --timeout SECS] [--conflict-exit-code N]
//!          [--file NAME] [--label TEXT] [--verbose] DIR -- COMMAND [ARGS...]
//! packlock --status [--file NAME] DIR
//! ```
//!
//! Build it with `cargo build --example packlock` (the binary lands in
//! `target/debug/examples/packlock`), or run it through
//! `cargo run --example packlock -- ARGS`.
//!
//! The first form takes the lock of `DIR` — the sidecar file
//! `DIR/.pack-lock`, or `DIR/NAME` with `--file NAME`, created with `DIR` if
//! missing — runs `COMMAND` with the terminal's stdin, stdout and stderr,
//! waits for it, releases the lock and exits with the command's exit code.
//! The `--` before the command is optional unless the command's name starts
//! with `-`; everything after the command's name is passed to it untouched.
//!
//! * `-s`, `--shared`: take a shared lock; any number of shared holders
//!   (packlock or `flock -s`) run at once, an exclusive one excludes them.
//! * `-n`, `--nonblock`: give up at once if the lock is held.
//! * `-w`, `--timeout SECS`: give up after `SECS` seconds; fractions such as
//!   `0.5` are fine, and `0` means `--nonblock`. Any finite number `>= 0` is
//!   accepted (`1e30` simply never expires); negative numbers, `nan`, `inf`
//!   and anything else are usage errors. Without `-n` or `-w`, packlock
//!   waits as long as it takes.
//! * `-E`, `--conflict-exit-code N`: the exit code when packlock gives up
//!   (0 to 255, default 1). It then prints who holds the lock to stderr.
//! * `--file NAME`: the lock file's name inside `DIR` (a bare file name).
//! * `--label TEXT`: what `--status` and waiting processes see as the
//!   holder's label. Default: `packlock COMMAND` (the command's name as
//!   given, without its arguments, since the lock file is usually readable
//!   by everyone). At most 1,024 bytes are kept (cut on a character
//!   boundary) and line breaks become spaces. The label is recorded as the
//!   lock file's whole content, so it is left out when that file holds
//!   anything else — data someone locks with `flock(1)`, or a log the
//!   command appends to — and such a file is never written. A lock file
//!   that is a directory, FIFO, socket or device is refused (exit 1).
//! * `-v`, `--verbose`: tell on stderr when the lock is held and how long it
//!   took to get, and when it is released.
//! * `--status DIR`: print whether the lock is free or held, and by whom:
//!   one line per holder with its pid, shared or exclusive, label and how
//!   long it has held the lock, where known (Linux knows every holder's pid;
//!   elsewhere only labelled packlock holders are seen). It creates nothing:
//!   a missing lock file is free. It tells by taking the lock without
//!   waiting and dropping it at once, so for that instant a `--nonblock`
//!   elsewhere may find it busy.
//!
//! # Exit codes
//!
//! | code | when |
//! |---|---|
//! | the command's | it ran; 128 + N if signal N killed it (Unix), as shells report it |
//! | 1, or `-E N` | the lock was held: `--nonblock` gave up, or `--timeout` passed |
//! | 1 | packlock itself failed: the lock file could not be created, opened or locked, or `--file` is not a bare file name (the message names the path) |
//! | 2 | usage error: a missing `DIR` or `COMMAND`, an unknown option, a bad value |
//! | 126, 127 | the command could not be started: 127 when it was not found, 126 otherwise (as `env`, `timeout` and shells do) |
//! | `--status`: 0, 1 | 0 when the lock is free, 1 when it is held or cannot be checked |
//!
//! # Terminal session
//!
//! ```text
//! $ packlock --label nightly /srv/pack -- sleep 600 &
//! $ packlock --status /srv/pack
//! held: /srv/pack/.pack-lock
//!   pid 4242, exclusive, label "nightly", for 7s
//! $ packlock --nonblock /srv/pack -- make; echo "exit $?"
//! packlock: lock file `/srv/pack/.pack-lock` is busy: held by pid 4242 ("nightly", for 9s)
//! exit 1
//! $ packlock --timeout 0.5 --conflict-exit-code 75 /srv/pack -- make; echo "exit $?"
//! packlock: timed out after 500ms waiting for lock file `/srv/pack/.pack-lock`; held by pid 4242 ("nightly", for 12s)
//! exit 75
//! $ packlock --shared /srv/other -- sh -c 'exit 3'; echo "exit $?"
//! exit 3
//! ```
//!
//! # When the lock is released
//!
//! packlock holds the lock itself, in a file descriptor opened close-on-exec,
//! so the command inherits no lock: the lock is released when the command
//! exits (or is killed), even if the command left background processes
//! behind. If packlock itself dies — `kill -9`, or Ctrl-C, which the
//! terminal sends to packlock and the command alike — the kernel releases
//! the lock at once, even if the command is still running (as with
//! `flock(1)`).

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use clap::Parser;
use packlock::{Holder, PACK_LOCK_FILE_NAME, PackLock, PackLockError, PackLockHold};

/// packlock's own failures: the lock file could not be opened or locked.
const EXIT_FAILURE: i32 = 1;
/// The command was found but could not be started.
const EXIT_CANNOT_RUN: i32 = 126;
/// The command was not found.
const EXIT_NOT_FOUND: i32 = 127;
/// `--status`: the lock is free.
const STATUS_FREE: i32 = 0;
/// `--status`: the lock is held, or its state cannot be told.
const STATUS_HELD: i32 = 1;

/// Run a command while holding the lock of a directory (a portable flock(1)).
#[derive(Debug, Parser)]
#[command(
    name = "packlock",
    version,
    override_usage = "packlock [OPTIONS] <DIR> [--] <COMMAND> [ARGS]...\n       packlock --status [--file <NAME>] <DIR>",
    after_help = "Exit codes: the command's own (128+N if killed by signal N); the conflict code \
                  (default 1) when the lock is held; 1 when packlock fails; 2 for usage errors; \
                  126/127 when the command cannot be run or is not found. \
                  --status: 0 free, 1 held."
)]
struct Args {
    /// Take a shared lock: shared holders run together, exclusive ones alone
    #[arg(short, long)]
    shared: bool,

    /// Give up at once if the lock is held
    #[arg(short, long, visible_alias = "nb", conflicts_with = "timeout")]
    nonblock: bool,

    /// Give up after SECS seconds (fractions allowed; 0 means --nonblock)
    #[arg(
        short = 'w',
        long,
        value_name = "SECS",
        value_parser = parse_seconds,
        allow_negative_numbers = true
    )]
    timeout: Option<Duration>,

    /// Exit code when the lock is held and packlock gives up
    #[arg(short = 'E', long, value_name = "N", default_value_t = 1)]
    conflict_exit_code: u8,

    /// Lock file name inside DIR [default: .pack-lock]
    #[arg(long, value_name = "NAME")]
    file: Option<OsString>,

    /// Label shown to others asking who holds the lock, up to 1,024 bytes [default: "packlock COMMAND"]
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,

    /// Report on stderr when the lock is held, after how long, and when released
    #[arg(short, long)]
    verbose: bool,

    /// Print whether the lock of DIR is free (exit 0) or held and by whom (exit 1)
    #[arg(
        long,
        conflicts_with_all = ["shared", "nonblock", "timeout", "conflict_exit_code", "label", "command"]
    )]
    status: bool,

    /// The directory to lock (created if missing)
    #[arg(value_name = "DIR")]
    dir: PathBuf,

    /// The command to run while holding the lock, and its arguments
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "status"
    )]
    command: Vec<OsString>,
}

/// How long to wait for a held lock.
#[derive(Clone, Copy, Debug)]
enum Wait {
    Never,
    For(Duration),
    Forever,
}

impl Args {
    fn wait(&self) -> Wait {
        match self.timeout {
            _ if self.nonblock => Wait::Never,
            Some(timeout) if timeout.is_zero() => Wait::Never,
            Some(timeout) => Wait::For(timeout),
            None => Wait::Forever,
        }
    }

    fn file_name(&self) -> &OsStr {
        self.file.as_deref().unwrap_or(OsStr::new(PACK_LOCK_FILE_NAME))
    }

    /// The lock file's path, before the library checks the name.
    fn lock_file(&self) -> PathBuf {
        self.dir.join(self.file_name())
    }

    fn mode(&self) -> &'static str {
        if self.shared { "shared" } else { "exclusive" }
    }
}

fn main() {
    let args = Args::parse();
    let code = if args.status { status(&args) } else { run(&args) };
    // Everything is dropped by now: the lock is released before we exit.
    let _ = io::stdout().flush();
    std::process::exit(code);
}

/// `--timeout`: a number of seconds, fractions allowed, like `flock -w`.
/// Any finite non-negative number goes; one too large for a `Duration`
/// waits as long as [`Duration::MAX`], which is forever.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 =
        text.trim().parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !seconds.is_finite() {
        return Err(format!("`{text}` is not a finite number of seconds"));
    }
    if seconds < 0.0 {
        return Err(format!("`{text}` is negative; the timeout is a number of seconds >= 0"));
    }
    Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// The first form: lock, run the command, release, pass its exit code on.
fn run(args: &Args) -> i32 {
    let Some((program, program_args)) = args.command.split_first() else {
        eprintln!("packlock: no command given");
        return 2;
    };
    let lock = match open(args, label(args, program)) {
        Ok(lock) => lock,
        Err(e) => return fail(&e),
    };
    let started = Instant::now();
    let hold = match acquire(&lock, args.wait(), args.verbose) {
        Ok(hold) => hold,
        Err(e @ (PackLockError::Busy { .. } | PackLockError::TimedOut { .. })) => {
            report_conflict(&lock, &e);
            return i32::from(args.conflict_exit_code);
        }
        Err(e) => return fail(&e),
    };
    if args.verbose {
        let waited = started.elapsed().as_secs_f64();
        let path = lock.path().display();
        eprintln!("packlock: locked {path} ({}) after {waited:.2}s", args.mode());
    }
    let held_since = Instant::now();
    let code = run_command(program, program_args);
    release(hold, args.verbose, held_since);
    code
}

/// Opens the lock of `DIR` as the options say.
fn open(args: &Args, label: Option<String>) -> Result<PackLock, PackLockError> {
    let mut builder = PackLock::builder(&args.dir).file_name(args.file_name()).shared(args.shared);
    if let Some(label) = label {
        builder = builder.label(label);
    }
    builder.open()
}

/// The label to record: as given, else `packlock PROGRAM` (without the
/// arguments, which may be secrets; lock files are usually world-readable).
/// The library never writes it over other data in the lock file.
fn label(args: &Args, program: &OsStr) -> Option<String> {
    let default = || format!("packlock {}", program.to_string_lossy());
    Some(args.label.clone().unwrap_or_else(default))
}

/// Takes the lock, waiting as allowed; with `verbose`, says so when the
/// lock is held by someone else and we wait.
fn acquire(lock: &PackLock, wait: Wait, verbose: bool) -> Result<PackLockHold, PackLockError> {
    let busy = match lock.try_acquire() {
        Ok(hold) => return Ok(hold),
        Err(busy @ PackLockError::Busy { .. }) => busy,
        Err(e) => return Err(e),
    };
    if verbose && !matches!(wait, Wait::Never) {
        say_waiting(&busy);
    }
    match wait {
        Wait::Never => Err(busy),
        Wait::For(timeout) => lock.acquire_timeout(timeout),
        Wait::Forever => lock.acquire(),
    }
}

/// `packlock: waiting for PATH, held by pid 4242 ("nightly", for 7s)`.
fn say_waiting(busy: &PackLockError) {
    if let PackLockError::Busy { path, holder, .. } = busy {
        let holder = holder.as_ref().map_or_else(|| "another holder".into(), Holder::to_string);
        eprintln!("packlock: waiting for {}, held by {holder}", path.display());
    }
}

/// Tells who holds the lock we could not get.
fn report_conflict(lock: &PackLock, error: &PackLockError) {
    match error {
        // Busy names the holder itself, where it is known.
        PackLockError::Busy { .. } => eprintln!("packlock: {error}"),
        _ => {
            let holders: Vec<String> = lock.holders().iter().map(Holder::to_string).collect();
            let holders = if holders.is_empty() {
                "held by another holder".to_string()
            } else {
                format!("held by {}", holders.join(", "))
            };
            eprintln!("packlock: {error}; {holders}");
        }
    }
}

/// Prints packlock's own failure and returns its exit code.
fn fail(error: &PackLockError) -> i32 {
    eprintln!("packlock: {error}");
    EXIT_FAILURE
}

/// Runs the command with our stdin, stdout and stderr; its exit code, or
/// 126/127 when it cannot be started.
fn run_command(program: &OsStr, args: &[OsString]) -> i32 {
    match Command::new(program).args(args).status() {
        Ok(status) => exit_code(status),
        Err(e) => {
            eprintln!("packlock: cannot run `{}`: {e}", program.display());
            if e.kind() == io::ErrorKind::NotFound { EXIT_NOT_FOUND } else { EXIT_CANNOT_RUN }
        }
    }
}

/// The command's exit code, or 128 + N when signal N killed it, as shells
/// report it.
fn exit_code(status: ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    status.code().unwrap_or(EXIT_FAILURE)
}

/// Releases the lock. The command has run, so a failure to unlock (the
/// kernel unlocks at exit anyway) is only reported, not an exit code.
fn release(hold: PackLockHold, verbose: bool, held_since: Instant) {
    let path = hold.path().to_path_buf();
    match hold.release() {
        Ok(()) if verbose => {
            let held = held_since.elapsed().as_secs_f64();
            eprintln!("packlock: released {} after {held:.2}s", path.display());
        }
        Ok(()) => {}
        Err(e) => eprintln!("packlock: warning: {e}"),
    }
}

/// `--status`: whether the lock is free (0) or held (1), and by whom.
fn status(args: &Args) -> i32 {
    let path = args.lock_file();
    if is_plain_name(args.file_name()) && is_missing(&path) {
        println!("free: {} (no lock file)", path.display());
        return STATUS_FREE;
    }
    // No label: checking must not overwrite the holder's record.
    let lock = match PackLock::builder(&args.dir).file_name(args.file_name()).open() {
        Ok(lock) => lock,
        Err(e) => return fail(&e),
    };
    match lock.try_acquire() {
        Ok(hold) => {
            drop(hold);
            println!("free: {}", lock.path().display());
            STATUS_FREE
        }
        Err(PackLockError::Busy { .. }) => {
            println!("held: {}", lock.path().display());
            print_holders(&lock.holders());
            STATUS_HELD
        }
        Err(e) => fail(&e),
    }
}

/// A name the library will accept as is, so that a missing file under it
/// means a free lock (others are left to the library to reject).
fn is_plain_name(name: &OsStr) -> bool {
    Path::new(name).file_name() == Some(name)
}

fn is_missing(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

fn print_holders(holders: &[Holder]) {
    if holders.is_empty() {
        println!("  holder unknown");
    }
    for holder in holders {
        println!("  {}", describe(holder));
    }
}

/// `pid 4242, exclusive, label "nightly", for 7s`, with what is known.
fn describe(holder: &Holder) -> String {
    let mut line = format!("pid {}", holder.pid);
    match holder.shared {
        Some(true) => line.push_str(", shared"),
        Some(false) => line.push_str(", exclusive"),
        None => {}
    }
    if let Some(label) = &holder.label {
        let _ = write!(line, ", label {label:?}");
    }
    if let Some(age) = holder.since.and_then(|since| since.elapsed().ok()) {
        let _ = write!(line, ", for {}", age_text(age));
    }
    line
}

/// `42s`, `3m07s`, `5h02m`.
fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}
