//! Fault injection for tests: OS lock calls on chosen lock files fail, as
//! they do on a file system without locks (some FUSE mounts) — and the
//! tests that show such a failure gives a clear error and leaves nothing
//! held. Compiled only for the crate's own tests.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Which OS lock call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// The non-blocking attempt.
    Try,
    /// The blocking wait.
    Blocking,
}

static FAILING: Mutex<Vec<(PathBuf, Call)>> = Mutex::new(Vec::new());

fn failing() -> MutexGuard<'static, Vec<(PathBuf, Call)>> {
    FAILING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `call`s on `path` fail until the guard is dropped.
pub(crate) fn fail(path: &Path, call: Call) -> Failing {
    let fault = (path.to_path_buf(), call);
    failing().push(fault.clone());
    Failing(fault)
}

pub(crate) struct Failing((PathBuf, Call));

impl Drop for Failing {
    fn drop(&mut self) {
        failing().retain(|fault| *fault != self.0);
    }
}

/// The error a `call` on `path` fails with, if one is injected.
pub(crate) fn injected(path: &Path, call: Call) -> Option<io::Error> {
    let fault = (path.to_path_buf(), call);
    failing().contains(&fault).then(|| io::Error::other("no locks available (injected fault)"))
}

#[cfg(test)]
mod tests {
    use super::{Call, fail};
    use crate::NetworkFsPolicy;
    use crate::backend::lock_file::LockFile;
    use crate::backend::{LockBackend, Mode};
    use crate::{PackLock, PackLockError};

    fn assert_io_error_naming(result: Result<crate::PackLockHold, PackLockError>, lock: &PackLock) {
        match result {
            Err(err @ PackLockError::Io { .. }) => {
                let message = err.to_string();
                assert!(message.contains(&lock.path().display().to_string()), "{message}");
                assert!(message.contains("no locks available"), "{message}");
            }
            other => panic!("expected an Io error, got {other:?}"),
        }
    }

    /// After a failure the lock is free: the in-process slot was given back.
    fn assert_nothing_held(lock: &PackLock) {
        let other = PackLock::open_file(lock.path()).expect("open");
        drop(other.try_acquire().expect("nothing may stay held after a failed acquire"));
        drop(lock.try_acquire().expect("the slot was given back"));
    }

    #[test]
    fn a_failing_uncontended_lock_call_is_a_clear_error_and_holds_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = PackLock::open(dir.path()).expect("open");
        {
            let _fault = fail(lock.path(), Call::Try);
            assert_io_error_naming(lock.acquire(), &lock);
            assert_io_error_naming(lock.try_acquire(), &lock);
            assert_io_error_naming(futures_lite::future::block_on(lock.acquire_async()), &lock);
        }
        assert_nothing_held(&lock);
    }

    #[test]
    fn a_failing_blocking_lock_call_is_a_clear_error_and_holds_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = PackLock::open(dir.path()).expect("open");
        // Hold the OS lock through a second open file, so that our acquire
        // finds it busy and goes on to the blocking call.
        let blocker =
            LockFile::open(lock.path(), NetworkFsPolicy::Warn, false, false).expect("open");
        blocker.lock(Mode::Exclusive, &Default::default()).expect("lock");
        let fault = fail(lock.path(), Call::Blocking);
        let results = std::thread::scope(|scope| {
            let on_this_thread = scope.spawn(|| lock.acquire());
            let timed = scope.spawn(|| lock.acquire_timeout(std::time::Duration::from_secs(30)));
            let pooled = futures_lite::future::block_on(lock.acquire_async());
            [on_this_thread.join().expect("thread"), timed.join().expect("thread"), pooled]
        });
        drop(fault);
        blocker.unlock().expect("unlock");
        for result in results {
            assert_io_error_naming(result, &lock);
        }
        assert_nothing_held(&lock);
    }

    #[test]
    fn a_failing_shared_lock_call_is_a_clear_error_and_holds_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = PackLock::builder(dir.path()).shared(true).open().expect("open");
        {
            let _fault = fail(lock.path(), Call::Try);
            assert_io_error_naming(lock.acquire(), &lock);
        }
        assert_nothing_held(&lock);
        let first = lock.acquire().expect("shared");
        let second = lock.try_acquire().expect("shared holds coexist after a failure");
        drop((first, second));
    }
}
