//! Running the command while the lock is held.
//!
//! By default the command inherits the lock file's descriptor: its lock
//! belongs to the open file, so the lock stays held while the command — or
//! anything it leaves running in the background — keeps it open, even if
//! the wrapper is killed (as with flock(1)).

use std::fs::File;
use std::io;
use std::process::{Command, ExitStatus};

/// Makes commands started from now on inherit `file`, and with it its
/// lock; whether they will. Unix only: on Windows the lock stays the
/// wrapper's.
pub fn inherit(file: &File) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        crate::os::inherit(file.as_fd()).map(|()| true)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(false)
    }
}

/// Undoes what a parent may have left us that would hide the command's
/// exit status: an ignored `SIGCHLD` makes the kernel reap children
/// itself, so waiting for one fails.
pub fn reset_signals() {
    #[cfg(unix)]
    crate::os::reset_sigchld();
}

/// Runs `command` with our stdin, stdout and stderr and waits for it: its
/// exit code (see [`exit_code`]), or why it could not be started.
pub fn run(command: &mut Command) -> io::Result<i32> {
    reset_signals();
    command.status().map(exit_code)
}

/// Replaces this process with `command` (same pid); returns only if that
/// fails. Elsewhere than on Unix, runs it as a child and exits with its code.
pub fn exec(command: &mut Command) -> io::Error {
    reset_signals();
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.exec()
    }
    #[cfg(not(unix))]
    match run(command) {
        Ok(code) => std::process::exit(code),
        Err(e) => e,
    }
}

/// The command's exit code, or 128 + N when signal N killed it, as shells
/// report it.
pub fn exit_code(status: ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    // Only a signal leaves no code, and Unix is handled above.
    status.code().unwrap_or(1)
}
