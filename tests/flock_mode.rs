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
    assert_eq!(ours.stderr, theirs.stderr, "{args:?}: the same messages");
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
        // Unlocking a file just opened: nothing to undo, the command runs.
        &["-u", "f", "echo", "unlocked"],
        &["-u", "-n", "f", "true"],
        // --verbose lines come after the command's output when stdout is
        // not a terminal (C's stdio buffer), and never with -F.
        &["--verbose", "f", "-c", "echo out"],
        &["--verbose", "-F", "f", "echo", "hi"],
        &["--verbose", "f", "no-such-command-anywhere"],
        // Timeouts as strtold reads them.
        &["-w", "0x1", "f", "true"],
        &["-w", "0X1P-1", "f", "true"],
        &["-w", ".5", "f", "true"],
        &["-w", "1e-7", "f", "true"],
        &["-w", "1e9", "f", "true"],
        // Descriptors that are not open: 65, named by number.
        &["7"],
        &["-s", "7"],
        &["-u", "7"],
        &["--", "-1"],
        &[" 9"],
        &["-n", "+9"],
        // Usage errors: 64.
        &[],
        &["9x"],
        &["0x9"],
        &["99999999999"],
        &["-w", "1e5000", "f", "true"],
        &["-w", "1e-5000", "f", "true"],
        &["-w", "0x", "f", "true"],
        &["-w", "1.5e", "f", "true"],
        &["-E", "0x5", "f", "true"],
        &["-E", "99999999999", "f", "true"],
        &["-E", " -1", "f", "true"],
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
        // A timeout no timer can be set for: 71, after the file is opened
        // (and created).
        &["-w", "-1", "f", "true"],
        &["-w", "-0.5", "f", "true"],
        &["-w", "inf", "f", "true"],
        &["-w", "nan", "d", "true"],
        &["-w", "1e30", "f", "true"],
        &["-w", "9.3e18", "f", "true"],
        &["-w", "1e400", "7"],
        // The lock file cannot be opened: 66, with C's words for why.
        &["missing/x", "true"],
        &["/dev/null/x", "true"],
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

/// util-linux flock(1)'s own path, for scripts to check who holds a lock
/// whichever `flock` comes first on their `PATH`.
fn util_linux_path() -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH");
    std::env::split_paths(&path)
        .map(|dir| dir.join(UTIL_LINUX))
        .find(|candidate| candidate.is_file())
        .expect("util-linux flock on PATH")
}

/// Runs the shell `script` in a fresh directory, with `flock` meaning
/// packlock's (`Some(link)`) or util-linux's (`None`), and `$REF` always
/// util-linux's; stderr is kept apart.
fn script_with(link: Option<&FlockLink>, script: &str) -> Outcome {
    let dir = common::temp_dir();
    let mut command = Command::new("sh");
    command.args(["-c", script]).env("REF", util_linux_path());
    if let Some(link) = link {
        command.env("PATH", link.path_env());
    }
    run_in(command, dir.path()).0
}

/// Each script runs with util-linux flock and with packlock's first on
/// `PATH`: both must print, say and exit the same, and `expected` is what
/// util-linux prints.
fn scripts_match_util_linux(cases: &[(&str, &str, &str)]) {
    let link = FlockLink::new();
    for &(what, script, expected) in cases {
        let theirs = script_with(None, script);
        assert_eq!(theirs.stdout, expected, "{what}: util-linux itself: {theirs:?}");
        let ours = script_with(Some(&link), script);
        assert_eq!(ours, theirs, "{what}: packlock's flock differs from util-linux");
    }
}

/// The cases where scripts live: the descriptor idiom, unlocking, the
/// man page's FLOCKER boilerplate, a running program's own file, open
/// flags, and an ignored SIGCHLD. Who holds the lock is asked of
/// util-linux (`$REF`) each time.
#[test]
fn descriptor_mode_and_script_idioms_match_util_linux() {
    scripts_match_util_linux(&[
        (
            "the man page's idiom",
            "( flock -n 9 || exit 1; echo job; $REF -n x true; echo other=$? ) 9>x; echo rc=$?",
            "job\nother=1\nrc=0\n",
        ),
        (
            "an unchecked exec 8>x; flock 8",
            "exec 8>x; flock 8; $REF -n x true; echo other=$?",
            "other=1\n",
        ),
        (
            "a shared lock on a descriptor, then unlocked",
            "exec 9<>x; flock -s 9; $REF -n -s x true; echo shared=$?; $REF -n x true; \
             echo exclusive=$?; flock -u 9; $REF -n x true; echo unlocked=$?",
            "shared=0\nexclusive=1\nunlocked=0\n",
        ),
        (
            "a timed wait on a descriptor, granted in time",
            "$REF x sh -c 'touch held; sleep 0.3' & until [ -e held ]; do sleep 0.01; done; \
             exec 9>x; flock -w 10 9; echo rc=$?; $REF -n x true; echo other=$?",
            "rc=0\nother=1\n",
        ),
        (
            "a descriptor that is not open",
            "flock 7 2>&1; echo rc=$?; flock -n -s 5 2>&1; echo rc=$?",
            "flock: 7: Bad file descriptor\nrc=65\nflock: 5: Bad file descriptor\nrc=65\n",
        ),
        ("-u FILE COMMAND", "flock -u x echo ran; echo rc=$?", "ran\nrc=0\n"),
        (
            "the FLOCKER boilerplate",
            r#"printf '%s\n' '#!/bin/sh' \
                '[ "${FLOCKER}" != "$0" ] && exec env FLOCKER="$0" flock -en "$0" "$0" "$@" || :' \
                'echo "ran $1"; $REF -n "$0" true; echo "other=$?"' > job.sh
             chmod +x job.sh; ./job.sh once; echo rc=$?"#,
            "ran once\nother=1\nrc=0\n",
        ),
        (
            "a running program's own file",
            r#"cp "$(command -v sleep)" ./nap; ./nap 30 & P=$!
             until [ "$(readlink /proc/$P/exe)" = "$PWD/nap" ]; do sleep 0.01; done
             flock -n ./nap echo locked; echo rc=$?; kill $P"#,
            "locked\nrc=0\n",
        ),
        (
            "open flags, as the command sees the inherited descriptor",
            r#"show='for fd in /proc/$$/fd/*; do
                     [ "$(readlink "$fd")" = "$PWD/x" ] && grep flags "/proc/$$/fdinfo/${fd##*/}"
                   done; true'
             flock x sh -c "$show"; echo "-o:"; flock -o x sh -c "$show"
             flock -s . sh -c "$show" | wc -l"#,
            "flags:\t0100000\n-o:\n0\n",
        ),
        (
            "an ignored SIGCHLD",
            "sh -c \"trap '' CHLD; exec flock x sh -c 'exit 3'\"; echo rc=$?",
            "rc=3\n",
        ),
        (
            "-F runs the command as flock's own process",
            "flock -F x sh -c 'echo $$ > inner' & O=$!; wait; \
             [ \"$(cat inner)\" = \"$O\" ] && echo same-pid",
            "same-pid\n",
        ),
    ]);
}

