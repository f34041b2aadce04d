//! Running the command while the lock is held.

use std::io;
use std::process::{Command, ExitStatus};

/// Runs `command` with our stdin, stdout and stderr and waits for it: its
/// exit code (see [`exit_code`]), or why it could not be started.
pub fn run(command: &mut Command) -> io::Result<i32> {
    command.status().map(exit_code)
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
    // Only a signal leaves no code, and Unix is handled above.
    status.code().unwrap_or(1)
}
