//! The system calls the command needs that std has no safe form of: this
//! is the only module of the command (and of packlock) with `unsafe`.
//!
//! * `flock(2)` and `fcntl(2)` lock requests on a **raw descriptor
//!   number**: `flock 9` must lock the open file the shell put on
//!   descriptor 9, which no Rust object owns. These calls take the number
//!   as a plain integer and claim no ownership of it — nothing is ever
//!   closed here — and a number that is not open only makes them fail with
//!   `EBADF`.
//! * Clearing close-on-exec on the lock file, so the command inherits the
//!   lock (std opens every file close-on-exec, and says nothing about
//!   inheritance).
//! * Resetting an inherited "ignore `SIGCHLD`", without which the
//!   command's exit status cannot be collected.
//! * Interrupting a thread blocked in a lock call when a timeout expires:
//!   a signal with a handler that does nothing makes the call return
//!   `EINTR`, which is the only way to end a `flock(2)` wait without
//!   leaving a lock behind that may be granted later.
//!
//! Each call is argued in its `// SAFETY:` comment. The library itself is
//! `#![forbid(unsafe_code)]`.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// The lock a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOp {
    Shared,
    Exclusive,
    Unlock,
}

/// `flock(fd, op)`, with `LOCK_NB` when `nonblock`.
pub fn flock(fd: RawFd, op: LockOp, nonblock: bool) -> io::Result<()> {
    let op = match op {
        LockOp::Shared => libc::LOCK_SH,
        LockOp::Exclusive => libc::LOCK_EX,
        LockOp::Unlock => libc::LOCK_UN,
    };
    let op = if nonblock { op | libc::LOCK_NB } else { op };
    // SAFETY: flock(2) takes two integers and touches no memory of ours.
    // `fd` is either a descriptor this process opened and still owns, or
    // one the caller inherited and named on the command line, which no Rust
    // object in this process owns (descriptor mode locks it before opening
    // anything); an unopened number fails with EBADF. Nothing is closed.
    check(unsafe { libc::flock(fd, op) })
}

/// An open file description lock (`F_OFD_SETLK`, or `F_OFD_SETLKW` unless
/// `nonblock`) on `length` bytes from `start` (0: to the end of the file).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn ofd_lock(fd: RawFd, op: LockOp, nonblock: bool, start: i64, length: i64) -> io::Result<()> {
    let kind = match op {
        LockOp::Shared => libc::F_RDLCK,
        LockOp::Exclusive => libc::F_WRLCK,
        LockOp::Unlock => libc::F_UNLCK,
    };
    // SAFETY: `libc::flock` is a plain C struct of integers, for which all
    // zeroes is a valid value.
    let mut range: libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = kind as libc::c_short;
    range.l_whence = libc::SEEK_SET as libc::c_short;
    range.l_start = start;
    range.l_len = length;
    // `l_pid` must be 0 for open file description locks: zeroed above.
    let command = if nonblock { libc::F_OFD_SETLK } else { libc::F_OFD_SETLKW };
    // SAFETY: these fcntl commands read the struct behind the pointer,
    // which is a live, initialised local for the whole call. `fd` is as in
    // `flock` above: owned by us or named by the caller; nothing is closed.
    check(unsafe { libc::fcntl(fd, command, &raw const range) })
}

/// Clears close-on-exec on `fd`, so that commands started from now on
/// inherit it, and with it the lock on its open file description.
pub fn inherit(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: F_GETFD reads the descriptor's flags; `fd` is borrowed from
    // a live owner for this call, so it is open and stays ours.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    check(flags)?;
    // SAFETY: F_SETFD sets the same descriptor's flags, less FD_CLOEXEC;
    // no memory is involved and the descriptor stays open and owned.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) })
}

/// Restores the default action of `SIGCHLD`: a parent that set it to
/// "ignore" before starting us makes the kernel reap our children itself,
/// and waiting for the command would fail with `ECHILD`.
pub fn reset_sigchld() {
    // SAFETY: setting a disposition to SIG_DFL installs no code of ours
    // and touches no memory; SIGCHLD is a valid signal number. Rust's
    // runtime installs no SIGCHLD handler that this could replace.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    }
}

/// The signal that interrupts a lock wait when its time is up.
const INTERRUPT: libc::c_int = libc::SIGALRM;

/// Does nothing: delivering the signal is the point, since it makes a
/// blocked system call return `EINTR`.
extern "C" fn on_interrupt(_signal: libc::c_int) {}

