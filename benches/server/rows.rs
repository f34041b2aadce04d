//! Rows 2 and 3 of the server bench, measured in plain code: the
//! cross-process hand-off, and the statements a waiter sends while it
//! waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use packlock::postgres::LockServer;

use crate::child::spawn_holder;
use crate::pg::PgCluster;
use crate::raw::RawSession;
use crate::support::child::Holder;
use crate::support::child::wall_clock_ns;
use crate::support::report::Row;
use crate::support::{RunMode, env_count, format_ns};

pub const HANDOFF: &str = "server_handoff";
pub const WAITING_QUERIES: &str = "server_waiting_queries";

/// The lock of the plain rows.
const NAME: &str = "bench/handoff";

struct Counts {
    handoffs: usize,
    warmup_handoffs: usize,
    wait: Duration,
}

impl Counts {
    fn for_mode(mode: RunMode) -> Self {
        if mode == RunMode::Test {
            return Counts { handoffs: 3, warmup_handoffs: 1, wait: Duration::from_millis(200) };
        }
        Counts {
            handoffs: env_count("PACKLOCK_BENCH_HANDOFFS", 300),
            warmup_handoffs: 20,
            wait: Duration::from_secs(1),
        }
    }
}

/// Runs the rows selected by `filter` (all without one).
pub fn run(
    cluster: &PgCluster,
    server: &LockServer,
    mode: RunMode,
    filter: Option<&str>,
) -> Vec<Row> {
    let counts = Counts::for_mode(mode);
    let selected = |name: &str| filter.is_none_or(|f| name.contains(f));
    if !selected(HANDOFF) && !selected(WAITING_QUERIES) {
        return Vec::new();
    }
    let conn = cluster.admin();
    let monitor = RawSession::connect(&conn, NAME);
    let mut holder = spawn_holder(&conn, NAME);
    let mut rows = Vec::new();
    if selected(HANDOFF) {
        rows.push(handoff(server, &conn, &monitor, &mut holder, &counts));
    }
    if selected(WAITING_QUERIES) {
        rows.push(waiting_queries(cluster, &monitor, &mut holder, &counts));
    }
    rows
}

// ---------------------------------------------------------------------------
// Hand-off
// ---------------------------------------------------------------------------

/// When a waiter's acquire returned, on both clocks.
struct Stamp {
    instant: Instant,
    wall_ns: i128,
}

/// A thread that, on each start, acquires (waiting as long as it takes),
/// stamps the moment it holds the lock, releases and reports the stamp.
struct Waiter {
    name: &'static str,
    /// The command that has the child hold the lock for this waiter:
    /// `lock packlock` or `lock raw`.
    holder: &'static str,
    go: mpsc::Sender<()>,
    done: Receiver<Stamp>,
}

fn waiter(
    name: &'static str,
    holder: &'static str,
    acquire_stamp_release: impl FnMut() -> Stamp + Send + 'static,
) -> Waiter {
    let (go, gone) = mpsc::channel::<()>();
    let (report, done) = mpsc::channel();
    let mut run = acquire_stamp_release;
    std::thread::spawn(move || {
        for () in gone {
            if report.send(run()).is_err() {
                break;
            }
        }
    });
    Waiter { name, holder, go, done }
}

fn stamp() -> Stamp {
    Stamp { instant: Instant::now(), wall_ns: wall_clock_ns() }
}

fn handoff(
    server: &LockServer,
    conn: &str,
    monitor: &RawSession,
    holder: &mut Holder,
    counts: &Counts,
) -> Row {
    let lock = server.lock(NAME).open().expect("open");
    let raw = RawSession::connect(conn, NAME);
    let waiters = [
        waiter("packlock `acquire()`", "lock packlock", move || {
            let hold = lock.acquire().expect("acquire");
            let got = stamp();
            drop(hold);
            got
        }),
        waiter("by hand: `pg_advisory_lock` + fence `UPDATE`", "lock raw", move || {
            raw.lock();
            raw.bump();
            let got = stamp();
            raw.unlock();
            got
        }),
    ];
    let mut from_release: Vec<Vec<f64>> = vec![Vec::new(); waiters.len()];
    let mut from_command: Vec<Vec<f64>> = vec![Vec::new(); waiters.len()];
    for round in 0..counts.warmup_handoffs + counts.handoffs {
        for k in 0..waiters.len() {
            let i = if round % 2 == 0 { k } else { waiters.len() - 1 - k };
            holder.lock_by(waiters[i].holder);
            waiters[i].go.send(()).expect("waiter thread");
            monitor.wait_until_waiting();
            let commanded = holder.release();
            let got = waiters[i].done.recv().expect("waiter report");
            let released = holder.released_at();
            if round >= counts.warmup_handoffs {
                from_release[i].push((got.wall_ns - released) as f64);
                from_command[i].push(got.instant.duration_since(commanded).as_nanos() as f64);
            }
        }
    }
    for values in from_release.iter_mut().chain(from_command.iter_mut()) {
        values.sort_by(f64::total_cmp);
    }
    println!(
        "\nserver lock hand-off between two processes: {} hand-offs each (after {} warm-up)\n",
        counts.handoffs, counts.warmup_handoffs
    );
    println!("| waiter | measured from | p10 | p50 | p90 | p99 |");
    println!("|---|---|---:|---:|---:|---:|");
    for (i, waiter) in waiters.iter().enumerate() {
        for (from, values) in
            [("holder's release", &from_release[i]), ("`unlock` command", &from_command[i])]
        {
            let [p10, p50, p90, p99] =
                [0.1, 0.5, 0.9, 0.99].map(|q| format_ns(quantile(values, q)));
            println!("| {} | {from} | {p10} | {p50} | {p90} | {p99} |", waiter.name);
        }
    }
    let cell = |values: &[f64]| {
        format!("{} (p90 {})", format_ns(quantile(values, 0.5)), format_ns(quantile(values, 0.9)))
    };
    let p50 = quantile(&from_release[0], 0.5);
    Row {
        scenario: "server lock hand-off between processes: holder releases, `acquire()` returns \
                   (p50)"
            .into(),
        packlock: cell(&from_release[0]),
        baseline: format!(
            "by hand: `pg_advisory_unlock`, then the waiter's `pg_advisory_lock` + fence \
             `UPDATE`: {}",
            cell(&from_release[1])
        ),
        ratio: Some(p50 / quantile(&from_release[1], 0.5)),
        target: "p50 <= 2 ms".into(),
        met: Some(p50 <= 2e6),
    }
}

