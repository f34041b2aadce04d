//! The async-io timer, shared by the smol and async-std adapters.

use std::time::Duration;

use crate::{PackLock, PackLockError, PackLockHold};

/// [`PackLock::acquire_timeout_with`] on an `async_io::Timer`.
pub(crate) async fn acquire_timeout(
    lock: &PackLock,
    timeout: Duration,
) -> Result<PackLockHold, PackLockError> {
    let sleep = async {
        async_io::Timer::after(timeout).await;
    };
    lock.acquire_timeout_with(timeout, sleep).await
}
