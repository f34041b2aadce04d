//! Fences for lock files (`PackLockBuilder::fencing`): a counter kept in a
//! file of its own beside the lock file (`<lock file>.fence`), which every
//! grant — exclusive or shared — raises before the acquire returns, across
//! processes, and which starts above every earlier fence even when the
//! files are deleted or replaced. The lock file itself is never written
//! for fences.

#[macro_use]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;

use packlock::{PackLock, PackLockError};

/// How many times each child process takes the lock.
const ACQUIRES: u64 = 10;
/// Threads per child process in the shared storm, and acquires per thread.
const STORM_THREADS: usize = 4;
const STORM_ACQUIRES: usize = 200;

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
        "shared-fence" => {
            let lock = fenced(&args.dir.join("lock")).shared(true).open().expect("open");
            let hold = lock.acquire().expect("acquire");
            let fence = hold.fence().expect("a fencing lock has fences");
            common::tell_parent(&format!("fence {fence}"));
            common::wait_for_parent();
            drop(hold);
            common::tell_parent("done");
        }
        "shared-storm" => {
            let fences = shared_storm(&args.dir.join("lock"));
            for fence in fences {
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
    fs::read_to_string(path).expect("read file")
}

fn fence_file(lock_file: &Path) -> PathBuf {
    let mut name = lock_file.file_name().expect("a file name").to_os_string();
    name.push(".fence");
    lock_file.with_file_name(name)
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
    all.dedup();
    assert_eq!(all.len() as u64, 2 * ACQUIRES, "a fence was handed out twice");
    let lock = fenced(&dir.path().join("lock")).open().expect("open");
    let last = all.last().copied().unwrap_or_default();
    assert!(fence_of(&lock) > last, "the counter outlives its processes");
}

/// Every grant, shared ones too, gets a fence larger than any before it,
/// so a reader's fence shuts out the writer before it; the holds of one
/// process joined to one shared lock share its fence. Nothing is written
/// into the lock file.
#[test]
fn every_grant_shared_ones_too_gets_a_larger_fence() {
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    let writer = fenced(&path).open().expect("open");
    let written = fence_of(&writer);

    let readers = fenced(&path).shared(true).open().expect("open");
    let first = readers.acquire().expect("acquire");
    let joined = readers.try_acquire().expect("shared holds coexist");
    let other_lock = fenced(&path).shared(true).open().expect("open");
    let also_joined = other_lock.try_acquire().expect("shared holds coexist");
    let read = first.fence().expect("fence");
    assert!(read > written, "a reader's fence {read} is not above the writer's {written}");
    for hold in [&joined, &also_joined] {
        assert_eq!(hold.fence(), Some(read), "holds joined to one shared lock share its fence");
    }
    // Another process's reader, beside ours, gets a larger one still.
    let mut child = common::Child::spawn("shared-fence", dir.path());
    let theirs = child.next_message();
    let theirs: u64 = theirs.strip_prefix("fence ").and_then(|n| n.parse().ok()).expect("fence");
    assert!(theirs > read, "{theirs} after {read}");
    child.proceed();
    child.expect("done");
    child.join();
    drop((first, joined, also_joined));
    assert!(fence_of(&writer) > theirs, "the next writer's fence is above every reader's");
    assert_eq!(read_or_empty(&path), "", "fences never write the lock file");
}

fn read_or_empty(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Labelled shared holds of one fenced lock file in several threads of
/// two processes at once: none fails, no two grants of different processes
/// share a fence, and an exclusive acquire afterwards gets a fence above
/// them all — nothing was torn.
#[test]
fn shared_holders_of_several_processes_tear_nothing() {
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    let children = [
        common::Child::spawn("shared-storm", dir.path()),
        common::Child::spawn("shared-storm", dir.path()),
    ];
    let reported: Vec<Vec<u64>> = children
        .into_iter()
        .map(|child| {
            let fences = fences_from(&child);
            child.join();
            fences
        })
        .collect();
    for fences in &reported {
        assert_eq!(fences.len(), STORM_THREADS * STORM_ACQUIRES, "every acquire succeeded");
    }
    let distinct = |fences: &Vec<u64>| {
        let mut fences = fences.clone();
        fences.sort_unstable();
        fences.dedup();
        fences
    };
    let (a, b) = (distinct(&reported[0]), distinct(&reported[1]));
    assert!(a.iter().all(|fence| b.binary_search(fence).is_err()), "two processes, one fence");
    let last = a.last().max(b.last()).copied().unwrap_or_default();
    let writer = fenced(&path).label("writer").open().expect("open");
    assert!(fence_of(&writer) > last, "an exclusive fence after the storm");
}

/// The storm one child runs: labelled shared acquires of a fenced lock on
/// several threads; the fences they got.
fn shared_storm(path: &Path) -> Vec<u64> {
    thread::scope(|scope| {
        let threads: Vec<_> = (0..STORM_THREADS)
            .map(|i| {
                scope.spawn(move || {
                    let label = format!("reader {i} of pid {}", std::process::id()).repeat(i + 1);
                    let lock = fenced(path).shared(true).label(label).open().expect("open");
                    (0..STORM_ACQUIRES).map(|_| fence_of(&lock)).collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("storm thread")).collect()
    })
}

/// A lock file deleted or replaced (packlock then locks the new one) does
/// not restart the fences: the counter lives beside it. Even with the
/// counter's own file gone too, new fences start above the old ones (they
/// are at least the time in microseconds). A holder still working with an
/// old fence is shut out by the next holder's.
#[test]
fn fences_keep_growing_when_the_lock_file_is_deleted_or_replaced() {
    if !common::open_files_can_be_replaced() {
        return; // Wine keeps a deleted open file at its path
    }
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    let lock = fenced(&path).open().expect("open");
    let stale_hold = lock.acquire().expect("acquire");
    let stale = stale_hold.fence().expect("fence");
    fs::remove_file(&path).expect("delete the lock file");
    // A lock opened now is on the new file, free while the stale hold lives.
    let after_delete = fence_of(&fenced(&path).open().expect("open"));
    assert!(after_delete > stale, "{after_delete} after {stale}");
    drop(stale_hold);

    common::rename_new_file_over(&path);
    let after_replace = fence_of(&lock);
    assert!(after_replace > after_delete, "{after_replace} after {after_delete}");

    fs::remove_file(&path).expect("delete the lock file");
    fs::remove_file(fence_file(&path)).expect("delete the fence file");
    let after_both = fence_of(&lock);
    assert!(after_both > after_replace, "{after_both} after {after_replace}");
}

/// A lock file from before fences had their own file holds the counter on
/// its first line: new fences start above it.
#[test]
fn a_counter_left_in_the_lock_file_is_a_floor() {
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    let old = 5_000_000_000_000_000_u64;
    fs::write(&path, format!("packlock-fence {old}\n")).expect("write");
    let fence = fence_of(&fenced(&path).open().expect("open"));
    assert_eq!(fence, old + 1);
    assert_eq!(read(&path), format!("packlock-fence {old}\n"), "the lock file is never written");
}

/// A labelled exclusive holder records itself in the lock file; the fence
/// is kept apart, and a record shorter than the last is padded in place.
#[test]
fn a_labelled_holder_records_itself_and_the_fence_lives_apart() {
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    let long_label = "nightly sync of every pack in the store".repeat(3);
    let long = fenced(&path).label(&long_label).open().expect("open");
    let first = fence_of(&long);
    let long_len = fs::metadata(&path).expect("stat").len();
    let short = fenced(&path).label("gc").open().expect("open");
    let hold = short.acquire().expect("acquire");
    assert!(hold.fence().expect("fence") > first);
    let content = read(&path);
    assert_eq!(content.len() as u64, long_len, "{content:?}");
    assert!(content.starts_with("packlock-holder 1\n"), "{content:?}");
    assert!(content.contains("label gc\nend\n"), "{content:?}");
    #[cfg(target_os = "linux")]
    assert_eq!(short.holders()[0].label.as_deref(), Some("gc"));
    drop(hold);
    assert!(read(&fence_file(&path)).starts_with("packlock-fence "));
}

/// The counter has a file of its own, so a lock file holding data can be
/// fenced and is never written.
#[test]
fn a_lock_file_with_data_can_be_fenced_and_stays_untouched() {
    let dir = common::temp_dir();
    let path = dir.path().join("data.txt");
    let data = "someone's data\n";
    fs::write(&path, data).expect("write");
    for shared in [false, true] {
        let lock = fenced(&path).shared(shared).open().expect("open");
        assert!(lock.try_acquire().expect("acquire").fence().is_some());
    }
    assert_eq!(read(&path), data);
}

/// A fence file holding anything but packlock's counter is never
/// written: the acquire fails naming it, and nothing stays locked.
#[test]
fn a_fence_file_with_foreign_data_fails_and_leaves_the_lock_free() {
    let dir = common::temp_dir();
    let path = dir.path().join("lock");
    let fences = fence_file(&path);
    for data in ["someone's data\n", "\n"] {
        fs::write(&fences, data).expect("write");
        for shared in [false, true] {
            let lock = fenced(&path).shared(shared).open().expect("open");
            let err = assert_err!(lock.try_acquire(), PackLockError::CannotFence, &fences);
            assert!(err.to_string().contains("packlock did not write"), "{err}");
            assert_err!(lock.acquire(), PackLockError::CannotFence, &fences);
            let other = PackLock::open_file(&path).expect("open");
            drop(other.try_acquire().expect("nothing stays locked"));
        }
        assert_eq!(read(&fences), data, "foreign data is never written");
    }
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
    assert!(!fence_file(&path).exists(), "no fence file without fencing");
}

/// On a read-only file system the fence file cannot be made: opening with
/// fencing fails naming it; without fencing the lock opens.
#[cfg(target_os = "linux")]
#[test]
fn a_read_only_file_system_cannot_fence() {
    let Some(fs) = common::tmpfs::Tmpfs::mount("read-only fencing") else { return };
    let path = fs.path().join("lock");
    fs::write(&path, "").expect("write");
    fs.remount_read_only();
    assert_err!(fenced(&path).open(), PackLockError::Io, &fence_file(&path));
    PackLock::open_file(&path).expect("without fencing a read-only lock file opens");
}

/// The blocking path too: an acquire that waited in the kernel for another
/// process, and finds foreign data in the fence file once granted, fails
/// and leaves the lock free.
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
    fs::write(fence_file(&path), "written while held\n").expect("write");
    common::release(holder);
    let result = common::within_deadline(move || waiter.join().expect("waiter"));
    assert_err!(result, PackLockError::CannotFence, &fence_file(&path));
    drop(PackLock::open_file(&path).expect("open").try_acquire().expect("nothing stays locked"));
    assert_eq!(read(&fence_file(&path)), "written while held\n");
}
