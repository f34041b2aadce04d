//! Server mode's checks: the fenced sections' log lines against each
//! other and against the storage.
//!
//! Per lock name, over every `F` line of every log (a hold is **kept** if
//! it was not lost by the end of its section):
//!
//! * **Overlaps** (by `verify.rs`, as by path in file mode): no exclusive
//!   section of a kept hold may overlap another section of a kept hold.
//!   A lost hold's section may overlap the next holder's: its session
//!   ended, the server gave the lock on.
//! * **Lost updates among accepted writes**: the values read by exclusive
//!   sections whose write the storage accepted must all differ, and the
//!   final counter must be past the highest. Reads and writes both pass
//!   the fence check, so a holder whose write is accepted saw no later
//!   holder reach the storage since its read.
//! * **Fences**: no two exclusive holds have the same fence, and a kept
//!   exclusive hold's fence is larger than that of every exclusive hold
//!   that began before it: that one was granted before (a kept hold's
//!   session held the lock from its grant to its end). A lost hold may be
//!   stamped late — lost between its grant and its start stamp, the next
//!   holder can come and go in between — so its own start says nothing.
//! * **Shared fences**: a kept shared hold's fence is above that of every
//!   exclusive hold that began before it (every grant gets a new fence)
//!   and below that of every kept one that began after it.
//! * **Rejected writes**: counted. A kept hold's read or write is never
//!   rejected: no later fence exists while it holds.
//! * **Dirty reads**: a kept shared section that saw the counter change
//!   must overlap the section of a lost exclusive hold (whose accepted
//!   write it saw).

use std::collections::HashMap;

use super::verify::Verification;
use crate::counter;
use crate::layout::Layout;

/// One logged server-mode section.
#[derive(Clone, Copy, Debug)]
pub struct Fenced {
    pub name: u32,
    pub exclusive: bool,
    pub fence: u64,
    pub start: u64,
    pub end: u64,
    pub kept: bool,
    pub seen: Seen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The storage failed (counted as an error by the worker).
    Nothing,
    /// Exclusive: the write of this value + 1 was accepted.
    Accepted(u64),
    /// Exclusive: the storage rejected the fence.
    Rejected,
    /// Shared: the counter did not change, or did.
    Clean,
    Dirty,
}

impl Seen {
    pub fn parse(exclusive: bool, text: &str) -> Option<Seen> {
        match (exclusive, text) {
            (_, "-") => Some(Seen::Nothing),
            (true, "r") => Some(Seen::Rejected),
            (true, value) => value.parse().ok().map(Seen::Accepted),
            (false, "c") => Some(Seen::Clean),
            (false, "d") => Some(Seen::Dirty),
            (false, _) => None,
        }
    }
}

pub fn check(layout: &Layout, sections: &[Fenced], verification: &mut Verification) {
    let mut by_name: HashMap<u32, Vec<Fenced>> = HashMap::new();
    for section in sections {
        by_name.entry(section.name).or_default().push(*section);
    }
    let v = verification;
    v.fenced = sections.len() as u64;
    v.lost_holds = sections.iter().filter(|s| !s.kept).count() as u64;
    v.rejected = sections.iter().filter(|s| s.seen == Seen::Rejected).count() as u64;
    v.rejected_kept = sections.iter().filter(|s| s.kept && s.seen == Seen::Rejected).count() as u64;
    for (&name, group) in &mut by_name {
        group.sort_unstable_by_key(|s| (s.start, s.end));
        check_fences(group, v);
        check_shared(group, v);
        check_dirty(group, v);
        check_storage(layout, name, group, v);
    }
    v.inodes = by_name.len();
}

/// Duplicate exclusive fences, and kept exclusive holds whose fence is
/// not above that of every exclusive hold that began before.
fn check_fences(group: &[Fenced], v: &mut Verification) {
    let mut fences: Vec<u64> = group.iter().filter(|s| s.exclusive).map(|s| s.fence).collect();
    fences.sort_unstable();
    v.duplicate_fences += fences.windows(2).filter(|pair| pair[0] == pair[1]).count() as u64;
    let mut highest: Option<u64> = None;
    for section in group.iter().filter(|s| s.exclusive) {
        if section.kept && highest.is_some_and(|highest| section.fence <= highest) {
            v.fence_disorder += 1;
            v.note(format!(
                "kept hold with fence {} began after a hold with fence {highest:?}",
                section.fence
            ));
        }
        highest = highest.max(Some(section.fence));
    }
}

/// Each kept shared hold's fence against the exclusive holds that began
/// before (above their largest) and the kept ones that began after (below
/// their least).
fn check_shared(group: &[Fenced], v: &mut Verification) {
    let exclusive: Vec<&Fenced> = group.iter().filter(|s| s.exclusive).collect();
    let kept: Vec<&Fenced> = exclusive.iter().copied().filter(|s| s.kept).collect();
    // Largest fence before each position; least kept fence from each on.
    let mut before = vec![0; exclusive.len() + 1];
    for (i, section) in exclusive.iter().enumerate() {
        before[i + 1] = before[i].max(section.fence);
    }
    let mut after = vec![u64::MAX; kept.len() + 1];
    for (i, section) in kept.iter().enumerate().rev() {
        after[i] = after[i + 1].min(section.fence);
    }
    for shared in group.iter().filter(|s| !s.exclusive && s.kept) {
        let lower = before[exclusive.partition_point(|x| x.start < shared.start)];
        let upper = after[kept.partition_point(|x| x.start < shared.start)];
        if shared.fence <= lower || shared.fence >= upper {
            v.shared_fence_mismatches += 1;
            v.note(format!(
                "shared hold with fence {} between exclusive fences {lower} and {upper}",
                shared.fence
            ));
        }
    }
}

/// Kept shared sections that saw the counter change with no lost
/// exclusive section overlapping them to explain it.
fn check_dirty(group: &[Fenced], v: &mut Verification) {
    let lost: Vec<&Fenced> = group.iter().filter(|s| s.exclusive && !s.kept).collect();
    for shared in group.iter().filter(|s| !s.exclusive && s.kept && s.seen == Seen::Dirty) {
        if lost.iter().any(|x| x.start < shared.end && x.end > shared.start) {
            v.explained_dirty_reads += 1;
        } else {
            v.dirty_reads += 1;
        }
    }
}

/// Accepted writes: every value read differs, and the counter ended past
/// the highest.
fn check_storage(layout: &Layout, name: u32, group: &[Fenced], v: &mut Verification) {
    let mut seen: Vec<u64> = group
        .iter()
        .filter_map(|s| match s.seen {
            Seen::Accepted(value) => Some(value),
            _ => None,
        })
        .collect();
    if seen.is_empty() {
        return;
    }
    seen.sort_unstable();
    let duplicates = seen.windows(2).filter(|pair| pair[0] == pair[1]).count() as u64;
    let highest = seen.last().copied().unwrap_or(0);
    let path = layout.storage_path(name as usize, "counter");
    let last = counter::read_value(&path).unwrap_or_else(|e| {
        eprintln!("stress: cannot read {}: {e}", path.display());
        None
    });
    let regressed = last.is_none_or(|last| last <= highest);
    v.lost_updates += duplicates + u64::from(regressed);
    v.counted += seen.len() as u64;
}
