//! Opening the lock file as flock(1) does: read-only with `O_CREAT` (a
//! missing file is created, nothing is ever truncated or written), no
//! controlling terminal, and a directory read-only. A read-only open is
//! what lets a running program's own file be locked (writing it would be
//! "Text file busy") and keeps file watchers quiet (closing it is
//! `IN_CLOSE_NOWRITE`, not `IN_CLOSE_WRITE`).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// How to open the lock file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// flock(1)'s default: enough for any `flock(2)` lock.
    ReadOnly,
    /// An exclusive `fcntl` lock needs a file open for writing.
    WriteOnly,
    /// The retry where a read-only file cannot be locked (NFS emulates
    /// `flock(2)` with `fcntl` locks, which need write access).
    ReadWrite,
}

/// Opens `path` for locking with `access`, creating a missing file with
/// mode 0666 (less the umask). A directory is opened read-only.
pub fn open(path: &Path, access: Access) -> io::Result<File> {
    let error = match options(access).open(path) {
        Ok(file) => return Ok(file),
        Err(error) => error,
    };
    if error.kind() == io::ErrorKind::IsADirectory || may_only_read(&error) {
        return File::open(path).map_err(|_| error);
    }
    Err(error)
}

#[cfg(unix)]
fn options(access: Access) -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    match access {
        Access::ReadOnly => options.read(true),
        Access::WriteOnly => options.write(true),
        Access::ReadWrite => options.read(true).write(true),
    };
    // std creates files only when opened for writing; C's O_CREAT does not
    // need that, and neither does flock(1). (std adds O_CLOEXEC itself.)
    options.custom_flags(libc::O_CREAT | libc::O_NOCTTY).mode(0o666);
    options
}

/// Windows creates only what it may write: read-write, or read-only for a
/// file that exists and may not be written.
#[cfg(windows)]
fn options(_access: Access) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    options
}

/// Whether to retry a failed open read-only: on Windows, for a file that
/// may not be written (Unix opens read-only in the first place).
fn may_only_read(error: &io::Error) -> bool {
    cfg!(windows)
        && matches!(
            error.kind(),
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
        )
}
