//! smol support (feature `smol`): an async timeout on async-io's timer.
//!
//! smol needs nothing else: [`PackLock::acquire_async`] and
//! [`PackLock::acquire_cancellable`] already run on it. The timer works
//! under any executor, since async-io drives it from its own thread.

use std::time::Duration;

use crate::{PackLock, PackLockError, PackLockHold};

/// Acquires from async code, giving up after `timeout` (async-io's timer).
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
/// # smol::block_on(async {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let lock = packlock::PackLock::open(dir.path())?;
/// let hold = packlock::rt::smol::acquire_timeout(&lock, Duration::from_secs(5)).await?;
/// # drop(hold);
/// # Ok::<(), packlock::PackLockError>(())
/// # }).unwrap();
/// ```
pub async fn acquire_timeout(
    lock: &PackLock,
    timeout: Duration,
) -> Result<PackLockHold, PackLockError> {
    super::async_io::acquire_timeout(lock, timeout).await
}
