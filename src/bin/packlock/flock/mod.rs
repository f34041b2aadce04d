//! Run as `flock`: util-linux flock(1)'s command line and behaviour, for
//! systems that have none (macOS, Windows, minimal containers).
//!
//! It locks FILE itself (created if missing), DIRECTORY itself, or the
//! open file behind an inherited descriptor NUMBER, with the same
//! `flock(2)` lock as util-linux on Unix (`LockFileEx` on Windows), so
//! both exclude each other. It does not go through the library's
//! `PackLock`: flock(1) locks any path given, directories included, never
//! writes into the file, never creates missing directories, and hands the
//! lock to the command it runs; so does this mode.

mod args;
mod numbers;
mod open;
mod wait;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use self::args::{Api, FlockArgs, Op, Parsed, Target, ToRun};
use self::numbers::Timeout;
use self::open::Access;
use self::wait::{Failure, Wait};
use crate::child;

/// Locking failed for another reason than a conflict.
const EX_DATAERR: i32 = 65;
/// The lock file could not be opened.
const EX_NOINPUT: i32 = 66;
/// The command could not be run, or the form asked for is not available.
const EX_UNAVAILABLE: i32 = 69;
/// Out of memory or descriptors, no timer: a system failure.
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
 -u, --unlock             remove a lock
 -n, --nb, --nonblock     fail rather than wait
 -w, --timeout <secs>     wait for a limited amount of time
 -E, --conflict-exit-code <number>  exit code after conflict or timeout
 -o, --close              close file descriptor before running command
 -c, --command <command>  run a single command string through the shell
 -F, --no-fork            execute command without forking
     --fcntl              use fcntl(F_OFD_SETLK) rather than flock()
     --start <offset>     starting offset for lock (implies --fcntl)
     --length <number>    number of bytes to lock (implies --fcntl)
     --verbose            increase verbosity

 -h, --help               display this help
 -V, --version            display version

Examples:
 ( flock -n 9 || exit 1; make ) 9>/var/lock/build   the shell's descriptor 9
 flock /tmp/build.lock make                        run make holding the lock
 flock -s -w 2.5 /srv/data -c ./read.sh            shared, waiting at most 2.5 s

Exit status: the command's (128+N if signal N killed it); 1, or -E's code,
when the lock is held (-n) or -w runs out; 64 usage error; 65 locking failed;
66 the file cannot be opened; 69 the command cannot be run; 71 bad -w value.
";

/// Runs util-linux-style `flock` with `args` (without the program name).
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    match args::parse(args) {
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

/// What is locked: a file we opened, or a descriptor the caller passed.
enum Locked {
    File {
        file: File,
        path: std::path::PathBuf,
        access: Access,
    },
    #[cfg_attr(not(unix), allow(dead_code))]
    Descriptor(i32),
}

fn run(args: &FlockArgs) -> i32 {
    let (mut locked, command) = match &args.target {
        Target::Path { path, command } => match open_lock_file(path, args) {
            Ok(locked) => (locked, Some(command)),
            Err(code) => return code,
        },
        Target::Descriptor(number) => (Locked::Descriptor(*number), None),
    };
    let Some(wait) = wait(args) else {
        eprintln!("flock: cannot set up timer: Invalid argument");
        return EX_OSERR;
    };
    let started = Instant::now();
    if let Err(failure) = lock(&mut locked, args, wait) {
        return report_failure(args, &locked, failure);
    }
    let mut report = Report::new(args.verbose);
    let took = started.elapsed();
    report.line(format!(
        "flock: getting lock took {}.{:06} seconds",
        took.as_secs(),
        took.subsec_micros()
    ));
    let Some(to_run) = command else {
        report.finish();
        return 0;
    };
    let code = run_command(args, &locked, to_run, &mut report);
    report.finish();
    // Closing the file (at exit) lets go of the lock unless the command
    // left something running that inherited it; it is never unlocked.
    code
}

/// Opens FILE or DIRECTORY as flock(1) does (see [`open`]).
fn open_lock_file(path: &Path, args: &FlockArgs) -> Result<Locked, i32> {
    let exclusive_fcntl = matches!(args.api, Api::Fcntl { .. }) && args.op == Op::Exclusive;
    let access = if exclusive_fcntl { Access::WriteOnly } else { Access::ReadOnly };
    match open::open(path, access) {
        Ok(file) => Ok(Locked::File { file, path: path.to_path_buf(), access }),
        Err(e) => {
            eprintln!("flock: cannot open lock file {}: {}", path.display(), describe(&e));
            Err(open_failure_code(&e))
        }
    }
}

fn open_failure_code(error: &io::Error) -> i32 {
    if is_out_of_resources(error) {
        return EX_OSERR;
    }
    match error.kind() {
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::StorageFull => EX_CANTCREAT,
        _ => EX_NOINPUT,
    }
}

/// Out of memory, or of descriptors in the process or the system.
fn is_out_of_resources(error: &io::Error) -> bool {
    #[cfg(unix)]
    if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOLCK)) {
        return true;
    }
    error.kind() == io::ErrorKind::OutOfMemory
}

