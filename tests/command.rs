//! The `packlock` command (`src/bin/packlock/`, `cli` feature), run as a
//! process: exit codes, waiting, shared holds, `--status`, and that the
//! command it runs inherits no lock.

// Unix only: the tests build the example with cargo and use sh, kill and
// signal exit codes, none of which a test under Wine can run.
#![cfg(unix)]

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{DEADLINE, assert_free, open, temp_dir};
use packlock::{PackLock, PackLockHold};

const LABEL: &str = "test holder";

/// The `packlock` binary cargo built for these tests (`cli` feature).
fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_packlock"))
}

/// What a finished `packlock` run did.
#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// A `packlock` process still running; killed if dropped unfinished.
struct Running {
    child: Option<Child>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

fn spawn(args: &[&str]) -> Running {
    let started = Instant::now();
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run packlock");
    let stdout = read_all(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    Running { child: Some(child), stdout: Some(stdout), stderr: Some(stderr), started }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).expect("read packlock output");
        text
    })
}

impl Running {
    fn id(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits (at most [`DEADLINE`]) for the process to exit.
    fn finish(mut self) -> Outcome {
        let mut child = self.child.take().expect("running");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for packlock") {
                break status;
            }
            if self.started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("packlock did not exit within {DEADLINE:?}");
            }
            thread::sleep(Duration::from_millis(2));
        };
        let took = self.started.elapsed();
        let join = |handle: Option<JoinHandle<String>>| {
            handle.expect("reader").join().expect("output reader panicked")
        };
        let (stdout, stderr) = (join(self.stdout.take()), join(self.stderr.take()));
        let code = status.code().unwrap_or_else(|| panic!("packlock died: {status}; {stderr}"));
        Outcome { code, stdout, stderr, took }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn packlock(args: &[&str]) -> Outcome {
    spawn(args).finish()
}

fn text(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Holds the lock of `dir` in this process, labelled [`LABEL`].
fn hold(dir: &Path) -> (PackLock, PackLockHold) {
    let lock = PackLock::builder(dir).label(LABEL).open().expect("open");
    let hold = lock.acquire().expect("acquire");
    (lock, hold)
}

/// `packlock` holds a conflicting lock: it gave up and named this process.
fn assert_conflict_names_us(outcome: &Outcome, code: i32) {
    assert_eq!(outcome.code, code, "{outcome:?}");
    let me = format!("pid {} (\"{LABEL}\"", std::process::id());
    assert!(outcome.stderr.contains(&me), "stderr does not name the holder: {outcome:?}");
}

#[test]
fn the_commands_exit_code_is_passed_on() {
    let dir = temp_dir();
    let dir = text(dir.path());
    assert_eq!(packlock(&[dir, "--", "true"]).code, 0);
    assert_eq!(packlock(&["--nonblock", dir, "--", "true"]).code, 0);
    assert_eq!(packlock(&["--timeout", "0", dir, "--", "true"]).code, 0);
    assert_eq!(packlock(&[dir, "--", "sh", "-c", "exit 7"]).code, 7);
    // Without `--`, as with flock(1); the command's options stay its own.
    let flock_style = packlock(&[dir, "sh", "-c", "exit 5", "--verbose"]);
    assert_eq!((flock_style.code, flock_style.stderr.as_str()), (5, ""), "{flock_style:?}");
    // Killed by a signal: 128 + N, as shells report it.
    assert_eq!(packlock(&[dir, "--", "sh", "-c", "kill -TERM $$"]).code, 128 + 15);
    assert_eq!(packlock(&[dir, "--", "sh", "-c", "kill -KILL $$"]).code, 128 + 9);
    assert_free(&open(Path::new(dir)), "the lock is still held after packlock exited");
}

#[test]
fn a_command_that_cannot_run_exits_127_or_126_and_releases() {
    let dir = temp_dir();
    let not_found = packlock(&[text(dir.path()), "--", "packlock-test-no-such-command"]);
    assert_eq!(not_found.code, 127, "{not_found:?}");
    assert!(not_found.stderr.contains("packlock-test-no-such-command"), "{not_found:?}");
    let cannot_run = packlock(&[text(dir.path()), "--", text(dir.path())]); // a directory
    assert_eq!(cannot_run.code, 126, "{cannot_run:?}");
    assert_free(&open(dir.path()), "the lock is still held after packlock exited");
}

#[test]
#[cfg(target_os = "linux")]
fn the_command_runs_while_the_lock_is_held() {
    let dir = temp_dir();
    let file = dir.path().join(packlock::PACK_LOCK_FILE_NAME);
    let probe = "for mode in -x -s; do \
                 if flock -n $mode \"$1\" true; then echo free; else echo held; fi; done";
    let exclusive = packlock(&[text(dir.path()), "--", "sh", "-c", probe, "sh", text(&file)]);
    assert_eq!((exclusive.code, exclusive.stdout.as_str()), (0, "held\nheld\n"), "{exclusive:?}");
    let shared =
        packlock(&["--shared", text(dir.path()), "--", "sh", "-c", probe, "sh", text(&file)]);
    assert_eq!((shared.code, shared.stdout.as_str()), (0, "held\nfree\n"), "{shared:?}");
    assert_free(&open(dir.path()), "the lock is still held after packlock exited");
}

#[test]
fn nonblock_gives_up_at_once_naming_the_holder() {
    let dir = temp_dir();
    let marker = dir.path().join("ran");
    let (_lock, _hold) = hold(dir.path());
    let args = |extra: &'static [&'static str]| {
        let mut args = vec!["--nonblock"];
        args.extend(extra);
        args.extend([text(dir.path()), "--", "touch", text(&marker)]);
        packlock(&args)
    };
    assert_conflict_names_us(&args(&[]), 1);
    assert_conflict_names_us(&args(&["--conflict-exit-code", "42"]), 42);
    assert_conflict_names_us(&args(&["-E", "0"]), 0);
    assert!(!marker.exists(), "the command ran without the lock");
}