/// The `q` quantile (0..=1) of sorted `values` (nearest rank).
fn quantile(values: &[f64], q: f64) -> f64 {
    let rank = ((values.len() - 1) as f64 * q).round() as usize;
    values[rank]
}

// ---------------------------------------------------------------------------
// Statements while waiting
// ---------------------------------------------------------------------------

const WAITER_APP: &str = "bench-waiter";
const POLLER_APP: &str = "bench-poller";
const POLL_EVERY: Duration = Duration::from_millis(10);

fn waiting_queries(
    cluster: &PgCluster,
    monitor: &RawSession,
    holder: &mut Holder,
    counts: &Counts,
) -> Row {
    set_log_statement(cluster, "all");
    holder.lock_by("lock packlock");
    let log = ServerLog::new(cluster);
    let before_acquire = log.len();

    // packlock: a new process-wide server, as a waiting process has.
    let server = LockServer::connect(&format!("{} application_name={WAITER_APP}", cluster.admin()))
        .expect("connect");
    let lock = server.lock(NAME).open().expect("open");
    let (report, acquired) = mpsc::channel();
    std::thread::spawn(move || {
        let hold = lock.acquire().expect("acquire");
        let _ = report.send(());
        drop(hold);
    });
    monitor.wait_until_waiting();
    let waiter_pids = monitor.pids_of(WAITER_APP);

    // The baseline: a waiter that polls.
    let poller =
        RawSession::connect(&format!("{} application_name={POLLER_APP}", cluster.admin()), NAME);
    let stop = Arc::new(AtomicBool::new(false));
    let polling = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            while !stop.load(Ordering::Acquire) {
                assert!(!poller.try_lock(), "the child holds the lock");
                std::thread::sleep(POLL_EVERY);
            }
            poller
        }
    });
    let poller_pids = monitor.pids_of(POLLER_APP);

    let from = log.len();
    std::thread::sleep(counts.wait);
    let during = log.statements_since(from);
    stop.store(true, Ordering::Release);
    drop(polling.join().expect("poller"));
    holder.release();
    acquired.recv().expect("waiter acquired");
    holder.released_at();
    set_log_statement(cluster, "none");
    let whole = log.statements_since(before_acquire);

    let count = |stats: &[(i32, usize)], pids: &[i32]| -> usize {
        stats.iter().filter(|(pid, _)| pids.contains(pid)).map(|(_, n)| n).sum()
    };
    let (waiting, polled) = (count(&during, &waiter_pids), count(&during, &poller_pids));
    let total = count(&whole, &waiter_pids);
    let secs = counts.wait.as_secs_f64();
    println!(
        "\nstatements while waiting {secs:.1} s: packlock waiter {waiting} on {} sessions \
         (backend pids {waiter_pids:?}); its whole acquire + release: {total}; \
         polling waiter: {polled}",
        waiter_pids.len()
    );
    Row {
        scenario: format!("server lock waiter: statements sent during a {secs:.1} s wait"),
        packlock: format!(
            "{waiting} (sessions open while waiting: {}; {total} statements for the whole \
             acquire + release)",
            waiter_pids.len()
        ),
        baseline: format!("polling `pg_try_advisory_lock` every 10 ms: {polled}"),
        ratio: None,
        target: "0 while waiting".into(),
        met: Some(waiting == 0),
    }
}

/// Sets `log_statement` for sessions started from now on.
fn set_log_statement(cluster: &PgCluster, value: &str) {
    cluster.psql(&format!("ALTER SYSTEM SET log_statement = '{value}'"));
    cluster.psql("SELECT pg_reload_conf()");
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.psql("SHOW log_statement") != value {
        assert!(Instant::now() < deadline, "log_statement never became {value}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The server's log file (`log_line_prefix = '%p '`: every line starts
/// with the backend pid).
struct ServerLog {
    path: std::path::PathBuf,
}

impl ServerLog {
    fn new(cluster: &PgCluster) -> Self {
        ServerLog { path: cluster.dir().join("server.log") }
    }

    fn len(&self) -> u64 {
        std::fs::metadata(&self.path).expect("server log").len()
    }

    /// Statements logged after byte `from`, per backend pid.
    fn statements_since(&self, from: u64) -> Vec<(i32, usize)> {
        let text = std::fs::read(&self.path).expect("server log");
        let start = usize::try_from(from).expect("log offset").min(text.len());
        let mut counts: Vec<(i32, usize)> = Vec::new();
        for line in String::from_utf8_lossy(&text[start..]).lines() {
            let Some((pid, message)) = line.split_once(' ') else { continue };
            let Ok(pid) = pid.parse::<i32>() else { continue };
            if !(message.starts_with("LOG:  statement: ") || message.starts_with("LOG:  execute "))
            {
                continue;
            }
            match counts.iter_mut().find(|(p, _)| *p == pid) {
                Some((_, n)) => *n += 1,
                None => counts.push((pid, 1)),
            }
        }
        counts
    }
}