/// `-n`, and a `-w` of less than a microsecond, never wait (`-n` wins over
/// `-w`, as in flock(1)); `None` for a timeout no timer can be set for.
fn wait(args: &FlockArgs) -> Option<Wait> {
    match args.timeout {
        Some(Timeout::Unsettable) => None,
        _ if args.nonblock => Some(Wait::Never),
        Some(Timeout::NoWait) => Some(Wait::Never),
        Some(Timeout::After(timeout)) => Some(Wait::For(timeout)),
        None => Some(Wait::Forever),
    }
}

/// Takes (or with `-u` drops) the lock. Where a file opened read-only
/// cannot be locked (`EIO` or `EBADF`: NFS emulates `flock` with `fcntl`
/// locks, which need write access), it is reopened read-write once, as
/// flock(1) does.
fn lock(locked: &mut Locked, args: &FlockArgs, wait: Wait) -> Result<(), Failure> {
    let outcome = wait::lock(&|nonblock| request(locked, args, nonblock), wait);
    let Err(Failure::Io(error)) = &outcome else { return outcome };
    let Locked::File { file, path, access } = locked else { return outcome };
    let retry = is_emulated_lock_refusal(error)
        && *access == Access::ReadOnly
        && args.op != Op::Shared
        && open::open(path, Access::ReadWrite).map(|reopened| *file = reopened).is_ok();
    if !retry {
        return outcome;
    }
    *access = Access::ReadWrite;
    wait::lock(&|nonblock| request(locked, args, nonblock), wait)
}

fn is_emulated_lock_refusal(error: &io::Error) -> bool {
    #[cfg(unix)]
    return matches!(error.raw_os_error(), Some(libc::EIO | libc::EBADF));
    #[cfg(not(unix))]
    return {
        let _ = error;
        false
    };
}

/// One lock request on what is locked.
#[cfg(unix)]
fn request(locked: &Locked, args: &FlockArgs, nonblock: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    use crate::os::{self, LockOp};
    let fd = match locked {
        Locked::File { file, .. } => file.as_raw_fd(),
        Locked::Descriptor(number) => *number,
    };
    let op = match args.op {
        Op::Shared => LockOp::Shared,
        Op::Exclusive => LockOp::Exclusive,
        Op::Unlock => LockOp::Unlock,
    };
    match args.api {
        Api::Flock => os::flock(fd, op, nonblock),
        Api::Fcntl { start, length } => fcntl_lock(fd, op, nonblock, start, length),
    }
}

/// Offsets are C's `off_t`: a size beyond it wraps, and the kernel refuses
/// the range, as with flock(1).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn fcntl_lock(
    fd: i32,
    op: crate::os::LockOp,
    nonblock: bool,
    start: u64,
    length: u64,
) -> io::Result<()> {
    crate::os::ofd_lock(fd, op, nonblock, start as i64, length as i64)
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn fcntl_lock(_: i32, _: crate::os::LockOp, _: bool, _: u64, _: u64) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "open file description locks (--fcntl) are available on Linux only",
    ))
}

