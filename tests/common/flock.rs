//! util-linux `flock(1)` as the other party.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `flock -n [extra] FILE true` and returns its exit code: 0 when
/// it got the lock, 1 when the lock was busy.
pub fn nonblocking(path: &Path, extra: &[&str]) -> i32 {
    let status = Command::new("flock")
        .arg("-n")
        .args(extra)
        .arg(path)
        .arg("true")
        .status()
        .expect("run util-linux flock (is it installed?)");
    status.code().expect("flock exited normally")
}

/// A `flock` process holding a file until stopped.
pub struct Holder(std::process::Child);

impl Holder {
    /// Starts `flock MODE FILE` (mode "-s" or "-x") and returns once it
    /// holds the lock.
    pub fn start(path: &Path, mode: &str) -> Self {
        Self::start_program("flock", path, mode)
    }

    /// [`Holder::start`] with another program taking flock(1)'s
    /// command line, such as packlock run as `flock`.
    pub fn start_program(program: impl AsRef<std::ffi::OsStr>, path: &Path, mode: &str) -> Self {
        let mut child = Command::new(program)
            .arg(mode)
            .arg(path)
            .args(["-c", "echo locked; cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run util-linux flock");
        let mut said = String::new();
        let stdout = child.stdout.take().expect("flock stdout");
        BufReader::new(stdout).read_line(&mut said).expect("read from flock");
        assert_eq!(said.trim(), "locked");
        Holder(child)
    }

    /// The pid that holds the lock (flock itself).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Closes its stdin: `cat` ends, and flock unlocks and exits.
    pub fn stop(mut self) {
        drop(self.0.stdin.take());
        assert!(self.0.wait().expect("reap flock").success());
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
