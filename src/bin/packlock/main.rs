//! `packlock`: run a command while holding the lock of a directory — a
//! portable `flock(1)`.
//!
//! ```text
//! packlock [--shared] [--nonblock | --timeout SECS] [--conflict-exit-code N] [--close]
//!          [--file NAME] [--fencing] [--label TEXT] [--verbose] DIR -- COMMAND [ARGS...]
//! packlock --status [--file NAME] DIR
//! packlock [options] --postgres CONN NAME [--] COMMAND [ARGS...]   (feature postgres)
//! packlock --status --postgres CONN NAME
//! ```
//!
//! Install it with `cargo install packlock --features cli`, or run it from
//! a checkout with `cargo run --features cli -- ARGS`.
//!
//! The first form takes the lock of `DIR` — the sidecar file
//! `DIR/.pack-lock`, or `DIR/NAME` with `--file NAME`, created with `DIR` if
//! missing — runs `COMMAND` with the terminal's stdin, stdout and stderr,
//! waits for it, lets go of the lock and exits with the command's exit code.
//! The `--` before the command is optional unless the command's name starts
//! with `-`; everything after the command's name is passed to it untouched.
//!
//! * `-s`, `--shared`: take a shared lock; any number of shared holders
//!   (packlock or `flock -s`) run at once, an exclusive one excludes them.
//! * `-n`, `--nonblock`: give up at once if the lock is held.
//! * `-w`, `--timeout SECS`: give up after `SECS` seconds; fractions such as
//!   `0.5` are fine, and `0` means `--nonblock`. Any finite number `>= 0` is
//!   accepted (`1e30` simply never expires); negative numbers, `nan`, `inf`
//!   and anything else are usage errors. Without `-n` or `-w`, packlock
//!   waits as long as it takes.
//! * `-E`, `--conflict-exit-code N`: the exit code when packlock gives up
//!   (0 to 255, default 1). It then prints who holds the lock to stderr.
//! * `-o`, `--close`: keep the lock from the command (see "When the lock is
//!   released" below).
//! * `--file NAME`: the lock file's name inside `DIR` (a bare file name).
//!   Without `--label` it is opened read-only and never written.
//! * `--fencing`: give the hold a fence and run the command with it in the
//!   environment as `PACKLOCK_FENCE`: every holder, shared ones too, gets
//!   a larger number than any before it (hand it to storage that refuses
//!   writes with a smaller one). The counter is kept in a file beside the
//!   lock file, `<lock file>.fence`.
//! * `--postgres CONN` (with the `postgres` feature): hold the lock named
//!   by the positional argument (`NAME` instead of `DIR`) on the
//!   PostgreSQL server `CONN` — a libpq-style string or a `postgresql://`
//!   URL — instead of a lock file. The command always gets the hold's fence
//!   as `PACKLOCK_FENCE`.
//! * `--label TEXT`: what `--status` and waiting processes see as the
//!   holder's label. Default, for the directory's own sidecar only (not a
//!   `--file`): `packlock COMMAND` (the command's name as
//!   given, without its arguments, since the lock file is usually readable
//!   by everyone). At most 1,024 bytes are kept (cut on a character
//!   boundary) and line breaks become spaces. The label is recorded as the
//!   lock file's whole content, so it is left out when that file holds
//!   anything else — data someone locks with `flock(1)`, or a log the
//!   command appends to — and such a file is never written. A lock file
//!   that is a directory, FIFO, socket or device is refused (exit 1).
//! * `-v`, `--verbose`: tell on stderr when the lock is held and how long it
//!   took to get, and when it is released.
//! * `--status DIR`: print whether the lock is free or held, and by whom:
//!   one line per holder with its pid, shared or exclusive, label and how
//!   long it has held the lock, where known (Linux knows every holder's pid;
//!   elsewhere only labelled packlock holders are seen). It creates nothing:
//!   a missing lock file is free. For a lock file it tells by taking the
//!   lock without waiting and dropping it at once, so for that instant a
//!   `--nonblock` elsewhere may find it busy; a server lock it only looks
//!   at (the server lists every holder), changing nothing there.
//!
//! Run under the name `flock` (a link or copy; `flock.exe` on Windows), it
//! takes util-linux flock(1)'s command line instead: see the `flock` module
//! and README's "The flock mode".
//!
//! # Exit codes
//!
//! | code | when |
//! |---|---|
//! | the command's | it ran; 128 + N if signal N killed it (Unix), as shells report it |
//! | 1, or `-E N` | the lock was held: `--nonblock` gave up, or `--timeout` passed |
//! | 1 | packlock itself failed: the lock file could not be created, opened or locked, or `--file` is not a bare file name (the message names the path) |
//! | 2 | usage error: a missing `DIR` or `COMMAND`, an unknown option, a bad value |
//! | 126, 127 | the command could not be started: 127 when it was not found, 126 otherwise (as `env`, `timeout` and shells do) |
//! | `--status`: 0, 1 | 0 when the lock is free, 1 when it is held or cannot be checked |
//!
//! # Terminal session
//!
//! ```text
//! $ packlock --label nightly /srv/pack -- sleep 600 &
//! $ packlock --status /srv/pack
//! held: /srv/pack/.pack-lock
//!   pid 4242, exclusive, label "nightly", for 7s
//! $ packlock --nonblock /srv/pack -- make; echo "exit $?"
//! packlock: lock `/srv/pack/.pack-lock` is busy: held by pid 4242 ("nightly", for 9s)
//! exit 1
//! $ packlock --timeout 0.5 --conflict-exit-code 75 /srv/pack -- make; echo "exit $?"
//! packlock: timed out after 500ms waiting for lock `/srv/pack/.pack-lock`; held by pid 4242 ("nightly", for 12s)
//! exit 75
//! $ packlock --shared /srv/other -- sh -c 'exit 3'; echo "exit $?"
//! exit 3
//! ```
//!
//! # When the lock is released
//!
//! The command inherits the lock file's descriptor, as with `flock(1)`:
//! the lock belongs to the open file, so it stays held while the command —
//! or anything it leaves running in the background — keeps the descriptor
//! open, even if packlock itself is killed. packlock never unlocks such a
//! lock (that would take it from them too); it closes its own descriptor by
//! exiting. With `--close`, the command gets no descriptor: packlock holds
//! the lock alone, releases it when the command exits, and if packlock is
//! killed the kernel releases it at once, even if the command still runs.
//! A server lock (`--postgres`) cannot be inherited: packlock holds it and
//! guards the command (see the `guard` module): it passes `SIGTERM`,
//! `SIGINT` and `SIGHUP` on and waits for the command, the command is
//! killed if packlock dies (Linux), and it gets `--on-lost SIGNAL`
//! (default `TERM`) if the hold is lost.

