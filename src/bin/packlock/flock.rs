//! Run as `flock`: util-linux flock(1)'s command line and behaviour, for
//! systems that have none (macOS, Windows, minimal containers).
//!
//! It locks FILE itself (created if missing) or DIRECTORY itself (opened
//! read-only), with the same `flock(2)` lock as util-linux on Unix
//! (`LockFileEx` on Windows), so both exclude each other on the same path.
//! It does not go through the library's `PackLock`: flock(1) locks any
//! path given, directories included, never writes a holder record into the
//! file and never creates missing directories, and so does this mode.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::child;
use crate::flock_args::{self, FlockArgs, Parsed, Target, ToRun};

/// Locking failed for another reason than a conflict.
const EX_DATAERR: i32 = 65;
/// The lock file could not be opened.
const EX_NOINPUT: i32 = 66;
/// The command could not be run, or the form asked for is not available.
const EX_UNAVAILABLE: i32 = 69;
/// Out of memory or another system failure.
const EX_OSERR: i32 = 71;
/// The lock file could not be created: read-only file system, disk full.
const EX_CANTCREAT: i32 = 73;

const HELP: &str = "\
Usage:
 flock [options] <file>|<directory> <command> [<argument>...]
 flock [options] <file>|<directory> -c <command>
 flock [options] <file descriptor number>

Manage file locks from shell scripts (packlock's flock(1)).

Options:
 -s, --shared             get a shared lock
 -x, --exclusive          get an exclusive lock (default)
 -u, --unlock             remove a lock (not available: see below)
 -n, --nonblock           fail rather than wait
 -w, --timeout <secs>     wait for a limited amount of time
 -E, --conflict-exit-code <number>  exit code after conflict or timeout
 -o, --close              close file descriptor before running command
                          (always: the command never inherits the lock)
 -c, --command <command>  run a single command string through the shell
 -F, --no-fork            accepted; the command still runs as a child
     --verbose            increase verbosity

 -h, --help               display this help
 -V, --version            display version

Examples:
 flock /tmp/build.lock make                  run make holding the lock
 flock -n /tmp/build.lock -c 'make all'      give up at once if it is held
 flock -s -w 2.5 /srv/data ./read.sh         shared, waiting at most 2.5 s

Locking an inherited descriptor (flock NUMBER, and -u) is not available:
this flock can only reach a descriptor by reopening it, which would make a
separate lock that ends when flock exits, not the shell's.

Exit status: the command's (128+N if signal N killed it); 1, or -E's code,
when the lock is held (-n) or -w runs out; 64 usage error; 65 locking failed;
66 the file cannot be opened; 69 the command cannot be run; 71 bad -w value.
";

/// Runs util-linux-style `flock` with `args` (without the program name).
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    match flock_args::parse(args) {
        Ok(Parsed::Run(args)) => run(&args),
        Ok(Parsed::Help) => {
            print!("{HELP}");
            0
        }
        Ok(Parsed::Version) => {
            println!("flock from packlock {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Err(e) => {
            eprintln!("flock: {}", e.message);
            if e.try_help {
                eprintln!("Try 'flock --help' for more information.");
            }
            e.code
        }
    }
}

/// Whether the program was started as `flock` (`flock.exe` on Windows):
/// a link or copy of packlock under that name, as busybox dispatches.
pub fn invoked_as_flock(argv0: &std::ffi::OsStr) -> bool {
    let Some(stem) = Path::new(argv0).file_stem() else { return false };
    if cfg!(windows) { stem.eq_ignore_ascii_case("flock") } else { stem == "flock" }
}

fn run(args: &FlockArgs) -> i32 {
    let (path, to_run) = match &args.target {
        Target::Path { path, command } => (path, command),
        Target::Descriptor(number) => return descriptor_unavailable(*number),
    };
    if args.unlock {
        eprintln!(
            "flock: --unlock only applies to an inherited file descriptor, which this flock \
             cannot lock (see flock --help)"
        );
        return EX_UNAVAILABLE;
    }
    let file = match open(path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("flock: cannot open lock file {}: {e}", path.display());
            return open_failure_code(&e);
        }
    };
    let started = Instant::now();
    let file = match lock(file, args.shared, wait(args)) {
        Ok(file) => file,
        Err(failure) => return report_failure(args, path, failure),
    };
    let mut command = command(to_run);
    if args.verbose {
        // On stdout, as flock(1) prints them.
        println!("flock: getting lock took {:.6} seconds", started.elapsed().as_secs_f64());
        println!("flock: executing {}", command.get_program().display());
        if args.no_fork {
            // The lock is close-on-exec: exec'ing the command would drop it.
            eprintln!("flock: --no-fork: the command runs as a child; flock holds the lock");
        }
    }
    let code = match child::run(&mut command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flock: failed to execute {}: {e}", command.get_program().display());
            if e.kind() == ErrorKind::OutOfMemory { EX_OSERR } else { EX_UNAVAILABLE }
        }
    };
    // Closing the file releases the lock.
    drop(file);
    code
}

