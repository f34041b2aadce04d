//! Guarding a command that does not hold the lock itself — a server lock,
//! whose session cannot be inherited — so that it never runs unguarded:
//!
//! * `SIGTERM`, `SIGINT` and `SIGHUP` sent to packlock are passed on to the
//!   command, and packlock waits for it before it exits (and lets go of
//!   the lock);
//! * if packlock dies anyway (`SIGKILL`, the OOM killer), the command gets
//!   `SIGKILL` too (Linux's parent-death signal; elsewhere there is none);
//! * if the hold is lost while the command runs (the session ended), the
//!   command gets the `--on-lost` signal (default `TERM`).

use std::io;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use packlock::PackLockHold;

use crate::{child, os};

/// Watches over at most one command, from before the lock is taken.
pub struct Guard {
    /// The command's pid, once it runs (0 before).
    command: Arc<AtomicU32>,
}

impl Guard {
    /// Starts guarding: call before any other thread is started (the
    /// signals must be blocked on every thread, so that only the guard's
    /// receives them). A signal that comes before the command runs ends
    /// packlock as it would have (128 + the signal).
    pub fn start() -> io::Result<Guard> {
        os::block_forwarded()?;
        let command = Arc::new(AtomicU32::new(0));
        let pid = Arc::clone(&command);
        std::thread::Builder::new().name("packlock-signals".into()).spawn(move || {
            while let Ok(signal) = os::wait_for_forwarded() {
                match pid.load(Ordering::SeqCst) {
                    0 => std::process::exit(128 + signal),
                    pid => {
                        let _ = os::send_signal(pid, signal);
                    }
                }
            }
        })?;
        Ok(Guard { command })
    }

    /// Runs `command` under the guard while `hold` is held; its exit code
    /// (see [`child::run`]), or why it could not be started.
    pub fn run(&self, command: &mut Command, hold: &PackLockHold, on_lost: i32) -> io::Result<i32> {
        child::reset_signals();
        os::die_with_parent(command);
        let mut running = command.spawn()?;
        let pid = running.id();
        self.command.store(pid, Ordering::SeqCst);
        let lost = hold.lost();
        let finished = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&finished);
        std::thread::Builder::new().name("packlock-lost".into()).spawn(move || {
            futures_lite::future::block_on(lost);
            if !done.load(Ordering::SeqCst) {
                eprintln!("packlock: the lock was lost; sending signal {on_lost} to the command");
                let _ = os::send_signal(pid, on_lost);
            }
        })?;
        let status = running.wait();
        // From here on the pid may be another process's.
        finished.store(true, Ordering::SeqCst);
        self.command.store(0, Ordering::SeqCst);
        status.map(child::exit_code)
    }
}

/// A signal by name (`TERM`, `SIGTERM`, any case) or number.
pub fn parse_signal(text: &str) -> Result<i32, String> {
    if let Ok(number) = text.parse::<i32>() {
        return if (1..=64).contains(&number) {
            Ok(number)
        } else {
            Err(format!("`{text}` is not a signal number"))
        };
    }
    let name = text.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let signals = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("TERM", libc::SIGTERM),
        ("ALRM", libc::SIGALRM),
    ];
    signals
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, signal)| signal)
        .ok_or_else(|| format!("`{text}` is not a signal this command sends (TERM, INT, HUP, QUIT, KILL, USR1, USR2, ALRM, or a number)"))
}
