//! The coordinator: starts the workers, disturbs them, stops them, checks
//! for leaks, verifies the logs and reports.
//!
//! For `--duration` seconds it kills a random worker (`Child::kill`, which
//! is SIGKILL) every 0.2–2 s and starts a new generation in its slot, and
//! every 5–150 ms renames a new file over a random lock file (60%), deletes
//! it (25%) or renames it away (15%) — whether or not someone holds or waits
//! for it. A worker that exits on its own counts as a worker failure.
//!
//! Then it stops the workers (`stop`, wait for `idle`; a worker that does
//! not go idle within 15 s is stuck — an acquire hangs — and is killed) and,
//! while they are still alive and idle, checks for **leaked locks**: for
//! every lock file a fresh `PackLock` must get `try_acquire` and, on Linux,
//! `/proc/locks` must show no holder or waiter of the file within 3 s (a
//! pool job left parked by a cancelled acquire must let go once it gets the
//! lock), and no worker may hold or wait for any other file (a lock on a
//! deleted or replaced file). Then it closes their stdin and reaps them.

mod chaos;
mod fleet;
mod leaks;
mod report;
mod verify;

use std::process::ExitCode;
use std::time::Instant;

use chaos::Chaos;
use fleet::Fleet;
use report::Outcome;

use crate::Args;
use crate::layout::Layout;

pub fn run(args: &Args) -> ExitCode {
    let started = Instant::now();
    let workdir = tempfile::Builder::new()
        .prefix("packlock-stress-")
        .tempdir()
        .expect("create a temporary working directory");
    let layout = Layout::new(workdir.path());
    layout.create_dirs().expect("create the working directory's subdirectories");
    create_lock_files(&layout, args.files);
    let exe = std::env::current_exe().expect("find this program's own executable");
    let mut fleet = Fleet::start(exe, args, &layout);
    let chaos: Chaos = chaos::run(&mut fleet, &layout, args);
    fleet.stop();
    let leaks = leaks::check(&layout, args.files, &fleet.pids());
    fleet.finish();
    let verification = verify::run(&layout);
    let outcome = Outcome { chaos, fleet: fleet.tally(), leaks, verification };
    let passed = report::print(args, &outcome, started.elapsed());
    if passed && !args.keep {
        return ExitCode::SUCCESS;
    }
    let kept = workdir.keep();
    println!("working directory kept: {}", kept.display());
    if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn create_lock_files(layout: &Layout, files: usize) {
    for file in 0..files {
        packlock::PackLock::open(layout.pack_dir(file)).expect("create a lock file");
    }
}
