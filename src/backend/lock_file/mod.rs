//! The lock file backend: creating the file, telling which file it is, and
//! the OS lock calls on it.
//!
//! The OS lock is `flock(2)` on Unix and `LockFileEx` on Windows, both through
//! std's `File::{lock, try_lock, unlock}`. It belongs to the open file
//! description, so every [`LockFile`] is its own lock owner, even within one
//! process.

#[cfg(test)]
pub(crate) mod faults;
mod fence;
pub(crate) mod network_fs;
pub(crate) mod record;

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Grant, Interrupt, LockBackend, LockKey, Mode};
use crate::sys::{self, FileKey};
use crate::{Holder, NetworkFsPolicy, PackLockError};
use fence::FenceFile;

/// An open lock file (a sidecar in a directory, or an explicit path) and
/// the identity it had when it was opened.
#[derive(Debug)]
pub(crate) struct LockFile {
    file: File,
    path: PathBuf,
    key: LockKey,
    /// What to do on a network file system, applied again on reopening.
    network_fs: NetworkFsPolicy,
    /// The process that opened the file (see [`LockFile::unlock`]).
    opened_by: u32,
    /// The process whose unlock releases the OS lock: the opener, or a
    /// child made by `fork(2)` that took a hold over.
    owner: AtomicU32,
    /// Where grants get their fences from, with fencing (see [`fence`]).
    fences: Option<FenceFile>,
    /// Whether holders record themselves in the file (a labelled lock).
    records: bool,
}

impl LockFile {
    /// Opens the lock file at `path`, creating it and any missing parent
    /// directories, and applies `network_fs` to its file system. Never
    /// truncates, never locks, and refuses anything but a regular file.
    /// With `fencing`, also opens (creating it) its fence file (see
    /// [`fence`]). Exclusive holders record themselves in it when
    /// `records`, where it can be written.
    ///
    /// A lock that writes nothing opens an existing file read-only, as
    /// `flock(1)` does: that locks just as well, also a running program's
    /// own file (which cannot be opened for writing), and file watchers see
    /// no write when it is closed.
    pub(crate) fn open(
        path: &Path,
        network_fs: NetworkFsPolicy,
        fencing: bool,
        records: bool,
    ) -> Result<Self, PackLockError> {
        if !sys::OPENS_WITHOUT_WAITING {
            refuse_special_file(path, fs::metadata(path))?;
        }
        let (mut file, writable) = match open_or_create(path, records) {
            Ok(opened) => opened,
            Err(e) => {
                // A socket cannot be opened at all: name what it is.
                refuse_special_file(path, fs::metadata(path))?;
                return Err(e);
            }
        };
        // Checked again on what was opened: the path may have changed since.
        // The same `fstat` gives the file's identity (on Unix).
        let metadata = file.metadata().map_err(|e| PackLockError::io(path, e))?;
        refuse_special_file(path, Ok(metadata.clone()))?;
        let key = FileKey::of_open(&file, &metadata).map_err(|e| PackLockError::io(path, e))?;
        network_fs::check(path, &key, network_fs)?;
        if !writable && network_fs::is_on_unreliable_fs(&key) {
            // NFS emulates `flock` with `fcntl` locks, and an exclusive one
            // needs a file open for writing: use one, if it is the same file.
            if let Some(read_write) = open_read_write(path).ok().filter(|f| is_file(f, &key)) {
                file = read_write;
            }
        }
        let fences = if fencing { Some(FenceFile::open(path)?) } else { None };
        let (path, key) = (path.to_path_buf(), LockKey::File(key));
        let opened_by = std::process::id();
        let owner = AtomicU32::new(opened_by);
        Ok(Self { file, path, key, network_fs, opened_by, owner, fences, records })
    }

    /// The process that opened the file.
    pub(crate) fn opened_by(&self) -> u32 {
        self.opened_by
    }

    fn file_key(&self) -> &FileKey {
        match &self.key {
            LockKey::File(key) => key,
            #[cfg(feature = "postgres")]
            LockKey::Server { .. } => unreachable!("a lock file's key is a file key"),
        }
    }

    fn error(&self, source: io::Error) -> PackLockError {
        PackLockError::io(&self.path, source)
    }

