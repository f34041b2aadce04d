//! Where an async acquire's blocking calls run, off the executor.
//!
//! A wait for the lock ([`wait`]) gets a thread of its own. A lock file's
//! wait in `flock` cannot be interrupted, so an abandoned one (timed out,
//! cancelled) stays parked until the other process lets go — on a shared
//! pool, a few such waits on long-held files would take every pool thread,
//! and the application's own `blocking::unblock` jobs and other locks'
//! waits would never run. Only the holder of a lock file's in-process slot
//! waits in the OS lock, so there is at most one such thread per lock file
//! per process, abandoned or not.
//!
//! Short jobs ([`unblock`]: a lock server's non-blocking try, a holder
//! record) run on the `blocking` crate's thread pool — or, in a child made
//! by `fork(2)`, on a thread of their own:
//!
//! A child inherits a copy of the pool's bookkeeping, which counts the
//! parent's pool threads although none of them exists in the child: the
//! pool believes it has idle threads to wake, starts none, and a job queued
//! there never runs. So the pool serves only the first process that opened
//! a lock file or used the pool through packlock; in any other (a child
//! forked after that) each wait gets a new thread. Both keep the bound of one waiting thread
//! per lock file per process, since only the holder of a file's in-process
//! slot ever waits in the OS lock.
//!
//! A child whose parent used the pool only through other code, and never
//! opened a lock file before the fork, cannot be told apart from a fresh
//! process, and uses the pool.

use std::io;
use std::sync::{Arc, OnceLock};
use std::thread;

/// The first process that opened a lock file or used the pool through
/// packlock: the one whose pool is real.
static POOL_PROCESS: OnceLock<u32> = OnceLock::new();

/// Notes that process `process` (this one) opens a lock file: if it is the
/// first to use packlock, the pool is its own.
pub(crate) fn note_process(process: u32) {
    POOL_PROCESS.get_or_init(|| process);
}

/// Runs `job`, which blocks, on a thread started for it, and returns its
/// result. Dropping the returned future lets the job run to the end all
/// the same; its result is then dropped where it ran.
///
/// Fails only when the thread cannot be started.
pub(crate) async fn wait<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    on_new_thread(job).await
}

/// Runs `job`, which blocks briefly, without blocking the caller's thread,
/// and returns its result. Dropping the returned future lets the job run
/// to the end all the same; its result is then dropped where it ran.
///
/// Fails only when a thread for the job cannot be started.
pub(crate) async fn unblock<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let this_process = std::process::id();
    if *POOL_PROCESS.get_or_init(|| this_process) == this_process {
        Ok(blocking::unblock(job).await)
    } else {
        on_new_thread(job).await
    }
}

/// Runs `job` on a thread started for it. The result comes back through an
/// async mutex the thread locks before it starts and unlocks once it has
/// stored the result.
async fn on_new_thread<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let result = Arc::new(async_lock::Mutex::new(None));
    let mut filling = result.lock_arc().await; // new, so at once
    thread::Builder::new().name("packlock-wait".into()).spawn(move || *filling = Some(job()))?;
    match result.lock().await.take() {
        Some(output) => Ok(output),
        None => panic!("the thread waiting for a lock panicked"),
    }
}
