//! Opening a lock, and what bad input does.
//!
//! Opening creates the directory and the lock file, never truncates, deletes
//! or locks it; a custom sidecar name must be a bare file name; every bad
//! path yields an error (never a panic) whose message names the path; and the
//! public types can cross threads.

#[macro_use]
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use packlock::{PACK_LOCK_FILE_NAME, PackLock, PackLockError, PackLockHold};

use common::temp_dir;

/// The names of the entries directly inside `dir`.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| PathBuf::from(entry.expect("dir entry").file_name()))
        .collect();
    names.sort();
    names
}

#[test]
fn open_creates_missing_nested_dirs_and_the_sidecar() {
    let tmp = temp_dir();
    let pack = tmp.path().join("packs/a/b/c");
    let lock = PackLock::open(&pack).expect("open");
    assert!(pack.is_dir(), "open must create the directory");
    assert!(pack.join(PACK_LOCK_FILE_NAME).is_file(), "open must create the sidecar");
    assert_eq!(lock.path(), pack.join(PACK_LOCK_FILE_NAME));
}

#[test]
fn open_of_an_existing_dir_adds_only_the_sidecar() {
    let tmp = temp_dir();
    fs::write(tmp.path().join("data"), "x").expect("write");
    let _lock = PackLock::open(tmp.path()).expect("open");
    assert_eq!(entries(tmp.path()), [PathBuf::from(PACK_LOCK_FILE_NAME), PathBuf::from("data")]);
}

#[test]
fn open_never_truncates_an_existing_lock_file() {
    let tmp = temp_dir();
    let file = tmp.path().join(PACK_LOCK_FILE_NAME);
    fs::write(&file, "precious contents").expect("write");

    let lock = PackLock::open(tmp.path()).expect("open");
    lock.acquire().expect("acquire").release().expect("release");
    drop(lock);
    assert_eq!(fs::read_to_string(&file).expect("read"), "precious contents");

    let lock = PackLock::open_file(&file).expect("open_file");
    drop(lock.try_acquire().expect("try_acquire"));
    drop(lock);
    assert_eq!(fs::read_to_string(&file).expect("read"), "precious contents");
}

#[test]
fn lock_file_survives_release_and_drop() {
    let tmp = temp_dir();
    let lock = PackLock::open(tmp.path()).expect("open");
    let file = lock.path().to_path_buf();
    lock.acquire().expect("acquire").release().expect("release");
    assert!(file.is_file(), "release must not delete the lock file");
    drop(lock.acquire().expect("acquire"));
    assert!(file.is_file(), "dropping a hold must not delete the lock file");
    drop(lock);
    assert!(file.is_file(), "dropping the lock must not delete the lock file");
}

#[test]
fn open_does_not_lock() {
    let tmp = temp_dir();
    let first = PackLock::open(tmp.path()).expect("open first");
    let second = PackLock::open(tmp.path()).expect("open second");
    drop(second.try_acquire().expect("a fresh open must not hold the lock"));
    drop(first.try_acquire().expect("the opener itself must not hold the lock"));
}

#[test]
fn open_file_uses_the_explicit_path_and_creates_parents() {
    let tmp = temp_dir();
    let file = tmp.path().join("x/y/dest.backend.lock");
    let lock = PackLock::open_file(&file).expect("open_file");
    assert_eq!(lock.path(), file);
    assert!(file.is_file(), "open_file must create the file");
    assert_eq!(entries(&tmp.path().join("x/y")), [PathBuf::from("dest.backend.lock")]);
    let hold = lock.acquire().expect("acquire");
    assert_eq!(hold.path(), file);
}

#[test]
fn builder_file_name_names_the_sidecar() {
    let tmp = temp_dir();
    let pack = tmp.path().join("pack");
    let lock = PackLock::builder(&pack).file_name(".grex-lock").open().expect("open");
    assert_eq!(lock.path(), pack.join(".grex-lock"));
    assert_eq!(entries(&pack), [PathBuf::from(".grex-lock")]);
    drop(lock.acquire().expect("acquire"));
}

#[test]
fn builder_rejects_names_that_are_not_a_bare_file_name() {
    let tmp = temp_dir();
    let pack = tmp.path().join("pack");
    for name in ["", ".", "..", "a/b", "../x", "/abs", "dir/", "nul\0byte"] {
        match PackLock::builder(&pack).file_name(name).open() {
            Err(PackLockError::InvalidFileName { name: reported, .. }) => {
                assert_eq!(reported, name, "the error must report the name as given");
            }
            other => panic!("file name {name:?}: expected InvalidFileName, got {other:?}"),
        }
        assert!(!pack.exists(), "a rejected name {name:?} must create nothing");
    }
    assert!(entries(tmp.path()).is_empty(), "nothing may be created beside the pack either");
}

#[test]
fn invalid_file_name_leaves_an_existing_dir_untouched() {
    let tmp = temp_dir();
    let pack = tmp.path().join("pack");
    fs::create_dir(&pack).expect("mkdir");
    let err = PackLock::builder(&pack).file_name("../escape").open().unwrap_err();
    assert!(err.to_string().contains("../escape"), "message {err} must name the bad name");
    assert!(entries(&pack).is_empty(), "nothing may be created in the pack");
    assert_eq!(entries(tmp.path()), [PathBuf::from("pack")], "nor beside it");
}

#[test]
fn dir_that_is_a_regular_file_is_an_io_error() {
    let tmp = temp_dir();
    let file = tmp.path().join("plain-file");
    fs::write(&file, "not a dir").expect("write");
    assert_err!(PackLock::open(&file), PackLockError::Io, under & file);
    assert_eq!(fs::read_to_string(&file).expect("read"), "not a dir", "the file must survive");
}

