//! Two processes contending for one pack: who waits, and for how long.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! The program plays both roles. The parent creates a pack directory under
//! the system temp directory, takes its lock with [`PackLock::acquire`], and
//! re-runs its own executable as a child process (marked by the
//! `PACKLOCK_DEMO_CHILD` environment variable, which carries the pack path).
//!
//! 1. The child's [`PackLock::try_acquire`] fails at once with
//!    [`PackLockError::Busy`]; the child then blocks in [`PackLock::acquire`].
//! 2. The parent works for 1.5 s, releases, and the child reports how long it
//!    waited (about 1.5 s).
//! 3. While the child works, the parent waits for the lock again with the
//!    async [`PackLock::acquire_async`] (driven here by
//!    `futures_lite::future::block_on`; any executor works), which gets it
//!    back as soon as the child releases.
//! 4. Once the child has exited, `try_acquire` shows the lock is free, and
//!    the pack directory is removed.
//!
//! The child's output goes through a pipe that the parent reads line by
//! line and re-prints, so the parent knows when the child is really waiting
//! before it starts its timed work, and the printed order is deterministic.

use std::error::Error;
use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{self, Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, thread};

use futures_lite::future;
use packlock::{PackLock, PackLockError};

/// Marks the child role; its value is the pack directory.
const CHILD_ENV: &str = "PACKLOCK_DEMO_CHILD";

/// How long the parent holds the lock, in steps of [`PARENT_STEP`].
const PARENT_STEPS: u32 = 3;
const PARENT_STEP: Duration = Duration::from_millis(500);
/// How long the child works once it has the lock.
const CHILD_WORK: Duration = Duration::from_millis(500);

/// Phrases in the child's output that the parent waits for.
const WAITING: &str = "waiting in acquire()";
const GOT: &str = "got the lock";
const RELEASED: &str = "released";

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

fn main() -> Result<()> {
    match env::var_os(CHILD_ENV) {
        Some(pack) => run_child(Path::new(&pack)),
        None => run_parent(),
    }
}

fn run_parent() -> Result<()> {
    let me = format!("[parent pid {}]", process::id());
    let dir = tempfile::Builder::new()
        .prefix(&format!("packlock-demo-{}-", process::id()))
        .tempdir_in(env::temp_dir())?;
    let lock = PackLock::open(dir.path())?;
    let hold = lock.acquire()?;
    println!("{me} holding {}", hold.path().display());

    let mut child = Command::new(env::current_exe()?)
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()?;
    let outcome = contend(&me, &lock, hold, &mut child);
    if outcome.is_err() {
        // Do not leave the child blocked on a lock or a pipe nobody serves.
        let _ = child.kill();
    }
    let status = child.wait()?;
    if let Err(error) = outcome {
        return Err(format!("{error} (child: {status})").into());
    }
    if !status.success() {
        return Err(format!("the child process failed ({status})").into());
    }

    match lock.try_acquire() {
        Ok(hold) => {
            println!("{me} child exited; try_acquire(): free again");
            hold.release()?;
        }
        Err(PackLockError::Busy { .. }) => return Err("the lock is still busy".into()),
        Err(other) => return Err(other.into()),
    }
    // Close the lock file before removing its directory (needed on Windows).
    drop(lock);
    dir.close()?;
    Ok(())
}

/// The parent's side of the contention, from the spawned child until the
/// child's output ends.
fn contend(
    me: &str,
    lock: &PackLock,
    hold: packlock::PackLockHold,
    child: &mut Child,
) -> Result<()> {
    let stdout = child.stdout.take().ok_or("the child's stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();

    // Start the timed work only once the child is about to block.
    forward_until(&mut lines, WAITING)?;
    let start = Instant::now();
    for _ in 0..PARENT_STEPS {
        thread::sleep(PARENT_STEP);
        println!("{me} working... {:.1} s", start.elapsed().as_secs_f64());
    }
    hold.release()?;
    println!("{me} released");

    // The child holds the lock now; wait for it from async code.
    forward_until(&mut lines, GOT)?;
    println!("{me} waiting in acquire_async() ...");
    let start = Instant::now();
    let hold = future::block_on(lock.acquire_async())?;
    let waited = start.elapsed();
    forward_until(&mut lines, RELEASED)?;
    println!("{me} got the lock back after {:.2} s; releasing", waited.as_secs_f64());
    hold.release()?;

    for line in lines {
        println!("{}", line?);
    }
    Ok(())
}

/// Re-prints the child's lines until one contains `phrase`.
fn forward_until(lines: &mut Lines<BufReader<ChildStdout>>, phrase: &str) -> Result<()> {
    for line in lines.by_ref() {
        let line = line?;
        println!("{line}");
        if line.contains(phrase) {
            return Ok(());
        }
    }
    Err(format!("the child's output ended before {phrase:?}").into())
}

fn run_child(pack: &Path) -> Result<()> {
    let me = format!("[child  pid {}]", process::id());
    let lock = PackLock::open(pack)?;
    match lock.try_acquire() {
        Err(PackLockError::Busy { .. }) => println!("{me} try_acquire(): Busy"),
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("expected the parent to hold the lock".into()),
    }

    println!("{me} {WAITING} ...");
    let start = Instant::now();
    let hold = lock.acquire()?;
    println!(
        "{me} {GOT} after {:.2} s; working {:.1} s",
        start.elapsed().as_secs_f64(),
        CHILD_WORK.as_secs_f64()
    );
    thread::sleep(CHILD_WORK);
    hold.release()?;
    println!("{me} {RELEASED}");
    Ok(())
}
