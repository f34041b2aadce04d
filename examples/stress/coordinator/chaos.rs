//! What the coordinator does to the workers and their lock files while
//! they run.

use std::io;
use std::time::{Duration, Instant};

use super::fleet::Fleet;
use super::server::Server;
use crate::Args;
use crate::layout::Layout;
use crate::rng::Rng;

/// The coordinator's stream of the PRNG.
const STREAM: u64 = 0xC0;
/// How long the coordinator sleeps at most between looks.
const TICK: Duration = Duration::from_millis(20);

#[derive(Debug, Default, Clone)]
pub struct Chaos {
    pub kills: u64,
    pub renames_over: u64,
    pub renames_away: u64,
    pub deletes: u64,
    /// Deletes or renames away of a lock file that was already gone;
    /// server mode: cuts or terminations that found no connection.
    pub missed: u64,
    /// Server mode: connections cut by the proxy, and backends terminated.
    pub cuts: u64,
    pub terminations: u64,
}

enum Disturbance {
    RenameOver,
    RenameAway,
    Delete,
}

/// Kills workers; disturbs the lock files, or in server mode (`server`)
/// the workers' connections.
pub fn run(fleet: &mut Fleet<'_>, layout: &Layout, args: &Args, server: Option<&Server>) -> Chaos {
    let mut rng = Rng::new(args.seed, &[STREAM]);
    let mut chaos = Chaos::default();
    let end = Instant::now() + args.duration();
    let mut next_kill = Instant::now() + rng.millis(200, 2_000);
    let mut next_disturbance = Instant::now() + rng.millis(5, 150);
    let mut serial = 0;
    loop {
        let now = Instant::now();
        if now >= end {
            return chaos;
        }
        if now >= next_kill {
            fleet.kill_random(&mut rng);
            chaos.kills += 1;
            next_kill = now + rng.millis(200, 2_000);
        }
        if now >= next_disturbance {
            match server {
                Some(server) => server.disturb(&mut rng, &mut chaos),
                None => {
                    serial += 1;
                    let file = rng.index(args.files);
                    chaos.count(disturb(layout, file, serial, &mut rng));
                }
            }
            next_disturbance = now + rng.millis(5, 150);
        }
        fleet.restart_exited();
        let wake = next_kill.min(next_disturbance).min(end).min(now + TICK);
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
}

impl Chaos {
    fn count(&mut self, done: io::Result<Option<Disturbance>>) {
        match done {
            Ok(Some(Disturbance::RenameOver)) => self.renames_over += 1,
            Ok(Some(Disturbance::RenameAway)) => self.renames_away += 1,
            Ok(Some(Disturbance::Delete)) => self.deletes += 1,
            Ok(None) => self.missed += 1,
            Err(e) => eprintln!("stress: cannot disturb a lock file: {e}"),
        }
    }

    pub fn disturbances(&self) -> u64 {
        self.renames_over + self.renames_away + self.deletes
    }
}

/// Renames a new file over lock file `file` (60%), deletes it (25%) or
/// renames it away (15%); `None` if there was nothing to delete or
/// rename away.
fn disturb(
    layout: &Layout,
    file: usize,
    serial: u64,
    rng: &mut Rng,
) -> io::Result<Option<Disturbance>> {
    let lock = layout.lock_path(file);
    let roll = rng.below(100);
    let done = if roll < 60 {
        let staged = layout.staging(serial);
        std::fs::write(&staged, b"")?;
        std::fs::rename(&staged, &lock).map(|()| Disturbance::RenameOver)
    } else if roll < 85 {
        std::fs::remove_file(&lock).map(|()| Disturbance::Delete)
    } else {
        std::fs::rename(&lock, layout.graveyard(serial)).map(|()| Disturbance::RenameAway)
    };
    match done {
        Ok(disturbance) => Ok(Some(disturbance)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
