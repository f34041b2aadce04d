//! Helpers shared by the cross-process tests: spawning this test binary
//! again as a child process that plays a role, talking to it over its
//! stdin/stdout, and reading `/proc/locks` on Linux.
//!
//! A test file that spawns children declares
//! `#[test] fn child_process_entry() { common::child_process_entry(roles) }`:
//! in a normal run it does nothing; in a child (marked by an environment
//! variable) it runs the requested role and exits.

#![allow(dead_code)] // each test binary uses a different subset

#[cfg(all(unix, feature = "postgres"))]
pub mod pg;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "PACKLOCK_TEST_CHILD_ROLE";
const DIR_VAR: &str = "PACKLOCK_TEST_CHILD_DIR";
/// Child output meant for the parent follows this marker; everything else
/// on the child's stdout is the test harness talking.
const MESSAGE: &str = "packlock-test: ";

/// How long any wait for a child may take before the test fails: generous,
/// because CI machines are slow, and never reached when things work.
pub const DEADLINE: Duration = Duration::from_secs(30);

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

/// Child role: take the lock of `dir`, say "locked", keep it until the
/// parent says go on, release and say "released".
pub fn hold_until_told(dir: &Path) {
    let lock = packlock::PackLock::open(dir).expect("open");
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
        let exe = std::env::current_exe().expect("current exe");
        let mut process = Command::new(exe)
            .args(["--exact", "child_process_entry", "--nocapture", "--test-threads=1"])
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

/// Takes and releases the lock, which must be free right now, through a
/// new `PackLock`: a new open file description, so that an OS lock left
/// behind on one of ours (which that one could take again) counts as held.
pub fn assert_free(lock: &packlock::PackLock, why: &str) {
    let fresh = packlock::PackLock::open_file(lock.path()).expect("open");
    fresh.try_acquire().expect(why).release().expect("release");
}

/// Polls `try_acquire` of a new `PackLock` (see [`assert_free`]) until the
/// lock is free, failing after the deadline: a job left parked at the OS
/// lock must let go of it as soon as it gets it. On Linux, checks that
/// then nobody holds or waits for the file any more.
pub fn wait_until_free(lock: &packlock::PackLock) {
    let fresh = packlock::PackLock::open_file(lock.path()).expect("open");
    wait_until("the lock is free again", || fresh.try_acquire().is_ok());
    #[cfg(target_os = "linux")]
    {
        let left = proc_locks::entries(lock.path());
        assert!(left.is_empty(), "holders or waiters stayed in the kernel: {left:?}");
    }
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// util-linux `flock(1)` as the other party.
#[cfg(target_os = "linux")]
pub mod flock {
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
        pub fn start_program(
            program: impl AsRef<std::ffi::OsStr>,
            path: &Path,
            mode: &str,
        ) -> Self {
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
}

/// `flock` entries in `/proc/locks` for one file.
#[cfg(target_os = "linux")]
pub mod proc_locks {
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    /// One line of `/proc/locks` about our file.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Entry {
        /// A waiter (`->` lines) rather than a holder.
        pub blocked: bool,
        pub pid: u32,
    }

    /// The holders and waiters of the file now at `path`.
    pub fn entries(path: &Path) -> Vec<Entry> {
        let ino = std::fs::metadata(path).expect("stat lock file").ino();
        entries_for_inode(ino)
    }

    /// The holders and waiters of inode `ino` (any device: tests use one).
    pub fn entries_for_inode(ino: u64) -> Vec<Entry> {
        snapshot().lines().filter_map(|line| parse(line, ino)).collect()
    }

    /// `/proc/locks` in one `read`: the kernel walks the lock list under its
    /// lock once per `read` call, so reading in pieces while locks come and
    /// go can repeat or skip entries.
    fn snapshot() -> String {
        use std::io::Read;
        let mut file = std::fs::File::open("/proc/locks").expect("open /proc/locks");
        let mut buffer = vec![0; 1 << 20];
        let len = file.read(&mut buffer).expect("read /proc/locks");
        assert!(len < buffer.len(), "/proc/locks did not fit one read");
        buffer.truncate(len);
        String::from_utf8(buffer).expect("/proc/locks is text")
    }

    /// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`, or with `->` after
    /// the number for a waiter.
    fn parse(line: &str, ino: u64) -> Option<Entry> {
        let mut fields = line.split_whitespace().skip(1).peekable();
        let blocked = fields.next_if_eq(&"->").is_some();
        let kind = fields.next()?;
        let pid = fields.nth(2)?.parse().ok()?;
        let file = fields.next()?;
        let file_ino: u64 = file.rsplit(':').next()?.parse().ok()?;
        (kind == "FLOCK" && file_ino == ino).then_some(Entry { blocked, pid })
    }

    /// How many waiters process `pid` has on the file at `path`.
    pub fn waiters_of(path: &Path, pid: u32) -> usize {
        entries(path).iter().filter(|e| e.blocked && e.pid == pid).count()
    }
}

/// A fresh tmpfs mounted on a temporary directory, for tests that need a
/// file system of their own (read-only, or with inode numbers of its own).
/// Mounting needs privileges: [`Tmpfs::mount`](tmpfs::Tmpfs::mount)
/// returns `None`, after printing a notice, where it is not permitted, and
/// the test skips.
#[cfg(target_os = "linux")]
pub mod tmpfs {
    use std::path::Path;
    use std::process::{Command, Stdio};

    /// Unmounted when dropped.
    pub struct Tmpfs {
        dir: tempfile::TempDir,
    }

    impl Tmpfs {
        pub fn mount(test: &str) -> Option<Self> {
            let dir = tempfile::tempdir().expect("temp dir");
            if mount(&["-t", "tmpfs", "-o", "size=1m", "packlock-test"], dir.path()) {
                Some(Self { dir })
            } else {
                println!("{test}: skipped, mounting a tmpfs is not permitted here");
                None
            }
        }

        pub fn path(&self) -> &Path {
            self.dir.path()
        }

        /// Makes the whole file system read-only.
        pub fn remount_read_only(&self) {
            assert!(mount(&["-o", "remount,ro"], self.path()), "remount read-only");
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.path()).stderr(Stdio::null()).status();
        }
    }

    fn mount(args: &[&str], dir: &Path) -> bool {
        let status = Command::new("mount").args(args).arg(dir).stderr(Stdio::null()).status();
        status.is_ok_and(|s| s.success())
    }
}

/// A critical section that detects overlap and lost updates through files
/// in `dir`, so that it works across processes: entering creates a marker
/// with `create_new` (failing if another holder is inside) and reads a
/// counter; leaving writes the counter back incremented and removes the
/// marker. Callers yield or await between the two to widen the window.
pub mod section {
    use std::fs::{self, OpenOptions};
    use std::io::ErrorKind;
    use std::path::Path;

    pub fn enter(dir: &Path) -> u64 {
        match OpenOptions::new().write(true).create_new(true).open(dir.join("occupied")) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                panic!("two holders inside the critical section at once")
            }
            Err(e) => panic!("cannot create occupancy marker: {e}"),
        }
        count(dir)
    }

    pub fn leave(dir: &Path, seen: u64) {
        fs::write(dir.join("counter"), (seen + 1).to_string()).expect("write counter");
        fs::remove_file(dir.join("occupied")).expect("remove occupancy marker");
    }

    pub fn count(dir: &Path) -> u64 {
        match fs::read_to_string(dir.join("counter")) {
            Ok(text) => text.trim().parse().expect("counter holds a number"),
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => panic!("cannot read counter: {e}"),
        }
    }
}

