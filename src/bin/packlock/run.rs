//! `packlock DIR COMMAND`: lock, run the command, let go, pass its exit
//! code on.
//!
//! The command inherits a lock file's descriptor unless `--close`: the
//! lock belongs to the open file, so it stays held while the command, or
//! anything it leaves running, keeps the descriptor — also when packlock
//! is killed. packlock then never unlocks (that would take the lock from
//! them too); it only closes its descriptor by exiting.

use std::ffi::OsStr;
use std::io;
use std::process::Command;
use std::time::Instant;

use packlock::{Holder, PackLock, PackLockError, PackLockHold};

use crate::args::{Args, Wait};
use crate::{EXIT_FAILURE, child, fail};

/// The command was found but could not be started.
const EXIT_CANNOT_RUN: i32 = 126;
/// The command was not found.
const EXIT_NOT_FOUND: i32 = 127;
/// The environment variable that tells the command its hold's fence.
const FENCE_VAR: &str = "PACKLOCK_FENCE";

/// Locks, runs the command, releases; the exit code to leave with.
pub fn run(args: &Args) -> i32 {
    let Some((program, program_args)) = args.command.split_first() else {
        eprintln!("packlock: no command given");
        return 2;
    };
    // Before anything starts a thread (connecting to a server does).
    let guard = match start_guard(args) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("packlock: cannot watch over the command: {e}");
            return EXIT_FAILURE;
        }
    };
    let lock = match args.open(label(args, program)) {
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
    let mut command = Command::new(program);
    command.args(program_args);
    if let Some(fence) = hold.fence() {
        // What the command passes to storage that rejects stale holders.
        command.env(FENCE_VAR, fence.to_string());
    }
    let shared_with_command = match hand_over(&hold, args.close) {
        Ok(handed_over) => handed_over,
        Err(e) => {
            eprintln!(
                "packlock: cannot pass the lock on {} to the command: {e}",
                lock.path().display()
            );
            return EXIT_FAILURE;
        }
    };
    let code = run_command(program, &mut command, &guard, &hold, args);
    if shared_with_command {
        let_go(hold, args.verbose, held_since);
    } else {
        release(hold, args.verbose, held_since);
    }
    code
}

/// The label to record: as given, else — for a directory's own lock file,
/// not a `--file` that may be anyone's — `packlock PROGRAM` (without the
/// arguments, which may be secrets; lock files are usually world-readable).
/// The library never writes it over other data in the lock file, and a
/// lock without a label opens its file read-only.
fn label(args: &Args, program: &OsStr) -> Option<String> {
    let default = || format!("packlock {}", program.to_string_lossy());
    args.label.clone().or_else(|| args.file.is_none().then(default))
}

/// Lets the command inherit the lock file's descriptor, unless `close`;
/// whether it does. A server lock cannot be inherited: packlock holds it.
fn hand_over(hold: &PackLockHold, close: bool) -> io::Result<bool> {
    let Some(file) = hold.lock_file().filter(|_| !close) else { return Ok(false) };
    child::inherit(file)
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

/// The guard of a command that cannot inherit its lock: a server lock's
/// (see [`crate::guard`]).
#[cfg(all(feature = "postgres", unix))]
type Guard = Option<crate::guard::Guard>;
#[cfg(not(all(feature = "postgres", unix)))]
type Guard = Option<std::convert::Infallible>;

#[cfg(all(feature = "postgres", unix))]
fn start_guard(args: &Args) -> io::Result<Guard> {
    match args.postgres {
        Some(_) => crate::guard::Guard::start().map(Some),
        None => Ok(None),
    }
}

#[cfg(not(all(feature = "postgres", unix)))]
fn start_guard(_args: &Args) -> io::Result<Guard> {
    Ok(None)
}

/// Runs the command, under the guard if there is one; its exit code, or
/// 126/127 when it cannot be started (as `env`, `timeout` and shells do).
fn run_command(
    program: &OsStr,
    command: &mut Command,
    guard: &Guard,
    hold: &PackLockHold,
    args: &Args,
) -> i32 {
    #[cfg(all(feature = "postgres", unix))]
    let ran = match guard {
        Some(guard) => guard.run(command, hold, args.on_lost),
        None => child::run(command),
    };
    #[cfg(not(all(feature = "postgres", unix)))]
    let ran = match *guard {
        Some(never) => match never {},
        None => {
            let _ = (hold, args);
            child::run(command)
        }
    };
    match ran {
        Ok(code) => code,
        Err(e) => {
            eprintln!("packlock: cannot run `{}`: {e}", program.display());
            if e.kind() == io::ErrorKind::NotFound { EXIT_NOT_FOUND } else { EXIT_CANNOT_RUN }
        }
    }
}

/// Lets go of a lock shared with the command without unlocking it: our
/// descriptor closes as packlock exits, and the lock ends when no process
/// the command left keeps its copy open. Dropping the hold would unlock it
/// for all of them.
fn let_go(hold: PackLockHold, verbose: bool, held_since: Instant) {
    if verbose {
        let held = held_since.elapsed().as_secs_f64();
        let path = hold.path().display();
        eprintln!("packlock: let go of {path} after {held:.2}s (with the command's end)");
    }
    std::mem::forget(hold);
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