#[test]
fn dir_below_a_regular_file_is_an_io_error() {
    let tmp = temp_dir();
    let file = tmp.path().join("plain-file");
    fs::write(&file, "not a dir").expect("write");
    assert_err!(PackLock::open(file.join("sub/pack")), PackLockError::Io, under & file);
    assert_err!(PackLock::open_file(file.join("sub/x.lock")), PackLockError::Io, under & file);
}

/// Asserts `err` is [`PackLockError::NotARegularFile`] naming `expected`
/// as a directory.
#[track_caller]
fn assert_directory_refused(result: Result<PackLock, PackLockError>, expected: &Path) {
    let err = assert_err!(result, PackLockError::NotARegularFile, expected);
    let PackLockError::NotARegularFile { kind, .. } = err else { unreachable!() };
    assert_eq!(kind, "directory");
}

#[test]
fn lock_path_that_is_a_directory_is_refused() {
    let tmp = temp_dir();
    let dir = tmp.path().join("a-dir");
    fs::create_dir(&dir).expect("mkdir");
    assert_directory_refused(PackLock::open_file(&dir), &dir);
    assert!(dir.is_dir(), "the directory must be left alone");

    // The same through a sidecar name that happens to be a directory.
    let sidecar = tmp.path().join(PACK_LOCK_FILE_NAME);
    fs::create_dir(&sidecar).expect("mkdir");
    assert_directory_refused(PackLock::open(tmp.path()), &sidecar);
}

#[test]
fn nul_byte_in_the_dir_path_is_an_io_error() {
    let tmp = temp_dir();
    assert_err!(PackLock::open(tmp.path().join("bad\0name")), PackLockError::Io, under tmp.path());
    assert_err!(PackLock::open_file(tmp.path().join("bad\0name.lock")), PackLockError::Io, under tmp.path());
    assert!(entries(tmp.path()).is_empty());
}

/// Tests run as root, which may write almost anywhere; `/proc` refuses new
/// directories even to root.
#[cfg(target_os = "linux")]
#[test]
fn uncreatable_dir_is_an_io_error() {
    assert_err!(PackLock::open("/proc/packlock-test/x"), PackLockError::Io, under Path::new("/proc/packlock-test"));
    assert_err!(PackLock::open_file("/proc/packlock-test/x.lock"), PackLockError::Io, under Path::new("/proc/packlock-test"));
}

#[test]
fn path_without_a_file_name_is_not_a_file() {
    for path in ["/", "/tmp/.."] {
        assert_err!(PackLock::open_file(path), PackLockError::NotAFile, path);
    }
}

#[test]
fn relative_dir_gives_an_absolute_path() {
    // A uniquely named directory under the current directory, so the path
    // given to `open` is relative; removed when `tmp` drops.
    let tmp = tempfile::Builder::new()
        .prefix(".packlock-open-test-")
        .tempdir_in(".")
        .expect("temp dir in the current directory");
    let relative = Path::new(tmp.path().file_name().expect("name")).join("pack");
    assert!(relative.is_relative());

    let lock = PackLock::open(&relative).expect("open");
    assert!(lock.path().is_absolute(), "{} is not absolute", lock.path().display());
    assert_eq!(
        fs::canonicalize(lock.path()).expect("canonical lock path"),
        fs::canonicalize(relative.join(PACK_LOCK_FILE_NAME)).expect("canonical sidecar"),
    );
    let hold = lock.acquire().expect("acquire");
    assert!(hold.path().is_absolute());
    hold.validate().expect("the absolute path names the locked file");
}

fn assert_error_bounds<T: std::error::Error + Send + Sync + 'static>() {}
fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn public_types_cross_threads() {
    assert_error_bounds::<PackLockError>();
    assert_send_sync::<PackLock>();
    assert_send_sync::<PackLockHold>();

    let tmp = temp_dir();
    let lock = PackLock::open(tmp.path()).expect("open");
    let acquiring = lock.acquire_async();
    assert_send(&acquiring);
    drop(acquiring);

    // A hold can be released on another thread than the one that took it.
    let hold = lock.acquire().expect("acquire");
    std::thread::spawn(move || hold.release().expect("release")).join().expect("join");
    drop(lock.try_acquire().expect("released on the other thread"));
}

#[test]
fn io_errors_keep_their_source() {
    let tmp = temp_dir();
    let file = tmp.path().join("plain-file");
    fs::write(&file, "").expect("write");
    let err = PackLock::open_file(file.join("x.lock")).unwrap_err();
    let source = std::error::Error::source(&err).expect("Io must expose the OS error");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
}

/// A lock that writes nothing into its file (no label, no fencing) opens
/// an existing file read-only, as flock(1) does: a running program's own
/// file can be locked (opening it for writing is "Text file busy"), and a
/// labelled lock falls back to read-only there too, recording nothing.
#[test]
#[cfg(target_os = "linux")]
fn a_running_programs_file_can_be_locked() {
    let tmp = temp_dir();
    let nap = common::RunningProgram::start(tmp.path());
    let program = nap.path.clone();
    let before = fs::read(&program).expect("read program");
    let plain = PackLock::open_file(&program).map(|lock| lock.try_acquire().map(drop));
    let labelled = PackLock::builder(tmp.path())
        .file_name("nap")
        .label("labelled")
        .open()
        .map(|lock| lock.try_acquire().map(drop));
    drop(nap);
    assert!(matches!(plain, Ok(Ok(()))), "{plain:?}");
    assert!(matches!(labelled, Ok(Ok(()))), "{labelled:?}");
    assert_eq!(fs::read(&program).expect("read program"), before, "the program was written");
}
