//! The independent verifier: reads every worker's log back and checks the
//! intervals and the counters.
//!
//! From all logs of all generations:
//!
//! * **Overlaps by path**: per lock file, no exclusive interval may overlap
//!   any other interval (exclusive or shared), among intervals that were
//!   not invalidated. A valid interval's file was at the path from before
//!   the acquire returned until after the end stamp, so two valid intervals
//!   of one path that overlap were on one file, which `flock` excludes.
//! * **Overlaps by inode**: the same check per identified inode, now
//!   including invalidated intervals: whatever happened to the path,
//!   holders of one file must exclude each other.
//! * **Lost updates**: per inode, the counter values seen by exclusive
//!   sections must all differ (two sections that both saw `n` both wrote
//!   `n + 1`: one update is lost), and the counter's final value must be
//!   past the highest value seen. Counting per inode rather than per path
//!   keeps a replaced holder's late write, which is legitimate, out of the
//!   new file's count. A worker killed inside a section either wrote or did
//!   not; neither case can produce a duplicate.
//! * **Dirty reads**: a shared section that saw its file's counter change
//!   was overlapped by an exclusive one.
//!
//! Server mode's `F` lines go through the same overlap check (by lock
//! name, among kept holds) and through `fences.rs`.
//!
//! Intervals use `CLOCK_REALTIME`; a step of the system clock during the
//! run (not NTP's slewing) could fake an overlap.

use std::collections::HashMap;
use std::path::PathBuf;

use super::fences::{self, Fenced, Seen};
use crate::counter;
use crate::layout::Layout;
use crate::mode::Mode;
use crate::stats::{self, Totals};

/// How many overlap examples the report shows.
const EXAMPLES: usize = 5;

#[derive(Debug, Default)]
pub struct Verification {
    pub logs: usize,
    pub intervals: u64,
    pub exclusive: u64,
    pub shared: u64,
    /// Intervals whose lock file was deleted or replaced during the hold.
    pub invalidated: u64,
    /// Intervals whose file could not be identified (replaced before).
    pub unidentified: u64,
    pub overlaps_by_path: u64,
    pub overlaps_by_inode: u64,
    pub examples: Vec<String>,
    /// Exclusive sections that incremented a counter, and on how many
    /// inodes.
    pub counted: u64,
    pub inodes: usize,
    /// Two sections that saw the same counter value, or a counter that
    /// ended below a value some section wrote.
    pub lost_updates: u64,
    pub dirty_reads: u64,
    /// Counters from the workers' snapshot lines, all logs together.
    pub totals: Totals,
    /// Lines cut short by a `kill -9` (ignored), and complete lines that
    /// do not parse (a harness bug).
    pub torn: u64,
    pub malformed: u64,
    /// Server mode: sections logged, of holds lost by their end, reads or
    /// writes the storage rejected (and of those, by kept holds: a bug).
    pub fenced: u64,
    pub lost_holds: u64,
    pub rejected: u64,
    pub rejected_kept: u64,
    /// Server mode: exclusive fences seen twice, or not above an earlier
    /// kept hold's; shared fences not above the exclusive ones before them.
    pub duplicate_fences: u64,
    pub fence_disorder: u64,
    pub shared_fence_mismatches: u64,
    /// Server mode: changed counters seen by shared sections that a lost
    /// exclusive hold's section overlapped.
    pub explained_dirty_reads: u64,
    /// Server mode: what the fence checks found, a few.
    pub fence_notes: Vec<String>,
}

impl Verification {
    /// Keeps the first few descriptions of fence check failures.
    pub fn note(&mut self, what: String) {
        if self.fence_notes.len() < EXAMPLES {
            self.fence_notes.push(what);
        }
    }
}

/// One logged hold interval.
#[derive(Clone, Copy, Debug)]
struct Interval {
    file: u32,
    exclusive: bool,
    /// 0: not identified.
    ino: u64,
    start: u64,
    end: u64,
    valid: bool,
    /// Index of the log it came from.
    source: u32,
}

/// What the logs hold besides intervals.
#[derive(Default)]
struct Parsed {
    intervals: Vec<Interval>,
    /// Counter values seen by exclusive sections, per inode.
    seen: HashMap<u64, Vec<u64>>,
    /// Server mode's sections.
    fenced: Vec<Fenced>,
    dirty_reads: u64,
    totals: Totals,
    torn: u64,
    malformed: u64,
    sources: Vec<String>,
}

