//! Lock-ordering tiers: a [`Tier`] is a rank in a program's global lock
//! order, and [`TierPolicy`] says what happens when a thread or task takes
//! tiers out of order. Who holds what is recorded in `held`; the public
//! ways to hold tiers and give tasks a record are in `scope`.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// A rank in a program's global lock order. Locks must be taken in strictly
/// increasing rank: holding a tier, a thread or task may only take higher
/// ones. Two code paths that take the same locks in opposite orders can
/// deadlock; ranks make the order explicit and checked.
///
/// # Examples
///
/// ```
/// use packlock::Tier;
///
/// const WORKSPACE: Tier = Tier::new(0, "workspace-sync");
/// const PER_PACK: Tier = Tier::new(2, "per-pack");
/// assert!(WORKSPACE.rank() < PER_PACK.rank());
/// assert_eq!(PER_PACK.to_string(), "`per-pack` (rank 2)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tier {
    rank: u32,
    name: &'static str,
}

impl Tier {
    /// A tier of rank `rank`, named `name` in messages.
    ///
    /// # Examples
    ///
    /// ```
    /// const BACKEND: packlock::Tier = packlock::Tier::new(3, "backend");
    /// assert_eq!(BACKEND.name(), "backend");
    /// ```
    pub const fn new(rank: u32, name: &'static str) -> Self {
        Self { rank, name }
    }

    /// The rank: locks are taken in strictly increasing rank.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(packlock::Tier::new(4, "manifest").rank(), 4);
    /// ```
    pub const fn rank(&self) -> u32 {
        self.rank
    }

    /// The name used in messages.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(packlock::Tier::new(4, "manifest").name(), "manifest");
    /// ```
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` (rank {})", self.name, self.rank)
    }
}

/// What happens when a tier is taken out of order.
///
/// # Examples
///
/// ```
/// use packlock::{TierPolicy, set_tier_policy, tier_policy};
///
/// set_tier_policy(TierPolicy::Log);
/// assert_eq!(tier_policy(), TierPolicy::Log);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TierPolicy {
    /// Panic with a message naming both tiers and both locks: the default
    /// in debug builds, so tests find ordering bugs.
    Panic,
    /// Log the same message with `log::error!` and go on: the default in
    /// release builds, so a production program keeps running.
    Log,
}

const DEFAULT_POLICY: u8 = if cfg!(debug_assertions) { 0 } else { 1 };
static POLICY: AtomicU8 = AtomicU8::new(DEFAULT_POLICY);

/// Sets what happens on a tier violation, for the whole process.
///
/// # Examples
///
/// ```
/// packlock::set_tier_policy(packlock::TierPolicy::Panic);
/// ```
pub fn set_tier_policy(policy: TierPolicy) {
    let value = match policy {
        TierPolicy::Panic => 0,
        TierPolicy::Log => 1,
    };
    POLICY.store(value, Ordering::Relaxed);
}

/// The current tier violation policy: [`TierPolicy::Panic`] in debug builds
/// and [`TierPolicy::Log`] in release builds unless [`set_tier_policy`]
/// changed it.
///
/// # Examples
///
/// ```
/// let expected = if cfg!(debug_assertions) {
///     packlock::TierPolicy::Panic
/// } else {
///     packlock::TierPolicy::Log
/// };
/// assert_eq!(packlock::tier_policy(), expected);
/// ```
pub fn tier_policy() -> TierPolicy {
    match POLICY.load(Ordering::Relaxed) {
        0 => TierPolicy::Panic,
        _ => TierPolicy::Log,
    }
}

/// Panics with or logs `message`, as the current policy says.
pub(crate) fn report_violation(message: &str) {
    match tier_policy() {
        TierPolicy::Panic => panic!("{message}"),
        TierPolicy::Log => log::error!("{message}"),
    }
}