#[test]
#[cfg(target_os = "linux")]
fn nonblock_names_a_flock_holder() {
    let dir = temp_dir();
    let file = dir.path().join(packlock::PACK_LOCK_FILE_NAME);
    fs::write(&file, "").expect("create lock file");
    let flock = common::flock::Holder::start(&file, "-x");

    let outcome = packlock(&["-n", text(dir.path()), "--", "true"]);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    let holder = format!("held by pid {}", flock.pid());
    assert!(outcome.stderr.contains(&holder), "stderr does not name flock: {outcome:?}");

    flock.stop();
    assert_free(&open(dir.path()), "the lock is still held after packlock exited");
}

#[test]
fn timeout_gives_up_after_the_time_allowed() {
    let dir = temp_dir();
    let marker = dir.path().join("ran");
    let (_lock, _hold) = hold(dir.path());
    let outcome =
        packlock(&["--timeout", "0.3", "-E", "9", text(dir.path()), "--", "touch", text(&marker)]);
    assert_conflict_names_us(&outcome, 9);
    assert!(outcome.stderr.contains("timed out"), "{outcome:?}");
    assert!(outcome.took >= Duration::from_millis(300), "gave up after {:?}", outcome.took);
    assert!(!marker.exists(), "the command ran without the lock");

    let default_code = packlock(&["-w", ".05", text(dir.path()), "--", "touch", text(&marker)]);
    assert_conflict_names_us(&default_code, 1);
    // `-w 0` is `--nonblock`.
    assert_conflict_names_us(&packlock(&["-w", "0", text(dir.path()), "--", "true"]), 1);
}