    /// What goes with the OS lock just taken: without fencing, nothing;
    /// with it, a new fence, exclusive and shared grants alike (see
    /// [`fence`]). When the fence cannot be had, the OS lock is given back
    /// and the acquire fails.
    fn grant(&self) -> Result<Grant, PackLockError> {
        let Some(fences) = &self.fences else { return Ok(Grant::default()) };
        match fences.next(record::legacy_fence(&self.file)) {
            Ok(fence) => Ok(Grant { fence: Some(fence), lost: None }),
            Err(e) => {
                if let Err(unlock) = self.unlock() {
                    log::warn!("cannot release after failing to fence: {unlock}");
                }
                Err(fence_error(fences.path(), e))
            }
        }
    }
}

fn fence_error(path: &Path, error: record::FenceError) -> PackLockError {
    let reason = match error {
        record::FenceError::Io(e) => return PackLockError::io(path, e),
        record::FenceError::Foreign => {
            "it holds data packlock did not write, which is never overwritten"
        }
        record::FenceError::Exhausted => "its fence counter is at its maximum",
    };
    PackLockError::CannotFence { path: path.to_path_buf(), reason }
}

impl LockBackend for LockFile {
    fn key(&self) -> &LockKey {
        &self.key
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// From the OS where it tells, with the record of a labelled holder.
    fn holders(&self) -> Vec<Holder> {
        record::holders(&self.file, self.file_key())
    }

    fn record_holder(&self, label: &str) {
        record::write_record(&self.file, label);
    }

    fn file(&self) -> Option<&File> {
        Some(&self.file)
    }

    fn reopen(&self) -> Result<Arc<dyn LockBackend>, PackLockError> {
        let fencing = self.fences.is_some();
        Ok(Arc::new(Self::open(&self.path, self.network_fs, fencing, self.records)?))
    }

    /// Takes the OS lock in `mode` if no one holds it in a conflicting
    /// mode: `Ok(None)` when busy. A file lock has a fence only with
    /// fencing, and cannot be lost while held.
    fn try_lock(&self, mode: Mode) -> Result<Option<Grant>, PackLockError> {
        #[cfg(test)]
        if let Some(e) = faults::injected(&self.path, faults::Call::Try) {
            return Err(self.error(e));
        }
        loop {
            let attempt = match mode {
                Mode::Exclusive => self.file.try_lock(),
                Mode::Shared => self.file.try_lock_shared(),
            };
            match attempt {
                Ok(()) => return self.grant().map(Some),
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(TryLockError::Error(e)) => return Err(self.error(e)),
            }
        }
    }

    /// Blocks the calling thread until the OS lock is granted in `mode`.
    /// `flock` cannot be interrupted portably, so `_interrupt` is ignored:
    /// an abandoned wait lets go as soon as it is granted.
    fn lock(&self, mode: Mode, _interrupt: &Interrupt) -> Result<Grant, PackLockError> {
        #[cfg(test)]
        if let Some(e) = faults::injected(&self.path, faults::Call::Blocking) {
            return Err(self.error(e));
        }
        let call = || match mode {
            Mode::Exclusive => self.file.lock(),
            Mode::Shared => self.file.lock_shared(),
        };
        retry_interrupted(call).map_err(|e| self.error(e))?;
        self.grant()
    }

    /// Releases the OS lock — unless this is a child made by `fork(2)` that
    /// did not take the hold over: it shares the parent's open file and so
    /// its lock, and unlocking there (say, as a hold is dropped when the
    /// child exits) would release the parent's lock. The child's copy just
    /// closes with the child.
    fn unlock(&self) -> Result<(), PackLockError> {
        if !self.is_owned_here() {
            return Ok(());
        }
        match retry_interrupted(|| self.file.unlock()) {
            Err(e) if sys::unlock_error_means_unlocked(&e) => Ok(()),
            result => result.map_err(|e| self.error(e)),
        }
    }

    fn is_owned_here(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == std::process::id()
    }

    fn take_over(&self) {
        self.owner.store(std::process::id(), Ordering::Relaxed);
    }

    /// Whether `path` still names this very file: one `stat`, compared with
    /// the identity taken at open. This also proves the file still exists
    /// (an inode number is not reused while we keep the file open), so it
    /// catches deletion, renaming away and renaming over alike — unlike a
    /// link count, which misses a file that keeps another name.
    fn is_current(&self, _grant: &Grant) -> Result<bool, PackLockError> {
        match FileKey::at_path(&self.path) {
            Ok(key) => Ok(key == *self.file_key()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }
}

/// Fails with [`PackLockError::NotARegularFile`] when `metadata` (of the
/// path, or of the opened file) is not a regular file's. A missing file or
/// one we cannot stat is left for the open to create or report.
///
/// Where opening can be made non-blocking (see
/// [`sys::never_wait_on_open`]), the open itself is safe and this checks
/// what was opened. Elsewhere the path is checked before it is opened too,
/// which keeps a FIFO from being opened: opening one for writing waits for
/// a reader, and reading one waits for a writer, which would hang `open`
/// or a `Busy` report. Only a FIFO swapped in between the check and the
/// open escapes it there; whoever does that replaces the lock file under
/// its users, which breaks exclusion anyway.
fn refuse_special_file(
    path: &Path,
    metadata: io::Result<fs::Metadata>,
) -> Result<(), PackLockError> {
    match metadata {
        Ok(meta) if !meta.is_file() => Err(PackLockError::NotARegularFile {
            path: path.to_path_buf(),
            kind: kind_of(&meta.file_type()),
        }),
        _ => Ok(()),
    }
}

/// What a file that is not a regular file is, for error messages.
fn kind_of(file_type: &fs::FileType) -> &'static str {
    match sys::special_file_kind(file_type) {
        Some(kind) => kind,
        None if file_type.is_dir() => "directory",
        None => "special file",
    }
}

/// Opens an existing file read-only unless `write`; else, or when it is
/// missing, read-write, creating the file (and on `NotFound` its
/// directory); falls back to read-only for an existing file we may not
/// write (see [`may_open_read_only`]), since locking needs no write access.
/// Says whether the file was opened for writing.
fn open_or_create(path: &Path, write: bool) -> Result<(File, bool), PackLockError> {
    if !write {
        match open_read_only(path) {
            Ok(file) => return Ok((file, false)),
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(PackLockError::io(path, e));
            }
            Err(_) => {} // created below
        }
    }
    let read_write = || open_read_write(path);
    let opened = match read_write() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|e| PackLockError::io(dir, e))?;
            }
            read_write().map(|file| (file, true))
        }
        // A directory opens read-only, to be refused by what it is.
        Err(e) if may_open_read_only(&e) || e.kind() == io::ErrorKind::IsADirectory => {
            open_read_only(path).map(|file| (file, false)).map_err(|_| e)
        }
        other => other.map(|file| (file, true)),
    };
    opened.map_err(|e| PackLockError::io(path, e))
}

