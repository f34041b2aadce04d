//! Lock a directory (a "pack") or any file path so that one holder at a time
//! works on it — across processes, and across threads and async tasks of one
//! process — from sync code and from any async runtime.
//!
//! These docs are a tour of the API. The README, on the crate's page, is
//! the long form: why each guarantee holds and where it ends, platforms,
//! measured performance, and the `packlock` command.
//!
//! ```
//! use packlock::PackLock;
//!
//! # fn main() -> Result<(), packlock::PackLockError> {
//! # let dir = tempfile::tempdir().expect("temp dir");
//! # let pack = dir.path().join("foo");
//! let lock = PackLock::open(&pack)?;   // creates the directory and <pack>/.pack-lock
//! let hold = lock.acquire()?;          // or try_acquire(), or acquire_async().await
//! // ... exclusive work on the pack, safe against other processes, threads and tasks ...
//! drop(hold);
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! * The lock is a **sidecar file**, `<dir>/.pack-lock` by default
//!   ([`PACK_LOCK_FILE_NAME`]), another name ([`PackLockBuilder::file_name`])
//!   or an explicit path ([`PackLock::open_file`]). It is created on open and
//!   never deleted: deleting a lock file breaks exclusion, since a waiter may
//!   then lock the dead file while a newcomer locks a fresh one.
//! * **Between processes**, the OS lock on that file excludes: `flock(2)` on
//!   Unix, `LockFileEx` on Windows. It interoperates with util-linux
//!   `flock(1)` and with anything else that uses `flock` on the same file.
//! * **Inside a process**, every `PackLock` on one file — whichever path,
//!   symlink or hard link it was opened through — shares one in-process
//!   queue (an `async-lock` read-write lock). Only the head of that queue
//!   (or, for shared holds, one reader for all of them) goes to the OS lock,
//!   so a process has at most one waiter per lock file in the kernel, and
//!   threads and tasks are served in order.
//! * **Uncontended**, an acquire takes the in-process slot and the OS lock
//!   with a non-blocking call on the caller's thread (a server lock's try
//!   is a round trip: an async acquire makes it on the blocking pool). **Contended by another
//!   process**, a sync acquire blocks its thread in the OS lock; an async
//!   acquire waits on a thread of its own (one per lock file per process at
//!   most, never the `blocking` pool), never on an executor thread.
//! * **Identity check**: a lock on a file that is no longer at the path
//!   protects nothing. After the OS lock is granted, packlock checks (one
//!   `stat`) that the path still names the locked file; if the file was
//!   deleted, renamed away or renamed over, it unlocks, reopens and tries
//!   again. [`PackLockHold::validate`] repeats the check on demand.
//! * **Cost**: on Unix, an uncontended exclusive acquire + release on an
//!   open `PackLock` makes five system calls — `getpid` (so that a child
//!   made by `fork` reopens the file rather than lock its parent's),
//!   `flock`, the identity `stat`, `getpid` (so that such a child never
//!   releases its parent's lock) and `flock` to unlock — against the two of
//!   a bare `flock` pair.
//!   (A [label](PackLockBuilder::label) adds the calls that write it; a
//!   shared acquire that joins the process's shared lock makes no `flock`
//!   call.) The README's performance section has the measurements.
//!
//! # Which acquire to call
//!
//! | method | waits | gives up |
//! |---|---|---|
//! | [`PackLock::acquire`] | blocks the thread | never |
//! | [`PackLock::try_acquire`] | never | at once: [`PackLockError::Busy`] |
//! | [`PackLock::acquire_timeout`] | blocks the thread | after a duration: [`PackLockError::TimedOut`] |
//! | [`PackLock::acquire_async`] | awaits, any executor | never (drop the future to stop) |
//! | [`PackLock::acquire_cancellable`] | awaits, any executor | when a token is cancelled: [`PackLockErrorOrCancelled::Cancelled`] |
//! | [`PackLock::acquire_until`] | awaits, any executor | when any future completes: `Cancelled` |
//! | [`PackLock::acquire_timeout_with`] and [`rt`]`::*::acquire_timeout` | awaits | after a duration on a runtime's timer: `TimedOut` |
//!
//! All of them run one pipeline; they differ only in how they wait.
//! `try_acquire` reports `Busy` for every holder, the calling thread
//! included. An acquire that would wait for a lock file the same thread
//! (sync code) or the same [`with_tier_scope`] task (async code) already
//! holds fails with [`PackLockError::Reentrant`] instead of waiting for
//! itself forever; other threads and tasks wait normally. An acquire counts
//! as the caller's from its first poll, before it even tries the lock, so a
//! second acquire of the same file joined into the same task (say with
//! `futures::join!`) fails too, rather than queue behind a hold the task
//! cannot drop. A scope nested in another sees what the enclosing scopes
//! hold. Async code outside any scope has no task identity, so there
//! re-entrancy is not detected. A hold moved to another thread or task
//! counts for its acquirer until the new owner calls
//! [`PackLockHold::adopt`].
//!
//! # Cancellation
//!
//! Any async acquire can be abandoned — by cancelling a [`CancellationToken`]
//! (or, with the `tokio` feature, a `tokio_util::sync::CancellationToken`)
//! passed to [`acquire_cancellable`](PackLock::acquire_cancellable), by a
//! signal future given to [`acquire_until`](PackLock::acquire_until), by a
//! timeout, or by dropping the future. Giving up is prompt (the caller gets
//! `Cancelled` as soon as it is polled after the signal), leaves nothing
//! held or queued (a wait for another process runs as a pool job that
//! releases the lock the moment it is granted), and parks at most one pool
//! thread per lock file per process however many acquires give up. The
//! sync [`acquire_timeout`](PackLock::acquire_timeout) drives the same
//! pipeline on the calling thread, parked until woken or the deadline.
//!
//! # Lock ordering
//!
//! Programs that take several locks deadlock when two code paths take them
//! in different orders. Give each lock a [`Tier`] — a rank in one global
//! order — and packlock checks that every thread and task takes tiers in
//! strictly increasing rank:
//!
//! ```
//! use packlock::{PackLock, Tier, with_tier_scope};
//!
//! const WORKSPACE: Tier = Tier::new(0, "workspace-sync");
//! const PER_PACK: Tier = Tier::new(2, "per-pack");
//!
//! # futures_lite::future::block_on(async {
//! # let root = tempfile::tempdir().expect("temp dir");
//! # let dir = root.path().join("foo");
//! let ws = PackLock::builder(root.path()).file_name(".sync.lock").tier(WORKSPACE).open()?;
//! let pack = PackLock::builder(&dir).tier(PER_PACK).open()?;
//! with_tier_scope(async {
//!     let _w = ws.acquire_async().await?;
//!     let _p = pack.acquire_async().await?; // ok: 0 then 2
//!     // taking `ws` again here, or any tier <= 2, is a violation
//!     Ok::<(), packlock::PackLockError>(())
//! })
//! .await?;
//! # Ok::<(), packlock::PackLockError>(())
//! # }).unwrap();
//! ```
//!
//! * Holds of a lock built with [`.tier(..)`](PackLockBuilder::tier) hold
//!   its tier; [`with_tier`] and [`TierGuard`] hold tiers that are not
//!   locks (a semaphore permit, say).
//! * Sync code is checked per thread. Async code is checked per task inside
//!   [`with_tier_scope`], a future wrapper that installs the task's record
//!   around each poll — on any executor, even when the task moves between
//!   worker threads. Outside any scope, async acquires are not checked.
//! * An acquire counts from its first poll: a task that takes a lower tier
//!   while one of its acquires still waits (in another branch of a
//!   `join!`, say) commits the same violation as while holding.
//! * Scopes nest: a scope first polled inside another checks against what
//!   every enclosing scope holds (tiers and locks), records its own holds
//!   apart (gone from the enclosing view once dropped; siblings do not see
//!   each other's), and passes those still alive when it completes to the
//!   enclosing scope. See [`with_tier_scope`].
//! * A hold moved to another thread or task counts for its acquirer until
//!   the new owner calls [`PackLockHold::adopt`].
//! * Every guard and hold remembers the record it went into and removes its
//!   own entry when dropped, so dropping out of order, or on another thread,
//!   never corrupts a record.
//! * A violation panics in debug builds and logs with `log::error!` in
//!   release builds ([`TierPolicy`], switchable at run time with
//!   [`set_tier_policy`]); the message names both tiers and both lock files.
//!   A [`try_acquire`](PackLock::try_acquire) cannot deadlock, so it is not
//!   checked, but its hold does count for later acquires.
//!
//! # Cargo features
//!
//! The default build is runtime-agnostic and has no tokio in it. Features
//! add what a runtime has of its own — see [`rt`]:
//!
//! * `tokio`: `tokio_util::sync::CancellationToken` as a [`CancelSignal`],
//!   and `rt::tokio::acquire_timeout` on `tokio::time` (honours
//!   `tokio::time::pause`).
//! * `smol`: `rt::smol::acquire_timeout` on async-io's timer.
//! * `async-std`: `rt::async_std::acquire_timeout` on async-io's timer (the
//!   one async-std uses); async-std itself, discontinued, is never pulled
//!   into your build.
//!
//! # Guarantees and their limits
//!
//! In short — the README (on the crate's page) gives each with its reasons
//! and the tests behind it:
//!
//! * While a [`PackLockHold`] lives, no other holder of the same lock file
//!   exists in any process on the machine that uses `flock` on it; a
//!   process that dies, even by `kill -9`, releases its locks at once.
//! * On network and FUSE file systems `flock` may not exclude other
//!   machines: packlock warns or refuses ([`NetworkFsPolicy`]), never skips
//!   locking silently.
//! * A child made by `fork(2)` never releases its parent's lock, and a
//!   [`PackLock`] it inherited reopens its file there, so the child waits
//!   for its parent like any other process. A mutex another parent thread
//!   held at the fork stays locked in the child (fork before starting
//!   threads, or fork and `exec`).
//! * Lock files must be regular files ([`PackLockError::NotARegularFile`]);
//!   read-only ones lock all the same (except with
//!   [fencing](PackLockBuilder::fencing), which must write). packlock writes
//!   into a lock file only when it is empty or holds nothing but its own
//!   lines (a fence line, a holder record).
//! * Any [`Duration`](std::time::Duration) is a valid timeout or wait-log
//!   threshold; one past what [`Instant`](std::time::Instant) can hold means
//!   no limit.
//! * Re-entrancy and tier checks follow threads and [`with_tier_scope`]
//!   tasks, not holds: a hold moved elsewhere needs [`PackLockHold::adopt`].
//! * **Server locks** (feature `postgres`): a hold lasts as long as the
//!   server session that took it; when the session ends (server restart,
//!   failover, cut connection) the hold is lost: [`PackLockHold::lost`]
//!   completes and [`PackLockHold::validate`] fails with
//!   [`PackLockError::Lost`]. Protect storage with [`PackLockHold::fence`].
//! * Deleting or replacing a held lock file is not prevented: the next
//!   acquirer reopens, and [`PackLockHold::validate`] tells a holder.
//!
//! # Shared mode
//!
//! [`PackLockBuilder::shared`] makes every acquire of a lock take a shared
//! hold: shared holds coexist (in a process, across processes, and with
//! `flock -s`) and exclude exclusive ones both ways. All shared holds of a
//! process on one file share one OS lock, taken by the first and released
//! by the last, so the process still sends at most one waiter to the
//! kernel. A shared [`try_acquire`](PackLock::try_acquire) never waits and
//! is [`Busy`](PackLockError::Busy) exactly when an exclusive lock is in
//! the way: held, waited for in this process (writers go first within a
//! process), or waited out in the kernel by a reader of this process.
//! There is no upgrade or
//! downgrade: `flock` converts a lock by releasing it first, which would
//! let others in.
//!
//! # Who holds it
//!
//! [`PackLockError::Busy`] and the wait log line name the holder where it
//! can be known — see [`Holder`] and [`PackLock::holders`]: on Linux every
//! `flock` holder by pid (from `/proc/locks`, so other programs too, matched
//! by exact device and inode: where `stat` and the lock table disagree on
//! the device, as on btrfs subvolumes, no pid is named rather than a wrong
//! one), plus the label and start time of packlock holders whose lock has a
//! [label](PackLockBuilder::label). The label is recorded as the lock file's
//! whole content, only into a file that is empty or holds nothing but an
//! earlier record: any other content is never written.
//!
//! # Logging
//!
//! packlock logs through the [`log`] facade: `info` once when a wait lasts
//! longer than its threshold ([`PackLockBuilder::log_wait_after`], default
//! one second), naming the holder; `debug` when an acquire has to wait and
//! when it gets the lock after waiting; `error` for tier violations under
//! [`TierPolicy::Log`]; `warn` only when unlocking fails. Nothing is logged
//! on the uncontended path.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

