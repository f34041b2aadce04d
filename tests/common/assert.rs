//! Assertions about what an acquire returned, and whether a lock is free.

use std::fmt::{Debug, Display};
use std::path::Path;

use packlock::{PackLock, PackLockErrorOrCancelled};

/// Asserts that `result` is `Err(variant { path, .. })`: with `path` equal
/// to `expected`, or with `under expected`, lying under it (a parent the
/// error is about); and that the message names `expected`. Evaluates to
/// the error, for checks of its other fields. An optional last argument
/// says what was being tried, for the failure message.
///
/// ```ignore
/// assert_err!(lock.try_acquire(), PackLockError::Busy, lock.path());
/// assert_err!(PackLock::open(&dir), PackLockError::Io, under &dir, "a file as parent");
/// ```
macro_rules! assert_err {
    (@check $result:expr, $variant:path, $expected:expr, $under:expr, $context:expr) => {
        match $result {
            Err(err @ $variant { .. }) => {
                let $variant { path, .. } = &err else { unreachable!() };
                let variant = stringify!($variant);
                $crate::common::assert::names(&err, variant, path, $expected, $under, $context);
                err
            }
            other => {
                let variant = stringify!($variant);
                $crate::common::assert::unexpected(&other, variant, $expected, $context)
            }
        }
    };
    ($result:expr, $variant:path, under $expected:expr $(, $context:expr)? $(,)?) => {
        assert_err!(@check $result, $variant, $expected, true, None$(.or(Some($context)))?)
    };
    ($result:expr, $variant:path, $expected:expr $(, $context:expr)? $(,)?) => {
        assert_err!(@check $result, $variant, $expected, false, None$(.or(Some($context)))?)
    };
}

/// The path checks of [`assert_err!`].
#[track_caller]
pub fn names(
    error: &dyn Display,
    variant: &str,
    path: &Path,
    expected: impl AsRef<Path>,
    under: bool,
    context: Option<&str>,
) {
    let expected = expected.as_ref();
    let context = context.map(|what| format!("{what}: ")).unwrap_or_default();
    if under {
        assert!(
            path.starts_with(expected),
            "{context}{variant} names {} instead of a path under {}",
            path.display(),
            expected.display()
        );
    } else {
        assert_eq!(path, expected, "{context}{variant} must name the lock file");
    }
    let message = error.to_string();
    assert!(
        message.contains(&expected.display().to_string()),
        "{context}message {message:?} does not name {}",
        expected.display()
    );
}

/// The failure of [`assert_err!`] when the result is something else.
#[track_caller]
pub fn unexpected(
    got: &dyn Debug,
    variant: &str,
    expected: impl AsRef<Path>,
    context: Option<&str>,
) -> ! {
    let context = context.map(|what| format!("{what}: ")).unwrap_or_default();
    panic!("{context}expected {variant} naming {}, got {got:?}", expected.as_ref().display())
}

/// Asserts that a cancellable acquire returned `Cancelled`.
#[track_caller]
pub fn assert_cancelled<T: std::fmt::Debug>(result: &Result<T, PackLockErrorOrCancelled>) {
    assert!(
        matches!(result, Err(PackLockErrorOrCancelled::Cancelled)),
        "expected Cancelled, got {result:?}"
    );
}

/// Takes and releases the lock, which must be free right now, through a
/// new `PackLock`: a new open file description, so that an OS lock left
/// behind on one of ours (which that one could take again) counts as held.
#[track_caller]
pub fn assert_free(lock: &PackLock, why: &str) {
    let fresh = PackLock::open_file(lock.path()).expect("open");
    fresh.try_acquire().expect(why).release().expect("release");
}

/// Polls `try_acquire` of a new `PackLock` (see [`assert_free`]) until the
/// lock is free, failing after the deadline: a job left parked at the OS
/// lock must let go of it as soon as it gets it. On Linux, checks that
/// then nobody holds or waits for the file any more.
pub fn wait_until_free(lock: &PackLock) {
    let fresh = PackLock::open_file(lock.path()).expect("open");
    super::wait_until("the lock is free again", || fresh.try_acquire().is_ok());
    #[cfg(target_os = "linux")]
    {
        let left = super::proc_locks::entries(lock.path());
        assert!(left.is_empty(), "holders or waiters stayed in the kernel: {left:?}");
    }
}
