//! packlock run under the name `flock`: util-linux flock(1)'s command line
//! and behaviour, checked side by side with util-linux `flock` itself —
//! exit codes, output, files created, timing, and both excluding each
//! other on the same file or directory.
//!
//! Linux only: the reference is util-linux `flock(1)` (installed by CI),
//! and waiting in the kernel is seen in `/proc/locks`.

#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::DEADLINE;

/// A directory holding `flock`, a link to the packlock binary; first on
/// `PATH` for scripts.
struct FlockLink {
    dir: tempfile::TempDir,
}

impl FlockLink {
    fn new() -> Self {
        let dir = common::temp_dir();
        let binary = env!("CARGO_BIN_EXE_packlock");
        std::os::unix::fs::symlink(binary, dir.path().join("flock")).expect("link flock");
        FlockLink { dir }
    }

    fn flock(&self) -> PathBuf {
        self.dir.path().join("flock")
    }

    /// `PATH` with this directory first.
    fn path_env(&self) -> std::ffi::OsString {
        let old = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.dir.path().to_path_buf()];
        paths.extend(std::env::split_paths(&old));
        std::env::join_paths(paths).expect("join PATH")
    }
}

/// util-linux flock(1), as found on `PATH`.
const UTIL_LINUX: &str = "flock";

/// What a finished run did.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `command` in `cwd` (at most [`DEADLINE`]); its outcome and how long
/// it took.
fn run_in(mut command: Command, cwd: &Path) -> (Outcome, Duration) {
    let (out, err) = (cwd.join("..stdout"), cwd.join("..stderr"));
    let started = Instant::now();
    let mut child = command
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("create stdout file"))
        .stderr(fs::File::create(&err).expect("create stderr file"))
        .spawn()
        .expect("run flock");
    let status = finish(&mut child, started);
    let took = started.elapsed();
    let read = |path: &Path| {
        let text = fs::read_to_string(path).expect("read output");
        fs::remove_file(path).expect("remove output");
        text
    };
    let code = status.code().expect("flock exited normally");
    (Outcome { code, stdout: read(&out), stderr: read(&err) }, took)
}

/// Waits for `child`, killing it and failing after [`DEADLINE`].
fn finish(child: &mut Child, started: Instant) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("wait for flock") {
            return status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("flock did not exit within {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(2));
    }
}

fn flock_in(program: &Path, args: &[&str], cwd: &Path) -> (Outcome, Duration) {
    let mut command = Command::new(program);
    command.args(args);
    run_in(command, cwd)
}

/// The verbose "getting lock took 0.000004 seconds" differs run to run.
fn without_timings(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("flock: getting lock took ") {
            Some(_) => "flock: getting lock took N seconds",
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names in `dir`, sorted, and each file's content.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let entry = entry.expect("dir entry");
            let content = fs::read_to_string(entry.path()).unwrap_or_else(|_| "<dir>".into());
            (entry.file_name().to_string_lossy().into_owned(), content)
        })
        .collect();
    files.sort();
    files
}

/// Runs `args` with util-linux flock and with packlock as flock, each in a
/// fresh directory holding a subdirectory `d`; asserts the same exit code,
/// the same stdout and the same files afterwards. Returns packlock's run.
fn same_as_util_linux(link: &FlockLink, args: &[&str]) -> Outcome {
    let runs = [Path::new(UTIL_LINUX).to_path_buf(), link.flock()].map(|program| {
        let cwd = common::temp_dir();
        fs::create_dir(cwd.path().join("d")).expect("mkdir d");
        let (outcome, _) = flock_in(&program, args, cwd.path());
        (outcome, files(cwd.path()))
    });
    let [(theirs, their_files), (ours, our_files)] = runs;
    assert_eq!(ours.code, theirs.code, "{args:?}: util-linux {theirs:?}, packlock {ours:?}");
    assert_eq!(without_timings(&ours.stdout), without_timings(&theirs.stdout), "{args:?}");
    assert_eq!(our_files, their_files, "{args:?}: different files left behind");
    // Both say something exactly when something went wrong.
    assert_eq!(ours.stderr.is_empty(), theirs.stderr.is_empty(), "{args:?}: {theirs:?} {ours:?}");
    ours
}