/// The command inherits the lock: killing the wrapper (however) leaves it
/// held while the command runs, and a background process the command
/// leaves keeps it. With `-o` the lock is the wrapper's alone.
#[test]
fn the_command_keeps_the_lock_like_util_linux() {
    let killed = r#"for sig in TERM HUP KILL; do
            rm -f cmd.pid; flock x sh -c 'echo $$ > cmd.pid; exec sleep 30' & W=$!
            until [ -s cmd.pid ]; do sleep 0.01; done
            kill -$sig $W; { wait $W; } 2>/dev/null
            $REF -n x true; echo "$sig: other=$?"; kill $(cat cmd.pid)
        done"#;
    let background = r#"flock x sh -c 'sleep 30 > /dev/null & echo $! > bg.pid'
        $REF -n x true; echo "background: other=$?"; kill $(cat bg.pid)
        flock -o x sh -c 'sleep 30 > /dev/null & echo $! > bg.pid'
        $REF -n x true; echo "-o background: other=$?"; kill $(cat bg.pid)"#;
    scripts_match_util_linux(&[
        ("the wrapper killed", killed, "TERM: other=1\nHUP: other=1\nKILL: other=1\n"),
        ("a background process", background, "background: other=1\n-o background: other=0\n"),
    ]);
}

/// A timed wait on the shell's descriptor either gets the lock or reports
/// the timeout with nothing locked, even when the holder lets go just as
/// the time runs out: a wait left running after giving up would lock the
/// shell's open file behind its back.
#[test]
fn a_timed_out_wait_never_leaves_the_descriptor_locked() {
    let link = FlockLink::new();
    let script = r#"
        granted=0; timed_out=0; i=0
        while [ $i -lt 40 ]; do
            i=$((i + 1)); rm -f held
            # The holder lets go before, around and after the deadline.
            $REF x sh -c "touch held; sleep 0.$(printf %02d $((3 + i % 10)))" & H=$!
            until [ -e held ]; do sleep 0.005; done
            exec 9>x; flock -w 0.05 9; rc=$?; wait $H
            if [ $rc = 0 ]; then
                granted=$((granted + 1))
            else
                timed_out=$((timed_out + 1))
                $REF -n x true || { echo "locked after a timeout (round $i)"; exit 1; }
            fi
            exec 9>&-
        done
        echo "granted=$granted timed_out=$timed_out"
        [ $granted -gt 0 ] && [ $timed_out -gt 0 ]"#;
    let outcome = script_with(Some(&link), script);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(outcome.stdout.starts_with("granted="), "{outcome:?}");
}

/// `--fcntl`, `--start` and `--length` (util-linux 2.41): open file
/// description locks on byte ranges, which exclude each other and not
/// `flock(2)` locks; an exclusive one opens the file write-only.
#[test]
fn fcntl_locks_cover_byte_ranges() {
    let link = FlockLink::new();
    let script = r#"
        flock --fcntl x sh -c '
            $REF -n x true; echo "flock lock beside it: $?"
            flock --fcntl -n x true; echo "another fcntl lock: $?"
            flock --fcntl -n -s x true; echo "a shared one: $?"
            grep -c OFDLCK /proc/locks'
        flock --start 0 --length 10 x sh -c '
            flock -n --start 10 --length 10 x true; echo "disjoint: $?"
            flock -n --start 5 --length 10 x true; echo "overlapping: $?"
            flock -n --start 9 x true; echo "to the end: $?"'
        flock -s --fcntl x sh -c 'flock -s --fcntl -n x true; echo "shared beside shared: $?"'
        flock --start 1K x true; echo "sizes: $?"
        flock --start x x true; echo "bad size: $?"
    "#;
    let outcome = script_with(Some(&link), script);
    let expected = "flock lock beside it: 0\nanother fcntl lock: 1\na shared one: 1\n1\n\
                    disjoint: 0\noverlapping: 1\nto the end: 1\nshared beside shared: 0\n\
                    sizes: 0\nbad size: 64\n";
    assert_eq!(outcome.stdout, expected, "{outcome:?}");
    assert_eq!(outcome.stderr, "flock: invalid as start offset: 'x'\n");
}