/// Whether `file` is the file known as `key`.
fn is_file(file: &File, key: &FileKey) -> bool {
    let identity = file.metadata().and_then(|meta| FileKey::of_open(file, &meta));
    identity.is_ok_and(|identity| identity == *key)
}

fn open_read_write(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    sys::never_wait_on_open(&mut options).open(path)
}

fn open_read_only(path: &Path) -> io::Result<File> {
    sys::never_wait_on_open(OpenOptions::new().read(true)).open(path)
}

/// Whether a read-write open that failed with `error` may be retried
/// read-only: when we may not write the file (`EACCES`), nothing on its
/// file system (`EROFS`), or the file is a program running now
/// (`ETXTBSY`). Such a lock file locks as well (as with `flock(1)`); it
/// just never gets a holder record.
fn may_open_read_only(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::PermissionDenied
            | io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::ExecutableFileBusy
    )
}

pub(crate) fn retry_interrupted(mut call: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_open_read_only;
    use std::io;

    #[test]
    fn read_only_files_and_file_systems_are_opened_read_only() {
        for kind in [
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::ReadOnlyFilesystem,
            io::ErrorKind::ExecutableFileBusy,
        ] {
            assert!(may_open_read_only(&io::Error::from(kind)), "{kind:?}");
        }
        #[cfg(unix)] // EACCES, EROFS and ETXTBSY as a Unix OS reports them
        for errno in [13, 30, 26] {
            assert!(may_open_read_only(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for kind in [io::ErrorKind::NotFound, io::ErrorKind::IsADirectory, io::ErrorKind::Other] {
            assert!(!may_open_read_only(&io::Error::from(kind)), "{kind:?}");
        }
    }
}