/// Starts `packlock ARGS DIR -- sh -c 'echo ran'` while this process holds
/// the lock, waits until it waits for the lock in the kernel, lets go, and
/// checks it then ran.
#[cfg(target_os = "linux")]
fn waits_then_runs(options: &[&str]) -> Outcome {
    let dir = temp_dir();
    let (lock, hold) = hold(dir.path());
    let mut args = options.to_vec();
    args.extend([text(dir.path()), "--", "sh", "-c", "echo ran"]);
    let waiter = spawn(&args);
    common::wait_until("packlock waits in the kernel", || {
        common::proc_locks::waiters_of(lock.path(), waiter.id()) == 1
    });
    drop(hold);
    let outcome = waiter.finish();
    assert_eq!((outcome.code, outcome.stdout.as_str()), (0, "ran\n"), "{outcome:?}");
    assert_free(&open(dir.path()), "the lock is still held after packlock exited");
    outcome
}

#[test]
#[cfg(target_os = "linux")]
fn a_waiting_packlock_runs_once_the_holder_lets_go() {
    waits_then_runs(&["--timeout", "30"]);
    waits_then_runs(&[]);
    // Timeouts too long for the clock wait without limit.
    waits_then_runs(&["--timeout", "1e19"]);
    waits_then_runs(&["-w", "1e300"]);
    let verbose = waits_then_runs(&["--verbose", "-w", "30"]);
    let held_by = format!(".pack-lock, held by pid {} (\"{LABEL}\"", std::process::id());
    assert!(verbose.stderr.contains("packlock: waiting for "), "{verbose:?}");
    assert!(verbose.stderr.contains(&held_by), "{verbose:?}");
    assert!(verbose.stderr.contains("(exclusive) after"), "{verbose:?}");
    assert!(verbose.stderr.contains("let go of"), "{verbose:?}");
    let closed = waits_then_runs(&["--verbose", "--close"]);
    assert!(closed.stderr.contains("released"), "{closed:?}");
}

#[test]
fn shared_holds_overlap_and_exclude_an_exclusive_one() {
    let dir = temp_dir();
    let (started, go) = (dir.path().join("started"), dir.path().join("go"));
    // Holds a shared lock until `go` exists (giving up after ~30 s).
    let wait_for_go = "touch \"$1\"; i=0; while [ ! -e \"$2\" ]; do \
                       i=$((i + 1)); if [ $i -gt 3000 ]; then exit 3; fi; sleep 0.01; done";
    let first = spawn(&[
        "--shared",
        text(dir.path()),
        "--",
        "sh",
        "-c",
        wait_for_go,
        "sh",
        text(&started),
        text(&go),
    ]);
    common::wait_until("the first shared command runs", || started.exists());

    let exclusive = packlock(&["--nonblock", text(dir.path()), "--", "true"]);
    assert_eq!(exclusive.code, 1, "an exclusive lock was had during a shared hold: {exclusive:?}");
    // Shared holds record no label (see "Who holds it?"); the pid is known.
    let holder = format!("held by pid {}", first.id());
    assert!(exclusive.stderr.contains(&holder), "{exclusive:?}");

    let second = packlock(&["--shared", "--nonblock", text(dir.path()), "--", "touch", text(&go)]);
    assert_eq!(second.code, 0, "a second shared hold had to wait: {second:?}");
    let first = first.finish();
    assert_eq!(first.code, 0, "{first:?}");
    assert_free(&open(dir.path()), "the lock is still held after packlock exited");
}

