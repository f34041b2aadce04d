//! `flock` entries in `/proc/locks` for one file.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One line of `/proc/locks` about our file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// A waiter (`->` lines) rather than a holder.
    pub blocked: bool,
    pub pid: u32,
}

/// The holders and waiters of the file now at `path`.
pub fn entries(path: &Path) -> Vec<Entry> {
    let ino = std::fs::metadata(path).expect("stat lock file").ino();
    entries_for_inode(ino)
}

/// The holders and waiters of inode `ino` (any device: tests use one).
pub fn entries_for_inode(ino: u64) -> Vec<Entry> {
    snapshot().lines().filter_map(|line| parse(line, ino)).collect()
}

/// `/proc/locks` in one `read`: the kernel walks the lock list under its
/// lock once per `read` call, so reading in pieces while locks come and
/// go can repeat or skip entries.
fn snapshot() -> String {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/locks").expect("open /proc/locks");
    let mut buffer = vec![0; 1 << 20];
    let len = file.read(&mut buffer).expect("read /proc/locks");
    assert!(len < buffer.len(), "/proc/locks did not fit one read");
    buffer.truncate(len);
    String::from_utf8(buffer).expect("/proc/locks is text")
}

/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`, or with `->` after
/// the number for a waiter.
fn parse(line: &str, ino: u64) -> Option<Entry> {
    let mut fields = line.split_whitespace().skip(1).peekable();
    let blocked = fields.next_if_eq(&"->").is_some();
    let kind = fields.next()?;
    let pid = fields.nth(2)?.parse().ok()?;
    let file = fields.next()?;
    let file_ino: u64 = file.rsplit(':').next()?.parse().ok()?;
    (kind == "FLOCK" && file_ino == ino).then_some(Entry { blocked, pid })
}

/// How many waiters process `pid` has on the file at `path`.
pub fn waiters_of(path: &Path, pid: u32) -> usize {
    entries(path).iter().filter(|e| e.blocked && e.pid == pid).count()
}

/// How many locks (not waiters) process `pid` holds on the file at `path`.
pub fn holders_of(path: &Path, pid: u32) -> usize {
    entries(path).iter().filter(|e| !e.blocked && e.pid == pid).count()
}
