//! Server mode: the worker's lock server, its locks, and a critical
//! section that reaches its storage only through the fence check.
//!
//! Inside each section the worker:
//!
//! 1. stamps the start (`CLOCK_REALTIME` nanoseconds) and takes the hold's
//!    fence;
//! 2. exclusive: reads the name's counter through the storage with its
//!    fence (`storage.rs`), which rejects a fence below the largest it has
//!    seen; shared: reads the counter;
//! 3. holds for the chosen time;
//! 4. exclusive: writes the value read + 1 with its fence (rejected if a
//!    later holder reached the storage meanwhile); shared: reads again;
//! 5. stamps the end, then decides whether the hold was **lost**: its
//!    `lost()` signal fired, or `validate()` (one round trip to the
//!    server) fails. A hold not lost at the end was held by a live session
//!    from the grant to the end stamp, so its section excluded everyone;
//!    a lost one may overlap the next holder's — that is what fences are
//!    for;
//! 6. releases, and logs `F name mode fence start end kept seen`, where
//!    `kept` is 1 unless the hold was lost and `seen` is, for an
//!    exclusive section, the value it read when its write was accepted,
//!    `r` when the storage rejected its fence, and for a shared one `c` or
//!    `d` (the counter did not or did change).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use packlock::postgres::LockServer;
use packlock::{PackLock, PackLockError, PackLockHold};

use super::section::now_ns;
use super::{Ctx, Op};
use crate::layout::Layout;
use crate::mode::Mode;
use crate::storage::Storage;

/// How long a worker keeps trying to connect (the proxy may cut it).
const CONNECT_FOR: Duration = Duration::from_secs(10);

/// Connects through the coordinator's proxy, retrying connections it cut.
pub fn connect(conn: &str) -> Result<LockServer, String> {
    let deadline = Instant::now() + CONNECT_FOR;
    loop {
        match LockServer::connect(conn) {
            Ok(server) => return Ok(server),
            Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The long-lived exclusive and shared locks of one name (the exclusive
/// one of every other name labelled).
pub fn open_locks(
    server: &LockServer,
    layout: &Layout,
    name: usize,
    slot: usize,
) -> Result<[Arc<PackLock>; 2], PackLockError> {
    let name_text = layout.lock_name(name);
    let exclusive = match name % 2 {
        0 => server.lock(&name_text).label(format!("stress worker {slot}")).open()?,
        _ => server.lock(&name_text).open()?,
    };
    let shared = server.lock(&name_text).shared(true).open()?;
    Ok([Arc::new(exclusive), Arc::new(shared)])
}

pub struct FencedSection {
    name: usize,
    mode: Mode,
    fence: u64,
    start: u64,
    /// The storage and what was read on entry (`None`: rejected).
    storage: Option<(Storage, Option<u64>)>,
}

impl FencedSection {
    /// Called right after the acquire returned.
    pub fn enter(ctx: &Ctx, op: &Op, hold: &PackLockHold) -> Self {
        let start = now_ns();
        let fence = hold.fence().unwrap_or_else(|| {
            ctx.error("fence", &"a server hold without a fence");
            0
        });
        let storage = Storage::open(ctx.layout(), op.file, ctx.sabotage())
            .and_then(|storage| {
                let read = match op.section_mode {
                    Mode::Exclusive => storage.fenced_read(fence)?,
                    Mode::Shared => Some(storage.read()?),
                };
                Ok((storage, read))
            })
            .map_err(|e| ctx.error("storage", &e))
            .ok();
        Self { name: op.file, mode: op.section_mode, fence, start, storage }
    }

    /// Called right before the release; the line to log.
    pub fn leave(self, ctx: &Ctx, hold: &PackLockHold) -> String {
        let seen = match &self.storage {
            None => Ok("-".to_string()),
            Some((_, None)) => Ok("r".to_string()),
            Some((storage, Some(value))) => match self.mode {
                Mode::Exclusive => storage
                    .fenced_write(self.fence, value + 1)
                    .map(|accepted| if accepted { value.to_string() } else { "r".to_string() }),
                Mode::Shared => {
                    storage.read().map(|now| if now == *value { "c" } else { "d" }.to_string())
                }
            },
        };
        let seen = seen.unwrap_or_else(|e| {
            ctx.error("storage", &e);
            "-".to_string()
        });
        let end = now_ns();
        let kept = !is_lost(ctx, hold);
        format!(
            "F {} {} {} {} {end} {} {seen}",
            self.name,
            self.mode.code(),
            self.fence,
            self.start,
            u8::from(kept),
        )
    }
}

/// Whether the hold was lost: its signal fired, or the server no longer
/// has it for its session (or cannot be asked: not known to be kept).
fn is_lost(ctx: &Ctx, hold: &PackLockHold) -> bool {
    let signalled = future::block_on(future::poll_once(hold.lost())).is_some();
    let validated = hold.validate();
    match &validated {
        Ok(()) | Err(PackLockError::Lost { .. }) => {}
        Err(e) => ctx.failed("validate", e),
    }
    signalled || validated.is_err()
}