// `unsafe` is allowed in one module, `os`, and nowhere else.
#![deny(unsafe_code)]

mod args;
mod child;
mod flock;
#[cfg(all(unix, feature = "postgres"))]
mod guard;
#[cfg(unix)]
mod os;
mod run;
mod status;

use std::io::{self, Write};

use clap::Parser;
use packlock::PackLockError;

use crate::args::Args;

/// packlock's own failures: the lock file could not be opened or locked.
const EXIT_FAILURE: i32 = 1;

fn main() {
    let mut argv = std::env::args_os();
    let invoked_as_flock = argv.next().is_some_and(|argv0| flock::invoked_as_flock(&argv0));
    let code = if invoked_as_flock { flock::main(argv) } else { packlock() };
    // Everything is dropped by now: the lock is released before we exit.
    let _ = io::stdout().flush();
    std::process::exit(code);
}

/// packlock's own command line: `packlock DIR COMMAND` or `--status`.
fn packlock() -> i32 {
    let args = Args::parse();
    if let Err(e) = args.check() {
        eprintln!("packlock: {e}");
        return 2;
    }
    if args.status { status::status(&args) } else { run::run(&args) }
}

/// Prints packlock's own failure and returns its exit code.
fn fail(error: &PackLockError) -> i32 {
    eprintln!("packlock: {error}");
    EXIT_FAILURE
}
