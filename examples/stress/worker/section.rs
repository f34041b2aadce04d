//! One critical section: what is stamped, identified and counted inside
//! it, and the log line it leaves.
//!
//! Inside each critical section the worker:
//!
//! 1. stamps the start (`SystemTime`, nanoseconds since the Unix epoch:
//!    `CLOCK_REALTIME`, one clock for every process of the machine);
//! 2. identifies the locked file: `stat` of the path, then
//!    `hold.validate()`; if the path still names the locked file, the inode
//!    from the `stat` is the locked one (the coordinator only ever puts new
//!    files at a lock path, never an old one back);
//! 3. opens the counter of that inode (`counters/<inode>`) and reads it;
//! 4. holds for the chosen time;
//! 5. exclusive: writes the counter + 1 (a fixed-width in-place write, so a
//!    `kill -9` cannot leave half a number); shared: reads it again;
//! 6. stamps the end, then calls `hold.validate()` again: if the lock file
//!    was deleted or replaced meanwhile, the section is **invalidated**
//!    (packlock documents that a holder whose file is replaced no longer
//!    excludes newcomers);
//! 7. releases, and appends one line to its own log
//!    (`logs/w<slot>-g<generation>.log`):
//!    `H file mode inode start end valid extra`, where `extra` is the
//!    counter value seen by an exclusive section, or whether a shared
//!    section saw the counter change.

use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

use packlock::{PackLockError, PackLockHold};

use super::{Ctx, Op};
use crate::counter::Counter;
use crate::mode::Mode;

/// A critical section of either mode.
pub enum Entered {
    File(Section),
    #[cfg(feature = "postgres")]
    Server(super::fenced::FencedSection),
}

impl Ctx {
    /// Enters the section of a hold just acquired.
    pub fn enter(&self, op: &Op, hold: &PackLockHold) -> Entered {
        #[cfg(feature = "postgres")]
        if self.server_mode() {
            return Entered::Server(super::fenced::FencedSection::enter(self, op, hold));
        }
        Entered::File(Section::enter(self, op, hold))
    }
}

impl Entered {
    /// Leaves the section (before the release); the line to log.
    pub fn leave(self, ctx: &Ctx, hold: &PackLockHold) -> String {
        match self {
            Entered::File(section) => section.leave(ctx, hold).line(),
            #[cfg(feature = "postgres")]
            Entered::Server(section) => section.leave(ctx, hold),
        }
    }
}

pub struct Section {
    file: usize,
    mode: Mode,
    start: u64,
    /// The locked file's inode, when it could be identified.
    ino: Option<u64>,
    /// That inode's counter and the value read on entry.
    counter: Option<(Counter, u64)>,
}

/// What a section saw of its counter.
enum Seen {
    /// Nothing: the file was not identified, or the counter failed.
    Nothing,
    /// Exclusive: the value it read (and incremented).
    Old(u64),
    /// Shared: whether the value changed while it held the lock.
    Read { changed: bool },
}

/// One hold interval, as logged.
pub struct Record {
    file: usize,
    mode: Mode,
    ino: Option<u64>,
    start: u64,
    end: u64,
    valid: bool,
    seen: Seen,
}

impl Section {
    /// Called right after the acquire returned.
    pub fn enter(ctx: &Ctx, op: &Op, hold: &PackLockHold) -> Self {
        let start = now_ns();
        let ino = identify(hold);
        let counter = ino.and_then(|ino| open_counter(ctx, ino));
        Self { file: op.file, mode: op.section_mode, start, ino, counter }
    }

    /// Called right before the release.
    pub fn leave(self, ctx: &Ctx, hold: &PackLockHold) -> Record {
        let seen = match &self.counter {
            Some((counter, value)) => finish_counter(ctx, self.mode, counter, *value),
            None => Seen::Nothing,
        };
        let end = now_ns();
        let valid = match hold.validate() {
            Ok(()) => true,
            Err(PackLockError::Replaced { .. }) => false,
            Err(e) => {
                ctx.error("validate", &e);
                false
            }
        };
        let Self { file, mode, start, ino, .. } = self;
        Record { file, mode, ino, start, end, valid, seen }
    }
}

/// The inode of the locked file: `stat` of the path, confirmed by
/// `validate` (the path never names an old file again, so if it names
/// the locked file now it did at the `stat` too).
fn identify(hold: &PackLockHold) -> Option<u64> {
    let ino = std::fs::metadata(hold.path()).ok()?.ino();
    hold.validate().ok()?;
    Some(ino)
}

fn open_counter(ctx: &Ctx, ino: u64) -> Option<(Counter, u64)> {
    let opened = Counter::open(&ctx.layout().counter_path(ino))
        .and_then(|counter| counter.read().map(|value| (counter, value)));
    opened.map_err(|e| ctx.error("counter", &e)).ok()
}

/// Exclusive: write the increment; shared: read again.
fn finish_counter(ctx: &Ctx, mode: Mode, counter: &Counter, value: u64) -> Seen {
    let done = match mode {
        Mode::Exclusive => counter.write(value + 1).map(|()| Seen::Old(value)),
        Mode::Shared => counter.read().map(|now| Seen::Read { changed: now != value }),
    };
    done.unwrap_or_else(|e| {
        ctx.error("counter", &e);
        Seen::Nothing
    })
}

impl Record {
    /// `H file mode inode start end valid seen` (inode 0: unknown).
    pub fn line(&self) -> String {
        let seen = match self.seen {
            Seen::Nothing => "-".to_string(),
            Seen::Old(value) => value.to_string(),
            Seen::Read { changed: true } => "d".to_string(),
            Seen::Read { changed: false } => "c".to_string(),
        };
        format!(
            "H {} {} {} {} {} {} {seen}",
            self.file,
            self.mode.code(),
            self.ino.unwrap_or(0),
            self.start,
            self.end,
            u8::from(self.valid),
        )
    }
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`): the clock every
/// process shares, so that intervals of different workers compare.
pub(super) fn now_ns() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    u64::try_from(since.as_nanos()).expect("nanoseconds since 1970 fit a u64 until 2554")
}
