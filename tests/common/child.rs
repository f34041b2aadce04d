//! Child processes: the test binary spawns itself again as a child that
//! plays a role, and talks to it over its stdin/stdout.
//!
//! A test file that spawns children declares
//! `#[test] fn child_process_entry() { common::child_process_entry(roles) }`:
//! in a normal run it does nothing; in a child (marked by an environment
//! variable) it runs the requested role and exits.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use packlock::PackLock;

use super::DEADLINE;

const ROLE_VAR: &str = "PACKLOCK_TEST_CHILD_ROLE";
const DIR_VAR: &str = "PACKLOCK_TEST_CHILD_DIR";
/// Child output meant for the parent follows this marker; everything else
/// on the child's stdout is the test harness talking.
const MESSAGE: &str = "packlock-test: ";

/// The role a child was started with, and the directory it works in.
pub struct ChildArgs {
    pub role: String,
    pub dir: std::path::PathBuf,
}

/// Runs the child role named in the environment, if any, and exits.
pub fn child_process_entry(run: impl FnOnce(&ChildArgs)) {
    let (Ok(role), Ok(dir)) = (std::env::var(ROLE_VAR), std::env::var(DIR_VAR)) else {
        return; // a normal test run: nothing to do
    };
    run(&ChildArgs { role, dir: dir.into() });
    std::process::exit(0);
}

/// Sends a line to the parent.
pub fn tell_parent(message: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MESSAGE}{message}").expect("write to parent");
    out.flush().expect("flush to parent");
}

/// Blocks until the parent says go on (writes a line or closes stdin).
pub fn wait_for_parent() {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Child role: take `lock`, say "locked", keep it until the parent says go
/// on, release and say "released".
pub fn hold_until_told(lock: &PackLock) {
    let hold = lock.acquire().expect("acquire");
    tell_parent("locked");
    wait_for_parent();
    hold.release().expect("release");
    tell_parent("released");
}

/// A child process running one role of the calling test binary.
pub struct Child {
    process: std::process::Child,
    messages: Receiver<String>,
}

impl Child {
    /// Starts this test binary again, running only the file's
    /// `child_process_entry` test, in role `role` on directory `dir`.
    pub fn spawn(role: &str, dir: &Path) -> Child {
        Self::spawn_with_env(role, dir, &[])
    }

    /// [`spawn`](Self::spawn), with `env` added to the child's environment.
    pub fn spawn_with_env(role: &str, dir: &Path, env: &[(&str, &str)]) -> Child {
        let exe = std::env::current_exe().expect("current exe");
        let mut process = Command::new(exe)
            .args(["--exact", "child_process_entry", "--nocapture", "--test-threads=1"])
            .envs(env.iter().copied())
            .env(ROLE_VAR, role)
            .env(DIR_VAR, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child test process");
        let stdout = process.stdout.take().expect("child stdout");
        let (send, messages) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may have started the line ("test child_process_entry ... ").
                if let Some((_, message)) = line.split_once(MESSAGE)
                    && send.send(message.to_string()).is_err()
                {
                    break;
                }
            }
        });
        Child { process, messages }
    }

    /// Waits for the child's next message, which must be `expected`.
    pub fn expect(&self, expected: &str) {
        match self.messages.recv_timeout(DEADLINE) {
            Ok(message) => assert_eq!(message, expected, "unexpected message from child"),
            Err(e) => panic!("child never said {expected:?}: {e}"),
        }
    }

    /// Waits for the child's next message, whatever it says.
    pub fn next_message(&self) -> String {
        match self.messages.recv_timeout(DEADLINE) {
            Ok(message) => message,
            Err(e) => panic!("child said nothing more: {e}"),
        }
    }

    /// Lets the child go on past its `wait_for_parent`.
    pub fn proceed(&mut self) {
        let stdin = self.process.stdin.as_mut().expect("child stdin");
        stdin.write_all(b"go\n").expect("write to child");
        stdin.flush().expect("flush to child");
    }

    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// `kill -9`s the child and reaps it.
    pub fn kill(mut self) {
        self.process.kill().expect("kill child");
        self.process.wait().expect("reap child");
    }

    /// Waits for the child to exit and asserts it succeeded.
    pub fn join(mut self) {
        drop(self.process.stdin.take());
        let status = wait_with_deadline(&mut self.process);
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Never leave a child behind when a test fails.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn wait_with_deadline(process: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = process.try_wait().expect("wait for child") {
            return status;
        }
        assert!(Instant::now() < deadline, "child did not exit within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A child process in role `role` on `dir` that has said "locked".
pub fn spawn_holder(role: &str, dir: &Path) -> Child {
    let child = Child::spawn(role, dir);
    child.expect("locked");
    child
}

/// Lets a holding child release and waits until it has exited.
pub fn release(mut child: Child) {
    child.proceed();
    child.expect("released");
    child.join();
}
