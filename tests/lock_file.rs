//! What packlock writes into a lock file, and which files it locks.
//!
//! A labelled holder records itself only in a lock file that is empty or
//! holds nothing but a record: any other content is left byte for byte.
//! Every label recorded reads back (cut to its documented limit). Lock
//! files on read-only file systems lock like others; directories, FIFOs
//! and devices are refused with an error naming the path, without
//! hanging.

mod common;

use std::fs;
use std::path::Path;

use packlock::PackLock;
#[cfg(unix)] // only the Unix-only tests below inspect errors
use packlock::PackLockError;

/// A record as packlock writes it, from a process that is long gone.
const OLD_RECORD: &str = "packlock-holder 1\npid 4000000000\nsince 1500\nlabel old\nend\n";

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).expect("read lock file")
}

/// Takes and releases the lock of `path` with a label.
fn hold_labelled(path: &Path, label: &str) {
    let lock = PackLock::builder_for_file(path).label(label).open().expect("open");
    drop(lock.acquire().expect("acquire"));
}

#[test]
fn data_appended_after_a_record_survives_a_labelled_acquire() {
    let dir = common::temp_dir();
    let log = dir.path().join("log.txt");
    let content = format!("{OLD_RECORD}first line\nsecond line\n");
    fs::write(&log, &content).expect("write");
    hold_labelled(&log, "appender");
    assert_eq!(read(&log), content.as_bytes(), "every byte after the record is kept");
}

#[test]
fn content_that_only_looks_like_a_record_is_left_alone() {
    let dir = common::temp_dir();
    for (name, content) in [
        ("torn", &OLD_RECORD[..OLD_RECORD.len() - 4]),
        ("header-only", "packlock-holder 1\n"),
        ("header-then-data", "packlock-holder 1 was here\n"),
        ("binary", "\u{0}\u{1}packlock"),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, content).expect("write");
        hold_labelled(&path, "writer");
        assert_eq!(read(&path), content.as_bytes(), "{name}");
    }
}

#[test]
fn an_empty_file_or_a_lone_record_gets_the_new_record() {
    let dir = common::temp_dir();
    let path = dir.path().join("own.lock");
    fs::write(&path, OLD_RECORD).expect("write");
    hold_labelled(&path, "newer");
    let text = String::from_utf8(read(&path)).expect("utf-8 record");
    assert!(text.starts_with("packlock-holder 1\n"), "{text:?}");
    assert!(text.ends_with("\nlabel newer\nend\n"), "{text:?}");
    assert!(text.contains(&format!("\npid {}\n", std::process::id())), "{text:?}");
}

/// A label of 5,000 two-byte characters is cut to at most 1,024 bytes on a
/// character boundary, and that is what others read back.
#[cfg(target_os = "linux")]
#[test]
fn a_long_multi_byte_label_reads_back_cut_to_the_limit() {
    let dir = common::temp_dir();
    let label = "é".repeat(5000);
    let lock = PackLock::builder(dir.path()).label(label.clone()).open().expect("open");
    let _hold = lock.acquire().expect("acquire");
    let holders = lock.holders();
    let read_back = holders[0].label.as_deref().expect("the label reads back");
    assert!(read_back.len() <= 1024 && read_back.len() >= 1022, "{} bytes", read_back.len());
    assert!(label.starts_with(read_back));
    let busy = common::open(dir.path()).try_acquire().expect_err("busy");
    assert!(busy.to_string().contains(read_back), "{busy}");
}

/// Runs `open` on another thread and fails the test if it does not return
/// within [`DEADLINE`](common::DEADLINE) (opening or reporting on a FIFO
/// could block).
#[cfg(unix)]
fn open_within_deadline(path: &Path) -> Result<PackLock, PackLockError> {
    let path = path.to_path_buf();
    common::within_deadline(move || {
        PackLock::open_file(&path).and_then(|lock| {
            // Contended, so that `try_acquire` reports who holds it.
            let hold = lock.acquire()?;
            let busy = PackLock::open_file(&path)?.try_acquire().map(drop);
            drop(hold);
            busy.map(|()| lock)
        })
    })
}

#[cfg(unix)]
#[test]
fn a_fifo_as_lock_file_is_refused_without_hanging() {
    let dir = common::temp_dir();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
    assert!(made.success());
    match open_within_deadline(&fifo) {
        Err(err @ PackLockError::NotARegularFile { kind: "FIFO", .. }) => {
            assert!(err.to_string().contains(&*fifo.to_string_lossy()), "{err}");
        }
        other => panic!("expected NotARegularFile for a FIFO, got {other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn a_device_as_lock_file_is_refused() {
    match PackLock::open_file("/dev/null") {
        Err(err @ PackLockError::NotARegularFile { kind: "character device", .. }) => {
            assert!(err.to_string().contains("/dev/null"), "{err}");
        }
        other => panic!("expected NotARegularFile for /dev/null, got {other:?}"),
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_lock_file_on_a_read_only_file_system_locks_and_is_left_unchanged() {
    let Some(fs) = common::tmpfs::Tmpfs::mount("read-only file system") else { return };
    let path = fs.path().join("lock");
    fs::write(&path, "contents\n").expect("write");
    fs.remount_read_only();

    let lock = PackLock::builder_for_file(&path).label("reader").open().expect("open read-only");
    let hold = lock.acquire().expect("acquire");
    assert_eq!(common::flock::nonblocking(&path, &[]), 1, "flock(1) sees the lock");
    let busy = PackLock::open_file(&path).expect("open").try_acquire().expect_err("busy");
    assert!(matches!(busy, PackLockError::Busy { .. }), "{busy:?}");
    hold.release().expect("release");
    assert_eq!(read(&path), b"contents\n", "no record on a read-only file system");
    assert_eq!(common::flock::nonblocking(&path, &[]), 0, "released");
}

/// A free lock has no holders, even while an unrelated process holds a
/// file with the same inode number on another file system.
#[cfg(target_os = "linux")]
#[test]
fn a_free_lock_has_no_holders_though_another_fs_has_its_inode_locked() {
    let Some(ours) = common::tmpfs::Tmpfs::mount("holders across file systems") else { return };
    let Some(theirs) = common::tmpfs::Tmpfs::mount("holders across file systems") else { return };
    let path = ours.path().join("lock");
    let other = theirs.path().join("other");
    fs::write(&path, "").expect("create");
    fs::write(&other, "").expect("create");
    use std::os::unix::fs::MetadataExt;
    let inode = |p: &Path| fs::metadata(p).expect("stat").ino();
    assert_eq!(inode(&path), inode(&other), "fresh tmpfs mounts number inodes alike");

    let unrelated = common::flock::Holder::start(&other, "-x");
    let lock = PackLock::open_file(&path).expect("open");
    assert_eq!(lock.holders(), [], "nobody holds {}", path.display());
    drop(lock.try_acquire().expect("the lock is free"));
    unrelated.stop();
}
