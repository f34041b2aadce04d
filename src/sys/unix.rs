//! Unix: files are known by `(device, inode)`, and `pread`/`pwrite` read
//! and write at explicit offsets.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::Path;

/// Which file a lock file is, for the in-process registry and the identity
/// check: `(device, inode)`, so every alias (symlink, hard link, bind
/// mount) of one file has one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    dev: u64,
    ino: u64,
}

impl FileKey {
    /// The identity of the open file whose `fstat` gave `metadata`.
    pub(crate) fn of_open(_file: &File, metadata: &fs::Metadata) -> io::Result<Self> {
        Ok(Self::of(metadata))
    }

    /// The identity of the file `path` names now.
    pub(crate) fn at_path(path: &Path) -> io::Result<Self> {
        Ok(Self::of(&fs::metadata(path)?))
    }

    fn of(meta: &fs::Metadata) -> Self {
        Self { dev: meta.dev(), ino: meta.ino() }
    }

    /// The device of the file system the file is on.
    pub(crate) fn device(&self) -> u64 {
        self.dev
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn inode(&self) -> u64 {
        self.ino
    }
}

/// Reads into `buf` from `offset`, leaving the file position alone.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    file.read_at(buf, offset)
}

/// Writes `buf` at `offset`, leaving the file position alone.
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    file.write_at(buf, offset)
}

/// The kind of a special file (FIFO, socket, device), for error messages.
pub(crate) fn special_file_kind(file_type: &fs::FileType) -> Option<&'static str> {
    if file_type.is_fifo() {
        Some("FIFO")
    } else if file_type.is_socket() {
        Some("socket")
    } else if file_type.is_char_device() {
        Some("character device")
    } else if file_type.is_block_device() {
        Some("block device")
    } else {
        None
    }
}

/// Whether a failed unlock still left the file unlocked: never on Unix.
pub(crate) fn unlock_error_means_unlocked(_error: &io::Error) -> bool {
    false
}
