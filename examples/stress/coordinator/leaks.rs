//! Leaked locks: checked while the stopped workers are still alive.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use packlock::PackLock;

use crate::layout::Layout;
use crate::procfs::{self, LockEntry};

/// How long a lock may take to become free once every worker is idle:
/// a pool job parked by a cancelled acquire lets go when granted.
const GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
pub struct Leaks {
    /// Lock files a fresh `PackLock` could not take, or that the kernel
    /// still lists a worker holding or waiting for.
    pub busy_files: Vec<usize>,
    /// Kernel entries of the workers on any other file (a deleted or
    /// replaced lock file still held or waited for).
    pub stale: Vec<LockEntry>,
    /// Server mode: advisory locks a worker session still holds or waits
    /// for.
    pub server_locks: Vec<String>,
}

impl Leaks {
    pub fn count(&self) -> u64 {
        (self.busy_files.len() + self.stale.len() + self.server_locks.len()) as u64
    }
}

pub fn check(layout: &Layout, files: usize, workers: &[u32]) -> Leaks {
    let deadline = Instant::now() + GRACE;
    let mut ours = workers.to_vec();
    ours.push(std::process::id());
    let busy_files =
        (0..files).filter(|&file| !wait_free(&layout.lock_path(file), &ours, deadline));
    let busy_files = busy_files.collect();
    let current: Vec<u64> = (0..files).filter_map(|file| inode(&layout.lock_path(file))).collect();
    let stale = wait_no_entries(workers, &current, deadline);
    Leaks { busy_files, stale, server_locks: Vec::new() }
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|meta| meta.ino())
}

fn wait_free(path: &Path, ours: &[u32], deadline: Instant) -> bool {
    let lock = match PackLock::open_file(path) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("stress: leak check: {e}");
            return false;
        }
    };
    loop {
        if is_free(&lock, ours) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// A fresh `PackLock` (a new open file description) takes the lock, and
/// the kernel lists none of our processes on the file afterwards.
fn is_free(lock: &PackLock, ours: &[u32]) -> bool {
    match lock.try_acquire() {
        Ok(hold) => {
            if let Err(e) = hold.release() {
                eprintln!("stress: leak check: {e}");
            }
        }
        Err(_) => return false,
    }
    let Some(ino) = inode(lock.path()) else { return false };
    let entries = procfs::flock_entries().unwrap_or_default();
    !entries.iter().any(|e| e.ino == ino && ours.contains(&e.pid))
}

/// Waits until the kernel lists no holder or waiter among `workers`
/// on files other than the `current` lock files (counted already);
/// returns what is left at the deadline.
fn wait_no_entries(workers: &[u32], current: &[u64], deadline: Instant) -> Vec<LockEntry> {
    loop {
        let entries = procfs::flock_entries().unwrap_or_default();
        let stale = |e: &LockEntry| workers.contains(&e.pid) && !current.contains(&e.ino);
        let left: Vec<_> = entries.into_iter().filter(stale).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(POLL);
    }
}
