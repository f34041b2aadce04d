//! Platforms without Linux's `/proc`: no list of `flock` holders and no
//! file system types.

use crate::Holder;
use crate::sys::FileKey;

/// Whether [`flock_holders`] lists the holders: here it cannot.
pub(crate) const LISTS_FLOCK_HOLDERS: bool = false;

/// Unknown here: nothing lists the holders of a file lock.
pub(crate) fn flock_holders(_key: &FileKey) -> Vec<Holder> {
    Vec::new()
}

/// Unknown here.
pub(crate) fn file_system_type(_device: u64) -> Option<String> {
    None
}