pub fn run(layout: &Layout) -> Verification {
    let parsed = parse_logs(&log_files(layout));
    let mut verification = summarize(&parsed);
    check_overlaps(&parsed, &mut verification);
    check_counters(layout, &parsed, &mut verification);
    if !parsed.fenced.is_empty() {
        fences::check(layout, &parsed.fenced, &mut verification);
    }
    verification
}

fn log_files(layout: &Layout) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(layout.logs()).expect("list the workers' logs");
    let mut logs: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    logs.sort();
    logs
}

fn parse_logs(logs: &[PathBuf]) -> Parsed {
    let mut parsed = Parsed::default();
    for (source, path) in logs.iter().enumerate() {
        let bytes = std::fs::read(path).expect("read a worker's log");
        let source = u32::try_from(source).expect("fewer than 4 billion logs");
        parse_log(&String::from_utf8_lossy(&bytes), source, &mut parsed);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        parsed.sources.push(name.unwrap_or_default());
    }
    parsed
}

/// Reads one log: complete lines only (a `kill -9` may cut the last).
fn parse_log(text: &str, source: u32, parsed: &mut Parsed) {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.pop().is_some_and(|last| !last.is_empty()) {
        parsed.torn += 1;
    }
    let mut last_snapshot = None;
    for line in lines {
        let mut fields = line.split(' ');
        let ok = match fields.next() {
            Some("H") => parse_interval(fields, source, parsed),
            Some("F") => parse_fenced(fields, source, parsed),
            Some("C") => {
                last_snapshot = stats::parse_snapshot(fields);
                last_snapshot.is_some()
            }
            _ => false,
        };
        if !ok {
            parsed.malformed += 1;
            eprintln!("stress: malformed log line: {line:?}");
        }
    }
    if let Some(snapshot) = last_snapshot {
        stats::merge(&mut parsed.totals, &snapshot);
    }
}

/// `H file mode inode start end valid seen`.
fn parse_interval<'a>(
    mut fields: impl Iterator<Item = &'a str>,
    source: u32,
    parsed: &mut Parsed,
) -> bool {
    let mut next = || fields.next();
    let (Some(file), Some(mode), Some(ino), Some(start), Some(end), Some(valid), Some(seen)) =
        (next(), next(), next(), next(), next(), next(), next())
    else {
        return false;
    };
    let (Ok(file), Some(mode), Ok(ino), Ok(start), Ok(end)) =
        (file.parse(), Mode::from_code(mode), ino.parse(), start.parse(), end.parse())
    else {
        return false;
    };
    let exclusive = mode == Mode::Exclusive;
    let interval = Interval { file, exclusive, ino, start, end, valid: valid == "1", source };
    match (exclusive, seen) {
        (_, "-") => {}
        (false, "d") => parsed.dirty_reads += 1,
        (false, "c") => {}
        (true, value) => match value.parse() {
            Ok(value) => parsed.seen.entry(ino).or_default().push(value),
            Err(_) => return false,
        },
        (false, _) => return false,
    }
    parsed.intervals.push(interval);
    true
}

/// `F name mode fence start end kept seen` (server mode).
fn parse_fenced<'a>(
    mut fields: impl Iterator<Item = &'a str>,
    source: u32,
    parsed: &mut Parsed,
) -> bool {
    let mut next = || fields.next();
    let (Some(name), Some(mode), Some(fence), Some(start), Some(end), Some(kept), Some(seen)) =
        (next(), next(), next(), next(), next(), next(), next())
    else {
        return false;
    };
    let (Ok(name), Some(mode), Ok(fence), Ok(start), Ok(end)) =
        (name.parse(), Mode::from_code(mode), fence.parse(), start.parse(), end.parse())
    else {
        return false;
    };
    let exclusive = mode == Mode::Exclusive;
    let Some(seen) = Seen::parse(exclusive, seen) else { return false };
    let kept = kept == "1";
    parsed.fenced.push(Fenced { name, exclusive, fence, start, end, kept, seen });
    let ino = 0; // no file: overlaps are checked by name only
    parsed.intervals.push(Interval { file: name, exclusive, ino, start, end, valid: kept, source });
    true
}

