//! Who holds a lock: the holder's pid from the OS where it tells (Linux's
//! `/proc/locks`, which names every `flock` holder, packlock or not), plus
//! the label and start time that packlock holders with a
//! [label](crate::PackLockBuilder::label) record in the lock file.
//!
//! All of this is diagnostics only: failures to write or read it are
//! ignored, and nothing here decides who gets the lock.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A holder of a lock, as far as it can be known.
///
/// # Example
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

/// What a labelled holder writes into the lock file after locking it.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    pid: u32,
    since: SystemTime,
    label: String,
}

const RECORD_START: &str = "packlock-holder 1";
const RECORD_END: &str = "end";

/// Records this process as the holder, labelled `label`, unless the file
/// holds something else (people do lock their data files themselves): only
/// an empty file or an earlier record is overwritten. Best effort: a
/// read-only lock file, say, just stays without a record.
pub(crate) fn write_record(file: &File, label: &str) {
    if !holds_no_data(file) {
        log::debug!("not recording the lock holder: the lock file holds other data");
        return;
    }
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    // One line per field; a label cannot break the format.
    let label = label.replace(['\n', '\r'], " ");
    let text = format!(
        "{RECORD_START}\npid {}\nsince {}\nlabel {label}\n{RECORD_END}\n",
        std::process::id(),
        since.as_millis()
    );
    let mut file = file;
    let written = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(text.as_bytes()))
        .and_then(|()| file.set_len(text.len() as u64));
    if let Err(e) = written {
        log::debug!("cannot record the lock holder: {e}");
    }
}

/// Whether the lock file is empty or holds only a holder record.
fn holds_no_data(mut file: &File) -> bool {
    let mut start = [0; RECORD_START.len()];
    let read = file.seek(SeekFrom::Start(0)).and_then(|_| file.read(&mut start));
    match read {
        Ok(0) => true,
        Ok(n) => n == start.len() && start == *RECORD_START.as_bytes(),
        Err(_) => false,
    }
}

/// Reads the record in the lock file at `path`, if there is a whole one.
/// (On Windows a locked file cannot be read by others: then there is none.)
fn read_record(path: &Path) -> Option<Record> {
    let mut text = String::new();
    File::open(path).ok()?.take(4096).read_to_string(&mut text).ok()?;
    parse_record(&text)
}

fn parse_record(text: &str) -> Option<Record> {
    let mut lines = text.lines();
    (lines.next()? == RECORD_START).then_some(())?;
    let pid = lines.next()?.strip_prefix("pid ")?.parse().ok()?;
    let millis = lines.next()?.strip_prefix("since ")?.parse().ok()?;
    let label = lines.next()?.strip_prefix("label ")?.to_string();
    (lines.next()? == RECORD_END).then_some(())?;
    Some(Record { pid, since: UNIX_EPOCH + Duration::from_millis(millis), label })
}

/// The holders of the lock file at `path` with identity `key`: from the OS
/// where it tells, enriched with the record of a labelled packlock holder.
pub(crate) fn holders(path: &Path, key: &crate::sidecar::FileKey) -> Vec<Holder> {
    let record = read_record(path);
    let mut holders = os_holders(key);
    if holders.is_empty() && cfg!(not(target_os = "linux")) {
        // No OS list: the record is the best guess (it may be stale).
        holders.extend(record.as_ref().map(|r| Holder {
            pid: r.pid,
            shared: None,
            label: None,
            since: None,
        }));
    }
    if let Some(record) = record {
        for holder in holders.iter_mut().filter(|h| h.pid == record.pid) {
            holder.label = Some(record.label.clone());
            holder.since = Some(record.since);
        }
    }
    holders
}

#[cfg(target_os = "linux")]
fn os_holders(key: &crate::sidecar::FileKey) -> Vec<Holder> {
    proc_locks::holders(key.dev(), key.ino())
}

#[cfg(not(target_os = "linux"))]
fn os_holders(_key: &crate::sidecar::FileKey) -> Vec<Holder> {
    Vec::new()
}

/// Linux's table of file locks.
#[cfg(target_os = "linux")]
mod proc_locks {
    use std::io::Read;

    use super::Holder;
    use crate::sidecar::{major, minor};

    /// The `flock` holders (not waiters) of the file `(dev, ino)`.
    pub(super) fn holders(dev: u64, ino: u64) -> Vec<Holder> {
        let Some(table) = snapshot() else { return Vec::new() };
        let device = format!("{:02x}:{:02x}:{ino}", major(dev), minor(dev));
        let exact: Vec<_> = table.lines().filter_map(|l| parse(l, |f| f == device)).collect();
        if !exact.is_empty() {
            return exact;
        }
        // Some file systems (btrfs subvolumes, overlayfs) show `stat` a
        // different device than the lock table: fall back to the inode.
        let suffix = format!(":{ino}");
        table.lines().filter_map(|l| parse(l, |f| f.ends_with(&suffix))).collect()
    }

    /// The whole table in one `read`: the kernel walks its lock list once
    /// per read call, so reading in pieces while locks change can repeat
    /// or skip entries.
    fn snapshot() -> Option<String> {
        let mut buffer = vec![0; 1 << 20];
        let len = std::fs::File::open("/proc/locks").ok()?.read(&mut buffer).ok()?;
        buffer.truncate(len);
        String::from_utf8(buffer).ok()
    }

    /// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`; waiters (`->`) are
    /// not holders.
    fn parse(line: &str, file_matches: impl Fn(&str) -> bool) -> Option<Holder> {
        let mut fields = line.split_whitespace().skip(1);
        let kind = fields.next()?;
        let _advisory = fields.next()?;
        let access = fields.next()?;
        let pid = fields.next()?.parse().ok()?;
        let file = fields.next()?;
        (kind == "FLOCK" && file_matches(file)).then_some(())?;
        let shared = Some(access == "READ");
        Some(Holder { pid, shared, label: None, since: None })
    }

    #[cfg(test)]
    mod tests {
        use super::parse;

        #[test]
        fn parses_holders_and_skips_waiters_and_other_files() {
            let holder = parse("1: FLOCK  ADVISORY  READ 42 fe:00:77 0 EOF", |f| f == "fe:00:77");
            assert_eq!(holder.map(|h| (h.pid, h.shared)), Some((42, Some(true))));
            assert!(parse("1: -> FLOCK  ADVISORY  WRITE 43 fe:00:77 0 EOF", |_| true).is_none());
            assert!(parse("2: POSIX  ADVISORY  WRITE 44 fe:00:77 0 EOF", |_| true).is_none());
            assert!(
                parse("3: FLOCK  ADVISORY  WRITE 45 fe:00:78 0 EOF", |f| f == "fe:00:77").is_none()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Holder, Record, parse_record};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_record_round_trips_and_a_torn_one_is_ignored() {
        let text = "packlock-holder 1\npid 7\nsince 1500\nlabel sync worker\nend\n";
        let record = Record {
            pid: 7,
            since: UNIX_EPOCH + Duration::from_millis(1500),
            label: "sync worker".into(),
        };
        assert_eq!(parse_record(text), Some(record));
        assert_eq!(parse_record(&text[..text.len() - 4]), None);
        assert_eq!(parse_record("something else"), None);
    }

    #[test]
    fn display_names_pid_and_label() {
        let holder = Holder { pid: 9, shared: None, label: Some("job".into()), since: None };
        assert_eq!(holder.to_string(), "pid 9 (\"job\")");
    }
}
