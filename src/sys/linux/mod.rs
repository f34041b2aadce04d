//! Linux: `/proc` names every `flock` holder of a file and the type of the
//! file system it is on.

mod mount_info;
mod proc_locks;

pub(crate) use mount_info::file_system_type;
pub(crate) use proc_locks::flock_holders;

/// Whether [`flock_holders`] lists the holders: `/proc/locks` does.
pub(crate) const LISTS_FLOCK_HOLDERS: bool = true;

/// A device number's major part, as glibc's `gnu_dev_major` computes it.
fn major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// A device number's minor part, as glibc's `gnu_dev_minor` computes it.
fn minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}
