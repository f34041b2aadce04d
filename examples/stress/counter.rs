//! The per-inode counters the critical sections increment.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Digits plus a newline, always written whole at offset 0.
const WIDTH: usize = 21;

pub struct Counter {
    file: File,
}

impl Counter {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        Ok(Self { file })
    }

    /// The value; 0 for a new counter.
    pub fn read(&self) -> io::Result<u64> {
        if self.file.metadata()?.len() == 0 {
            return Ok(0);
        }
        let mut text = [0; WIDTH];
        self.file.read_exact_at(&mut text, 0)?;
        parse(&text)
    }

    /// One fixed-width write in place: never truncated, so a process
    /// killed at any moment leaves the old or the new value.
    pub fn write(&self, value: u64) -> io::Result<()> {
        let text = format!("{value:020}\n");
        debug_assert_eq!(text.len(), WIDTH);
        self.file.write_all_at(text.as_bytes(), 0)
    }
}

/// The value of the counter at `path`, if it exists.
pub fn read_value(path: &Path) -> io::Result<Option<u64>> {
    match std::fs::read(path) {
        Ok(text) if text.is_empty() => Ok(Some(0)),
        Ok(text) => parse(&text).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse(text: &[u8]) -> io::Result<u64> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "counter is not a number");
    std::str::from_utf8(text).map_err(|_| bad())?.trim().parse().map_err(|_| bad())
}
