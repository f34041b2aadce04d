//! [`Holder`]: who holds a lock, as far as it can be known — the holder's
//! pid from the OS, plus the label and start time that packlock holders
//! with a [label](crate::PackLockBuilder::label) record.

use std::fmt;
use std::time::SystemTime;

/// A holder of a lock, as far as it can be known.
///
/// # Examples
///
/// ```
/// use packlock::{PackLock, PackLockError};
///
/// # fn main() -> Result<(), PackLockError> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let lock = PackLock::builder(dir.path()).label("nightly sync").open()?;
/// let _hold = lock.acquire()?;
/// for holder in lock.holders() {
///     println!("held by {holder}"); // on Linux: pid 1234 ("nightly sync", for 0s)
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// The holding process.
    pub pid: u32,
    /// Whether it holds the lock shared (rather than exclusive), where known.
    pub shared: Option<bool>,
    /// The label of a packlock holder that set one.
    pub label: Option<String>,
    /// Since when a labelled packlock holder holds the lock.
    pub since: Option<SystemTime>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        let held_for = self.since.and_then(|since| since.elapsed().ok());
        match (&self.label, held_for) {
            (Some(label), Some(held)) => write!(f, " ({label:?}, for {}s)", held.as_secs()),
            (Some(label), None) => write!(f, " ({label:?})"),
            (None, Some(held)) => write!(f, " (for {}s)", held.as_secs()),
            (None, None) => Ok(()),
        }
    }
}

/// The holder worth naming among `holders`: one with a label if any (it
/// says most), else the first.
pub(crate) fn most_telling(mut holders: Vec<Holder>) -> Option<Holder> {
    let labelled = holders.iter().position(|h| h.label.is_some()).unwrap_or(0);
    (labelled < holders.len()).then(|| holders.swap_remove(labelled))
}

/// `holder` in a message: "pid 42 (...)", or "another holder" when unknown.
pub(crate) fn describe(holder: Option<&Holder>) -> String {
    holder.map_or_else(|| "another holder".to_string(), Holder::to_string)
}

#[cfg(test)]
mod tests {
    use super::Holder;

    #[test]
    fn display_names_pid_and_label() {
        let holder = Holder { pid: 9, shared: None, label: Some("job".into()), since: None };
        assert_eq!(holder.to_string(), "pid 9 (\"job\")");
    }
}
