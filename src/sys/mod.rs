//! Platform code, chosen once per platform here so that the rest of the
//! crate has no `cfg(target_os)` of its own, in the way fd-lock keeps its
//! `sys` module:
//!
//! * `unix` / `windows`: a file's identity ([`FileKey`]) and reads and
//!   writes at explicit offsets;
//! * `linux`: what `/proc` tells — every `flock` holder of a file
//!   (`/proc/locks`) and the type of the file system a file is on
//!   (`/proc/self/mountinfo`);
//! * `no_procfs`: elsewhere, the same questions answered with "unknown".

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::{
    FileKey, OPENS_WITHOUT_WAITING, never_wait_on_open, read_at, special_file_kind,
    unlock_error_means_unlocked, write_at,
};

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::{
    FileKey, OPENS_WITHOUT_WAITING, never_wait_on_open, read_at, special_file_kind,
    unlock_error_means_unlocked, write_at,
};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::{LISTS_FLOCK_HOLDERS, file_system_type, flock_holders};

#[cfg(not(target_os = "linux"))]
mod no_procfs;
#[cfg(not(target_os = "linux"))]
pub(crate) use no_procfs::{LISTS_FLOCK_HOLDERS, file_system_type, flock_holders};
