//! Who holds a lock: the holder's pid from the OS where it tells (Linux's
//! `/proc/locks`, which names every `flock` holder, packlock or not), plus
//! the label and start time that packlock holders with a
//! [label](crate::PackLockBuilder::label) record in the lock file.
//!
//! All of this is diagnostics only: failures to write or read it are
//! ignored, and nothing here decides who gets the lock.

use std::fmt;
use std::fs::File;
use std::io;
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

/// The longest label recorded, in bytes: longer ones are cut, on a
/// character boundary, when set (see [`clamp_label`]).
pub(crate) const MAX_LABEL_LEN: usize = 1024;

/// Room for the largest record: the label plus the other lines (the
/// header, a `u32` pid, a `u64` millisecond count and the end line take
/// well under 100 bytes).
const MAX_RECORD_LEN: usize = MAX_LABEL_LEN + 128;

/// `label`, on one line and at most [`MAX_LABEL_LEN`] bytes: line breaks
/// become spaces (a label cannot break the record's format) and a longer
/// label is cut at the last character boundary that fits.
pub(crate) fn clamp_label(label: &str) -> String {
    let mut end = label.len().min(MAX_LABEL_LEN);
    while !label.is_char_boundary(end) {
        end -= 1;
    }
    label[..end].replace(['\n', '\r'], " ")
}

/// What a labelled holder writes into the lock file after locking it: the
/// whole file is one record, or it holds no record at all.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    pid: u32,
    since: SystemTime,
    label: String,
}

const RECORD_START: &str = "packlock-holder 1";
const RECORD_END: &str = "end";

impl Record {
    /// This process, holding since now.
    fn now(label: &str) -> Self {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let since = UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64);
        Self { pid: std::process::id(), since, label: clamp_label(label) }
    }

    fn to_text(&self) -> String {
        let millis = self.since.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let label = &self.label;
        format!("{RECORD_START}\npid {}\nsince {millis}\nlabel {label}\n{RECORD_END}\n", self.pid)
    }

    /// The record that `bytes` are, exactly: a whole, well-formed record and
    /// nothing more (no torn write, no data before or after it).
    fn parse(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let rest = text.strip_prefix(RECORD_START)?.strip_prefix('\n')?;
        let (pid, rest) = rest.strip_prefix("pid ")?.split_once('\n')?;
        let (millis, rest) = rest.strip_prefix("since ")?.split_once('\n')?;
        let (label, rest) = rest.strip_prefix("label ")?.split_once('\n')?;
        let since = UNIX_EPOCH + Duration::from_millis(millis.parse().ok()?);
        let record = Self { pid: pid.parse().ok()?, since, label: label.to_string() };
        // Nothing after the end line, and no spelling the writer would not
        // use (`+7`, `007`): what parses is what packlock wrote.
        (rest == format!("{RECORD_END}\n") && record.to_text() == text).then_some(record)
    }
}

/// Records this process, labelled `label`, as the holder of the lock file
/// `file` (best effort). Only a file that is empty or holds exactly one
/// record is written: anything else may be someone's data (people do lock
/// their data files, and append to them while holding the lock), so it is
/// left byte for byte as it is. A read-only lock file, too, just stays
/// without a record.
pub(crate) fn write_record(file: &File, label: &str) {
    match read_start(file, MAX_RECORD_LEN + 1) {
        Ok(bytes) if bytes.is_empty() || Record::parse(&bytes).is_some() => {}
        Ok(_) => {
            log::debug!("not recording the lock holder: the lock file holds other data");
            return;
        }
        Err(e) => {
            log::debug!("not recording the lock holder: cannot read the lock file: {e}");
            return;
        }
    }
    let text = Record::now(label).to_text();
    let written = write_start(file, text.as_bytes()).and_then(|()| file.set_len(text.len() as u64));
    if let Err(e) = written {
        log::debug!("cannot record the lock holder: {e}");
    }
}

/// Reads the record in the lock file, if it holds exactly one, through the
/// lock's own open file: opening the path again could block (a FIFO put
/// there since) or find another file. (On Windows a file locked by another
/// process cannot be read: then there is none.)
fn read_record(file: &File) -> Option<Record> {
    Record::parse(&read_start(file, MAX_RECORD_LEN + 1).ok()?)
}