#[test]
fn every_option_and_usage_error_matches_util_linux() {
    let link = FlockLink::new();
    let cases: &[&[&str]] = &[
        // Running commands, with every option spelled every way.
        &["f", "true"],
        &["f", "sh", "-c", "echo out; exit 7"],
        &["f", "-c", "echo hi; exit 3"],
        &["f", "--command", "echo z"],
        &["f", "sh", "-c", "kill -TERM $$"],
        &["-s", "f", "true"],
        &["--shared", "f", "true"],
        &["-x", "f", "true"],
        &["-e", "f", "true"],
        &["--exclusive", "f", "true"],
        &["-s", "-x", "f", "true"],
        &["-n", "f", "true"],
        &["--nb", "f", "true"],
        &["--nonblock", "f", "true"],
        &["--nonb", "f", "true"],
        &["-w", "1", "f", "true"],
        &["-w1", "f", "true"],
        &["--wait", "0.5", "f", "true"],
        &["--timeout=0.1", "f", "true"],
        &["-w", "0", "f", "true"],
        &["-w", " 1", "f", "true"],
        &["-nw0.1", "f", "true"],
        &["-n", "-w", "1", "f", "true"],
        &["-E", "5", "f", "true"],
        &["-E", "+5", "f", "true"],
        &["--conflict-exit-code", "0", "f", "true"],
        &["-o", "f", "true"],
        &["--close", "f", "true"],
        &["-F", "f", "echo", "F"],
        &["--no-fork", "f", "true"],
        &["--verbose", "f", "true"],
        &["--verbose", "f", "-c", "exit 4"],
        &["--", "f", "echo", "dd"],
        &["-x", "--", "f", "true"],
        &["d", "true"],
        &["-s", "d", "true"],
        &["-n", "d", "-c", "true"],
        &["/dev/null", "true"],
        // Usage errors: 64.
        &[],
        &["f"],
        &["./f"],
        &["abc"],
        &["-n"],
        &["--bogus", "f", "true"],
        &["-q", "-h"],
        &["--n", "f", "true"],
        &["--shared=1", "f", "true"],
        &["-w"],
        &["--timeout"],
        &["-E"],
        &["-w", "abc", "f", "true"],
        &["-w", "", "f", "true"],
        &["-E", "300", "f", "true"],
        &["-E", "-1", "f", "true"],
        &["-E", "abc", "f", "true"],
        &["-E", "1000", "-h"],
        &["-c", "echo hi", "f"],
        &["-F", "-c", "echo x", "f"],
        &["f", "-c", "echo a", "extra"],
        &["f", "-c"],
        &["-F", "-o", "f", "true"],
        // A timeout no timer can be set for: 71 (on an existing directory:
        // util-linux creates a missing file before it finds out).
        &["-w", "-1", "d", "true"],
        &["-w", "inf", "d", "true"],
        &["-w", "nan", "d", "true"],
        &["-w", "1e400", "d", "true"],
        // The lock file cannot be opened: 66.
        &["missing/x", "true"],
        // The command cannot be run: 69.
        &["f", "no-such-command-anywhere"],
        &["f", ""],
        &["f", "--", "echo", "dd"],
    ];
    for args in cases {
        same_as_util_linux(&link, args);
    }
}

