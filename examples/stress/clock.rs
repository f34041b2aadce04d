//! The clock every process shares.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
pub fn now_ns() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    u64::try_from(since.as_nanos()).expect("nanoseconds since 1970 fit a u64 until 2554")
}
