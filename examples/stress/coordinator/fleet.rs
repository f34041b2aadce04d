//! The worker processes, as the coordinator sees them.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::Args;
use crate::layout::Layout;
use crate::rng::Rng;

/// How long workers get to go idle, and then to exit.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
const EXIT_DEADLINE: Duration = Duration::from_secs(5);

/// What happened to the workers, for the report.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub started: u64,
    pub kills: u64,
    /// Workers that exited on their own, or unsuccessfully.
    pub failures: u64,
    /// Workers that did not go idle or exit in time (an acquire hung).
    pub stuck: u64,
}

pub struct Fleet<'a> {
    exe: PathBuf,
    args: &'a Args,
    layout: &'a Layout,
    /// Server mode: the connection string the workers use.
    server_conn: Option<String>,
    workers: Vec<Worker>,
    generations: Vec<u64>,
    tally: Tally,
}

struct Worker {
    slot: usize,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl<'a> Fleet<'a> {
    pub fn start(
        exe: PathBuf,
        args: &'a Args,
        layout: &'a Layout,
        server_conn: Option<String>,
    ) -> Self {
        let generations = vec![0; args.processes];
        let mut fleet = Self {
            exe,
            args,
            layout,
            server_conn,
            workers: Vec::new(),
            generations,
            tally: Tally::default(),
        };
        for slot in 0..args.processes {
            let worker = fleet.spawn(slot);
            fleet.workers.push(worker);
        }
        fleet
    }

    fn spawn(&mut self, slot: usize) -> Worker {
        let generation = self.generations[slot];
        self.generations[slot] += 1;
        self.tally.started += 1;
        let args = self.args;
        let mut child = Command::new(&self.exe)
            .args(["--worker", &slot.to_string(), "--generation", &generation.to_string()])
            .arg("--dir")
            .arg(self.layout.root())
            .args(["--seed", &args.seed.to_string(), "--files", &args.files.to_string()])
            .args(["--threads", &args.threads.to_string(), "--tasks", &args.tasks.to_string()])
            .args(args.sabotage.then_some("--sabotage"))
            .args(self.server_conn.iter().flat_map(|conn| ["--postgres", conn]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a worker process");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("worker stdout is piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Worker { slot, child, stdin, lines }
    }

    /// `kill -9`s a random worker and starts the next generation in its
    /// slot.
    pub fn kill_random(&mut self, rng: &mut Rng) {
        let index = rng.index(self.workers.len());
        let slot = self.workers[index].slot;
        self.workers[index].kill();
        self.tally.kills += 1;
        self.workers[index] = self.spawn(slot);
    }

    /// Restarts workers that exited on their own, counting failures.
    pub fn restart_exited(&mut self) {
        for index in 0..self.workers.len() {
            if let Some(status) = self.workers[index].exited() {
                let slot = self.workers[index].slot;
                eprintln!("stress: worker in slot {slot} exited on its own: {status}");
                self.tally.failures += 1;
                self.workers[index] = self.spawn(slot);
            }
        }
    }

    /// Asks every worker to stop and waits until each is idle; kills
    /// those that are not in time.
    pub fn stop(&mut self) {
        for worker in &mut self.workers {
            worker.send("stop");
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        let mut stuck = 0;
        self.workers.retain_mut(|worker| {
            let idle = worker.wait_for("idle", deadline);
            if !idle {
                eprintln!("stress: worker in slot {} did not stop in time", worker.slot);
                worker.kill();
                stuck += 1;
            }
            idle
        });
        self.tally.stuck += stuck;
    }

    /// The pids of the live workers.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(|worker| worker.child.id()).collect()
    }

    /// Lets the (idle) workers exit and reaps them.
    pub fn finish(&mut self) {
        for worker in &mut self.workers {
            drop(worker.stdin.take());
        }
        let deadline = Instant::now() + EXIT_DEADLINE;
        for worker in &mut self.workers {
            match worker.wait_exit(deadline) {
                Some(status) if status.success() => {}
                Some(status) => {
                    eprintln!("stress: worker in slot {} failed: {status}", worker.slot);
                    self.tally.failures += 1;
                }
                None => {
                    eprintln!("stress: worker in slot {} did not exit in time", worker.slot);
                    worker.kill();
                    self.tally.stuck += 1;
                }
            }
        }
        self.workers.clear();
    }

    pub fn tally(&self) -> Tally {
        self.tally.clone()
    }
}

impl Worker {
    fn send(&mut self, line: &str) {
        if let Some(stdin) = &mut self.stdin {
            // A worker that died is found out by `wait_for`.
            let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        }
    }

    /// Waits for the line `expected`, skipping others; false if the
    /// worker closed its stdout or the deadline passed.
    fn wait_for(&self, expected: &str, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == expected => return true,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return false;
                }
            }
        }
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        // Fails only if it already exited, which the wait then reaps.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn wait_exit(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Never leave a worker behind, whatever happened.
        if self.exited().is_none() {
            self.kill();
        }
    }
}
