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
//!
//! In server mode (`--postgres`) it first starts or reaches the server and
//! the proxy (`coordinator/server.rs`), and instead of disturbing lock
//! files it cuts the workers' connections or terminates their backends;
//! the leak check asks the server.

mod chaos;
mod fences;
mod fleet;
mod leaks;
// The tests' loopback proxy, which can cut any connection through it.
#[cfg(feature = "postgres")]
#[path = "../../tests/common/proxy.rs"]
mod proxy;
mod report;
#[cfg(feature = "postgres")]
mod server;
mod verify;

/// Without the `postgres` feature there is no server mode: no server.
#[cfg(not(feature = "postgres"))]
mod server {
    use super::chaos::Chaos;
    use super::leaks::Leaks;
    use crate::layout::Layout;
    use crate::rng::Rng;

    pub enum Server {}

    impl Server {
        pub fn start(_conn: Option<&str>) -> Result<Server, String> {
            Err("--postgres needs the postgres feature".to_string())
        }
        pub fn worker_conn(&self) -> &str {
            match *self {}
        }
        pub fn describe(&self) -> &str {
            match *self {}
        }
        pub fn connections(&self) -> u64 {
            match *self {}
        }
        pub fn disturb(&self, _rng: &mut Rng, _chaos: &mut Chaos) {
            match *self {}
        }
        pub fn leaks(&self, _layout: &Layout, _names: usize) -> Leaks {
            match *self {}
        }
    }
}

use std::process::ExitCode;
use std::time::Instant;

use chaos::Chaos;
use fleet::Fleet;
use report::Outcome;
use server::Server;

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
    let server = match &args.postgres {
        Some(conn) => match Server::start(conn.as_deref()) {
            Ok(server) => Some(server),
            Err(e) => {
                eprintln!("stress: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    if server.is_none() {
        create_lock_files(&layout, args.files);
    }
    let exe = std::env::current_exe().expect("find this program's own executable");
    let worker_conn = server.as_ref().map(|server| server.worker_conn().to_string());
    let mut fleet = Fleet::start(exe, args, &layout, worker_conn);
    let chaos: Chaos = chaos::run(&mut fleet, &layout, args, server.as_ref());
    fleet.stop();
    let leaks = match &server {
        Some(server) => server.leaks(&layout, args.files),
        None => leaks::check(&layout, args.files, &fleet.pids()),
    };
    fleet.finish();
    let verification = verify::run(&layout);
    let server_info =
        server.as_ref().map(|server| (server.describe().to_string(), server.connections()));
    let outcome = Outcome { chaos, fleet: fleet.tally(), leaks, verification, server: server_info };
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
