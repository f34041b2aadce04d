//! Fences for lock files (`PackLockBuilder::fencing`): a counter kept in
//! the lock file that every exclusive acquire increments before it
//! returns, across processes; shared holds read it. Written only into a
//! lock file that is empty or holds packlock's own lines.

#[macro_use]
mod common;

use std::fs;
use std::path::Path;

use packlock::{PackLock, PackLockError};

/// How many times each child process takes the lock.
const ACQUIRES: u64 = 10;

#[test]
fn child_process_entry() {
    common::child_process_entry(|args| match args.role.as_str() {
        "fence-taker" => {
            let lock = fenced(&args.dir.join("lock")).open().expect("open");
            for _ in 0..ACQUIRES {
                let hold = lock.acquire().expect("acquire");
                let fence = hold.fence().expect("a fencing lock has fences");
                common::tell_parent(&format!("fence {fence}"));
            }
            common::tell_parent("done");
        }
        "holder" => {
            common::hold_until_told(&PackLock::open_file(args.dir.join("lock")).expect("open"))
        }
        other => panic!("unknown role {other}"),
    });
}

fn fenced(path: &Path) -> packlock::PackLockBuilder {
    PackLock::builder_for_file(path).fencing(true)
}

fn fence_of(lock: &PackLock) -> u64 {
    lock.acquire().expect("acquire").fence().expect("a fencing lock has fences")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).expect("read lock file")
}

/// The fences one child reported, in the order it got them.
fn fences_from(child: &common::Child) -> Vec<u64> {
    let mut fences = Vec::new();
    loop {
        let message = child.next_message();
        if message == "done" {
            return fences;
        }
        let fence = message.strip_prefix("fence ").and_then(|n| n.parse().ok());
        fences.push(fence.unwrap_or_else(|| panic!("unexpected message {message:?}")));
    }
}

#[test]
fn exclusive_fences_strictly_increase_across_processes() {
    let dir = common::temp_dir();
    let children = [
        common::Child::spawn("fence-taker", dir.path()),
        common::Child::spawn("fence-taker", dir.path()),
    ];
    let mut all = Vec::new();
    for child in children {
        let fences = fences_from(&child);
        assert!(fences.is_sorted_by(|a, b| a < b), "one process's fences increase: {fences:?}");
        all.extend(fences);
        child.join();
    }
    all.sort_unstable();
    // Every exclusive grant took the next number: no fence was handed out twice.
    assert_eq!(all, (1..=2 * ACQUIRES).collect::<Vec<_>>());
    let lock = fenced(&dir.path().join("lock")).open().expect("open");
    assert_eq!(fence_of(&lock), 2 * ACQUIRES + 1, "the counter outlives its processes");
}

#[test]
fn a_shared_hold_sees_the_last_exclusive_fence_and_writes_nothing() {
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    let readers = fenced(&path).shared(true).open().expect("open");
    assert_eq!(fence_of(&readers), 0, "no exclusive hold yet");
    assert_eq!(read(&path), "", "a shared hold writes nothing");

    let writer = fenced(&path).open().expect("open");
    for expected in 1..=3 {
        assert_eq!(fence_of(&writer), expected);
    }
    let first = readers.acquire().expect("acquire");
    let second = readers.try_acquire().expect("shared holds coexist");
    let other_reader = fenced(&path).shared(true).open().expect("open");
    let third = other_reader.try_acquire().expect("shared holds coexist");
    for hold in [&first, &second, &third] {
        assert_eq!(hold.fence(), Some(3), "the fence of the last exclusive hold");
    }
    assert_eq!(read(&path), "packlock-fence 3\n");
    drop((first, second, third));
    assert_eq!(fence_of(&writer), 4, "shared holds did not move the counter");
}

#[test]
fn a_labelled_holders_record_keeps_the_fence() {
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    let labelled = fenced(&path).label("sync worker").open().expect("open");
    let hold = labelled.acquire().expect("acquire");
    assert_eq!(hold.fence(), Some(1));
    let content = read(&path);
    assert!(content.starts_with("packlock-fence 1\npacklock-holder 1\n"), "{content:?}");
    #[cfg(target_os = "linux")]
    assert_eq!(labelled.holders()[0].label.as_deref(), Some("sync worker"));
    drop(hold);

    // A labelled holder that does not fence keeps the fence line too.
    let unfenced = PackLock::builder_for_file(&path).label("reader").open().expect("open");
    let hold = unfenced.acquire().expect("acquire");
    assert_eq!(hold.fence(), None);
    let content = read(&path);
    assert!(content.starts_with("packlock-fence 1\npacklock-holder 1\n"), "{content:?}");
    assert!(content.contains("label reader\nend\n"), "{content:?}");
    drop(hold);

    assert_eq!(fence_of(&fenced(&path).open().expect("open")), 2);
    assert_eq!(fence_of(&labelled), 3);
}

