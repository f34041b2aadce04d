//! The one "waiting for lock on PATH held by ..." info line for waits that
//! last longer than a threshold, like cargo's "Blocking waiting for file
//! lock".
//!
//! A waiting thread cannot log while it is blocked in the OS, so one
//! reporter thread per process, started on the first wait that may need
//! it, logs for every wait whose deadline passes. Waits that end sooner
//! take their entry back, so short waits log nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::backend::LockBackend;
use crate::holder::{describe, most_telling};

/// The state of one acquire's waiting: when it started, and its pending
/// log line. Dropping it (the acquire ended, one way or another) takes the
/// line back if it was not logged yet.
#[derive(Debug, Default)]
pub(crate) struct WaitWatch {
    since: Option<Instant>,
    pending: Option<Pending>,
}

impl WaitWatch {
    /// Notes that the acquire waits for `lock` (from now, unless it
    /// already did), and arranges the log line for `after` from the start
    /// (never, if that lies past what an `Instant` can hold).
    pub(crate) fn waiting(&mut self, lock: &Arc<dyn LockBackend>, after: Duration) {
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.pending.is_some() || !log::log_enabled!(log::Level::Info) {
            return;
        }
        if let Some(at) = since.checked_add(after) {
            self.pending = Reporter::get().map(|r| r.schedule(at, Arc::clone(lock)));
        }
    }

    /// When the acquire started waiting, if it did.
    pub(crate) fn since(&self) -> Option<Instant> {
        self.since
    }
}

/// A scheduled log line.
#[derive(Debug)]
struct Pending {
    at: Instant,
    id: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(reporter) = REPORTER.get().and_then(Option::as_ref) {
            reporter.queue().remove(&(self.at, self.id));
        }
    }
}

type Queue = BTreeMap<(Instant, u64), Arc<dyn LockBackend>>;

struct Reporter {
    queue: Mutex<Queue>,
    changed: Condvar,
    next_id: AtomicU64,
}

/// `None` when the reporter thread could not be started: then waits are
/// simply not reported.
static REPORTER: OnceLock<Option<Reporter>> = OnceLock::new();

impl Reporter {
    fn get() -> Option<&'static Reporter> {
        REPORTER.get_or_init(Self::start).as_ref()
    }

    fn start() -> Option<Reporter> {
        let spawned = std::thread::Builder::new()
            .name("packlock-wait-reporter".into())
            .spawn(|| Reporter::get().map_or((), Reporter::run));
        match spawned {
            Ok(_) => Some(Reporter {
                queue: Mutex::default(),
                changed: Condvar::new(),
                next_id: AtomicU64::new(0),
            }),
            Err(e) => {
                log::debug!("cannot start the wait reporter: {e}");
                None
            }
        }
    }

    fn schedule(&self, at: Instant, lock: Arc<dyn LockBackend>) -> Pending {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.queue().insert((at, id), lock);
        self.changed.notify_one();
        Pending { at, id }
    }

    /// Sleeps until the earliest deadline, logs every wait that reached its
    /// deadline, and repeats.
    fn run(&self) {
        let mut queue = self.queue();
        loop {
            let now = Instant::now();
            queue = match queue.first_key_value().map(|(&(at, _), _)| at) {
                None => self.changed.wait(queue).unwrap_or_else(PoisonError::into_inner),
                Some(at) if at > now => {
                    let waited = self.changed.wait_timeout(queue, at - now);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
                Some(_) => {
                    let due = queue.pop_first();
                    drop(queue);
                    if let Some((_, lock)) = due {
                        log_waiting(&*lock);
                    }
                    self.queue()
                }
            };
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn log_waiting(lock: &dyn LockBackend) {
    let path = lock.path().display();
    let holder = most_telling(lock.holders());
    log::info!("waiting for lock on {path} held by {}", describe(holder.as_ref()));
}
