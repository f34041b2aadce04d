//! `packlock --status DIR`: whether the lock is free or held, and by whom.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::Duration;

use packlock::{Holder, PackLockError};

use crate::args::Args;
use crate::fail;

/// The lock is free.
const STATUS_FREE: i32 = 0;
/// The lock is held, or its state cannot be told.
const STATUS_HELD: i32 = 1;

/// Prints whether the lock is free (0) or held (1), and by whom.
pub fn status(args: &Args) -> i32 {
    let path = args.lock_file();
    if args.names_a_lock_file() && is_plain_name(args.file_name()) && is_missing(&path) {
        println!("free: {} (no lock file)", path.display());
        return STATUS_FREE;
    }
    // No label: checking must not overwrite the holder's record.
    let lock = match args.open(None) {
        Ok(lock) => lock,
        Err(e) => return fail(&e),
    };
    if !args.names_a_lock_file() {
        return server_status(&lock);
    }
    match lock.try_acquire() {
        Ok(hold) => {
            drop(hold);
            println!("free: {}", lock.path().display());
            STATUS_FREE
        }
        Err(PackLockError::Busy { .. }) => {
            println!("held: {}", lock.path().display());
            print_holders(&lock.holders());
            STATUS_HELD
        }
        Err(e) => fail(&e),
    }
}

/// A server lock is looked at, never taken: taking it, even for a moment,
/// would raise its fence, write its name's row and make it busy for others.
/// The server lists every holder, so none means free.
fn server_status(lock: &packlock::PackLock) -> i32 {
    let holders = lock.holders();
    if holders.is_empty() {
        println!("free: {}", lock.path().display());
        return STATUS_FREE;
    }
    println!("held: {}", lock.path().display());
    print_holders(&holders);
    STATUS_HELD
}

/// A name the library will accept as is, so that a missing file under it
/// means a free lock (others are left to the library to reject).
fn is_plain_name(name: &OsStr) -> bool {
    Path::new(name).file_name() == Some(name)
}

fn is_missing(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

fn print_holders(holders: &[Holder]) {
    if holders.is_empty() {
        println!("  holder unknown");
    }
    for holder in holders {
        println!("  {}", describe(holder));
    }
}

/// `pid 4242, exclusive, label "nightly", for 7s`, with what is known.
fn describe(holder: &Holder) -> String {
    let mut line = format!("pid {}", holder.pid);
    match holder.shared {
        Some(true) => line.push_str(", shared"),
        Some(false) => line.push_str(", exclusive"),
        None => {}
    }
    if let Some(label) = &holder.label {
        let _ = write!(line, ", label {label:?}");
    }
    if let Some(age) = holder.since.and_then(|since| since.elapsed().ok()) {
        let _ = write!(line, ", for {}", age_text(age));
    }
    line
}

/// `42s`, `3m07s`, `5h02m`.
fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}