#[test]
fn status_tells_a_free_lock_from_a_held_one() {
    let root = temp_dir();
    let missing = root.path().join("not-yet");
    let outcome = packlock(&["--status", text(&missing)]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(outcome.stdout.starts_with("free"), "{outcome:?}");
    assert!(!missing.exists(), "--status created the directory");

    let dir = root.path().join("pack");
    let lock = PackLock::builder(&dir).label(LABEL).open().expect("open");
    let outcome = packlock(&["--status", text(&dir)]);
    assert_eq!((outcome.code, outcome.stdout.starts_with("free")), (0, true), "{outcome:?}");
    drop(lock.try_acquire().expect("--status left the lock held"));

    let held = lock.acquire().expect("acquire");
    for _ in 0..2 {
        // Twice: checking does not overwrite the holder's label.
        let outcome = packlock(&["--status", text(&dir)]);
        assert_eq!(outcome.code, 1, "{outcome:?}");
        assert!(outcome.stdout.starts_with("held"), "{outcome:?}");
        let line = format!("pid {}, exclusive, label \"{LABEL}\", for ", std::process::id());
        assert!(outcome.stdout.contains(&line), "{outcome:?}");
    }
    held.release().expect("release");

    let named = packlock(&["--status", "--file", ".other-lock", text(&dir)]);
    assert_eq!(named.code, 0, "{named:?}");
    assert!(named.stdout.contains(".other-lock"), "{named:?}");
}

#[test]
fn help_shows_examples_and_version_names_the_release() {
    let help = packlock(&["--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    assert!(help.stdout.contains("Examples:") && help.stdout.contains("--status"), "{help:?}");
    let version = packlock(&["--version"]);
    let expected = format!("packlock {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!((version.code, version.stdout.as_str()), (0, expected.as_str()), "{version:?}");
}

#[test]
fn usage_errors_exit_2_without_running_anything() {
    let dir = temp_dir();
    let marker = dir.path().join("ran");
    let (d, m) = (text(dir.path()), text(&marker));
    let cases: &[&[&str]] = &[
        &[],
        &[d],
        &[d, "--"],
        &["--timeout", "abc", d, "--", "touch", m],
        &["--timeout", "-1", d, "--", "touch", m],
        &["--timeout", "inf", d, "--", "touch", m],
        &["--timeout", "nan", d, "--", "touch", m],
        &["--timeout", "-0.5", d, "--", "touch", m],
        &["--timeout", "-1e30", d, "--", "touch", m],
        &["--timeout", "10s", d, "--", "touch", m],
        &["--timeout", "", d, "--", "touch", m],
        &["--conflict-exit-code", "256", d, "--", "touch", m],
        &["--conflict-exit-code", "-1", d, "--", "touch", m],
        &["--conflict-exit-code", "x", d, "--", "touch", m],
        &["--nonblock", "--timeout", "1", d, "--", "touch", m],
        &["--status", d, "--", "touch", m],
        &["--status", "--shared", d],
        &["--no-such-option", d, "--", "touch", m],
    ];
    for args in cases {
        let outcome = packlock(args);
        assert_eq!(outcome.code, 2, "{args:?}: {outcome:?}");
        assert!(!outcome.stderr.is_empty(), "{args:?}: no message");
        if args.first() == Some(&"--timeout") {
            let value = format!("`{}`", args[1]);
            assert!(outcome.stderr.contains(&value), "{args:?}: {}", outcome.stderr);
        }
    }
    assert!(!marker.exists(), "a command ran despite a usage error");
}

#[test]
fn packlock_failures_exit_1_naming_the_path() {
    let dir = temp_dir();
    let marker = dir.path().join("ran");
    let bad_name =
        packlock(&["--file", "../escape", text(dir.path()), "--", "touch", text(&marker)]);
    assert_eq!(bad_name.code, 1, "{bad_name:?}");
    assert!(bad_name.stderr.contains("../escape"), "{bad_name:?}");

    let file = dir.path().join("a-file");
    fs::write(&file, "").expect("create file");
    let under_a_file = file.join("pack");
    let io = packlock(&[text(&under_a_file), "--", "touch", text(&marker)]);
    assert_eq!(io.code, 1, "{io:?}");
    assert!(io.stderr.contains(text(&under_a_file)), "{io:?}");
    assert!(!marker.exists(), "the command ran without the lock");
}

#[test]
fn a_label_never_overwrites_a_lock_file_holding_other_data() {
    let dir = temp_dir();
    let data = dir.path().join("data.txt");
    fs::write(&data, "precious\n").expect("write data");
    let quiet = packlock(&["--file", "data.txt", text(dir.path()), "--", "true"]);
    assert_eq!((quiet.code, quiet.stderr.as_str()), (0, ""), "{quiet:?}");
    let labelled = packlock(&["--file", "data.txt", "--label", "x", text(dir.path()), "true"]);
    assert_eq!(labelled.code, 0, "{labelled:?}");
    assert_eq!(fs::read_to_string(&data).expect("read data"), "precious\n");

    // A lock file of its own does get the record (--status shows it): the
    // directory's sidecar by default, a --file when labelled.
    let own = packlock(&[text(dir.path()), "--", "true"]);
    assert_eq!(own.code, 0, "{own:?}");
    let sidecar = dir.path().join(packlock::PACK_LOCK_FILE_NAME);
    let record = fs::read_to_string(sidecar).expect("read lock file");
    assert!(record.contains("label packlock true"), "{record:?}");
    let named = packlock(&["--file", "own.lock", "--label", "mine", text(dir.path()), "true"]);
    assert_eq!(named.code, 0, "{named:?}");
    let record = fs::read_to_string(dir.path().join("own.lock")).expect("read lock file");
    assert!(record.contains("label mine"), "{record:?}");
}

/// `--fencing` hands the command a fence that grows with every holder,
/// shared ones included; without it there is none; and the counter lives in
/// a file of its own, so a lock file holding data works and stays as it is.
#[test]
fn fencing_gives_the_command_a_growing_fence_and_never_writes_the_lock_file() {
    let dir = temp_dir();
    let fence_of = |options: &[&str]| -> u64 {
        let mut args = options.to_vec();
        args.extend([text(dir.path()), "--", "sh", "-c", "echo \"${PACKLOCK_FENCE-none}\""]);
        let run = packlock(&args);
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout.trim().parse().unwrap_or_else(|_| panic!("no fence: {run:?}"))
    };
    let fences = [
        fence_of(&["--fencing"]),
        fence_of(&["--fencing", "--label", "a much longer label than before"]),
        fence_of(&["--fencing", "--shared"]),
        fence_of(&["--fencing"]),
    ];
    assert!(fences.windows(2).all(|pair| pair[0] < pair[1]), "{fences:?}");
    // Deleting the lock file, and its fence file too, restarts nothing.
    let sidecar = dir.path().join(packlock::PACK_LOCK_FILE_NAME);
    fs::remove_file(&sidecar).expect("delete the lock file");
    let after_delete = fence_of(&["--fencing"]);
    assert!(after_delete > fences[3], "{after_delete} after {fences:?}");
    fs::remove_file(&sidecar).expect("delete the lock file");
    fs::remove_file(dir.path().join(".pack-lock.fence")).expect("delete the fence file");
    let after_both = fence_of(&["--fencing"]);
    assert!(after_both > after_delete, "{after_both} after {after_delete}");
    let none = packlock(&[text(dir.path()), "--", "sh", "-c", "echo \"${PACKLOCK_FENCE-none}\""]);
    assert_eq!(none.stdout, "none\n", "{none:?}");

    let data = dir.path().join("data.txt");
    fs::write(&data, "precious\n").expect("write data");
    let show = "echo \"$PACKLOCK_FENCE\"";
    let run = packlock(&["--fencing", "--file", "data.txt", text(dir.path()), "sh", "-c", show]);
    assert_eq!(run.code, 0, "{run:?}");
    let fence: u64 = run.stdout.trim().parse().expect("a fence");
    assert!(fence > after_both, "{fence} after {after_both}");
    assert_eq!(fs::read_to_string(&data).expect("read data"), "precious\n");
    assert!(dir.path().join("data.txt.fence").is_file(), "the counter's own file");
}

/// The lock file is the log the command appends to: the default label's
/// record goes into the empty file once, and nothing the command wrote is
/// ever overwritten after that.
#[test]
fn a_log_appended_to_under_its_own_lock_keeps_every_line() {
    let dir = temp_dir();
    let log = dir.path().join("log.txt");
    for line in ["first", "second"] {
        let append = format!("echo {line} >> {}", text(&log));
        let run = packlock(&["--file", "log.txt", text(dir.path()), "--", "sh", "-c", &append]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let content = fs::read_to_string(&log).expect("read log");
    assert!(content.ends_with("first\nsecond\n"), "{content:?}");
}

/// A lock file that is a FIFO, a directory or a device is refused (exit
/// 1, naming it) without hanging, and the command does not run.
#[test]
fn special_lock_files_are_refused_naming_them() {
    let dir = temp_dir();
    let marker = dir.path().join("ran");
    let made = Command::new("mkfifo").arg(dir.path().join("fifo")).status().expect("mkfifo");
    assert!(made.success());
    fs::create_dir(dir.path().join("subdir")).expect("mkdir");
    for (name, kind) in [("fifo", "FIFO"), ("subdir", "directory")] {
        let run = packlock(&["--file", name, text(dir.path()), "--", "touch", text(&marker)]);
        assert_eq!(run.code, 1, "{run:?}");
        let path = dir.path().join(name);
        assert!(run.stderr.contains(text(&path)) && run.stderr.contains(kind), "{run:?}");
        let status = packlock(&["--status", "--file", name, text(dir.path())]);
        assert_eq!(status.code, 1, "{status:?}");
        assert!(status.stderr.contains(kind), "{status:?}");
    }
    let device = packlock(&["--file", "null", "/dev", "--", "touch", text(&marker)]);
    assert_eq!(device.code, 1, "{device:?}");
    assert!(device.stderr.contains("/dev/null"), "{device:?}");
    assert!(!marker.exists(), "the command ran without the lock");
}

/// Kills a process when dropped, so no test leaves one behind.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.0).stderr(Stdio::null()).status();
    }
}

/// Runs `sh -c SCRIPT sh PID_FILE` under packlock with `options`: the
/// background process the script started (killed when dropped), and
/// packlock's outcome.
fn with_background_process(dir: &Path, options: &[&str]) -> (KillOnDrop, Outcome) {
    let pid_file = dir.join("sleep.pid");
    let script = "sleep 30 </dev/null >/dev/null 2>&1 & echo $! > \"$1\"";
    let mut args = options.to_vec();
    args.extend([text(dir), "--", "sh", "-c", script, "sh", text(&pid_file)]);
    let outcome = packlock(&args);
    let pid = fs::read_to_string(&pid_file).expect("read pid file").trim().to_string();
    let sleep = KillOnDrop(pid.clone());
    let alive = Command::new("kill").args(["-0", &pid]).status().expect("run kill -0");
    assert!(alive.success(), "the background sleep is gone: the test proves nothing");
    (sleep, outcome)
}

#[test]
fn a_background_process_of_the_command_keeps_the_lock_unless_close() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let (sleep, outcome) = with_background_process(dir.path(), &[]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(lock.try_acquire().is_err(), "the lock ended while the command's process ran");
    drop(sleep);
    common::wait_until("the killed sleep lets go", || lock.try_acquire().is_ok());

    let (_sleep, outcome) = with_background_process(dir.path(), &["--close"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_free(&lock, "--close: the lock is still held after packlock exited");
}

/// Killing packlock, however, never frees the lock while the command it
/// guards runs: the command holds it too.
#[test]
fn killing_packlock_leaves_the_lock_with_the_running_command() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let pid_file = dir.path().join("command.pid");
    let script = "echo $$ > \"$1\"; exec sleep 30";
    for signal in ["TERM", "HUP", "INT", "KILL"] {
        let _ = fs::remove_file(&pid_file);
        let mut running = Command::new(binary())
            .args([text(dir.path()), "--", "sh", "-c", script, "sh", text(&pid_file)])
            .spawn()
            .expect("run packlock");
        common::wait_until("the command started", || {
            fs::read_to_string(&pid_file).is_ok_and(|pid| pid.ends_with('\n'))
        });
        let command = KillOnDrop(fs::read_to_string(&pid_file).expect("pid").trim().to_string());
        let killed = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(running.id().to_string())
            .status()
            .expect("run kill");
        assert!(killed.success(), "kill -{signal}");
        let status = running.wait().expect("wait for packlock");
        assert!(!status.success(), "{signal}: packlock was not killed: {status}");
        assert!(lock.try_acquire().is_err(), "{signal}: the lock ended while the command ran");
        drop(command);
        common::wait_until("the killed command lets go", || lock.try_acquire().is_ok());
    }
}

/// A parent that ignores SIGCHLD (and so would have the kernel reap our
/// child) does not hide the command's exit status.
#[test]
fn an_inherited_ignored_sigchld_does_not_hide_the_exit_status() {
    let dir = temp_dir();
    let line = format!(
        "trap '' CHLD; exec '{}' '{}' -- sh -c 'exit 3'",
        binary().display(),
        text(dir.path())
    );
    let status = Command::new("sh").args(["-c", &line]).status().expect("run sh");
    assert_eq!(status.code(), Some(3));
}

/// `--file` opens the lock file as flock(1) does when nothing is to be
/// written into it: read-only, so a running program's own file can be
/// locked, and left untouched.
#[test]
#[cfg(target_os = "linux")]
fn a_file_lock_without_a_label_opens_read_only() {
    let dir = temp_dir();
    let nap = common::RunningProgram::start(dir.path());
    let program = nap.path.clone();
    let before = fs::read(&program).expect("read program");
    let show_flags = "for fd in /proc/$$/fd/*; do [ \"$(readlink $fd)\" = \"$1\" ] && \
                      grep flags /proc/$$/fdinfo/${fd##*/}; done; true";
    let outcome = packlock(&[
        "-n",
        "--file",
        "nap",
        text(dir.path()),
        "--",
        "sh",
        "-c",
        show_flags,
        "sh",
        text(&program),
    ]);
    drop(nap);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let flags = outcome.stdout.strip_prefix("flags:\t").map(str::trim_end);
    let flags = flags.and_then(|octal| i32::from_str_radix(octal, 8).ok());
    let flags = flags.unwrap_or_else(|| panic!("no flags: {outcome:?}"));
    assert_eq!(flags & libc::O_ACCMODE, libc::O_RDONLY, "not opened read-only: {flags:o}");
    assert_eq!(fs::read(&program).expect("read program"), before, "the program was written");
}

/// The command gets the lock file's descriptor, in exclusive and shared
/// mode, and with `--close` it does not; a server lock is never passed on.
#[test]
#[cfg(target_os = "linux")]
fn the_command_inherits_the_lock_descriptor_unless_close() {
    let dir = temp_dir();
    let list_fds = "for fd in /proc/$$/fd/*; do readlink \"$fd\" || true; done";
    let lock_file = dir.path().join(packlock::PACK_LOCK_FILE_NAME);
    for (options, inherits) in
        [(&[][..], true), (&["--shared"][..], true), (&["--close"], false), (&["-s", "-o"], false)]
    {
        let mut args = options.to_vec();
        args.extend([text(dir.path()), "--", "sh", "-c", list_fds]);
        let outcome = packlock(&args);
        assert_eq!(outcome.code, 0, "{outcome:?}");
        assert!(outcome.stdout.lines().count() >= 3, "no fds listed: {outcome:?}");
        let canonical = fs::canonicalize(&lock_file).expect("canonical lock file path");
        assert_eq!(leaks(&outcome.stdout, &canonical), inherits, "{options:?}: {outcome:?}");
    }
}

/// Whether a list of descriptor targets names `lock_file`.
#[cfg(target_os = "linux")]
fn leaks(fd_targets: &str, lock_file: &Path) -> bool {
    fd_targets.lines().any(|target| Path::new(target) == lock_file)
}
