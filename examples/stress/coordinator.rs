//! The coordinator: starts the workers, disturbs them, stops them, checks
//! for leaks, verifies the logs and reports.

use std::process::ExitCode;
use std::time::Instant;

use crate::chaos::{self, Chaos};
use crate::fleet::Fleet;
use crate::layout::Layout;
use crate::report::{self, Outcome};
use crate::{Args, leaks, verify};

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
