//! The naive async design packlock is measured against: a
//! `tokio::sync::Mutex` in front, then the blocking `flock` moved onto
//! tokio's blocking pool with `spawn_blocking`, once per acquire — the
//! obvious way to lock a file from tokio.
//!
//! It is given its best shot: the mutex is held directly rather than looked
//! up in a path registry, and nothing is canonicalised per acquire. Each
//! acquire opens its own file (sharing one would make a cancelled acquire's
//! parked thread share the lock with the next holder).

use std::collections::HashMap;
use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

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

/// The naive design's uncontended open + acquire + release from sync
/// code, for the uncontended rows: a process-wide map from path to an
/// async mutex (what a lock per path needs), that mutex locked, then the
/// open and `flock` made on a helper thread (`blocking::unblock`, the
/// runtime-neutral `spawn_blocking`), and the unlock on release — with
/// none of packlock's checks.
pub fn naive_open_lock_unlock(path: &Path) {
    type Mutexes = std::sync::Mutex<HashMap<PathBuf, Arc<async_lock::Mutex<()>>>>;
    static MUTEXES: LazyLock<Mutexes> = LazyLock::new(Mutexes::default);
    futures_lite::future::block_on(async {
        let mutex = {
            let mut mutexes = MUTEXES.lock().expect("mutexes");
            Arc::clone(mutexes.entry(path.to_path_buf()).or_default())
        };
        let guard = mutex.lock_arc().await;
        let path = path.to_path_buf();
        let file = blocking::unblock(move || {
            let file = raw_open(&path);
            file.lock().expect("lock");
            file
        })
        .await;
        file.unlock().expect("unlock");
        drop(black_box(file));
        drop(guard);
    });
}