/// Up to `limit` bytes from the start of `file`, read at explicit offsets
/// so that threads sharing the file never move each other's position.
fn read_start(file: &File, limit: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; limit];
    let mut len = 0;
    while len < limit {
        match read_at(file, &mut bytes[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(len);
    Ok(bytes)
}

/// Writes all of `bytes` at the start of `file`, at explicit offsets.
fn write_start(file: &File, bytes: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        match write_at(file, &bytes[done..], done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(windows)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(file, buf, offset)
}

#[cfg(not(any(unix, windows)))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read(buf)
}

#[cfg(not(any(unix, windows)))]
fn write_at(mut file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(offset))?;
    file.write(buf)
}

/// The holders of the lock file `file` with identity `key`: from the OS
/// where it tells, enriched with the record of a labelled packlock holder.
pub(crate) fn holders(file: &File, key: &crate::sidecar::FileKey) -> Vec<Holder> {
    let record = read_record(file);
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
        snapshot().map_or_else(Vec::new, |table| holders_in(&table, dev, ino))
    }

    /// The holders of `(dev, ino)` in `table`. The kernel prints each
    /// file as `MAJOR:MINOR:INODE`, major and minor of its file system's
    /// device in hex (`%02x:%02x:%lu`), which for most file systems is the
    /// device `stat` reports. Only that exact file matches: where `stat`
    /// shows another device than the table (btrfs subvolumes, overlayfs),
    /// no holder is found, since an inode number alone may well be a file
    /// of another file system, held by an unrelated process.
    pub(super) fn holders_in(table: &str, dev: u64, ino: u64) -> Vec<Holder> {
        let file = format!("{:02x}:{:02x}:{ino}", major(dev), minor(dev));
        table.lines().filter_map(|line| parse(line, |f| f == file)).collect()
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
        use super::{holders_in, parse};

        /// Device 254:0 (`fe:00`) and tmpfs-like 0:52 (`00:34`), in the
        /// encoding `stat` uses.
        const DISK: u64 = 254 << 8;
        const TMPFS: u64 = 52;

        #[test]
        fn matches_the_exact_device_and_inode_only() {
            let table = "1: FLOCK  ADVISORY  WRITE 10 00:34:77 0 EOF\n\
                         2: FLOCK  ADVISORY  READ 11 fe:00:77 0 EOF\n\
                         3: FLOCK  ADVISORY  READ 12 fe:00:770 0 EOF\n";
            let pids = |dev, ino| holders_in(table, dev, ino).iter().map(|h| h.pid).collect();
            let pids: &dyn Fn(u64, u64) -> Vec<u32> = &pids;
            assert_eq!(pids(DISK, 77), [11]);
            assert_eq!(pids(TMPFS, 77), [10]);
            assert_eq!(pids(DISK, 770), [12]);
            // The same inode number on another device is another file.
            assert_eq!(pids(TMPFS, 770), Vec::<u32>::new());
            assert_eq!(pids(1 << 8, 77), Vec::<u32>::new());
        }

        #[test]
        fn prints_major_and_minor_in_hex_as_the_kernel_does() {
            // Minor 300 is stored split in a `stat` device number.
            let dev = (8 << 8) | (300 & 0xff) | ((300 & !0xff) << 12);
            let table = "1: FLOCK  ADVISORY  WRITE 5 08:12c:9 0 EOF\n";
            assert_eq!(holders_in(table, dev, 9).len(), 1);
        }

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
    use super::{Holder, MAX_LABEL_LEN, Record, clamp_label};
    use std::time::{Duration, UNIX_EPOCH};

    const TEXT: &str = "packlock-holder 1\npid 7\nsince 1500\nlabel sync worker\nend\n";

    #[test]
    fn a_record_round_trips_and_a_torn_one_is_ignored() {
        let record = Record {
            pid: 7,
            since: UNIX_EPOCH + Duration::from_millis(1500),
            label: "sync worker".into(),
        };
        assert_eq!(Record::parse(TEXT.as_bytes()), Some(record));
        for cut in 1..TEXT.len() {
            assert_eq!(Record::parse(&TEXT.as_bytes()[..cut]), None, "{cut}");
        }
        assert_eq!(Record::parse(b"something else"), None);
    }

    #[test]
    fn only_a_record_and_nothing_more_is_a_record() {
        for text in [
            format!("{TEXT}appended\n"),
            format!("{TEXT}{TEXT}"),
            format!("data\n{TEXT}"),
            TEXT.replace("pid 7", "pid +7"),
            TEXT.replace("pid 7", "pid 07"),
            TEXT.replace('\n', "\r\n"),
            TEXT.trim_end().to_string(),
        ] {
            assert_eq!(Record::parse(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn labels_are_cut_on_a_character_boundary_and_kept_on_one_line() {
        let long = "é".repeat(5000);
        let clamped = clamp_label(&long);
        assert!(clamped.len() <= MAX_LABEL_LEN && clamped.len() > MAX_LABEL_LEN - 4);
        assert!(long.starts_with(&clamped));
        assert_eq!(clamp_label("two\nlines\r"), "two lines ");
        let record = Record::now(&long);
        assert_eq!(Record::parse(record.to_text().as_bytes()), Some(record));
    }

    #[test]
    fn display_names_pid_and_label() {
        let holder = Holder { pid: 9, shared: None, label: Some("job".into()), since: None };
        assert_eq!(holder.to_string(), "pid 9 (\"job\")");
    }
}
