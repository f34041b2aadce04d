//! Windows: files are known by their canonical path and creation time, and
//! `seek_read`/`seek_write` read and write at explicit offsets.

use std::fs::{self, File};
use std::io;
use std::os::windows::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Which file a lock file is: std offers no stable file index on Windows,
/// so a file is known by its canonical path plus its creation time (which
/// tells a replacement apart).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    canonical: PathBuf,
    created: Option<SystemTime>,
}

impl FileKey {
    /// The identity of the open file `file` (opened from `path`).
    pub(crate) fn of_open(file: &File, path: &Path) -> io::Result<Self> {
        let created = file.metadata()?.created().ok();
        Ok(Self { canonical: fs::canonicalize(path)?, created })
    }

    /// The identity of the file `path` names now.
    pub(crate) fn at_path(path: &Path) -> io::Result<Self> {
        let created = fs::metadata(path)?.created().ok();
        Ok(Self { canonical: fs::canonicalize(path)?, created })
    }

    /// The file system the file is on, as far as it matters here: nothing
    /// tells file system types apart on Windows, so all are one.
    pub(crate) fn device(&self) -> u64 {
        0
    }
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
