//! Making the lock request and waiting for it as `-n` and `-w` say.
//!
//! A timed wait never leaves a lock behind after it reports a timeout. On
//! Unix it waits in the kernel and, when the time is up, a signal
//! interrupts the call: the request either was granted (and the wait
//! succeeds, however late) or was not (and nothing is locked). This is
//! what flock(1) does, and it matters for `flock -w 5 9`, whose lock
//! belongs to the shell's open file: a wait left running after giving up
//! could lock the shell's descriptor behind its back.

use std::io;
use std::time::{Duration, Instant};

/// How long to wait for a lock held by someone else.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    Never,
    For(Duration),
    Forever,
}

/// Why the lock was not had.
#[derive(Debug)]
pub enum Failure {
    /// Held by someone else, and not waiting (any longer).
    Conflict {
        timed_out: bool,
    },
    Io(io::Error),
}

/// One lock request: `nonblock` says whether it may wait in the kernel.
pub type Request<'a> = &'a dyn Fn(bool) -> io::Result<()>;

/// Makes `request` until it is granted, waiting as `wait` allows.
pub fn lock(request: Request<'_>, wait: Wait) -> Result<(), Failure> {
    match wait {
        Wait::Never => once(request),
        Wait::Forever => until_granted(request, &|| false),
        Wait::For(timeout) => match Instant::now().checked_add(timeout) {
            Some(deadline) => within(request, deadline),
            // Beyond what the clock can reach: no deadline to miss.
            None => until_granted(request, &|| false),
        },
    }
}

/// One request that does not wait; interrupted ones are repeated.
fn once(request: Request<'_>) -> Result<(), Failure> {
    loop {
        match request(true) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_conflict(&e) => return Err(Failure::Conflict { timed_out: false }),
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}

/// Waits in the kernel; an interrupted wait ends if `expired` says so and
/// is made again otherwise.
fn until_granted(request: Request<'_>, expired: &dyn Fn() -> bool) -> Result<(), Failure> {
    loop {
        match request(false) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if expired() {
                    return Err(Failure::Conflict { timed_out: true });
                }
            }
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}

/// `EWOULDBLOCK`, and for `fcntl` locks also `EACCES`, which POSIX lets
/// it return for the same conflict.
fn is_conflict(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
        || error.kind() == io::ErrorKind::PermissionDenied && cfg!(unix)
}

/// Waits in the kernel on this thread; at `deadline` another thread
/// interrupts the wait with a signal — again and again until this thread
/// has seen it, since one that lands just before the call starts waiting
/// interrupts nothing.
#[cfg(unix)]
fn within(request: Request<'_>, deadline: Instant) -> Result<(), Failure> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    use crate::os;

    /// How often the signal is sent again after the deadline.
    const RESEND: Duration = Duration::from_millis(10);

    os::catch_interrupts().map_err(Failure::Io)?;
    let waiter = os::Interruptible::current();
    let expired = AtomicBool::new(false);
    let (done, is_done) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let expired = &expired;
        scope.spawn(move || {
            let until_deadline = deadline.saturating_duration_since(Instant::now());
            if is_done.recv_timeout(until_deadline) != Err(mpsc::RecvTimeoutError::Timeout) {
                return; // granted or failed in time
            }
            expired.store(true, Ordering::SeqCst);
            // The waiter is alive until this thread is joined, at the end
            // of the scope, and it stops us (drops `done`) before that.
            while let Err(mpsc::RecvTimeoutError::Timeout) = is_done.recv_timeout(RESEND) {
                waiter.interrupt();
            }
        });
        let outcome = until_granted(request, &|| expired.load(Ordering::SeqCst));
        drop(done);
        outcome
    })
}

/// Windows cannot interrupt a waiting `LockFileEx`, so a timed wait asks
/// without waiting, more slowly as time goes by (up to every 50 ms), until
/// granted or the deadline passes: nothing is left waiting afterwards.
#[cfg(windows)]
fn within(request: Request<'_>, deadline: Instant) -> Result<(), Failure> {
    let mut pause = Duration::from_millis(1);
    loop {
        match once(request) {
            Err(Failure::Conflict { .. }) if Instant::now() < deadline => {
                let left = deadline.saturating_duration_since(Instant::now());
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(Failure::Conflict { .. }) => return Err(Failure::Conflict { timed_out: true }),
            outcome => return outcome,
        }
    }
}
