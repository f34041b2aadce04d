//! Server mode's "storage": per lock name, a counter that accepts an
//! exclusive holder's read and write only with a fence at least as large as
//! the largest it has seen — what a storage service does to refuse a
//! holder that lost its lock without knowing it.
//!
//! The check and the access it guards happen under a `flock` of a guard
//! file of their own (std's `File::lock`, on an open file description per
//! `Storage`, so threads of one process exclude each other too): the
//! storage is atomic across processes, whatever the lock server says.
//! Each name has three files in `storage/`: `n<i>.guard`, `n<i>.fence`
//! (the largest fence seen) and `n<i>.counter`.

use std::fs::{File, OpenOptions};
use std::io;

use crate::counter::Counter;
use crate::layout::Layout;

pub struct Storage {
    guard: File,
    fence: Counter,
    counter: Counter,
    /// `--sabotage`: accept every fence.
    unchecked: bool,
}

impl Storage {
    pub fn open(layout: &Layout, name: usize, unchecked: bool) -> io::Result<Self> {
        let guard = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(layout.storage_path(name, "guard"))?;
        let fence = Counter::open(&layout.storage_path(name, "fence"))?;
        let counter = Counter::open(&layout.storage_path(name, "counter"))?;
        Ok(Self { guard, fence, counter, unchecked })
    }

    /// An exclusive holder's read: the value, or `None` (a stale fence,
    /// rejected). An accepted fence becomes the largest seen.
    pub fn fenced_read(&self, fence: u64) -> io::Result<Option<u64>> {
        self.guarded(|| {
            if !self.admit(fence)? {
                return Ok(None);
            }
            self.counter.read().map(Some)
        })
    }

    /// An exclusive holder's write: false if its fence is stale (nothing
    /// written).
    pub fn fenced_write(&self, fence: u64, value: u64) -> io::Result<bool> {
        self.guarded(|| {
            if !self.admit(fence)? {
                return Ok(false);
            }
            self.counter.write(value).map(|()| true)
        })
    }

    /// A shared holder's read (no fence needed: it never writes).
    pub fn read(&self) -> io::Result<u64> {
        self.guarded(|| self.counter.read())
    }

    /// Whether `fence` may access the storage; remembers it if larger.
    fn admit(&self, fence: u64) -> io::Result<bool> {
        let largest = self.fence.read()?;
        if fence < largest && !self.unchecked {
            return Ok(false);
        }
        if fence > largest {
            self.fence.write(fence)?;
        }
        Ok(true)
    }

    fn guarded<T>(&self, access: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        self.guard.lock()?;
        let done = access();
        let unlocked = self.guard.unlock();
        let value = done?;
        unlocked.map(|()| value)
    }
}
