//! "Who holds it": `Busy` names the holder — another program (util-linux
//! `flock`) by pid, a packlock holder also by label — and a wait that
//! outlasts its threshold logs one info line naming the holder.

// Linux only: holder pids come from /proc/locks, and the other holder is
// util-linux flock(1).
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, SystemTime};

use common::{Child, ChildArgs, open, temp_dir};
use packlock::{PackLock, PackLockError};

const CHILD_LABEL: &str = "child worker";

#[test]
fn child_process_entry() {
    common::child_process_entry(|args: &ChildArgs| match args.role.as_str() {
        "hold-labelled" => {
            let lock = PackLock::builder(&args.dir).label(CHILD_LABEL).open().expect("open");
            common::hold_until_told(&lock);
        }
        other => panic!("unknown role {other}"),
    });
}

/// Keeps every info-level record that mentions a path of interest.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if record.level() == log::Level::Info {
            self.0.lock().expect("capture").push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn capture_logs() {
    // Several tests call this; only the first installs the logger.
    if log::set_logger(&CAPTURE).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

fn lines_about(path: &Path) -> Vec<String> {
    let path = path.display().to_string();
    CAPTURE.0.lock().expect("capture").iter().filter(|l| l.contains(&path)).cloned().collect()
}

fn busy_holder(lock: &PackLock) -> packlock::Holder {
    match lock.try_acquire() {
        Err(PackLockError::Busy { holder: Some(holder), .. }) => holder,
        other => panic!("expected Busy naming a holder, got {other:?}"),
    }
}

#[test]
fn busy_names_a_foreign_flock_holder_by_pid() {
    let dir = temp_dir();
    let lock = open(dir.path());
    let flock = common::flock::Holder::start(lock.path(), "-x");
    let holder = busy_holder(&lock);
    assert_eq!(holder.pid, flock.pid(), "flock itself holds the lock");
    assert_eq!(holder.shared, Some(false));
    assert_eq!(holder.label, None, "flock(1) records no label");
    let message = lock.try_acquire().expect_err("busy").to_string();
    assert!(message.contains(&format!("held by pid {}", flock.pid())), "{message}");

    flock.stop();
}

#[test]
fn busy_names_a_packlock_holder_by_pid_and_label() {
    let dir = temp_dir();
    let mut child = Child::spawn("hold-labelled", dir.path());
    child.expect("locked");
    let lock = open(dir.path());

    let holder = busy_holder(&lock);
    assert_eq!(holder.pid, child.id());
    assert_eq!(holder.label.as_deref(), Some(CHILD_LABEL));
    let since = holder.since.expect("a labelled holder records since when it holds");
    let age = SystemTime::now().duration_since(since).expect("since is in the past");
    assert!(age < common::DEADLINE, "since is recent, not {age:?} ago");
    let message = lock.try_acquire().expect_err("busy").to_string();
    assert!(message.contains(CHILD_LABEL), "{message}");

    child.proceed();
    child.expect("released");
    assert!(lock.holders().is_empty(), "nobody holds it any more");
}

#[test]
fn a_wait_past_its_threshold_logs_once_naming_the_holder() {
    capture_logs();
    let dir = temp_dir();
    let mut child = Child::spawn("hold-labelled", dir.path());
    child.expect("locked");
    let lock = PackLock::builder(dir.path())
        .log_wait_after(Duration::from_millis(50))
        .open()
        .expect("open");
    thread::scope(|scope| {
        let waiter = scope.spawn(|| lock.acquire().map(drop));
        common::wait_until("the wait is logged", || !lines_about(lock.path()).is_empty());
        child.proceed();
        child.expect("released");
        waiter.join().expect("waiter panicked").expect("acquire after the holder released");
    });
    let lines = lines_about(lock.path());
    assert_eq!(lines.len(), 1, "logged once: {lines:?}");
    let expected =
        format!("waiting for lock on {} held by pid {}", lock.path().display(), child.id());
    assert!(lines[0].starts_with(&expected), "{}", lines[0]);
    assert!(lines[0].contains(CHILD_LABEL), "{}", lines[0]);
}

#[test]
fn a_wait_shorter_than_its_threshold_logs_nothing() {
    capture_logs();
    let dir = temp_dir();
    let mut child = Child::spawn("hold-labelled", dir.path());
    child.expect("locked");
    let lock = PackLock::builder(dir.path())
        .log_wait_after(Duration::from_secs(3600))
        .open()
        .expect("open");
    thread::scope(|scope| {
        let waiter = scope.spawn(|| lock.acquire().map(drop));
        common::wait_until_parked(lock.path());
        child.proceed();
        child.expect("released");
        waiter.join().expect("waiter panicked").expect("acquire");
    });
    assert!(lines_about(lock.path()).is_empty());
}

/// A threshold past what `Instant` can hold means never: a contended
/// acquire waits and logs nothing.
#[test]
fn a_threshold_of_duration_max_never_logs() {
    capture_logs();
    let dir = temp_dir();
    let mut child = Child::spawn("hold-labelled", dir.path());
    child.expect("locked");
    let lock = PackLock::builder(dir.path()).log_wait_after(Duration::MAX).open().expect("open");
    thread::scope(|scope| {
        let waiter = scope.spawn(|| lock.acquire().map(drop));
        let me = std::process::id();
        common::wait_until("we wait in the kernel (or fail)", || {
            waiter.is_finished() || common::proc_locks::waiters_of(lock.path(), me) == 1
        });
        child.proceed();
        child.expect("released");
        waiter.join().expect("waiter panicked").expect("acquire");
    });
    assert!(lines_about(lock.path()).is_empty());
}

#[test]
fn holders_lists_shared_holders() {
    let dir = temp_dir();
    let lock = PackLock::builder(dir.path()).shared(true).label("reader").open().expect("open");
    let _first = lock.acquire().expect("acquire");
    let _second = lock.try_acquire().expect("shared holds coexist");
    let holders = lock.holders();
    assert_eq!(holders.len(), 1, "one OS lock per process, however many shared holds");
    assert_eq!(holders[0].pid, std::process::id());
    assert_eq!(holders[0].shared, Some(true));
    // Shared holds write nothing into the file (see `shared_holds_never_write`).
    assert_eq!(holders[0].label, None);
}

#[test]
fn a_label_never_overwrites_data_in_the_lock_file() {
    let dir = temp_dir();
    let data = dir.path().join("data.txt");
    // Blank lines are data too: only a line of spaces after packlock's own
    // content is its padding.
    for precious in ["precious data\n", "\n", "        \n", "\n\n", " "] {
        std::fs::write(&data, precious).expect("write data");
        let lock = PackLock::builder_for_file(&data).label("writer").open().expect("open");
        drop(lock.acquire().expect("acquire"));
        assert_eq!(std::fs::read_to_string(&data).expect("read"), precious);
        assert_eq!(lock.acquire().expect("acquire").path(), data);
    }
}

/// `/proc/locks` comes a page (about 70 locks) per read: a holder listed
/// past the first page is named all the same.
#[test]
fn busy_names_the_holder_among_more_than_a_page_of_other_locks() {
    let dir = temp_dir();
    let others = |batch: &str| -> Vec<std::fs::File> {
        (0..100)
            .map(|i| {
                let file =
                    std::fs::File::create(dir.path().join(format!("{batch}{i}"))).expect("create");
                file.lock_shared().expect("lock another file");
                file
            })
            .collect()
    };
    let before = others("a");
    let lock = open(dir.path());
    let flock = common::flock::Holder::start(lock.path(), "-x");
    let after = others("b");
    let table = std::fs::read_to_string("/proc/locks").expect("read /proc/locks");
    assert!(table.len() > 4096, "fewer locks than a page: the test proves nothing");
    assert_eq!(busy_holder(&lock).pid, flock.pid());
    flock.stop();
    drop((before, after));
}