/// Replaces the lock file at `path` by renaming a new, empty file over it,
/// as a tool that rewrites files atomically would: every `PackLock` opened
/// before now has the old file, which is no longer at the path.
pub fn rename_new_file_over(path: &Path) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, b"").expect("create replacement");
    std::fs::rename(&fresh, path).expect("rename over the lock file");
}

/// Whether deleting an open file, or renaming another file over it, takes
/// its name away at once, as on Unix and on Windows 10 and later (POSIX
/// semantics). Wine keeps a deleted open file at its path until the last
/// handle closes and refuses to rename over an open file
/// (`.ci/wine/deviations/replace-open-file.c`): there a held lock file
/// cannot be replaced at all, so tests of what replacing does have nothing
/// to test.
pub fn open_files_can_be_replaced() -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let deleted = dir.path().join("deleted");
    std::fs::write(&deleted, b"").expect("create probe");
    let _open = std::fs::File::open(&deleted).expect("open probe");
    let name_went = std::fs::remove_file(&deleted).is_ok() && !deleted.exists();

    let replaced = dir.path().join("replaced");
    std::fs::write(&replaced, b"").expect("create probe");
    let _open = std::fs::File::open(&replaced).expect("open probe");
    let fresh = dir.path().join("fresh");
    std::fs::write(&fresh, b"").expect("create replacement");
    name_went && std::fs::rename(&fresh, &replaced).is_ok()
}
