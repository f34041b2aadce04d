//! The lock file itself: creating it, telling which file it is, and the OS
//! lock calls on it.
//!
//! The OS lock is `flock(2)` on Unix and `LockFileEx` on Windows, both through
//! std's `File::{lock, try_lock, unlock}`. It belongs to the open file
//! description, so every [`Sidecar`] is its own lock owner, even within one
//! process.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::PackLockError;

/// How a lock is held: by one holder, or by any number of shared holders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Exclusive,
    Shared,
}

/// An open lock file and the identity it had when it was opened.
#[derive(Debug)]
pub(crate) struct Sidecar {
    file: File,
    path: PathBuf,
    key: FileKey,
    /// The process that opened the file (see [`Sidecar::unlock`]).
    opened_by: u32,
}

impl Sidecar {
    /// Opens the lock file at `path`, creating it and any missing parent
    /// directories. Never truncates, never locks.
    pub(crate) fn open(path: &Path) -> Result<Self, PackLockError> {
        let file = open_or_create(path)?;
        let key = FileKey::of_open(&file, path).map_err(|e| PackLockError::io(path, e))?;
        Ok(Self { file, path: path.to_path_buf(), key, opened_by: std::process::id() })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Who holds this file's lock now, as far as can be known.
    pub(crate) fn holders(&self) -> Vec<crate::Holder> {
        crate::holder::holders(&self.path, &self.key)
    }

    /// Records this process, labelled `label`, as the holder (best effort).
    pub(crate) fn record_holder(&self, label: &str) {
        crate::holder::write_record(&self.file, label);
    }

    pub(crate) fn key(&self) -> &FileKey {
        &self.key
    }

    /// Takes the OS lock in `mode` if no one holds it in a conflicting
    /// mode: `Ok(false)` when busy.
    pub(crate) fn try_lock(&self, mode: Mode) -> Result<bool, PackLockError> {
        #[cfg(test)]
        if let Some(e) = crate::faults::injected(&self.path, crate::faults::Call::Try) {
            return Err(self.error(e));
        }
        loop {
            let attempt = match mode {
                Mode::Exclusive => self.file.try_lock(),
                Mode::Shared => self.file.try_lock_shared(),
            };
            match attempt {
                Ok(()) => return Ok(true),
                Err(TryLockError::WouldBlock) => return Ok(false),
                Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(TryLockError::Error(e)) => return Err(self.error(e)),
            }
        }
    }

    /// Blocks the calling thread until the OS lock is granted in `mode`.
    pub(crate) fn lock(&self, mode: Mode) -> Result<(), PackLockError> {
        #[cfg(test)]
        if let Some(e) = crate::faults::injected(&self.path, crate::faults::Call::Blocking) {
            return Err(self.error(e));
        }
        let call = || match mode {
            Mode::Exclusive => self.file.lock(),
            Mode::Shared => self.file.lock_shared(),
        };
        retry_interrupted(call).map_err(|e| self.error(e))
    }

    /// Releases the OS lock — unless this is a child made by `fork(2)`: it
    /// shares the parent's open file and so its lock, and unlocking there
    /// (say, as a hold is dropped when the child exits) would release the
    /// parent's lock. The child's copy just closes with the child.
    pub(crate) fn unlock(&self) -> Result<(), PackLockError> {
        if std::process::id() != self.opened_by {
            return Ok(());
        }
        match retry_interrupted(|| self.file.unlock()) {
            Err(e) if is_wine_not_locked(&e) => Ok(()),
            result => result.map_err(|e| self.error(e)),
        }
    }

    /// Whether `path` still names this very file: one `stat`, compared with
    /// the identity taken at open. This also proves the file still exists
    /// (an inode number is not reused while we keep the file open), so it
    /// catches deletion, renaming away and renaming over alike — unlike a
    /// link count, which misses a file that keeps another name.
    pub(crate) fn is_at_path(&self) -> Result<bool, PackLockError> {
        match FileKey::at_path(&self.path) {
            Ok(key) => Ok(key == self.key),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    fn error(&self, source: io::Error) -> PackLockError {
        PackLockError::io(&self.path, source)
    }
}

/// Opens read-write, creating the file (and on `NotFound` its directory);
/// falls back to read-only for an existing file we may not write, since
/// locking needs no write access.
fn open_or_create(path: &Path) -> Result<File, PackLockError> {
    let read_write =
        || OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path);
    let opened = match read_write() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|e| PackLockError::io(dir, e))?;
            }
            read_write()
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(path).map_err(|_| e),
        other => other,
    };
    opened.map_err(|e| PackLockError::io(path, e))
}

