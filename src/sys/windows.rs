//! Windows: files are known by volume and file index, and
//! `seek_read`/`seek_write` read and write at explicit offsets.

use std::fs::{self, File};
use std::io;
use std::os::windows::fs::FileExt;
use std::path::Path;

/// Which file a lock file is: `(volume serial number, file index)`, as the
/// OS reports them for an open handle, so every alias (hard link, symlink,
/// another spelling of the path) of one file has one key, and a
/// replacement has another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    volume: u64,
    index: u64,
}

impl FileKey {
    /// The identity of the open file `file` (its metadata does not carry
    /// the file index on Windows, so the handle is asked).
    pub(crate) fn of_open(file: &File, _metadata: &fs::Metadata) -> io::Result<Self> {
        Self::of(file)
    }

    /// The identity of the file `path` names now.
    pub(crate) fn at_path(path: &Path) -> io::Result<Self> {
        Self::of(winapi_util::Handle::from_path_any(path)?.as_file())
    }

    fn of(file: &File) -> io::Result<Self> {
        let info = winapi_util::file::information(file)?;
        Ok(Self { volume: info.volume_serial_number(), index: info.file_index() })
    }

    /// The volume the file is on.
    pub(crate) fn device(&self) -> u64 {
        self.volume
    }
}

/// Whether an unlock failed only because Wine answers "not locked" unlike
/// Windows. std's `unlock` calls `UnlockFile` twice (a handle may hold both
/// an exclusive and a shared lock) and accepts `ERROR_NOT_LOCKED` from the
/// second call, which finds nothing left to unlock. Wine answers that call
/// with `ERROR_LOCK_VIOLATION` instead, after the first call has released the
/// lock. Either answer means this handle holds no lock on the file now, which
/// is what unlocking is for; Windows itself never gives it for an unlock.
/// (`.ci/wine/deviations/unlock-twice.c` shows it.)
pub(crate) fn unlock_error_means_unlocked(error: &io::Error) -> bool {
    const ERROR_LOCK_VIOLATION: i32 = 33;
    error.raw_os_error() == Some(ERROR_LOCK_VIOLATION)
}

/// Reads into `buf` from `offset`.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    file.seek_read(buf, offset)
}

/// Writes `buf` at `offset`.
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    file.seek_write(buf, offset)
}

/// The kind of a special file: none that std can tell apart on Windows.
pub(crate) fn special_file_kind(_file_type: &fs::FileType) -> Option<&'static str> {
    None
}

/// Opening on Windows cannot be made non-blocking through std: the caller
/// checks what is at the path first.
pub(crate) const OPENS_WITHOUT_WAITING: bool = false;

pub(crate) fn never_wait_on_open(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    options
}
