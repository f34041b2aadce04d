//! Linux's table of file locks, `/proc/locks`: it names every `flock`
//! holder of a file by pid, packlock or not.

use std::io::Read;

use super::{major, minor};
use crate::Holder;
use crate::sys::FileKey;

/// The `flock` holders (not waiters) of the file `(dev, ino)`.
pub(crate) fn flock_holders(key: &FileKey) -> Vec<Holder> {
    let table = snapshot();
    table.map_or_else(Vec::new, |table| holders_in(&table, key.device(), key.inode()))
}

/// The holders of `(dev, ino)` in `table`. The kernel prints each
/// file as `MAJOR:MINOR:INODE`, major and minor of its file system's
/// device in hex (`%02x:%02x:%lu`), which for most file systems is the
/// device `stat` reports. Only that exact file matches: where `stat`
/// shows another device than the table (btrfs subvolumes, overlayfs),
/// no holder is found, since an inode number alone may well be a file
/// of another file system, held by an unrelated process.
fn holders_in(table: &str, dev: u64, ino: u64) -> Vec<Holder> {
    let file = format!("{:02x}:{:02x}:{ino}", major(dev), minor(dev));
    table.lines().filter_map(|line| parse(line, |f| f == file)).collect()
}

/// The whole table, read to its end: the kernel hands it out a page at a
/// time, whatever the buffer, so a machine with more than a page of locks
/// (about 70) needs several reads. Locks taken or dropped between them
/// may be missed or seen twice; the file asked about is held throughout
/// by whoever holds it, and each line stands alone.
fn snapshot() -> Option<String> {
    let mut table = String::new();
    std::fs::File::open("/proc/locks").ok()?.read_to_string(&mut table).ok()?;
    Some(table)
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
