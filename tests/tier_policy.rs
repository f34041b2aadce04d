//! The tier violation policy: panic by default in debug builds, log by
//! default in release builds (CI runs this file with `--release` too), and
//! switchable at run time. The policy is process-wide, so this file holds a
//! single test.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use packlock::{PackLock, Tier, TierPolicy, set_tier_policy, tier_policy};

const WORKSPACE: Tier = Tier::new(0, "workspace-sync");
const PER_PACK: Tier = Tier::new(2, "per-pack");

/// Keeps every error-level record.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Error
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.0.lock().expect("capture").push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn logged() -> Vec<String> {
    std::mem::take(&mut *CAPTURE.0.lock().expect("capture"))
}

/// Takes the workspace lock while holding the per-pack lock.
fn violate(ws: &PackLock, pack: &PackLock) -> std::thread::Result<()> {
    let _pack = pack.acquire().expect("acquire pack");
    catch_unwind(AssertUnwindSafe(|| drop(ws.acquire().expect("acquire workspace"))))
}

#[test]
fn violations_panic_or_log_as_the_policy_says() {
    log::set_logger(&CAPTURE).expect("install logger");
    log::set_max_level(log::LevelFilter::Error);
    let root = common::temp_dir();
    let ws = PackLock::builder(root.path())
        .file_name(".sync.lock")
        .tier(WORKSPACE)
        .open()
        .expect("open");
    let pack = PackLock::builder(root.path().join("foo")).tier(PER_PACK).open().expect("open");

    let default = if cfg!(debug_assertions) { TierPolicy::Panic } else { TierPolicy::Log };
    assert_eq!(tier_policy(), default);

    set_tier_policy(TierPolicy::Log);
    assert!(violate(&ws, &pack).is_ok(), "the Log policy must not panic");
    let messages = logged();
    assert_eq!(messages.len(), 1, "{messages:?}");
    for part in [
        "`workspace-sync` (rank 0)".to_string(),
        "`per-pack` (rank 2)".to_string(),
        ws.path().display().to_string(),
        pack.path().display().to_string(),
    ] {
        assert!(messages[0].contains(&part), "{} lacks {part}", messages[0]);
    }

    set_tier_policy(TierPolicy::Panic);
    assert!(violate(&ws, &pack).is_err(), "the Panic policy must panic");
    assert!(logged().is_empty(), "the Panic policy does not log");

    set_tier_policy(TierPolicy::Log);
    assert!(violate(&ws, &pack).is_ok());
    assert_eq!(logged().len(), 1);
    assert!(ws.try_acquire().is_ok() && pack.try_acquire().is_ok(), "nothing stays held");

    // An acquire that finds its lock file replaced goes round again with
    // the new file; the violation is still reported once.
    #[cfg(unix)]
    {
        common::rename_new_file_over(ws.path());
        assert!(violate(&ws, &pack).is_ok());
        assert_eq!(logged().len(), 1, "one report per acquire");
    }
}
