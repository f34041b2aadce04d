//! Where an async acquire's blocking OS wait runs: off the executor, on the
//! `blocking` crate's thread pool — or, in a child made by `fork(2)`, on a
//! thread of its own.
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

/// Runs `job`, which blocks, without blocking the caller's thread, and
/// returns its result. Dropping the returned future lets the job run to
/// the end all the same; its result is then dropped where it ran.
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
