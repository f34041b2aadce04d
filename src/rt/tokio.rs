//! tokio support (feature `tokio`): tokio-util's `CancellationToken` as a
//! [`CancelSignal`], and an async timeout on `tokio::time`.

use std::future::Future;
use std::time::Duration;

use crate::{CancelSignal, PackLock, PackLockError, PackLockHold};

/// Acquires from async code, giving up after `timeout` on `tokio::time`,
/// so it honours `tokio::time::pause` and auto-advance in tests.
///
/// Must be called within a tokio runtime with the time driver enabled.
///
/// # Errors
///
/// [`PackLockError::TimedOut`] when the lock was not had in time; nothing is
/// held or queued afterwards.
///
/// # Panics
///
/// As [`PackLock::acquire_async`]: under
/// [`TierPolicy::Panic`](crate::TierPolicy::Panic), on a tier out of order.
///
/// # Cancel safety
///
/// Dropping the future gives up and leaves nothing held or queued, as with
/// [`PackLock::acquire_until`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let lock = packlock::PackLock::open(dir.path())?;
/// let hold = packlock::rt::tokio::acquire_timeout(&lock, Duration::from_secs(5)).await?;
/// # drop(hold);
/// # Ok::<(), packlock::PackLockError>(())
/// # }).unwrap();
/// ```
pub async fn acquire_timeout(
    lock: &PackLock,
    timeout: Duration,
) -> Result<PackLockHold, PackLockError> {
    lock.acquire_timeout_with(timeout, ::tokio::time::sleep(timeout)).await
}

/// `lock.acquire_cancellable(&token)` accepts tokio-util's token.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let lock = packlock::PackLock::open(dir.path()).expect("open");
/// let token = tokio_util::sync::CancellationToken::new();
/// token.cancel();
/// assert!(lock.acquire_cancellable(&token).await.unwrap_err().is_cancelled());
/// # });
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl CancelSignal for tokio_util::sync::CancellationToken {
    fn cancelled(&self) -> impl Future<Output = ()> + Send + '_ {
        tokio_util::sync::CancellationToken::cancelled(self)
    }
}
