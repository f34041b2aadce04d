//! Fences for lock files: a counter in a file of its own beside the lock
//! file (`<lock file>.fence`), bumped for every grant — exclusive and
//! shared — under that file's own exclusive lock.
//!
//! Why a file of its own: shared holders of several processes each need a
//! new fence while they hold the lock together, so the counter must be
//! written by one of them at a time, which the lock file's shared lock
//! cannot serialise (and on Windows a shared lock forbids writing the
//! file at all). The fence file's exclusive lock is held only for the
//! read, the write and the flush of one bump.
//!
//! Why a clock as well: each new fence is at least the current time in
//! microseconds since 1970, so that a counter that was lost — the fence
//! file deleted with the lock file, a directory recreated — starts above
//! every fence handed out before rather than at 1, unless the system clock
//! was set back since. Within one fence file fences always grow, whatever
//! the clock does.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::record::{self, FenceError};
use super::{open_read_write, retry_interrupted};
use crate::PackLockError;

/// The fence counter of one lock file, open for as long as the lock file.
#[derive(Debug)]
pub(crate) struct FenceFile {
    file: File,
    path: PathBuf,
    /// Bumps of one process never overlap (its OS lock is per open file).
    bumping: Mutex<()>,
}

impl FenceFile {
    /// Opens (creating it) the fence file of the lock file at `lock_path`.
    pub(crate) fn open(lock_path: &Path) -> Result<Self, PackLockError> {
        let mut name = lock_path.file_name().unwrap_or_default().to_os_string();
        name.push(".fence");
        let path = lock_path.with_file_name(name);
        let file = open_read_write(&path).map_err(|e| PackLockError::io(&path, e))?;
        let metadata = file.metadata().map_err(|e| PackLockError::io(&path, e))?;
        if !metadata.is_file() {
            let reason = "it is not a regular file";
            return Err(PackLockError::CannotFence { path, reason });
        }
        Ok(Self { file, path, bumping: Mutex::new(()) })
    }

    /// The path of the fence file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The next fence: more than the counter and more than `floor` (what
    /// the lock file itself may hold from before fences had a file of their
    /// own), at least the time now in microseconds; written and flushed to
    /// the disk before it is returned.
    pub(crate) fn next(&self, floor: u64) -> Result<u64, FenceError> {
        let _one_at_a_time = self.bumping.lock().unwrap_or_else(PoisonError::into_inner);
        retry_interrupted(|| self.file.lock()).map_err(FenceError::Io)?;
        let at_least = floor.saturating_add(1).max(now_micros());
        let next = record::next_fence(&self.file, at_least);
        if let Err(e) = retry_interrupted(|| self.file.unlock()) {
            // Closing the file would release it; it stays open, so say so.
            log::warn!("cannot unlock the fence file {}: {e}", self.path.display());
        }
        next
    }
}

/// Microseconds since 1970 by the system clock (0 before it).
fn now_micros() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX)
}
