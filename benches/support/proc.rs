//! What the plain-code rows read from Linux's `/proc`: threads, resident
//! memory, open descriptors, and who waits in the kernel for a `flock`.
//! Elsewhere the probes return `None` (and the parked-waiter check falls
//! back to a pause).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Threads of this process (`/proc/self/task`).
pub fn thread_count() -> Option<usize> {
    Some(fs::read_dir("/proc/self/task").ok()?.count())
}

/// Open file descriptors of this process (`/proc/self/fd`).
pub fn fd_count() -> Option<usize> {
    Some(fs::read_dir("/proc/self/fd").ok()?.count())
}

/// Resident set size in KiB (`VmRSS` in `/proc/self/status`).
pub fn rss_kib() -> Option<usize> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The 1-minute load average (`/proc/loadavg`): how busy the machine was
/// around the measurements, which on a shared machine explains outliers.
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// The inode number of `path`, as `/proc/locks` prints it.
pub fn inode(path: &Path) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).expect("stat lock file").ino()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0
    }
}

/// How many threads of this process wait in the kernel for the `flock` on
/// inode `ino`: the `->` (blocked request) lines of `/proc/locks` with our
/// pid. `None` without `/proc/locks`.
pub fn parked_waiters(ino: u64) -> Option<usize> {
    let locks = fs::read_to_string("/proc/locks").ok()?;
    let pid = std::process::id().to_string();
    let ino = format!(":{ino}");
    let parked = locks.lines().filter(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "N: -> FLOCK ADVISORY WRITE <pid> <maj>:<min>:<ino> 0 EOF"
        fields.get(1) == Some(&"->")
            && fields.get(2) == Some(&"FLOCK")
            && fields.get(5) == Some(&pid.as_str())
            && fields.get(6).is_some_and(|id| id.ends_with(&ino))
    });
    Some(parked.count())
}

/// Blocks until a thread of this process waits in the kernel for the
/// `flock` on inode `ino`. Without `/proc/locks`, pauses 20 ms instead.
///
/// The hand-off rows call this before telling the holder to release, so
/// that what they time is a wake-up from the kernel's wait queue and not a
/// waiter still on its way there.
pub fn wait_until_parked(ino: u64) {
    wait_for_waiters(ino, |n| n > 0);
}

/// Blocks until no thread of this process waits in the kernel for the
/// `flock` on inode `ino`.
pub fn wait_until_no_waiter(ino: u64) {
    wait_for_waiters(ino, |n| n == 0);
}

/// Polls `/proc/locks` until `done(number of our parked waiters)`. Gives up
/// with a warning after a few seconds rather than failing, so that a
/// system whose `/proc/locks` does not show our waiters (some sandboxes)
/// still runs the bench, with less certain hand-off timings.
fn wait_for_waiters(ino: u64, done: impl Fn(usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let Some(parked) = parked_waiters(ino) else {
            std::thread::sleep(Duration::from_millis(20));
            return;
        };
        if done(parked) {
            return;
        }
        if Instant::now() > deadline {
            eprintln!(
                "warning: /proc/locks still shows {parked} waiters of ours after 5 s; going on"
            );
            return;
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}