fn summarize(parsed: &Parsed) -> Verification {
    let intervals = &parsed.intervals;
    let count = |keep: &dyn Fn(&Interval) -> bool| intervals.iter().filter(|i| keep(i)).count();
    Verification {
        logs: parsed.sources.len(),
        intervals: intervals.len() as u64,
        exclusive: count(&|i| i.exclusive) as u64,
        shared: count(&|i| !i.exclusive) as u64,
        invalidated: count(&|i| !i.valid) as u64,
        unidentified: count(&|i| i.ino == 0) as u64,
        dirty_reads: parsed.dirty_reads,
        totals: parsed.totals.clone(),
        torn: parsed.torn,
        malformed: parsed.malformed,
        ..Verification::default()
    }
}

/// Per path among valid intervals, and per inode among identified ones.
fn check_overlaps(parsed: &Parsed, verification: &mut Verification) {
    let mut by_path: HashMap<u64, Vec<Interval>> = HashMap::new();
    let mut by_inode: HashMap<u64, Vec<Interval>> = HashMap::new();
    for interval in &parsed.intervals {
        if interval.valid {
            by_path.entry(u64::from(interval.file)).or_default().push(*interval);
        }
        if interval.ino != 0 {
            by_inode.entry(interval.ino).or_default().push(*interval);
        }
    }
    let mut examples = Vec::new();
    for group in by_path.values_mut() {
        verification.overlaps_by_path += count_overlaps(group, parsed, &mut examples);
    }
    for group in by_inode.values_mut() {
        verification.overlaps_by_inode += count_overlaps(group, parsed, &mut examples);
    }
    verification.examples = examples;
}

/// Counts intervals that overlap an earlier-starting one where at least
/// one of the two is exclusive: a sweep in start order that remembers
/// the latest-ending interval so far, and the latest-ending exclusive one.
fn count_overlaps(group: &mut [Interval], parsed: &Parsed, examples: &mut Vec<String>) -> u64 {
    group.sort_unstable_by_key(|i| (i.start, i.end));
    let mut latest: Option<Interval> = None;
    let mut latest_exclusive: Option<Interval> = None;
    let mut overlaps = 0;
    for &interval in group.iter() {
        let before = if interval.exclusive { latest } else { latest_exclusive };
        if let Some(earlier) = before.filter(|earlier| earlier.end > interval.start) {
            overlaps += 1;
            if examples.len() < EXAMPLES {
                examples.push(describe(&earlier, &interval, parsed));
            }
        }
        if latest.is_none_or(|l| interval.end > l.end) {
            latest = Some(interval);
        }
        if interval.exclusive && latest_exclusive.is_none_or(|l| interval.end > l.end) {
            latest_exclusive = Some(interval);
        }
    }
    overlaps
}

fn describe(earlier: &Interval, later: &Interval, parsed: &Parsed) -> String {
    let one = |i: &Interval| {
        let mode = if i.exclusive { "exclusive" } else { "shared" };
        let validity = if i.valid { "valid" } else { "invalidated" };
        let source = &parsed.sources[i.source as usize];
        format!("{mode} {validity} [{}, {}] in {source}", i.start, i.end)
    };
    format!("file {} inode {}: {} overlaps {}", earlier.file, earlier.ino, one(earlier), one(later))
}

/// Per inode: no counter value seen twice, and the final value past
/// every value seen.
fn check_counters(layout: &Layout, parsed: &Parsed, verification: &mut Verification) {
    for (&ino, seen) in &parsed.seen {
        let mut seen = seen.clone();
        seen.sort_unstable();
        let duplicates = seen.windows(2).filter(|pair| pair[0] == pair[1]).count() as u64;
        let highest = seen.last().copied().unwrap_or(0);
        let last = counter::read_value(&layout.counter_path(ino)).unwrap_or_else(|e| {
            eprintln!("stress: cannot read the counter of inode {ino}: {e}");
            None
        });
        let regressed = last.is_none_or(|last| last <= highest);
        verification.lost_updates += duplicates + u64::from(regressed);
        verification.counted += seen.len() as u64;
    }
    verification.inodes = parsed.seen.len();
}
