//! The other process of the hand-off rows: this bench binary again, started
//! with [`ROLE_VAR`] set, holding the server lock on command — through
//! packlock or by hand.
//!
//! Protocol, one line each way: `lock packlock` or `lock raw`, answered
//! `locked` once held; `unlock`, answered `unlocked <ns>`, the wall clock
//! read just before the release began. End of input ends the child.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use packlock::PackLockHold;
use packlock::postgres::LockServer;

use super::raw::RawSession;
use crate::support::child::wall_clock_ns;

const ROLE_VAR: &str = "PACKLOCK_BENCH_SERVER_HOLDER";
const CONN_VAR: &str = "PACKLOCK_BENCH_SERVER_CONN";

/// In the child, holds on command and exits; in the bench, returns at once.
pub fn run_child_role_if_any() {
    let Ok(name) = std::env::var(ROLE_VAR) else { return };
    let conn = std::env::var(CONN_VAR).expect("child without a connection string");
    hold_on_command(&conn, &name);
    std::process::exit(0);
}

enum Held {
    Packlock(PackLockHold),
    Raw,
}

fn hold_on_command(conn: &str, name: &str) {
    let server = LockServer::connect(conn).expect("connect");
    let lock = server.lock(name).open().expect("open");
    let raw = RawSession::connect(conn, name);
    let mut held = None;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        match line.expect("read command").trim() {
            "lock packlock" => {
                held = Some(Held::Packlock(lock.acquire().expect("acquire")));
                writeln!(out, "locked").expect("answer");
            }
            "lock raw" => {
                raw.lock();
                raw.bump();
                held = Some(Held::Raw);
                writeln!(out, "locked").expect("answer");
            }
            "unlock" => {
                let at = wall_clock_ns();
                match held.take().expect("unlock without a hold") {
                    Held::Packlock(hold) => drop(hold),
                    Held::Raw => raw.unlock(),
                }
                writeln!(out, "unlocked {at}").expect("answer");
            }
            other => panic!("unknown command {other:?}"),
        }
        out.flush().expect("flush answer");
    }
}

/// A child process holding the server lock `name` on command.
pub struct ServerHolder {
    process: Child,
    commands: ChildStdin,
    answers: BufReader<ChildStdout>,
}

impl ServerHolder {
    pub fn spawn(conn: &str, name: &str) -> Self {
        let exe = std::env::current_exe().expect("current exe");
        let mut process = Command::new(exe)
            .env(ROLE_VAR, name)
            .env(CONN_VAR, conn)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the holder child process");
        let commands = process.stdin.take().expect("child stdin");
        let answers = BufReader::new(process.stdout.take().expect("child stdout"));
        ServerHolder { process, commands, answers }
    }

    /// Makes the child take the lock (`"packlock"` or `"raw"`); returns
    /// once it holds it.
    pub fn lock(&mut self, how: &str) {
        self.send(&format!("lock {how}"));
        assert_eq!(self.answer(), "locked");
    }

    /// Tells the child to release; returns the instant before the command.
    pub fn release(&mut self) -> Instant {
        let at = Instant::now();
        self.send("unlock");
        at
    }

    /// The child's wall clock just before its last release began, in ns.
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

impl Drop for ServerHolder {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
