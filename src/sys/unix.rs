//! Unix: files are known by `(device, inode)`, and `pread`/`pwrite` read
//! and write at explicit offsets.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
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

/// `O_NONBLOCK | O_NOCTTY` where this target's values are known: opening a
/// FIFO with them never waits for a peer, and opening a terminal never
/// makes it ours. (std names neither; the values are each platform's ABI,
/// checked against `libc` by the tests. A BSD never gives a tty on open.)
const OPEN_WITHOUT_WAITING: Option<i32> = if cfg!(all(
    any(target_os = "linux", target_os = "android"),
    any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "arm",
        target_arch = "aarch64",
        target_arch = "riscv32",
        target_arch = "riscv64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "s390x",
        target_arch = "loongarch64"
    )
)) {
    Some(0o4000 | 0o400)
} else if cfg!(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)) {
    Some(0x4)
} else {
    None
};

/// Whether [`never_wait_on_open`] works on this target.
pub(crate) const OPENS_WITHOUT_WAITING: bool = OPEN_WITHOUT_WAITING.is_some();

/// Makes opening with `options` unable to block, where this target allows
/// ([`OPENS_WITHOUT_WAITING`]): then whatever is at a path can be opened to
/// find out what it is (a FIFO would otherwise wait for its other end).
/// Regular files ignore the flag once open, and `flock` has its own.
pub(crate) fn never_wait_on_open(options: &mut OpenOptions) -> &mut OpenOptions {
    if let Some(flags) = OPEN_WITHOUT_WAITING {
        options.custom_flags(flags);
    }
    options
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    fn open_flags_are_the_platforms() {
        let expected = if cfg!(target_os = "linux") {
            libc::O_NONBLOCK | libc::O_NOCTTY
        } else {
            libc::O_NONBLOCK
        };
        assert_eq!(super::OPEN_WITHOUT_WAITING, Some(expected));
    }
}
