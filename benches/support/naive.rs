//! The naive async design packlock is measured against: a
//! `tokio::sync::Mutex` in front, then the blocking `flock` moved onto
//! tokio's blocking pool with `spawn_blocking`, once per acquire — the
//! obvious way to lock a file from tokio.
//!
//! It is given its best shot: the mutex is held directly rather than looked
//! up in a path registry, and nothing is canonicalised per acquire. Each
//! acquire opens its own file (sharing one would make a cancelled acquire's
//! parked thread share the lock with the next holder).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use super::raw_open;

pub struct NaiveLock {
    path: PathBuf,
    mutex: Arc<Mutex<()>>,
}

/// A held naive lock: the OS lock, then the mutex (field order is drop
/// order).
pub struct NaiveHold {
    file: File,
    _guard: OwnedMutexGuard<()>,
}

impl NaiveLock {
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), mutex: Arc::default() }
    }

    /// Waits for the in-process mutex, then on the blocking pool for the OS
    /// lock. Dropping the future while the pool thread waits leaves that
    /// thread parked in `flock` until the lock is granted (then the file is
    /// dropped, which unlocks it).
    pub async fn acquire(&self) -> NaiveHold {
        let guard = Arc::clone(&self.mutex).lock_owned().await;
        let path = self.path.clone();
        let file = tokio::task::spawn_blocking(move || {
            let file = raw_open(&path);
            file.lock().expect("lock");
            file
        })
        .await
        .expect("blocking task");
        NaiveHold { file, _guard: guard }
    }
}

impl Drop for NaiveHold {
    fn drop(&mut self) {
        self.file.unlock().expect("unlock");
    }
}
