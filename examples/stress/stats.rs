//! A worker's counters, and their cumulative snapshot lines in the logs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::mode::Mode;

/// Every way the workers acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Acquire,
    TryAcquire,
    Timeout,
    Async,
    Cancellable,
    Until,
    AsyncTimeout,
    PollOnce,
    TokioTimeout,
}

impl Flavour {
    pub const ALL: [Flavour; 9] = [
        Flavour::Acquire,
        Flavour::TryAcquire,
        Flavour::Timeout,
        Flavour::Async,
        Flavour::Cancellable,
        Flavour::Until,
        Flavour::AsyncTimeout,
        Flavour::PollOnce,
        Flavour::TokioTimeout,
    ];
    pub const SYNC: [Flavour; 3] = [Flavour::Acquire, Flavour::TryAcquire, Flavour::Timeout];
    pub const ASYNC: [Flavour; 6] = [
        Flavour::Async,
        Flavour::Cancellable,
        Flavour::Until,
        Flavour::AsyncTimeout,
        Flavour::PollOnce,
        Flavour::TokioTimeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Flavour::Acquire => "acquire",
            Flavour::TryAcquire => "try_acquire (retried)",
            Flavour::Timeout => "acquire_timeout",
            Flavour::Async => "acquire_async",
            Flavour::Cancellable => "acquire_cancellable",
            Flavour::Until => "acquire_until(timer)",
            Flavour::AsyncTimeout => "acquire_timeout_with",
            Flavour::PollOnce => "poll once, then drop",
            Flavour::TokioTimeout => "tokio::time::timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    pub fn key(self, mode: Mode) -> String {
        format!("acq.{}.{}", self.index(), mode.code())
    }
}

/// Outcomes other than an acquisition.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// `try_acquire` found the lock busy (and will retry).
    BusyRetry,
    /// `try_acquire` found it busy every time and gave up.
    TryGaveUp,
    /// A sync or async timeout fired.
    TimedOut,
    /// A token or `acquire_until` signal cancelled an acquire.
    Cancelled,
    /// An acquire future was dropped before it completed.
    Dropped,
    /// An unexpected error from packlock or the harness's own files.
    Error,
    /// Server mode: an operation failed with a server error or a lost
    /// session, as connection cuts make them (expected).
    ServerError,
}

impl Event {
    pub const ALL: [Event; 7] = [
        Event::BusyRetry,
        Event::TryGaveUp,
        Event::TimedOut,
        Event::Cancelled,
        Event::Dropped,
        Event::Error,
        Event::ServerError,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Event::BusyRetry => "ev.busy_retry",
            Event::TryGaveUp => "ev.try_gave_up",
            Event::TimedOut => "ev.timed_out",
            Event::Cancelled => "ev.cancelled",
            Event::Dropped => "ev.dropped",
            Event::Error => "ev.error",
            Event::ServerError => "ev.server_error",
        }
    }
}

/// Maxima a worker samples.
#[derive(Clone, Copy, Debug)]
pub enum Peak {
    /// Threads of the process.
    Threads,
    /// Waiters of the process in the kernel, all lock files together.
    Waiters,
    /// Waiters of the process in the kernel on one lock file.
    WaitersPerFile,
}

impl Peak {
    pub const ALL: [Peak; 3] = [Peak::Threads, Peak::Waiters, Peak::WaitersPerFile];

    pub fn key(self) -> &'static str {
        match self {
            Peak::Threads => "peak.threads",
            Peak::Waiters => "peak.waiters",
            Peak::WaitersPerFile => "peak.waiters_per_file",
        }
    }
}

#[derive(Default)]
pub struct Stats {
    acquired: [[AtomicU64; 2]; Flavour::ALL.len()],
    events: [AtomicU64; Event::ALL.len()],
    peaks: [AtomicU64; Peak::ALL.len()],
}

impl Stats {
    pub fn acquired(&self, flavour: Flavour, mode: Mode) {
        self.acquired[flavour.index()][mode.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn event(&self, event: Event) {
        self.events[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn peak(&self, peak: Peak, value: u64) {
        self.peaks[peak as usize].fetch_max(value, Ordering::Relaxed);
    }

    /// `C key=value ...`: every counter, cumulative.
    pub fn snapshot(&self) -> String {
        let mut line = String::from("C");
        for flavour in Flavour::ALL {
            for mode in Mode::ALL {
                let value = self.acquired[flavour.index()][mode.index()].load(Ordering::Relaxed);
                line.push_str(&format!(" {}={value}", flavour.key(mode)));
            }
        }
        for event in Event::ALL {
            let value = self.events[event as usize].load(Ordering::Relaxed);
            line.push_str(&format!(" {}={value}", event.key()));
        }
        for peak in Peak::ALL {
            let value = self.peaks[peak as usize].load(Ordering::Relaxed);
            line.push_str(&format!(" {}={value}", peak.key()));
        }
        line
    }
}

/// Counters by key, as read back from snapshot lines.
pub type Totals = BTreeMap<String, u64>;

/// Reads the fields of a `C` line (without the `C`).
pub fn parse_snapshot<'a>(fields: impl Iterator<Item = &'a str>) -> Option<Totals> {
    fields
        .map(|field| {
            let (key, value) = field.split_once('=')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Adds `from` into `into`: peaks by maximum, everything else by sum.
pub fn merge(into: &mut Totals, from: &Totals) {
    for (key, &value) in from {
        let total = into.entry(key.clone()).or_default();
        *total = if key.starts_with("peak.") { (*total).max(value) } else { *total + value };
    }
}
