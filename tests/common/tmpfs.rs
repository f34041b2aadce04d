//! A fresh tmpfs mounted on a temporary directory, for tests that need a
//! file system of their own (read-only, or with inode numbers of its own).
//! Mounting needs privileges: [`Tmpfs::mount`](tmpfs::Tmpfs::mount)
//! returns `None`, after printing a notice, where it is not permitted, and
//! the test skips.

use std::path::Path;
use std::process::{Command, Stdio};

/// Unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(test: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        if mount(&["-t", "tmpfs", "-o", "size=1m", "packlock-test"], dir.path()) {
            Some(Self { dir })
        } else {
            println!("{test}: skipped, mounting a tmpfs is not permitted here");
            None
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the whole file system read-only.
    pub fn remount_read_only(&self) {
        assert!(mount(&["-o", "remount,ro"], self.path()), "remount read-only");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).stderr(Stdio::null()).status();
    }
}

fn mount(args: &[&str], dir: &Path) -> bool {
    let status = Command::new("mount").args(args).arg(dir).stderr(Stdio::null()).status();
    status.is_ok_and(|s| s.success())
}