fn retry_interrupted(mut call: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Whether an unlock failed only because Wine answers "not locked" unlike
/// Windows. std's `unlock` calls `UnlockFile` twice (a handle may hold both
/// an exclusive and a shared lock) and accepts `ERROR_NOT_LOCKED` from the
/// second call, which finds nothing left to unlock. Wine answers that call
/// with `ERROR_LOCK_VIOLATION` instead, after the first call has released the
/// lock. Either answer means this handle holds no lock on the file now, which
/// is what unlocking is for; Windows itself never gives it for an unlock.
#[cfg(windows)]
fn is_wine_not_locked(e: &io::Error) -> bool {
    const ERROR_LOCK_VIOLATION: i32 = 33;
    e.raw_os_error() == Some(ERROR_LOCK_VIOLATION)
}

#[cfg(not(windows))]
fn is_wine_not_locked(_: &io::Error) -> bool {
    false
}

/// Which file a lock file is, for the in-process registry and the identity
/// check: `(device, inode)` on Unix, so every alias (symlink, hard link, bind
/// mount) of one file has one key.
#[cfg(unix)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    dev: u64,
    ino: u64,
}

#[cfg(unix)]
impl FileKey {
    fn of_open(file: &File, _path: &Path) -> io::Result<Self> {
        Ok(Self::of(&file.metadata()?))
    }

    fn at_path(path: &Path) -> io::Result<Self> {
        Ok(Self::of(&fs::metadata(path)?))
    }

    fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self { dev: meta.dev(), ino: meta.ino() }
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn dev(&self) -> u64 {
        self.dev
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn ino(&self) -> u64 {
        self.ino
    }
}

/// On Windows, `(volume serial number, file index)`, as the OS reports them
/// for an open handle: every alias (hard link, symlink, another spelling of
/// the path) of one file has one key, and a replacement has another.
#[cfg(windows)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    volume: u64,
    index: u64,
}

#[cfg(windows)]
impl FileKey {
    fn of_open(file: &File, _path: &Path) -> io::Result<Self> {
        Self::of(file)
    }

    fn at_path(path: &Path) -> io::Result<Self> {
        Self::of(winapi_util::Handle::from_path_any(path)?.as_file())
    }

    fn of(file: &File) -> io::Result<Self> {
        let info = winapi_util::file::information(file)?;
        Ok(Self { volume: info.volume_serial_number(), index: info.file_index() })
    }
}

/// Elsewhere std offers no stable file index, so a file is known by its
/// canonical path plus its creation time (which tells a replacement apart).
#[cfg(not(any(unix, windows)))]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    canonical: PathBuf,
    created: Option<std::time::SystemTime>,
}

#[cfg(not(any(unix, windows)))]
impl FileKey {
    fn of_open(file: &File, path: &Path) -> io::Result<Self> {
        let created = file.metadata()?.created().ok();
        Ok(Self { canonical: fs::canonicalize(path)?, created })
    }

    fn at_path(path: &Path) -> io::Result<Self> {
        let created = fs::metadata(path)?.created().ok();
        Ok(Self { canonical: fs::canonicalize(path)?, created })
    }
}

/// A device number's major part, as glibc's `gnu_dev_major` computes it.
#[cfg(target_os = "linux")]
pub(crate) fn major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// A device number's minor part, as glibc's `gnu_dev_minor` computes it.
#[cfg(target_os = "linux")]
pub(crate) fn minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}