/// On Windows only files this process opened can be locked, with
/// `LockFileEx` through std; `-u` unlocks the file just opened.
#[cfg(windows)]
fn request(locked: &Locked, args: &FlockArgs, nonblock: bool) -> io::Result<()> {
    let Locked::File { file, .. } = locked else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "locking a file descriptor is not available on Windows",
        ));
    };
    if matches!(args.api, Api::Fcntl { .. }) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "--fcntl is not available on Windows",
        ));
    }
    let try_lock = |result: Result<(), std::fs::TryLockError>| match result {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    };
    match (args.op, nonblock) {
        (Op::Unlock, _) => file.unlock(),
        (Op::Shared, true) => try_lock(file.try_lock_shared()),
        (Op::Exclusive, true) => try_lock(file.try_lock()),
        (Op::Shared, false) => file.lock_shared(),
        (Op::Exclusive, false) => file.lock(),
    }
}

/// Says why the lock was not had (conflicts only with `--verbose`, as
/// flock(1)); the exit code.
fn report_failure(args: &FlockArgs, locked: &Locked, failure: Failure) -> i32 {
    match failure {
        Failure::Conflict { timed_out } => {
            if args.verbose {
                let what = if timed_out {
                    "timeout while waiting to get lock"
                } else {
                    "failed to get lock"
                };
                eprintln!("flock: {what}");
            }
            args.conflict_exit_code
        }
        Failure::Io(e) => {
            match locked {
                Locked::File { path, .. } => {
                    eprintln!("flock: {}: {}", path.display(), describe(&e))
                }
                Locked::Descriptor(number) => eprintln!("flock: {number}: {}", describe(&e)),
            }
            if is_out_of_resources(&e) { EX_OSERR } else { EX_DATAERR }
        }
    }
}

/// Runs the command, handing it the lock unless `-o`; with `-F` the
/// command replaces flock (same pid). The exit code.
fn run_command(args: &FlockArgs, locked: &Locked, to_run: &ToRun, report: &mut Report) -> i32 {
    let mut command = command(to_run);
    let program = command.get_program().to_owned();
    report.line(format!("flock: executing {}", program.display()));
    if let (Locked::File { file, .. }, false) = (locked, args.close)
        && let Err(e) = child::inherit(file)
    {
        eprintln!("flock: cannot pass the lock to {}: {}", program.display(), describe(&e));
        return EX_OSERR;
    }
    let outcome = if args.no_fork {
        // As with C's stdio, lines still buffered are lost with the exec.
        report.discard();
        Err(child::exec(&mut command))
    } else {
        child::run(&mut command)
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("flock: failed to execute {}: {}", program.display(), describe(&e));
        if e.kind() == io::ErrorKind::OutOfMemory { EX_OSERR } else { EX_UNAVAILABLE }
    })
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

/// An error as C's `strerror` words it: std's message without the
/// " (os error N)" it appends.
fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    match error.raw_os_error() {
        Some(code) => {
            text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text).to_string()
        }
        None => text,
    }
}

/// `--verbose` lines, which flock(1) prints on stdout through C's stdio:
/// at once on a terminal, else buffered until flock exits — after the
/// command's own output, and never with `-F`, whose exec discards them.
struct Report {
    verbose: bool,
    at_once: bool,
    buffered: String,
}

impl Report {
    fn new(verbose: bool) -> Self {
        Self { verbose, at_once: io::stdout().is_terminal(), buffered: String::new() }
    }

    fn line(&mut self, line: String) {
        if !self.verbose {
            return;
        }
        if self.at_once {
            println!("{line}");
        } else {
            self.buffered.push_str(&line);
            self.buffered.push('\n');
        }
    }

    fn discard(&mut self) {
        self.buffered.clear();
    }

    fn finish(self) {
        let mut stdout = io::stdout().lock();
        let _ = stdout.write_all(self.buffered.as_bytes());
        let _ = stdout.flush();
    }
}