/// Makes [`INTERRUPT`] interrupt system calls of the calling thread instead
/// of ending the process: a handler that does nothing, installed without
/// `SA_RESTART`, and the signal unblocked for this thread (a blocked
/// signal, inherited from the parent, would never interrupt anything).
pub fn catch_interrupts() -> io::Result<()> {
    // SAFETY: `sigaction` is a plain C struct (integers, a signal set and a
    // function address), for which all zeroes is a valid value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: both pointers are to live locals. The handler is an
    // `extern "C" fn` that does nothing, so it is async-signal-safe;
    // `sa_flags` is 0: no SA_RESTART, no SA_SIGINFO.
    check(unsafe { libc::sigemptyset(&raw mut action.sa_mask) })?;
    // SAFETY: as above; the old action is not needed.
    check(unsafe { libc::sigaction(INTERRUPT, &raw const action, std::ptr::null_mut()) })?;
    let set = signal_set(&[INTERRUPT])?;
    // SAFETY: reads `set`, a live local; the old mask is not needed.
    let error =
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut()) };
    if error == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(error)) }
}

/// A thread that [`catch_interrupts`] and can be interrupted from others.
#[derive(Clone, Copy, Debug)]
pub struct Interruptible(libc::pthread_t);

impl Interruptible {
    /// The calling thread.
    pub fn current() -> Self {
        // SAFETY: pthread_self cannot fail and touches no memory.
        Self(unsafe { libc::pthread_self() })
    }

    /// Sends it [`INTERRUPT`]: a system call it is blocked in returns
    /// `EINTR`. Only call it while the thread is alive: the caller makes
    /// sure of that by joining the interrupting thread before the
    /// interrupted one goes on (see the `flock` mode's timed wait).
    pub fn interrupt(self) {
        // SAFETY: the thread is alive (see above), so its id is valid;
        // the signal has a handler that does nothing (`catch_interrupts`).
        unsafe {
            libc::pthread_kill(self.0, INTERRUPT);
        }
    }
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The signals the command's guard forwards to it.
#[cfg(feature = "postgres")]
pub const FORWARDED: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

fn signal_set(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: a zeroed sigset_t is a valid value to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live local.
    check(unsafe { libc::sigemptyset(&raw mut set) })?;
    for &signal in signals {
        // SAFETY: as above; each is a valid signal number.
        check(unsafe { libc::sigaddset(&raw mut set, signal) })?;
    }
    Ok(set)
}

/// Blocks [`FORWARDED`] on the calling thread, and so on every thread it
/// starts from now on: they stay pending until [`wait_for_forwarded`]
/// takes them, instead of ending the process. (std unblocks every signal
/// in the children it starts.)
#[cfg(feature = "postgres")]
pub fn block_forwarded() -> io::Result<()> {
    let set = signal_set(&FORWARDED)?;
    // SAFETY: reads `set`, a live local; the old mask is not needed.
    let error =
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    if error == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(error)) }
}

/// Waits for one of [`FORWARDED`] (blocked by [`block_forwarded`]) and
/// returns it.
#[cfg(feature = "postgres")]
pub fn wait_for_forwarded() -> io::Result<libc::c_int> {
    let set = signal_set(&FORWARDED)?;
    let mut signal: libc::c_int = 0;
    // SAFETY: both pointers are to live locals for the whole call.
    let error = unsafe { libc::sigwait(&raw const set, &raw mut signal) };
    if error == 0 { Ok(signal) } else { Err(io::Error::from_raw_os_error(error)) }
}

/// Sends `signal` to process `pid`.
#[cfg(feature = "postgres")]
pub fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    check(unsafe { libc::kill(pid, signal) })
}

/// Makes the command started by `command` receive SIGKILL when this
/// process dies, however it dies (Linux's parent-death signal): a command
/// whose lock this process holds must never outlive the hold.
#[cfg(all(feature = "postgres", any(target_os = "linux", target_os = "android")))]
pub fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    let set_up = move || {
        // SAFETY: prctl and getppid are async-signal-safe and take only
        // integers, as the code between fork and exec must.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the request was made.
            if libc::getppid() as u32 != parent {
                // (No allocation between fork and exec: a plain errno.)
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe calls (above) and
    // allocates nothing unless it fails.
    unsafe {
        command.pre_exec(set_up);
    }
}

/// Elsewhere there is no parent-death signal: the forwarded signals are
/// all the guard has.
#[cfg(all(feature = "postgres", not(any(target_os = "linux", target_os = "android"))))]
pub fn die_with_parent(_command: &mut std::process::Command) {}