/// `flock NUMBER` cannot be done faithfully: see the message.
fn descriptor_unavailable(number: i32) -> i32 {
    if cfg!(windows) {
        eprintln!("flock: {number}: locking a file descriptor is not available on Windows");
    } else {
        eprintln!(
            "flock: {number}: locking an inherited file descriptor is not available in this \
             flock: it could only reopen the file, which makes a separate lock that ends when \
             flock exits instead of the shell's; lock the file by name instead \
             (flock FILE COMMAND, or flock FILE -c COMMAND)"
        );
    }
    EX_UNAVAILABLE
}

/// Opens the path to lock as flock(1) does: a file is created if missing
/// (never truncated); a directory, or a file we may only read, is opened
/// read-only, which is enough to lock it.
fn open(path: &Path) -> io::Result<File> {
    let opened = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path);
    let error = match opened {
        Ok(file) => return Ok(file),
        Err(e) => e,
    };
    let kind = error.kind();
    let may_read = matches!(
        kind,
        ErrorKind::IsADirectory | ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
    );
    if !may_read {
        return Err(error);
    }
    File::open(path).map_err(|e| if e.kind() == ErrorKind::NotFound { error } else { e })
}

fn open_failure_code(error: &io::Error) -> i32 {
    match error.kind() {
        ErrorKind::ReadOnlyFilesystem | ErrorKind::StorageFull => EX_CANTCREAT,
        ErrorKind::OutOfMemory => EX_OSERR,
        _ => EX_NOINPUT,
    }
}

/// How long to wait for a held lock.
#[derive(Clone, Copy, Debug)]
enum Wait {
    Never,
    For(Duration),
    Forever,
}

/// `-n`, and `-w 0`, never wait (`-n` wins over `-w`, as in flock(1)); a
/// timeout beyond what the clock can reach waits without limit.
fn wait(args: &FlockArgs) -> Wait {
    match args.timeout {
        _ if args.nonblock => Wait::Never,
        Some(timeout) if timeout.is_zero() => Wait::Never,
        Some(timeout) if Instant::now().checked_add(timeout).is_some() => Wait::For(timeout),
        _ => Wait::Forever,
    }
}

/// Why the lock was not had.
#[derive(Debug)]
enum Failure {
    Conflict,
    TimedOut,
    Io(io::Error),
}

/// Takes the lock on `file`, waiting as allowed; the file, now locked.
fn lock(file: File, shared: bool, wait: Wait) -> Result<File, Failure> {
    match wait {
        Wait::Never => {
            let locked = if shared { file.try_lock_shared() } else { file.try_lock() };
            match locked {
                Ok(()) => Ok(file),
                Err(std::fs::TryLockError::WouldBlock) => Err(Failure::Conflict),
                Err(std::fs::TryLockError::Error(e)) => Err(Failure::Io(e)),
            }
        }
        Wait::Forever => lock_blocking(&file, shared).map(|()| file).map_err(Failure::Io),
        Wait::For(timeout) => lock_within(file, shared, timeout),
    }
}

fn lock_blocking(file: &File, shared: bool) -> io::Result<()> {
    if shared { file.lock_shared() } else { file.lock() }
}

/// Waits in the kernel on a helper thread, for at most `timeout`. On a
/// timeout the thread is left waiting: flock exits right after, and exiting
/// ends the wait, or releases a lock granted in that instant.
fn lock_within(file: File, shared: bool, timeout: Duration) -> Result<File, Failure> {
    let (granted, outcome) = mpsc::channel();
    thread::spawn(move || {
        let locked = lock_blocking(&file, shared).map(|()| file);
        let _ = granted.send(locked);
    });
    match outcome.recv_timeout(timeout) {
        Ok(locked) => locked.map_err(Failure::Io),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Failure::TimedOut),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(Failure::Io(io::Error::other("the thread waiting for the lock ended")))
        }
    }
}

/// Says why the lock was not had (conflicts only with `--verbose`, as
/// flock(1)); the exit code.
fn report_failure(args: &FlockArgs, path: &Path, failure: Failure) -> i32 {
    match failure {
        Failure::Conflict | Failure::TimedOut => {
            if args.verbose {
                let conflict = matches!(failure, Failure::Conflict);
                let what = if conflict {
                    "failed to get lock"
                } else {
                    "timeout while waiting to get lock"
                };
                eprintln!("flock: {what}");
            }
            args.conflict_exit_code
        }
        Failure::Io(e) => {
            eprintln!("flock: {}: {e}", path.display());
            if e.kind() == ErrorKind::OutOfMemory { EX_OSERR } else { EX_DATAERR }
        }
    }
}

/// The command to run: as given, or `-c`'s through the shell (`$SHELL`,
/// else `/bin/sh`, as flock(1); `cmd /C` on Windows).
fn command(to_run: &ToRun) -> Command {
    match to_run {
        ToRun::Argv { program, args } => {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
        ToRun::Shell(line) => shell(line),
    }
}

#[cfg(unix)]
fn shell(line: &std::ffi::OsStr) -> Command {
    let shell = std::env::var_os("SHELL").filter(|shell| !shell.is_empty());
    let mut command = Command::new(shell.unwrap_or_else(|| "/bin/sh".into()));
    command.arg("-c").arg(line);
    command
}

#[cfg(windows)]
fn shell(line: &std::ffi::OsStr) -> Command {
    use std::os::windows::process::CommandExt;
    let mut command = Command::new("cmd");
    // Passed as typed: cmd.exe parses its command line itself.
    command.arg("/C").raw_arg(line);
    command
}