/// A holder with a shorter label than the last one pads its record to the
/// old length rather than truncating the file: one write, so a process
/// killed at any point leaves either the old content or the new, never the
/// tail of the old record after the new one — bytes that would make every
/// later fencing acquire fail.
#[test]
fn a_shorter_record_is_padded_in_place_and_the_file_never_shrinks() {
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    let long_label = "nightly sync of every pack in the store".repeat(3);
    let fenced_long = fenced(&path).label(&long_label).open().expect("open");
    assert_eq!(fence_of(&fenced_long), 1);
    let long_len = fs::metadata(&path).expect("stat").len();

    let short = fenced(&path).label("gc").open().expect("open");
    let hold = short.acquire().expect("acquire");
    assert_eq!(hold.fence(), Some(2));
    let content = read(&path);
    assert_eq!(content.len() as u64, long_len, "{content:?}");
    assert!(content.starts_with("packlock-fence 2\npacklock-holder 1\n"), "{content:?}");
    assert!(content.contains("label gc\nend\n"), "{content:?}");
    assert!(!content.contains("nightly"), "{content:?}");
    #[cfg(target_os = "linux")]
    assert_eq!(short.holders()[0].label.as_deref(), Some("gc"));
    drop(hold);

    // The padded file is packlock's own: fences and records go on.
    assert_eq!(fence_of(&fenced(&path).open().expect("open")), 3);
    assert_eq!(fence_of(&fenced_long), 4);
    assert!(read(&path).contains(&long_label));
}

#[test]
fn a_lock_file_with_foreign_data_fails_to_fence_and_stays_untouched_and_free() {
    let dir = common::temp_dir();
    let path = dir.path().join("data.txt");
    let data = "someone's data\n";
    fs::write(&path, data).expect("write");
    for shared in [false, true] {
        let lock = fenced(&path).shared(shared).label("writer").open().expect("open");
        let err = assert_err!(lock.try_acquire(), PackLockError::CannotFence, lock.path());
        assert!(err.to_string().contains("packlock did not write"), "{err}");
        assert_err!(lock.acquire(), PackLockError::CannotFence, lock.path());
        let other = PackLock::open_file(&path).expect("open");
        drop(other.try_acquire().expect("nothing stays locked"));
    }
    assert_eq!(read(&path), data, "foreign data is never written");
}

#[test]
fn without_fencing_there_is_no_fence_and_nothing_is_written() {
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    for shared in [false, true] {
        let lock = PackLock::builder_for_file(&path).shared(shared).open().expect("open");
        assert_eq!(lock.acquire().expect("acquire").fence(), None);
    }
    assert_eq!(read(&path), "", "an unlabelled lock writes nothing");

    let fenced_lock = fenced(&path).open().expect("open");
    assert_eq!(fence_of(&fenced_lock), 1);
    let lock = PackLock::open_file(&path).expect("open");
    assert_eq!(lock.acquire().expect("acquire").fence(), None);
    assert_eq!(read(&path), "packlock-fence 1\n", "the counter moves only with fencing");
}

#[cfg(target_os = "linux")]
#[test]
fn a_read_only_lock_file_cannot_fence() {
    let Some(fs) = common::tmpfs::Tmpfs::mount("read-only fencing") else { return };
    let path = fs.path().join("lock");
    fs::write(&path, "").expect("write");
    fs.remount_read_only();
    assert_err!(fenced(&path).open(), PackLockError::CannotFence, &path);
    PackLock::open_file(&path).expect("without fencing a read-only lock file opens");
}

/// The blocking path too: an acquire that waited in the kernel for another
/// process, and finds foreign data once granted, fails and leaves the lock
/// free. (Unix: on Windows the holder's mandatory lock keeps the test from
/// writing the file.)
#[cfg(unix)]
#[test]
fn a_waiting_acquire_that_finds_foreign_data_fails_and_leaves_the_lock_free() {
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    let holder = common::spawn_holder("holder", dir.path());
    let waiter = {
        let path = path.clone();
        std::thread::spawn(move || fenced(&path).open().expect("open").acquire().map(drop))
    };
    common::wait_until_parked(&path);
    fs::write(&path, "written while held\n").expect("write");
    common::release(holder);
    let result = common::within_deadline(move || waiter.join().expect("waiter"));
    assert_err!(result, PackLockError::CannotFence, &path);
    drop(PackLock::open_file(&path).expect("open").try_acquire().expect("nothing stays locked"));
    assert_eq!(read(&path), "written while held\n");
}