// How the crate is built: five layers, each using only those below it.
//
//   public types   lock (PackLock: open, every acquire, sync and async)
//                  builder (PackLockBuilder, PackLock's constructors),
//                  hold (PackLockHold), rt/ (runtime adapters)
//        |
//   pipeline       acquire/ (the one acquire pipeline; claim: what an
//                  acquire holds; drive: polling it on this thread;
//                  offload: where blocking waits run; wait_log)
//        |
//   in-process     target (an open lock + its slot), registry (slots by
//                  lock identity), shared_lease (the process's shared OS
//                  lock), held (what each thread/task holds), scope
//        |
//   backends       backend (the LockBackend seam), backend/lock_file/
//                  (flock'd file: OS calls, holder record, network fs),
//                  postgres/ (feature: the lock server client; its
//                  backend.rs is a backend, its builder.rs a public type)
//        |
//   leaves         error, holder (Holder), options, tier, cancel,
//                  sys/ (unix, windows, linux /proc, no_procfs)
mod cancel;
mod error;
mod holder;
mod options;
mod sys;
mod tier;

mod backend;

mod held;
mod registry;
mod scope;
mod shared_lease;
mod target;

mod acquire;

mod builder;
mod hold;
mod lock;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
pub mod rt;

pub use builder::PackLockBuilder;
pub use cancel::{CancelSignal, CancellationToken, WaitForCancellation};
pub use error::{PackLockError, PackLockErrorOrCancelled};
pub use hold::PackLockHold;
pub use holder::Holder;
pub use lock::PackLock;
pub use options::NetworkFsPolicy;
pub use scope::{TierGuard, TierScope, with_tier, with_tier_scope};
pub use tier::{Tier, TierPolicy, set_tier_policy, tier_policy};

/// The default name of the sidecar lock file inside a directory:
/// [`PackLock::open`]`(dir)` locks `<dir>/.pack-lock`. Exported so that tools
/// can hide it (for example in a `.gitignore`).
///
/// # Examples
///
/// ```
/// assert_eq!(packlock::PACK_LOCK_FILE_NAME, ".pack-lock");
/// ```
pub const PACK_LOCK_FILE_NAME: &str = ".pack-lock";
