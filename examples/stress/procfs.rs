//! What `/proc` tells about threads and `flock` waiters (Linux only;
//! elsewhere nothing is known).

/// One `flock` entry of `/proc/locks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// A waiter (`->`) rather than a holder.
    pub blocked: bool,
    pub pid: u32,
    /// `major:minor:inode` as the kernel prints it.
    pub file: String,
    pub ino: u64,
}

/// How many threads this process has now.
#[cfg(target_os = "linux")]
pub fn thread_count() -> Option<u64> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    u64::try_from(tasks.count()).ok()
}

#[cfg(not(target_os = "linux"))]
pub fn thread_count() -> Option<u64> {
    None
}

/// Every `flock` entry, from one `read` of `/proc/locks` (the kernel
/// walks its lock list once per `read`, so one read is one snapshot).
#[cfg(target_os = "linux")]
pub fn flock_entries() -> Option<Vec<LockEntry>> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/locks").ok()?;
    let mut buffer = vec![0; 1 << 20];
    let len = file.read(&mut buffer).ok()?;
    buffer.truncate(len);
    let text = String::from_utf8_lossy(&buffer);
    Some(text.lines().filter_map(parse_line).collect())
}

#[cfg(not(target_os = "linux"))]
pub fn flock_entries() -> Option<Vec<LockEntry>> {
    None
}

/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`, with `->` after
/// the number for a waiter.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_line(line: &str) -> Option<LockEntry> {
    let mut fields = line.split_whitespace().skip(1).peekable();
    let blocked = fields.next_if_eq(&"->").is_some();
    if fields.next()? != "FLOCK" {
        return None;
    }
    let pid = fields.nth(2)?.parse().ok()?;
    let file = fields.next()?.to_string();
    let ino = file.rsplit(':').next()?.parse().ok()?;
    Some(LockEntry { blocked, pid, file, ino })
}

/// This process's waiters in the kernel: in total, and the most on one
/// file.
pub fn own_waiters() -> Option<(u64, u64)> {
    let pid = std::process::id();
    let mut per_file = std::collections::HashMap::<String, u64>::new();
    for entry in flock_entries()?.into_iter().filter(|e| e.blocked && e.pid == pid) {
        *per_file.entry(entry.file).or_default() += 1;
    }
    Some((per_file.values().sum(), per_file.values().copied().max().unwrap_or(0)))
}
