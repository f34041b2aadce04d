//! The other process of the cross-process rows: this very bench binary,
//! started again with [`ROLE_VAR`] set, holding the lock file with raw
//! `flock` calls on command.
//!
//! Protocol, one line each way: the parent writes `lock`, the child locks
//! and answers `locked`; the parent writes `unlock`, the child reads the
//! wall clock, unlocks and answers `unlocked <nanoseconds since the Unix
//! epoch, read just before the unlock call>`. End of input ends the child.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::raw_open;

const ROLE_VAR: &str = "PACKLOCK_BENCH_CHILD_ROLE";
const FILE_VAR: &str = "PACKLOCK_BENCH_CHILD_FILE";
const HOLDER: &str = "holder";

/// In a child started by [`Holder::spawn`], plays the holder and exits;
/// in the bench itself, returns at once. Call it first thing in `main`.
pub fn run_child_role_if_any() {
    let Ok(role) = std::env::var(ROLE_VAR) else { return };
    let path = PathBuf::from(std::env::var_os(FILE_VAR).expect("child without a lock file"));
    assert_eq!(role, HOLDER, "unknown child role");
    hold_on_command(&path);
    std::process::exit(0);
}

fn hold_on_command(path: &Path) {
    let file = raw_open(path);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        match line.expect("read command").trim() {
            "lock" => {
                file.lock().expect("lock");
                writeln!(out, "locked").expect("answer");
            }
            "unlock" => {
                let at = wall_clock_ns();
                file.unlock().expect("unlock");
                writeln!(out, "unlocked {at}").expect("answer");
            }
            other => panic!("unknown command {other:?}"),
        }
        out.flush().expect("flush answer");
    }
}

/// The wall clock (`CLOCK_REALTIME`, shared by all processes) in ns.
pub fn wall_clock_ns() -> i128 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    i128::try_from(since_epoch.as_nanos()).expect("wall clock in range")
}

/// A child process holding a lock on command: a lock file
/// ([`spawn`](Self::spawn)), or whatever a bench's own child role holds
/// ([`spawn_with`](Self::spawn_with)) over the same line protocol.
pub struct Holder {
    process: Child,
    commands: ChildStdin,
    answers: BufReader<ChildStdout>,
}

impl Holder {
    pub fn spawn(path: &Path) -> Self {
        Self::spawn_with(&[(ROLE_VAR, OsStr::new(HOLDER)), (FILE_VAR, path.as_os_str())])
    }

    /// This bench binary again, with `env` set (which tells it its role).
    pub fn spawn_with(env: &[(&str, &OsStr)]) -> Self {
        let exe = std::env::current_exe().expect("current exe");
        let mut process = Command::new(exe)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the holder child process");
        let commands = process.stdin.take().expect("child stdin");
        let answers = BufReader::new(process.stdout.take().expect("child stdout"));
        Self { process, commands, answers }
    }

    /// Makes the child take the lock; returns once it holds it.
    pub fn lock(&mut self) {
        self.lock_by("lock");
    }

    /// Makes the child take the lock by `command` (a role may know
    /// several ways); returns once it holds it.
    pub fn lock_by(&mut self, command: &str) {
        self.send(command);
        assert_eq!(self.answer(), "locked");
    }

    /// Tells the child to release, and returns the instant just before the
    /// command was written. Read the child's own timestamp of the release
    /// with [`released_at`](Self::released_at) afterwards.
    pub fn release(&mut self) -> Instant {
        let at = Instant::now();
        self.send("unlock");
        at
    }

    /// The child's wall-clock reading just before its unlock call, in ns
    /// (see [`wall_clock_ns`]), for the last [`release`](Self::release).
    pub fn released_at(&mut self) -> i128 {
        let answer = self.answer();
        let at = answer.strip_prefix("unlocked ").expect("answer to unlock");
        at.parse().expect("timestamp")
    }

    fn send(&mut self, command: &str) {
        self.commands.write_all(format!("{command}\n").as_bytes()).expect("command to child");
        self.commands.flush().expect("flush command");
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        let read = self.answers.read_line(&mut line).expect("answer from child");
        assert!(read > 0, "the holder child exited");
        line.trim_end().to_string()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // The child may be blocked in `lock`; it holds nothing we need.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