/// Help and version answer at once, like flock(1)'s, in their own words.
#[test]
fn help_and_version_answer_like_util_linux() {
    let link = FlockLink::new();
    let dir = common::temp_dir();
    for args in [&["-h"][..], &["--help"], &["-x", "--he", "f", "true"]] {
        let (ours, _) = flock_in(&link.flock(), args, dir.path());
        let (theirs, _) = flock_in(Path::new(UTIL_LINUX), args, dir.path());
        assert_eq!((ours.code, theirs.code), (0, 0), "{args:?}: {ours:?}");
        assert!(ours.stdout.contains(" flock [options] <file descriptor number>"), "{ours:?}");
        assert!(ours.stdout.contains("Exit status:"), "{ours:?}");
    }
    let (version, _) = flock_in(&link.flock(), &["-V"], dir.path());
    let expected = format!("flock from packlock {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!((version.code, version.stdout.as_str()), (0, expected.as_str()));
    assert!(!dir.path().join("f").exists(), "--help locked a file");
}

#[test]
fn conflicts_exit_1_or_the_conflict_code_like_util_linux() {
    let link = FlockLink::new();
    let dir = common::temp_dir();
    let file = dir.path().join("f");
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let exclusive = common::flock::Holder::start(&file, "-x");
    for (args, code) in [
        (&["-n"][..], 1),
        (&["-n", "-E", "7"], 7),
        (&["--nonblock", "-s"], 1),
        (&["-w", "0"], 1),
        (&["-w", "0.05", "-E", "0"], 0),
        (&["-n", "--verbose"], 1),
    ] {
        let mut with_file = args.to_vec();
        with_file.extend([file.to_str().expect("UTF-8 path"), "-c", &touch]);
        let (theirs, _) = flock_in(Path::new(UTIL_LINUX), &with_file, dir.path());
        let (ours, _) = flock_in(&link.flock(), &with_file, dir.path());
        assert_eq!(ours, theirs, "{with_file:?}");
        assert_eq!(ours.code, code, "{with_file:?}: {ours:?}");
    }
    assert!(!marker.exists(), "a command ran without the lock");
    exclusive.stop();

    // A shared holder lets shared ones in and keeps exclusive ones out.
    let shared = common::flock::Holder::start(&file, "-s");
    let path = file.to_str().expect("UTF-8 path");
    for (args, code) in [(&["-n", "-s", path, "true"][..], 0), (&["-n", path, "true"], 1)] {
        let (theirs, _) = flock_in(Path::new(UTIL_LINUX), args, dir.path());
        let (ours, _) = flock_in(&link.flock(), args, dir.path());
        assert_eq!((ours.code, theirs.code), (code, code), "{args:?}: {theirs:?} {ours:?}");
    }
    shared.stop();
}

#[test]
fn a_timeout_gives_up_after_about_the_time_given_like_util_linux() {
    let link = FlockLink::new();
    let dir = common::temp_dir();
    let file = dir.path().join("f");
    let holder = common::flock::Holder::start(&file, "-x");
    let args = ["-w", "0.5", "-E", "9", file.to_str().expect("UTF-8 path"), "true"];
    for program in [Path::new(UTIL_LINUX), &link.flock()] {
        let (outcome, took) = flock_in(program, &args, dir.path());
        assert_eq!(outcome.code, 9, "{program:?}: {outcome:?}");
        let window = Duration::from_millis(450)..Duration::from_secs(5);
        assert!(window.contains(&took), "{program:?} gave up after {took:?}");
    }
    holder.stop();
}

/// `waiter` waits for `path` while `holder` holds it, and runs once it lets go.
fn waits_for(holder: common::flock::Holder, waiter: &Path, path: &Path) {
    let dir = common::temp_dir();
    let mut command = Command::new(waiter);
    command.args(["-w", "30"]).arg(path).args(["-c", "echo ran"]);
    let (out, started) = (dir.path().join("out"), Instant::now());
    let mut child = command
        .stdout(fs::File::create(&out).expect("create out"))
        .spawn()
        .expect("run the waiting flock");
    common::wait_until("the flock waits in the kernel", || {
        common::proc_locks::waiters_of(path, child.id()) == 1
    });
    assert_eq!(fs::read_to_string(&out).expect("read out"), "", "ran while the lock was held");
    holder.stop();
    assert!(finish(&mut child, started).success());
    assert_eq!(fs::read_to_string(&out).expect("read out"), "ran\n");
}

#[test]
fn util_linux_and_packlock_as_flock_exclude_each_other() {
    let link = FlockLink::new();
    let dir = common::temp_dir();
    let file = dir.path().join("f");
    let subdir = dir.path().join("d");
    fs::create_dir(&subdir).expect("mkdir");
    for path in [&file, &subdir] {
        let theirs = common::flock::Holder::start(path, "-x");
        waits_for(theirs, &link.flock(), path);
        let ours = common::flock::Holder::start_program(link.flock(), path, "-x");
        waits_for(ours, Path::new(UTIL_LINUX), path);
    }
}

/// A script written for flock(1) gets the same exit codes and files with
/// packlock's flock first on `PATH`.
#[test]
fn a_shell_script_using_flock_gets_the_same_results() {
    let script = r#"
        d=$1; L="$d/lock"; export L
        flock "$L" echo first > "$d/out"; echo "plain=$?"
        flock -n "$L" -c 'exit 3'; echo "exit3=$?"
        flock -s "$d" true; echo "dir=$?"
        flock -n "$L" -c 'flock -n "$L" true; echo "inner=$?"'
        flock -n -s "$L" -c 'flock -n -s "$L" true; echo "inner-shared=$?"'
        flock -x "$L" -c 'flock -w 0.1 -E 9 "$L" true; echo "inner-timeout=$?"'
        flock "$d/no-dir/x" true 2>/dev/null; echo "no-dir=$?"
        flock "$L" no-such-command-anywhere 2>/dev/null; echo "not-found=$?"
        flock --bogus 2>/dev/null; echo "usage=$?"
        flock -n "$L" -c 'echo appended >> "$L"'; echo "append=$?"
    "#;
    let link = FlockLink::new();
    let run = |path_env: Option<std::ffi::OsString>| {
        let dir = common::temp_dir();
        let mut command = Command::new("sh");
        command.args(["-c", script, "sh"]).arg(dir.path());
        if let Some(path_env) = path_env {
            command.env("PATH", path_env);
        }
        let (outcome, _) = run_in(command, dir.path());
        (outcome.code, outcome.stdout, files(dir.path()))
    };
    let theirs = run(None);
    let ours = run(Some(link.path_env()));
    assert_eq!(ours, theirs);
    let expected = "plain=0\nexit3=3\ndir=0\ninner=1\ninner-shared=0\ninner-timeout=9\n\
                    no-dir=66\nnot-found=69\nusage=64\nappend=0\n";
    assert_eq!(ours.1, expected);
}

/// `flock NUMBER` and `--unlock` would need the shell's own open file; all
/// this flock could do is reopen the file, a different lock. It refuses
/// with a clear message and exit 69 instead of pretending.
#[test]
fn flock_number_and_unlock_refuse_clearly() {
    let link = FlockLink::new();
    let dir = common::temp_dir();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let sh = |line: &str| {
        let mut command = Command::new("sh");
        command.args(["-c", line]).env("PATH", link.path_env());
        run_in(command, dir.path()).0
    };
    for line in ["exec 9>f; flock 9", "exec 9>f; flock -n -s 9", "exec 9>f; flock -u 9"] {
        let outcome = sh(line);
        assert_eq!(outcome.code, 69, "{line}: {outcome:?}");
        assert!(outcome.stderr.contains("file descriptor is not available"), "{outcome:?}");
    }
    let unlock = sh(&format!("flock -u f -c '{touch}'"));
    assert_eq!(unlock.code, 69, "{unlock:?}");
    assert!(unlock.stderr.contains("--unlock"), "{unlock:?}");
    assert!(!marker.exists(), "the command ran");
    // Not a number: a usage error, as in flock(1).
    assert_eq!(sh("flock 9x").code, 64);
}
